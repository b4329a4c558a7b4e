"""Statistics for benchmark accuracies: Wilson score intervals and per-position summaries (pure functions)."""

from __future__ import annotations

import math
from statistics import NormalDist

from posrag.errors import ConfigurationError


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval for a binomial proportion ``successes / n``.

    Unlike the normal ("Wald") interval it stays inside [0, 1] and is not degenerate at 0 % or 100 %, which
    matters here: a reader at position 1 is often right every time.
    """
    if n < 1:
        raise ConfigurationError(f"A confidence interval needs n >= 1 trials, got n={n}.")
    if not 0 <= successes <= n:
        raise ConfigurationError(f"successes must be in [0, n={n}], got {successes}.")
    if not 0 < confidence < 1:
        raise ConfigurationError(f"confidence must be in (0, 1), got {confidence}.")
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    # Clamp the floating-point dust at the ends (the exact interval touches 0 and 1 there).
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return low, high


def mean(values: list[float]) -> float:
    """The arithmetic mean, NaN for no values."""
    return sum(values) / len(values) if values else math.nan


def percent(value: float | None) -> str:
    """A fraction as whole percent (``"-"`` for missing or NaN)."""
    return "-" if value is None or math.isnan(value) else f"{100 * value:.0f}"


__all__ = ["mean", "percent", "wilson_interval"]
