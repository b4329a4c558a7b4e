"""``SteeredGenerator``: generate from a prompt while steering the model toward documents in it.

One object, one verb::

    generator = SteeredGenerator(model, tokenizer, SteeringConfig(mechanism="both"))
    result = generator.generate(prompt, [SteeringTarget(start_char, end_char, relative_position=0.5)])
    result.text, result.trace

The prompt is tokenized once with offsets; each target's character span becomes a token span; the policy
(:func:`~posrag.steering.policy.plan_steering`) gives each target its tier, intensity, layers and attention
bias; the mechanisms' hooks are registered for the duration of one ``model.generate`` call, scoped to this
request (see :mod:`posrag.steering.hooks` for the concurrency model), and removed afterwards whatever
happens. With no active target the hooks are skipped and the output is exactly the plain output.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch

from posrag import architectures
from posrag.errors import ConfigurationError, MissingDependencyError
from posrag.generation import (
    GenerationConfig,
    apply_chat_template,
    generate_from_inputs,
    has_chat_template,
    stream_from_inputs,
)
from posrag.steering.activation import ActivationTarget, _create_activation_hook, align_dimension
from posrag.steering.attention import (
    SUPPORTED_ATTENTION,
    AttentionTarget,
    _create_attention_bias_hook,
    reachable,
)
from posrag.steering.hooks import Handle, HookSpec, RequestScope, patched, scoped
from posrag.steering.policy import PlannedSteer, SteeringConfig, SteeringTarget, plan_steering
from posrag.steering.spans import (
    EncodedPrompt,
    TokenSpan,
    char_span_to_tokens,
    encode_with_offsets,
    first_token_at_or_after,
)
from posrag.steering.targets import RULE_TYPE_KEYS, targets_from_prompt


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
        }


@dataclass(frozen=True)
class SteeredGeneration:
    """A completion and the steering trace of the request that produced it."""

    text: str
    trace: tuple[SteeringTraceEntry, ...]
    prompt_tokens: int = 0
    generated_tokens: int = 0

    @property
    def steered(self) -> bool:
        return any(entry.mechanism != "none" for entry in self.trace)

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "trace": [entry.to_dict() for entry in self.trace],
            "prompt_tokens": self.prompt_tokens,
            "generated_tokens": self.generated_tokens,
        }


@dataclass(frozen=True)
class PreparedSteering:
    """A prompt tokenized and planned: the inputs to generate from, the hooks to register, the trace."""

    encoded: EncodedPrompt
    inputs: dict[str, torch.Tensor]
    steer_from: int
    plans: tuple[PlannedSteer, ...]
    spans: tuple[TokenSpan, ...]
    trace: tuple[SteeringTraceEntry, ...]
    hook_specs: tuple[HookSpec, ...]
    scope: RequestScope

    @property
    def active(self) -> bool:
        return bool(self.hook_specs)


def _mechanism_of(plan: PlannedSteer, layers: tuple[int, ...], attention_layers: tuple[int, ...]) -> str:
    if layers and attention_layers:
        return "both"
    if layers:
        return "activation"
    if attention_layers:
        return "attention"
    return "none"


@dataclass(frozen=True)
class FormattedPrompt:
    """The text the model reads and whether its special tokens are already in it (a chat template's are)."""

    text: str
    add_special_tokens: bool


def format_messages(
    tokenizer: Any, messages: Sequence[Mapping[str, str]], use_chat_template: bool | None
) -> FormattedPrompt:
    """Chat messages as one prompt: the tokenizer's chat template if it has one (and it is not turned off),
    else ``Role: content`` lines ending in ``Assistant:`` (a lone user message is passed through as is)."""
    if use_chat_template is not False and has_chat_template(tokenizer):
        return FormattedPrompt(apply_chat_template(tokenizer, messages), add_special_tokens=False)
    if use_chat_template:
        apply_chat_template(tokenizer, messages)  # raises the actionable "no chat template" error
    if len(messages) == 1 and messages[0].get("role") == "user":
        return FormattedPrompt(messages[0]["content"], add_special_tokens=True)
    lines = [f"{m.get('role', 'user').capitalize()}: {m['content']}" for m in messages]
    return FormattedPrompt("\n\n".join([*lines, "Assistant:"]), add_special_tokens=True)


ModelSpec = Any  # a LoadedModel, a (model, tokenizer) pair, a local path / cached hub id, or None (the default)


def resolve_model(model: ModelSpec = None) -> tuple[Any, Any, str]:
    """``(model, tokenizer, name)`` from a LoadedModel, a ``(model, tokenizer)`` pair, a path/id or ``None``."""
    from posrag.models import LoadedModel, load_causal_lm

    if model is None or isinstance(model, (str, os.PathLike)):
        model = load_causal_lm(model, progress=False)
    if isinstance(model, LoadedModel):
        return model.model, model.tokenizer, model.name
    if isinstance(model, tuple) and len(model) == 2:
        hf_model, tokenizer = model
        name = getattr(getattr(hf_model, "config", None), "name_or_path", None) or type(hf_model).__name__
        return hf_model, tokenizer, str(name)
    if hasattr(model, "model") and hasattr(model, "tokenizer"):  # e.g. posrag.testing.TinyModel
        return model.model, model.tokenizer, str(getattr(model, "arch", type(model.model).__name__))
    raise ConfigurationError(
        f"model={type(model).__name__} is not a model posrag can use: pass a posrag LoadedModel, a "
        "(transformers model, tokenizer) pair, a local model directory / cached hub id, or None for the default."
    )


class SteeredGenerator:
    """A Hugging Face causal LM that generates while steering toward given character spans of its prompt.

    Safe to share between threads and to use next to plain generation on the same model: hooks are
    registered per request and act only for it. Greedy decoding (the default) is deterministic.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        config: SteeringConfig | None = None,
        *,
        embedder: Any = None,
        model_name: str | None = None,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        # position_bias="auto": the saved profile of this model (`posrag profile`), found by its name.
        name = model_name or getattr(getattr(model, "config", None), "name_or_path", None)
        self.config = (config or SteeringConfig()).resolve_auto(name)
        self._embedder = embedder
        self.layers = architectures.decoder_layers(model)
        self.num_layers = len(self.layers)
        self.hidden_size = architectures.hidden_size(model)
        self.attention = architectures.attention_modules(model) if self.config.uses_attention else []
        self.layer_types = architectures.layer_types(model)
        self.window = architectures.sliding_window(model)
        if self.config.uses_attention:
            implementation = getattr(model.config, "_attn_implementation", None)
            if implementation not in SUPPORTED_ATTENTION:
                raise ConfigurationError(
                    f"Attention-bias steering needs attn_implementation in {SUPPORTED_ATTENTION}, but the model "
                    f"uses {implementation!r}. Load it with attn_implementation='sdpa' (or 'eager'), or use "
                    "SteeringConfig(mechanism='activation')."
                )

    # ------------------------------------------------------------------------- planning

    def _layer_window(self, layer: int) -> int | None:
        return self.window if self.layer_types[layer] == "sliding_attention" else None

    def _embedding_vectors(self, prompt: str, plans: Sequence[PlannedSteer]) -> list[torch.Tensor]:
        if self._embedder is None:
            try:
                from posrag.models import load_embedder

                self._embedder = load_embedder()
            except ImportError as exc:  # pragma: no cover - sentence-transformers is a dependency
                raise MissingDependencyError(
                    "vector_source='embedding' needs sentence-transformers: pip install sentence-transformers"
                ) from exc
        texts = [prompt[p.target.start_char : p.target.end_char] for p in plans]
        embeddings = torch.as_tensor(self._embedder.encode(texts, convert_to_numpy=True))
        return [align_dimension(e, self.hidden_size) for e in embeddings]

    def prepare(
        self,
        prompt: str,
        targets: Sequence[SteeringTarget],
        *,
        steer_from: int | None = None,
        add_special_tokens: bool = True,
    ) -> PreparedSteering:
        """Tokenize ``prompt``, map ``targets`` to token spans, plan them and build (not register) the hooks.

        ``steer_from``: the character where steering starts (the question); default: the end of the last
        target. Positions from there on (and every generated token) are steered.
        """
        encoded = encode_with_offsets(self.tokenizer, prompt, add_special_tokens=add_special_tokens)
        targets = list(targets)
        for target in targets:
            if target.end_char > len(prompt):
                raise ConfigurationError(
                    f"SteeringTarget [{target.start_char}, {target.end_char}) ends past the prompt (length "
                    f"{len(prompt)}); targets must be character spans of the prompt being generated from."
                )
        spans = tuple(char_span_to_tokens(encoded, t.start_char, t.end_char, self.tokenizer) for t in targets)
        if steer_from is None:
            steer_char = max((t.end_char for t in targets), default=len(prompt))
        elif not 0 <= steer_from <= len(prompt):
            raise ConfigurationError(f"steer_from={steer_from} is outside the prompt (length {len(prompt)}).")
        else:
            steer_char = steer_from
        steer_token = first_token_at_or_after(encoded, steer_char, self.tokenizer)
        steer_token = max([steer_token, *(s.end for s in spans)])
        plans = plan_steering(targets, self.config, self.num_layers)
        scope = RequestScope()
        specs: list[HookSpec] = []
        trace: list[SteeringTraceEntry] = []
        vectors: list[torch.Tensor | None] = [None] * len(plans)
        if self.config.uses_activation and self.config.vector_source == "embedding":
            active = [i for i, p in enumerate(plans) if p.layers]
            embedded = self._embedding_vectors(prompt, [plans[i] for i in active])
            for i, vector in zip(active, embedded, strict=True):
                vectors[i] = vector
        per_layer_activation: dict[int, list[ActivationTarget]] = {}
        per_layer_attention: dict[int, list[AttentionTarget]] = {}
        for plan, span, vector in zip(plans, spans, vectors, strict=True):
            layers = plan.layers
            attention_layers = tuple(
                layer for layer in plan.attention_layers if reachable(span, steer_token, self._layer_window(layer))
            )
            for layer in layers:
                per_layer_activation.setdefault(layer, []).append(ActivationTarget(span, plan.intensity, vector))
            for layer in attention_layers:
                per_layer_attention.setdefault(layer, []).append(AttentionTarget(span, plan.attention_bias))
            t = plan.target
            trace.append(
                SteeringTraceEntry(
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
                    mechanism=_mechanism_of(plan, layers, attention_layers),
                )
            )
        context = (self._first_content_token(encoded), steer_token)
        for layer in sorted(per_layer_activation):
            hook = _create_activation_hook(per_layer_activation[layer], steer_token, context, self.config.center)
            specs.append(HookSpec(self.layers[layer], scoped(hook, scope), "forward", name=f"activation:{layer}"))
        for layer in sorted(per_layer_attention):
            hook = _create_attention_bias_hook(per_layer_attention[layer], steer_token, self._layer_window(layer))
            specs.append(
                HookSpec(
                    self.attention[layer],
                    scoped(hook, scope),
                    "forward_pre",
                    with_kwargs=True,
                    name=f"attention:{layer}",
                )
            )
        device = self.model.device
        inputs = {
            "input_ids": encoded.input_ids.to(device),
            "attention_mask": torch.ones_like(encoded.input_ids, device=device),
        }
        return PreparedSteering(encoded, inputs, steer_token, plans, spans, tuple(trace), tuple(specs), scope)

    @staticmethod
    def _first_content_token(encoded: EncodedPrompt) -> int:
        if encoded.method != "offsets":
            return 1 if encoded.num_tokens > 1 else 0
        return next((i for i, off in enumerate(encoded.offsets) if off is not None), 0)

    # ------------------------------------------------------------------------- running

    @contextmanager
    def session(
        self,
        prompt: str,
        targets: Sequence[SteeringTarget],
        *,
        steer_from: int | None = None,
        add_special_tokens: bool = True,
    ) -> Iterator[tuple[PreparedSteering, Handle]]:
        """Hooks on and this request's scope active in the current context for the block; both undone after.

        For forward passes of your own (analysis, tests): ``with gen.session(p, t) as (prep, handle):
        model(**prep.inputs)``. Use one fresh session per forward sequence (prefill, then decode steps).
        """
        prepared = self.prepare(prompt, targets, steer_from=steer_from, add_special_tokens=add_special_tokens)
        with self._hooks(prepared)() as handle:
            yield prepared, handle

    def _hooks(self, prepared: PreparedSteering):
        """A zero-argument context-manager factory that registers the hooks and activates the scope."""

        @contextmanager
        def around() -> Iterator[Handle]:
            with patched(prepared.hook_specs) as handle, prepared.scope.activate():
                yield handle

        return around

    def generate(
        self,
        prompt: str,
        targets: Sequence[SteeringTarget],
        generation: GenerationConfig | None = None,
        *,
        steer_from: int | None = None,
        add_special_tokens: bool = True,
    ) -> SteeredGeneration:
        """Generate a completion of ``prompt``, steering toward ``targets``; the text and the trace."""
        prepared = self.prepare(prompt, targets, steer_from=steer_from, add_special_tokens=add_special_tokens)
        around = self._hooks(prepared) if prepared.active else None
        text, generated = prepared.scope.run(
            generate_from_inputs, self.model, self.tokenizer, prepared.inputs, generation, around=around
        )
        return SteeredGeneration(text, prepared.trace, prepared.encoded.num_tokens, generated)

    def stream(
        self,
        prompt: str,
        targets: Sequence[SteeringTarget],
        generation: GenerationConfig | None = None,
        *,
        steer_from: int | None = None,
        add_special_tokens: bool = True,
    ) -> Iterator[str]:
        """Yield the completion piece by piece; hooks are removed when the iterator is exhausted or closed."""
        prepared = self.prepare(prompt, targets, steer_from=steer_from, add_special_tokens=add_special_tokens)
        yield from self._stream_prepared(prepared, generation)

    def stream_with_trace(
        self,
        prompt: str,
        targets: Sequence[SteeringTarget],
        generation: GenerationConfig | None = None,
        *,
        steer_from: int | None = None,
        add_special_tokens: bool = True,
    ) -> tuple[tuple[SteeringTraceEntry, ...], Iterator[str]]:
        """The trace (known before the first token) and the stream of pieces."""
        prepared = self.prepare(prompt, targets, steer_from=steer_from, add_special_tokens=add_special_tokens)
        return prepared.trace, self._stream_prepared(prepared, generation)

    # ------------------------------------------------------------------------- LLM front-end

    def format(self, prompt: str, use_chat_template: bool | None = False) -> FormattedPrompt:
        """A completion prompt as the model reads it (wrapped as a user turn by the chat template if asked)."""
        if use_chat_template is False or (use_chat_template is None and not has_chat_template(self.tokenizer)):
            return FormattedPrompt(prompt, add_special_tokens=True)
        return format_messages(self.tokenizer, [{"role": "user", "content": prompt}], use_chat_template)

    def complete(
        self, prompt: FormattedPrompt, generation: GenerationConfig | None = None, *, steer: bool = True
    ) -> SteeredGeneration:
        """What the LLM classes call: steer toward every registered document found in ``prompt``.

        ``steer=False`` generates plainly (an empty trace), as a plain local LLM.
        """
        targets = targets_from_prompt(prompt.text) if steer else []
        return self.generate(prompt.text, targets, generation, add_special_tokens=prompt.add_special_tokens)

    def stream_complete(
        self, prompt: FormattedPrompt, generation: GenerationConfig | None = None, *, steer: bool = True
    ) -> tuple[tuple[SteeringTraceEntry, ...], Iterator[str]]:
        """The trace and the stream for ``prompt``, steering toward the registered documents found in it."""
        targets = targets_from_prompt(prompt.text) if steer else []
        return self.stream_with_trace(prompt.text, targets, generation, add_special_tokens=prompt.add_special_tokens)

    def _stream_prepared(self, prepared: PreparedSteering, generation: GenerationConfig | None) -> Iterator[str]:
        around = self._hooks(prepared) if prepared.active else None
        # The worker thread enters ``around`` itself: it registers the hooks, activates the scope for its own
        # forward passes and removes the hooks when generation ends; closing this iterator cancels and joins it.
        yield from stream_from_inputs(self.model, self.tokenizer, prepared.inputs, generation, around=around)


__all__ = [
    "RULE_TYPE_KEYS",
    "FormattedPrompt",
    "PreparedSteering",
    "SteeredGeneration",
    "SteeredGenerator",
    "SteeringTraceEntry",
    "format_messages",
    "resolve_model",
    "targets_from_prompt",
]
