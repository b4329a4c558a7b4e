"""The torch backend: a Hugging Face causal LM steered by PyTorch forward hooks (the reference backend).

A planned request becomes one scoped hook per steered layer: activation steering on the decoder layer's
output (:mod:`posrag.steering.activation`), attention bias on its attention module's mask
(:mod:`posrag.steering.attention`). The hooks are registered for the duration of one ``model.generate`` call,
act only for their own request (:mod:`posrag.steering.hooks`: one model serves concurrent requests, steered and
plain, without a lock) and are removed afterwards whatever happens. With nothing to steer no hook is registered
and the output is exactly the plain output.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch

from posrag import architectures
from posrag._validation import check_int
from posrag.backends.fingerprint import package_versions, tokenizer_digest, weights_digest
from posrag.errors import ConfigurationError
from posrag.generation import GenerationConfig, generate_from_inputs, stream_from_inputs
from posrag.prefix import PrefixCache, prefill
from posrag.steering.activation import activation_hook
from posrag.steering.attention import SUPPORTED_ATTENTION, attention_bias_hook
from posrag.steering.config import SteeringConfig
from posrag.steering.hooks import Handle, HookSpec, RequestScope, patched, scoped
from posrag.steering.request_plan import RequestPlan
from posrag.streaming import CompletionStream


@dataclass(frozen=True)
class PreparedSteering:
    """A planned request made ready for a torch model: its inputs, the hooks to register, its scope."""

    plan: RequestPlan
    inputs: dict[str, torch.Tensor]
    hook_specs: tuple[HookSpec, ...]
    scope: RequestScope

    @property
    def active(self) -> bool:
        return bool(self.hook_specs)

    @property
    def encoded(self) -> Any:
        return self.plan.encoded

    @property
    def steer_from(self) -> int:
        return self.plan.steer_from

    @property
    def plans(self) -> Any:
        return self.plan.plans

    @property
    def spans(self) -> Any:
        return self.plan.spans

    @property
    def trace(self) -> Any:
        return self.plan.trace


class TorchBackend:
    """A Hugging Face causal LM and its tokenizer, generating plainly or steered by scoped forward hooks."""

    name = "torch"

    def __init__(self, model: Any, tokenizer: Any, *, model_name: str | None = None) -> None:
        self.model = model
        self.tokenizer = tokenizer
        # The name it was loaded by finds its calibration and profile (posrag.models keeps it on the config).
        self.model_name = model_name or getattr(getattr(model, "config", None), "name_or_path", None) or None
        self.layers = architectures.decoder_layers(model)
        self.layout = architectures.layout(model)
        self._attention: list[Any] | None = None
        self._digests: dict[str, str] | None = None

    # ------------------------------------------------------------------------- the boundary

    def check(self, config: SteeringConfig) -> None:
        if not config.uses_attention:
            return
        implementation = getattr(self.model.config, "_attn_implementation", None)
        if implementation not in SUPPORTED_ATTENTION:
            raise ConfigurationError(
                f"Attention-bias steering needs attn_implementation in {SUPPORTED_ATTENTION}, but the model "
                f"uses {implementation!r}. Load it with attn_implementation='sdpa' (or 'eager'), or use "
                "SteeringConfig(mechanism='activation')."
            )

    def context_window(self) -> int | None:
        return architectures.context_window(self.model)

    def fingerprint(self) -> dict[str, Any]:
        """The weights' and tokenizer's digests (computed once: the weights are read, never changed, by
        steering), the model's dtype, attention implementation and device, torch's threads, library versions."""
        if self._digests is None:
            self._digests = {"weights": weights_digest(self.model), "tokenizer": tokenizer_digest(self.tokenizer)}
        config = getattr(self.model, "config", None)
        return {
            "backend": self.name,
            **self._digests,
            "dtype": str(getattr(self.model, "dtype", None)),
            "device": str(getattr(self.model, "device", "cpu")),
            "attn_implementation": getattr(config, "_attn_implementation", None),
            "threads": torch.get_num_threads(),
            "versions": package_versions("torch", "transformers"),
        }

    def generate(
        self,
        plan: RequestPlan,
        generation: GenerationConfig | None = None,
        *,
        prefix: PrefixCache | None = None,
        until: Callable[[str], bool] | None = None,
    ) -> tuple[str, int]:
        prepared = self.prepare(plan, past_length=prefix.length if prefix is not None else 0)
        inputs = prefix.inputs_for(prepared.inputs) if prefix is not None else prepared.inputs
        around = self._hooks(prepared) if prepared.active else None
        return prepared.scope.run(
            generate_from_inputs, self.model, self.tokenizer, inputs, generation, around=around, until=until
        )

    def stream(self, plan: RequestPlan, generation: GenerationConfig | None = None) -> CompletionStream:
        prepared = self.prepare(plan)
        around = self._hooks(prepared) if prepared.active else None
        # The worker thread enters ``around`` itself (from the first piece asked for): it registers the hooks,
        # activates the scope for its own forward passes and removes the hooks when generation ends; closing
        # the stream cancels and joins it.
        return stream_from_inputs(self.model, self.tokenizer, prepared.inputs, generation, around=around)

    def prefill(self, input_ids: list[int]) -> PrefixCache:
        return prefill(self.model, input_ids)

    # ------------------------------------------------------------------------- hooks

    def prepare(self, plan: RequestPlan, *, past_length: int = 0) -> PreparedSteering:
        """The plan's inputs and (not yet registered) scoped hooks.

        ``past_length``: the prompt tokens already in a KV cache that the first forward pass continues (a reused
        prefix, computed without steering); it must end at or before the first steered token, and only
        attention steering (which leaves positions before the question unchanged) can continue a cache.
        """
        if past_length:
            check_int(
                "past_length", past_length, 0, plan.steer_from, hint=" (the cached prefix must end by the question)"
            )
            if plan.activation:
                raise ConfigurationError(
                    "Activation steering reads the documents' hidden states during the prefill, so it cannot "
                    "continue a reused prefix (past_length > 0); run the whole prompt, or steer with "
                    "mechanism='attention'."
                )
        scope = RequestScope()
        specs = self._hook_specs(plan, scope, past_length)
        device = self.model.device
        ids = plan.encoded.input_ids
        inputs = {"input_ids": ids.to(device), "attention_mask": torch.ones_like(ids, device=device)}
        return PreparedSteering(plan, inputs, specs, scope)

    @contextmanager
    def session(self, plan: RequestPlan, *, past_length: int = 0) -> Iterator[tuple[PreparedSteering, Handle]]:
        """Hooks on and this request's scope active in the current context for the block; both undone after.

        For forward passes of your own (analysis, scoring, tests): ``with backend.session(plan) as (prep, _):
        model(**prep.inputs)``. Use one fresh session per forward sequence (prefill, then decode steps).
        """
        prepared = self.prepare(plan, past_length=past_length)
        with self._hooks(prepared)() as handle:
            yield prepared, handle

    def _hooks(self, prepared: PreparedSteering) -> Callable[[], Any]:
        """A zero-argument context-manager factory that registers the hooks and activates the scope."""

        @contextmanager
        def around() -> Iterator[Handle]:
            with patched(prepared.hook_specs) as handle, prepared.scope.activate():
                yield handle

        return around

    def _hook_specs(self, plan: RequestPlan, scope: RequestScope, past_length: int) -> tuple[HookSpec, ...]:
        """One scoped hook per steered layer (activation on the decoder layer, bias on its attention)."""
        specs: list[HookSpec] = []
        for layer, targets in plan.activation.items():
            hook = activation_hook(targets, plan.steer_from, plan.context, plan.center)
            specs.append(HookSpec(self.layers[layer], scoped(hook, scope), "forward", name=f"activation:{layer}"))
        if plan.attention and self._attention is None:
            self._attention = architectures.attention_modules(self.model)
        for layer, attention in plan.attention.items():
            hook = attention_bias_hook(attention, plan.steer_from, self.layout.window(layer), past_length)
            assert self._attention is not None
            specs.append(
                HookSpec(
                    self._attention[layer],
                    scoped(hook, scope),
                    "forward_pre",
                    with_kwargs=True,
                    name=f"attention:{layer}",
                )
            )
        return tuple(specs)


__all__ = ["PreparedSteering", "TorchBackend"]
