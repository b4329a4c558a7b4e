"""Position-graduated steering: steer a local LLM toward the retrieved documents, hardest where it reads worst.

Split like a peft method. The policy, pure and testable without a model: :mod:`~posrag.steering.curves`
(relative position → intensity multiplier), :mod:`~posrag.steering.zones` (relative position → layers),
:mod:`~posrag.steering.config` (:class:`SteeringConfig`, ``position_bias`` presets) and
:mod:`~posrag.steering.planning` (tiers, :func:`plan_steering`). Then :mod:`~posrag.steering.request_plan` (one
request planned for any backend: token spans, the first steered token, the targets acting at each layer),
:mod:`~posrag.steering.activation` and :mod:`~posrag.steering.attention` (the two mechanisms' torch hook
factories), :mod:`~posrag.steering.hooks` (registration that always undoes itself, request scoping) and
:mod:`~posrag.steering.spans` (character → token spans). What generates is :class:`posrag.engine.Engine`, the
object to use. Which documents an LLM call steers, and how hard, is
:mod:`~posrag.steering.selection` (request-level ranks, posrag's own relevance for unscored documents,
:mod:`~posrag.steering.confidence`); targets are built in :mod:`~posrag.steering.targets`, traces are
:mod:`~posrag.steering.trace`.
"""

from posrag.steering.activation import align_dimension, orthogonal_steer
from posrag.steering.config import BIAS_PRESETS, BiasPreset, SteeringConfig, bias_preset
from posrag.steering.curves import BUILTIN_CURVES, IntensityCurve, measured_curve, resolve_curve
from posrag.steering.hooks import Handle, HookSpec, RequestScope, hook_counts, patch, patched
from posrag.steering.planning import PlannedSteer, SteeringTarget, plan_steering
from posrag.steering.request_plan import RequestPlan, plan_request
from posrag.steering.selection import SelectionSummary, select_targets
from posrag.steering.spans import TokenSpan, char_span_to_tokens, encode_with_offsets
from posrag.steering.targets import targets_from_prompt
from posrag.steering.trace import SteeredGeneration, SteeringTraceEntry
from posrag.steering.zones import (
    RULE_TYPE_ZONES,
    LayerZone,
    layer_zone,
    position_layer_map,
    target_layers,
    zone_layers,
)

__all__ = [
    "BIAS_PRESETS",
    "BUILTIN_CURVES",
    "RULE_TYPE_ZONES",
    "BiasPreset",
    "Handle",
    "HookSpec",
    "IntensityCurve",
    "LayerZone",
    "PlannedSteer",
    "RequestPlan",
    "RequestScope",
    "SelectionSummary",
    "SteeredGeneration",
    "SteeringConfig",
    "SteeringTarget",
    "SteeringTraceEntry",
    "TokenSpan",
    "align_dimension",
    "bias_preset",
    "char_span_to_tokens",
    "encode_with_offsets",
    "hook_counts",
    "layer_zone",
    "measured_curve",
    "orthogonal_steer",
    "patch",
    "patched",
    "plan_request",
    "plan_steering",
    "position_layer_map",
    "resolve_curve",
    "select_targets",
    "target_layers",
    "targets_from_prompt",
    "zone_layers",
]
