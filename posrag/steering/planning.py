"""Planning: each document's tier, multiplier, activation intensity, layers and attention bias.

Where relative position p becomes an intensity and a set of layers: the curve (:mod:`~posrag.steering.curves`)
gives the multiplier, the zone (:mod:`~posrag.steering.zones`) the layers. Tiers: a document scoring under
``retrieval_threshold`` gets "ghost" steering (0.3x); one ranked below the request's ``top_k`` best-scored
documents is not steered (in the retrieval regime, steering distractors costs accuracy); with
``no_steer_above`` set, documents at p above it are not steered at all (the seed's over-steering risk).
Pure: :func:`plan_steering` needs no model, only its depth.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from posrag._validation import check_int, check_number, check_position
from posrag.errors import ConfigurationError
from posrag.ranking import ranks_by_score
from posrag.steering.config import SteeringConfig
from posrag.steering.zones import LayerZone, layer_zone

Tier = Literal["full", "ghost", "off"]

#: Multiplier of "ghost" steering for documents scoring under the retrieval threshold.
GHOST_MULTIPLIER = 0.3


@dataclass(frozen=True)
class SteeringTarget:
    """A document's character span ``[start_char, end_char)`` in the prompt text, with what the policy needs."""

    start_char: int
    end_char: int
    relative_position: float
    score: float | None = None
    rule_type: str | None = None
    doc_id: str | None = None
    #: The document's rank among *all* of its request's documents (0 = best), when the caller knows it: a
    #: multi-call synthesizer's call sees a few of them, but "best k" is decided per request. ``None``: ranked
    #: among the targets of this call by ``score``.
    rank: int | None = None
    #: A multiplier in [0, 1] on top of the curve (confidence-aware steering, :mod:`~posrag.steering.confidence`).
    weight: float = 1.0

    def __post_init__(self) -> None:
        if self.rank is not None:
            object.__setattr__(self, "rank", check_int("SteeringTarget rank", self.rank, 0))
        object.__setattr__(self, "weight", check_number("SteeringTarget weight", self.weight, 0.0, 1.0))
        start = check_int("SteeringTarget start_char", self.start_char, 0)
        end = check_int("SteeringTarget end_char", self.end_char, 0)
        if not start < end:
            raise ConfigurationError(
                f"A SteeringTarget needs 0 <= start_char < end_char; got [{self.start_char}, {self.end_char})."
            )
        object.__setattr__(self, "start_char", start)
        object.__setattr__(self, "end_char", end)
        object.__setattr__(self, "relative_position", check_position(self.relative_position))

    def to_dict(self) -> dict[str, Any]:
        return {
            "doc_id": self.doc_id,
            "start_char": self.start_char,
            "end_char": self.end_char,
            "relative_position": self.relative_position,
            "score": self.score,
            "rule_type": self.rule_type,
            "rank": self.rank,
            "weight": self.weight,
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
    """Each target's rank: the request-level ``rank`` where the caller set one on any target, else its rank by
    score among the scored targets (0 = best; ties keep prompt order); None if unranked."""
    if any(t.rank is not None for t in targets):
        return [t.rank for t in targets]
    return ranks_by_score([t.score for t in targets])


def plan_steering(
    targets: Sequence[SteeringTarget], config: SteeringConfig, num_layers: int
) -> tuple[PlannedSteer, ...]:
    """The per-target plan for a model with ``num_layers`` decoder layers (pure; no model needed)."""
    all_layers = tuple(range(num_layers))
    chosen = config.resolved_attention_layers
    if not isinstance(chosen, str):
        if chosen[-1] >= num_layers:
            raise ConfigurationError(
                f"attention_layers={list(chosen)} names layer {chosen[-1]}, but the model has {num_layers} decoder "
                f"layers (0..{num_layers - 1}); a calibration of another model? Recalibrate with `posrag calibrate`."
            )
        all_layers = chosen
    plans = []
    for target, rank in zip(targets, score_ranks(targets), strict=True):
        tier = tier_of(target, config, rank)
        multiplier = 0.0 if tier == "off" else config.resolved_curve(target.relative_position) * target.weight
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
                attention_bias=config.resolved_attention_bias * multiplier if config.uses_attention and on else 0.0,
                attention_layers=(layers if chosen == "planned" else all_layers)
                if config.uses_attention and on
                else (),
            )
        )
    return tuple(plans)


__all__ = ["GHOST_MULTIPLIER", "PlannedSteer", "SteeringTarget", "Tier", "plan_steering"]
