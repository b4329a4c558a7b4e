"""The LangChain and LlamaIndex retrievers over a DocumentIndex (hashed bag-of-words embedder)."""

from __future__ import annotations

import asyncio
import threading

import pytest
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever as LCBaseRetriever
from langchain_core.runnables import RunnableLambda
from langchain_posrag import PosragRetriever as LCRetriever
from langchain_posrag.callbacks import tracker
from langchain_tests.integration_tests import RetrieversIntegrationTests
from llama_index.callbacks.posrag import node_to_document, request_documents
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.llms.mock import MockLLM
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.retrievers import BaseRetriever as LIBaseRetriever
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode
from llama_index.postprocessor.posrag import PositionReorder
from llama_index.retrievers.posrag import PosragRetriever as LIRetriever

from posrag.documents import SCORE_KEY
from posrag.locate import locate
from posrag.retrieval import DocumentIndex
from tests.unit.hashing_embedder import HashingEmbedder

TEXTS = [
    "Paris is the capital of France and sits on the Seine",
    "Berlin is the capital of Germany on the Spree",
    "Mount Everest is the highest mountain on Earth",
    "Cats are small furry animals that purr",
    "The Pacific is the largest ocean on the planet",
]
IDS = ["paris", "berlin", "everest", "cats", "pacific"]
METAS = [{"topic": t} for t in ["geo", "geo", "mountains", "pets", "sea"]]


def make_index(embedder=None) -> DocumentIndex:
    return DocumentIndex.from_texts(TEXTS, METAS, IDS, embedder=embedder or HashingEmbedder())


@pytest.fixture
def index():
    return make_index()


async def ticks_while(awaitable) -> tuple[object, int]:
    """Run ``awaitable`` and count how often another coroutine got the event loop meanwhile."""
    ticks = 0
    done = asyncio.Event()

    async def ticker():
        nonlocal ticks
        while not done.is_set():
            await asyncio.sleep(0.005)
            ticks += 1

    task = asyncio.create_task(ticker())
    try:
        result = await awaitable
    finally:
        done.set()
        await task
    return result, ticks


# ------------------------------------------------------------------------------------------------ LangChain


class TestLangChainStandard(RetrieversIntegrationTests):
    """langchain-tests' own retriever suite (k in the constructor and in invoke, sync and async)."""

    @property
    def retriever_constructor(self) -> type[LCRetriever]:
        return LCRetriever

    @property
    def retriever_constructor_params(self) -> dict:
        return {"index": make_index(), "k": 2}

    @property
    def retriever_query_example(self) -> str:
        return "capital of France"


def test_langchain_returns_documents_with_similarity_scores_and_ids(index):
    retriever = LCRetriever(index=index, k=3)
    assert isinstance(retriever, LCBaseRetriever)
    docs = retriever.invoke("capital of France")
    assert all(isinstance(d, Document) for d in docs)
    assert docs[0].id == "paris" and docs[0].metadata["topic"] == "geo"
    scores = [d.metadata[SCORE_KEY] for d in docs]
    assert scores == sorted(scores, reverse=True)
    assert scores == pytest.approx([d.score for d in index.search("capital of France", k=3)])
    assert retriever.invoke(TEXTS[4], k=1)[0].metadata[SCORE_KEY] == pytest.approx(1.0, abs=1e-5)


def test_langchain_records_what_it_returns_for_its_request(index):
    seen = []

    def peek(docs, config):
        seen.append(tracker.documents(config["callbacks"].parent_run_id))
        return docs

    docs = (LCRetriever(index=index, k=2) | RunnableLambda(peek)).invoke("capital of Germany")
    prompt = "Context:\n" + "\n\n".join(d.page_content for d in docs) + "\nQuestion: ?"
    located = locate(prompt, seen[0].documents)
    assert [loc.document.id for loc in located] == [d.id for d in docs]
    assert located[0].document.score == pytest.approx(docs[0].metadata[SCORE_KEY])
    assert seen[0].query == "capital of Germany" and len(tracker) == 0


async def test_langchain_ainvoke_does_not_block_the_event_loop():
    retriever = LCRetriever(index=make_index(HashingEmbedder(delay_s=0.15)), k=2)
    docs, ticks = await ticks_while(retriever.ainvoke("capital of Germany"))
    assert docs[0].id == "berlin"
    assert ticks >= 5  # a blocking call would have starved the ticker completely


def test_langchain_in_an_lcel_chain_sync_and_async(index):
    chain = LCRetriever(index=index, k=2) | RunnableLambda(lambda docs: [d.id for d in docs])
    assert chain.invoke("largest ocean")[0] == "pacific"
    assert asyncio.run(chain.ainvoke("furry cats"))[0] == "cats"


def test_langchain_from_texts():
    retriever = LCRetriever.from_texts(TEXTS, METAS, IDS, embedder=HashingEmbedder(), index_type="hnsw", k=1)
    assert [d.id for d in retriever.invoke("highest mountain")] == ["everest"]


async def test_concurrent_async_and_sync_searches_with_writes(index):
    retriever = LCRetriever(index=index, k=2)
    stop = threading.Event()
    errors: list[BaseException] = []

    def sync_side():
        try:
            i = 0
            while not stop.is_set():
                assert retriever.invoke("capital of France")[0].id == "paris"
                index.add([f"unrelated filler number {i}"], ids=[f"filler{i}"])
                i += 1
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    thread = threading.Thread(target=sync_side)
    thread.start()
    try:
        results = await asyncio.gather(*(retriever.ainvoke("furry cats") for _ in range(20)))
    finally:
        stop.set()
        thread.join()
    assert not errors
    assert all(r[0].id == "cats" for r in results)


# ------------------------------------------------------------------------------------------------ LlamaIndex


def test_llamaindex_returns_nodes_with_similarity_scores(index):
    retriever = LIRetriever(index, similarity_top_k=3)
    assert isinstance(retriever, LIBaseRetriever)
    nodes = retriever.retrieve("capital of France")
    assert all(isinstance(n, NodeWithScore) and isinstance(n.node, TextNode) for n in nodes)
    assert nodes[0].node.node_id == "paris"
    assert nodes[0].node.get_content() == TEXTS[0] and nodes[0].node.metadata == {"topic": "geo"}
    assert [n.score for n in nodes] == pytest.approx([d.score for d in index.search("capital of France", k=3)])
    assert retriever.retrieve(QueryBundle(TEXTS[2]))[0].score == pytest.approx(1.0, abs=1e-5)


def test_llamaindex_records_what_it_returns_for_its_query(index):
    seen = []

    @get_dispatcher().span
    def query(text):
        found = LIRetriever(index, similarity_top_k=2).retrieve(text)
        seen.append(request_documents())
        return found

    nodes = query("capital of Germany")
    prompt = "\n\n".join(n.node.get_content() for n in reversed(nodes))
    located = locate(prompt, seen[0].documents)
    assert [loc.document.id for loc in located] == [n.node.node_id for n in reversed(nodes)]
    assert [loc.position.index for loc in located] == [0, 1]


async def test_llamaindex_aretrieve_does_not_block_the_event_loop():
    retriever = LIRetriever(make_index(HashingEmbedder(delay_s=0.15)), similarity_top_k=2)
    nodes, ticks = await ticks_while(retriever.aretrieve("capital of Germany"))
    assert nodes[0].node.node_id == "berlin"
    assert ticks >= 5


def test_llamaindex_in_a_real_query_engine_with_position_reorder(index):
    """retriever -> PositionReorder -> response synthesis; MockLLM echoes the prompt it was given."""
    engine = RetrieverQueryEngine.from_args(
        LIRetriever(index, similarity_top_k=3), llm=MockLLM(), node_postprocessors=[PositionReorder()]
    )
    response = engine.query("capital of France")
    sources = response.source_nodes
    assert len(sources) == 3 and sources[-1].node.node_id == "paris"  # recency: best document last
    assert [n.score for n in sources] == sorted(n.score for n in sources)
    # the nodes of this query are found, in prompt order, in what the LLM received
    located = locate(str(response), [node_to_document(n) for n in sources])
    assert [loc.document.id for loc in located] == [n.node.node_id for n in sources]


async def test_llamaindex_query_engine_async(index):
    engine = RetrieverQueryEngine.from_args(LIRetriever(index, similarity_top_k=2), llm=MockLLM())
    response = await engine.aquery("largest ocean")
    assert response.source_nodes[0].node.node_id == "pacific"


def test_llamaindex_from_nodes_keeps_ids_and_metadata():
    nodes = [TextNode(text=t, id_=i, metadata=m) for t, i, m in zip(TEXTS, IDS, METAS, strict=True)]
    retriever = LIRetriever.from_nodes(nodes, similarity_top_k=1, embedder=HashingEmbedder(), index_type="ivf")
    (best,) = retriever.retrieve("purr cats")
    assert best.node.node_id == "cats" and best.node.metadata == {"topic": "pets"}
    assert len(retriever.index) == len(TEXTS)


def test_llamaindex_rejects_bad_arguments(index):
    from posrag.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="similarity_top_k must be a positive integer; got 0"):
        LIRetriever(index, similarity_top_k=0)
    with pytest.raises(ConfigurationError, match="needs a posrag DocumentIndex; got list"):
        LIRetriever([], similarity_top_k=2)
