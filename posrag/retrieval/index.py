"""The document index: sentence-transformer embeddings in FAISS, searched by cosine similarity.

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

Arguments are checked in :mod:`posrag.retrieval.validation`; saving and loading live in
:mod:`posrag.retrieval.persistence`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, Protocol

import faiss
import numpy as np

from posrag.documents import ScoredDocument
from posrag.errors import ConfigurationError
from posrag.retrieval.embedders import embedder_name, load_embedder
from posrag.retrieval.format import FORMAT_VERSION
from posrag.retrieval.options import INDEX_TYPES, IndexOptions, IndexType, check_int, new_faiss_index
from posrag.retrieval.persistence import Snapshot, load_snapshot, save_snapshot
from posrag.retrieval.rwlock import ReadWriteLock
from posrag.retrieval.validation import check_batch, check_delete_ids, check_k, check_queries, preview

#: Batches at least this large get the embedder's progress bar unless told otherwise.
PROGRESS_BAR_MIN_TEXTS = 256


class Embedder(Protocol):
    """What posrag needs of an embedder: sentence-transformers' ``encode``."""

    def encode(self, sentences: list[str], **kwargs: Any) -> Any: ...


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
        self._options = IndexOptions(index_type, hnsw_m, hnsw_ef_search, ivf_nlist, ivf_nprobe)
        check_int("batch_size", batch_size, 1, fix="It is the number of texts the embedder encodes at once.")
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
        self._lock = ReadWriteLock()

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
        if isinstance(texts, (str, bytes)) or not isinstance(texts, Iterable):
            raise ConfigurationError(
                f"texts must be a list of strings; got {type(texts).__name__}. Wrap a single text: [text]."
            )
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
        queries = check_queries(queries)
        k = check_k(k)
        if not queries or not self._docs:
            return [[] for _ in queries]
        vectors = self._encode(queries, show_progress_bar=False)
        with self._lock.read():
            live = len(self._docs)
            if self._index is None or live == 0:
                return [[] for _ in queries]
            self._check_dimension(vectors)
            top = min(k, live)
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
        texts, metadatas, ids = check_batch(texts, metadatas, ids)
        if show_progress_bar is not None and not isinstance(show_progress_bar, bool):
            raise ConfigurationError(
                f"show_progress_bar must be True, False or None (auto); got {show_progress_bar!r}."
            )
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
                self._index = new_faiss_index(self._options, vectors)
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
        ids = check_delete_ids(ids)
        with self._lock.write():
            missing = [i for i in ids if i not in self._labels]
            if missing:
                raise ConfigurationError(
                    f"Cannot delete {len(missing)} unknown id(s): {preview(missing)}. Nothing was deleted; "
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
        index = new_faiss_index(self._options, np.zeros((0, int(self._dimension or 0)), dtype=np.float32))
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
                f"{len(taken)} id(s) are already in the index: {preview(taken)}. Use new ids, or delete the "
                "old documents first."
            )

    # ------------------------------------------------------------------------------------------- persistence

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the index to directory ``path`` atomically; returns the path.

        Saves to one directory from several threads or processes run one at a time and the last complete one
        wins; a failed or killed save leaves the previous index loadable, and the next save removes what it
        left behind. See :mod:`posrag.retrieval.persistence`.
        """
        return save_snapshot(self._read_snapshot, path)

    @contextlib.contextmanager
    def _read_snapshot(self) -> Iterator[Snapshot]:
        """The index's state, held still (read lock) until the caller is done writing it."""
        with self._lock.read():
            yield self._snapshot()

    def _snapshot(self) -> Snapshot:
        return Snapshot(
            embedder=self.embedder_name,
            dimension=self._dimension,
            options=self._options,
            faiss_index=self._index,
            documents=list(self._docs.items()),
            tombstones=sorted(self._tombstones),
            next_label=self._next_label,
        )

    @classmethod
    def load(cls, path: str | os.PathLike[str], embedder: Embedder | None = None) -> DocumentIndex:
        """Load an index written by :meth:`save`, checking it against ``embedder`` (default: the packaged one).

        Raises :class:`ConfigurationError` if ``embedder`` differs from the one the index was built with, and
        :class:`IndexCorruptedError` if any file is missing, truncated, foreign or inconsistent.
        """
        snapshot, embedder = load_snapshot(path, embedder)
        index = cls(embedder, **asdict(snapshot.options))
        index._index = snapshot.faiss_index
        index._dimension = snapshot.dimension
        index._next_label = snapshot.next_label
        for label, doc in snapshot.documents:
            index._docs[label] = doc
            index._labels[doc.id] = label  # type: ignore[index]
        index._tombstones = set(snapshot.tombstones)
        index._refresh_exclusion()
        return index


__all__ = ["FORMAT_VERSION", "INDEX_TYPES", "DocumentIndex", "Embedder", "IndexType"]
