"""Intensity curves: relative position p (0 = first document, 1 = last) → a multiplier of the base intensity.

Curves are data (:class:`IntensityCurve`). Built-ins: ``step`` (the seed's: p < 0.15 → 1.5x, < 0.50 → 1.2x,
< 0.75 → 1.0x, else 0.7x), ``linear`` (1.0 − 0.5·p), ``u_curve`` (most help in the middle) and ``flat``; any
piecewise-linear curve can be given as points, and :func:`measured_curve` derives one from a measured
:class:`~posrag.profiles.BiasProfile` (steer hardest where the model reads worst).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from posrag._validation import check_choice, check_number, check_position
from posrag.errors import ConfigurationError
from posrag.profiles import BiasProfile

BuiltinCurve = Literal["step", "linear", "u_curve", "flat"]

#: The largest multiplier a curve may give: far past any useful steering, and keeps products finite.
MAX_MULTIPLIER = 100.0


def _points(points: Any) -> tuple[tuple[float, float], ...]:
    if isinstance(points, (str, bytes)) or not isinstance(points, Iterable):
        raise ConfigurationError(f"IntensityCurve points={points!r} must be a list of (p, multiplier) pairs.")
    out = []
    for point in points:
        pair = () if isinstance(point, (str, bytes)) or not isinstance(point, Iterable) else tuple(point)
        if len(pair) != 2:
            raise ConfigurationError(f"IntensityCurve point {point!r} must be a (p, multiplier) pair.")
        p = check_number("IntensityCurve point p", pair[0], 0.0, 1.0, hint=" (a relative position)")
        m = check_number("IntensityCurve multiplier", pair[1], 0.0, MAX_MULTIPLIER)
        out.append((p, m))
    return tuple(out)


@dataclass(frozen=True)
class IntensityCurve:
    """A multiplier as a function of relative position p in [0, 1].

    ``kind="step"``: ``points`` are ``(threshold, multiplier)`` pairs; the multiplier of the first
    threshold that p is *below* applies, the last pair's multiplier applies to everything else.
    ``kind="linear"``: ``points`` are ``(p, multiplier)`` knots, linearly interpolated and held constant
    outside the first and last knot. Thresholds and knots lie in [0, 1], multipliers in [0, 100].
    """

    kind: Literal["step", "linear"]
    points: tuple[tuple[float, float], ...]
    name: str = "custom"

    def __post_init__(self) -> None:
        check_choice("IntensityCurve kind", self.kind, ("step", "linear"))
        points = _points(self.points)
        object.__setattr__(self, "points", points)
        if not points:
            raise ConfigurationError("An IntensityCurve needs at least one (p, multiplier) point.")
        xs = [p for p, _ in points]
        if xs != sorted(xs) or len(set(xs)) != len(xs):
            raise ConfigurationError(f"IntensityCurve points must have strictly increasing p; got {xs}.")
        if not isinstance(self.name, str):
            raise ConfigurationError(f"IntensityCurve name={self.name!r} must be a string.")

    def __call__(self, p: float) -> float:
        p = check_position(p)
        xs = [x for x, _ in self.points]
        if self.kind == "step":
            i = bisect.bisect_right(xs, p)
            return self.points[min(i, len(self.points) - 1)][1]
        if p <= xs[0]:
            return self.points[0][1]
        if p >= xs[-1]:
            return self.points[-1][1]
        i = bisect.bisect_right(xs, p)
        (x0, y0), (x1, y1) = self.points[i - 1], self.points[i]
        return y0 + (y1 - y0) * (p - x0) / (x1 - x0)

    @classmethod
    def from_points(cls, points: Sequence[Sequence[float]], name: str = "custom") -> IntensityCurve:
        """A piecewise-linear curve through ``points`` (``[(p, multiplier), ...]``)."""
        return cls("linear", points, name)  # type: ignore[arg-type]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "points": [list(p) for p in self.points]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> IntensityCurve:
        """The curve :meth:`to_dict` wrote (what a result's ``steering_configs`` hold): ``points`` and, optionally,
        ``kind`` (``"linear"`` or ``"step"``) and ``name``."""
        unknown = set(data) - {"name", "kind", "points"}
        if unknown or "points" not in data:
            raise ConfigurationError(
                f"A curve mapping has 'points' and optionally 'kind' and 'name'; got the keys {sorted(data)}."
            )
        return cls(data.get("kind", "linear"), data["points"], data.get("name", "custom"))


#: The seed's step curve: steer the earliest documents hardest (for a model with a recency bias).
STEP_CURVE = IntensityCurve("step", ((0.15, 1.5), (0.50, 1.2), (0.75, 1.0), (1.0, 0.7)), "step")
#: The seed's linear curve, 1.0 − 0.5·p.
LINEAR_CURVE = IntensityCurve("linear", ((0.0, 1.0), (1.0, 0.5)), "linear")
#: Most help in the middle, least at both ends (for a model that reads both ends well).
U_CURVE = IntensityCurve.from_points([(p / 10, 0.7 + 3.2 * (p / 10) * (1 - p / 10)) for p in range(11)], "u_curve")
FLAT_CURVE = IntensityCurve("linear", ((0.0, 1.0),), "flat")

BUILTIN_CURVES: dict[str, IntensityCurve] = {
    "step": STEP_CURVE,
    "linear": LINEAR_CURVE,
    "u_curve": U_CURVE,
    "flat": FLAT_CURVE,
}

CurveSpec = BuiltinCurve | IntensityCurve | Sequence[Sequence[float]] | Mapping[str, Any]


def resolve_curve(curve: CurveSpec) -> IntensityCurve:
    """A curve from a built-in name, an :class:`IntensityCurve`, ``[(p, multiplier), ...]`` points, or the mapping
    :meth:`IntensityCurve.to_dict` writes (so a result's steering settings can be passed back as they are)."""
    if isinstance(curve, IntensityCurve):
        return curve
    if isinstance(curve, Mapping):
        return IntensityCurve.from_dict(curve)
    if isinstance(curve, str):
        try:
            return BUILTIN_CURVES[curve]
        except KeyError:
            raise ConfigurationError(
                f"curve={curve!r} is not a built-in curve ({', '.join(BUILTIN_CURVES)}); pass one of those, "
                "an IntensityCurve, or a list of (p, multiplier) points."
            ) from None
    try:
        return IntensityCurve.from_points(curve)
    except ConfigurationError as exc:
        raise ConfigurationError(
            f"curve={curve!r} is not a curve ({exc}); give a name ({', '.join(BUILTIN_CURVES)}), an "
            "IntensityCurve or (p, multiplier) points."
        ) from exc


def measured_curve(
    profile: BiasProfile, low: float = 0.7, high: float = 1.5, tolerance: float | None = None
) -> IntensityCurve:
    """Steer hardest where ``profile``'s accuracy is lowest: best position → ``low``x, worst → ``high``x,
    linear between. A profile whose accuracies differ by at most ``tolerance`` (default: the profile's) is flat.
    """
    tolerance = profile.tolerance if tolerance is None else tolerance
    best, worst = max(profile.accuracy), min(profile.accuracy)
    if best - worst <= tolerance + 1e-12:
        return FLAT_CURVE
    points = [(x, low + (high - low) * (best - y) / (best - worst)) for x, y in profile.points()]
    return IntensityCurve.from_points(points, "measured")


__all__ = [
    "BUILTIN_CURVES",
    "MAX_MULTIPLIER",
    "BuiltinCurve",
    "CurveSpec",
    "IntensityCurve",
    "measured_curve",
    "resolve_curve",
]
