"""Streaming steers what the same request steers without streaming, in every LangChain streaming entry point.

langchain-core's ``BaseChatModel.stream``/``astream`` and its streaming ``invoke`` (``streaming=True``,
``astream_events``, LangGraph's ``stream_mode="messages"``) call ``_stream`` without a run manager; each test
reads which document every LLM run of a request steered (the ``full``-tier entries of its trace, as its
``on_llm_end`` callback saw it) and compares it with the request's best document.
"""

from __future__ import annotations

import asyncio
from typing import Any, TypedDict
from uuid import UUID

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.documents import Document
from langchain_core.messages import BaseMessage, HumanMessage
from langchain_core.outputs import ChatGeneration, LLMResult
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnablePassthrough
from langchain_posrag import ChatPosrag, PositionReorder
from langchain_posrag import PosragLLM as LCLLM
from langchain_posrag import PosragRetriever as LCRetriever

from posrag.steering import hook_counts
from tests.unit.integrations.test_request_scoping import (
    EMBEDDER,
    INDEX,
    PROMPT,
    QUESTIONS,
    STEERING,
    TINY,
    _format,
    steered,
)

CHAT_PROMPT = ChatPromptTemplate.from_messages(
    [("system", "Answer briefly."), ("human", "Documents:\n{context}\n\nQuestion: {question}")]
)


class Steered(BaseCallbackHandler):
    """Which documents each LLM run steered, by the question its prompt asks (from ``on_llm_end``)."""

    def __init__(self) -> None:
        self.questions: dict[UUID, str] = {}
        self.steered: dict[str, list[str]] = {}

    def _start(self, run_id: UUID, text: str) -> None:
        self.questions[run_id] = next(q for q in QUESTIONS if q in text)

    def on_llm_start(self, serialized: Any, prompts: list[str], *, run_id: UUID, **kwargs: Any) -> None:
        self._start(run_id, prompts[0])

    def on_chat_model_start(
        self, serialized: Any, messages: list[list[BaseMessage]], *, run_id: UUID, **kwargs: Any
    ) -> None:
        self._start(run_id, " ".join(m.text for m in messages[0]))

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        generation = response.generations[0][0]
        chat = isinstance(generation, ChatGeneration)
        info = generation.message.response_metadata if chat else generation.generation_info
        self.steered[self.questions[run_id]] = steered((info or {})["posrag_trace"])


EXPECTED = {q: [best] for q, best in QUESTIONS.items()}


def _chat(**kwargs: Any) -> ChatPosrag:
    return ChatPosrag(model=TINY, steering=STEERING, max_tokens=2, embedder=EMBEDDER, **kwargs)


def _context() -> Any:
    return LCRetriever(index=INDEX, k=3) | PositionReorder() | _format


def _chat_chain(chat: ChatPosrag) -> Any:
    return {"context": _context(), "question": RunnablePassthrough()} | CHAT_PROMPT | chat


def _each(run: Any) -> dict[str, list[str]]:
    handler = Steered()
    for question in QUESTIONS:
        run(question, {"callbacks": [handler]})
    assert hook_counts(TINY.model) == {"forward": 0, "forward_pre": 0}
    return handler.steered


def _aeach(run: Any) -> dict[str, list[str]]:
    handler = Steered()

    async def all_questions() -> None:
        await asyncio.gather(*(run(q, {"callbacks": [handler]}) for q in QUESTIONS))

    asyncio.run(all_questions())
    return handler.steered


def test_chat_chain_invoke_is_the_reference() -> None:
    assert _each(lambda q, config: _chat_chain(_chat()).invoke(q, config)) == EXPECTED


def test_chat_stream_and_astream_steer_the_requests_best_document() -> None:
    chain = _chat_chain(_chat())
    chunks: list[Any] = []

    def stream(question: str, config: Any) -> None:
        chunks.extend(chain.stream(question, config))

    assert _each(stream) == EXPECTED
    # The trace also rides on the first streamed chunk, for code that reads the stream only.
    assert steered(chunks[0].response_metadata["posrag_trace"]) == EXPECTED[next(iter(QUESTIONS))]

    async def astream(question: str, config: Any) -> None:
        async for _ in chain.astream(question, config):
            pass

    assert _aeach(astream) == EXPECTED


def test_chat_astream_events_steers_the_requests_best_document() -> None:
    chain = _chat_chain(_chat())

    async def events(question: str, config: Any) -> None:
        kinds = [event["event"] async for event in chain.astream_events(question, config, version="v2")]
        assert "on_chat_model_stream" in kinds

    assert _aeach(events) == EXPECTED


@pytest.mark.parametrize("entry", ["invoke", "ainvoke"])
def test_a_streaming_chat_model_steers_when_invoked(entry: str) -> None:
    chain = _chat_chain(_chat(streaming=True))
    if entry == "invoke":
        assert _each(lambda q, config: chain.invoke(q, config)) == EXPECTED
    else:
        assert _aeach(lambda q, config: chain.ainvoke(q, config)) == EXPECTED


def test_llm_stream_astream_and_astream_events_steer_the_requests_best_document() -> None:
    llm = LCLLM(model=TINY, steering=STEERING, max_tokens=2, use_chat_template=False, embedder=EMBEDDER)
    chain = {"context": _context(), "question": RunnablePassthrough()} | PROMPT | llm
    assert _each(lambda q, config: "".join(chain.stream(q, config))) == EXPECTED

    async def astream(question: str, config: Any) -> None:
        async for _ in chain.astream(question, config):
            pass

    assert _aeach(astream) == EXPECTED

    async def events(question: str, config: Any) -> None:
        async for _ in chain.astream_events(question, config, version="v2"):
            pass

    assert _aeach(events) == EXPECTED


def test_langgraph_retrieve_then_generate_streamed_as_messages_steers_each_requests_document() -> None:
    langgraph = pytest.importorskip("langgraph.graph")

    class State(TypedDict, total=False):
        question: str
        documents: list[Document]
        answer: BaseMessage

    chat = _chat()
    retriever = LCRetriever(index=INDEX, k=3)

    def retrieve(state: State) -> State:
        return {"documents": PositionReorder().transform_documents(retriever.invoke(state["question"]))}

    def generate(state: State) -> State:
        context = _format(state["documents"])
        return {"answer": chat.invoke([HumanMessage(f"Documents:\n{context}\n\nQuestion: {state['question']}")])}

    builder = langgraph.StateGraph(State)
    builder.add_node("retrieve", retrieve)
    builder.add_node("generate", generate)
    builder.add_edge(langgraph.START, "retrieve")
    builder.add_edge("retrieve", "generate")
    graph = builder.compile()

    def messages(question: str, config: Any) -> None:
        streamed = list(graph.stream({"question": question}, config, stream_mode="messages"))
        assert streamed and all(meta["langgraph_node"] == "generate" for _, meta in streamed)

    assert _each(messages) == EXPECTED

    async def amessages(question: str, config: Any) -> None:
        async for _ in graph.astream({"question": question}, config, stream_mode="messages"):
            pass

    assert _aeach(amessages) == EXPECTED


# ----------------------------------------------------------------------------- LlamaIndex


def test_llama_index_streaming_queries_and_chat_engines_steer_the_requests_best_node() -> None:
    """Streaming query engines (sync and async) and condense-plus-context chat engines (stream_chat and
    astream_chat): the answering LLM call steers the request's best node, as the non-streaming call does."""
    from llama_index.core.chat_engine import CondensePlusContextChatEngine
    from llama_index.core.instrumentation import get_dispatcher
    from llama_index.core.query_engine import RetrieverQueryEngine
    from llama_index.llms.posrag import PosragLLM as LILLM
    from llama_index.llms.posrag import PosragTraceHandler
    from llama_index.retrievers.posrag import PosragRetriever as LIRetriever

    llm = LILLM(model=TINY, embedder=EMBEDDER, steering=STEERING, max_new_tokens=2, use_chat_template=False,
                context_window=4096)  # fmt: skip
    retriever = LIRetriever(INDEX, similarity_top_k=3)
    engine = RetrieverQueryEngine.from_args(retriever, llm=llm, streaming=True)
    handler = PosragTraceHandler()
    get_dispatcher().add_event_handler(handler)

    def answering() -> list[list[str]]:
        """What the calls that had documents steered (a chat engine's condense call has none), then forget."""
        out = [steered(trace) for trace in handler.traces if trace]
        handler.traces.clear()
        return out

    async def aquery(question: str) -> None:
        response = await engine.aquery(question)
        async for _ in response.async_response_gen():
            pass

    async def achat(chat: Any, question: str) -> None:
        response = await chat.astream_chat(question)
        async for _ in response.async_response_gen():
            pass

    try:
        for question, best in QUESTIONS.items():
            "".join(engine.query(question).response_gen)
            assert answering() == [[best]]
            asyncio.run(aquery(question))
            assert answering() == [[best]]
            chat = CondensePlusContextChatEngine.from_defaults(retriever, llm=llm)
            "".join(chat.stream_chat(question).response_gen)
            assert answering() == [[best]]
            # a fresh conversation: a second turn would retrieve for the tiny model's condensed question
            asyncio.run(achat(CondensePlusContextChatEngine.from_defaults(retriever, llm=llm), question))
            assert answering() == [[best]]
    finally:
        get_dispatcher().event_handlers.remove(handler)
    assert hook_counts(TINY.model) == {"forward": 0, "forward_pre": 0}
