"""``PosragLLM``: a LlamaIndex ``CustomLLM`` over a local Hugging Face causal LM that steers toward retrieved nodes.

Use it in an unmodified ``RetrieverQueryEngine`` with posrag's ``PositionReorder`` postprocessor::

    engine = RetrieverQueryEngine.from_args(retriever, llm=PosragLLM(), node_postprocessors=[PositionReorder()])

The nodes that any retriever or postprocessor of the *same query* saw (LlamaIndex's instrumentation span
tree, see :mod:`llama_index.callbacks.posrag`) are found in the prompt the LLM receives; the best of them, per
query and not per LLM call (refine, tree_summarize and a split compact steer only the query's best), is
steered toward (position-graduated, see :mod:`posrag.steering`), and the trace is reported in the
``CompletionResponse``'s ``additional_kwargs["posrag_trace"]`` with ``["posrag_selection"]``; a query
engine's or chat engine's response carries them for all its LLM calls in ``response.metadata`` (one entry per
call; a streaming response's chunks carry their own), and :class:`PosragTraceHandler` collects them from
LlamaIndex instrumentation. ``complete(prompt, documents=[...])`` steers toward nodes of your own. Without
documents in the prompt it is a plain local LLM.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any, ClassVar, Literal

from llama_index.callbacks.posrag import node_to_document, record_call, request_documents
from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    ChatResponseAsyncGen,
    ChatResponseGen,
    CompletionResponse,
    CompletionResponseAsyncGen,
    CompletionResponseGen,
    LLMMetadata,
    MessageRole,
)
from llama_index.core.bridge.pydantic import Field, PrivateAttr, model_validator
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events import BaseEvent
from llama_index.core.instrumentation.events.llm import LLMChatEndEvent, LLMCompletionEndEvent
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
from llama_index.core.llms.custom import CustomLLM
from llama_index.core.prompts import PromptTemplate, PromptType
from llama_index.core.schema import NodeWithScore

from posrag import adapters, prompts
from posrag.adapters import (
    TRACE_KEY,
    check_call_options,
    constructor_settings,
    generation_config,
    generation_info,
    max_tokens_option,
    stream_info,
    stream_usage,
)
from posrag.aio import iterate_in_thread, run_in_thread
from posrag.chat import FormattedPrompt
from posrag.documents import ScoredDocument
from posrag.engine import Engine
from posrag.generation import GenerationConfig
from posrag.steering import SteeredGeneration, SteeringConfig
from posrag.streaming import CompletionStream

#: posrag's RAG prompt (the one its pipeline and benchmark ask with) as a LlamaIndex question-answering template:
#: ``index.as_query_engine(llm=PosragLLM(...), text_qa_template=RAG_PROMPT)``.
RAG_PROMPT = PromptTemplate(prompts.template_text("context_str", "query_str"), prompt_type=PromptType.QUESTION_ANSWER)


class PosragLLM(CustomLLM):
    """A local causal LM (Gemma 3 270M by default) with position-graduated steering toward retrieved nodes.

    ``model``: ``None`` (the packaged default), a local directory / cached hub id, a posrag ``LoadedModel`` or a
    ``(model, tokenizer)`` pair. ``steering``: a :class:`~posrag.steering.SteeringConfig`, or ``None`` for a
    plain local LLM. ``use_chat_template``: wrap prompts with the tokenizer's chat template (``None``: when it
    has one); chat messages always use it when it exists.
    """

    model: Any = Field(default=None, exclude=True, description="Model directory / id, LoadedModel or pair.")
    model_name: str | None = Field(default=None, description="Name reported in metadata (default: the model's).")
    steering: SteeringConfig | None = Field(default_factory=SteeringConfig)
    backend: Literal["torch", "llama.cpp", "auto"] = Field(
        default="torch",
        description="What runs the model: torch (hooks), llama.cpp (a GGUF, posrag[llamacpp]) or auto (llama.cpp "
        "for a GGUF when the extra is installed, else torch).",
    )
    max_new_tokens: int = Field(default=256, ge=1, description="Maximum number of new tokens (or max_tokens=).")
    temperature: float = Field(default=0.0, ge=0.0, description="0 = greedy (deterministic).")
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    stop: list[str] = Field(default_factory=list, description="Stop sequences.")
    strip_leading: bool = Field(
        default=False,
        description="Drop the completion's leading whitespace before stops apply (so stop=['\\n'] does not cut an "
        "answer that opens with a newline to nothing).",
    )
    use_chat_template: bool | None = Field(default=None)
    context_window: int | None = Field(default=None, description="Default: the model's position limit.")
    embedder: Any = Field(
        default=None,
        exclude=True,
        description="Scores unscored nodes against the query (default: the packaged all-MiniLM-L6-v2).",
    )
    _generator: Engine = PrivateAttr()

    #: Options one call may override (``llm.complete(prompt, max_new_tokens=...)``); any other raises.
    CALL_OPTIONS: ClassVar[tuple[str, ...]] = (
        "max_new_tokens", "max_tokens", "temperature", "top_p", "stop", "strip_leading", "documents", "query"
    )  # fmt: skip

    @model_validator(mode="before")
    @classmethod
    def _settings_by_either_name(cls, data: Any) -> Any:
        return constructor_settings(cls.__name__, data, cls.model_fields)

    def __init__(self, **data: Any) -> None:
        super().__init__(**data)
        self._generator = Engine.load(self.model, backend=self.backend, steering=self.steering, embedder=self.embedder)
        if self.model_name is None:
            self.model_name = self._generator.model_name
        if self.context_window is None:
            self.context_window = self._generator.context_window()

    @classmethod
    def class_name(cls) -> str:
        return "PosragLLM"

    @property
    def generator(self) -> Engine:
        return self._generator

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(
            context_window=int(self.context_window or 2048),
            num_output=self.max_new_tokens,
            is_chat_model=False,
            model_name=str(self.model_name),
        )

    # ------------------------------------------------------------------------- helpers

    def _config(self, kwargs: dict[str, Any]) -> GenerationConfig:
        owner = type(self).__name__
        check_call_options(kwargs, self.CALL_OPTIONS, owner)
        return generation_config(
            max_tokens_option(owner, kwargs, self.max_new_tokens),
            float(kwargs.get("temperature", self.temperature)),
            float(kwargs.get("top_p", self.top_p)),
            self.stop,
            kwargs.get("stop"),
            bool(kwargs.get("strip_leading", self.strip_leading)),
        )

    def _response(self, result: SteeredGeneration) -> CompletionResponse:
        info = generation_info(result, self.model_name)
        record_call(info)  # the query's Response reports it in its metadata
        return CompletionResponse(text=result.text, additional_kwargs=info, raw=result.to_dict())

    def _documents(self, kwargs: dict[str, Any]) -> tuple[list[ScoredDocument] | None, str | None]:
        """The documents this call steers among: ``documents=`` given to the call, else the nodes of the call's
        request (the instrumentation span tree it runs in, see :mod:`llama_index.callbacks.posrag`). Read when
        the call is made: a streaming query's request may end before its stream is consumed."""
        if "documents" in kwargs:
            return explicit_documents(kwargs["documents"]), kwargs.get("query")
        request = request_documents()
        if request is None:
            return None, kwargs.get("query")
        return list(request.documents), kwargs.get("query") or request.query

    def _with_request(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        """``kwargs`` with this request's documents made explicit, for work handed to a worker thread."""
        documents, query = self._documents(kwargs)
        return {**kwargs, "documents": documents or [], "query": query}

    def _complete(self, prompt: FormattedPrompt, kwargs: dict[str, Any]) -> SteeredGeneration:
        documents, query = self._documents(kwargs)
        return self._generator.complete(
            prompt, self._config(kwargs), steer=self.steering is not None, documents=documents, query=query
        )

    def _stream(self, prompt: FormattedPrompt, kwargs: dict[str, Any]) -> CompletionResponseGen:
        """Start the steered stream now (documents, trace, hooks planned), and yield its pieces when iterated."""
        documents, query = self._documents(kwargs)
        header, pieces = self._generator.stream_complete(
            prompt, self._config(kwargs), steer=self.steering is not None, documents=documents, query=query
        )
        return self._pieces(header, stream_info(header, self.model_name), pieces)

    @staticmethod
    def _pieces(header: SteeredGeneration, extra: dict[str, Any], pieces: CompletionStream) -> CompletionResponseGen:
        text = ""
        try:
            for piece in pieces:
                text += piece
                yield CompletionResponse(text=text, delta=piece, additional_kwargs=extra)
        finally:
            pieces.close()
        # A last response with no new text (also the one LlamaIndex's end event needs when nothing was generated):
        # the trace and the finished stream's token counts, as a non-streamed call reports them.
        yield CompletionResponse(text=text, delta="", additional_kwargs={**extra, **stream_usage(header, pieces)})

    def _messages(self, messages: Sequence[ChatMessage]) -> FormattedPrompt:
        dicts = [{"role": m.role.value, "content": m.content or ""} for m in messages]
        return self._generator.format_messages(dicts, self.use_chat_template)

    # ------------------------------------------------------------------------- completion
    # The public methods carry LlamaIndex's instrumentation decorators and delegate to undecorated ``_do_*``
    # implementations; an async method that called its decorated sync twin would emit every event twice.

    def _do_complete(self, prompt: str, kwargs: dict[str, Any]) -> CompletionResponse:
        return self._response(self._complete(self._generator.format(prompt, self.use_chat_template), kwargs))

    def _do_stream_complete(self, prompt: str, kwargs: dict[str, Any]) -> CompletionResponseGen:
        return self._stream(self._generator.format(prompt, self.use_chat_template), kwargs)

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        return self._do_complete(prompt, kwargs)

    @llm_completion_callback()
    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseGen:
        return self._do_stream_complete(prompt, kwargs)

    @llm_completion_callback()
    async def acomplete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        # Generation is CPU/GPU-bound: a worker thread keeps the event loop free.
        return await run_in_thread(self._do_complete, prompt, self._with_request(kwargs))

    @llm_completion_callback()
    async def astream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseAsyncGen:
        return _to_async(self._do_stream_complete(prompt, kwargs))

    # ------------------------------------------------------------------------- chat

    def _do_chat(self, messages: Sequence[ChatMessage], kwargs: dict[str, Any]) -> ChatResponse:
        response = self._response(self._complete(self._messages(messages), kwargs))
        return ChatResponse(
            message=ChatMessage(role=MessageRole.ASSISTANT, content=response.text),
            additional_kwargs=response.additional_kwargs,
            raw=response.raw,
        )

    def _do_stream_chat(self, messages: Sequence[ChatMessage], kwargs: dict[str, Any]) -> ChatResponseGen:
        chunks = self._stream(self._messages(messages), kwargs)

        def gen() -> ChatResponseGen:
            for chunk in chunks:
                yield ChatResponse(
                    message=ChatMessage(role=MessageRole.ASSISTANT, content=chunk.text),
                    delta=chunk.delta,
                    additional_kwargs=chunk.additional_kwargs,
                )

        return gen()

    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        return self._do_chat(messages, kwargs)

    @llm_chat_callback()
    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        return self._do_stream_chat(messages, kwargs)

    @llm_chat_callback()
    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        return await run_in_thread(self._do_chat, messages, self._with_request(kwargs))

    @llm_chat_callback()
    async def astream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseAsyncGen:
        return _to_async(self._do_stream_chat(messages, kwargs))


def explicit_documents(documents: Any) -> list[ScoredDocument]:
    """``documents=`` of a call as posrag documents: ``NodeWithScore``s, posrag ``ScoredDocument``s or strings."""
    return adapters.explicit_documents(documents, {NodeWithScore: node_to_document}, "NodeWithScore objects")


def _to_async(iterator: Any) -> Any:
    """Iterate a blocking generator from a worker thread without blocking the loop (:mod:`posrag.aio`);
    cancelling the consumer stops generation at the next token and removes its hooks."""
    return iterate_in_thread(iterator)


class PosragTraceHandler(BaseEventHandler):
    """Collects the steering traces of completed LLM calls from LlamaIndex instrumentation.

    ``get_dispatcher().add_event_handler(handler)``; after a query, ``handler.traces`` holds one trace (a list
    of per-document dicts) per completion or chat response that carried one.
    """

    traces: list[list[dict[str, Any]]] = Field(default_factory=list)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @classmethod
    def class_name(cls) -> str:
        return "PosragTraceHandler"

    def handle(self, event: BaseEvent, **kwargs: Any) -> None:
        if isinstance(event, (LLMCompletionEndEvent, LLMChatEndEvent)) and event.response is not None:
            extra = event.response.additional_kwargs
            if TRACE_KEY in extra:
                with self._lock:
                    self.traces.append(extra[TRACE_KEY])


__all__ = ["RAG_PROMPT", "TRACE_KEY", "PosragLLM", "PosragTraceHandler"]
