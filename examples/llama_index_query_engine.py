"""LlamaIndex: an unmodified RetrieverQueryEngine with posrag's retriever, postprocessor and LLM, offline.

python examples/llama_index_query_engine.py
"""

from __future__ import annotations

from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.llms.posrag import PosragLLM
from llama_index.postprocessor.posrag import PositionReorder
from llama_index.retrievers.posrag import PosragRetriever

from posrag.demo import DEMO_QUESTION, load_demo_corpus
from posrag.retrieval import DocumentIndex
from posrag.steering import SteeringConfig


def build_engine(mechanism: str = "attention") -> RetrieverQueryEngine:
    corpus = load_demo_corpus()
    index = DocumentIndex.from_texts([d.text for d in corpus], ids=[d.id for d in corpus])  # packaged embedder
    return RetrieverQueryEngine.from_args(
        PosragRetriever(index, similarity_top_k=5),
        llm=PosragLLM(steering=SteeringConfig(mechanism=mechanism), max_new_tokens=32, stop=["\n"]),
        node_postprocessors=[PositionReorder(strategy="recency")],
    )


def main(question: str = DEMO_QUESTION):
    response = build_engine().query(question)
    print(f"Q: {question}\nA: {str(response).strip()}")
    for node in response.source_nodes:
        print(f"  position {node.node.metadata['posrag_position']}: score {node.score:.3f}  {node.node.text[:60]}")
    return response


if __name__ == "__main__":
    main()
