"""posrag's own relevance of documents that came without a retrieval score.

A standard retriever (``vectorstore.as_retriever()``) hands over documents but no scores, and steering every one
of them at full strength pulls the model toward the distractors too. Two ways to score them, one score per
document, higher = more relevant, returned as a :class:`RelevanceScores`:

* ``embedding``: cosine similarity between the query and each document by a sentence-transformers embedder
  (the packaged all-MiniLM-L6-v2 by default). Cheap; the same signal a dense retriever uses. With
  ``sentences=True`` the document's best sentence adds its cosine (what posrag's LLM classes and the
  benchmark's retriever use: the packaged embedder finds the answer document more often so).
* ``attention``: the model's own attention from the query tokens to each document's tokens, **corrected for
  position**. "Found in the Middle" (Hsieh et al., 2024) shows that the attention a document receives is its
  relevance plus a bias of its position; In-Context Re-ranking (Chen et al., ICLR 2025) removes that bias by
  subtracting the attention that a *content-free* query (``"N/A"``) pays to the same documents at the same
  positions. posrag does the same, at the cost of one prefill of the prompt plus two short passes over the
  query: the documents are encoded once (the model's own attention kernel), then the query and the content-free
  query each run on a copy of that cache with eager attention, whose weights forward hooks read and reduce
  at once. The correction also removes what is intrinsic to a document and not to the question (its length,
  tokens every query looks at). ``attention_raw`` is the uncorrected attention, for comparison.
* ``rank_mean`` / ``z_mean``: :func:`combine` several results (mean rank, or mean of z-scores).

In a RAG prompt the question follows the documents, so :func:`query_after_documents` takes the text after the
last located document as the query when the question itself is not known.

Call it like this (``spans``: each located document's ``(start, end)`` characters in ``prompt``)::

    from posrag.relevance import attention_relevance, embedding_relevance, query_after_documents

    query = query_after_documents(prompt, spans)
    by_embedding = embedding_relevance(query, [prompt[s:e] for s, e in spans])
    by_attention = attention_relevance(model, tokenizer, prompt, spans)
    best = by_attention.top()  # index into spans

``benchmarks/relevance.py`` measures which one picks the answer document more often; see ``docs/relevance.md``.

Modules: :mod:`~posrag.relevance.scores` (the result type, :func:`combine`), :mod:`~posrag.relevance.query`
(where the query is), :mod:`~posrag.relevance.embedding`, :mod:`~posrag.relevance.attention` (the read-out).
Everything is importable from ``posrag.relevance``.
"""

from posrag.relevance.attention import (
    CALIBRATION_QUERY,
    AttentionReadout,
    LayerSelection,
    attention_relevance,
    eager_attention,
    read_attention,
)
from posrag.relevance.embedding import embedding_relevance, split_sentences
from posrag.relevance.query import query_after_documents, query_start
from posrag.relevance.scores import Combination, RelevanceMethod, RelevanceScores, combine

__all__ = [
    "CALIBRATION_QUERY",
    "AttentionReadout",
    "Combination",
    "LayerSelection",
    "RelevanceMethod",
    "RelevanceScores",
    "attention_relevance",
    "combine",
    "eager_attention",
    "embedding_relevance",
    "query_after_documents",
    "query_start",
    "read_attention",
    "split_sentences",
]
