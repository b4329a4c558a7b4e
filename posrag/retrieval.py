"""A document index over sentence-transformer embeddings in FAISS: build, add, delete, search, save, load.

Scores are cosine similarities (higher is better): vectors are L2-normalized and searched by inner product,
never reported as raw distances. Three index types, chosen at build time:

* ``"flat"`` (default): exact search, ``IndexIDMap2(IndexFlatIP)``. Right up to a few hundred thousand
  documents on a CPU.
* ``"hnsw"``: approximate graph search, ``IndexIDMap2(IndexHNSWFlat)``. FAISS cannot remove vectors from an
  HNSW graph, so :meth:`DocumentIndex.delete` drops the document and leaves a *tombstone*: the vector stays
  in the graph (still used for navigation) and an ``IDSelector`` excludes it from every search. When
  tombstones outnumber live documents the graph is rebuilt from the live vectors; :meth:`~DocumentIndex.compact`
  does that on demand.
* ``"ivf"``: approximate inverted-file search, ``IndexIVFFlat``. It is trained on the first batch added
  (build it from the whole corpus); ``ivf_nlist=None`` picks a list count that batch can train, an explicit
  ``ivf_nlist`` larger than the batch is a :class:`~posrag.errors.ConfigurationError`.

Persistence never uses pickle: a directory holds the FAISS file (``faiss.write_index``), the documents as
JSON, and ``config.json`` (format version, embedder name and dimension, index options, counts, file sizes
and SHA-256). ``config.json`` is the commit record, replaced atomically as the last step of a save, so an
index on disk is either the old one or the new one, whatever happens mid-save; :meth:`DocumentIndex.load`
checks all of it and raises :class:`~posrag.errors.IndexCorruptedError` rather than return a partial index.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import shutil
import tempfile
import threading
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, get_args

import faiss
import numpy as np

from posrag.documents import ScoredDocument
from posrag.errors import ConfigurationError, IndexCorruptedError
from posrag.models import embedder_name, load_embedder

IndexType = Literal["flat", "hnsw", "ivf"]
INDEX_TYPES: tuple[str, ...] = get_args(IndexType)

#: Written into ``config.json``; a directory without it is not a posrag index.
FORMAT_NAME = "posrag.DocumentIndex"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"

#: Batches at least this large get the embedder's progress bar unless told otherwise.
PROGRESS_BAR_MIN_TEXTS = 256

_INDEX_PREFIX, _INDEX_SUFFIX = "index-", ".faiss"
_DOCS_PREFIX, _DOCS_SUFFIX = "documents-", ".json"
_CONFIG_TMP_PREFIX = ".config.json.tmp-"


class Embedder(Protocol):
    """What posrag needs of an embedder: sentence-transformers' ``encode``."""

    def encode(self, sentences: list[str], **kwargs: Any) -> Any: ...


@dataclass(frozen=True)
class _IndexOptions:
    """The FAISS index type and its knobs, validated once and persisted in ``config.json``."""

    index_type: str = "flat"
    hnsw_m: int = 32
    hnsw_ef_search: int = 64
    ivf_nlist: int | None = None
    ivf_nprobe: int = 8

    def __post_init__(self) -> None:
        if self.index_type not in INDEX_TYPES:
            raise ConfigurationError(
                f"index_type must be one of {', '.join(map(repr, INDEX_TYPES))}; got {self.index_type!r}. "
                "Use 'flat' for exact search, 'hnsw' or 'ivf' for large corpora."
            )
        for name, minimum in (("hnsw_m", 2), ("hnsw_ef_search", 1), ("ivf_nprobe", 1)):
            value = getattr(self, name)
            if not _is_int(value) or value < minimum:
                raise ConfigurationError(f"{name} must be an integer >= {minimum}; got {value!r}.")
        if self.ivf_nlist is not None and (not _is_int(self.ivf_nlist) or self.ivf_nlist < 1):
            raise ConfigurationError(
                f"ivf_nlist must be a positive integer or None (chosen from the corpus size); got {self.ivf_nlist!r}."
            )


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _auto_nlist(n: int) -> int:
    """About 4·sqrt(n) inverted lists, but never fewer than 39 training vectors per list (FAISS's minimum)."""
    return max(1, min(int(4 * math.sqrt(n)), n // 39))


class _ReadWriteLock:
    """Many concurrent searches, or one writer (add, delete, compact); waiting writers go first."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writing = False
        self._writers_waiting = 0

    @contextlib.contextmanager
    def read(self) -> Iterator[None]:
        with self._cond:
            while self._writing or self._writers_waiting:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if not self._readers:
                    self._cond.notify_all()

    @contextlib.contextmanager
    def write(self) -> Iterator[None]:
        with self._cond:
            self._writers_waiting += 1
            try:
                while self._writing or self._readers:
                    self._cond.wait()
            finally:
                self._writers_waiting -= 1
            self._writing = True
        try:
            yield
        finally:
            with self._cond:
                self._writing = False
                self._cond.notify_all()


class DocumentIndex:
    """Documents embedded with a sentence-transformer and searched in FAISS by cosine similarity.

    ``embedder=None`` loads the packaged all-MiniLM-L6-v2; any object with a sentence-transformers-like
    ``encode(texts, normalize_embeddings=..., ...)`` works. The FAISS index is created on the first
    :meth:`add` (IVF is trained on that batch). Searches may run concurrently from many threads; ``add``,
    ``delete`` and ``compact`` take an exclusive lock.
    """

    def __init__(
        self,
        embedder: Embedder | None = None,
        *,
        index_type: IndexType = "flat",
        hnsw_m: int = 32,
        hnsw_ef_search: int = 64,
        ivf_nlist: int | None = None,
        ivf_nprobe: int = 8,
        batch_size: int = 32,
    ) -> None:
        self._options = _IndexOptions(index_type, hnsw_m, hnsw_ef_search, ivf_nlist, ivf_nprobe)
        if not _is_int(batch_size) or batch_size < 1:
            raise ConfigurationError(f"batch_size must be a positive integer; got {batch_size!r}.")
        self.embedder: Embedder = embedder if embedder is not None else load_embedder()
        if not callable(getattr(self.embedder, "encode", None)):
            raise ConfigurationError(
                f"embedder must have an encode(texts, ...) method like sentence-transformers; got "
                f"{type(self.embedder).__name__}. Pass a SentenceTransformer or None for the packaged default."
            )
        self.batch_size = int(batch_size)
        self._index: faiss.Index | None = None
        self._dimension: int | None = None
        self._docs: dict[int, ScoredDocument] = {}  # FAISS label -> document (score None)
        self._labels: dict[str, int] = {}  # document id -> FAISS label
        self._tombstones: set[int] = set()  # HNSW only: labels deleted but still in the graph
        self._next_label = 0
        self._exclude: tuple[Any, Any] | None = None  # HNSW: (IDSelectorBatch, IDSelectorNot), kept alive
        self._lock = _ReadWriteLock()

    @classmethod
    def from_texts(
        cls,
        texts: Sequence[str],
        metadatas: Sequence[Mapping[str, Any]] | None = None,
        ids: Sequence[str] | None = None,
        *,
        embedder: Embedder | None = None,
        index_type: IndexType = "flat",
        hnsw_m: int = 32,
        hnsw_ef_search: int = 64,
        ivf_nlist: int | None = None,
        ivf_nprobe: int = 8,
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
    ) -> DocumentIndex:
        """Embed ``texts`` and index them; ``ids`` default to random hex strings."""
        if not isinstance(texts, str) and isinstance(texts, Iterable):
            texts = list(texts)
        if not texts:
            raise ConfigurationError(
                "from_texts needs at least one text; got an empty list. To start empty, create "
                "DocumentIndex(embedder=...) and call add(...) later."
            )
        index = cls(
            embedder,
            index_type=index_type,
            hnsw_m=hnsw_m,
            hnsw_ef_search=hnsw_ef_search,
            ivf_nlist=ivf_nlist,
            ivf_nprobe=ivf_nprobe,
            batch_size=batch_size,
        )
        index.add(texts, metadatas, ids, show_progress_bar=show_progress_bar)
        return index

    # ------------------------------------------------------------------------------------------- reading

    @property
    def index_type(self) -> str:
        return self._options.index_type

    @property
    def dimension(self) -> int | None:
        """The embedding dimension, ``None`` until the first document is added."""
        return self._dimension

    @property
    def embedder_name(self) -> str:
        return embedder_name(self.embedder)

    @property
    def ids(self) -> list[str]:
        """Ids of the indexed documents, in insertion order."""
        with self._lock.read():
            return [doc.id for doc in self._docs.values()]  # type: ignore[misc]

    def documents(self) -> list[ScoredDocument]:
        """The indexed documents (``score=None``), in insertion order."""
        with self._lock.read():
            return list(self._docs.values())

    def __len__(self) -> int:
        return len(self._docs)

    def __contains__(self, doc_id: object) -> bool:
        return doc_id in self._labels

    def __repr__(self) -> str:
        return (
            f"DocumentIndex({len(self)} documents, index_type={self.index_type!r}, "
            f"embedder={self.embedder_name!r}, dimension={self._dimension})"
        )

    def search(self, query: str, k: int = 4) -> list[ScoredDocument]:
        """The ``k`` documents most similar to ``query``, best first; ``score`` is the cosine similarity."""
        if not isinstance(query, str):
            raise ConfigurationError(
                f"query must be a string; got {type(query).__name__}. For many queries use search_many."
            )
        return self.search_many([query], k)[0]

    def search_many(self, queries: Sequence[str], k: int = 4) -> list[list[ScoredDocument]]:
        """:meth:`search` for a batch of queries, embedded and searched together."""
        if isinstance(queries, str):
            raise ConfigurationError("search_many takes a list of queries; for one query string use search.")
        queries = list(queries)
        if not all(isinstance(q, str) for q in queries):
            raise ConfigurationError("every query must be a string.")
        if not _is_int(k) or k < 1:
            raise ConfigurationError(f"k must be a positive integer (documents per query); got {k!r}.")
        if not queries or not self._docs:
            return [[] for _ in queries]
        vectors = self._encode(queries, show_progress_bar=False)
        with self._lock.read():
            live = len(self._docs)
            if self._index is None or live == 0:
                return [[] for _ in queries]
            self._check_dimension(vectors)
            top = min(int(k), live)
            scores, labels = self._index.search(vectors, top, params=self._search_params(top))
            results: list[list[ScoredDocument]] = []
            for row_scores, row_labels in zip(scores, labels, strict=True):
                row = []
                for score, label in zip(row_scores, row_labels, strict=True):
                    doc = self._docs.get(int(label))  # -1 (fewer hits) and tombstones are not in _docs
                    if doc is not None:
                        row.append(ScoredDocument(doc.text, doc.metadata, score=float(score), id=doc.id))
                results.append(row)
            return results

    def _search_params(self, k: int) -> faiss.SearchParameters | None:
        options = self._options
        if options.index_type == "hnsw":
            params = faiss.SearchParametersHNSW()
            params.efSearch = max(options.hnsw_ef_search, k)
            if self._exclude is not None:
                params.sel = self._exclude[1]
            return params
        if options.index_type == "ivf":
            params = faiss.SearchParametersIVF()
            params.nprobe = min(options.ivf_nprobe, self._index.nlist)  # type: ignore[union-attr]
            return params
        return None

    # ------------------------------------------------------------------------------------------- writing

    def add(
        self,
        texts: Sequence[str],
        metadatas: Sequence[Mapping[str, Any]] | None = None,
        ids: Sequence[str] | None = None,
        *,
        show_progress_bar: bool | None = None,
    ) -> list[str]:
        """Embed and index ``texts``; returns their ids. Metadata must be JSON-serializable (it is saved so)."""
        texts, metadatas, ids = self._validate_batch(texts, metadatas, ids)
        if not texts:
            return []
        with self._lock.read():
            self._check_new_ids(ids)  # fail before the (slow) embedding; checked again under the write lock
        if show_progress_bar is None:
            show_progress_bar = len(texts) >= PROGRESS_BAR_MIN_TEXTS
        vectors = self._encode(texts, show_progress_bar=show_progress_bar)
        with self._lock.write():
            self._check_new_ids(ids)
            if self._index is None:
                self._index = self._new_faiss_index(vectors)
                self._dimension = int(vectors.shape[1])
            self._check_dimension(vectors)
            labels = np.arange(self._next_label, self._next_label + len(texts), dtype=np.int64)
            self._index.add_with_ids(vectors, labels)
            self._next_label += len(texts)
            for label, text, metadata, doc_id in zip(labels.tolist(), texts, metadatas, ids, strict=True):
                self._docs[label] = ScoredDocument(text, metadata, id=doc_id)
                self._labels[doc_id] = label
        return ids

    def delete(self, ids: str | Iterable[str]) -> None:
        """Remove documents by id; an unknown id is an error and then nothing is removed."""
        ids = [ids] if isinstance(ids, str) else list(ids)
        with self._lock.write():
            missing = [i for i in ids if i not in self._labels]
            if missing:
                raise ConfigurationError(
                    f"Cannot delete {len(missing)} unknown id(s): {_preview(missing)}. Nothing was deleted; "
                    "check `doc_id in index` or `index.ids` first."
                )
            labels = list(dict.fromkeys(self._labels[i] for i in ids))
            if not labels:
                return
            if self.index_type == "hnsw":
                self._tombstones.update(labels)
            else:
                assert self._index is not None
                self._index.remove_ids(np.asarray(labels, dtype=np.int64))
            for label in labels:
                doc = self._docs.pop(label)
                del self._labels[doc.id]  # type: ignore[arg-type]
            if self._tombstones and len(self._tombstones) > len(self._docs):
                self._compact_locked()
            else:
                self._refresh_exclusion()

    def compact(self) -> None:
        """Rebuild an HNSW graph without its deleted vectors (a no-op for the other index types)."""
        with self._lock.write():
            self._compact_locked()

    def _compact_locked(self) -> None:
        if self.index_type != "hnsw" or not self._tombstones or self._index is None:
            return
        labels = np.fromiter(self._docs.keys(), dtype=np.int64, count=len(self._docs))
        vectors = self._index.reconstruct_batch(labels) if len(labels) else None
        index = self._new_faiss_index(np.zeros((0, int(self._dimension or 0)), dtype=np.float32))
        if vectors is not None:
            index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), labels)
        self._index = index
        self._tombstones.clear()
        self._refresh_exclusion()

    def _refresh_exclusion(self) -> None:
        if not self._tombstones:
            self._exclude = None
            return
        batch = faiss.IDSelectorBatch(np.fromiter(self._tombstones, dtype=np.int64))
        self._exclude = (batch, faiss.IDSelectorNot(batch))

    def _new_faiss_index(self, vectors: np.ndarray) -> faiss.Index:
        dim = int(vectors.shape[1])
        options = self._options
        if options.index_type == "flat":
            return faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        if options.index_type == "hnsw":
            return faiss.IndexIDMap2(faiss.IndexHNSWFlat(dim, options.hnsw_m, faiss.METRIC_INNER_PRODUCT))
        n = len(vectors)
        nlist = options.ivf_nlist if options.ivf_nlist is not None else _auto_nlist(n)
        if n < nlist:
            raise ConfigurationError(
                f"index_type='ivf' with ivf_nlist={nlist} needs at least {nlist} vectors to train its lists; "
                f"the first batch has {n}. Build from the whole corpus (DocumentIndex.from_texts), lower "
                "ivf_nlist (or leave it None to size it from the corpus), or use index_type='flat' for exact "
                "search, which is fast enough for small corpora."
            )
        # IVF takes external ids natively and can remove them; IndexIDMap2 around it would not remove safely.
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
        if options.ivf_nlist is None:
            index.cp.min_points_per_centroid = 1  # nlist was sized for this batch; no FAISS warning
        index.train(vectors)
        return index

    # ------------------------------------------------------------------------------------------- helpers

    def _encode(self, texts: list[str], *, show_progress_bar: bool) -> np.ndarray:
        raw = self.embedder.encode(
            texts,
            batch_size=self.batch_size,
            show_progress_bar=show_progress_bar,
            normalize_embeddings=True,
            convert_to_numpy=True,
        )
        vectors = np.ascontiguousarray(np.asarray(raw, dtype=np.float32))
        if vectors.ndim != 2 or vectors.shape[0] != len(texts) or vectors.shape[1] == 0:
            raise ConfigurationError(
                f"The embedder {self.embedder_name!r} returned an array of shape {tuple(vectors.shape)} for "
                f"{len(texts)} texts; expected ({len(texts)}, dimension). Its encode(list[str]) must return one "
                "vector per text."
            )
        if not np.isfinite(vectors).all():
            raise ConfigurationError(f"The embedder {self.embedder_name!r} returned NaN or infinite values.")
        faiss.normalize_L2(vectors)  # inner product == cosine even if encode ignored normalize_embeddings
        return vectors

    def _check_dimension(self, vectors: np.ndarray) -> None:
        if self._dimension is not None and vectors.shape[1] != self._dimension:
            raise ConfigurationError(
                f"The embedder {self.embedder_name!r} now returns {vectors.shape[1]}-dimensional vectors but "
                f"this index holds {self._dimension}-dimensional ones. Use the embedder the index was built with."
            )

    def _check_new_ids(self, ids: list[str]) -> None:
        taken = [i for i in ids if i in self._labels]
        if taken:
            raise ConfigurationError(
                f"{len(taken)} id(s) are already in the index: {_preview(taken)}. Use new ids, or delete the "
                "old documents first."
            )

    @staticmethod
    def _validate_batch(
        texts: Sequence[str],
        metadatas: Sequence[Mapping[str, Any]] | None,
        ids: Sequence[str] | None,
    ) -> tuple[list[str], list[dict[str, Any]], list[str]]:
        if isinstance(texts, str) or not isinstance(texts, Iterable):
            raise ConfigurationError(
                f"texts must be a list of strings; got {type(texts).__name__}. Wrap a single text: [text]."
            )
        texts = list(texts)
        for position, text in enumerate(texts):
            if not isinstance(text, str) or not text.strip():
                raise ConfigurationError(
                    f"texts[{position}] is {text!r}; every text must be a non-empty string (an empty document "
                    "cannot be retrieved meaningfully). Drop it or give it content."
                )
        n = len(texts)
        if metadatas is None:
            metadata_list: list[dict[str, Any]] = [{} for _ in texts]
        else:
            if isinstance(metadatas, Mapping):
                raise ConfigurationError("metadatas must be a list with one mapping per text, not one mapping.")
            metadata_list = []
            for position, metadata in enumerate(metadatas):
                if not isinstance(metadata, Mapping):
                    raise ConfigurationError(
                        f"metadatas[{position}] is a {type(metadata).__name__}; each must be a mapping."
                    )
                metadata_list.append(dict(metadata))
            if len(metadata_list) != n:
                raise ConfigurationError(
                    f"Got {n} texts but {len(metadata_list)} metadatas; pass one metadata mapping per text "
                    "(or none at all)."
                )
        if ids is None:
            id_list = [uuid.uuid4().hex for _ in texts]
        else:
            if isinstance(ids, str):
                raise ConfigurationError("ids must be a list of strings, one per text, not a single string.")
            id_list = list(ids)
            if len(id_list) != n:
                raise ConfigurationError(f"Got {n} texts but {len(id_list)} ids; pass one id per text.")
            bad = [i for i in id_list if not isinstance(i, str) or not i]
            if bad:
                raise ConfigurationError(f"ids must be non-empty strings; got {_preview(bad)}.")
            duplicates = [i for i, count in Counter(id_list).items() if count > 1]
            if duplicates:
                raise ConfigurationError(f"Duplicate ids in this batch: {_preview(duplicates)}.")
        for doc_id, metadata in zip(id_list, metadata_list, strict=True):
            try:
                json.dumps(metadata)
            except (TypeError, ValueError) as exc:
                raise ConfigurationError(
                    f"The metadata of document {doc_id!r} is not JSON-serializable ({exc}). posrag saves "
                    "metadata as JSON, never pickle: use str, int, float, bool, None, lists and dicts."
                ) from exc
        return texts, metadata_list, id_list

    # ------------------------------------------------------------------------------------------- persistence

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the index to directory ``path`` atomically (see the module docstring); returns the path.

        A new directory is written next to ``path`` and renamed into place. An existing index is updated by
        writing new data files beside the old ones and replacing ``config.json`` last, so a failed or killed
        save leaves the previous index loadable; stale files are removed by the next successful save.
        """
        target = Path(path)
        with self._lock.read():
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
                try:
                    self._write_snapshot(staging)
                    os.rename(staging, target)
                except BaseException:
                    shutil.rmtree(staging, ignore_errors=True)
                    raise
                _fsync_dir(target.parent)
                return target
            _check_overwritable(target)
            self._write_snapshot(target)
        _remove_stale_files(target)
        return target

    def _write_snapshot(self, directory: Path) -> None:
        """Write data files under fresh names, then commit by atomically replacing ``config.json``."""
        generation = uuid.uuid4().hex[:16]
        index_name = f"{_INDEX_PREFIX}{generation}{_INDEX_SUFFIX}"
        docs_name = f"{_DOCS_PREFIX}{generation}{_DOCS_SUFFIX}"
        config_tmp = directory / f"{_CONFIG_TMP_PREFIX}{generation}"
        written: list[Path] = []
        try:
            files: dict[str, dict[str, Any] | None] = {"index": None}
            if self._index is not None:
                written.append(directory / index_name)
                faiss.write_index(self._index, str(directory / index_name))
                _fsync_file(directory / index_name)
                files["index"] = _file_record(directory / index_name)
            written.append(directory / docs_name)
            _write_json(
                directory / docs_name,
                {
                    "documents": [
                        {"label": label, "id": doc.id, "text": doc.text, "metadata": dict(doc.metadata)}
                        for label, doc in self._docs.items()
                    ],
                    "tombstones": sorted(self._tombstones),
                },
            )
            files["documents"] = _file_record(directory / docs_name)
            config = {
                "format": FORMAT_NAME,
                "format_version": FORMAT_VERSION,
                "embedder": self.embedder_name,
                "dimension": self._dimension,
                "metric": "cosine",
                "options": {
                    **asdict(self._options),
                    "ivf_nlist": getattr(self._index, "nlist", self._options.ivf_nlist),
                },
                "count": len(self._docs),
                "next_label": self._next_label,
                "files": files,
            }
            written.append(config_tmp)
            _write_json(config_tmp, config)
            os.replace(config_tmp, directory / CONFIG_FILE)  # the commit point
        except BaseException:
            for file in written:
                with contextlib.suppress(OSError):
                    file.unlink()
            raise
        _fsync_dir(directory)

    @classmethod
    def load(cls, path: str | os.PathLike[str], embedder: Embedder | None = None) -> DocumentIndex:
        """Load an index written by :meth:`save`, checking it against ``embedder`` (default: the packaged one).

        Raises :class:`ConfigurationError` if ``embedder`` differs from the one the index was built with, and
        :class:`IndexCorruptedError` if any file is missing, truncated, foreign or inconsistent.
        """
        directory = Path(path)
        if not directory.is_dir():
            raise ConfigurationError(
                f"No posrag index at {directory}: "
                f"{'it is a file, not a directory' if directory.exists() else 'the directory does not exist'}. "
                "Pass the directory given to DocumentIndex.save."
            )
        config_path = directory / CONFIG_FILE
        if not config_path.is_file():
            raise IndexCorruptedError(
                f"{directory} has no {CONFIG_FILE}, so it is not a posrag index (DocumentIndex.save writes one). "
                "Rebuild it with DocumentIndex.from_texts(...) and save it again."
            )
        config = _read_json(config_path)
        _check_format(config, config_path)
        options = _parse_options(config, config_path)

        embedder = embedder if embedder is not None else load_embedder()
        _check_embedder(embedder, config, directory)

        files = config["files"]
        documents_file = _verified_file(directory, files.get("documents"), config_path, "documents")
        payload = _read_json(documents_file)
        docs, tombstones = _parse_documents(payload, documents_file)
        if len(docs) != config["count"]:
            raise IndexCorruptedError(
                f"{config_path} records {config['count']} documents but {documents_file} holds {len(docs)}. "
                "The files come from different saves; restore a consistent copy or rebuild the index."
            )

        index = cls(embedder, **asdict(options))
        dimension = config["dimension"]
        if files.get("index") is None:
            if docs or tombstones or dimension is not None:
                raise IndexCorruptedError(
                    f"{config_path} lists no FAISS file but {len(docs)} documents (dimension {dimension}). "
                    "Restore a complete copy of the index directory or rebuild it."
                )
        else:
            index_file = _verified_file(directory, files["index"], config_path, "index")
            faiss_index = _read_faiss(index_file)
            _check_faiss(faiss_index, index_file, options.index_type, dimension, docs, tombstones)
            index._index = faiss_index
            index._dimension = int(dimension)
        next_label = config.get("next_label")
        labels = [label for label, _ in docs] + sorted(tombstones)
        if not _is_int(next_label) or (labels and next_label <= max(labels)):
            raise IndexCorruptedError(
                f"{config_path} has next_label={next_label!r}, not above every stored label; the files are "
                "inconsistent. Restore a complete copy of the index directory or rebuild it."
            )
        index._next_label = int(next_label)
        for label, doc in docs:
            index._docs[label] = doc
            index._labels[doc.id] = label  # type: ignore[index]
        index._tombstones = set(tombstones)
        index._refresh_exclusion()
        return index


# ----------------------------------------------------------------------------------------- file helpers


def _preview(values: Sequence[object], limit: int = 5) -> str:
    shown = ", ".join(repr(v) for v in values[:limit])
    return shown + (f" and {len(values) - limit} more" if len(values) > limit else "")


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def _fsync_dir(path: Path) -> None:
    """Make a rename durable (POSIX); directories cannot be opened this way on Windows."""
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


def _write_json(path: Path, data: Any) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(data, handle, ensure_ascii=False)
        handle.flush()
        os.fsync(handle.fileno())


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _file_record(path: Path) -> dict[str, Any]:
    return {"name": path.name, "size": path.stat().st_size, "sha256": _sha256(path)}


def _is_our_file(name: str) -> bool:
    return (
        (name.startswith(_INDEX_PREFIX) and name.endswith(_INDEX_SUFFIX))
        or (name.startswith(_DOCS_PREFIX) and name.endswith(_DOCS_SUFFIX))
        or name.startswith(_CONFIG_TMP_PREFIX)
    )


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
    """Delete data files of earlier (or interrupted) saves that ``config.json`` no longer references."""
    config = json.loads((directory / CONFIG_FILE).read_text(encoding="utf-8"))
    keep = {record["name"] for record in config["files"].values() if record}
    for entry in directory.iterdir():
        if entry.is_file() and _is_our_file(entry.name) and entry.name not in keep:
            with contextlib.suppress(OSError):
                entry.unlink()


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise IndexCorruptedError(
            f"{path} is not valid JSON ({exc}); the index is truncated or the file was replaced. Restore a "
            "complete copy of the index directory, or rebuild it with DocumentIndex.from_texts(...).save(...)."
        ) from exc


def _corrupt(path: Path, problem: str) -> IndexCorruptedError:
    return IndexCorruptedError(
        f"{path}: {problem}. Restore a complete copy of the index directory, or rebuild it with "
        "DocumentIndex.from_texts(...) and save it again."
    )


def _check_format(config: Any, config_path: Path) -> None:
    if not isinstance(config, dict) or config.get("format") != FORMAT_NAME:
        found = config.get("format") if isinstance(config, dict) else type(config).__name__
        raise _corrupt(config_path, f"not a posrag index config (format {found!r}, expected {FORMAT_NAME!r})")
    version = config.get("format_version")
    if not _is_int(version):
        raise _corrupt(config_path, f"format_version is {version!r}, not an integer")
    if version > FORMAT_VERSION:
        raise IndexCorruptedError(
            f"{config_path} has index format version {version}, newer than this posrag reads "
            f"({FORMAT_VERSION}). Upgrade posrag (pip install -U posrag) to load it."
        )
    expected = {"embedder": str, "options": dict, "count": int, "files": dict}
    for key, kind in expected.items():
        if not isinstance(config.get(key), kind):
            raise _corrupt(config_path, f"{key!r} is missing or not a {kind.__name__}")
    dimension = config.get("dimension")
    if dimension is not None and (not _is_int(dimension) or dimension < 1):
        raise _corrupt(config_path, f"dimension is {dimension!r}")


def _parse_options(config: dict[str, Any], config_path: Path) -> _IndexOptions:
    known = set(_IndexOptions.__dataclass_fields__)
    try:
        return _IndexOptions(**{k: v for k, v in config["options"].items() if k in known})
    except (ConfigurationError, TypeError) as exc:
        raise _corrupt(config_path, f"invalid index options ({exc})") from exc


def _embedding_dimension(embedder: Embedder) -> int:
    for attribute in ("get_embedding_dimension", "get_sentence_embedding_dimension"):
        method = getattr(embedder, attribute, None)
        if callable(method):
            value = method()
            if value:
                return int(value)
    probe = np.asarray(embedder.encode(["posrag dimension probe"], convert_to_numpy=True))
    return int(probe.shape[-1])


def _check_embedder(embedder: Embedder, config: dict[str, Any], directory: Path) -> None:
    """The embedder given at load time must be the one the index was built with (name and dimension)."""
    stored_name, stored_dim = config["embedder"], config["dimension"]
    name = embedder_name(embedder)
    dimension = _embedding_dimension(embedder) if stored_dim is not None else None
    if name != stored_name or dimension != stored_dim:
        raise ConfigurationError(
            f"The index at {directory} was built with embedder {stored_name!r} (dimension {stored_dim}), but "
            f"the embedder given is {name!r} (dimension {dimension if dimension is not None else 'unchecked'}). "
            "Queries embedded by another model would be compared with the wrong vectors. Load with the "
            f"original embedder, e.g. DocumentIndex.load(path, embedder=load_embedder({stored_name!r})), or "
            "rebuild the index with the new one."
        )


def _verified_file(directory: Path, record: Any, config_path: Path, role: str) -> Path:
    if not isinstance(record, dict) or not all(k in record for k in ("name", "size", "sha256")):
        raise _corrupt(config_path, f"the {role} file entry is missing or malformed ({record!r})")
    name = str(record["name"])
    if Path(name).name != name:
        raise _corrupt(config_path, f"the {role} file name {name!r} is not a plain file name")
    path = directory / name
    if not path.is_file():
        raise _corrupt(path, f"the {role} file listed in {CONFIG_FILE} is missing")
    size = path.stat().st_size
    if size != record["size"]:
        raise _corrupt(
            path, f"the file is {size} bytes but {CONFIG_FILE} recorded {record['size']} (truncated or replaced)"
        )
    if _sha256(path) != record["sha256"]:
        raise _corrupt(path, f"the contents do not match the SHA-256 recorded in {CONFIG_FILE} (modified)")
    return path


def _parse_documents(payload: Any, path: Path) -> tuple[list[tuple[int, ScoredDocument]], list[int]]:
    if not isinstance(payload, dict) or not isinstance(payload.get("documents"), list):
        raise _corrupt(path, "expected an object with a 'documents' list")
    tombstones = payload.get("tombstones", [])
    if not isinstance(tombstones, list) or not all(_is_int(t) for t in tombstones):
        raise _corrupt(path, "'tombstones' must be a list of integers")
    docs: list[tuple[int, ScoredDocument]] = []
    for position, record in enumerate(payload["documents"]):
        if (
            not isinstance(record, dict)
            or not _is_int(record.get("label"))
            or not isinstance(record.get("id"), str)
            or not isinstance(record.get("text"), str)
            or not isinstance(record.get("metadata"), dict)
        ):
            raise _corrupt(path, f"document {position} is malformed (needs label, id, text, metadata)")
        docs.append((record["label"], ScoredDocument(record["text"], record["metadata"], id=record["id"])))
    labels = [label for label, _ in docs] + tombstones
    if len(set(labels)) != len(labels) or len({doc.id for _, doc in docs}) != len(docs):
        raise _corrupt(path, "document labels or ids are duplicated")
    return docs, tombstones


def _read_faiss(path: Path) -> faiss.Index:
    try:
        return faiss.read_index(str(path))
    except RuntimeError as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise _corrupt(path, f"FAISS cannot read it ({first_line})") from exc


def _check_faiss(
    index: faiss.Index,
    path: Path,
    index_type: str,
    dimension: int | None,
    docs: list[tuple[int, ScoredDocument]],
    tombstones: list[int],
) -> None:
    expected_class = faiss.IndexIVFFlat if index_type == "ivf" else faiss.IndexIDMap2
    if not isinstance(index, expected_class):
        raise _corrupt(
            path, f"holds a {type(index).__name__}, not the {expected_class.__name__} of a {index_type!r} index"
        )
    if index.d != dimension:
        raise _corrupt(path, f"vectors have dimension {index.d} but {CONFIG_FILE} records {dimension}")
    stored = len(docs) + len(tombstones)
    if index.ntotal != stored:
        raise _corrupt(
            path,
            f"holds {index.ntotal} vectors but the documents file accounts for {stored} (files from different saves)",
        )
    if isinstance(index, faiss.IndexIDMap2):
        ids = set(faiss.vector_to_array(index.id_map).tolist())
        if ids != {label for label, _ in docs} | set(tombstones):
            raise _corrupt(path, "its vector ids do not match the documents file (files from different saves)")


__all__ = ["FORMAT_VERSION", "INDEX_TYPES", "DocumentIndex", "Embedder", "IndexType"]
