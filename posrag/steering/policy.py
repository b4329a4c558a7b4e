"""Compatibility re-exports: the steering policy now lives in one module per concept.

* :mod:`posrag.steering.curves`: intensity curves (relative position → multiplier).
* :mod:`posrag.steering.zones`: layer zones (relative position or rule type → layers).
* :mod:`posrag.steering.config`: :class:`SteeringConfig` and the ``position_bias`` presets.
* :mod:`posrag.steering.planning`: targets, tiers and :func:`plan_steering`.
* :mod:`posrag.profiles`: the measured position-bias profile, :class:`posrag.profiles.BiasProfile`.

Import from those modules; this one only keeps the old import path ``posrag.steering.policy`` working.
"""

from __future__ import annotations

from posrag.bias import DEFAULT_TOLERANCE
from posrag.profiles import BiasName, PositionBias
from posrag.steering.config import (
    BIAS_PRESETS,
    MECHANISMS,
    VECTOR_SOURCES,
    AttentionLayers,
    BiasPreset,
    Mechanism,
    ReorderStrategy,
    SteeringConfig,
    VectorSource,
)
from posrag.steering.curves import (
    BUILTIN_CURVES,
    FLAT_CURVE,
    LINEAR_CURVE,
    STEP_CURVE,
    U_CURVE,
    BuiltinCurve,
    CurveSpec,
    IntensityCurve,
    resolve_curve,
)
from posrag.steering.planning import (
    GHOST_MULTIPLIER,
    PlannedSteer,
    SteeringTarget,
    Tier,
    plan_steering,
    score_ranks,
    tier_of,
)
from posrag.steering.zones import (
    LAYER_POLICIES,
    POSITION_ZONES,
    RULE_TYPE_ZONES,
    LayerPolicy,
    LayerZone,
    layer_zone,
    position_layer_map,
    target_layers,
    zone_layers,
)

#: The one profile tolerance (:data:`posrag.bias.DEFAULT_TOLERANCE`) under its former steering name.
PROFILE_TOLERANCE = DEFAULT_TOLERANCE

__all__ = [
    "BIAS_PRESETS",
    "BUILTIN_CURVES",
    "FLAT_CURVE",
    "GHOST_MULTIPLIER",
    "LAYER_POLICIES",
    "LINEAR_CURVE",
    "MECHANISMS",
    "POSITION_ZONES",
    "PROFILE_TOLERANCE",
    "RULE_TYPE_ZONES",
    "STEP_CURVE",
    "U_CURVE",
    "VECTOR_SOURCES",
    "AttentionLayers",
    "BiasName",
    "BiasPreset",
    "BuiltinCurve",
    "CurveSpec",
    "IntensityCurve",
    "LayerPolicy",
    "LayerZone",
    "Mechanism",
    "PlannedSteer",
    "PositionBias",
    "ReorderStrategy",
    "SteeringConfig",
    "SteeringTarget",
    "Tier",
    "VectorSource",
    "layer_zone",
    "plan_steering",
    "position_layer_map",
    "resolve_curve",
    "score_ranks",
    "target_layers",
    "tier_of",
    "zone_layers",
]
