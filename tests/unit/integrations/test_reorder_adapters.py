"""The LangChain and LlamaIndex reorder adapters, including side-by-side runs of the frameworks' own
``LongContextReorder`` to show where posrag agrees and where it differs on purpose."""

from __future__ import annotations

import asyncio

import pytest
from langchain_core.documents import BaseDocumentTransformer, Document
from langchain_core.runnables import Runnable, RunnableLambda
from langchain_posrag import PositionReorder as LCReorder
from langchain_posrag.callbacks import tracker
from llama_index.core.postprocessor import LongContextReorder as LlamaLongContextReorder
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import MetadataMode, NodeWithScore, TextNode
from llama_index.postprocessor.posrag import PositionReorder as LIReorder

from posrag.documents import POSITION_INDEX_KEY, RELATIVE_POSITION_KEY, SIMILARITY_KEY
from posrag.locate import locate

SCORES = [0.91, 0.42, 0.77, 0.15, 0.63, 0.88, 0.05]


def lc_docs(scores=SCORES):
    return [
        Document(page_content=f"document number {i} about things", metadata={"score": s}, id=str(i))
        for i, s in enumerate(scores)
    ]


def li_nodes(scores=SCORES):
    return [
        NodeWithScore(node=TextNode(text=f"document number {i} about things", id_=str(i)), score=s)
        for i, s in enumerate(scores)
    ]


def test_langchain_adapter_is_a_transformer_and_a_runnable():
    reorder = LCReorder()
    assert isinstance(reorder, BaseDocumentTransformer) and isinstance(reorder, Runnable)
    out = reorder.transform_documents(lc_docs())
    assert [d.metadata["score"] for d in out] == sorted(SCORES)
    assert [d.metadata[POSITION_INDEX_KEY] for d in out] == list(range(len(SCORES)))
    assert out[-1].metadata[RELATIVE_POSITION_KEY] == 1.0


def test_langchain_adapter_in_lcel_sync_and_async():
    docs = lc_docs()
    chain = (
        RunnableLambda(lambda q: docs) | LCReorder(strategy="sandwich") | RunnableLambda(lambda ds: [d.id for d in ds])
    )
    ranked = sorted(range(len(SCORES)), key=lambda i: -SCORES[i])
    expected = [str(ranked[1]), *[str(i) for i in ranked[:1:-1]], str(ranked[0])]
    assert chain.invoke("q") == expected
    assert asyncio.run(chain.ainvoke("q")) == expected
    assert all("posrag_position" not in d.metadata for d in docs)  # input untouched


def test_langchain_adapter_reads_the_configured_score_key_and_direction():
    docs = [
        Document(page_content=f"text {i} padded out", metadata={"distance": d}) for i, d in enumerate([3.0, 1.0, 2.0])
    ]
    out = LCReorder(score_key="distance", score_direction="distance").invoke(docs)
    assert [d.metadata["distance"] for d in out] == [3.0, 2.0, 1.0]  # smallest distance is best, so last


def test_llamaindex_adapter_copies_nodes_and_hides_position_keys_from_the_llm():
    nodes = li_nodes()
    out = LIReorder().postprocess_nodes(nodes)
    assert isinstance(LIReorder(), BaseNodePostprocessor)
    assert [n.score for n in out] == sorted(SCORES)
    assert all(POSITION_INDEX_KEY not in n.node.metadata for n in nodes)
    assert all(not n.node.excluded_llm_metadata_keys for n in nodes)
    assert "posrag" not in out[0].node.get_content(metadata_mode=MetadataMode.LLM)
    assert out[0].node.metadata[POSITION_INDEX_KEY] == 0


def test_llamaindex_adapter_async():
    out = asyncio.run(LIReorder(strategy="graduated").apostprocess_nodes(li_nodes()))
    assert [n.score for n in out] == sorted(SCORES)


def _request_documents_seen_after(step):
    """Run ``step`` in a chain and return the request's documents as the next step of the same request sees them."""
    seen = []

    def peek(docs, config):
        seen.append(tracker.documents(config["callbacks"].parent_run_id))
        return docs

    (RunnableLambda(lambda _: lc_docs()) | step | RunnableLambda(peek)).invoke("q")
    return seen[0]


def test_the_reorder_output_is_recorded_for_its_own_request_and_dropped_after():
    request = _request_documents_seen_after(LCReorder())
    located = locate("ctx: document number 3 about things. document number 0 about things", request.documents)
    assert [loc.document.id for loc in located] == ["3", "0"]
    assert [loc.document.score for loc in located] == [SCORES[3], SCORES[0]]
    assert len(tracker) == 0  # the chain ended: nothing of it is left for later requests


def test_distance_scores_are_recorded_in_posrag_direction():
    request = _request_documents_seen_after(LCReorder(score_direction="distance"))
    by_id = {d.id: d.score for d in request.documents}
    assert by_id == {str(i): -s for i, s in enumerate(SCORES)}  # best (smallest distance) scores highest
    out = LIReorder(score_direction="distance").postprocess_nodes(li_nodes())
    assert [n.node.metadata[SIMILARITY_KEY] for n in out] == [-n.score for n in out]
    assert SIMILARITY_KEY not in out[0].node.get_content(metadata_mode=MetadataMode.LLM)


# --- side by side with the frameworks' own LongContextReorder --------------------------------------------


@pytest.mark.parametrize("n", [2, 3, 4, 5, 6, 7, 10])
def test_long_context_matches_llamaindex_when_best_end_agrees(n):
    scores = SCORES[:n] if n <= len(SCORES) else [i / 10 for i in range(n)]
    theirs = [n_.node.node_id for n_ in LlamaLongContextReorder().postprocess_nodes(li_nodes(scores))]
    best = str(max(range(n), key=lambda i: scores[i]))
    # LlamaIndex puts the best node at the end for even counts and at the start for odd counts.
    assert theirs.index(best) == (n - 1 if n % 2 == 0 else 0)
    ours_same_end = LIReorder(strategy="long_context", best_at="end" if n % 2 == 0 else "start")
    assert [x.node.node_id for x in ours_same_end.postprocess_nodes(li_nodes(scores))] == theirs
    # Ours keeps the best at the end whatever the count: it differs exactly on odd counts.
    ours_default = [x.node.node_id for x in LIReorder(strategy="long_context").postprocess_nodes(li_nodes(scores))]
    assert ours_default[-1] == best
    assert (ours_default == theirs) == (n % 2 == 0)


def test_llamaindex_treats_none_as_zero_and_we_do_not():
    scores = [0.5, None, -0.2]
    theirs = [n.node.node_id for n in LlamaLongContextReorder().postprocess_nodes(li_nodes(scores))]
    ours = [n.node.node_id for n in LIReorder(strategy="long_context").postprocess_nodes(li_nodes(scores))]
    assert theirs == ["0", "2", "1"]  # None ranked as 0.0, i.e. above the negative score
    assert ours == ["1", "2", "0"]  # None: an unscored block at the start; ranked documents untouched


@pytest.mark.parametrize("n", [2, 3, 4, 5, 6, 7])
def test_long_context_matches_langchain_on_descending_input(n):
    community = pytest.importorskip("langchain_community.document_transformers")
    scores = sorted(SCORES[:n], reverse=True)  # LangChain's version ignores scores: input must be ranked
    docs = lc_docs(scores)
    theirs = [d.id for d in community.LongContextReorder().transform_documents(docs)]
    ours_same_end = LCReorder(strategy="long_context", best_at="end" if n % 2 == 0 else "start")
    assert [d.id for d in ours_same_end.transform_documents(docs)] == theirs
    assert LCReorder(strategy="long_context").transform_documents(docs)[-1].id == "0"


def test_langchain_community_inverts_distance_scored_input_and_we_do_not():
    community = pytest.importorskip("langchain_community.document_transformers")
    distances = [0.1, 0.4, 0.9]  # best first, as a distance-scored store returns them
    docs = [
        Document(page_content=f"d{i} text long enough", metadata={"score": d}, id=str(i))
        for i, d in enumerate(distances)
    ]
    theirs = [d.id for d in community.LongContextReorder().transform_documents(docs)]
    ours = [d.id for d in LCReorder(strategy="long_context", score_direction="distance").transform_documents(docs)]
    assert ours[-1] == "0"
    assert theirs[0] == "0"  # odd count: theirs puts the best at the start, by parity
