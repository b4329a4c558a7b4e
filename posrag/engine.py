"""The engine: the one way posrag generates.

Everything that generates — posrag's LangChain and LlamaIndex LLM classes, :class:`posrag.pipeline.RAGPipeline`
(so ``posrag demo``), the benchmark and ``posrag calibrate`` — calls an :class:`Engine`::

    engine = Engine.load()                                   # the packaged model, calibrated steering
    result = engine.generate(prompt, targets)                # text + trace
    result = engine.complete(engine.format(prompt), documents=docs, query=q)   # what the LLM classes call

A request takes one path, whoever calls: the request's documents are located in the prompt and ranked
(:meth:`select`, :mod:`posrag.steering.selection`), planned once into token spans and per-layer targets
(:func:`~posrag.steering.request_plan.plan_request`) with the settings resolved from the model's calibration
(:func:`~posrag.steering.config.resolve_steering`, once, when the engine is built), and run by the
engine's :class:`~posrag.backends.Backend` — the torch backend (forward hooks, the reference) or another behind
the same boundary. With nothing to steer the output is exactly the plain output.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from posrag.backends import Backend, BackendName, load_backend
from posrag.chat import FormattedPrompt, format_completion, format_messages
from posrag.documents import ScoredDocument
from posrag.errors import ConfigurationError, MissingDependencyError
from posrag.generation import GenerationConfig
from posrag.steering.config import SteeringConfig, resolve_steering
from posrag.steering.planning import SteeringTarget
from posrag.steering.request_plan import RequestPlan, plan_request
from posrag.steering.selection import SelectionSummary, select_targets
from posrag.steering.trace import SteeredGeneration, SteeringTraceEntry
from posrag.streaming import CompletionStream

logger = logging.getLogger("posrag")


_WARNED_LOCK = threading.Lock()


class Engine:
    """A model behind a :class:`~posrag.backends.Backend`, generating plainly or steered toward documents.

    ``steering``: the settings (``None``: ``SteeringConfig()``); settings left unset are filled once, here,
    from the model's calibration. Safe to share between threads: each request plans and steers on its own.
    """

    def __init__(self, backend: Backend, steering: SteeringConfig | None = None, *, embedder: Any = None) -> None:
        if not isinstance(backend, Backend):
            raise ConfigurationError(
                f"backend={type(backend).__name__} is not a posrag backend; use Engine.load(model, backend=...) "
                "or a posrag.backends implementation."
            )
        self.backend = backend
        # Unset settings: the model's calibration (`posrag calibrate`, or the one shipped with posrag).
        self.config = resolve_steering(steering, backend.model_name, backend.layout.num_layers)
        backend.check(self.config)
        self._embedder = embedder
        self._warned_unlocated: set[str] = set()

    @classmethod
    def from_model(
        cls,
        model: Any,
        tokenizer: Any,
        steering: SteeringConfig | None = None,
        *,
        model_name: str | None = None,
        embedder: Any = None,
    ) -> Engine:
        """An engine over a Hugging Face causal LM and its tokenizer (the torch backend)."""
        from posrag.backends.torch import TorchBackend

        return cls(TorchBackend(model, tokenizer, model_name=model_name), steering, embedder=embedder)

    @classmethod
    def load(
        cls,
        model: Any = None,
        *,
        backend: BackendName = "torch",
        steering: SteeringConfig | None = None,
        embedder: Any = None,
        progress: bool | None = None,
    ) -> Engine:
        """Load ``model`` (``None``: the packaged default; a path, a cached hub id, a ``LoadedModel`` or a
        ``(model, tokenizer)`` pair) on ``backend``.

        ``backend``: ``"torch"``, ``"llama.cpp"`` or ``"auto"`` (llama.cpp for a GGUF file when its extra is installed,
        torch otherwise: :func:`posrag.backends.load_backend`). ``progress``: a progress bar while a
        model is prepared for the first time (``None``: on a terminal, a log line otherwise).
        """
        return cls(load_backend(model, backend, progress=progress), steering, embedder=embedder)

    # ------------------------------------------------------------------------- the model

    @property
    def tokenizer(self) -> Any:
        return self.backend.tokenizer

    @property
    def model(self) -> Any:
        """The backend's model object (a torch module for the torch backend)."""
        return getattr(self.backend, "model", None)

    @property
    def model_name(self) -> str | None:
        return self.backend.model_name

    @property
    def num_layers(self) -> int:
        return self.backend.layout.num_layers

    def context_window(self) -> int | None:
        return self.backend.context_window()

    def count_tokens(self, text: str, *, add_special_tokens: bool = False) -> int:
        """The number of tokens ``text`` takes for this model."""
        return len(self.tokenizer(text, add_special_tokens=add_special_tokens)["input_ids"])

    # ------------------------------------------------------------------------- one request

    def plan(
        self,
        prompt: str,
        targets: Sequence[SteeringTarget],
        *,
        steer_from: int | None = None,
        add_special_tokens: bool = True,
    ) -> RequestPlan:
        """``prompt`` tokenized and ``targets`` planned for this engine's model and settings."""
        return plan_request(
            self.tokenizer,
            prompt,
            targets,
            self.config,
            self.backend.layout,
            steer_from=steer_from,
            add_special_tokens=add_special_tokens,
            embed=self._embed,
        )

    def generate(
        self,
        prompt: str,
        targets: Sequence[SteeringTarget] = (),
        generation: GenerationConfig | None = None,
        *,
        steer_from: int | None = None,
        add_special_tokens: bool = True,
        prefix: Any = None,
        until: Callable[[str], bool] | None = None,
    ) -> SteeredGeneration:
        """Generate a completion of ``prompt``, steering toward ``targets`` (none: plain); the text and trace.

        ``prefix``: the backend's :meth:`~posrag.backends.Backend.prefill` of the prompt's first tokens (up to
        the question) to continue; ``until``: stop once it is true of the completion so far.
        """
        plan = self.plan(prompt, targets, steer_from=steer_from, add_special_tokens=add_special_tokens)
        text, generated = self.backend.generate(plan, generation, prefix=prefix, until=until)
        return SteeredGeneration(text, plan.trace, plan.encoded.num_tokens, generated)

    def stream(
        self,
        prompt: str,
        targets: Sequence[SteeringTarget] = (),
        generation: GenerationConfig | None = None,
        *,
        steer_from: int | None = None,
        add_special_tokens: bool = True,
    ) -> CompletionStream:
        """The completion piece by piece (planned now, generated as it is read); closing the stream stops
        generation (hooks removed)."""
        plan = self.plan(prompt, targets, steer_from=steer_from, add_special_tokens=add_special_tokens)
        return self.backend.stream(plan, generation)

    def prefill(self, input_ids: list[int]) -> Any:
        """Run a prompt prefix once, unsteered, for :meth:`generate` (``prefix=``) to continue."""
        return self.backend.prefill(input_ids)

    def prepare(
        self,
        prompt: str,
        targets: Sequence[SteeringTarget],
        *,
        steer_from: int | None = None,
        add_special_tokens: bool = True,
        past_length: int = 0,
    ) -> Any:
        """The request planned and made ready for the torch backend (inputs, hooks not yet registered)."""
        prepare = self._torch_only("prepare")
        plan = self.plan(prompt, targets, steer_from=steer_from, add_special_tokens=add_special_tokens)
        return prepare(plan, past_length=past_length)

    def _torch_only(self, method: str) -> Any:
        found = getattr(self.backend, method, None)
        if found is None:
            raise ConfigurationError(
                f"The {self.backend.name} backend runs its own forward passes; {method}() for forward passes of "
                "your own needs the torch backend (Engine.load(model, backend='torch'))."
            )
        return found

    @contextmanager
    def session(
        self,
        prompt: str,
        targets: Sequence[SteeringTarget],
        *,
        steer_from: int | None = None,
        add_special_tokens: bool = True,
        past_length: int = 0,
    ) -> Iterator[tuple[Any, Any]]:
        """Steering on for forward passes of your own (torch backend): ``with engine.session(p, t) as (prep, _):
        engine.model(**prep.inputs)``; hooks removed after the block. One session per forward sequence."""
        session = self._torch_only("session")
        plan = self.plan(prompt, targets, steer_from=steer_from, add_special_tokens=add_special_tokens)
        with session(plan, past_length=past_length) as prepared:
            yield prepared

    # ------------------------------------------------------------------------- what the LLM classes call

    def format(self, prompt: str, use_chat_template: bool | None = False) -> FormattedPrompt:
        """A completion prompt as the model reads it (see :func:`posrag.chat.format_completion`)."""
        return format_completion(self.tokenizer, prompt, use_chat_template)

    def format_messages(
        self, messages: Sequence[dict[str, str]], use_chat_template: bool | None = None
    ) -> FormattedPrompt:
        """Chat messages as the model reads them (see :func:`posrag.chat.format_messages`)."""
        return format_messages(self.tokenizer, messages, use_chat_template)

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

    def relevance(self, query: str, documents: list[ScoredDocument], *, sentences: bool = True) -> list[float]:
        """posrag's own relevance of unscored ``documents`` to ``query``: the embedder's cosine similarity to
        each document's title and text, plus that of its best sentence with ``sentences`` (what
        :mod:`~posrag.steering.selection` asks for under ``config.unscored="relevance"``; not under
        ``"passage"``); :func:`posrag.relevance.embedding_relevance` of the packaged all-MiniLM-L6-v2 unless an
        ``embedder`` was given."""
        from posrag.relevance import embedding_relevance

        texts = [doc.text for doc in documents]
        titles = [doc.metadata.get("title") for doc in documents]
        return list(embedding_relevance(query, texts, self.embedder, titles=titles, sentences=sentences).scores)

    @property
    def embedder(self) -> Any:
        if self._embedder is None:
            try:
                from posrag.models import load_embedder

                self._embedder = load_embedder()
            except ImportError as exc:  # pragma: no cover - sentence-transformers is a dependency
                raise MissingDependencyError(
                    "posrag's relevance and embedding vectors need sentence-transformers: "
                    "pip install sentence-transformers"
                ) from exc
        return self._embedder

    def _embed(self, texts: list[str]) -> list[Any]:
        """Documents' embeddings at the model's width (``vector_source="embedding"``)."""
        import torch

        from posrag.steering.activation import align_dimension

        embeddings = torch.as_tensor(self.embedder.encode(texts, convert_to_numpy=True))
        return [align_dimension(e, self.backend.layout.hidden_size) for e in embeddings]

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

    @staticmethod
    def _in_caller_coordinates(
        trace: Sequence[SteeringTraceEntry], prompt: FormattedPrompt
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
    ) -> tuple[SteeredGeneration, CompletionStream]:
        """What is known before the first token (trace and selection, as a text-less ``SteeredGeneration``)
        and the stream of pieces, steering toward the request's ``documents`` found in ``prompt``."""
        targets, selection = self.select(prompt, documents, query=query) if steer else ([], None)
        plan = self.plan(prompt.text, targets, add_special_tokens=prompt.add_special_tokens)
        header = SteeredGeneration(
            "", self._in_caller_coordinates(plan.trace, prompt), plan.encoded.num_tokens, 0, selection
        )
        return header, self.backend.stream(plan, _with_turn_stops(generation, prompt))


def _with_turn_stops(generation: GenerationConfig | None, prompt: FormattedPrompt) -> GenerationConfig | None:
    """``generation`` with the prompt format's end-of-turn stops added (a chat prompt without a template)."""
    if not prompt.stop:
        return generation
    generation = generation or GenerationConfig()
    return replace(generation, stop=tuple(dict.fromkeys([*generation.stop, *prompt.stop])))


__all__ = ["Engine"]
