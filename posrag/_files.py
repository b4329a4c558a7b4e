"""Small file helpers the core shares: SHA-256 of a file, fsync of files and directories, durable JSON writes.

Written once here so that persisted indexes, the model cache and the benchmark's records hash and commit files
the same way.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from pathlib import Path
from typing import Any

from posrag.errors import ConfigurationError

_CHUNK = 1 << 20


def sha256_file(path: str | os.PathLike[str]) -> str:
    """The hex SHA-256 of a file's contents, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fsync_file(path: str | os.PathLike[str]) -> None:
    """Flush a written file's contents to disk."""
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Make a rename or a new entry in ``path`` durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_json(path: str | os.PathLike[str], data: Any) -> None:
    """Write ``data`` as UTF-8 JSON and fsync it (not atomic: the caller commits it, e.g. by a rename)."""
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(data, handle, ensure_ascii=False)
        handle.flush()
        os.fsync(handle.fileno())


def write_json_atomic(path: str | os.PathLike[str], data: Any) -> None:
    """Replace ``path`` with ``data`` as JSON atomically: readers see the old file or the new one, never half."""
    target = Path(path)
    tmp = target.with_name(f".{target.name}.tmp-{uuid.uuid4().hex[:16]}")
    try:
        write_json(tmp, data)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(target.parent)


def check_writable(folder: str | os.PathLike[str], *, hint: str) -> Path:
    """Create ``folder`` if needed and prove a file can be written in it, before work whose result goes there.

    Raises :class:`~posrag.errors.ConfigurationError` naming the folder, the OS error and ``hint`` (the fix).
    """
    path = Path(folder)
    probe = path / f".posrag-write-check-{uuid.uuid4().hex[:16]}"
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ConfigurationError(f"Cannot write to {path} ({exc.strerror or exc}); {hint}.") from exc
    return path


__all__ = ["check_writable", "fsync_dir", "fsync_file", "sha256_file", "write_json", "write_json_atomic"]
