"""Argument checks shared by the core's constructors: each raises :class:`ConfigurationError` naming the field,
the value seen and what is allowed, and returns the value normalised (``float``/``int``), so a constructor
stores exactly what it checked.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

from posrag.errors import ConfigurationError


def check_choice(name: str, value: Any, allowed: Sequence[str]) -> str:
    """``value`` if it is one of ``allowed`` (strings), else a :class:`ConfigurationError` listing them."""
    if not isinstance(value, str) or value not in allowed:
        raise ConfigurationError(f"{name}={value!r} is not one of {', '.join(map(repr, allowed))}.")
    return value


def check_number(name: str, value: Any, low: float = -math.inf, high: float = math.inf, *, hint: str = "") -> float:
    """``value`` as a float if it is a finite real number (not a bool, not NaN) in ``[low, high]``."""
    allowed = "a finite number" if math.isinf(low) and math.isinf(high) else f"a number in [{low:g}, {high:g}]"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigurationError(f"{name}={value!r} must be {allowed}, not {type(value).__name__}.{hint}")
    number = float(value)
    if not math.isfinite(number) or not low <= number <= high:
        raise ConfigurationError(f"{name}={value!r} must be {allowed}.{hint}")
    return number


def check_int(name: str, value: Any, low: int, high: int | None = None, *, hint: str = "") -> int:
    """``value`` as an int if it is an integer (not a bool, not a float) in ``[low, high]``."""
    allowed = f">= {low}" if high is None else f"in [{low}, {high}]"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ConfigurationError(f"{name}={value!r} must be an integer {allowed}, not {type(value).__name__}.{hint}")
    number = int(value)
    if number < low or (high is not None and number > high):
        raise ConfigurationError(f"{name}={value!r} must be an integer {allowed}.{hint}")
    return number


def check_bool(name: str, value: Any) -> bool:
    """``value`` if it is ``True`` or ``False`` (a string such as ``"no"`` would silently count as true)."""
    if not isinstance(value, bool):
        raise ConfigurationError(f"{name}={value!r} must be True or False, not {type(value).__name__}.")
    return value


def check_position(p: Any, name: str = "relative position") -> float:
    """A relative position in [0, 1] (0 = first document, 1 = last) as a float."""
    return check_number(name, p, 0.0, 1.0, hint=" (0 = first document, 1 = last)")


__all__ = ["check_bool", "check_choice", "check_int", "check_number", "check_position"]
