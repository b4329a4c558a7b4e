"""Position-graduated steering: steer a local LLM toward the retrieved documents, hardest where it reads worst.

Split like a peft method: :mod:`~posrag.steering.policy` (pure: curves, layer zones, tiers, presets,
:func:`plan_steering`), :mod:`~posrag.steering.activation` and :mod:`~posrag.steering.attention` (the two
mechanisms' hook factories), :mod:`~posrag.steering.hooks` (registration that always undoes itself, request
scoping), :mod:`~posrag.steering.spans` (character → token spans) and :mod:`~posrag.steering.generator`
(:class:`SteeredGenerator`, the object to use).
"""

from posrag.steering.activation import align_dimension, orthogonal_steer
from posrag.steering.generator import (
    FormattedPrompt,
    PreparedSteering,
    SteeredGeneration,
    SteeredGenerator,
    SteeringTraceEntry,
    format_messages,
    resolve_model,
    targets_from_prompt,
)
from posrag.steering.hooks import Handle, HookSpec, RequestScope, hook_counts, patch, patched
from posrag.steering.policy import (
    BIAS_PRESETS,
    BUILTIN_CURVES,
    RULE_TYPE_ZONES,
    BiasPreset,
    IntensityCurve,
    LayerZone,
    PlannedSteer,
    PositionBiasProfile,
    SteeringConfig,
    SteeringTarget,
    layer_zone,
    plan_steering,
    position_layer_map,
    resolve_curve,
    resolve_position_bias,
    target_layers,
    zone_layers,
)
from posrag.steering.spans import TokenSpan, char_span_to_tokens, encode_with_offsets

__all__ = [
    "BIAS_PRESETS",
    "BUILTIN_CURVES",
    "RULE_TYPE_ZONES",
    "BiasPreset",
    "FormattedPrompt",
    "Handle",
    "HookSpec",
    "IntensityCurve",
    "LayerZone",
    "PlannedSteer",
    "PositionBiasProfile",
    "PreparedSteering",
    "RequestScope",
    "SteeredGeneration",
    "SteeredGenerator",
    "SteeringConfig",
    "SteeringTarget",
    "SteeringTraceEntry",
    "TokenSpan",
    "align_dimension",
    "char_span_to_tokens",
    "encode_with_offsets",
    "format_messages",
    "hook_counts",
    "layer_zone",
    "orthogonal_steer",
    "patch",
    "patched",
    "plan_steering",
    "position_layer_map",
    "resolve_curve",
    "resolve_model",
    "resolve_position_bias",
    "target_layers",
    "targets_from_prompt",
    "zone_layers",
]
