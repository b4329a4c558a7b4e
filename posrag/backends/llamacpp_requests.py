"""What the llama.cpp backend takes besides its model: a request (the engine's plan, or one given layer by layer)
and a prefilled prefix to continue."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from posrag.steering.activation import ActivationTarget
from posrag.steering.attention import AttentionTarget


@dataclass(frozen=True)
class LlamaPrefix:
    """A prompt prefix prefilled (unsteered) once: its token ids and the KV cache of its sequence."""

    input_ids: tuple[int, ...]
    state: bytes = field(repr=False)

    def __len__(self) -> int:
        return len(self.input_ids)


class SteeredRequest(Protocol):
    """What the backend reads of a request: a :class:`~posrag.steering.request_plan.RequestPlan` (the engine's)
    or a hand-made :class:`LlamaRequest` (diagnostics, tests)."""

    @property
    def input_ids(self) -> Sequence[int]: ...
    @property
    def steer_from(self) -> int: ...
    @property
    def context(self) -> tuple[int, int]: ...
    @property
    def activation(self) -> Mapping[int, Sequence[ActivationTarget]]: ...
    @property
    def attention(self) -> Mapping[int, Sequence[AttentionTarget]]: ...
    @property
    def center(self) -> bool: ...


@dataclass(frozen=True)
class LlamaRequest:
    """A request given layer by layer (a :class:`SteeredRequest` without the planning around it)."""

    input_ids: tuple[int, ...]
    steer_from: int
    context: tuple[int, int]
    activation: Mapping[int, Sequence[ActivationTarget]]
    attention: Mapping[int, Sequence[AttentionTarget]]
    center: bool = True


__all__ = ["LlamaPrefix", "LlamaRequest", "SteeredRequest"]
