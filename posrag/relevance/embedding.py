"""Relevance by embedding: the cosine similarity of the query to each document, the signal of a dense retriever.

With ``sentences=True`` a document scores the cosine of its whole passage **plus** that of its best sentence
(each sentence embedded with the document's title, as the passage is). A small sentence embedder such as
all-MiniLM-L6-v2 was trained on short texts: in a 100-word passage the one sentence that answers a question is
diluted by the others, while a distractor mined for its overall similarity is not. On the 200 NQ calibration
questions (10 or 20 documents) the packaged embedder ranks the gold passage first for 94.5 % with the best
sentence added and 92 % by the passage alone (``docs/evidence.md``). It embeds every sentence too: about six
times the texts and 3.3x the time of the passage alone (``docs/relevance.md``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from posrag.documents import passage_text
from posrag.errors import ConfigurationError
from posrag.relevance.scores import RelevanceScores

# A sentence ends at ., ! or ? followed by white space and a capital, a digit, a quote or a parenthesis.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")


def split_sentences(text: str) -> list[str]:
    """``text``'s sentences (the text itself when it has one or none), split where a sentence visibly ends."""
    parts = [part.strip() for part in _SENTENCE_END.split(text) if part.strip()]
    return parts or [text]


def embedding_relevance(
    query: str,
    documents: Sequence[str],
    embedder: Any = None,
    *,
    titles: Sequence[Any] | None = None,
    sentences: bool = False,
) -> RelevanceScores:
    """Cosine similarity of ``query`` to each document by ``embedder`` (``posrag.models.load_embedder()`` if
    ``None``; any object with sentence-transformers' ``encode(texts, normalize_embeddings=, convert_to_numpy=)``).

    ``titles``: one per document (``None`` for an untitled one); what is embedded is the title, a newline and the
    text (:func:`posrag.documents.passage_text`). ``sentences``: add the cosine of each document's best sentence
    (module docstring).
    """
    if not query.strip():
        raise ConfigurationError("The query is empty; pass the question (or use query_after_documents).")
    if not documents:
        raise ConfigurationError("No documents were given to score.")
    titles = [None] * len(documents) if titles is None else list(titles)
    if len(titles) != len(documents):
        raise ConfigurationError(
            f"titles must have one entry per document (None for an untitled one); got {len(titles)} titles for "
            f"{len(documents)} documents."
        )
    if embedder is None:
        from posrag.models import load_embedder

        embedder = load_embedder()
    texts = [query, *(passage_text(text, title) for text, title in zip(documents, titles, strict=True))]
    owners: list[int] = []  # which document each sentence belongs to
    if sentences:
        for i, (text, title) in enumerate(zip(documents, titles, strict=True)):
            units = split_sentences(text)
            texts.extend(passage_text(unit, title) for unit in units)
            owners.extend([i] * len(units))
    vectors = np.asarray(embedder.encode(texts, normalize_embeddings=True, convert_to_numpy=True), dtype=np.float64)
    # Normalize again: a custom embedder may ignore normalize_embeddings.
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors = np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)
    cosines = vectors[1:] @ vectors[0]
    scores = cosines[: len(documents)].copy()
    if sentences:
        best = np.full(len(documents), -np.inf)
        np.maximum.at(best, np.asarray(owners), cosines[len(documents) :])
        scores += best
    return RelevanceScores("embedding", tuple(scores.tolist()))


__all__ = ["embedding_relevance", "split_sentences"]
