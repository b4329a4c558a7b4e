"""The steering policy: where relative position p becomes an intensity, a tier and a set of layers.

Pure functions and frozen dataclasses, testable without a model. The seed's strategies:

* **Position-graduated intensity** (Strategy 1): an :class:`IntensityCurve` maps p (0 = first document,
  1 = last) to a multiplier of ``base_intensity``. Built-ins: ``step`` (p < 0.15 → 1.5x, < 0.50 → 1.2x,
  < 0.75 → 1.0x, else 0.7x), ``linear`` (1.0 − 0.5·p), ``u_curve`` (most help in the middle) and ``flat``;
  any piecewise-linear curve can be given as points, e.g. derived from a measured position-bias profile.
* **Position-aware layer targeting** (Strategy 2): p < 0.2 → layers at 40–55 % of depth, < 0.6 → 55–70 %,
  else 70–85 % (``zones``), or the ``shifted`` variant whose 15 %-wide zone slides linearly from 40–55 % at
  p = 0 to 70–85 % at p = 1. A zone (fractions of depth) becomes physical layer indices with
  :func:`zone_layers` for any depth; the results are cached per (depth, zone).
* **Rule-type safe zones** (Strategy 5): a document whose metadata carries a rule type (DEFINITION,
  REGULATORY, PROCEDURAL, EXCEPTION, DEFAULT) is steered in that type's zone instead.
* **Tiers**: a document scoring under ``retrieval_threshold`` gets "ghost" steering (0.3x); one ranked
  below the request's ``top_k`` best-scored documents is not steered (posrag's addition: in the retrieval
  regime, steering distractors costs accuracy); with
  ``no_steer_above`` set, documents at p above it are not steered at all (the seed's over-steering risk).
* **position_bias** presets (``recency``, ``u_curve``, ``flat`` or a measured :class:`PositionBiasProfile`)
  pick the default curve and the reorder strategy to pair with it.
"""

from __future__ import annotations

import bisect
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, get_args

from posrag.errors import ConfigurationError

Mechanism = Literal["activation", "attention", "both"]
VectorSource = Literal["hidden_mean", "embedding"]
LayerPolicy = Literal["zones", "shifted", "all"]
AttentionLayers = Literal["all", "planned"]
Tier = Literal["full", "ghost", "off"]
ReorderStrategy = Literal["recency", "sandwich", "graduated", "long_context", "none"]
BuiltinCurve = Literal["step", "linear", "u_curve", "flat"]
BiasName = Literal["recency", "u_curve", "flat"]

MECHANISMS: tuple[str, ...] = get_args(Mechanism)
VECTOR_SOURCES: tuple[str, ...] = get_args(VectorSource)
LAYER_POLICIES: tuple[str, ...] = get_args(LayerPolicy)

#: Accuracy differences within this are noise when reading a measured profile (as posrag.bench.profile).
PROFILE_TOLERANCE = 0.10

#: Multiplier of "ghost" steering for documents scoring under the retrieval threshold.
GHOST_MULTIPLIER = 0.3


# ----------------------------------------------------------------------------- intensity curves


@dataclass(frozen=True)
class IntensityCurve:
    """A multiplier as a function of relative position p in [0, 1]; curves are data.

    ``kind="step"``: ``points`` are ``(threshold, multiplier)`` pairs; the multiplier of the first
    threshold that p is *below* applies, the last pair's multiplier applies to everything else.
    ``kind="linear"``: ``points`` are ``(p, multiplier)`` knots, linearly interpolated and held constant
    outside the first and last knot.
    """

    kind: Literal["step", "linear"]
    points: tuple[tuple[float, float], ...]
    name: str = "custom"

    def __post_init__(self) -> None:
        points = tuple((float(p), float(m)) for p, m in self.points)
        object.__setattr__(self, "points", points)
        if self.kind not in ("step", "linear"):
            raise ConfigurationError(f"IntensityCurve kind={self.kind!r} must be 'step' or 'linear'.")
        if not points:
            raise ConfigurationError("An IntensityCurve needs at least one (p, multiplier) point.")
        xs = [p for p, _ in points]
        if xs != sorted(xs) or len(set(xs)) != len(xs):
            raise ConfigurationError(f"IntensityCurve points must have strictly increasing p; got {xs}.")
        if any(m < 0 or not math.isfinite(m) for _, m in points):
            raise ConfigurationError(f"IntensityCurve multipliers must be finite and >= 0; got {points}.")

    def __call__(self, p: float) -> float:
        p = _check_position(p)
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
        return cls("linear", tuple((float(p), float(m)) for p, m in points), name)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "points": [list(p) for p in self.points]}


def _check_position(p: float) -> float:
    p = float(p)
    if not 0.0 <= p <= 1.0 or math.isnan(p):
        raise ConfigurationError(f"Relative position must be in [0, 1] (0 = first document, 1 = last); got {p}.")
    return p


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

CurveSpec = BuiltinCurve | IntensityCurve | Sequence[Sequence[float]]


def resolve_curve(curve: CurveSpec) -> IntensityCurve:
    """A curve from a built-in name, an :class:`IntensityCurve`, or ``[(p, multiplier), ...]`` points."""
    if isinstance(curve, IntensityCurve):
        return curve
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
    except (TypeError, ValueError) as exc:
        if isinstance(exc, ConfigurationError):
            raise
        raise ConfigurationError(
            f"curve={curve!r} is not a curve: give a name, an IntensityCurve or (p, multiplier) points."
        ) from exc


# ----------------------------------------------------------------------------- layer zones


@dataclass(frozen=True)
class LayerZone:
    """A band of depth ``[start, end]`` as fractions of the layer stack (0 = first layer, 1 = last)."""

    start: float
    end: float

    def __post_init__(self) -> None:
        if not 0.0 <= self.start <= self.end <= 1.0:
            raise ConfigurationError(
                f"A LayerZone needs 0 <= start <= end <= 1 (fractions of depth); got {self.start}–{self.end}."
            )

    def layers(self, num_layers: int) -> tuple[int, ...]:
        return zone_layers(num_layers, self.start, self.end)

    def to_dict(self) -> dict[str, float]:
        return {"start": self.start, "end": self.end}


@lru_cache(maxsize=4096)
def zone_layers(num_layers: int, start: float, end: float) -> tuple[int, ...]:
    """Physical layer indices whose depth ``i / (num_layers - 1)`` lies in ``[start, end]``.

    A zone too thin to contain a layer of a shallow model gets the single layer nearest its middle, so every
    zone maps to at least one layer at any depth. Cached per (depth, zone): the seed's position-to-layer map.
    """
    if num_layers < 1:
        raise ConfigurationError(f"num_layers must be >= 1, got {num_layers}.")
    if num_layers == 1:
        return (0,)
    last = num_layers - 1
    eps = 1e-9
    first = math.ceil(start * last - eps)
    final = math.floor(end * last + eps)
    if first <= final:
        return tuple(range(first, final + 1))
    return (min(last, max(0, round((start + end) / 2 * last))),)


#: The seed's three position zones: (p upper bound, zone).
POSITION_ZONES: tuple[tuple[float, LayerZone], ...] = (
    (0.2, LayerZone(0.40, 0.55)),
    (0.6, LayerZone(0.55, 0.70)),
    (math.inf, LayerZone(0.70, 0.85)),
)

#: Rule-type safe zones (the seed's Strategy 5). Unknown types fall back to DEFAULT.
RULE_TYPE_ZONES: dict[str, LayerZone] = {
    "DEFINITION": LayerZone(0.40, 0.55),
    "REGULATORY": LayerZone(0.55, 0.70),
    "PROCEDURAL": LayerZone(0.55, 0.75),
    "EXCEPTION": LayerZone(0.85, 0.95),
    "DEFAULT": LayerZone(0.55, 0.70),
}

#: Width of the zone that the ``shifted`` policy slides from 40–55 % (p = 0) to 70–85 % (p = 1).
SHIFTED_ZONE_WIDTH = 0.15
SHIFTED_ZONE_START = 0.40
SHIFTED_ZONE_TRAVEL = 0.30


def layer_zone(p: float, policy: LayerPolicy = "zones", rule_type: str | None = None) -> LayerZone:
    """The depth band to steer a document at relative position ``p`` (its rule type wins if it has one)."""
    p = _check_position(p)
    if rule_type:
        return RULE_TYPE_ZONES.get(str(rule_type).strip().upper(), RULE_TYPE_ZONES["DEFAULT"])
    if policy == "zones":
        return next(zone for bound, zone in POSITION_ZONES if p < bound)
    if policy == "shifted":
        start = SHIFTED_ZONE_START + SHIFTED_ZONE_TRAVEL * p
        return LayerZone(round(start, 10), round(start + SHIFTED_ZONE_WIDTH, 10))
    if policy == "all":
        return LayerZone(0.0, 1.0)
    raise ConfigurationError(f"layer_policy={policy!r} is not one of {', '.join(LAYER_POLICIES)}.")


def target_layers(
    p: float, num_layers: int, policy: LayerPolicy = "zones", rule_type: str | None = None
) -> tuple[int, ...]:
    """Physical layer indices to steer for a document at relative position ``p`` in a ``num_layers`` model."""
    return layer_zone(p, policy, rule_type).layers(num_layers)


@lru_cache(maxsize=256)
def position_layer_map(
    num_layers: int, policy: LayerPolicy = "zones", resolution: int = 100
) -> tuple[tuple[int, ...], ...]:
    """The precomputed position-to-layer map of a model depth: entry ``i`` holds the layers for p = i/resolution."""
    return tuple(target_layers(i / resolution, num_layers, policy) for i in range(resolution + 1))


# ----------------------------------------------------------------------------- position bias


@dataclass(frozen=True)
class PositionBiasProfile:
    """A measured position-bias profile: accuracy at relative positions (the benchmark issue writes these).

    JSON form: ``{"relative_positions": [0.0, ...], "accuracy": [0.95, ...], "model": "..."}`` (``positions``
    with 1-based indices and a ``total`` are accepted too).
    """

    relative_positions: tuple[float, ...]
    accuracy: tuple[float, ...]
    model: str | None = None

    def __post_init__(self) -> None:
        xs = tuple(float(x) for x in self.relative_positions)
        ys = tuple(float(y) for y in self.accuracy)
        object.__setattr__(self, "relative_positions", xs)
        object.__setattr__(self, "accuracy", ys)
        if len(xs) != len(ys) or len(xs) < 2:
            raise ConfigurationError(
                f"A PositionBiasProfile needs >= 2 positions and one accuracy per position; got {len(xs)} "
                f"positions and {len(ys)} accuracies."
            )
        if list(xs) != sorted(set(xs)) or not all(0.0 <= x <= 1.0 for x in xs):
            raise ConfigurationError(f"Profile positions must be strictly increasing in [0, 1]; got {xs}.")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PositionBiasProfile:
        if "relative_positions" in data:
            xs = list(data["relative_positions"])
        elif "positions" in data:
            positions = [int(p) for p in data["positions"]]
            total = int(data.get("total") or max(positions))
            xs = [0.0 if total == 1 else (p - 1) / (total - 1) for p in positions]
        else:
            raise ConfigurationError(
                "A position-bias profile needs 'relative_positions' (in [0, 1]) or 'positions' (1-based) "
                f"and 'accuracy'; got keys {sorted(data)}."
            )
        if "accuracy" not in data:
            raise ConfigurationError(f"A position-bias profile needs 'accuracy'; got keys {sorted(data)}.")
        return cls(tuple(xs), tuple(data["accuracy"]), data.get("model"))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> PositionBiasProfile:
        file = Path(path)
        try:
            return cls.from_dict(json.loads(file.read_text()))
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigurationError(f"Cannot read a position-bias profile from {file}: {exc}.") from exc

    def curve(self, low: float = 0.7, high: float = 1.5, tolerance: float = PROFILE_TOLERANCE) -> IntensityCurve:
        """Steer hardest where accuracy is lowest: best position → ``low``x, worst → ``high``x, linear between.

        A profile whose accuracies differ by at most ``tolerance`` is flat (the same as :meth:`shape`).
        """
        best, worst = max(self.accuracy), min(self.accuracy)
        if best - worst <= tolerance + 1e-12:
            return FLAT_CURVE
        points = [(x, low + (high - low) * (best - y) / (best - worst)) for x, y in self.positions()]
        return IntensityCurve.from_points(points, "measured")

    def positions(self) -> list[tuple[float, float]]:
        return list(zip(self.relative_positions, self.accuracy, strict=True))

    def shape(self, tolerance: float = PROFILE_TOLERANCE) -> str:
        """``flat``, ``u_curve``, ``recency`` or ``primacy``: :func:`posrag.bias.classify_bias`."""
        from posrag.bias import classify_bias

        return classify_bias(self.relative_positions, self.accuracy, tolerance)

    def reorder_strategy(self, tolerance: float = PROFILE_TOLERANCE) -> ReorderStrategy:
        """The ordering to pair with this profile (:func:`posrag.bias.recommend_ordering`)."""
        from posrag.bias import recommend_ordering

        return recommend_ordering(self.relative_positions, self.accuracy, tolerance)[0]  # type: ignore[return-value]

    def best_at(self, tolerance: float = PROFILE_TOLERANCE) -> str:
        """Where ``long_context`` should put the best document: the end this model reads better."""
        from posrag.bias import recommend_ordering

        return recommend_ordering(self.relative_positions, self.accuracy, tolerance)[1]

    def to_dict(self) -> dict[str, Any]:
        return {
            "relative_positions": list(self.relative_positions),
            "accuracy": list(self.accuracy),
            "model": self.model,
        }


@dataclass(frozen=True)
class BiasPreset:
    """What a ``position_bias`` setting implies: the default curve and the reorder strategy to pair with it."""

    name: str
    curve: IntensityCurve
    reorder_strategy: ReorderStrategy

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "curve": self.curve.to_dict(), "reorder_strategy": self.reorder_strategy}


BIAS_PRESETS: dict[str, BiasPreset] = {
    # Reads the end best: put the best document last, steer early documents hardest.
    "recency": BiasPreset("recency", STEP_CURVE, "recency"),
    # Reads both ends best: best documents at both ends, steer the middle hardest.
    "u_curve": BiasPreset("u_curve", U_CURVE, "long_context"),
    "flat": BiasPreset("flat", FLAT_CURVE, "none"),
}

PositionBias = BiasName | Literal["auto"] | PositionBiasProfile | Mapping[str, Any] | str | os.PathLike[str]


def resolve_position_bias(bias: PositionBias) -> BiasPreset:
    """A preset from a name (``recency``/``u_curve``/``flat``), a profile, a profile dict, or a JSON path."""
    if isinstance(bias, str) and bias in BIAS_PRESETS:
        return BIAS_PRESETS[bias]
    if isinstance(bias, Mapping):
        bias = PositionBiasProfile.from_dict(bias)
    elif isinstance(bias, (str, os.PathLike)):
        if not Path(bias).is_file():
            raise ConfigurationError(
                f"position_bias={bias!r} is neither a preset ({', '.join(BIAS_PRESETS)}) nor a profile JSON file."
            )
        bias = PositionBiasProfile.load(bias)
    elif (
        not isinstance(bias, PositionBiasProfile) and hasattr(bias, "relative_positions") and hasattr(bias, "accuracy")
    ):
        # Any profile-like object, e.g. posrag.bench.profile.BiasProfile.
        bias = PositionBiasProfile(tuple(bias.relative_positions), tuple(bias.accuracy), getattr(bias, "model", None))
    if isinstance(bias, PositionBiasProfile):
        return BiasPreset("measured", bias.curve(), bias.reorder_strategy())
    raise ConfigurationError(
        f"position_bias={bias!r} must be one of {', '.join(BIAS_PRESETS)}, a PositionBiasProfile, a profile "
        "dict or a path to a profile JSON file."
    )


# ----------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class SteeringConfig:
    """How to steer. Defaults come from a quick measurement on the embedded Gemma 3 270M (docs/steering.md):
    attention bias 3.0 at every layer lifted a mid-context answer from 45 % to 100 %, while activation
    steering did not help on that task (0.02 is the largest intensity that did not hurt).

    ``mechanism``: ``activation`` (add a vector to the residual stream), ``attention`` (bias attention
    scores toward the documents) or ``both``. ``base_intensity``: the activation vector's norm as a fraction
    of the hidden state's norm at multiplier 1.0. ``curve``: a built-in name, an :class:`IntensityCurve`
    or ``(p, multiplier)`` points; ``None`` takes the ``position_bias`` preset's curve. ``layer_policy``:
    ``zones``, ``shifted`` or ``all`` (activation steering's layers). ``retrieval_threshold``: documents
    scoring under it get ghost steering (0.3x). ``top_k``: only the ``top_k`` best-scored targets of a
    request are steered, the others not at all (unscored targets are never dropped; ``None`` steers all):
    boosting every retrieved document pulls attention toward the distractors too, even as ghosts.
    ``no_steer_above``: documents with p above it are not steered. ``attention_bias``: the additive
    attention-score bias (log scale) at multiplier 1.0; ``attention_layers``: ``all`` layers or the
    ``planned`` zone layers. ``vector_source``: ``hidden_mean`` (the model's own mean hidden state over the
    document) or ``embedding`` (a sentence-transformer embedding aligned to the model's width). ``center``:
    subtract the mean hidden state of the whole context from a document's mean, so the vector points at what
    is specific to that document.
    """

    mechanism: Mechanism = "attention"
    base_intensity: float = 0.02
    curve: CurveSpec | None = None
    layer_policy: LayerPolicy = "zones"
    retrieval_threshold: float | None = None
    top_k: int | None = 1
    no_steer_above: float | None = None
    position_bias: PositionBias = "recency"
    attention_bias: float = 3.0
    attention_layers: AttentionLayers = "all"
    vector_source: VectorSource = "hidden_mean"
    center: bool = True
    _resolved_curve: IntensityCurve = field(init=False, repr=False, compare=False)
    _preset: BiasPreset = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_choice("mechanism", self.mechanism, MECHANISMS)
        _check_choice("layer_policy", self.layer_policy, LAYER_POLICIES)
        _check_choice("vector_source", self.vector_source, VECTOR_SOURCES)
        _check_choice("attention_layers", self.attention_layers, get_args(AttentionLayers))
        if not math.isfinite(self.base_intensity) or self.base_intensity < 0:
            raise ConfigurationError(f"base_intensity must be a finite number >= 0; got {self.base_intensity}.")
        if not math.isfinite(self.attention_bias) or self.attention_bias < 0:
            raise ConfigurationError(f"attention_bias must be a finite number >= 0; got {self.attention_bias}.")
        if self.top_k is not None and self.top_k < 1:
            raise ConfigurationError(f"top_k must be >= 1 or None (steer every document fully); got {self.top_k}.")
        if self.no_steer_above is not None and not 0.0 <= self.no_steer_above <= 1.0:
            raise ConfigurationError(f"no_steer_above must be in [0, 1] or None; got {self.no_steer_above}.")
        if self.needs_profile:  # resolved by the model that uses it (resolve_auto)
            object.__setattr__(self, "_preset", None)
            object.__setattr__(self, "_resolved_curve", None if self.curve is None else resolve_curve(self.curve))
            return
        preset = resolve_position_bias(self.position_bias)
        object.__setattr__(self, "_preset", preset)
        object.__setattr__(self, "_resolved_curve", preset.curve if self.curve is None else resolve_curve(self.curve))

    @property
    def needs_profile(self) -> bool:
        """``position_bias="auto"``, not yet resolved to a model's measured profile (see :meth:`resolve_auto`)."""
        return isinstance(self.position_bias, str) and self.position_bias == "auto"

    def resolve_auto(self, model_name: str | None) -> SteeringConfig:
        """This configuration with ``position_bias="auto"`` replaced by ``model_name``'s saved profile.

        Profiles are measured and saved by ``posrag profile`` (:mod:`posrag.bench.profile`). Any other
        ``position_bias`` is returned unchanged. A model without a saved profile raises a clear error.
        """
        if not self.needs_profile:
            return self
        from posrag.bench.profile import resolve_position_bias as resolve_saved_profile

        profile = resolve_saved_profile("auto", model_name)
        return replace(self, position_bias=profile.to_steering_profile())  # type: ignore[union-attr]

    def _require_resolved(self) -> None:
        if self.needs_profile:
            raise ConfigurationError(
                "position_bias='auto' is resolved by the model that uses it: pass this config to "
                "SteeredGenerator (or posrag's LLM classes), or call config.resolve_auto(model_name) first."
            )

    @property
    def resolved_curve(self) -> IntensityCurve:
        if self._resolved_curve is None:
            self._require_resolved()
        return self._resolved_curve

    @property
    def reorder_strategy(self) -> ReorderStrategy:
        """The reorder strategy that the ``position_bias`` preset pairs with this configuration."""
        self._require_resolved()
        return self._preset.reorder_strategy

    @property
    def uses_activation(self) -> bool:
        return self.mechanism in ("activation", "both")

    @property
    def uses_attention(self) -> bool:
        return self.mechanism in ("attention", "both")

    def to_dict(self) -> dict[str, Any]:
        bias = self.position_bias
        return {
            "mechanism": self.mechanism,
            "base_intensity": self.base_intensity,
            "curve": None if self._resolved_curve is None else self._resolved_curve.to_dict(),
            "layer_policy": self.layer_policy,
            "retrieval_threshold": self.retrieval_threshold,
            "top_k": self.top_k,
            "no_steer_above": self.no_steer_above,
            "position_bias": bias.to_dict()
            if isinstance(bias, PositionBiasProfile)
            else str(bias)
            if isinstance(bias, (str, os.PathLike))
            else dict(bias),
            "reorder_strategy": None if self._preset is None else self._preset.reorder_strategy,
            "attention_bias": self.attention_bias,
            "attention_layers": self.attention_layers,
            "vector_source": self.vector_source,
            "center": self.center,
        }


def _check_choice(name: str, value: str, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise ConfigurationError(f"{name}={value!r} is not one of {', '.join(map(repr, allowed))}.")


# ----------------------------------------------------------------------------- planning


@dataclass(frozen=True)
class SteeringTarget:
    """A document's character span ``[start_char, end_char)`` in the prompt text, with what the policy needs."""

    start_char: int
    end_char: int
    relative_position: float
    score: float | None = None
    rule_type: str | None = None
    doc_id: str | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.start_char < self.end_char:
            raise ConfigurationError(
                f"A SteeringTarget needs 0 <= start_char < end_char; got [{self.start_char}, {self.end_char})."
            )
        object.__setattr__(self, "relative_position", _check_position(self.relative_position))

    def to_dict(self) -> dict[str, Any]:
        return {
            "doc_id": self.doc_id,
            "start_char": self.start_char,
            "end_char": self.end_char,
            "relative_position": self.relative_position,
            "score": self.score,
            "rule_type": self.rule_type,
        }


@dataclass(frozen=True)
class PlannedSteer:
    """What the policy decided for one target: tier, multiplier, activation intensity, layers, attention bias."""

    target: SteeringTarget
    tier: Tier
    multiplier: float
    intensity: float
    zone: LayerZone
    layers: tuple[int, ...]
    attention_bias: float
    attention_layers: tuple[int, ...]

    @property
    def active(self) -> bool:
        return self.tier != "off" and self.multiplier > 0

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.target.to_dict(),
            "tier": self.tier,
            "multiplier": self.multiplier,
            "intensity": self.intensity,
            "zone": self.zone.to_dict(),
            "layers": list(self.layers),
            "attention_bias": self.attention_bias,
            "attention_layers": list(self.attention_layers),
        }


def tier_of(target: SteeringTarget, config: SteeringConfig, rank: int | None = None) -> Tier:
    """``off`` past ``no_steer_above`` or ranked beyond ``top_k`` (``rank``: 0 = best score among the request's
    scored targets); ``ghost`` under the retrieval threshold; ``full`` otherwise."""
    if config.no_steer_above is not None and target.relative_position > config.no_steer_above:
        return "off"
    if (
        config.retrieval_threshold is not None
        and target.score is not None
        and target.score < config.retrieval_threshold
    ):
        return "ghost"
    if config.top_k is not None and rank is not None and rank >= config.top_k:
        return "off"
    return "full"


def score_ranks(targets: Sequence[SteeringTarget]) -> list[int | None]:
    """Each target's rank by score among the scored targets (0 = best; ties keep prompt order); None if unscored."""
    scored = sorted((i for i, t in enumerate(targets) if t.score is not None), key=lambda i: -float(targets[i].score))  # type: ignore[arg-type]
    ranks: list[int | None] = [None] * len(targets)
    for rank, index in enumerate(scored):
        ranks[index] = rank
    return ranks


def plan_steering(
    targets: Sequence[SteeringTarget], config: SteeringConfig, num_layers: int
) -> tuple[PlannedSteer, ...]:
    """The per-target plan for a model with ``num_layers`` decoder layers (pure; no model needed)."""
    all_layers = tuple(range(num_layers))
    plans = []
    for target, rank in zip(targets, score_ranks(targets), strict=True):
        tier = tier_of(target, config, rank)
        multiplier = 0.0 if tier == "off" else config.resolved_curve(target.relative_position)
        if tier == "ghost":
            multiplier *= GHOST_MULTIPLIER
        zone = layer_zone(target.relative_position, config.layer_policy, target.rule_type)
        layers = zone.layers(num_layers)
        on = multiplier > 0
        plans.append(
            PlannedSteer(
                target=target,
                tier=tier,
                multiplier=multiplier,
                intensity=config.base_intensity * multiplier if config.uses_activation and on else 0.0,
                zone=zone,
                layers=layers if config.uses_activation and on else (),
                attention_bias=config.attention_bias * multiplier if config.uses_attention and on else 0.0,
                attention_layers=(all_layers if config.attention_layers == "all" else layers)
                if config.uses_attention and on
                else (),
            )
        )
    return tuple(plans)


__all__ = [
    "BIAS_PRESETS",
    "BUILTIN_CURVES",
    "FLAT_CURVE",
    "GHOST_MULTIPLIER",
    "LINEAR_CURVE",
    "POSITION_ZONES",
    "RULE_TYPE_ZONES",
    "STEP_CURVE",
    "U_CURVE",
    "BiasPreset",
    "IntensityCurve",
    "LayerZone",
    "PlannedSteer",
    "PositionBiasProfile",
    "SteeringConfig",
    "SteeringTarget",
    "layer_zone",
    "plan_steering",
    "position_layer_map",
    "resolve_curve",
    "resolve_position_bias",
    "target_layers",
    "tier_of",
    "zone_layers",
]
