"""``SteeredGenerator``: generate from a prompt while steering the model toward documents in it.

One object, one verb::

    generator = SteeredGenerator(model, tokenizer, SteeringConfig(mechanism="both"))
    result = generator.generate(prompt, [SteeringTarget(start_char, end_char, relative_position=0.5)])
    result.text, result.trace

The prompt is tokenized once with offsets; each target's character span becomes a token span; the policy
(:func:`~posrag.steering.planning.plan_steering`) gives each target its tier, intensity, layers and attention
bias; the mechanisms' hooks are registered for the duration of one ``model.generate`` call, scoped to this
request (see :mod:`posrag.steering.hooks` for the concurrency model), and removed afterwards whatever
happens. With no active target the hooks are skipped and the output is exactly the plain output.

:meth:`SteeredGenerator.prepare` runs the steps in order: token spans, the first steered token, the plan,
vectors, layer assignment (and the trace), hook specs. Neighbours: targets are built in
:mod:`~posrag.steering.targets`, the trace types live in :mod:`~posrag.steering.trace`, chat formatting in
:mod:`posrag.chat`, ``resolve_model`` in :mod:`posrag.models` (all re-exported here).

This module is longer than 400 lines because it is one class: preparing (the five steps), running (generate,
stream, session) and the LLM front-end (select the request's documents, complete, stream) share the model,
its layer table and the configuration, and read best side by side; the pure parts it uses live elsewhere
(planning, selection, targets, trace, hooks).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

import torch

from posrag import architectures
from posrag._validation import check_int
from posrag.chat import FormattedPrompt, format_completion, format_messages
from posrag.documents import ScoredDocument
from posrag.errors import ConfigurationError, MissingDependencyError
from posrag.generation import GenerationConfig, generate_from_inputs, stream_from_inputs
from posrag.models import resolve_model
from posrag.steering.activation import ActivationTarget, _create_activation_hook, align_dimension
from posrag.steering.attention import (
    SUPPORTED_ATTENTION,
    AttentionTarget,
    _create_attention_bias_hook,
    reachable,
)
from posrag.steering.config import SteeringConfig
from posrag.steering.hooks import Handle, HookSpec, RequestScope, patched, scoped
from posrag.steering.planning import PlannedSteer, SteeringTarget, plan_steering
from posrag.steering.selection import SelectionSummary, select_targets
from posrag.steering.spans import (
    EncodedPrompt,
    TokenSpan,
    char_span_to_tokens,
    encode_with_offsets,
    first_token_at_or_after,
)
from posrag.steering.targets import RULE_TYPE_KEYS
from posrag.steering.trace import SteeredGeneration, SteeringTraceEntry, trace_entry

logger = logging.getLogger("posrag")


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


_WARNED_LOCK = threading.Lock()


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
        # Unset settings: the model's calibration (`posrag calibrate`, or the one shipped with posrag).
        self.config = (config or SteeringConfig()).resolve_for(name)
        self._embedder = embedder
        self._warned_unlocated: set[str] = set()
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
        past_length: int = 0,
    ) -> PreparedSteering:
        """Tokenize ``prompt``, map ``targets`` to token spans, plan them and build (not register) the hooks.

        ``steer_from``: the character where steering starts (the question); default: the end of the last
        target. Positions from there on (and every generated token) are steered. ``past_length``: the prompt
        tokens already in a KV cache that the first forward pass continues (a reused prefix, computed without
        steering); it must end at or before the first steered token, and only attention steering (which leaves
        positions before the question unchanged) can continue a cache.
        """
        targets = list(targets)
        encoded, spans = self._token_spans(prompt, targets, add_special_tokens)
        steer_token = self._steer_token(prompt, encoded, targets, spans, steer_from)
        plans = plan_steering(targets, self.config, self.num_layers)
        vectors = self._steering_vectors(prompt, plans)
        scope = RequestScope()
        trace, activation, attention = self._assign_layers(plans, spans, vectors, steer_token)
        context = (self._first_content_token(encoded), steer_token)
        if past_length:
            check_int("past_length", past_length, 0, steer_token, hint=" (the cached prefix must end by the question)")
            if activation:
                raise ConfigurationError(
                    "Activation steering reads the documents' hidden states during the prefill, so it cannot "
                    "continue a reused prefix (past_length > 0); run the whole prompt, or steer with "
                    "mechanism='attention'."
                )
        specs = self._hook_specs(activation, attention, steer_token, context, scope, past_length)
        device = self.model.device
        inputs = {
            "input_ids": encoded.input_ids.to(device),
            "attention_mask": torch.ones_like(encoded.input_ids, device=device),
        }
        return PreparedSteering(encoded, inputs, steer_token, plans, spans, trace, specs, scope)

    def _token_spans(
        self, prompt: str, targets: Sequence[SteeringTarget], add_special_tokens: bool
    ) -> tuple[EncodedPrompt, tuple[TokenSpan, ...]]:
        """Step 1: the prompt tokenized with offsets, and each target's character span as a token span."""
        encoded = encode_with_offsets(self.tokenizer, prompt, add_special_tokens=add_special_tokens)
        for target in targets:
            if target.end_char > len(prompt):
                raise ConfigurationError(
                    f"SteeringTarget [{target.start_char}, {target.end_char}) ends past the prompt (length "
                    f"{len(prompt)}); targets must be character spans of the prompt being generated from."
                )
        spans = tuple(char_span_to_tokens(encoded, t.start_char, t.end_char, self.tokenizer) for t in targets)
        return encoded, spans

    def _steer_token(
        self,
        prompt: str,
        encoded: EncodedPrompt,
        targets: Sequence[SteeringTarget],
        spans: Sequence[TokenSpan],
        steer_from: int | None,
    ) -> int:
        """Step 2: the first steered token: at ``steer_from`` (default: the end of the last target), never
        inside a target."""
        if steer_from is None:
            steer_char = max((t.end_char for t in targets), default=len(prompt))
        elif not 0 <= steer_from <= len(prompt):
            raise ConfigurationError(f"steer_from={steer_from} is outside the prompt (length {len(prompt)}).")
        else:
            steer_char = steer_from
        steer_token = first_token_at_or_after(encoded, steer_char, self.tokenizer)
        return max([steer_token, *(s.end for s in spans)])

    def _steering_vectors(self, prompt: str, plans: Sequence[PlannedSteer]) -> list[torch.Tensor | None]:
        """Step 3: each plan's activation vector (``None``: the hook derives it from the span's own states)."""
        vectors: list[torch.Tensor | None] = [None] * len(plans)
        if self.config.uses_activation and self.config.vector_source == "embedding":
            active = [i for i, p in enumerate(plans) if p.layers]
            embedded = self._embedding_vectors(prompt, [plans[i] for i in active])
            for i, vector in zip(active, embedded, strict=True):
                vectors[i] = vector
        return vectors

    def _assign_layers(
        self,
        plans: Sequence[PlannedSteer],
        spans: Sequence[TokenSpan],
        vectors: Sequence[torch.Tensor | None],
        steer_token: int,
    ) -> tuple[tuple[SteeringTraceEntry, ...], dict[int, list[ActivationTarget]], dict[int, list[AttentionTarget]]]:
        """Step 4: the trace, and per layer the activation and attention targets acting there.

        An attention layer whose sliding window cannot reach the span from the steered tokens is dropped.
        """
        trace: list[SteeringTraceEntry] = []
        activation: dict[int, list[ActivationTarget]] = {}
        attention: dict[int, list[AttentionTarget]] = {}
        for plan, span, vector in zip(plans, spans, vectors, strict=True):
            attention_layers = tuple(
                layer for layer in plan.attention_layers if reachable(span, steer_token, self._layer_window(layer))
            )
            for layer in plan.layers:
                activation.setdefault(layer, []).append(ActivationTarget(span, plan.intensity, vector))
            for layer in attention_layers:
                attention.setdefault(layer, []).append(AttentionTarget(span, plan.attention_bias))
            trace.append(trace_entry(plan, span, attention_layers))
        return tuple(trace), activation, attention

    def _hook_specs(
        self,
        activation: Mapping[int, list[ActivationTarget]],
        attention: Mapping[int, list[AttentionTarget]],
        steer_token: int,
        context: tuple[int, int],
        scope: RequestScope,
        past_length: int = 0,
    ) -> tuple[HookSpec, ...]:
        """Step 5: one scoped hook per steered layer (activation on the decoder layer, bias on its attention)."""
        specs: list[HookSpec] = []
        for layer in sorted(activation):
            hook = _create_activation_hook(activation[layer], steer_token, context, self.config.center)
            specs.append(HookSpec(self.layers[layer], scoped(hook, scope), "forward", name=f"activation:{layer}"))
        for layer in sorted(attention):
            hook = _create_attention_bias_hook(attention[layer], steer_token, self._layer_window(layer), past_length)
            specs.append(
                HookSpec(
                    self.attention[layer],
                    scoped(hook, scope),
                    "forward_pre",
                    with_kwargs=True,
                    name=f"attention:{layer}",
                )
            )
        return tuple(specs)

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
        past_length: int = 0,
    ) -> Iterator[tuple[PreparedSteering, Handle]]:
        """Hooks on and this request's scope active in the current context for the block; both undone after.

        For forward passes of your own (analysis, tests): ``with gen.session(p, t) as (prep, handle):
        model(**prep.inputs)``. Use one fresh session per forward sequence (prefill, then decode steps).
        ``past_length``: the first pass continues a KV cache of that many prompt tokens (see :meth:`prepare`).
        """
        prepared = self.prepare(
            prompt, targets, steer_from=steer_from, add_special_tokens=add_special_tokens, past_length=past_length
        )
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
        """A completion prompt as the model reads it (see :func:`posrag.chat.format_completion`)."""
        return format_completion(self.tokenizer, prompt, use_chat_template)

    def select(
        self,
        prompt: FormattedPrompt,
        documents: Sequence[ScoredDocument] | None,
        *,
        query: str | None = None,
    ) -> tuple[list[SteeringTarget], SelectionSummary]:
        """The targets of ``prompt`` among its request's ``documents`` (:mod:`~posrag.steering.selection`).

        Unscored documents are ranked by the packaged embedder's similarity to the query
        (``config.unscored="relevance"``), loaded on first use (or the ``embedder`` given at construction).
        """
        targets, summary = select_targets(
            prompt.text, list(documents or ()), self.config, query=query, relevance=self.relevance
        )
        if not summary.located:
            self._warn_unlocated(summary)
        return targets, summary

    def relevance(self, query: str, texts: list[str]) -> list[float]:
        """posrag's own relevance of ``texts`` to ``query``: the embedder's cosine similarity (for unscored
        documents; the packaged all-MiniLM-L6-v2 unless an ``embedder`` was given)."""
        from posrag.relevance import embedding_relevance

        if self._embedder is None:
            from posrag.models import load_embedder

            self._embedder = load_embedder()
        return list(embedding_relevance(query, texts, self._embedder).scores)

    def _warn_unlocated(self, summary: SelectionSummary) -> None:
        """Say why a steered call steered nothing, with the advice for that cause; once per model and cause, so
        a document-free call (a chat engine's condense step) does not silence the warning a later call needs."""
        cause = "absent" if summary.request_documents == 0 else "not_in_prompt"
        with _WARNED_LOCK:
            if cause in self._warned_unlocated:
                return
            self._warned_unlocated.add(cause)
        if cause == "absent":
            logger.warning(
                "posrag: a steered LLM call had no documents from its request, so it generated without steering. "
                "Run the retriever in the same chain / query engine / graph run as the LLM call (posrag follows the "
                "framework's run tree), or pass the documents explicitly (documents=[...]). This warning is shown "
                "once per model."
            )
        else:
            logger.warning(
                "posrag: none of the %d documents of a steered LLM call's request occurs in its prompt, so it "
                "generated without steering. Put each document's text into the prompt unchanged (format_documents "
                "or page_content / node text as retrieved), not rewritten or cut. This warning is shown once per "
                "model.",
                summary.request_documents,
            )

    def _in_caller_coordinates(
        self, trace: Sequence[SteeringTraceEntry], prompt: FormattedPrompt
    ) -> tuple[SteeringTraceEntry, ...]:
        """The trace with character spans in the caller's prompt (or chat message), not the templated text."""
        mapped = []
        for entry in trace:
            message, start, end = prompt.to_caller(entry.start_char, entry.end_char)
            mapped.append(replace(entry, start_char=start, end_char=end, message=message))
        return tuple(mapped)

    def complete(
        self,
        prompt: FormattedPrompt,
        generation: GenerationConfig | None = None,
        *,
        steer: bool = True,
        documents: Sequence[ScoredDocument] | None = None,
        query: str | None = None,
    ) -> SteeredGeneration:
        """What the LLM classes call: steer toward the request's ``documents`` found in ``prompt``.

        ``documents``: the documents of this call's request (from :mod:`posrag.requests`) or the caller's own;
        ``None`` or none located: a plain generation. ``steer=False`` generates plainly (an empty trace).
        """
        targets, selection = self.select(prompt, documents, query=query) if steer else ([], None)
        generation = _with_turn_stops(generation, prompt)
        result = self.generate(prompt.text, targets, generation, add_special_tokens=prompt.add_special_tokens)
        return replace(result, trace=self._in_caller_coordinates(result.trace, prompt), selection=selection)

    def stream_complete(
        self,
        prompt: FormattedPrompt,
        generation: GenerationConfig | None = None,
        *,
        steer: bool = True,
        documents: Sequence[ScoredDocument] | None = None,
        query: str | None = None,
    ) -> tuple[SteeredGeneration, Iterator[str]]:
        """What is known before the first token (trace and selection, as a text-less ``SteeredGeneration``)
        and the stream of pieces, steering toward the request's ``documents`` found in ``prompt``."""
        targets, selection = self.select(prompt, documents, query=query) if steer else ([], None)
        prepared = self.prepare(prompt.text, targets, add_special_tokens=prompt.add_special_tokens)
        header = SteeredGeneration(
            "", self._in_caller_coordinates(prepared.trace, prompt), prepared.encoded.num_tokens, 0, selection
        )
        return header, self._stream_prepared(prepared, _with_turn_stops(generation, prompt))

    def _stream_prepared(self, prepared: PreparedSteering, generation: GenerationConfig | None) -> Iterator[str]:
        around = self._hooks(prepared) if prepared.active else None
        # The worker thread enters ``around`` itself: it registers the hooks, activates the scope for its own
        # forward passes and removes the hooks when generation ends; closing this iterator cancels and joins it.
        yield from stream_from_inputs(self.model, self.tokenizer, prepared.inputs, generation, around=around)


def _with_turn_stops(generation: GenerationConfig | None, prompt: FormattedPrompt) -> GenerationConfig | None:
    """``generation`` with the prompt format's end-of-turn stops added (a chat prompt without a template)."""
    if not prompt.stop:
        return generation
    generation = generation or GenerationConfig()
    return replace(generation, stop=tuple(dict.fromkeys([*generation.stop, *prompt.stop])))


__all__ = [
    "RULE_TYPE_KEYS",
    "FormattedPrompt",
    "PreparedSteering",
    "SteeredGeneration",
    "SteeredGenerator",
    "SteeringTraceEntry",
    "format_messages",
    "resolve_model",
]
