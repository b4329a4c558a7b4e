"""Choosing gaps: from the generated token (token analyzers) or from the model's own uncertainty.

Pure functions, testable without a model. A token analyzer maps the generated token's text to the gaps to
explore; :func:`gaps_from_entropy` maps the entropy of the distribution the token was drawn from to gaps
(the less sure the model, the further out it is worth looking).
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Callable, Sequence

from posrag.errors import ConfigurationError

#: ``token text -> gaps``; used by :meth:`RetroactivePositionGenerator.adaptive_exploration`.
TokenAnalyzer = Callable[[str], Sequence[float]]

#: The seed's defaults: punctuation and line breaks close a unit of text, so look far;
#: short tokens (word pieces, articles) depend on their neighbours, so look near; long words in between.
LARGE_GAPS: tuple[int, ...] = (10, 25, 50, 100)
SMALL_GAPS: tuple[int, ...] = (1, 2, 3, 5)
MEDIUM_GAPS: tuple[int, ...] = (5, 10, 20, 40)
SHORT_TOKEN_CHARS = 3


def classify_token(token: str) -> str:
    """``"boundary"`` (punctuation or whitespace only), ``"short"`` (<= 3 characters) or ``"long"``."""
    stripped = token.strip()
    if not stripped or all(unicodedata.category(ch).startswith("P") for ch in stripped):
        return "boundary"
    return "short" if len(stripped) <= SHORT_TOKEN_CHARS else "long"


def default_token_analyzer(token: str) -> tuple[int, ...]:
    """The seed's analyzer: punctuation → large gaps, short tokens → small, long tokens → medium."""
    kind = classify_token(token)
    if kind == "boundary":
        return LARGE_GAPS
    return SMALL_GAPS if kind == "short" else MEDIUM_GAPS


def normalized_entropy(entropy: float, vocab_size: int) -> float:
    """Entropy divided by its maximum, ``log(vocab_size)``, clipped to [0, 1]."""
    if vocab_size < 2:
        raise ConfigurationError(f"vocab_size must be >= 2, got {vocab_size}.")
    if not math.isfinite(entropy):
        raise ConfigurationError(f"entropy must be finite, got {entropy}.")
    return min(max(entropy / math.log(vocab_size), 0.0), 1.0)


def gaps_from_entropy(
    entropy: float, vocab_size: int, *, num_gaps: int = 8, min_gap: int = 1, max_gap: int = 128
) -> tuple[int, ...]:
    """Gaps to explore, from the model's uncertainty: higher entropy → a larger furthest gap.

    The furthest gap is ``min_gap + (max_gap - min_gap) * H / log(V)``; ``num_gaps`` gaps are spaced
    geometrically from ``min_gap`` to it and rounded (duplicates dropped, so a confident model may get fewer).
    """
    if num_gaps < 1:
        raise ConfigurationError(f"num_gaps must be >= 1, got {num_gaps}.")
    if min_gap < 1 or max_gap < min_gap:
        raise ConfigurationError(f"Need 1 <= min_gap <= max_gap, got min_gap={min_gap}, max_gap={max_gap}.")
    top = min_gap + (max_gap - min_gap) * normalized_entropy(entropy, vocab_size)
    if num_gaps == 1:
        return (round(top),)
    ratio = (top / min_gap) ** (1 / (num_gaps - 1))
    gaps = sorted({min(max(round(min_gap * ratio**i), min_gap), max_gap) for i in range(num_gaps)})
    return tuple(gaps)


__all__ = [
    "LARGE_GAPS",
    "MEDIUM_GAPS",
    "SMALL_GAPS",
    "TokenAnalyzer",
    "classify_token",
    "default_token_analyzer",
    "gaps_from_entropy",
    "normalized_entropy",
]
