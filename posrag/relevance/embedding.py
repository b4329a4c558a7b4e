"""Relevance by embedding: the cosine similarity of the query to each document, the signal of a dense retriever."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from posrag.errors import ConfigurationError
from posrag.relevance.scores import RelevanceScores


def embedding_relevance(query: str, documents: Sequence[str], embedder: Any = None) -> RelevanceScores:
    """Cosine similarity of ``query`` to each document by ``embedder`` (``posrag.models.load_embedder()`` if
    ``None``; any object with sentence-transformers' ``encode(texts, normalize_embeddings=, convert_to_numpy=)``).
    """
    if not query.strip():
        raise ConfigurationError("The query is empty; pass the question (or use query_after_documents).")
    if not documents:
        raise ConfigurationError("No documents were given to score.")
    if embedder is None:
        from posrag.models import load_embedder

        embedder = load_embedder()
    vectors = np.asarray(
        embedder.encode([query, *documents], normalize_embeddings=True, convert_to_numpy=True), dtype=np.float64
    )
    # Normalize again: a custom embedder may ignore normalize_embeddings.
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors = np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)
    return RelevanceScores("embedding", tuple((vectors[1:] @ vectors[0]).tolist()))


__all__ = ["embedding_relevance"]
