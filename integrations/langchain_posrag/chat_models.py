"""``ChatPosrag``: the chat-model face of :class:`~langchain_posrag.llms.PosragLLM`.

Messages are formatted with the tokenizer's chat template (or ``Role: content`` lines for a base model without
one, such as the default Gemma 3 270M); the documents of the same request (or ``documents=[...]``) found in the
formatted prompt are steered toward, and the trace is in the ``AIMessage``'s
``response_metadata["posrag_trace"]`` (spans within the message that holds each document).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any, ClassVar

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LangSmithParams
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import PrivateAttr

from langchain_posrag.llms import PosragModelSettings, iterate_in_executor
from posrag.adapters import generation_info, no_tools, stream_info, stream_usage
from posrag.aio import run_in_thread
from posrag.chat import FormattedPrompt
from posrag.engine import Engine

_ROLES = {"human": "user", "ai": "assistant", "system": "system", "tool": "tool", "function": "tool"}


def _to_dicts(messages: Sequence[BaseMessage]) -> list[dict[str, str]]:
    return [{"role": _ROLES.get(m.type, m.type), "content": m.text} for m in messages]


class ChatPosrag(PosragModelSettings, BaseChatModel):
    """A local chat model with position-graduated steering toward retrieved documents (see ``PosragLLM``)."""

    _generator: Engine = PrivateAttr()
    # LangChain passes ``stream`` through to ``_generate``/``_stream`` (``invoke(..., stream=True)``).
    _call_options: ClassVar[tuple[str, ...]] = (*PosragModelSettings._call_options, "stream")

    @property
    def _llm_type(self) -> str:
        return "posrag-chat"

    @classmethod
    def get_lc_namespace(cls) -> list[str]:
        return ["langchain_posrag", "chat_models"]

    def get_num_tokens_from_messages(self, messages: list[BaseMessage], tools: Sequence[Any] | None = None) -> int:
        """The tokens of the prompt these messages become (chat template included), by the model's tokenizer."""
        if tools is not None:
            return super().get_num_tokens_from_messages(messages, tools)  # warns that tool schemas are not counted
        prompt = self._prompt(messages)
        tokenizer = self._generator.tokenizer
        return len(tokenizer.encode(prompt.text, add_special_tokens=prompt.add_special_tokens))

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        model = kwargs.get("model")
        params = LangSmithParams(
            ls_provider="posrag",
            ls_model_name=model if isinstance(model, str) else str(self.model_name),
            ls_model_type="chat",
            ls_temperature=kwargs.get("temperature", self.temperature),
            ls_max_tokens=kwargs.get("max_tokens", self.max_tokens),
        )
        if stops := stop or self.stop:
            params["ls_stop"] = list(stops)
        return params

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> Any:
        """Not supported: posrag's models do not call tools (the error says how to use posrag in an agent)."""
        raise no_tools(type(self).__name__, "tool calling (bind_tools, create_react_agent, create_agent)")

    def with_structured_output(self, schema: Any, **kwargs: Any) -> Any:
        """Not supported: posrag's models write text (the error says what to use instead)."""
        raise no_tools(type(self).__name__, "structured output (with_structured_output)")

    def _prompt(self, messages: Sequence[BaseMessage]) -> FormattedPrompt:
        return self._generator.format_messages(_to_dicts(messages), self.use_chat_template)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        documents, query = self._documents(run_manager, kwargs)
        result = self._generator.complete(
            self._prompt(messages),
            self._config(stop, kwargs),
            steer=self.steering is not None,
            documents=documents,
            query=query,
        )
        info = generation_info(result, str(self.model_name))
        usage = _usage(result.prompt_tokens, result.generated_tokens)
        message = AIMessage(content=result.text, response_metadata=info, usage_metadata=usage)
        return ChatResult(generations=[ChatGeneration(message=message, generation_info=info)])

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return await run_in_thread(self._generate, messages, stop, None, **self._with_request(run_manager, kwargs))

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        documents, query = self._documents(run_manager, kwargs)
        header, pieces = self._generator.stream_complete(
            self._prompt(messages),
            self._config(stop, kwargs),
            steer=self.steering is not None,
            documents=documents,
            query=query,
        )
        metadata = stream_info(header, self.model_name)
        first = True
        try:
            for piece in pieces:
                chunk = ChatGenerationChunk(
                    message=AIMessageChunk(content=piece, response_metadata=metadata if first else {})
                )
                first = False
                if run_manager:
                    run_manager.on_llm_new_token(piece, chunk=chunk)
                yield chunk
        finally:
            pieces.close()
        # The finished stream's usage rides on a last, empty chunk (with the trace if nothing was generated):
        # the chunks add up to what invoke() returns, usage_metadata included, for tracers and cost callbacks.
        counts = stream_usage(header, pieces)
        usage = _usage(counts["prompt_tokens"], counts["generated_tokens"])
        last = AIMessageChunk(
            content="", response_metadata={**(metadata if first else {}), **counts}, usage_metadata=usage
        )
        yield ChatGenerationChunk(message=last)

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        request = self._with_request(run_manager, kwargs)
        async for chunk in iterate_in_executor(self._stream, messages, stop, run_manager, request):
            yield chunk


def _usage(prompt_tokens: int, generated_tokens: int) -> UsageMetadata:
    return UsageMetadata(
        input_tokens=prompt_tokens, output_tokens=generated_tokens, total_tokens=prompt_tokens + generated_tokens
    )


__all__ = ["ChatPosrag"]
