"""The backend boundary: what runs a model for the engine.

:class:`posrag.engine.Engine` is the one way posrag generates; everything above it (the LangChain and
LlamaIndex classes, the pipeline, the benchmark, ``posrag calibrate``) plans a request once, backend-free
(:func:`posrag.steering.request_plan.plan_request`), and hands the :class:`~posrag.steering.request_plan.RequestPlan`
to a :class:`Backend`, which only decides *how* each layer's targets act on its model: PyTorch forward hooks
(:class:`posrag.backends.torch.TorchBackend`, the reference) or a graph-evaluation callback inside llama.cpp.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from posrag.architectures import ModelLayout
from posrag.generation import GenerationConfig
from posrag.steering.config import SteeringConfig
from posrag.steering.request_plan import RequestPlan
from posrag.streaming import CompletionStream


@runtime_checkable
class Backend(Protocol):
    """Runs one model: plain or steered generation of a planned request, streamed or not.

    ``tokenizer`` is the model's Hugging Face tokenizer (offsets for token spans, the chat template), also for a
    backend that runs its own kernels: the token ids of a plan are fed to the model as they are.
    """

    name: str
    tokenizer: Any
    layout: ModelLayout
    model_name: str | None

    def check(self, config: SteeringConfig) -> None:
        """Refuse (:class:`~posrag.errors.ConfigurationError`, with the reason) a setting this backend cannot
        honour; called once, when the engine is built, never silently unsteered later."""
        ...

    def context_window(self) -> int | None:
        """The most tokens (prompt + generated) the model has positions for; ``None`` if unknown."""
        ...

    def fingerprint(self) -> dict[str, Any]:
        """What decides the output besides the request (:mod:`posrag.backends.fingerprint`: digests of the weights
        and the tokenizer, threads, batch sizes, library versions): equal fingerprints and equal requests give
        equal greedy outputs. The benchmark's generation cache keys on it (:mod:`posrag.bench.cache`)."""
        ...

    def generate(
        self,
        plan: RequestPlan,
        generation: GenerationConfig | None = None,
        *,
        prefix: Any = None,
        until: Callable[[str], bool] | None = None,
    ) -> tuple[str, int]:
        """The completion of ``plan``'s prompt (stops applied) and the number of new tokens.

        ``prefix``: a :meth:`prefill` of the prompt's first tokens (up to the question) to continue instead of
        running them again; ``until``: stop once it is true of the completion so far.
        """
        ...

    def stream(self, plan: RequestPlan, generation: GenerationConfig | None = None) -> CompletionStream:
        """The completion piece by piece, counting its tokens; closing the stream (or cancelling its async
        consumer) stops generation at the next token and leaves the model usable."""
        ...

    def prefill(self, input_ids: list[int]) -> Any:
        """Run a prompt prefix once, unsteered, for :meth:`generate` calls to continue."""
        ...


__all__ = ["Backend"]
