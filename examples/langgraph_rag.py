"""LangGraph: a retrieve → generate graph with posrag's retriever, reorder step and chat model, streamed as
messages (what chat UIs do), offline.

python examples/langgraph_rag.py
"""

from __future__ import annotations

from typing import Any, TypedDict

from langchain_core.documents import Document
from langchain_core.messages import BaseMessage
from langchain_posrag import RAG_CHAT_PROMPT, ChatPosrag, PositionReorder, PosragRetriever, format_documents
from langgraph.graph import START, StateGraph

from posrag.demo import DEMO_QUESTION, load_demo_corpus
from posrag.retrieval import DocumentIndex
from posrag.steering import SteeringConfig


class State(TypedDict, total=False):
    question: str
    documents: list[Document]
    answer: BaseMessage


def build_graph(mechanism: str = "attention") -> Any:
    corpus = load_demo_corpus()
    index = DocumentIndex.from_texts(
        [d.text for d in corpus], metadatas=[dict(d.metadata) for d in corpus], ids=[d.id for d in corpus]
    )
    retriever = PosragRetriever(index=index, k=5) | PositionReorder(strategy="sandwich")
    chat = ChatPosrag(steering=SteeringConfig(mechanism=mechanism), max_tokens=32, stop=["\n"], strip_leading=True)

    def retrieve(state: State) -> State:
        return {"documents": retriever.invoke(state["question"])}

    def generate(state: State) -> State:
        prompt = RAG_CHAT_PROMPT.invoke(
            {"context": format_documents(state["documents"]), "question": state["question"]}
        )
        return {"answer": chat.invoke(prompt)}

    graph = StateGraph(State)
    graph.add_node("retrieve", retrieve)
    graph.add_node("generate", generate)
    graph.add_edge(START, "retrieve")
    graph.add_edge("retrieve", "generate")
    return graph.compile()


def main(question: str = DEMO_QUESTION) -> str:
    answer = ""
    for chunk, _metadata in build_graph().stream({"question": question}, stream_mode="messages"):
        print(chunk.content, end="", flush=True)
        answer += chunk.content
    print()
    return answer


if __name__ == "__main__":
    main()
