"""posrag._files: the shared hashing, fsync and JSON-writing helpers."""

from __future__ import annotations

import hashlib
import json

import pytest

from posrag._files import fsync_dir, fsync_file, sha256_file, write_json, write_json_atomic


def test_sha256_file_matches_hashlib_across_chunks(tmp_path):
    data = bytes(range(256)) * 5000  # over one 1 MiB chunk
    path = tmp_path / "blob"
    path.write_bytes(data)
    assert sha256_file(path) == hashlib.sha256(data).hexdigest()
    assert sha256_file(str(path)) == sha256_file(path)


def test_write_json_round_trips_unicode(tmp_path):
    write_json(tmp_path / "a.json", {"text": "café ✓", "n": [1, 2]})
    fsync_file(tmp_path / "a.json")
    fsync_dir(tmp_path)
    assert json.loads((tmp_path / "a.json").read_text(encoding="utf-8")) == {"text": "café ✓", "n": [1, 2]}


def test_write_json_atomic_replaces_whole_or_not_at_all(tmp_path):
    target = tmp_path / "state.json"
    write_json_atomic(target, {"version": 1})
    write_json_atomic(target, {"version": 2})
    assert json.loads(target.read_text()) == {"version": 2}
    with pytest.raises(TypeError):
        write_json_atomic(target, {"version": object()})  # fails half-way through writing
    assert json.loads(target.read_text()) == {"version": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]  # no temporary file left
