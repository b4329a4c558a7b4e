"""Document retrieval: a FAISS index over sentence-transformer embeddings, and its persistence.

* :mod:`posrag.retrieval.index`: :class:`DocumentIndex` (build, add, delete, search), guarded by the
  readers-writer lock of :mod:`posrag.retrieval.rwlock`.
* :mod:`posrag.retrieval.options` and :mod:`posrag.retrieval.validation`: the index type, its knobs and how
  each FAISS index is built; the checks of every argument.
* :mod:`posrag.retrieval.persistence` and :mod:`posrag.retrieval.format`: atomic, serialized saves and checked
  loads (JSON and FAISS files, never pickle).
"""

from __future__ import annotations

from posrag.retrieval.format import CONFIG_FILE, FORMAT_NAME, FORMAT_VERSION
from posrag.retrieval.index import PROGRESS_BAR_MIN_TEXTS, DocumentIndex, Embedder
from posrag.retrieval.options import INDEX_TYPES, IndexType

__all__ = [
    "CONFIG_FILE",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "INDEX_TYPES",
    "PROGRESS_BAR_MIN_TEXTS",
    "DocumentIndex",
    "Embedder",
    "IndexType",
]
