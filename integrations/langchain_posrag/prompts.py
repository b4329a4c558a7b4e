"""posrag's RAG prompt as LangChain templates: the prompt posrag's own pipeline and benchmark ask with.

    chain = {"context": retriever | PositionReorder() | format_documents, "question": RunnablePassthrough()} \
        | RAG_PROMPT | PosragLLM(stop=["\\n"], strip_leading=True)

``RAG_PROMPT`` for an LLM, ``RAG_CHAT_PROMPT`` (one human message) for a chat model; both take ``context`` (the
documents as :func:`format_documents` lists them) and ``question``.
"""

from __future__ import annotations

from collections.abc import Sequence

from langchain_core.documents import Document
from langchain_core.prompts import ChatPromptTemplate, PromptTemplate

from langchain_posrag.callbacks import to_scored
from posrag import prompts

RAG_PROMPT = PromptTemplate.from_template(prompts.template_text())
RAG_CHAT_PROMPT = ChatPromptTemplate.from_messages([("human", prompts.template_text())])


def format_documents(documents: Sequence[Document]) -> str:
    """The documents, in their order, as posrag's prompt lists them (``Document [i](Title: ...) text``)."""
    return prompts.format_documents([to_scored(d) for d in documents])


__all__ = ["RAG_CHAT_PROMPT", "RAG_PROMPT", "format_documents"]
