"""posrag's embedding classes: each framework's vector stores work with posrag's embedder, no hosted API."""

from __future__ import annotations

import math

from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import InMemoryVectorStore
from langchain_posrag import PosragEmbeddings
from llama_index.core import Document, VectorStoreIndex
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.embeddings.posrag import PosragEmbedding

from tests.unit.hashing_embedder import HashingEmbedder

TEXTS = [
    "Paris is the capital of France and sits on the Seine river",
    "Mount Everest is the highest mountain on the planet Earth",
    "The Pacific is the largest and deepest ocean on the planet",
]


def test_langchain_embeddings_serve_a_vector_store() -> None:
    embeddings = PosragEmbeddings(model=HashingEmbedder())
    assert isinstance(embeddings, Embeddings)
    vectors = embeddings.embed_documents(TEXTS)
    assert len(vectors) == 3 and all(math.isclose(sum(v * v for v in vec), 1.0, rel_tol=1e-5) for vec in vectors)
    store = InMemoryVectorStore.from_texts(TEXTS, embeddings)
    assert store.similarity_search("highest mountain Everest", k=1)[0].page_content == TEXTS[1]


def test_llama_index_embedding_serves_a_vector_store_index() -> None:
    embedding = PosragEmbedding(model=HashingEmbedder())
    assert isinstance(embedding, BaseEmbedding)
    index = VectorStoreIndex.from_documents([Document(text=t) for t in TEXTS], embed_model=embedding)
    (best,) = index.as_retriever(similarity_top_k=1).retrieve("largest deepest ocean Pacific")
    assert best.node.get_content() == TEXTS[2]


def test_both_default_to_the_packaged_minilm_offline() -> None:
    lc, li = PosragEmbeddings(), PosragEmbedding()
    assert lc.embedder is li.embedder  # one loaded model (posrag's cache of loaded embedders)
    assert len(lc.embed_query("lighthouse")) == 384


def test_a_standard_vector_store_retriever_is_reordered_by_its_own_order_and_says_so() -> None:
    """``as_retriever()`` puts no score in metadata; its order (best first) is the ranking reorder uses."""
    from langchain_posrag import PositionReorder

    store = InMemoryVectorStore.from_texts(TEXTS, PosragEmbeddings(model=HashingEmbedder()))
    retrieved = store.as_retriever(search_kwargs={"k": 3}).invoke("highest mountain Everest")
    assert retrieved[0].page_content == TEXTS[1] and all("score" not in d.metadata for d in retrieved)
    reordered = PositionReorder(strategy="recency").invoke(retrieved)
    assert reordered[-1].page_content == TEXTS[1]  # recency: the best document last, where the model reads best
    assert {d.metadata["posrag_ranked_by"] for d in reordered} == {"retriever_order"}


def test_unscored_llama_index_nodes_are_reordered_by_the_retrievers_order() -> None:
    from llama_index.core.schema import NodeWithScore, TextNode
    from llama_index.postprocessor.posrag import PositionReorder

    nodes = [NodeWithScore(node=TextNode(text=t)) for t in TEXTS]  # best first, no scores
    reordered = PositionReorder(strategy="recency").postprocess_nodes(nodes)
    assert [n.node.get_content() for n in reordered] == TEXTS[::-1]
    assert {n.node.metadata["posrag_ranked_by"] for n in reordered} == {"retriever_order"}
    assert "posrag_ranked_by" in reordered[0].node.excluded_llm_metadata_keys
