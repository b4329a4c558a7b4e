"""One request planned for a backend: token spans, the first steered token, and what acts at each layer.

Every backend (the torch hooks, the llama.cpp graph callback) steers from the same :class:`RequestPlan`, so a
request is planned once, by one function, whatever runs the model: :func:`plan_request` tokenizes the prompt
with offsets (the Hugging Face tokenizer of the model; a GGUF file's vocabulary is the same, so its token ids
feed llama.cpp unchanged), maps each target's characters to tokens, asks the policy
(:func:`~posrag.steering.planning.plan_steering`) for each target's tier, intensity, layers and bias, and
assigns them to layers; the trace is written here too. What is left to a backend is only *how* a layer's
targets act on its model.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from posrag.architectures import ModelLayout
from posrag.errors import ConfigurationError
from posrag.steering.activation import ActivationTarget
from posrag.steering.attention import AttentionTarget, reachable
from posrag.steering.config import SteeringConfig
from posrag.steering.planning import PlannedSteer, SteeringTarget, plan_steering
from posrag.steering.spans import (
    EncodedPrompt,
    TokenSpan,
    char_span_to_tokens,
    encode_with_offsets,
    first_token_at_or_after,
)
from posrag.steering.trace import SteeringTraceEntry, trace_entry

#: Embeds documents' texts for ``vector_source="embedding"``: texts → one vector each, at the model's width.
Embed = Callable[[list[str]], list[torch.Tensor]]


@dataclass(frozen=True)
class RequestPlan:
    """A prompt tokenized and planned, independent of the backend that runs it.

    ``steer_from``: the first steered token (the question; every generated token is steered too);
    ``context``: the token range whose mean centres ``hidden_mean`` activation vectors; ``activation`` and
    ``attention``: per layer, the targets acting there (attention layers a sliding window cannot reach from
    ``steer_from`` are already left out).
    """

    encoded: EncodedPrompt
    steer_from: int
    context: tuple[int, int]
    plans: tuple[PlannedSteer, ...]
    spans: tuple[TokenSpan, ...]
    trace: tuple[SteeringTraceEntry, ...]
    activation: Mapping[int, tuple[ActivationTarget, ...]]
    attention: Mapping[int, tuple[AttentionTarget, ...]]
    #: ``hidden_mean`` activation vectors minus the mean over ``context`` (``SteeringConfig.center``).
    center: bool = True

    @property
    def active(self) -> bool:
        """Whether anything acts on the model (no: the generation is exactly the plain one)."""
        return bool(self.activation or self.attention)

    @property
    def input_ids(self) -> list[int]:
        return [int(i) for i in self.encoded.input_ids[0].tolist()]


def plan_request(
    tokenizer: Any,
    prompt: str,
    targets: Sequence[SteeringTarget],
    config: SteeringConfig,
    layout: ModelLayout,
    *,
    steer_from: int | None = None,
    add_special_tokens: bool = True,
    embed: Embed | None = None,
) -> RequestPlan:
    """Plan one request: tokenize ``prompt``, map ``targets`` to token spans, plan them and assign layers.

    ``steer_from``: the character where steering starts (the question); default: the end of the last target.
    ``embed``: the document embedder, needed only for ``config.vector_source == "embedding"``.
    """
    targets = list(targets)
    encoded, spans = _token_spans(tokenizer, prompt, targets, add_special_tokens)
    steer_token = _steer_token(tokenizer, prompt, encoded, targets, spans, steer_from)
    plans = plan_steering(targets, config, layout.num_layers)
    vectors = _steering_vectors(prompt, plans, config, embed)
    trace, activation, attention = _assign_layers(plans, spans, vectors, steer_token, layout)
    context = (_first_content_token(encoded), steer_token)
    return RequestPlan(
        encoded, steer_token, context, tuple(plans), spans, trace, activation, attention, center=config.center
    )


def _token_spans(
    tokenizer: Any, prompt: str, targets: Sequence[SteeringTarget], add_special_tokens: bool
) -> tuple[EncodedPrompt, tuple[TokenSpan, ...]]:
    """The prompt tokenized with offsets, and each target's character span as a token span."""
    encoded = encode_with_offsets(tokenizer, prompt, add_special_tokens=add_special_tokens)
    for target in targets:
        if target.end_char > len(prompt):
            raise ConfigurationError(
                f"SteeringTarget [{target.start_char}, {target.end_char}) ends past the prompt (length "
                f"{len(prompt)}); targets must be character spans of the prompt being generated from."
            )
    spans = tuple(char_span_to_tokens(encoded, t.start_char, t.end_char, tokenizer) for t in targets)
    return encoded, spans


def _steer_token(
    tokenizer: Any,
    prompt: str,
    encoded: EncodedPrompt,
    targets: Sequence[SteeringTarget],
    spans: Sequence[TokenSpan],
    steer_from: int | None,
) -> int:
    """The first steered token: at ``steer_from`` (default: the end of the last target), never inside a target."""
    if steer_from is None:
        steer_char = max((t.end_char for t in targets), default=len(prompt))
    elif not 0 <= steer_from <= len(prompt):
        raise ConfigurationError(f"steer_from={steer_from} is outside the prompt (length {len(prompt)}).")
    else:
        steer_char = steer_from
    steer_token = first_token_at_or_after(encoded, steer_char, tokenizer)
    return max([steer_token, *(s.end for s in spans)])


def _steering_vectors(
    prompt: str, plans: Sequence[PlannedSteer], config: SteeringConfig, embed: Embed | None
) -> list[torch.Tensor | None]:
    """Each plan's activation vector (``None``: the backend derives it from the span's own hidden states)."""
    vectors: list[torch.Tensor | None] = [None] * len(plans)
    if config.uses_activation and config.vector_source == "embedding":
        active = [i for i, p in enumerate(plans) if p.layers]
        if active:
            if embed is None:
                raise ConfigurationError("vector_source='embedding' needs a document embedder; none was given.")
            texts = [prompt[plans[i].target.start_char : plans[i].target.end_char] for i in active]
            for i, vector in zip(active, embed(texts), strict=True):
                vectors[i] = vector
    return vectors


def _assign_layers(
    plans: Sequence[PlannedSteer],
    spans: Sequence[TokenSpan],
    vectors: Sequence[torch.Tensor | None],
    steer_token: int,
    layout: ModelLayout,
) -> tuple[
    tuple[SteeringTraceEntry, ...], dict[int, tuple[ActivationTarget, ...]], dict[int, tuple[AttentionTarget, ...]]
]:
    """The trace, and per layer the activation and attention targets acting there.

    An attention layer whose sliding window cannot reach the span from the steered tokens is dropped.
    """
    trace: list[SteeringTraceEntry] = []
    activation: dict[int, list[ActivationTarget]] = {}
    attention: dict[int, list[AttentionTarget]] = {}
    for plan, span, vector in zip(plans, spans, vectors, strict=True):
        attention_layers = tuple(
            layer for layer in plan.attention_layers if reachable(span, steer_token, layout.window(layer))
        )
        for layer in plan.layers:
            activation.setdefault(layer, []).append(ActivationTarget(span, plan.intensity, vector))
        for layer in attention_layers:
            attention.setdefault(layer, []).append(AttentionTarget(span, plan.attention_bias))
        trace.append(trace_entry(plan, span, attention_layers))
    return (
        tuple(trace),
        {layer: tuple(targets) for layer, targets in sorted(activation.items())},
        {layer: tuple(targets) for layer, targets in sorted(attention.items())},
    )


def _first_content_token(encoded: EncodedPrompt) -> int:
    if encoded.method != "offsets":
        return 1 if encoded.num_tokens > 1 else 0
    return next((i for i, off in enumerate(encoded.offsets) if off is not None), 0)


__all__ = ["Embed", "RequestPlan", "plan_request"]
