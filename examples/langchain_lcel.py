"""LangChain: LCEL chains `retriever | reorder | posrag's RAG prompt | model` with posrag's components, offline.

python examples/langchain_lcel.py
"""

from __future__ import annotations

from langchain_core.runnables import Runnable, RunnablePassthrough
from langchain_posrag import (
    RAG_CHAT_PROMPT,
    RAG_PROMPT,
    ChatPosrag,
    PositionReorder,
    PosragLLM,
    PosragRetriever,
    format_documents,
)

from posrag.demo import DEMO_QUESTION, load_demo_corpus
from posrag.retrieval import DocumentIndex
from posrag.steering import SteeringConfig


def build_retriever(k: int = 5) -> PosragRetriever:
    corpus = load_demo_corpus()
    index = DocumentIndex.from_texts(  # the packaged embedder
        [d.text for d in corpus], metadatas=[dict(d.metadata) for d in corpus], ids=[d.id for d in corpus]
    )
    return PosragRetriever(index=index, k=k)


def build_chain(retriever: PosragRetriever | None = None, mechanism: str = "attention") -> Runnable:
    """A completion model with posrag's RAG prompt (the one its pipeline and benchmark use)."""
    context = (retriever or build_retriever()) | PositionReorder(strategy="sandwich") | format_documents
    llm = PosragLLM(steering=SteeringConfig(mechanism=mechanism), max_tokens=32, stop=["\n"], strip_leading=True)
    return {"context": context, "question": RunnablePassthrough()} | RAG_PROMPT | llm


def build_chat_chain(retriever: PosragRetriever | None = None, mechanism: str = "attention") -> Runnable:
    """The same with a chat model and the chat form of the prompt (stream it, batch it, as any chat model)."""
    context = (retriever or build_retriever()) | PositionReorder(strategy="sandwich") | format_documents
    chat = ChatPosrag(steering=SteeringConfig(mechanism=mechanism), max_tokens=32, stop=["\n"], strip_leading=True)
    return {"context": context, "question": RunnablePassthrough()} | RAG_CHAT_PROMPT | chat


def main(question: str = DEMO_QUESTION) -> str:
    answer = build_chain().invoke(question)
    print(f"Q: {question}\nA: {answer}")
    for chunk in build_chat_chain().stream(question):  # the chat model, streamed (steered just the same)
        print(chunk.content, end="", flush=True)
    print()
    return answer


if __name__ == "__main__":
    main()
