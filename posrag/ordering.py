"""Ordering: put the best documents where a small model reads best.

Pure functions over scores (:func:`plan_order` returns a permutation) plus :func:`reorder`, which applies
it to :class:`~posrag.documents.ScoredDocument` objects and records each document's final position in its
metadata (for position-graduated steering downstream).

Strategies, given documents ranked best → worst as r0, r1, …, r(n-1):

``recency``       ascending relevance, best last: r(n-1) … r1 r0. For models with a recency bias.
``graduated``     the seed's name for the same ascending order; identical permutation, kept so that a
                  ``position_bias`` preset or a user config written against the seed keeps working.
``sandwich``      best last, second-best first, the rest ascending in between: r1 r(n-1) … r2 r0.
``long_context``  the classic "lost in the middle" alternation: best documents at both ends, the least
                  relevant in the middle. Which end gets the single best document is chosen explicitly
                  with ``best_at`` ("end" by default), not by the parity of the count as in LangChain's and
                  LlamaIndex's ``LongContextReorder``.
``none``          the input order, unchanged (positions are still recorded).

Rules every strategy follows:

* ``score_direction`` says what a score means: ``"similarity"`` (higher is better, posrag's retriever and
  most vector stores) or ``"distance"`` (lower is better, e.g. raw L2 distances). Getting this wrong
  inverts the order, the most reported ``LongContextReorder`` bug in both frameworks, so it is explicit.
* Ties keep their input order (the sort is stable).
* Documents without a score are not ranked as "worst" by accident: ``unscored`` places them, in their
  input order, as a block at the ``"start"`` (default: far from the question, never displacing a ranked
  document from the best slots) or the ``"end"``, or rejects them (``"error"``).
* The caller's sequence is never mutated; new documents are returned.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

from posrag._validation import check_choice as _check_choice
from posrag.documents import PositionInfo, ScoredDocument
from posrag.errors import ConfigurationError
from posrag.profiles import load_profile
from posrag.ranking import ScoreDirection, rank

Strategy = Literal["recency", "graduated", "sandwich", "long_context", "none"]
UnscoredPolicy = Literal["start", "end", "error"]
BestAt = Literal["end", "start"]

STRATEGIES: tuple[str, ...] = get_args(Strategy)
#: ``auto``: the strategy that a model's measured position-bias profile recommends (``posrag profile``).
StrategyOrAuto = Strategy | Literal["auto"]


def resolve_strategy(strategy: str, model_name: str | None = None, best_at: BestAt = "end") -> tuple[Strategy, BestAt]:
    """``(strategy, best_at)`` as given, or for ``"auto"`` what ``model_name``'s saved profile recommends.

    ``auto`` follows the model's position-bias profile (:func:`posrag.profiles.load_profile`: the one
    ``posrag profile`` saved, else the one shipped with posrag): the strategy for the curve's shape
    (:mod:`posrag.bias`) and, for ``long_context``, the end the model reads better. ``model_name`` defaults to
    the packaged model.
    """
    if strategy != "auto":
        _check_choice("strategy", strategy, (*STRATEGIES, "auto"))
        return strategy, best_at  # type: ignore[return-value]
    from posrag.models import DEFAULT_LLM  # lazy: posrag.models imports torch

    profile = load_profile(model_name or DEFAULT_LLM)
    return profile.recommended_strategy, profile.recommended_best_at  # type: ignore[return-value]


def as_similarity(score: float | None, score_direction: ScoreDirection = "similarity") -> float | None:
    """``score`` in posrag's direction (higher is better): a distance is negated; ``None`` stays ``None``."""
    if score is None:
        return None
    return float(score) if score_direction == "similarity" else -float(score)


def _arrange(ranked: list[int], strategy: Strategy, best_at: BestAt) -> list[int]:
    """Place ranked indices (best first) according to ``strategy``."""
    if strategy in ("recency", "graduated"):
        return ranked[::-1]
    if strategy == "sandwich":
        if len(ranked) < 2:
            return list(ranked)
        return [ranked[1], *ranked[:1:-1], ranked[0]]
    if strategy == "long_context":
        # Alternate from the best: best at `best_at`, second best at the other end, and so on inward.
        front: list[int] = []
        back: list[int] = []
        for i, index in enumerate(ranked):
            (back if i % 2 == 0 else front).append(index)
        order = front + back[::-1]
        return order if best_at == "end" else order[::-1]
    raise AssertionError(strategy)  # pragma: no cover - validated by the caller


def plan_order(
    scores: Sequence[float | None],
    strategy: Strategy = "recency",
    *,
    score_direction: ScoreDirection = "similarity",
    unscored: UnscoredPolicy = "start",
    best_at: BestAt = "end",
) -> list[int]:
    """The permutation (a list of input indices, in output order) that ``strategy`` gives for ``scores``."""
    _check_choice("strategy", strategy, STRATEGIES)
    _check_choice("unscored", unscored, get_args(UnscoredPolicy))
    _check_choice("best_at", best_at, get_args(BestAt))
    if strategy == "none":
        rank(scores, score_direction)  # validates scores and direction all the same
        return list(range(len(scores)))
    missing = [i for i, s in enumerate(scores) if s is None]
    if missing and unscored == "error":
        raise ConfigurationError(
            f"{len(missing)} document(s) have no score (indices {missing[:10]}); give them scores, or pass "
            "unscored='start' or 'end' to place them as a block."
        )
    arranged = _arrange(rank(scores, score_direction), strategy, best_at)
    return missing + arranged if unscored == "start" else arranged + missing


def with_positions(documents: Sequence[ScoredDocument]) -> list[ScoredDocument]:
    """Copies of ``documents`` whose metadata records their index, the total and the relative position."""
    total = len(documents)
    return [doc.with_position(PositionInfo(i, total)) for i, doc in enumerate(documents)]


@dataclass(frozen=True)
class Reorderer:
    """A validated reorder configuration, callable on documents; what the framework adapters hold."""

    strategy: StrategyOrAuto = "recency"
    score_direction: ScoreDirection = "similarity"
    unscored: UnscoredPolicy = "start"
    best_at: BestAt = "end"
    model_name: str | None = None  # whose saved profile ``strategy="auto"`` follows (default: the packaged model)

    def __post_init__(self) -> None:
        strategy, best_at = resolve_strategy(self.strategy, self.model_name, self.best_at)
        object.__setattr__(self, "strategy", strategy)
        object.__setattr__(self, "best_at", best_at)
        self.plan([])  # validates every setting at construction time

    def plan(self, scores: Sequence[float | None]) -> list[int]:
        return plan_order(
            scores,
            self.strategy,
            score_direction=self.score_direction,
            unscored=self.unscored,
            best_at=self.best_at,
        )

    def __call__(self, documents: Sequence[ScoredDocument]) -> list[ScoredDocument]:
        return with_positions([documents[i] for i in self.plan([d.score for d in documents])])


def reorder(
    documents: Sequence[ScoredDocument],
    strategy: Strategy = "recency",
    *,
    score_direction: ScoreDirection = "similarity",
    unscored: UnscoredPolicy = "start",
    best_at: BestAt = "end",
) -> list[ScoredDocument]:
    """Reordered copies of ``documents``, each carrying its final position in its metadata."""
    return Reorderer(strategy, score_direction, unscored, best_at)(documents)


__all__ = [
    "STRATEGIES",
    "BestAt",
    "Reorderer",
    "Strategy",
    "StrategyOrAuto",
    "UnscoredPolicy",
    "as_similarity",
    "plan_order",
    "reorder",
    "resolve_strategy",
    "with_positions",
]
