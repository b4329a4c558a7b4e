"""Every setting of posrag's LLM classes is honoured under each framework's usual name, or refused naming the
right one; empty completions stream cleanly; posrag's RAG prompt is offered as each framework's template."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from langchain_core.documents import Document
from langchain_posrag import RAG_CHAT_PROMPT, RAG_PROMPT, ChatPosrag, format_documents
from langchain_posrag import PosragLLM as LCLLM
from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.instrumentation import get_dispatcher
from llama_index.llms.posrag import RAG_PROMPT as LI_RAG_PROMPT
from llama_index.llms.posrag import PosragLLM as LILLM
from llama_index.llms.posrag import PosragTraceHandler
from pydantic import ValidationError

from posrag.documents import ScoredDocument
from posrag.errors import ConfigurationError
from posrag.prompts import build_prompt
from posrag.testing import tiny_model

TINY = tiny_model("llama", num_layers=1)
PROMPT = "Question: what is the capital of France?\nAnswer:"


def _tokens(info: dict[str, Any]) -> int:
    return int(info["generated_tokens"])


def test_langchain_classes_take_max_new_tokens_too_and_honour_it_in_the_constructor_and_per_call() -> None:
    chat = ChatPosrag(model=TINY, steering=None, max_new_tokens=3)
    assert chat.max_tokens == 3
    message = chat.invoke(PROMPT)
    assert _tokens(message.response_metadata) == 3
    assert message.usage_metadata is not None and message.usage_metadata["output_tokens"] == 3
    assert message.usage_metadata["total_tokens"] == 3 + message.response_metadata["prompt_tokens"]
    assert _tokens(chat.invoke(PROMPT, max_new_tokens=2).response_metadata) == 2
    llm = LCLLM(model=TINY, steering=None, max_tokens=4)
    assert _tokens(llm.generate([PROMPT], max_new_tokens=2).generations[0][0].generation_info or {}) == 2
    with pytest.raises(ValidationError, match="both max_tokens=3 and max_new_tokens=4"):
        ChatPosrag(model=TINY, max_tokens=3, max_new_tokens=4)


def test_llama_index_llm_takes_max_tokens_too_and_honours_it_in_the_constructor_and_per_call() -> None:
    llm = LILLM(model=TINY, steering=None, max_tokens=3)
    assert llm.max_new_tokens == 3 and llm.metadata.num_output == 3
    assert _tokens(llm.complete(PROMPT).additional_kwargs) == 3
    assert _tokens(llm.complete(PROMPT, max_tokens=2).additional_kwargs) == 2
    assert _tokens(llm.chat([ChatMessage(role="user", content=PROMPT)], max_new_tokens=1).additional_kwargs) == 1


@pytest.mark.parametrize("framework", ["langchain", "llama_index"])
def test_unknown_settings_and_call_options_are_refused_naming_the_right_one(framework: str) -> None:
    cls: Any = LCLLM if framework == "langchain" else LILLM
    with pytest.raises(ValidationError, match="'max_new_token': did you mean 'max_new_tokens'"):
        cls(model=TINY, max_new_token=5)
    llm = cls(model=TINY, steering=None, max_tokens=2)
    call = llm.invoke if framework == "langchain" else llm.complete
    with pytest.raises(ConfigurationError, match="top_k is not supported \\(use top_p\\)"):
        call(PROMPT, top_k=3)
    with pytest.raises(ConfigurationError, match="'temprature': did you mean 'temperature'"):
        call(PROMPT, temprature=0.5)


def test_an_empty_completion_streams_as_one_empty_response_in_llama_index() -> None:
    """LlamaIndex's end-of-stream event needs a response: a stream that generated nothing yields an empty one."""
    llm = LILLM(model=TINY, steering=None, max_new_tokens=4)
    first = llm.complete(PROMPT, max_new_tokens=1).text
    handler = PosragTraceHandler()
    get_dispatcher().add_event_handler(handler)
    try:
        (only,) = list(llm.stream_complete(PROMPT, stop=[first]))
        assert only.text == "" and only.delta == "" and "posrag_trace" in only.additional_kwargs
        (chat,) = list(llm.stream_chat([ChatMessage(role="user", content=PROMPT)], stop=[first]))
        assert chat.message.content == ""

        async def astream() -> list[Any]:
            return [r async for r in await llm.astream_complete(PROMPT, stop=[first])]

        assert [r.text for r in asyncio.run(astream())] == [""]
    finally:
        get_dispatcher().event_handlers.remove(handler)
    assert len(handler.traces) == 3  # every stream's end event carried its (empty) response


def test_posrags_rag_prompt_is_each_frameworks_ready_template() -> None:
    documents = [Document("Marrowvale lighthouse built 1887", metadata={"title": "Lighthouse"}), Document("Other")]
    expected = build_prompt("Who built it?", [ScoredDocument(d.page_content, d.metadata) for d in documents]).text
    assert RAG_PROMPT.format(context=format_documents(documents), question="Who built it?") == expected
    (message,) = RAG_CHAT_PROMPT.format_messages(context=format_documents(documents), question="Who built it?")
    assert message.content == expected
    context = format_documents(documents)
    assert LI_RAG_PROMPT.format(context_str=context, query_str="Who built it?") == expected


def test_a_chat_prompts_end_of_turn_stops_apply_to_complete_and_stream() -> None:
    """A chat prompt without a template ends the answer at the next role line (``FormattedPrompt.stop``)."""
    from dataclasses import replace

    from posrag.chat import TURN_STOPS, format_messages
    from posrag.generation import GenerationConfig

    generator = ChatPosrag(model=TINY, steering=None).generator
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": PROMPT}]
    prompt = format_messages(generator.tokenizer, messages, False)
    assert prompt.stop == TURN_STOPS
    config = GenerationConfig(max_new_tokens=6)
    full = generator.complete(replace(prompt, stop=()), config, steer=False).text
    assert len(full) > 1
    turn = replace(prompt, stop=(full[1:],))  # as if the model began a new role line after its first character
    assert generator.complete(turn, config, steer=False).text == full[:1]
    _, pieces = generator.stream_complete(turn, config, steer=False)
    assert "".join(pieces) == full[:1]
