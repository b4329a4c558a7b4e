"""The FAISS index type and its knobs: validated once at construction and persisted in ``config.json``."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, get_args

import faiss
import numpy as np

from posrag.errors import ConfigurationError

IndexType = Literal["flat", "hnsw", "ivf"]
INDEX_TYPES: tuple[str, ...] = get_args(IndexType)

#: Upper bounds that keep a typo (or a forged config) from asking FAISS for absurd memory or time.
MAX_HNSW_M = 512
MAX_EF_SEARCH = 1 << 16
MAX_NLIST = 1 << 24


def is_int(value: object) -> bool:
    """An integer, numpy's included, but not a bool."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def check_int(name: str, value: object, minimum: int, maximum: int | None = None, *, fix: str = "") -> None:
    """Raise a :class:`ConfigurationError` naming ``name``, ``value`` and the range unless ``value`` lies in it."""
    if is_int(value) and value >= minimum and (maximum is None or value <= maximum):  # type: ignore[operator]
        return
    allowed = f"an integer >= {minimum}" if maximum is None else f"an integer from {minimum} to {maximum}"
    raise ConfigurationError(f"{name} must be {allowed}; got {value!r}.{' ' + fix if fix else ''}")


@dataclass(frozen=True)
class IndexOptions:
    """Which FAISS index to build, and its knobs (``ivf_nlist=None``: sized from the first batch)."""

    index_type: str = "flat"
    hnsw_m: int = 32
    hnsw_ef_search: int = 64
    ivf_nlist: int | None = None
    ivf_nprobe: int = 8

    def __post_init__(self) -> None:
        if not isinstance(self.index_type, str) or self.index_type not in INDEX_TYPES:
            raise ConfigurationError(
                f"index_type must be one of {', '.join(map(repr, INDEX_TYPES))}; got {self.index_type!r}. "
                "Use 'flat' for exact search, 'hnsw' or 'ivf' for large corpora."
            )
        check_int("hnsw_m", self.hnsw_m, 2, MAX_HNSW_M)
        check_int("hnsw_ef_search", self.hnsw_ef_search, 1, MAX_EF_SEARCH)
        check_int("ivf_nprobe", self.ivf_nprobe, 1, MAX_NLIST)
        if self.ivf_nlist is not None:
            check_int("ivf_nlist", self.ivf_nlist, 1, MAX_NLIST, fix="Or pass None to size it from the corpus.")


def auto_nlist(n: int) -> int:
    """About 4·sqrt(n) inverted lists, but never fewer than 39 training vectors per list (FAISS's minimum)."""
    return max(1, min(int(4 * math.sqrt(n)), n // 39))


def new_faiss_index(options: IndexOptions, vectors: np.ndarray) -> faiss.Index:
    """An empty FAISS index of ``options.index_type`` for the dimension of ``vectors`` (IVF: trained on them)."""
    dim = int(vectors.shape[1])
    if options.index_type == "flat":
        return faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
    if options.index_type == "hnsw":
        return faiss.IndexIDMap2(faiss.IndexHNSWFlat(dim, options.hnsw_m, faiss.METRIC_INNER_PRODUCT))
    n = len(vectors)
    nlist = options.ivf_nlist if options.ivf_nlist is not None else auto_nlist(n)
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


__all__ = ["INDEX_TYPES", "IndexOptions", "IndexType", "auto_nlist", "check_int", "is_int", "new_faiss_index"]
