"""What steering did, as data: one :class:`SteeringTraceEntry` per target, and :class:`SteeredGeneration`
(the text and the trace of one request). Built from the policy's plan by :func:`trace_entry`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from posrag.steering.planning import PlannedSteer
from posrag.steering.spans import TokenSpan


@dataclass(frozen=True)
class SteeringTraceEntry:
    """What was done for one document: where it is, how hard and where it was steered, by which mechanism."""

    doc_id: str | None
    start_char: int
    end_char: int
    token_start: int
    token_end: int
    relative_position: float
    score: float | None
    rule_type: str | None
    tier: str
    multiplier: float
    intensity: float
    layers: tuple[int, ...]
    attention_bias: float
    attention_layers: tuple[int, ...]
    mechanism: str  # "activation", "attention", "both" or "none"
    #: The caller's text that holds the document: 0 for a completion prompt, the chat message's index for chat
    #: (``start_char``/``end_char`` are then within it); ``None``: coordinates of the prompt as the model read it.
    message: int | None = None
    rank: int | None = None
    weight: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "doc_id": self.doc_id,
            "span": {"start_char": self.start_char, "end_char": self.end_char},
            "token_span": {"start": self.token_start, "end": self.token_end},
            "relative_position": self.relative_position,
            "score": self.score,
            "rule_type": self.rule_type,
            "tier": self.tier,
            "multiplier": self.multiplier,
            "intensity": self.intensity,
            "layers": list(self.layers),
            "attention_bias": self.attention_bias,
            "attention_layers": list(self.attention_layers),
            "mechanism": self.mechanism,
            "message": self.message,
            "rank": self.rank,
            "weight": self.weight,
        }


@dataclass(frozen=True)
class SteeredGeneration:
    """A completion and the steering trace of the request that produced it."""

    text: str
    trace: tuple[SteeringTraceEntry, ...]
    prompt_tokens: int = 0
    generated_tokens: int = 0
    #: Which of the request's documents this call located and why others were not steered (LLM front-ends).
    selection: Any = None

    @property
    def steered(self) -> bool:
        return any(entry.mechanism != "none" for entry in self.trace)

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "trace": [entry.to_dict() for entry in self.trace],
            "prompt_tokens": self.prompt_tokens,
            "generated_tokens": self.generated_tokens,
            "selection": None if self.selection is None else self.selection.to_dict(),
        }


def mechanism_of(plan: PlannedSteer, layers: tuple[int, ...], attention_layers: tuple[int, ...]) -> str:
    if layers and attention_layers:
        return "both"
    if layers:
        return "activation"
    if attention_layers:
        return "attention"
    return "none"


def trace_entry(plan: PlannedSteer, span: TokenSpan, attention_layers: tuple[int, ...]) -> SteeringTraceEntry:
    """What was done for one target (attention layers: those that can reach its span)."""
    t, layers = plan.target, plan.layers
    return SteeringTraceEntry(
        doc_id=t.doc_id,
        start_char=t.start_char,
        end_char=t.end_char,
        token_start=span.start,
        token_end=span.end,
        relative_position=t.relative_position,
        score=t.score,
        rule_type=t.rule_type,
        tier=plan.tier,
        multiplier=plan.multiplier,
        intensity=plan.intensity if layers else 0.0,
        layers=layers,
        attention_bias=plan.attention_bias if attention_layers else 0.0,
        attention_layers=attention_layers,
        mechanism=mechanism_of(plan, layers, attention_layers),
        rank=t.rank,
        weight=t.weight,
    )


__all__ = ["SteeredGeneration", "SteeringTraceEntry", "mechanism_of", "trace_entry"]
