"""Confidence-aware intensity: steer the request's best document(s) less when the ranking is unsure.

Steering is strong in both directions, so a wrong top-1 steered at full strength costs as much as a right one
gains. This rule turns a request's scores into a multiplier in [0, 1] for the steered top document(s), to be
multiplied with the policy's own intensity (its tiers, ghost under the threshold and ``top_k``, stay in
``posrag.steering.planning``; this module knows nothing of them).

**Margin, on a normalized scale.** Scores from different sources (a retriever's cosine, a reranker's logit, the
model's attention) live on different scales, so the gap between the k-th best score and the next one is
measured *in units of the scores' spread*: ``margin = (s_(k) - s_(k+1)) / std(s)`` (population standard
deviation over the request's documents). It is scale- and shift-free (``a·s + b`` gives the same margin for
``a > 0``), 0 for a tie, and large when the steered documents stand out from the rest. A caller who knows the
source's natural scale can pass ``scale`` instead of the spread (needed with two documents, whose spread is
always half their gap, so every non-tie would look maximally sure).

**Multiplier.** ``ramp = clip((margin - low) / (high - low), 0, 1)`` and ``multiplier = floor + (1 - floor) ·
ramp · agreement``: ``floor`` at or under a margin of ``low`` (ties included), full at ``high`` or above.
**Agreement**: with a second ranking of the same documents (e.g. the model's position-corrected attention,
:mod:`posrag.relevance`), ``agreement = 1`` when the second ranking puts the same k documents first (ties
with the k-th count as agreeing: they are no evidence against) and ``disagreement`` otherwise.

So a low-margin or contested top-1 is steered little (a wrong top-1 costs little), and a clear, agreed top-1
is steered fully. Defaults (``low=0.5``, ``high=1.5``): among 10 (20) documents whose scores are pure noise
(independent normals) the best leads the next by 0.58 (0.48) spreads on average, so noise gets little; one
document that clearly stands out from nine equal others leads by 3.3 spreads.
``docs/relevance.md`` reports the measured margins when the retriever's top-1 is right and wrong.

Use::

    from posrag.steering.confidence import ConfidenceRule

    confidence = ConfidenceRule().assess(scores, second=attention_scores)
    intensity = planned.intensity * confidence.multiplier  # for the top-k documents only
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from posrag.errors import ConfigurationError


@dataclass(frozen=True)
class Confidence:
    """How sure a request's ranking is: ``multiplier`` in [0, 1] for its steered top document(s).

    ``margin``: the gap below the top ``k`` in units of the spread (or of ``scale``); ``agreement``: whether a
    second ranking agrees (``None`` without one); ``top``: the indices of the top ``k`` documents, best first.
    """

    multiplier: float
    margin: float
    agreement: bool | None
    top: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "multiplier": self.multiplier,
            "margin": self.margin,
            "agreement": self.agreement,
            "top": list(self.top),
        }


def _check_scores(scores: Sequence[float], name: str) -> list[float]:
    values = [float(s) for s in scores]
    if not values:
        raise ConfigurationError(f"{name} is empty; confidence needs the scores of the request's documents.")
    if not all(math.isfinite(v) for v in values):
        raise ConfigurationError(f"{name} must be finite numbers; got {values}.")
    return values


def _order(values: Sequence[float]) -> list[int]:
    return sorted(range(len(values)), key=lambda i: (-values[i], i))


def normalized_margin(scores: Sequence[float], k: int = 1, scale: float | None = None) -> float:
    """``(s_(k) - s_(k+1)) / std(scores)`` (or ``/ scale``): how far the k-th best stands above the next, in
    units of the scores' spread. ``inf`` when every document is among the top ``k``; 0 for a tie."""
    values = _check_scores(scores, "scores")
    if k < 1:
        raise ConfigurationError(f"k must be >= 1 (the number of steered top documents); got {k}.")
    if len(values) <= k:
        return math.inf
    ranked = sorted(values, reverse=True)
    gap = ranked[k - 1] - ranked[k]
    if gap <= 0:
        return 0.0
    if scale is not None:
        if not scale > 0:
            raise ConfigurationError(f"scale must be > 0 (the natural unit of the scores); got {scale}.")
        return gap / scale
    mean = sum(values) / len(values)
    spread = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
    if not spread > 0:  # a gap so small that the spread underflows (denormal scores): no scale to judge by
        return math.inf
    return gap / spread


def agrees(scores: Sequence[float], second: Sequence[float], k: int = 1) -> bool:
    """Whether ``second`` ranks the top ``k`` of ``scores`` first too (a tie with its k-th counts as yes)."""
    first = _check_scores(scores, "scores")
    other = _check_scores(second, "second")
    if len(first) != len(other):
        raise ConfigurationError(
            f"second scores {len(other)} documents but scores {len(first)}; both must score the same documents."
        )
    top = _order(first)[:k]
    if len(other) <= k:
        return True
    threshold = sorted(other, reverse=True)[k - 1]
    return all(other[i] >= threshold for i in top)


@dataclass(frozen=True)
class ConfidenceRule:
    """The documented rule (see the module docstring): margin ramp from ``low`` to ``high`` spreads, from
    ``floor`` to 1, times ``disagreement`` when a second ranking disagrees. ``k``: how many top documents
    are steered (the policy's ``top_k``); ``scale``: the scores' natural unit instead of their spread."""

    low: float = 0.5
    high: float = 1.5
    floor: float = 0.0
    disagreement: float = 0.5
    k: int = 1
    scale: float | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.low < self.high or not math.isfinite(self.high):
            raise ConfigurationError(
                f"ConfidenceRule needs 0 <= low < high (finite); got low={self.low}, high={self.high}."
            )
        if not 0 <= self.floor <= 1:
            raise ConfigurationError(f"ConfidenceRule floor={self.floor} must be in [0, 1].")
        if not 0 <= self.disagreement <= 1:
            raise ConfigurationError(f"ConfidenceRule disagreement={self.disagreement} must be in [0, 1].")
        if self.k < 1:
            raise ConfigurationError(f"ConfidenceRule k={self.k} must be >= 1 (the policy's top_k).")
        if self.scale is not None and not self.scale > 0:
            raise ConfigurationError(f"ConfidenceRule scale={self.scale} must be > 0 or None (use the spread).")

    def multiplier(self, margin: float, agreement: bool | None = None) -> float:
        """The multiplier for a normalized ``margin`` and an optional agreement of a second ranking."""
        if math.isnan(margin) or margin < 0:
            raise ConfigurationError(f"margin must be >= 0 (a gap in units of the spread); got {margin}.")
        ramp = min(1.0, max(0.0, (margin - self.low) / (self.high - self.low)))
        factor = self.disagreement if agreement is False else 1.0
        return self.floor + (1.0 - self.floor) * ramp * factor

    def assess(self, scores: Sequence[float], second: Sequence[float] | None = None) -> Confidence:
        """The :class:`Confidence` of a request's ``scores`` (one per document), optionally checked against a
        ``second`` ranking of the same documents."""
        values = _check_scores(scores, "scores")
        margin = normalized_margin(values, self.k, self.scale)
        agreement = None if second is None else agrees(values, second, self.k)
        return Confidence(self.multiplier(margin, agreement), margin, agreement, tuple(_order(values)[: self.k]))


#: The default rule.
DEFAULT_CONFIDENCE = ConfidenceRule()


def confidence_multiplier(
    scores: Sequence[float], second: Sequence[float] | None = None, rule: ConfidenceRule = DEFAULT_CONFIDENCE
) -> float:
    """The multiplier in [0, 1] for the steered top document(s) of a request (``rule.assess(...).multiplier``)."""
    return rule.assess(scores, second).multiplier


__all__ = [
    "DEFAULT_CONFIDENCE",
    "Confidence",
    "ConfidenceRule",
    "agrees",
    "confidence_multiplier",
    "normalized_margin",
]
