"""The on-disk format of a saved index: file names, ``config.json``'s schema, and checks of every stored field.

A saved index is a directory holding a FAISS file (``index-<generation>.faiss``), the documents as JSON
(``documents-<generation>.json``) and ``config.json``, the commit record: format name and version, embedder
name and dimension, metric, index options, counts and each data file's name, size and SHA-256. Everything read
back is checked here, type and range, before it is used; a failure is an :class:`IndexCorruptedError` naming
the file, the field, the value seen and what was expected.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from posrag.documents import ScoredDocument
from posrag.errors import ConfigurationError, IndexCorruptedError
from posrag.retrieval.options import IndexOptions, is_int

#: Written into ``config.json``; a directory without it is not a posrag index.
FORMAT_NAME = "posrag.DocumentIndex"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
METRIC = "cosine"

#: Embedding dimensions outside this range are not from a sentence embedder (a forged or damaged config).
MAX_DIMENSION = 1 << 16
#: Documents per index; FAISS labels are int64, but beyond this a config value is damage, not data.
MAX_COUNT = 1 << 40

INDEX_PREFIX, INDEX_SUFFIX = "index-", ".faiss"
DOCS_PREFIX, DOCS_SUFFIX = "documents-", ".json"
CONFIG_TMP_PREFIX = ".config.json.tmp-"
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class FileRecord:
    """One data file of a saved index, as ``config.json`` lists it."""

    name: str
    size: int
    sha256: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "size": self.size, "sha256": self.sha256}


@dataclass(frozen=True)
class StoredConfig:
    """``config.json`` after every field has been checked."""

    embedder: str
    dimension: int | None
    options: IndexOptions
    count: int
    next_label: int
    index_file: FileRecord | None
    documents_file: FileRecord


def is_data_file(name: str) -> bool:
    """A file a save writes into the index directory (other than ``config.json``)."""
    return (
        (name.startswith(INDEX_PREFIX) and name.endswith(INDEX_SUFFIX))
        or (name.startswith(DOCS_PREFIX) and name.endswith(DOCS_SUFFIX))
        or name.startswith(CONFIG_TMP_PREFIX)
    )


def corrupt(path: Path, problem: str) -> IndexCorruptedError:
    return IndexCorruptedError(
        f"{path}: {problem}. Restore a complete copy of the index directory, or rebuild it with "
        "DocumentIndex.from_texts(...) and save it again."
    )


def _field(config_path: Path, name: str, value: Any, expected: str) -> IndexCorruptedError:
    return corrupt(config_path, f"field {name!r} is {value!r}; expected {expected}")


def _int_field(config: dict[str, Any], config_path: Path, name: str, minimum: int, maximum: int) -> int:
    value = config.get(name)
    if not is_int(value) or not minimum <= value <= maximum:
        raise _field(config_path, name, value, f"an integer from {minimum} to {maximum}")
    return int(value)


def parse_config(config: Any, config_path: Path) -> StoredConfig:
    """Check every field of ``config.json``; raise :class:`IndexCorruptedError` naming the first bad one."""
    if not isinstance(config, dict) or config.get("format") != FORMAT_NAME:
        found = config.get("format") if isinstance(config, dict) else type(config).__name__
        raise corrupt(config_path, f"not a posrag index config (format {found!r}, expected {FORMAT_NAME!r})")
    version = config.get("format_version")
    if not is_int(version) or version < 1:
        raise _field(config_path, "format_version", version, f"an integer from 1 to {FORMAT_VERSION}")
    if version > FORMAT_VERSION:
        raise IndexCorruptedError(
            f"{config_path} has index format version {version}, newer than this posrag reads "
            f"({FORMAT_VERSION}). Upgrade posrag (pip install -U posrag) to load it."
        )
    embedder = config.get("embedder")
    if not isinstance(embedder, str) or not embedder:
        raise _field(config_path, "embedder", embedder, "the embedder's name, a non-empty string")
    dimension = config.get("dimension")
    if dimension is not None and (not is_int(dimension) or not 1 <= dimension <= MAX_DIMENSION):
        raise _field(config_path, "dimension", dimension, f"null or an integer from 1 to {MAX_DIMENSION}")
    if config.get("metric") != METRIC:
        raise _field(config_path, "metric", config.get("metric"), f"{METRIC!r}")
    options = _parse_options(config.get("options"), config_path)
    count = _int_field(config, config_path, "count", 0, MAX_COUNT)
    next_label = _int_field(config, config_path, "next_label", 0, MAX_COUNT)
    files = config.get("files")
    if not isinstance(files, dict):
        raise _field(config_path, "files", files, "an object with 'index' and 'documents' entries")
    index_file = None if files.get("index") is None else _parse_record(files["index"], config_path, "index")
    documents_file = _parse_record(files.get("documents"), config_path, "documents")
    if (index_file is None) != (dimension is None):
        raise corrupt(
            config_path,
            f"dimension is {dimension!r} but the index file entry is {files.get('index')!r}; an index has both "
            "(it holds documents) or neither (it is empty)",
        )
    return StoredConfig(embedder, dimension, options, count, next_label, index_file, documents_file)


def _parse_options(options: Any, config_path: Path) -> IndexOptions:
    if not isinstance(options, dict) or not isinstance(options.get("index_type"), str):
        raise _field(config_path, "options", options, "an object with at least 'index_type'")
    known = set(IndexOptions.__dataclass_fields__)
    try:
        parsed = IndexOptions(**{k: v for k, v in options.items() if k in known})
    except ConfigurationError as exc:
        raise corrupt(config_path, f"field 'options' is invalid: {exc}") from exc
    if parsed.index_type == "ivf" and "ivf_nlist" in options and options["ivf_nlist"] is None:
        raise _field(config_path, "options.ivf_nlist", None, "the trained list count of the saved IVF index")
    return parsed


def _parse_record(record: Any, config_path: Path, role: str) -> FileRecord:
    if not isinstance(record, dict):
        raise _field(config_path, f"files.{role}", record, "an object with name, size and sha256")
    name, size, sha = record.get("name"), record.get("size"), record.get("sha256")
    if not isinstance(name, str) or not name or Path(name).name != name or name in (".", ".."):
        raise _field(config_path, f"files.{role}.name", name, "a plain file name inside the index directory")
    if not is_int(size) or size < 0:
        raise _field(config_path, f"files.{role}.size", size, "the file's size in bytes, an integer >= 0")
    if not isinstance(sha, str) or not _SHA256.fullmatch(sha):
        raise _field(config_path, f"files.{role}.sha256", sha, "64 lowercase hex digits")
    return FileRecord(name, int(size), sha)


def parse_documents(payload: Any, path: Path) -> tuple[list[tuple[int, ScoredDocument]], list[int]]:
    """The documents file: ``(label, document)`` pairs and the HNSW tombstone labels."""
    if not isinstance(payload, dict) or not isinstance(payload.get("documents"), list):
        raise corrupt(path, "expected an object with a 'documents' list")
    tombstones = payload.get("tombstones", [])
    if not isinstance(tombstones, list) or not all(is_int(t) and 0 <= t < MAX_COUNT for t in tombstones):
        raise corrupt(path, "'tombstones' must be a list of non-negative integers")
    docs: list[tuple[int, ScoredDocument]] = []
    for position, record in enumerate(payload["documents"]):
        if (
            not isinstance(record, dict)
            or not is_int(record.get("label"))
            or not 0 <= record["label"] < MAX_COUNT
            or not isinstance(record.get("id"), str)
            or not record["id"]
            or not isinstance(record.get("text"), str)
            or not isinstance(record.get("metadata"), dict)
        ):
            raise corrupt(path, f"document {position} is malformed (needs label, id, text, metadata)")
        docs.append((record["label"], ScoredDocument(record["text"], record["metadata"], id=record["id"])))
    labels = [label for label, _ in docs] + tombstones
    if len(set(labels)) != len(labels) or len({doc.id for _, doc in docs}) != len(docs):
        raise corrupt(path, "document labels or ids are duplicated")
    return docs, tombstones


# ----------------------------------------------------------------------------- the FAISS file, before FAISS


class _Reader:
    """Walks a FAISS file's layout without allocating what it claims, so a forged length cannot exhaust memory."""

    def __init__(self, data: bytes, path: Path) -> None:
        self.data, self.path, self.pos = data, path, 0

    def take(self, n: int, what: str) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise corrupt(
                self.path,
                f"FAISS data claims {n} bytes for {what} at offset {self.pos} but the file has "
                f"{len(self.data) - self.pos} left (forged or truncated)",
            )
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def unpack(self, fmt: str, what: str) -> Any:
        values = struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt), what))
        return values[0] if len(values) == 1 else values

    def vector(self, item_size: int, what: str) -> int:
        size = self.unpack("Q", f"the length of {what}")
        if size > (len(self.data) - self.pos) // max(item_size, 1):
            raise corrupt(
                self.path,
                f"FAISS data claims {size} entries for {what} but the file is only {len(self.data)} bytes "
                "(forged or truncated)",
            )
        self.take(size * item_size, what)
        return int(size)

    def header(self, fourcc: str, what: str) -> tuple[int, int]:
        """An index's fourcc and common header; returns ``(d, ntotal)``."""
        found = self.take(4, f"the {what} type")
        if found != fourcc.encode():
            raise corrupt(self.path, f"the {what} is FAISS type {found!r}, expected {fourcc!r}")
        d, ntotal, _, _, _, metric = self.unpack("iqqq?i", f"the {what} header")
        if metric > 1:
            self.take(4, "the metric argument")
        return d, ntotal


def check_faiss_layout(data: bytes, path: Path, index_type: str, dimension: int, ntotal: int) -> None:
    """Check a FAISS file's types, dimension, count and every length field before FAISS reads it.

    posrag writes three layouts: ``IndexIDMap2(IndexFlatIP)``, ``IndexIDMap2(IndexHNSWFlat)`` and
    ``IndexIVFFlat``. A file of another type, or one whose header disagrees with ``config.json``, or whose
    length fields claim more bytes than the file holds, is an :class:`IndexCorruptedError`.
    """
    reader = _Reader(data, path)

    def expect(d: int, n: int, what: str, *, n_expected: int | None = ntotal) -> None:
        if d != dimension:
            raise corrupt(path, f"the {what} has dimension {d} but {CONFIG_FILE} records {dimension}")
        if n_expected is not None and n != n_expected:
            raise corrupt(
                path, f"the {what} holds {n} vectors but {CONFIG_FILE} and the documents account for {ntotal}"
            )

    def flat(what: str, n_expected: int | None = ntotal) -> int:
        d, n = reader.header("IxFI", what)
        expect(d, n, what, n_expected=n_expected)
        if reader.vector(4, f"the {what} vectors") != n * d:
            raise corrupt(path, f"the {what} stores a vector count other than its header's {n}")
        return n

    if index_type in ("flat", "hnsw"):
        expect(*reader.header("IxM2", "id map"), "id map")
        if index_type == "flat":
            flat("flat index")
        else:
            expect(*reader.header("IHNf", "HNSW index"), "HNSW index")
            for item, what in ((8, "probabilities"), (4, "neighbour counts"), (4, "levels")):
                reader.vector(item, f"the HNSW {what}")
            reader.vector(8, "the HNSW offsets")
            reader.vector(4, "the HNSW neighbours")
            reader.take(20, "the HNSW parameters")
            flat("HNSW storage")
        if reader.vector(8, "the id map") != ntotal:
            raise corrupt(path, f"the id map does not hold {ntotal} ids")
    elif index_type == "ivf":
        expect(*reader.header("IwFl", "IVF index"), "IVF index")
        nlist, _ = reader.unpack("QQ", "the IVF list count")
        flat("IVF quantizer", n_expected=nlist)
        kind = reader.unpack("B", "the IVF direct map type")
        if kind not in (0, 1):
            raise corrupt(path, f"the IVF direct map has type {kind}, not one posrag writes")
        reader.vector(8, "the IVF direct map")
        if reader.take(4, "the inverted lists type") != b"ilar":
            raise corrupt(path, "the IVF index's inverted lists are not of the array kind posrag writes")
        lists, code_size = reader.unpack("QQ", "the inverted lists header")
        if lists != nlist or code_size != 4 * dimension:
            raise corrupt(path, f"the inverted lists ({lists} of {code_size}-byte codes) do not match the index")
        sizes = _list_sizes(reader, nlist, path)
        if sum(sizes) != ntotal:
            raise corrupt(path, f"the inverted lists hold {sum(sizes)} vectors but {ntotal} are recorded")
        for size in sizes:
            if size:
                reader.take(size * code_size, "an inverted list's codes")
                reader.take(size * 8, "an inverted list's ids")
    else:  # pragma: no cover - options are validated before
        raise corrupt(path, f"unknown index type {index_type!r}")
    if reader.pos != len(data):
        raise corrupt(path, f"{len(data) - reader.pos} unexpected bytes follow the FAISS index")


def _list_sizes(reader: _Reader, nlist: int, path: Path) -> list[int]:
    kind = reader.take(4, "the inverted list sizes type")
    if kind == b"full":
        start = reader.pos
        if reader.vector(8, "the inverted list sizes") != nlist:
            raise corrupt(path, "the inverted list sizes do not match the list count")
        return list(struct.unpack(f"<{nlist}Q", reader.data[start + 8 : reader.pos]))
    if kind == b"sprs":
        start = reader.pos
        entries = reader.vector(8, "the inverted list sizes")
        if entries % 2:
            raise corrupt(path, "the sparse inverted list sizes are not (list, size) pairs")
        values = struct.unpack(f"<{entries}Q", reader.data[start + 8 : reader.pos])
        sizes = [0] * nlist
        for number, size in zip(values[::2], values[1::2], strict=True):
            if number >= nlist:
                raise corrupt(path, f"an inverted list number {number} is not below the list count {nlist}")
            sizes[number] = size
        return sizes
    raise corrupt(path, f"the inverted list sizes have type {kind!r}, not one FAISS writes")


__all__ = [
    "CONFIG_FILE",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "FileRecord",
    "StoredConfig",
    "check_faiss_layout",
    "parse_config",
    "parse_documents",
]
