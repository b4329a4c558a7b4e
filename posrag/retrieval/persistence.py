"""Saving and loading a document index: atomic, one writer at a time per directory, checked on the way back.

Never pickle: the FAISS index goes through ``faiss.write_index``, documents and ``config.json`` are JSON.

* **Atomic.** A first save writes a staging directory beside the target and renames it into place. A later save
  writes new data files beside the old ones and commits by replacing ``config.json`` last, so the directory
  always holds the old index or the new one, whatever happens mid-save.
* **Serialized.** Saves to one directory, from threads or from processes, take a file lock beside it
  (``.NAME.lock`` in the parent directory), so the last complete save wins and no save deletes another's files.
  Under that lock a save removes what dead writers left: staging directories of killed first saves and data
  files of killed updates. Directories get the mode the umask gives (not ``mkdtemp``'s 0700).
* **Checked.** :func:`load_snapshot` verifies each field of ``config.json`` (:mod:`posrag.retrieval.format`),
  file sizes and SHA-256, the FAISS file's layout before FAISS allocates anything, and that the FAISS index
  agrees with the documents; any failure is an :class:`~posrag.errors.IndexCorruptedError`. A load that races a
  save (which may remove the files the load started from) retries with the new ``config.json``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np
from filelock import FileLock

from posrag._files import fsync_dir, fsync_file, sha256_file, write_json
from posrag.documents import ScoredDocument
from posrag.errors import ConfigurationError, IndexCorruptedError
from posrag.retrieval.embedders import embedder_name, load_embedder
from posrag.retrieval.format import (
    CONFIG_FILE,
    CONFIG_TMP_PREFIX,
    DOCS_PREFIX,
    DOCS_SUFFIX,
    FORMAT_NAME,
    FORMAT_VERSION,
    INDEX_PREFIX,
    INDEX_SUFFIX,
    METRIC,
    FileRecord,
    StoredConfig,
    check_faiss_layout,
    corrupt,
    is_data_file,
    parse_config,
    parse_documents,
)
from posrag.retrieval.options import IndexOptions

#: How often a load retries when a concurrent save replaced the index under it.
LOAD_ATTEMPTS = 3


@dataclass(frozen=True)
class Snapshot:
    """What a save writes and a load returns: the index's state, independent of the embedder object."""

    embedder: str
    dimension: int | None
    options: IndexOptions
    faiss_index: Any  # faiss.Index | None
    documents: list[tuple[int, ScoredDocument]]
    tombstones: list[int]
    next_label: int


# --------------------------------------------------------------------------------------------------- saving


def lock_path(target: Path) -> Path:
    """The file lock that serializes saves to ``target``: ``.NAME.lock`` beside it."""
    return target.parent / f".{target.name}.lock"


@contextlib.contextmanager
def writer_lock(target: Path) -> Iterator[None]:
    """Hold the lock every writer of ``target`` takes, across threads and processes."""
    with FileLock(lock_path(target)):
        yield


def save_snapshot(read: Callable[[], AbstractContextManager[Snapshot]], path: str | os.PathLike[str]) -> Path:
    """Write the snapshot ``read()`` yields to directory ``path`` atomically, serialized with every other save.

    The file lock is taken before ``read()`` (which holds the index's read lock while the files are written),
    so a save waiting for another process never holds the index's lock, and lock order is always file, then index.
    """
    target = Path(os.path.abspath(_check_path(path, "save")))
    if target.exists() and not target.is_dir():
        raise ConfigurationError(f"Cannot save an index to {target}: it is a file. Pass a directory path.")
    target.parent.mkdir(parents=True, exist_ok=True)
    with writer_lock(target), read() as snapshot:
        sweep_staging(target)
        if not target.exists():
            staging = target.parent / f".{target.name}.tmp-{uuid.uuid4().hex[:16]}"
            staging.mkdir()  # the umask's mode, as for any directory the user creates
            try:
                _write_snapshot(snapshot, staging)
                os.rename(staging, target)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
            fsync_dir(target.parent)
        else:
            _check_overwritable(target)
            _write_snapshot(snapshot, target)
            _remove_stale_files(target)
    return Path(path)


def _check_path(path: object, verb: str) -> str | os.PathLike[str]:
    if isinstance(path, (str, os.PathLike)) and os.fspath(path):
        return path  # type: ignore[return-value]
    raise ConfigurationError(
        f"DocumentIndex.{verb} takes a directory path (str or pathlib.Path); got {path!r}. Pass e.g. 'my-index'."
    )


def _staging_pattern(target: Path) -> re.Pattern[str]:
    # posrag's own staging names (16 hex digits) and tempfile.mkdtemp's (8 characters) of earlier versions
    return re.compile(rf"\.{re.escape(target.name)}\.tmp-(?:[0-9a-f]{{16}}|[a-z0-9_]{{8}})")


def sweep_staging(target: Path) -> list[Path]:
    """Remove staging directories that killed first saves of ``target`` left; call under :func:`writer_lock`.

    Every writer stages under the lock, so a staging directory found while holding it belongs to a dead writer.
    Only directories holding nothing but a save's own files are removed.
    """
    pattern = _staging_pattern(target)
    removed = []
    with contextlib.suppress(OSError):
        for entry in target.parent.iterdir():
            if not pattern.fullmatch(entry.name) or entry.is_symlink() or not entry.is_dir():
                continue
            if all(child.name == CONFIG_FILE or is_data_file(child.name) for child in entry.iterdir()):
                shutil.rmtree(entry, ignore_errors=True)
                removed.append(entry)
    return removed


def _write_snapshot(snapshot: Snapshot, directory: Path) -> None:
    """Write data files under fresh names, then commit by atomically replacing ``config.json``."""
    generation = uuid.uuid4().hex[:16]
    index_path = directory / f"{INDEX_PREFIX}{generation}{INDEX_SUFFIX}"
    docs_path = directory / f"{DOCS_PREFIX}{generation}{DOCS_SUFFIX}"
    config_tmp = directory / f"{CONFIG_TMP_PREFIX}{generation}"
    written: list[Path] = []
    try:
        files: dict[str, dict[str, Any] | None] = {"index": None}
        if snapshot.faiss_index is not None:
            written.append(index_path)
            faiss.write_index(snapshot.faiss_index, str(index_path))
            fsync_file(index_path)
            files["index"] = file_record(index_path).to_dict()
        written.append(docs_path)
        documents = [
            {"label": label, "id": doc.id, "text": doc.text, "metadata": dict(doc.metadata)}
            for label, doc in snapshot.documents
        ]
        write_json(docs_path, {"documents": documents, "tombstones": sorted(snapshot.tombstones)})
        files["documents"] = file_record(docs_path).to_dict()
        options = snapshot.options
        config = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "embedder": snapshot.embedder,
            "dimension": snapshot.dimension,
            "metric": METRIC,
            "options": {
                "index_type": options.index_type,
                "hnsw_m": options.hnsw_m,
                "hnsw_ef_search": options.hnsw_ef_search,
                "ivf_nlist": getattr(snapshot.faiss_index, "nlist", options.ivf_nlist),
                "ivf_nprobe": options.ivf_nprobe,
            },
            "count": len(snapshot.documents),
            "next_label": snapshot.next_label,
            "files": files,
        }
        written.append(config_tmp)
        write_json(config_tmp, config)
        os.replace(config_tmp, directory / CONFIG_FILE)  # the commit point
    except BaseException:
        for file in written:
            with contextlib.suppress(OSError):
                file.unlink()
        raise
    fsync_dir(directory)


def file_record(path: Path) -> FileRecord:
    return FileRecord(path.name, path.stat().st_size, sha256_file(path))


def _check_overwritable(target: Path) -> None:
    """Refuse to write into anything but an empty directory or a posrag index."""
    if not target.is_dir():
        raise ConfigurationError(f"Cannot save an index to {target}: it is a file. Pass a directory path.")
    config_path = target / CONFIG_FILE
    if config_path.is_file():
        try:
            is_ours = json.loads(config_path.read_text(encoding="utf-8")).get("format") == FORMAT_NAME
        except (OSError, ValueError, AttributeError):
            is_ours = False
        if is_ours:
            return
    elif not any(target.iterdir()):
        return
    raise ConfigurationError(
        f"Cannot save an index to {target}: the directory is not empty and does not hold a posrag index, and "
        "posrag will not overwrite other files. Choose a new or empty directory."
    )


def _remove_stale_files(directory: Path) -> None:
    """Delete data files that ``config.json`` no longer references; call under :func:`writer_lock`."""
    config = json.loads((directory / CONFIG_FILE).read_text(encoding="utf-8"))
    keep = {record["name"] for record in config["files"].values() if record}
    for entry in directory.iterdir():
        if entry.is_file() and is_data_file(entry.name) and entry.name not in keep:
            with contextlib.suppress(OSError):
                entry.unlink()


# -------------------------------------------------------------------------------------------------- loading


def load_snapshot(path: str | os.PathLike[str], embedder: Any | None) -> tuple[Snapshot, Any]:
    """Read and check the index saved at ``path``, and the embedder to use with it.

    ``embedder`` must be the one the index was built with; ``None`` loads the packaged default, once
    ``config.json`` has been checked (a broken index fails before a model is loaded).
    """
    directory = Path(_check_path(path, "load"))
    if not directory.is_dir():
        raise ConfigurationError(
            f"No posrag index at {directory}: "
            f"{'it is a file, not a directory' if directory.exists() else 'the directory does not exist'}. "
            "Pass the directory given to DocumentIndex.save."
        )
    config_path = directory / CONFIG_FILE
    for attempt in range(LOAD_ATTEMPTS):
        raw = _read_config_bytes(config_path, directory)
        config = parse_config(_parse_json(raw, config_path), config_path)
        if embedder is None:
            embedder = load_embedder()
        check_embedder(embedder, config, directory)  # again on a retry: the new save may differ
        try:
            return _read_snapshot(directory, config, config_path), embedder
        except IndexCorruptedError:
            # a save may have committed a new config.json and removed the files this one listed: read again
            with contextlib.suppress(OSError):
                if attempt + 1 < LOAD_ATTEMPTS and config_path.read_bytes() != raw:
                    continue
            raise
    raise AssertionError("unreachable")  # pragma: no cover


def _read_config_bytes(config_path: Path, directory: Path) -> bytes:
    try:
        return config_path.read_bytes()
    except (FileNotFoundError, IsADirectoryError):
        raise IndexCorruptedError(
            f"{directory} has no {CONFIG_FILE}, so it is not a posrag index (DocumentIndex.save writes one). "
            "Rebuild it with DocumentIndex.from_texts(...) and save it again."
        ) from None


def _parse_json(raw: bytes, path: Path) -> Any:
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise IndexCorruptedError(
            f"{path} is not valid JSON ({exc}); the index is truncated or the file was replaced. Restore a "
            "complete copy of the index directory, or rebuild it with DocumentIndex.from_texts(...).save(...)."
        ) from exc


def _read_snapshot(directory: Path, config: StoredConfig, config_path: Path) -> Snapshot:
    documents_file = directory / config.documents_file.name
    payload = _parse_json(_read_verified(directory, config.documents_file, "documents"), documents_file)
    docs, tombstones = parse_documents(payload, documents_file)
    if len(docs) != config.count:
        raise IndexCorruptedError(
            f"{config_path} records {config.count} documents but {documents_file} holds {len(docs)}. "
            "The files come from different saves; restore a consistent copy or rebuild the index."
        )
    labels = [label for label, _ in docs] + tombstones
    if labels and config.next_label <= max(labels):
        raise corrupt(config_path, f"next_label={config.next_label} is not above every stored label ({max(labels)})")
    faiss_index = None
    if config.index_file is None:
        if docs or tombstones:
            raise corrupt(config_path, f"no FAISS file is listed but the documents file holds {len(docs)} documents")
    else:
        assert config.dimension is not None  # parse_config pairs them
        index_path = directory / config.index_file.name
        data = _read_verified(directory, config.index_file, "index")
        check_faiss_layout(data, index_path, config.options.index_type, config.dimension, len(labels))
        try:
            faiss_index = faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))
        except (RuntimeError, MemoryError) as exc:
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise corrupt(index_path, f"FAISS cannot read it ({first_line})") from exc
        _check_faiss(faiss_index, index_path, config, set(labels))
    return Snapshot(config.embedder, config.dimension, config.options, faiss_index, docs, tombstones, config.next_label)


def _read_verified(directory: Path, record: FileRecord, role: str) -> bytes:
    """A data file's bytes, after checking its size (before reading) and its SHA-256 against ``config.json``."""
    path = directory / record.name
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size != record.size:
                raise corrupt(
                    path, f"the file is {size} bytes but {CONFIG_FILE} recorded {record.size} (truncated or replaced)"
                )
            data = handle.read()
    except (FileNotFoundError, IsADirectoryError):
        raise corrupt(path, f"the {role} file listed in {CONFIG_FILE} is missing") from None
    if hashlib.sha256(data).hexdigest() != record.sha256:
        raise corrupt(path, f"the contents do not match the SHA-256 recorded in {CONFIG_FILE} (modified)")
    return data


def _check_faiss(index: Any, path: Path, config: StoredConfig, labels: set[int]) -> None:
    index_type = config.options.index_type
    inner = {"flat": faiss.IndexFlatIP, "hnsw": faiss.IndexHNSWFlat}.get(index_type)
    if inner is None:
        if not isinstance(index, faiss.IndexIVFFlat):
            raise corrupt(path, f"holds a {type(index).__name__}, not the IndexIVFFlat of an 'ivf' index")
        if config.options.ivf_nlist is not None and index.nlist != config.options.ivf_nlist:
            raise corrupt(
                path, f"has {index.nlist} lists but {CONFIG_FILE} records ivf_nlist={config.options.ivf_nlist}"
            )
    else:
        if not isinstance(index, faiss.IndexIDMap2):
            raise corrupt(path, f"holds a {type(index).__name__}, not the IndexIDMap2 of a {index_type!r} index")
        wrapped = faiss.downcast_index(index.index)
        if not isinstance(wrapped, inner):
            raise corrupt(
                path, f"wraps a {type(wrapped).__name__}, but {CONFIG_FILE} records index_type={index_type!r}"
            )
    if index.metric_type != faiss.METRIC_INNER_PRODUCT:
        raise corrupt(path, "does not use the inner-product metric posrag's cosine scores need")
    if isinstance(index, faiss.IndexIDMap2):
        ids = set(faiss.vector_to_array(index.id_map).tolist())
        if ids != labels:
            raise corrupt(path, "its vector ids do not match the documents file (files from different saves)")


def embedding_dimension(embedder: Any) -> int:
    for attribute in ("get_embedding_dimension", "get_sentence_embedding_dimension"):
        method = getattr(embedder, attribute, None)
        if callable(method):
            value = method()
            if value:
                return int(value)
    probe = np.asarray(embedder.encode(["posrag dimension probe"], convert_to_numpy=True))
    return int(probe.shape[-1])


def check_embedder(embedder: Any, config: StoredConfig, directory: Path) -> None:
    """The embedder given at load time must be the one the index was built with (name and dimension)."""
    stored_name, stored_dim = config.embedder, config.dimension
    name = embedder_name(embedder)
    dimension = embedding_dimension(embedder) if stored_dim is not None else None
    if name != stored_name or dimension != stored_dim:
        raise ConfigurationError(
            f"The index at {directory} was built with embedder {stored_name!r} (dimension {stored_dim}), but "
            f"the embedder given is {name!r} (dimension {dimension if dimension is not None else 'unchecked'}). "
            "Queries embedded by another model would be compared with the wrong vectors. Load with the "
            f"original embedder, e.g. DocumentIndex.load(path, embedder=load_embedder({stored_name!r})), or "
            "rebuild the index with the new one."
        )


__all__ = ["Snapshot", "file_record", "load_snapshot", "lock_path", "save_snapshot", "sweep_staging", "writer_lock"]
