"""A deterministic hashed bag-of-words embedder: sentence-transformers' ``encode`` in microseconds.

Cosine similarity between two texts grows with their shared words, so ranking tests have a known answer.
Hashing uses blake2b (stable across processes, unlike ``hash``).
"""

from __future__ import annotations

import hashlib
import re
import time
from typing import Any

import numpy as np


class HashingEmbedder:
    """Each word adds ±1 to one of ``dimension`` buckets; ``posrag_name`` is what indexes record."""

    def __init__(
        self, dimension: int = 256, name: str | None = None, *, normalizes: bool = True, delay_s: float = 0.0
    ) -> None:
        self.dimension = dimension
        self.posrag_name = name or f"hashing-bow-{dimension}"
        self.normalizes = normalizes  # False: ignore normalize_embeddings, like a careless custom embedder
        self.delay_s = delay_s  # a slow embedder, to show the async path does not block the event loop
        self.calls: list[dict[str, Any]] = []

    def __repr__(self) -> str:  # its whole configuration, as a sentence-transformer's repr gives its own
        return f"HashingEmbedder(dimension={self.dimension}, name={self.posrag_name!r}, normalizes={self.normalizes})"

    def encode(self, sentences: list[str], *, normalize_embeddings: bool = False, **kwargs: Any) -> np.ndarray:
        self.calls.append({"n": len(sentences), "normalize_embeddings": normalize_embeddings, **kwargs})
        if self.delay_s:
            time.sleep(self.delay_s)
        out = np.zeros((len(sentences), self.dimension), dtype=np.float32)
        for row, text in enumerate(sentences):
            for word in re.findall(r"\w+", text.lower()):
                digest = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")
                out[row, digest % self.dimension] += 1.0 if (digest >> 40) & 1 else -1.0
        if normalize_embeddings and self.normalizes:
            norms = np.linalg.norm(out, axis=1, keepdims=True)
            out = np.divide(out, norms, out=np.zeros_like(out), where=norms > 0)
        return out
