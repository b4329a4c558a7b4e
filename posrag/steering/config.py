"""How to steer: :class:`SteeringConfig`, validated at construction, and the ``position_bias`` presets.

A ``position_bias`` (``recency``, ``u_curve``, ``flat``, ``"auto"`` or a measured
:class:`~posrag.profiles.BiasProfile`, read by :func:`posrag.profiles.resolve`) picks the default intensity
curve and the reorder strategy to pair with it (:func:`bias_preset`).
"""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, get_args

from posrag import profiles
from posrag._validation import check_bool, check_choice, check_int, check_number
from posrag.calibration import MAX_ATTENTION_BIAS, UNCALIBRATED, SteeringCalibration
from posrag.errors import ConfigurationError
from posrag.ordering import Strategy as ReorderStrategy
from posrag.profiles import BiasProfile, PositionBias
from posrag.steering.curves import (
    FLAT_CURVE,
    STEP_CURVE,
    U_CURVE,
    CurveSpec,
    IntensityCurve,
    measured_curve,
    resolve_curve,
)
from posrag.steering.zones import LAYER_POLICIES, LayerPolicy

Mechanism = Literal["activation", "attention", "both"]
VectorSource = Literal["hidden_mean", "embedding"]
UnscoredSteering = Literal["relevance", "passage", "all", "off"]
UNSCORED_STEERING: tuple[str, ...] = ("relevance", "passage", "all", "off")
#: The ``unscored`` choices that rank a request's documents by posrag's own relevance.
RANKED_BY_RELEVANCE: tuple[str, ...] = ("relevance", "passage")
AttentionLayers = Literal["all", "planned"]

MECHANISMS: tuple[str, ...] = get_args(Mechanism)
VECTOR_SOURCES: tuple[str, ...] = get_args(VectorSource)
ATTENTION_LAYERS: tuple[str, ...] = get_args(AttentionLayers)

#: Upper bound of the activation intensity at multiplier 1.0: far beyond what helps (docs/steering.md measured
#: 0.02 as the default), and small enough that a curve's multiplier (<= 100) keeps every product finite. The
#: attention bias's bound is :data:`posrag.calibration.MAX_ATTENTION_BIAS`.
MAX_BASE_INTENSITY = 10.0


# ----------------------------------------------------------------------------- position-bias presets


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


def bias_preset(bias: PositionBias, model_name: str | None = None) -> BiasPreset:
    """The preset of a ``position_bias`` value: a named one, or ``"measured"`` for a profile (its curve
    steers hardest where the model reads worst, its shape picks the reorder strategy)."""
    resolved = profiles.resolve(bias, model_name)
    if isinstance(resolved, str):
        return BIAS_PRESETS[resolved]
    return BiasPreset("measured", measured_curve(resolved), resolved.reorder_strategy())  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- calibration

#: The preset a ``position_bias`` left unset stands for when the model has no measured profile.
DEFAULT_POSITION_BIAS = "recency"
CALIBRATED_HINT = " (or None: the model's calibration, `posrag calibrate`)"
_WARNED: set[str] = set()
_WARNED_LOCK = threading.Lock()


def band_curve(calibration: SteeringCalibration) -> IntensityCurve:
    """The step curve that gives each band of ``calibration`` its bias (as a fraction of the largest)."""
    return IntensityCurve("step", calibration.curve_points(), name="calibrated")


def _warn_uncalibrated(model_name: str | None) -> None:
    name = model_name or "this model"
    looked = f"{profiles.profile_path(model_name)} and posrag's shipped profiles" if model_name else "no file"
    with _WARNED_LOCK:
        if name in _WARNED:
            return
        _WARNED.add(name)
    flag = f" --model {model_name}" if model_name else " --model <path or id>"
    warnings.warn(
        f"posrag has no steering calibration for {name!r} (looked at {looked}), so steering uses the "
        f"conservative uncalibrated preset (attention bias {UNCALIBRATED.attention_bias}, half that on the last "
        f"document). Measure settings that suit this model with `posrag calibrate{flag}` (minutes on a CPU), or "
        "pass SteeringConfig fields explicitly.",
        UserWarning,
        stacklevel=3,
    )


def _attention_layers(value: Any) -> Any:
    if value is None or (isinstance(value, str) and value in ATTENTION_LAYERS):
        return value
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or not value:
        raise ConfigurationError(
            f"attention_layers={value!r} must be one of {', '.join(ATTENTION_LAYERS)}, a non-empty list of layer "
            "indices, or None (the model's calibration)."
        )
    return tuple(sorted({check_int("attention_layers entry", layer, 0) for layer in value}))


def _layers_json(value: str | tuple[int, ...]) -> str | list[int]:
    return value if isinstance(value, str) else list(value)


# ----------------------------------------------------------------------------- configuration


def _optional(name: str, value: Any, check: Any, *args: Any, **kwargs: Any) -> Any:
    return None if value is None else check(name, value, *args, **kwargs)


@dataclass(frozen=True)
class SteeringConfig:
    """How to steer. Settings left unset (``attention_bias``, ``attention_layers``, ``curve`` with
    ``position_bias``) follow the model's calibration when :class:`~posrag.engine.Engine` (so the LLM classes)
    resolves the configuration (:func:`resolve_steering`): the attention bias by position band and the layers that
    ``posrag calibrate`` measured for this model (shipped with posrag for the packaged Gemma 3 270M), else a
    conservative uncalibrated preset with a one-time warning. Settings you give are kept as given; the seed's
    curves stay available by name (``curve="step"``, ``position_bias="recency"`` ...).

    ``mechanism``: ``activation`` (add a vector to the residual stream), ``attention`` (bias attention
    scores toward the documents) or ``both``. ``base_intensity`` (0–10): the activation vector's norm as a
    fraction of the hidden state's norm at multiplier 1.0. ``curve``: a built-in name, an
    :class:`IntensityCurve` or ``(p, multiplier)`` points; ``None`` takes the ``position_bias`` preset's
    curve. ``layer_policy``: ``zones``, ``shifted`` or ``all`` (activation steering's layers).
    ``retrieval_threshold`` (a finite score): documents scoring under it get ghost steering (0.3x). ``top_k``
    (an int >= 1): only the ``top_k`` best-scored targets of a request are steered, the others not at all
    (unscored targets are never dropped; ``None`` steers all): boosting every retrieved document pulls
    attention toward the distractors too, even as ghosts. ``no_steer_above`` (in [0, 1]): documents with p
    above it are not steered. ``attention_bias`` (0–100): the additive attention-score bias (log scale) at
    multiplier 1.0; ``attention_layers``: ``all`` layers, the ``planned`` zone layers, or a list of layer
    indices. ``vector_source``:
    ``hidden_mean`` (the model's own mean hidden state over the document) or ``embedding`` (a
    sentence-transformer embedding aligned to the model's width). ``center``: subtract the mean hidden state
    of the whole context from a document's mean, so the vector points at what is specific to that document.

    Which documents, when the LLM classes find a request's documents in their prompt
    (:mod:`~posrag.steering.selection`): ``top_k`` and the tiers are decided over *all* of the request's
    documents, not per LLM call. ``confidence`` (off by default): scale the steered top document(s) by how sure
    the request's ranking is (:mod:`~posrag.steering.confidence`: a small margin between the best and the next
    document, in units of the scores' spread, steers little); on NQ and the hard synthetic set it weakened
    correct top-1s more than it spared wrong ones (``docs/litm-retrieval.md``), so it is opt-in until it is
    calibrated per model. ``unscored``: what to do when the request's documents
    carry no score (a standard retriever): ``relevance`` ranks them by posrag's own relevance (the packaged
    embedder's similarity of the query to each document's title and text plus that of its best sentence,
    :mod:`posrag.relevance`), ``passage`` by the passage's similarity alone (about 3x faster, and wrong more
    often: ``docs/relevance.md``), ``all`` steers every one (the old behaviour), ``off`` steers none.

    Every field is checked here; a bad one raises :class:`~posrag.errors.ConfigurationError` naming the
    field, the value and what is allowed.
    """

    mechanism: Mechanism = "attention"
    base_intensity: float = 0.02
    curve: CurveSpec | None = None
    layer_policy: LayerPolicy = "zones"
    retrieval_threshold: float | None = None
    top_k: int | None = 1
    no_steer_above: float | None = None
    position_bias: PositionBias | None = None
    attention_bias: float | None = None
    attention_layers: AttentionLayers | Sequence[int] | None = None
    vector_source: VectorSource = "hidden_mean"
    center: bool = True
    confidence: bool = False
    unscored: UnscoredSteering = "relevance"
    _resolved_curve: IntensityCurve = field(init=False, repr=False, compare=False)
    _preset: BiasPreset = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_choice("mechanism", self.mechanism, MECHANISMS)
        check_choice("layer_policy", self.layer_policy, LAYER_POLICIES)
        check_choice("vector_source", self.vector_source, VECTOR_SOURCES)
        object.__setattr__(self, "attention_layers", _attention_layers(self.attention_layers))
        check_bool("center", self.center)
        check_bool("confidence", self.confidence)
        check_choice("unscored", self.unscored, UNSCORED_STEERING)
        numbers = {
            "base_intensity": check_number("base_intensity", self.base_intensity, 0.0, MAX_BASE_INTENSITY),
            "attention_bias": _optional(
                "attention_bias", self.attention_bias, check_number, 0.0, MAX_ATTENTION_BIAS, hint=CALIBRATED_HINT
            ),
            "retrieval_threshold": _optional(
                "retrieval_threshold", self.retrieval_threshold, check_number, hint=" (or None: no ghost tier)"
            ),
            "top_k": _optional("top_k", self.top_k, check_int, 1, hint=" (or None: steer every document fully)"),
            "no_steer_above": _optional("no_steer_above", self.no_steer_above, check_number, 0.0, 1.0),
        }
        for name, value in numbers.items():
            object.__setattr__(self, name, value)
        curve = None if self.curve is None else resolve_curve(self.curve)
        if self.needs_profile:  # resolved by the model that uses it (resolve_steering)
            object.__setattr__(self, "_preset", None)
            object.__setattr__(self, "_resolved_curve", curve)
            return
        preset = bias_preset(DEFAULT_POSITION_BIAS if self.position_bias is None else self.position_bias)
        if curve is None:  # no curve, no position_bias: the calibration's band curve (uncalibrated until resolved)
            curve = preset.curve if self.position_bias is not None else band_curve(UNCALIBRATED)
        object.__setattr__(self, "_preset", preset)
        object.__setattr__(self, "_resolved_curve", curve)

    @property
    def needs_profile(self) -> bool:
        """``position_bias="auto"``, not yet resolved to a model's measured profile (see :func:`resolve_steering`)."""
        return isinstance(self.position_bias, str) and self.position_bias == "auto"

    @property
    def needs_calibration(self) -> bool:
        """Whether a setting is left to the model's calibration (``attention_bias``, ``attention_layers``, or
        both ``curve`` and ``position_bias`` unset): see :func:`resolve_steering`."""
        return (
            self.attention_bias is None
            or self.attention_layers is None
            or (self.curve is None and self.position_bias is None)
        )

    @property
    def resolved_attention_bias(self) -> float:
        """``attention_bias``, or the uncalibrated preset's while it is left to a calibration not yet resolved."""
        return UNCALIBRATED.attention_bias if self.attention_bias is None else self.attention_bias

    @property
    def resolved_attention_layers(self) -> str | tuple[int, ...]:
        """``attention_layers`` (``all``, ``planned`` or layer indices), ``all`` while left to a calibration."""
        if self.attention_layers is None:
            return UNCALIBRATED.attention_layers or "all"
        return self.attention_layers

    def _require_resolved(self) -> None:
        if self.needs_profile:
            raise ConfigurationError(
                "position_bias='auto' is resolved by the model that uses it: pass this config to "
                "posrag.engine.Engine (or posrag's LLM classes), or call resolve_steering(config, model_name) first."
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
            if isinstance(bias, BiasProfile)
            else str(bias)
            if isinstance(bias, (str, os.PathLike))
            else BiasProfile.from_dict(bias).to_dict()  # the profile it stands for, in JSON (a given dict may not be)
            if isinstance(bias, Mapping)
            else repr(bias),
            "reorder_strategy": None if self._preset is None else self._preset.reorder_strategy,
            "attention_bias": self.resolved_attention_bias,
            "attention_layers": _layers_json(self.resolved_attention_layers),
            "calibrated": not self.needs_calibration,
            "vector_source": self.vector_source,
            "center": self.center,
            "confidence": self.confidence,
            "unscored": self.unscored,
        }


def resolve_steering(
    config: SteeringConfig | None,
    model: str | os.PathLike[str] | profiles.ModelIdentity | None,
    num_layers: int | None = None,
    *,
    warn: bool = True,
) -> SteeringConfig:
    """``config`` (default ``SteeringConfig()``) with what it leaves to the model filled from its profile.

    The one place a model's stored profile (:func:`posrag.profiles.model_profile`: the user's, by the model's
    identity, then the one shipped with posrag) becomes steering settings, called once by whatever steers the
    model. ``position_bias="auto"`` becomes the model's measured profile (a model without one raises a clear
    error). Unset ``attention_bias``, ``attention_layers`` and (when ``position_bias`` is unset too) ``curve``
    take the calibrated bias by band and layers; an unset ``position_bias`` takes the model's profile (for the
    reorder strategy). A model without a calibration, or whose calibration is for another layer count than
    ``num_layers``, gets the conservative uncalibrated preset (:data:`posrag.calibration.UNCALIBRATED`) and a
    one-time warning naming the files looked at and ``posrag calibrate``. Settings you gave are never changed.
    """
    config = SteeringConfig() if config is None else config
    if not (config.needs_profile or config.needs_calibration):
        return config
    profile = None if not model else profiles.model_profile(model, num_layers=num_layers)
    name = None if not model else os.fspath(model) if not isinstance(model, profiles.ModelIdentity) else model.name
    if config.needs_profile:
        if profile is None:
            profiles.resolve("auto", name)  # raises the error that names where it looked
        config = replace(config, position_bias=profile)
    if not config.needs_calibration:
        return config
    calibration = None if profile is None else profile.steering
    if calibration is None:
        calibration = UNCALIBRATED
        if warn:
            _warn_uncalibrated(name)
    return replace(
        config,
        attention_bias=calibration.attention_bias if config.attention_bias is None else config.attention_bias,
        attention_layers=(calibration.attention_layers or "all")
        if config.attention_layers is None
        else config.attention_layers,
        curve=band_curve(calibration) if config.curve is None and config.position_bias is None else config.curve,
        position_bias=(profile or DEFAULT_POSITION_BIAS) if config.position_bias is None else config.position_bias,
    )


__all__ = [
    "BIAS_PRESETS",
    "MAX_BASE_INTENSITY",
    "RANKED_BY_RELEVANCE",
    "UNSCORED_STEERING",
    "AttentionLayers",
    "BiasPreset",
    "Mechanism",
    "ReorderStrategy",
    "SteeringConfig",
    "UnscoredSteering",
    "VectorSource",
    "band_curve",
    "bias_preset",
    "resolve_steering",
]
