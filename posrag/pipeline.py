"""The end-to-end path in the core: retrieve → reorder → prompt → generate, with a trace of what happened.

Framework users get the same path from their framework's components (posrag's retriever, reorder step and
LLM); this is the framework-free version the demo and the benchmark use.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from posrag.backends.base import Backend
from posrag.documents import ScoredDocument
from posrag.errors import ConfigurationError
from posrag.generation import GenerationConfig
from posrag.ordering import STRATEGIES, Reorderer, Strategy
from posrag.prompts import DEFAULT_TEMPLATE, DocumentSpan, PromptTemplate, RAGPrompt, build_prompt

if TYPE_CHECKING:
    from posrag.engine import Engine
    from posrag.models import LoadedModel
    from posrag.retrieval import DocumentIndex
    from posrag.steering import SteeringConfig

#: Answers are short: stop at the end of the first line.
DEFAULT_GENERATION = GenerationConfig(max_new_tokens=48, stop=("\n",))


@dataclass(frozen=True)
class PipelineResult:
    """What one question went through: the documents in prompt order with positions, the answer, timings."""

    question: str
    answer: str
    prompt: str
    spans: tuple[DocumentSpan, ...]
    strategy: str
    steering: tuple[dict[str, Any], ...] = ()
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def documents(self) -> list[ScoredDocument]:
        return [span.document for span in self.spans]

    def to_dict(self) -> dict[str, Any]:
        return {
            "question": self.question,
            "answer": self.answer,
            "strategy": self.strategy,
            "documents": [{**span.to_dict(), "text": span.document.text} for span in self.spans],
            "steering": list(self.steering),
            "timings": dict(self.timings),
        }


class RAGPipeline:
    """Retrieve ``k`` documents, reorder them, build the prompt, and generate with a local model.

    ``llm``: a :class:`~posrag.models.LoadedModel` (the torch backend) or any :class:`~posrag.backends.Backend`
    (:func:`posrag.backends.load_backend`, e.g. llama.cpp's). ``steering`` (a :class:`posrag.steering.SteeringConfig`)
    turns on position-graduated steering toward the retrieved documents; without it generation is plain.
    """

    def __init__(
        self,
        index: DocumentIndex,
        llm: LoadedModel | Backend,
        *,
        k: int = 5,
        reorder: Reorderer | Strategy = "recency",
        template: PromptTemplate = DEFAULT_TEMPLATE,
        generation: GenerationConfig = DEFAULT_GENERATION,
        steering: SteeringConfig | None = None,
    ) -> None:
        _check_constructor_args(index, llm, k, reorder, template, generation, steering)
        self.index = index
        self.llm = llm
        self.k = k
        self.reorderer = reorder if isinstance(reorder, Reorderer) else Reorderer(reorder)
        self.template = template
        self.generation = generation
        self.steering = steering
        self._engine: Engine | None = None

    def prepare(self, question: str) -> tuple[RAGPrompt, dict[str, float]]:
        """Retrieve, reorder and build the prompt (everything but generation)."""
        started = time.perf_counter()
        retrieved = self.index.search(question, k=self.k)
        retrieved_at = time.perf_counter()
        prompt = build_prompt(question, self.reorderer(retrieved), self.template)
        timings = {"retrieve_s": retrieved_at - started, "reorder_s": time.perf_counter() - retrieved_at}
        return prompt, timings

    def run(self, question: str) -> PipelineResult:
        prompt, timings = self.prepare(question)
        started = time.perf_counter()
        result = self.engine.generate(prompt.text, self._targets(prompt), self.generation)
        answer = result.text
        steering_trace = tuple(entry.to_dict() for entry in result.trace)
        timings["generate_s"] = time.perf_counter() - started
        return PipelineResult(
            question=question,
            answer=answer.strip(),
            prompt=prompt.text,
            spans=prompt.spans,
            strategy=self.reorderer.strategy,
            steering=steering_trace,
            timings=timings,
        )

    async def arun(self, question: str) -> PipelineResult:
        """:meth:`run` in a worker thread, so the event loop stays free while the model works."""
        return await asyncio.to_thread(self.run, question)

    def stream(self, question: str) -> Iterator[str]:
        """Yield the answer piece by piece (plain or steered generation)."""
        prompt, _ = self.prepare(question)
        yield from self.engine.stream(prompt.text, self._targets(prompt), self.generation)

    @property
    def engine(self) -> Engine:
        """The engine this pipeline generates with, its steering resolved against the model's calibration (found
        by the model's name); built on first use."""
        if self._engine is None:
            from posrag.engine import Engine

            if isinstance(self.llm, Backend):
                self._engine = Engine(self.llm, self.steering)
            else:
                name = getattr(self.llm, "name", None)
                self._engine = Engine.from_model(self.llm.model, self.llm.tokenizer, self.steering, model_name=name)
        return self._engine

    def _targets(self, prompt: RAGPrompt) -> list[Any]:
        """Every document of the prompt when steering, none (plain generation) otherwise."""
        return steering_targets(prompt) if self.steering is not None else []


def _check_constructor_args(
    index: Any, llm: Any, k: Any, reorder: Any, template: Any, generation: Any, steering: Any
) -> None:
    """Every RAGPipeline argument checked at construction, so a bad one fails here and not mid-request."""
    if not callable(getattr(index, "search", None)):
        raise ConfigurationError(
            f"index={type(index).__name__} has no search(query, k) method; pass a posrag.retrieval.DocumentIndex."
        )
    if not isinstance(llm, Backend) and not (hasattr(llm, "model") and hasattr(llm, "tokenizer")):
        raise ConfigurationError(
            f"llm={type(llm).__name__} has no .model and .tokenizer; pass a posrag.models.LoadedModel "
            "(posrag.models.load_causal_lm()) or a posrag backend (posrag.backends.load_backend())."
        )
    if isinstance(k, bool) or not isinstance(k, int):
        raise ConfigurationError(f"k must be an int >= 1 (documents to retrieve), got {k!r} ({type(k).__name__}).")
    if k < 1:
        raise ConfigurationError(f"k must be >= 1 (documents to retrieve), got {k}.")
    if not isinstance(reorder, (Reorderer, str)):
        raise ConfigurationError(
            f"reorder must be a posrag.ordering.Reorderer or one of {', '.join(STRATEGIES)} or 'auto', got "
            f"{reorder!r} ({type(reorder).__name__})."
        )
    if not isinstance(template, PromptTemplate):
        raise ConfigurationError(f"template must be a posrag.prompts.PromptTemplate, got {type(template).__name__}.")
    if not isinstance(generation, GenerationConfig):
        raise ConfigurationError(
            f"generation must be a posrag.generation.GenerationConfig, got {type(generation).__name__}."
        )
    if steering is not None:
        from posrag.steering import SteeringConfig

        if not isinstance(steering, SteeringConfig):
            raise ConfigurationError(
                f"steering must be a posrag.steering.SteeringConfig or None, got {type(steering).__name__}."
            )


def steering_targets(prompt: RAGPrompt) -> list[Any]:
    """The steering targets of a built prompt (see :func:`posrag.steering.targets.targets_from_spans`)."""
    from posrag.steering.targets import targets_from_spans

    return targets_from_spans(prompt.spans)


__all__ = ["DEFAULT_GENERATION", "PipelineResult", "RAGPipeline", "steering_targets"]
