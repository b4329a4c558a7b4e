"""LangChain: an LCEL chain `retriever | reorder | prompt | llm` with posrag's components, fully offline.

python examples/langchain_lcel.py
"""

from __future__ import annotations

from langchain_core.documents import Document
from langchain_core.prompts import PromptTemplate
from langchain_core.runnables import RunnableLambda, RunnablePassthrough
from langchain_posrag import PositionReorder, PosragLLM, PosragRetriever

from posrag.demo import DEMO_QUESTION, load_demo_corpus
from posrag.prompts import LITM_INSTRUCTION
from posrag.retrieval import DocumentIndex
from posrag.steering import SteeringConfig

# The "Lost in the Middle" instruction, as posrag's own pipeline and benchmark ask it.
PROMPT = PromptTemplate.from_template(LITM_INSTRUCTION + "\n\n{context}\n\nQuestion: {question}\nAnswer:")


def format_docs(documents: list[Document]) -> str:
    return "\n".join(
        f"Document [{i + 1}](Title: {d.metadata.get('title', '')}) {d.page_content}" for i, d in enumerate(documents)
    )


def build_chain(mechanism: str = "attention"):
    corpus = load_demo_corpus()
    index = DocumentIndex.from_texts(  # the packaged embedder
        [d.text for d in corpus], metadatas=[dict(d.metadata) for d in corpus], ids=[d.id for d in corpus]
    )
    retriever = PosragRetriever(index=index, k=5)
    llm = PosragLLM(steering=SteeringConfig(mechanism=mechanism), max_tokens=32, stop=["\n"])  # packaged Gemma
    context = retriever | PositionReorder(strategy="sandwich") | RunnableLambda(format_docs)
    return {"context": context, "question": RunnablePassthrough()} | PROMPT | llm


def main(question: str = DEMO_QUESTION) -> str:
    answer = build_chain().invoke(question)
    print(f"Q: {question}\nA: {answer.strip()}")
    return answer


if __name__ == "__main__":
    main()
