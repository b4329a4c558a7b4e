"""Which of a request's documents to steer, and how hard: the targets of one LLM call.

Steering is strong in both directions, so the one thing it must get right is *which* document it steers. An
LLM call is handed the documents of its own request (:mod:`posrag.requests`, or passed explicitly) and:

1. **locates** them in its prompt (:func:`posrag.locate.locate`); positions are those in *this* prompt;
2. **scores** them: the retriever's scores when the request has any; else (a standard retriever that puts no
   score in metadata) posrag's own relevance, the packaged embedder's similarity between the request's query
   and each document (``SteeringConfig.unscored="relevance"``; measured against the model's attention in
   ``docs/relevance.md``: the embedder picked the answer document more often); ``"all"`` steers every
   located document fully (the old behaviour), ``"off"`` none;
3. **ranks** each located document among *all* the request's documents, so "best ``top_k``" is decided per
   request, not per call: a refine or map-reduce call that sees one distractor does not steer it;
4. **weighs** the top document(s) by how sure the ranking is (``SteeringConfig.confidence``,
   :mod:`~posrag.steering.confidence`): a small margin between the best and the next document steers little,
   so a wrong top-1 costs little.

The result is data: the targets (for :func:`~posrag.steering.planning.plan_steering`) and a
:class:`SelectionSummary` saying how many request documents were located and steered, and why the others
were not. Pure apart from the optional relevance function (the embedder).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from posrag.documents import ScoredDocument
from posrag.locate import locatable_text, locate
from posrag.ranking import ranks_by_score
from posrag.steering.confidence import Confidence, ConfidenceRule
from posrag.steering.config import RANKED_BY_RELEVANCE, SteeringConfig
from posrag.steering.planning import SteeringTarget
from posrag.steering.targets import target_from_span


class RelevanceFn(Protocol):
    """``relevance(query, documents, sentences=...) -> scores``: posrag's own relevance of unscored documents
    (higher is better), one score per document, read from each document's text and ``metadata["title"]``;
    ``sentences``: add each document's best sentence (``SteeringConfig.unscored="relevance"``) or not
    (``"passage"``)."""

    def __call__(self, query: str, documents: list[ScoredDocument], *, sentences: bool) -> Sequence[float]: ...


@dataclass(frozen=True)
class SelectionSummary:
    """What one LLM call did with its request's documents.

    ``request_documents``: how many the request emitted (or the caller passed); ``located``: how many of them
    this prompt contains; ``scores``: where the ranking came from (``retriever``, ``relevance``, ``none``);
    ``confidence``: the confidence-aware multiplier of the top document(s) (``None``: not applied);
    ``notes``: why documents were not steered, in words.
    """

    request_documents: int
    located: int
    scores: str
    confidence: Confidence | None = None
    relevance: tuple[float, ...] = ()
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "request_documents": self.request_documents,
            "located": self.located,
            "scores": self.scores,
            "confidence": None if self.confidence is None else self.confidence.to_dict(),
            "relevance": list(self.relevance),
            "notes": list(self.notes),
        }


def _finite(score: float | None) -> float | None:
    return None if score is None or not math.isfinite(float(score)) else float(score)


def _unique(documents: Sequence[ScoredDocument]) -> tuple[list[ScoredDocument], int]:
    """One document per text (first occurrence's place), with the best finite score any copy had; and how many
    copies were merged. Two copies of one text are one place in the prompt, so they must rank as one."""
    best: dict[str, ScoredDocument] = {}
    for doc in documents:
        key = locatable_text(doc)
        kept = best.get(key)
        if kept is None:
            best[key] = doc
            continue
        new, old = _finite(doc.score), _finite(kept.score)
        if new is not None and (old is None or new > old):
            best[key] = ScoredDocument(kept.text, kept.metadata, doc.score, kept.id)
    return list(best.values()), len(documents) - len(best)


def select_targets(
    prompt: str,
    documents: Sequence[ScoredDocument],
    config: SteeringConfig,
    *,
    query: str | None = None,
    relevance: RelevanceFn | None = None,
) -> tuple[list[SteeringTarget], SelectionSummary]:
    """The steering targets of ``prompt`` for its request's ``documents`` (see the module docstring).

    ``query``: the request's question (default: the prompt's text after the last located document);
    ``relevance``: scores unscored documents (needed for ``config.unscored`` ``relevance`` or ``passage``).
    """
    documents, merged = _unique([d for d in documents if locatable_text(d)])
    spans = locate(prompt, documents)
    notes: list[str] = []
    if merged:
        notes.append(f"{merged} duplicate document(s) (same text) merged, keeping each text's best score")
    if not spans:
        if documents:
            notes.append(f"none of the request's {len(documents)} documents occurs in this prompt")
        return [], SelectionSummary(len(documents), 0, "none", notes=tuple(notes))
    if len(spans) < len(documents):
        notes.append(f"{len(documents) - len(spans)} request document(s) not in this prompt")

    scores: list[float | None] = [_finite(d.score) for d in documents]
    source = "retriever"
    relevance_scores: tuple[float, ...] = ()
    if all(s is None for s in scores):
        if config.unscored in RANKED_BY_RELEVANCE and relevance is not None:
            if query is None or not query.strip():
                query = prompt[max(span.end for span in spans) :].strip() or prompt
            relevance_scores = tuple(
                float(s) for s in relevance(query, list(documents), sentences=config.unscored == "relevance")
            )
            scores = list(relevance_scores)
            source = "relevance"
        elif config.unscored == "off":
            notes.append("the request's documents carry no score and unscored='off'")
            return [], SelectionSummary(len(documents), len(spans), "none", notes=tuple(notes))
        else:
            source = "none"
            if config.unscored in RANKED_BY_RELEVANCE:
                notes.append("no score and no relevance function: every located document steered")
    elif any(s is None for s in scores):
        notes.append(f"{sum(s is None for s in scores)} unscored document(s) in a scored request: not steered")

    ranks = ranks_by_score(scores) if source != "none" else [None] * len(documents)
    unranked = len(documents)  # beyond any top_k: an unscored document of a scored request is not steered
    confidence: Confidence | None = None
    weight = 1.0
    ranked_scores = [s for s in scores if s is not None]
    if config.confidence and source != "none" and config.top_k is not None and ranked_scores:
        confidence = ConfidenceRule(k=config.top_k).assess(ranked_scores)
        weight = confidence.multiplier
        if weight < 1.0:
            notes.append(f"confidence {weight:.2f}: margin {confidence.margin:.2f} spreads below the top document")

    index_of = {id(d): i for i, d in enumerate(documents)}
    targets = []
    for span in spans:
        i = index_of[id(span.document)]
        rank = ranks[i]
        if rank is None and source != "none":
            rank = unranked
        top = config.top_k is None or (rank is not None and rank < config.top_k)
        # The threshold tier reads retriever scores only: relevance lives on another scale.
        score = scores[i] if source == "retriever" else None
        targets.append(replace(target_from_span(span), score=score, rank=rank, weight=weight if top else 1.0))
    if source != "none" and config.top_k is not None:
        beyond = sum(1 for t in targets if t.rank is not None and t.rank >= config.top_k)
        if beyond:
            notes.append(f"{beyond} located document(s) ranked below the request's top_k={config.top_k}")
    summary = SelectionSummary(len(documents), len(spans), source, confidence, relevance_scores, tuple(notes))
    return targets, summary


__all__ = ["RelevanceFn", "SelectionSummary", "select_targets"]
