"""Saving under contention and after crashes, and loading hostile files: always a loadable index or a PosragError."""

from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from posrag.errors import IndexCorruptedError
from posrag.retrieval import CONFIG_FILE, DocumentIndex, persistence
from tests.unit.hashing_embedder import HashingEmbedder

ROOT = Path(__file__).resolve().parents[2]
TEXTS = [f"document number {i} about topic {i % 5}" for i in range(40)]


def build(n: int = len(TEXTS), index_type: str = "flat", prefix: str = "d") -> DocumentIndex:
    return DocumentIndex.from_texts(
        TEXTS[:n], ids=[f"{prefix}{i}" for i in range(n)], embedder=HashingEmbedder(), index_type=index_type
    )


def load(path: Path) -> DocumentIndex:
    return DocumentIndex.load(path, embedder=HashingEmbedder())


# ------------------------------------------------------------------------------------------- concurrent saves


def test_threads_saving_to_one_folder_always_leave_a_loadable_index(tmp_path):
    target = tmp_path / "idx"
    indexes = [build(10 + 5 * i, index_type=("flat", "hnsw")[i % 2], prefix=f"t{i}-") for i in range(4)]
    errors: list[BaseException] = []
    loads = 0
    stop = threading.Event()

    def writer(index: DocumentIndex) -> None:
        try:
            for _ in range(8):
                index.save(target)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def reader() -> None:
        nonlocal loads
        while not stop.is_set():
            if (target / CONFIG_FILE).exists():
                try:
                    loaded = load(target)
                    assert len(loaded) in {len(i) for i in indexes}
                    loads += 1
                except BaseException as exc:  # pragma: no cover
                    errors.append(exc)

    threads = [threading.Thread(target=writer, args=(index,)) for index in indexes]
    watcher = threading.Thread(target=reader)
    watcher.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stop.set()
    watcher.join()
    assert not errors, errors
    final = load(target)
    assert final.ids in [index.ids for index in indexes]  # one complete save won, not a mixture
    assert len([p for p in target.iterdir()]) == 3  # config.json and the winner's two data files
    assert loads > 0


WRITER = textwrap.dedent(
    """
    import sys
    from posrag.retrieval import DocumentIndex
    from tests.unit.hashing_embedder import HashingEmbedder

    n, rounds, target = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    index = DocumentIndex.from_texts([f"text {i} of writer {n}" for i in range(5 + n)], embedder=HashingEmbedder())
    for _ in range(rounds):
        index.save(target)
        DocumentIndex.load(target, embedder=HashingEmbedder())
    """
)


def _python(*args: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True, **kwargs)


def test_processes_saving_to_one_folder_always_leave_a_loadable_index(tmp_path):
    target = tmp_path / "idx"
    procs = [_python("-c", WRITER, str(n), "4", str(target)) for n in range(3)]
    results = [(proc.wait(timeout=300), proc.stderr.read()) for proc in procs]  # type: ignore[union-attr]
    for code, stderr in results:
        assert code == 0, stderr
        assert "FileNotFoundError" not in stderr
    assert len(load(target)) in {5, 6, 7}
    assert len(list(target.iterdir())) == 3


# ------------------------------------------------------------------------------------------- leftovers and modes


KILLED = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    import posrag.retrieval.persistence as persistence
    from posrag.retrieval import DocumentIndex
    from tests.unit.hashing_embedder import HashingEmbedder

    def stall(path, data):  # the documents file is half written when the process is killed
        Path(path).write_text("{\\"documents\\": [")
        Path(sys.argv[2]).touch()
        time.sleep(600)

    persistence.write_json = stall
    DocumentIndex.from_texts(["a text", "another text"], embedder=HashingEmbedder()).save(sys.argv[1])
    """
)


def _kill_mid_save(target: Path, signal_file: Path) -> None:
    proc = _python("-c", KILLED, str(target), str(signal_file))
    deadline = time.monotonic() + 120
    while not signal_file.exists():
        assert proc.poll() is None, proc.stderr.read()  # type: ignore[union-attr]
        assert time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)


def test_a_killed_first_save_leaves_staging_that_the_next_save_sweeps(tmp_path):
    target = tmp_path / "idx"
    _kill_mid_save(target, tmp_path / "stalled")
    staging = [p for p in tmp_path.iterdir() if p.name.startswith(".idx.tmp-")]
    assert len(staging) == 1 and staging[0].is_dir() and not target.exists()
    index = build(5)
    index.save(target)  # the lock died with its holder: this save is not blocked, and sweeps the dead staging
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".idx.tmp-")]
    assert load(target).ids == index.ids


def test_a_killed_update_leaves_data_files_that_the_next_save_removes(tmp_path):
    target = tmp_path / "idx"
    build(5).save(target)
    _kill_mid_save(target, tmp_path / "stalled")
    assert len(list(target.iterdir())) == 5  # the killed save's FAISS and documents files
    assert len(load(target)) == 5
    build(7).save(target)
    assert len(list(target.iterdir())) == 3 and len(load(target)) == 7


def test_sweeping_removes_only_dead_writers_staging_of_this_target(tmp_path):
    target = tmp_path / "idx"
    legacy = tmp_path / ".idx.tmp-ab_c12x9"  # tempfile.mkdtemp's name, from posrag before 0.2
    legacy.mkdir()
    (legacy / "documents-0123456789abcdef.json").write_text("{")
    other_target = tmp_path / ".idx.tmp-x.tmp-0123456789abcdef"  # another folder's staging
    other_target.mkdir()
    foreign = tmp_path / ".idx.tmp-0123456789abcdef"  # named like ours but holding a user's file
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep")
    with persistence.writer_lock(target):
        removed = persistence.sweep_staging(target)
    assert removed == [legacy]
    assert other_target.is_dir() and (foreign / "notes.txt").read_text() == "keep"


def test_saved_folders_get_the_umask_mode(tmp_path):
    old = os.umask(0o022)
    try:
        build(3).save(tmp_path / "idx")
    finally:
        os.umask(old)
    assert (tmp_path / "idx").stat().st_mode & 0o777 == 0o755


# ------------------------------------------------------------------------------------------- hostile files


@pytest.fixture
def saved(tmp_path):
    target = tmp_path / "idx"
    build(6).save(target)
    return target


def _config(target: Path) -> dict:
    return json.loads((target / CONFIG_FILE).read_text())


def _write_config(target: Path, config: dict) -> None:
    (target / CONFIG_FILE).write_text(json.dumps(config))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda c: c.update(count="6"), r"field 'count' is '6'; expected an integer from 0"),
        (lambda c: c.update(count=-1), r"field 'count' is -1"),
        (lambda c: c["files"]["index"].update(size=str(c["files"]["index"]["size"])), r"files\.index\.size' is '\d+'"),
        (lambda c: c["files"]["documents"].update(sha256="abc"), r"files\.documents\.sha256' is 'abc'"),
        (lambda c: c["files"]["documents"].update(name="../idx/x.json"), r"files\.documents\.name' is '\.\./idx"),
        (lambda c: c["files"].pop("documents"), r"files\.documents' is None"),
        (lambda c: c.update(dimension="256"), r"field 'dimension' is '256'; expected null or an integer from 1"),
        (lambda c: c.update(dimension=10**9), r"field 'dimension' is 1000000000"),
        (lambda c: c.update(metric="l2"), r"field 'metric' is 'l2'; expected 'cosine'"),
        (lambda c: c.update(next_label="x"), r"field 'next_label' is 'x'"),
        (lambda c: c.update(next_label=2), r"next_label=2 is not above every stored label \(5\)"),
        (lambda c: c.update(format_version=0), r"field 'format_version' is 0; expected an integer from 1 to 1"),
        (lambda c: c.update(embedder=7), r"field 'embedder' is 7"),
        (lambda c: c["options"].update(hnsw_m=10**9), r"'options' is invalid: hnsw_m must be an integer from 2 to"),
        (lambda c: c["options"].update(index_type="annoy"), r"index_type must be one of"),
        (lambda c: c.update(options=[]), r"field 'options' is \[\]"),
        (lambda c: c.update(files=None), r"field 'files' is None"),
        (lambda c: c["files"].update(index=None), r"dimension is 256 but the index file entry is None"),
    ],
)
def test_every_config_field_is_checked(saved, edit, message):
    config = _config(saved)
    edit(config)
    _write_config(saved, config)
    with pytest.raises(IndexCorruptedError, match=message):
        load(saved)


@pytest.mark.parametrize(("saved_as", "claimed"), [("flat", "hnsw"), ("hnsw", "flat"), ("flat", "ivf")])
def test_an_index_type_that_disagrees_with_the_faiss_file(tmp_path, saved_as, claimed):
    target = tmp_path / "idx"
    build(index_type=saved_as).save(target)
    config = _config(target)
    config["options"]["index_type"] = claimed
    config["options"]["ivf_nlist"] = config["options"]["ivf_nlist"] or 1
    _write_config(target, config)
    with pytest.raises(IndexCorruptedError, match=r"is FAISS type b'\w+', expected '\w+'"):
        load(target)


def _forge_index_file(target: Path, offset: int, value: int) -> None:
    path = target / _config(target)["files"]["index"]["name"]
    data = bytearray(path.read_bytes())
    data[offset : offset + 8] = struct.pack("<Q", value)
    path.write_bytes(bytes(data))
    config = _config(target)
    config["files"]["index"] = persistence.file_record(path).to_dict()
    _write_config(target, config)


def test_a_forged_vector_length_is_caught_before_faiss_allocates(saved):
    # IxM2 + header (37 bytes), IxFI + header (37 bytes), then the flat codes' length: 2**32 floats claimed
    # (16 GiB), which FAISS itself would try to allocate and fail with a raw MemoryError
    _forge_index_file(saved, 74, 1 << 32)
    with pytest.raises(IndexCorruptedError, match=r"claims 4294967296 entries for the flat index vectors"):
        load(saved)


def test_a_faiss_header_that_disagrees_with_the_config(saved):
    config = _config(saved)
    _forge_index_file(saved, 8, config["count"] + 1)  # the id map's ntotal
    with pytest.raises(
        IndexCorruptedError, match=r"id map holds 7 vectors but config\.json and the documents account for 6"
    ):
        load(saved)
