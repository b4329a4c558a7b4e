"""LlamaIndex ``PosragLLM`` on a tiny model: a CustomLLM inside a real RetrieverQueryEngine, trace, stream, async."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import torch
from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.base.llms.types import ChatMessage, MessageRole
from llama_index.core.bridge.pydantic import Field
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events import BaseEvent
from llama_index.core.llms.custom import CustomLLM
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode
from llama_index.llms.posrag import PosragLLM, PosragTraceHandler
from llama_index.postprocessor.posrag import PositionReorder

from posrag.generation import GenerationConfig, apply_chat_template, generate_text
from posrag.steering import SteeringConfig, hook_counts
from posrag.testing import tiny_model

TINY = tiny_model("gemma3", num_layers=4, sliding_window=512)
TEXTS = {
    "paris": ("Paris is the capital of France.", 0.9),
    "everest": ("Everest is the highest mountain on Earth.", 0.3),
    "rome": ("Rome is the capital of Italy, a city.", 0.6),
}
PLAIN_PROMPT = "Question: What is the capital of France? Answer:"


class FixedRetriever(BaseRetriever):
    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return [NodeWithScore(node=TextNode(text=text, id_=key), score=score) for key, (text, score) in TEXTS.items()]


@pytest.fixture(autouse=True)
def _one_thread() -> Any:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    assert hook_counts(TINY.model) == {"forward": 0, "forward_pre": 0}


@pytest.fixture
def traces() -> Any:
    handler = PosragTraceHandler()
    dispatcher = get_dispatcher()
    dispatcher.add_event_handler(handler)
    yield handler.traces
    dispatcher.event_handlers.remove(handler)


def _llm(**kwargs: Any) -> PosragLLM:
    # The tiny model's position limit (512) is below LlamaIndex's prompt padding; widen the budget it sees.
    return PosragLLM(model=TINY, **{"max_new_tokens": 8, "use_chat_template": False, "context_window": 4096, **kwargs})


def test_is_a_custom_llm_with_metadata() -> None:
    llm = PosragLLM(model=TINY, max_new_tokens=8)
    assert isinstance(llm, CustomLLM)
    meta = llm.metadata
    assert meta.context_window == 512 and meta.num_output == 8 and meta.model_name == "gemma3"
    assert not meta.is_chat_model


def test_without_documents_it_is_a_plain_local_llm() -> None:
    plain = generate_text(TINY.model, TINY.tokenizer, PLAIN_PROMPT, GenerationConfig(max_new_tokens=8))
    response = _llm().complete(PLAIN_PROMPT)
    assert response.text == plain
    assert response.additional_kwargs["posrag_trace"] == []
    templated = apply_chat_template(TINY.tokenizer, [{"role": "user", "content": PLAIN_PROMPT}])
    expected = generate_text(
        TINY.model, TINY.tokenizer, templated, GenerationConfig(max_new_tokens=8), add_special_tokens=False
    )
    assert _llm(use_chat_template=None).complete(PLAIN_PROMPT).text == expected


@pytest.mark.parametrize("mechanism", ["activation", "attention", "both"])
def test_retriever_query_engine_with_reorder_steers_and_reports_the_trace(mechanism: str, traces: list) -> None:
    llm = _llm(steering=SteeringConfig(mechanism=mechanism, top_k=None))  # type: ignore[arg-type]
    engine = RetrieverQueryEngine.from_args(FixedRetriever(), llm=llm, node_postprocessors=[PositionReorder()])
    response = engine.query("What is the capital of France?")
    assert isinstance(response.response, str)
    assert [n.node.node_id for n in response.source_nodes] == ["everest", "rome", "paris"]
    (trace,) = traces
    assert [t["doc_id"] for t in trace] == ["everest", "rome", "paris"]
    assert [t["relative_position"] for t in trace] == [0.0, 0.5, 1.0]
    assert {t["mechanism"] for t in trace} == {mechanism}
    assert all(t["token_span"]["end"] > t["token_span"]["start"] for t in trace)


def test_streaming_query_engine_and_stream_complete(traces: list) -> None:
    llm = _llm(steering=SteeringConfig(mechanism="both"), max_new_tokens=12)
    engine = RetrieverQueryEngine.from_args(
        FixedRetriever(), llm=llm, node_postprocessors=[PositionReorder()], streaming=True
    )
    streamed = "".join(engine.query("What is the capital of France?").response_gen)
    plain_engine = RetrieverQueryEngine.from_args(FixedRetriever(), llm=llm, node_postprocessors=[PositionReorder()])
    assert streamed == plain_engine.query("What is the capital of France?").response
    pieces = list(llm.stream_complete(PLAIN_PROMPT))
    assert pieces[-1].text == llm.complete(PLAIN_PROMPT).text == "".join(p.delta for p in pieces)


def test_a_stream_ends_with_the_token_counts_a_completion_reports() -> None:
    """The last streamed response (the one LlamaIndex's end event carries to handlers) has the whole text and
    the token counts of the same call not streamed, also when a stop string cuts the stream; chat too."""
    llm = _llm(steering=SteeringConfig(mechanism="both"), max_new_tokens=12)
    whole = llm.complete(PLAIN_PROMPT).text
    for stop in ([], [whole.strip()[2:4]]):
        called = _llm(steering=SteeringConfig(mechanism="both"), max_new_tokens=12, stop=stop)
        completed = called.complete(PLAIN_PROMPT)
        last = list(called.stream_complete(PLAIN_PROMPT))[-1]
        counts = {k: completed.additional_kwargs[k] for k in ("prompt_tokens", "generated_tokens")}
        assert last.text == completed.text and {k: last.additional_kwargs[k] for k in counts} == counts
        assert 0 < counts["generated_tokens"] <= 12 < counts["prompt_tokens"]
    messages = [ChatMessage(role=MessageRole.USER, content=PLAIN_PROMPT)]
    chatted = llm.chat(messages).additional_kwargs["generated_tokens"]
    assert list(llm.stream_chat(messages))[-1].additional_kwargs["generated_tokens"] == chatted


def test_stop_sequences_and_chat() -> None:
    llm = _llm(max_new_tokens=16)
    full = llm.complete(PLAIN_PROMPT).text
    stop = full.strip()[2:5]
    assert stop and stop in full
    assert _llm(max_new_tokens=16, stop=[stop]).complete(PLAIN_PROMPT).text == full[: full.index(stop)]
    chat = _llm(use_chat_template=None)
    messages = [ChatMessage(role=MessageRole.USER, content=PLAIN_PROMPT)]
    templated = apply_chat_template(TINY.tokenizer, [{"role": "user", "content": PLAIN_PROMPT}])
    expected = generate_text(
        TINY.model, TINY.tokenizer, templated, GenerationConfig(max_new_tokens=8), add_special_tokens=False
    )
    assert chat.chat(messages).message.content == expected
    assert list(chat.stream_chat(messages))[-1].message.content == expected


def test_async_matches_sync() -> None:
    llm = _llm(steering=SteeringConfig(mechanism="both"))
    engine = RetrieverQueryEngine.from_args(FixedRetriever(), llm=llm, node_postprocessors=[PositionReorder()])

    async def run() -> tuple[str, str, str]:
        answer = await engine.aquery("What is the capital of France?")
        completion = await llm.acomplete(PLAIN_PROMPT)
        streamed = [chunk async for chunk in await llm.astream_complete(PLAIN_PROMPT)]
        return str(answer), completion.text, streamed[-1].text

    answer, completion, streamed = asyncio.run(run())
    assert answer == str(engine.query("What is the capital of France?"))
    assert completion == streamed == llm.complete(PLAIN_PROMPT).text


class EventCounter(BaseEventHandler):
    names: list[str] = Field(default_factory=list)

    @classmethod
    def class_name(cls) -> str:
        return "EventCounter"

    def handle(self, event: BaseEvent, **kwargs: Any) -> None:
        if type(event).__name__.startswith(("LLMCompletion", "LLMChat")) and "InProgress" not in event.class_name():
            self.names.append(event.class_name())


@pytest.fixture
def events() -> Any:
    counter = EventCounter()
    dispatcher = get_dispatcher()
    dispatcher.add_event_handler(counter)
    yield counter.names
    dispatcher.event_handlers.remove(counter)


def test_each_generation_emits_one_start_and_one_end_event(events: list, traces: list) -> None:
    llm = _llm(max_new_tokens=4)
    messages = [ChatMessage(role=MessageRole.USER, content=PLAIN_PROMPT)]

    async def run() -> None:
        await llm.acomplete(PLAIN_PROMPT)
        [_ async for _ in await llm.astream_complete(PLAIN_PROMPT)]
        await llm.achat(messages)
        [_ async for _ in await llm.astream_chat(messages)]

    llm.complete(PLAIN_PROMPT)
    list(llm.stream_complete(PLAIN_PROMPT))
    llm.chat(messages)
    list(llm.stream_chat(messages))
    sync = list(events)
    events.clear()
    asyncio.run(run())
    expected = ["LLMCompletionStartEvent", "LLMCompletionEndEvent"] * 2 + ["LLMChatStartEvent", "LLMChatEndEvent"] * 2
    assert sync == events == expected
    assert len(traces) == 8  # one per generation, chat responses included


def test_one_trace_per_async_query(traces: list) -> None:
    llm = _llm(steering=SteeringConfig(mechanism="both"), max_new_tokens=4)
    engine = RetrieverQueryEngine.from_args(FixedRetriever(), llm=llm, node_postprocessors=[PositionReorder()])
    asyncio.run(engine.aquery("What is the capital of France?"))
    (trace,) = traces
    assert [t["doc_id"] for t in trace] == ["everest", "rome", "paris"]
