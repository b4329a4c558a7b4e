"""LlamaIndex: a condense-plus-context chat engine over a VectorStoreIndex, two turns, with posrag's LLM and
embedder, offline.

python examples/llama_index_chat_engine.py
"""

from __future__ import annotations

from typing import Any

from llama_index.core import Document, VectorStoreIndex
from llama_index.embeddings.posrag import PosragEmbedding
from llama_index.llms.posrag import PosragLLM

from posrag.demo import DEMO_QUESTION, load_demo_corpus
from posrag.steering import SteeringConfig


def build_chat_engine(mechanism: str = "attention", max_new_tokens: int = 32) -> Any:
    documents = [Document(text=d.text, metadata=dict(d.metadata), doc_id=d.id) for d in load_demo_corpus()]
    index = VectorStoreIndex.from_documents(documents, embed_model=PosragEmbedding())
    llm = PosragLLM(
        steering=SteeringConfig(mechanism=mechanism), max_new_tokens=max_new_tokens, stop=["\n"], strip_leading=True
    )
    return index.as_chat_engine(chat_mode="condense_plus_context", llm=llm, similarity_top_k=3)


def main(questions: tuple[str, ...] = (DEMO_QUESTION, "In which year was it built?")) -> list[Any]:
    engine = build_chat_engine()
    answers = []
    for question in questions:
        answers.append(engine.chat(question))
        print(f"Q: {question}\nA: {answers[-1]}")
    return answers


if __name__ == "__main__":
    main()
