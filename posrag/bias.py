"""Position-bias shapes: classify how well a model reads each position, and the ordering that suits it.

One rule, used by the one profile type (:class:`posrag.profiles.BiasProfile`), hence by steering's
``position_bias``, ``strategy="auto"`` ordering and the benchmark's ``posrag profile``. Pure functions.

``flat``     the curve's range (best − worst position) is within ``tolerance``.
``u_curve``  both the first and the last third of the context beat the middle third by more than
             ``tolerance`` (thirds by relative position: [0, 1/3], (1/3, 2/3), [2/3, 1]; the mean accuracy
             of the probed positions in each).
``recency``  otherwise, when the last third reads at least as well as the first (rises toward the end).
``primacy``  otherwise (the first third reads better than the last).

The ordering: ``flat`` → ``none`` (position does not matter: keep the retriever's order); ``recency`` →
``recency`` (best document last); ``u_curve`` and ``primacy`` → ``long_context`` (the best documents at both
ends, the least relevant in the middle) with the single best document at the end the model reads better
(``best_at="start"`` when the first probed position beats the last, else ``"end"``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal, get_args

from posrag.errors import ConfigurationError

BiasClass = Literal["recency", "u_curve", "flat", "primacy"]
BIAS_CLASSES: tuple[str, ...] = get_args(BiasClass)
#: 10 points: about the half-width of a 95 % interval at 50 % accuracy with ~100 trials per position.
DEFAULT_TOLERANCE = 0.10

#: The reorder strategy each shape pairs with (``long_context``'s best end: :func:`recommend_ordering`).
RECOMMENDED_STRATEGY: dict[str, str] = {
    "recency": "recency",
    "u_curve": "long_context",
    "flat": "none",
    "primacy": "long_context",
}


def _thirds(relative_positions: Sequence[float], accuracy: Sequence[float]) -> tuple[float, float, float]:
    bands: list[list[float]] = [[], [], []]
    for x, y in zip(relative_positions, accuracy, strict=True):
        bands[0 if x <= 1 / 3 else 2 if x >= 2 / 3 else 1].append(y)
    start, middle, end = (sum(b) / len(b) if b else math.nan for b in bands)
    return start, middle, end


def classify_bias(
    relative_positions: Sequence[float], accuracy: Sequence[float], tolerance: float = DEFAULT_TOLERANCE
) -> BiasClass:
    """The shape of an accuracy-by-position curve (the rule is in the module docstring)."""
    xs, ys = [float(x) for x in relative_positions], [float(y) for y in accuracy]
    if len(xs) != len(ys) or len(xs) < 2:
        raise ConfigurationError(
            f"Classifying a position bias needs >= 2 positions, one accuracy each; got {len(xs)}, {len(ys)}."
        )
    if any(not 0.0 <= x <= 1.0 for x in xs) or any(not 0.0 <= y <= 1.0 for y in ys):
        raise ConfigurationError(f"Positions and accuracies must lie in [0, 1]; got {xs} and {ys}.")
    if tolerance < 0:
        raise ConfigurationError(f"tolerance must be >= 0, got {tolerance}.")
    if max(ys) - min(ys) <= tolerance + 1e-12:
        return "flat"
    start, middle, end = _thirds(xs, ys)
    if not math.isnan(middle) and start - middle > tolerance and end - middle > tolerance:
        return "u_curve"
    if math.isnan(start) or math.isnan(end) or end >= start:
        return "recency"
    return "primacy"


def recommend_ordering(
    relative_positions: Sequence[float], accuracy: Sequence[float], tolerance: float = DEFAULT_TOLERANCE
) -> tuple[str, Literal["start", "end"]]:
    """``(strategy, best_at)`` for a measured curve: where the best documents should go for this model."""
    shape = classify_bias(relative_positions, accuracy, tolerance)
    strategy = RECOMMENDED_STRATEGY[shape]
    if strategy != "long_context":
        return strategy, "end"
    xs = [float(x) for x in relative_positions]
    first, last = accuracy[xs.index(min(xs))], accuracy[xs.index(max(xs))]
    return strategy, "start" if first > last else "end"


__all__ = [
    "BIAS_CLASSES",
    "DEFAULT_TOLERANCE",
    "RECOMMENDED_STRATEGY",
    "BiasClass",
    "classify_bias",
    "recommend_ordering",
]
