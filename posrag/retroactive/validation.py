"""The checks on what a caller asks retroactive exploration for: gaps or positions, and the selection threshold.

Every way a request can be wrong gets its own message naming the value and the fix (a negative gap, a
fractional position on a model with learned absolute positions, a position past the model's last one).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from typing import Any

from posrag.errors import ConfigurationError, PositionOutOfRangeError
from posrag.retroactive.results import Number, normalize_number


def is_number(value: Any) -> bool:
    """A real number, not a bool (``True`` is an ``int`` to Python, never a gap to a user)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_threshold(threshold: float) -> float:
    if not is_number(threshold) or not 0 < threshold <= 1:
        raise ConfigurationError(f"selection_threshold must be in (0, 1], got {threshold!r}.")
    return float(threshold)


def check_gaps(
    gaps: Iterable[Number],
    *,
    prompt_length: int,
    max_gaps: int,
    max_positions: int,
    position_encoding: str,
    what: str = "gap",
    counts_bos: bool = False,
) -> list[Number]:
    """Normalized, de-duplicated gaps in the order given; clear errors for every way they can be wrong.

    ``what="position"`` takes absolute positions (``prompt_length + gap``) instead; ``counts_bos`` says the
    prompt's first token is a BOS the tokenizer added (named in the hint of a too-small position).
    """
    if isinstance(gaps, (str, bytes)) or not isinstance(gaps, Iterable):  # a bare number, True, None
        raise ConfigurationError(f"Give the {what}s as a list of numbers, got {gaps!r}.")
    values = list(gaps)
    if not values:
        raise ConfigurationError(f"No {what}s given; pass at least one.")
    if len(values) > max_gaps:
        raise ConfigurationError(
            f"{len(values)} {what}s requested, more than max_gaps={max_gaps}. Explore fewer at once "
            "(or raise max_gaps)."
        )
    length = prompt_length
    last = max_positions - 1
    out: list[Number] = []
    for value in values:
        if not is_number(value) or not math.isfinite(value):
            raise ConfigurationError(f"Every {what} must be a finite number, got {value!r}.")
        value = int(value) if isinstance(value, numbers.Integral) else float(value)  # e.g. numpy scalars
        gap = normalize_number(value - length if what == "position" else value)
        shown = f"position {value}" if what == "position" else f"gap {value}"
        if gap < 0:
            hint = ""
            if what == "position":
                hint = (
                    f" The prompt has {length} tokens (positions 0..{length - 1}); the explored token's natural "
                    f"position is {length}."
                )
                if counts_bos:
                    hint += (
                        " That count includes the BOS token; use add_special_tokens=False (CLI: "
                        "--no-special-tokens) to leave it out."
                    )
            raise ConfigurationError(f"{shown} is a negative gap: the token cannot move before its prompt.{hint}")
        if isinstance(gap, float) and position_encoding != "rope":
            raise PositionOutOfRangeError(
                f"{shown}: this model has learned absolute positions ({position_encoding}), which exist "
                "at integer positions only. Use integer gaps (fractional positions need a RoPE model)."
            )
        if length + gap > last:
            raise PositionOutOfRangeError(
                f"{shown} puts the token at position {normalize_number(length + gap)}, past the model's last "
                f"position {last} (max positions {max_positions}). With this {length}-token prompt the "
                f"largest gap is {last - length}."
            )
        if gap not in out:
            out.append(gap)
    return out


__all__ = ["check_gaps", "check_threshold", "is_number"]
