"""LlamaIndex: a VectorStoreIndex built with posrag's embedder, queried with posrag's LLM, reorder step and RAG
prompt, offline.

python examples/llama_index_query_engine.py
"""

from __future__ import annotations

from typing import Any

from llama_index.core import Document, VectorStoreIndex
from llama_index.core.query_engine import BaseQueryEngine
from llama_index.embeddings.posrag import PosragEmbedding
from llama_index.llms.posrag import RAG_PROMPT, PosragLLM
from llama_index.postprocessor.posrag import PositionReorder

from posrag.demo import DEMO_QUESTION, load_demo_corpus
from posrag.steering import SteeringConfig


def build_index() -> VectorStoreIndex:
    documents = [Document(text=d.text, metadata=dict(d.metadata), doc_id=d.id) for d in load_demo_corpus()]
    return VectorStoreIndex.from_documents(documents, embed_model=PosragEmbedding())  # packaged MiniLM


def build_llm(mechanism: str = "attention", max_new_tokens: int = 32) -> PosragLLM:
    return PosragLLM(
        steering=SteeringConfig(mechanism=mechanism), max_new_tokens=max_new_tokens, stop=["\n"], strip_leading=True
    )


def build_engine(index: VectorStoreIndex | None = None, llm: PosragLLM | None = None, **kwargs: Any) -> BaseQueryEngine:
    """``kwargs``: the query engine's own options (``response_mode``, ``streaming``, ``similarity_top_k``...)."""
    return (index or build_index()).as_query_engine(
        llm=llm or build_llm(),
        text_qa_template=RAG_PROMPT,
        node_postprocessors=[PositionReorder(strategy="recency")],
        **{"similarity_top_k": 5, **kwargs},
    )


def main(question: str = DEMO_QUESTION) -> Any:
    response = build_engine().query(question)
    print(f"Q: {question}\nA: {response}")
    for node in response.source_nodes:
        print(f"  position {node.node.metadata['posrag_position']}: score {node.score:.3f}  {node.node.text[:60]}")
    return response


if __name__ == "__main__":
    main()
