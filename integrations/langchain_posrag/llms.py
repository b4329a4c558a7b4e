"""``PosragLLM``: a local Hugging Face causal LM for LangChain that steers toward the retrieved documents.

Use it in an ordinary LCEL chain after posrag's ``PositionReorder``::

    chain = {"context": retriever | PositionReorder() | format_docs, "question": RunnablePassthrough()} \
        | prompt | PosragLLM() | StrOutputParser()

The documents any retriever or reorder step of the *same request* emitted (LangChain's run tree, see
:mod:`langchain_posrag.callbacks`) are found in the prompt string the LLM receives; the best of them (per
request, by the retriever's scores or, for unscored documents, posrag's own relevance) is steered toward
(position-graduated, see :mod:`posrag.steering`), and the trace is reported in
``generation_info["posrag_trace"]`` (visible to callbacks' ``on_llm_end`` and in ``llm.generate(...)``), with
``generation_info["posrag_selection"]`` saying how many request documents were located and steered. Pass
``documents=[...]`` (to ``invoke`` or ``bind``) to steer toward documents of your own. Without documents in
the prompt it is a plain local LLM.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import aclosing
from typing import Any, ClassVar, Literal

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models.llms import LLM
from langchain_core.load.serializable import SerializedConstructor, SerializedNotImplemented
from langchain_core.outputs import Generation, GenerationChunk, LLMResult
from langchain_core.runnables import Runnable, RunnableConfig
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

import posrag
from langchain_posrag.callbacks import request_documents, to_scored
from posrag import adapters
from posrag.adapters import (
    TRACE_KEY,
    check_call_options,
    constructor_settings,
    generation_config,
    generation_info,
    max_tokens_option,
    model_reference,
    steering_from_kwargs,
    steering_kwargs,
    stream_info,
    stream_usage,
)
from posrag.aio import iterate_in_thread, run_in_thread
from posrag.documents import ScoredDocument
from posrag.engine import Engine
from posrag.errors import ConfigurationError
from posrag.generation import GenerationConfig
from posrag.steering import SteeredGeneration, SteeringConfig


async def iterate_in_executor(
    stream: Any, prompt: Any, stop: list[str] | None, run_manager: Any, kwargs: dict[str, Any]
) -> AsyncIterator[Any]:
    """``stream(prompt, stop, None, **kwargs)`` (a sync generator of chunks) driven from a worker thread by
    :func:`posrag.aio.iterate_in_thread`, so the event loop stays free; the chunks are reported to the async
    ``run_manager``. Cancelling the task stops generation at the next token and removes its hooks."""
    async with aclosing(iterate_in_thread(lambda: stream(prompt, stop, None, **kwargs))) as chunks:
        async for chunk in chunks:
            if run_manager:
                await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk


#: What LangChain's standard chat-model interface passes every model (``langchain-tests``' standard parameters),
#: settings of a remote client that a local model has no use for: accepted, without effect.
REMOTE_CLIENT_SETTINGS = ("timeout", "max_retries", "api_key", "base_url")


class PosragModelSettings(BaseModel):
    """What :class:`PosragLLM` and :class:`~langchain_posrag.chat_models.ChatPosrag` share: the model, the
    steering configuration, generation settings, and the steered generator built from them."""

    model: Any = Field(default=None, exclude=True, repr=False, description="Model directory / id, LoadedModel or pair.")
    model_name: str | None = Field(default=None, description="Name reported in traces (default: the model's).")
    steering: SteeringConfig | None = Field(default_factory=SteeringConfig)
    backend: Literal["torch", "llama.cpp", "auto"] = Field(
        default="torch",
        description="What runs the model: torch (hooks), llama.cpp (a GGUF, posrag[llamacpp]) or auto (llama.cpp "
        "for a GGUF when the extra is installed, else torch).",
    )
    max_tokens: int = Field(default=256, ge=1, description="Maximum number of new tokens (or max_new_tokens=).")
    temperature: float = Field(default=0.0, ge=0.0, description="0 = greedy (deterministic).")
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    stop: list[str] | None = Field(default=None, description="Stop sequences, on top of any passed per call.")
    strip_leading: bool = Field(
        default=False,
        description="Drop the completion's leading whitespace before stops apply (so stop=['\\n'] does not cut an "
        "answer that opens with a newline to nothing).",
    )
    use_chat_template: bool | None = Field(default=None, description="None: use it when the tokenizer has one.")
    streaming: bool = Field(default=False, description="Stream by default in invoke().")
    embedder: Any = Field(
        default=None,
        exclude=True,
        repr=False,
        description="Scores unscored documents against the query (default: the packaged all-MiniLM-L6-v2).",
    )
    model_config = ConfigDict(arbitrary_types_allowed=True, protected_namespaces=())
    # No private attributes here: pydantic would give this mixin its own model_post_init, which would shadow
    # LangChain's (it records package versions). Subclasses declare ``_generator``.

    #: Options one call may override (``llm.invoke(prompt, max_tokens=...)``); any other raises.
    _call_options: ClassVar[tuple[str, ...]] = (
        "max_tokens", "max_new_tokens", "temperature", "top_p", "strip_leading", "documents", "query"
    )  # fmt: skip

    @model_validator(mode="before")
    @classmethod
    def _settings_by_either_name(cls, data: Any) -> Any:
        names = [*cls.model_fields, *(f.alias for f in cls.model_fields.values() if f.alias)]
        return constructor_settings(cls.__name__, data, names, REMOTE_CLIENT_SETTINGS)

    @field_validator("steering", mode="before")
    @classmethod
    def _steering_from_dict(cls, value: Any) -> Any:
        return steering_from_kwargs(value)  # what a serialized model recorded

    # LangChain asks partner models not to override model_post_init (it records package versions there).
    @model_validator(mode="after")
    def _set_posrag_generator(self) -> PosragModelSettings:
        self._generator = Engine.load(self.model, backend=self.backend, steering=self.steering, embedder=self.embedder)
        if self.model_name is None:
            self.model_name = self._generator.model_name
        if hasattr(self, "_add_version"):
            self._add_version("posrag", posrag.__version__)
        return self

    @property
    def generator(self) -> Engine:
        return self._generator

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {
            "model_name": self.model_name,
            "steering": self.steering.to_dict() if self.steering else None,
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "strip_leading": self.strip_leading,
            "use_chat_template": self.use_chat_template,
        }

    # --------------------------------------------------------------- tokens: the model's own tokenizer

    def get_token_ids(self, text: str) -> list[int]:
        """The model's own token ids for ``text`` (LangChain's default would download GPT-2's tokenizer)."""
        return list(self._generator.tokenizer.encode(text, add_special_tokens=False))

    def get_num_tokens(self, text: str) -> int:
        return len(self.get_token_ids(text))

    # --------------------------------------------------------------- serialization: by model name / path

    @classmethod
    def is_lc_serializable(cls) -> bool:
        return True

    @property
    def lc_attributes(self) -> dict[str, Any]:
        attributes: dict[str, Any] = {"steering": steering_kwargs(self.steering)}
        if (reference := model_reference(self.model)) is not None:
            attributes["model"] = reference
        return attributes

    def to_json(self) -> SerializedConstructor | SerializedNotImplemented:
        """``dumpd``/``dumps``: the model by its name or path and the settings; a model object with no name
        gives LangChain's ``not_implemented`` entry whose ``repr`` says why (never the module tree)."""
        try:
            model_reference(self.model)
        except ConfigurationError as exc:
            return {"lc": 1, "type": "not_implemented", "id": self.lc_id(), "repr": str(exc)}
        return super().to_json()  # type: ignore[misc]

    # --------------------------------------------------------------- which documents: this request's

    def _documents(self, run_manager: Any, kwargs: dict[str, Any]) -> tuple[list[ScoredDocument] | None, str | None]:
        """The documents this call steers among: ``documents=`` given to the call, else those of the call's
        request (its LangChain run tree); and the request's query."""
        explicit = kwargs.get("documents")
        if explicit is not None:
            return explicit_documents(explicit), kwargs.get("query")
        request = request_documents(run_manager)
        if request is None:
            return None, kwargs.get("query")
        return list(request.documents), kwargs.get("query") or request.query

    def _with_request(self, run_manager: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
        """``kwargs`` with this request's documents made explicit: for work handed to a worker thread, where the
        run manager does not travel."""
        documents, query = self._documents(run_manager, kwargs)
        return {**kwargs, "documents": documents or [], "query": query}

    # --------------------------------------------------------------- one call's settings

    def _config(self, stop: list[str] | None, kwargs: dict[str, Any]) -> GenerationConfig:
        owner = type(self).__name__
        check_call_options(kwargs, self._call_options, owner)
        return generation_config(
            max_tokens_option(owner, kwargs, self.max_tokens),
            float(kwargs.get("temperature", self.temperature)),
            float(kwargs.get("top_p", self.top_p)),
            self.stop,
            stop,
            bool(kwargs.get("strip_leading", self.strip_leading)),
        )


def explicit_documents(documents: Any) -> list[ScoredDocument]:
    """``documents=`` of a call as posrag documents: LangChain ``Document``s (score from metadata), posrag
    ``ScoredDocument``s or plain strings."""
    from langchain_core.documents import Document

    return adapters.explicit_documents(documents, {Document: to_scored}, "LangChain Documents")


class PosragLLM(PosragModelSettings, LLM):
    """A local causal LM (Gemma 3 270M by default) with position-graduated steering toward retrieved documents.

    ``model``: ``None`` (the packaged default), a local directory / cached hub id, a posrag ``LoadedModel`` or a
    ``(model, tokenizer)`` pair. ``steering``: a :class:`~posrag.steering.SteeringConfig`, or ``None`` for a
    plain local LLM. ``use_chat_template``: wrap the prompt as a user turn with the tokenizer's chat template
    (``None``: when it has one).
    """

    _generator: Engine = PrivateAttr()

    @property
    def _llm_type(self) -> str:
        return "posrag"

    @classmethod
    def get_lc_namespace(cls) -> list[str]:
        return ["langchain_posrag", "llms"]

    def _complete(
        self, prompt: str, stop: list[str] | None, kwargs: dict[str, Any], run_manager: Any = None
    ) -> SteeredGeneration:
        formatted = self._generator.format(prompt, self.use_chat_template)
        documents, query = self._documents(run_manager, kwargs)
        return self._generator.complete(
            formatted,
            self._config(stop, kwargs),
            steer=self.steering is not None,
            documents=documents,
            query=query,
        )

    # LangChain's BaseLLM.batch hands all prompts to one _generate with the first prompt's run manager only;
    # each input is its own request here, so batches run input by input (threads, as Runnable.batch does).
    def batch(
        self,
        inputs: list[Any],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any,
    ) -> list[str]:
        return Runnable.batch(self, inputs, config, return_exceptions=return_exceptions, **kwargs)

    async def abatch(
        self,
        inputs: list[Any],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any,
    ) -> list[str]:
        return await Runnable.abatch(self, inputs, config, return_exceptions=return_exceptions, **kwargs)

    def _generate(
        self,
        prompts: list[str],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> LLMResult:
        generations = []
        for prompt in prompts:
            result = self._complete(prompt, stop, kwargs, run_manager)
            generations.append(
                [Generation(text=result.text, generation_info=generation_info(result, str(self.model_name)))]
            )
        return LLMResult(generations=generations, llm_output={"model_name": self.model_name})

    async def _agenerate(
        self,
        prompts: list[str],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> LLMResult:
        # Generation is CPU/GPU-bound: run it in a worker thread so the event loop stays free.
        return await run_in_thread(self._generate, prompts, stop, None, **self._with_request(run_manager, kwargs))

    def _call(
        self,
        prompt: str,
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> str:
        return self._complete(prompt, stop, kwargs, run_manager).text

    async def _acall(
        self,
        prompt: str,
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> str:
        return await run_in_thread(self._call, prompt, stop, None, **self._with_request(run_manager, kwargs))

    def _stream(
        self,
        prompt: str,
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[GenerationChunk]:
        formatted = self._generator.format(prompt, self.use_chat_template)
        documents, query = self._documents(run_manager, kwargs)
        header, pieces = self._generator.stream_complete(
            formatted, self._config(stop, kwargs), steer=self.steering is not None, documents=documents, query=query
        )
        info: dict[str, Any] | None = stream_info(header, self.model_name)
        try:
            for piece in pieces:
                chunk = GenerationChunk(text=piece, generation_info=info)
                info = None  # the trace rides on the first chunk only
                if run_manager:
                    run_manager.on_llm_new_token(piece, chunk=chunk)
                yield chunk
        finally:
            pieces.close()
        # The token counts on a last, empty chunk (with the trace if nothing was generated): the chunks' infos
        # add up to what a non-streamed call reports.
        yield GenerationChunk(text="", generation_info={**(info or {}), **stream_usage(header, pieces)})

    async def _astream(
        self,
        prompt: str,
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[GenerationChunk]:
        request = self._with_request(run_manager, kwargs)
        async for chunk in iterate_in_executor(self._stream, prompt, stop, run_manager, request):
            yield chunk


__all__ = ["TRACE_KEY", "PosragLLM", "PosragModelSettings", "explicit_documents"]
