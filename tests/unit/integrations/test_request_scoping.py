"""Steer the right document in every real chain: each request steers its own best document, nothing else.

A tiny model, posrag's retrievers over a hashed bag-of-words index, and the frameworks' own machinery (LCEL
batch/abatch/threads/gather/stream, LlamaIndex query engines in every response mode). Which document a call
steered is read from its trace (the ``full``-tier entry); a request run alone is the reference.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from uuid import UUID

import pytest
import torch
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.documents import Document
from langchain_core.messages import HumanMessage, SystemMessage
from langchain_core.outputs import LLMResult
from langchain_core.prompts import PromptTemplate
from langchain_core.runnables import RunnableLambda, RunnablePassthrough
from langchain_posrag import ChatPosrag, PositionReorder
from langchain_posrag import PosragLLM as LCLLM
from langchain_posrag import PosragRetriever as LCRetriever
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.postprocessor import LongContextReorder
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.schema import NodeWithScore, TextNode
from llama_index.llms.posrag import PosragLLM as LILLM
from llama_index.llms.posrag import PosragTraceHandler
from llama_index.postprocessor.posrag import PositionReorder as LIReorder
from llama_index.retrievers.posrag import PosragRetriever as LIRetriever

from posrag.retrieval import DocumentIndex
from posrag.steering import SteeringConfig, hook_counts
from posrag.testing import tiny_model
from tests.unit.hashing_embedder import HashingEmbedder

TINY = tiny_model("llama", num_layers=2)
EMBEDDER = HashingEmbedder()
TEXTS = {
    "paris": "Paris is the capital of France and sits on the Seine river",
    "berlin": "Berlin is the capital of Germany and sits on the Spree river",
    "everest": "Mount Everest is the highest mountain on the planet Earth",
    "pacific": "The Pacific is the largest and deepest ocean on the planet",
    "cats": "Cats are small furry animals that purr and chase mice",
}
QUESTIONS = {
    "capital of France Seine": "paris",
    "capital of Germany Spree": "berlin",
    "highest mountain Everest": "everest",
    "largest deepest ocean Pacific": "pacific",
}
INDEX = DocumentIndex.from_texts(list(TEXTS.values()), ids=list(TEXTS), embedder=EMBEDDER)
PROMPT = PromptTemplate.from_template("Documents:\n{context}\n\nQuestion: {question}\nAnswer:")
STEERING = SteeringConfig(mechanism="attention", confidence=False)


@pytest.fixture(autouse=True)
def _one_thread() -> Any:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    assert hook_counts(TINY.model) == {"forward": 0, "forward_pre": 0}


class Traces(BaseCallbackHandler):
    """The prompt and the trace of every LLM run, by run id."""

    run_inline = True  # in order, also under async callback managers

    def __init__(self) -> None:
        self.prompts: dict[UUID, str] = {}
        self.infos: dict[UUID, dict[str, Any]] = {}

    def on_llm_start(self, serialized: Any, prompts: list[str], *, run_id: UUID, **kwargs: Any) -> None:
        self.prompts[run_id] = prompts[0]

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        self.infos[run_id] = response.generations[0][0].generation_info or {}

    def steered_by_question(self) -> dict[str, list[str]]:
        out = {}
        for run_id, info in self.infos.items():
            question = next(q for q in QUESTIONS if q in self.prompts[run_id])
            out[question] = steered(info["posrag_trace"])
        return out


def steered(trace: list[dict[str, Any]]) -> list[str]:
    return [t["doc_id"] for t in trace if t["mechanism"] != "none"]


def _llm(**kwargs: Any) -> LCLLM:
    settings = {"steering": STEERING, "max_tokens": 2, "use_chat_template": False, "embedder": EMBEDDER}
    return LCLLM(model=TINY, **{**settings, **kwargs})


def _format(docs: list[Document]) -> str:
    return "\n".join(d.page_content for d in docs)


def _chain(llm: Any, retriever: Any = None) -> Any:
    retriever = retriever or LCRetriever(index=INDEX, k=3)
    return {"context": retriever | PositionReorder() | _format, "question": RunnablePassthrough()} | PROMPT | llm


def _alone(llm: Any) -> dict[str, list[str]]:
    reference = Traces()
    for question in QUESTIONS:
        _chain(llm).invoke(question, config={"callbacks": [reference]})
    return reference.steered_by_question()


# ----------------------------------------------------------------------------- LangChain


def test_each_request_alone_steers_its_own_best_document() -> None:
    assert _alone(_llm()) == {q: [best] for q, best in QUESTIONS.items()}


def test_batch_abatch_threads_and_gather_steer_exactly_what_each_request_steers_alone() -> None:
    llm = _llm()
    expected = _alone(llm)
    chain = _chain(llm)
    questions = list(QUESTIONS)

    batch = Traces()
    chain.batch(questions, config={"callbacks": [batch]})
    assert batch.steered_by_question() == expected

    abatch = Traces()
    asyncio.run(chain.abatch(questions, config={"callbacks": [abatch]}))
    assert abatch.steered_by_question() == expected

    threads = Traces()
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda q: chain.invoke(q, config={"callbacks": [threads]}), questions))
    assert threads.steered_by_question() == expected

    gathered = Traces()

    async def gather() -> None:
        await asyncio.gather(*(chain.ainvoke(q, config={"callbacks": [gathered]}) for q in questions))

    asyncio.run(gather())
    assert gathered.steered_by_question() == expected


def test_llm_batch_runs_each_prompt_as_its_own_request() -> None:
    """LangChain's BaseLLM.batch would hand every prompt the first prompt's run; posrag's runs them one by one."""
    llm = _llm()
    prompts = [f"Documents:\n{TEXTS[best]}\n\nQuestion: {q}\nAnswer:" for q, best in QUESTIONS.items()]
    traces = Traces()
    llm.batch(prompts, config={"callbacks": [traces]})
    assert all(info["posrag_trace"] == [] for info in traces.infos.values())  # no request documents at all
    explicit = Traces()
    out = llm.batch(prompts, config={"callbacks": [explicit]}, documents=[Document(t) for t in TEXTS.values()])
    assert len(out) == len(prompts) and all(len(steered(i["posrag_trace"])) == 1 for i in explicit.infos.values())


def test_stream_and_astream_steer_the_requests_own_document() -> None:
    llm = _llm()
    for question, best in QUESTIONS.items():
        traces = Traces()
        assert "".join(_chain(llm).stream(question, config={"callbacks": [traces]}))
        assert traces.steered_by_question() == {question: [best]}

    async def astream(question: str) -> str:
        return "".join([c async for c in _chain(llm).astream(question)])

    async def both() -> list[str]:
        return await asyncio.gather(*(astream(q) for q in QUESTIONS))

    assert len(asyncio.run(both())) == len(QUESTIONS)


def test_a_prompt_outside_any_request_is_not_steered_even_if_it_quotes_a_retrieved_text() -> None:
    llm = _llm()
    _chain(llm).invoke("capital of France Seine")
    traces = Traces()
    llm.invoke(f"Tell me about this: {TEXTS['paris']}", config={"callbacks": [traces]})
    (info,) = traces.infos.values()
    assert info["posrag_trace"] == [] and info["posrag_selection"]["request_documents"] == 0


def test_unscored_documents_are_ranked_by_posrags_own_relevance() -> None:
    """A standard retriever puts no score in metadata: the relevance to the query picks the one to steer."""
    llm = _llm()

    def unscored(question: str) -> list[Document]:
        return [Document(t, id=doc_id) for doc_id, t in TEXTS.items()]  # every document, no scores

    for question, best in QUESTIONS.items():
        traces = Traces()
        chain = {"context": RunnableLambda(unscored) | _format, "question": RunnablePassthrough()} | PROMPT | llm
        chain.invoke(question, config={"callbacks": [traces]})
        (info,) = traces.infos.values()
        assert steered(info["posrag_trace"]) == [best]
        assert info["posrag_selection"]["scores"] == "relevance"
    everything = _llm(steering=SteeringConfig(mechanism="attention", unscored="all"))
    traces = Traces()
    chain = {"context": RunnableLambda(unscored) | _format, "question": RunnablePassthrough()} | PROMPT | everything
    chain.invoke("capital of France Seine", config={"callbacks": [traces]})
    assert len(steered(next(iter(traces.infos.values()))["posrag_trace"])) == len(TEXTS)


def test_map_reduce_calls_steer_only_the_requests_best_document() -> None:
    """One LLM call per document (map), in one request: the distractors' calls steer nothing."""
    llm = _llm()
    traces = Traces()

    def map_step(inputs: dict[str, Any]) -> list[str]:
        prompts = [f"Document: {d.page_content}\nQuestion: {inputs['question']}\nAnswer:" for d in inputs["docs"]]
        return llm.batch(prompts)

    chain = {"docs": LCRetriever(index=INDEX, k=3), "question": RunnablePassthrough()} | RunnableLambda(map_step)
    chain.invoke("capital of France Seine", config={"callbacks": [traces]})
    assert len(traces.infos) == 3
    assert sorted(d for info in traces.infos.values() for d in steered(info["posrag_trace"])) == ["paris"]


def test_a_warning_per_cause_with_the_advice_for_that_cause(caplog: pytest.LogCaptureFixture) -> None:
    """A document-free call (no retriever in its request) does not silence the warning of a later call whose
    request's documents are not in its prompt; each says what to do about its own cause."""
    llm = _llm()
    with caplog.at_level(logging.WARNING, logger="posrag"):
        llm.invoke("Question: what is the capital of France?\nAnswer:")
        llm.invoke("Question: and of Germany?\nAnswer:")
        rewritten = RunnableLambda(lambda docs: " / ".join(d.page_content.upper() for d in docs))
        chain = {"context": LCRetriever(index=INDEX, k=3) | rewritten, "question": RunnablePassthrough()} | PROMPT | llm
        chain.invoke("capital of France Seine")
    messages = [r.getMessage() for r in caplog.records if "generated without steering" in r.getMessage()]
    assert len(messages) == 2
    assert "had no documents from its request" in messages[0] and "documents=[...]" in messages[0]
    assert "none of the 3 documents" in messages[1] and "unchanged" in messages[1]


def test_chat_traces_are_in_the_callers_message_coordinates() -> None:
    chat = ChatPosrag(model=TINY, steering=STEERING, max_tokens=2, embedder=EMBEDDER)
    context = f"Documents:\n{TEXTS['everest']}\n{TEXTS['paris']}"
    messages = [SystemMessage("Answer briefly."), HumanMessage(f"{context}\n\nQuestion: capital of France Seine")]
    result = chat.invoke(messages, documents=[Document(t, id=i) for i, t in TEXTS.items()])
    trace = result.response_metadata["posrag_trace"]
    assert [t["doc_id"] for t in trace] == ["everest", "paris"] and steered(trace) == ["paris"]
    for entry in trace:
        assert entry["message"] == 1
        span = entry["span"]
        assert messages[1].content[span["start_char"] : span["end_char"]] == TEXTS[entry["doc_id"]]


# ----------------------------------------------------------------------------- LlamaIndex


@pytest.fixture
def li_traces() -> Any:
    handler = PosragTraceHandler()
    dispatcher = get_dispatcher()
    dispatcher.add_event_handler(handler)
    yield handler.traces
    dispatcher.event_handlers.remove(handler)


def _li_llm(**kwargs: Any) -> LILLM:
    # LlamaIndex sizes its prompts by context_window with its own (tiktoken) counts: give it room.
    settings = {"steering": STEERING, "max_new_tokens": 2, "use_chat_template": False, "context_window": 4096}
    return LILLM(model=TINY, embedder=EMBEDDER, **{**settings, **kwargs})


def _nodes(question: str) -> list[NodeWithScore]:
    return LIRetriever(INDEX, similarity_top_k=3).retrieve(question)


def test_postprocessing_other_nodes_in_between_does_not_change_what_a_prompt_steers(li_traces: list) -> None:
    pp, llm = LIReorder(), _li_llm()
    nodes_a, nodes_b = (
        pp.postprocess_nodes(_nodes("capital of France Seine")),
        pp.postprocess_nodes(_nodes("capital of Germany Spree")),
    )
    prompt_a = "\n".join(n.node.get_content() for n in nodes_a) + "\nQuestion: capital of France Seine\nAnswer:"
    assert llm.complete(prompt_a).additional_kwargs["posrag_trace"] == []  # no request: nothing remembered
    steered_a = llm.complete(prompt_a, documents=nodes_a).additional_kwargs["posrag_trace"]
    assert steered(steered_a) == ["paris"] and "berlin" in {n.node.node_id for n in nodes_b}


@pytest.mark.parametrize(
    "mode", ["compact", "refine", "tree_summarize", "simple_summarize", "accumulate", "compact_accumulate"]
)
def test_every_response_mode_steers_only_the_querys_best_node(mode: str, li_traces: list) -> None:
    engine = RetrieverQueryEngine.from_args(
        LIRetriever(INDEX, similarity_top_k=3), llm=_li_llm(), node_postprocessors=[LIReorder()], response_mode=mode
    )
    for question, best in QUESTIONS.items():
        li_traces.clear()
        response = engine.query(question)
        assert li_traces, mode
        all_steered = [d for trace in li_traces for d in steered(trace)]
        assert set(all_steered) == {best}, (mode, question, li_traces)
        # the query's own response reports every LLM call of that query, and only those
        assert response.metadata["posrag_trace"] == li_traces
        assert len(response.metadata["posrag_selection"]) == len(li_traces)


def test_a_split_compact_context_steers_only_the_best_node_across_its_calls(li_traces: list) -> None:
    """A small context window (by LlamaIndex's own token counts) makes compact split the nodes over calls."""
    engine = RetrieverQueryEngine.from_args(
        LIRetriever(INDEX, similarity_top_k=5), llm=_li_llm(context_window=620), response_mode="compact"
    )
    engine.query("capital of France Seine")
    assert len(li_traces) > 1 and sum(len(trace) for trace in li_traces) == len(TEXTS)  # every node located once
    assert [d for trace in li_traces for d in steered(trace)] == ["paris"]


def test_concurrent_async_queries_each_steer_their_own_node(li_traces: list) -> None:
    engine = RetrieverQueryEngine.from_args(
        LIRetriever(INDEX, similarity_top_k=3), llm=_li_llm(), node_postprocessors=[LongContextReorder()]
    )

    async def run() -> list[Any]:
        return await asyncio.gather(*(engine.aquery(q) for q in QUESTIONS))

    asyncio.run(run())
    assert sorted(d for trace in li_traces for d in steered(trace)) == sorted(QUESTIONS.values())


def test_a_streaming_query_steers_its_nodes_while_its_stream_is_consumed(li_traces: list) -> None:
    engine = RetrieverQueryEngine.from_args(LIRetriever(INDEX, similarity_top_k=3), llm=_li_llm(), streaming=True)
    response = engine.query("highest mountain Everest")
    assert li_traces == []
    streamed = "".join(response.response_gen)  # LlamaIndex calls the LLM only now, after the query returned
    assert [steered(trace) for trace in li_traces] == [["everest"]]
    plain = RetrieverQueryEngine.from_args(LIRetriever(INDEX, similarity_top_k=3), llm=_li_llm())
    assert streamed == str(plain.query("highest mountain Everest"))


def test_unscored_nodes_are_ranked_by_relevance(li_traces: list) -> None:
    llm = _li_llm()
    nodes = [NodeWithScore(node=TextNode(text=t, id_=i)) for i, t in TEXTS.items()]  # score None
    prompt = "\n".join(TEXTS.values()) + "\nQuestion: largest deepest ocean Pacific\nAnswer:"
    response = llm.complete(prompt, documents=nodes)
    assert steered(response.additional_kwargs["posrag_trace"]) == ["pacific"]
    assert response.additional_kwargs["posrag_selection"]["scores"] == "relevance"
