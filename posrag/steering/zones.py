"""Layer zones: where in the layer stack a document at relative position p is steered.

The seed's Strategy 2: p < 0.2 → layers at 40–55 % of depth, < 0.6 → 55–70 %, else 70–85 % (``zones``), or
the ``shifted`` variant whose 15 %-wide zone slides linearly from 40–55 % at p = 0 to 70–85 % at p = 1, or
``all`` layers. Strategy 5 (rule-type safe zones): a document whose metadata carries a rule type
(DEFINITION, REGULATORY, PROCEDURAL, EXCEPTION, DEFAULT) is steered in that type's zone instead. A zone
(fractions of depth) becomes physical layer indices with :func:`zone_layers` for any depth, cached per
(depth, zone). Pure functions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal, get_args

from posrag._validation import check_choice, check_int, check_number, check_position
from posrag.errors import ConfigurationError

LayerPolicy = Literal["zones", "shifted", "all"]
LAYER_POLICIES: tuple[str, ...] = get_args(LayerPolicy)


@dataclass(frozen=True)
class LayerZone:
    """A band of depth ``[start, end]`` as fractions of the layer stack (0 = first layer, 1 = last)."""

    start: float
    end: float

    def __post_init__(self) -> None:
        start = check_number("LayerZone start", self.start, 0.0, 1.0, hint=" (a fraction of depth)")
        end = check_number("LayerZone end", self.end, 0.0, 1.0, hint=" (a fraction of depth)")
        if start > end:
            raise ConfigurationError(f"A LayerZone needs start <= end (fractions of depth); got {start}–{end}.")
        object.__setattr__(self, "start", start)
        object.__setattr__(self, "end", end)

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
    num_layers = check_int("num_layers", num_layers, 1)
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
    p = check_position(p)
    if rule_type:
        return RULE_TYPE_ZONES.get(str(rule_type).strip().upper(), RULE_TYPE_ZONES["DEFAULT"])
    check_choice("layer_policy", policy, LAYER_POLICIES)
    if policy == "zones":
        return next(zone for bound, zone in POSITION_ZONES if p < bound)
    if policy == "shifted":
        start = SHIFTED_ZONE_START + SHIFTED_ZONE_TRAVEL * p
        return LayerZone(round(start, 10), round(start + SHIFTED_ZONE_WIDTH, 10))
    return LayerZone(0.0, 1.0)


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


__all__ = [
    "LAYER_POLICIES",
    "RULE_TYPE_ZONES",
    "LayerPolicy",
    "LayerZone",
    "layer_zone",
    "position_layer_map",
    "target_layers",
    "zone_layers",
]
