"""``PosragRetriever``: a LangChain retriever over a posrag :class:`~posrag.retrieval.DocumentIndex`."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict, Field

from posrag.documents import SCORE_KEY, ScoredDocument
from posrag.retrieval import DocumentIndex


def document_from_scored(document: ScoredDocument) -> Document:
    """A LangChain ``Document`` with the similarity in ``metadata["score"]`` and the posrag id as its id."""
    return Document(
        page_content=document.text, metadata={**document.metadata, SCORE_KEY: document.score}, id=document.id
    )


class PosragRetriever(BaseRetriever):
    """Retrieve the ``k`` documents most similar to the query; ``metadata["score"]`` is the cosine similarity.

    Searching, persistence and index types are :class:`~posrag.retrieval.DocumentIndex`'s; this class only
    translates to ``Document``s, and remembers the returned documents so that posrag's LLM can find them in
    its prompt. ``invoke(query, k=...)`` overrides ``k`` per call. The async path embeds and searches in a
    worker thread, so it never blocks the event loop.
    """

    index: DocumentIndex = Field(description="The posrag document index to search.")
    k: int = Field(default=4, ge=1, description="How many documents to return.")
    model_config = ConfigDict(arbitrary_types_allowed=True)

    @classmethod
    def from_texts(
        cls,
        texts: Sequence[str],
        metadatas: Sequence[Mapping[str, Any]] | None = None,
        ids: Sequence[str] | None = None,
        *,
        k: int = 4,
        **index_kwargs: Any,
    ) -> PosragRetriever:
        """Index ``texts`` (see :meth:`DocumentIndex.from_texts` for ``index_kwargs``) and retrieve from them."""
        return cls(index=DocumentIndex.from_texts(texts, metadatas, ids, **index_kwargs), k=k)

    def _search(self, query: str, k: int | None) -> list[Document]:
        documents = self.index.search(query, k=self.k if k is None else k)
        return [document_from_scored(d) for d in documents]

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, k: int | None = None
    ) -> list[Document]:
        return self._search(query, k)

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun, k: int | None = None
    ) -> list[Document]:
        return await asyncio.to_thread(self._search, query, k)
