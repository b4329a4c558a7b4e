"""``PositionReorder``: a LangChain document transformer (and LCEL runnable) for position-aware ordering."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.documents import BaseDocumentTransformer, Document
from langchain_core.runnables import RunnableConfig, RunnableSerializable
from pydantic import ConfigDict, Field, PrivateAttr

from posrag.adapters import RANKED_BY_KEY, ReorderSettings
from posrag.documents import SCORE_KEY, SIMILARITY_KEY, PositionInfo
from posrag.ordering import Reorderer, as_similarity


class PositionReorder(
    ReorderSettings, BaseDocumentTransformer, RunnableSerializable[Sequence[Document], list[Document]]
):
    """Reorder retrieved documents for a small model (see :mod:`posrag.ordering` for the strategies).

    Works as a document transformer (``transform_documents``) and inside LCEL:
    ``retriever | PositionReorder() | format_docs | prompt | llm``. Scores are read from
    ``metadata[score_key]`` (posrag's retriever writes ``"score"``); a document without one is unscored. When no
    document has a score (a standard ``vectorstore.as_retriever()``), the retriever's own order is the ranking;
    ``posrag_ranked_by`` says which (``"score"`` or ``"retriever_order"``).
    Returned documents are copies with ``posrag_position``, ``posrag_total``, ``posrag_relative_position``
    and ``posrag_similarity`` (the score, higher = better whatever ``score_direction``: what posrag's LLM ranks
    the request's documents by) added to their metadata; the input is not modified.
    """

    score_key: str = Field(default=SCORE_KEY, description="Metadata key holding each document's score.")
    model_config = ConfigDict(arbitrary_types_allowed=True)
    _reorderer: Reorderer = PrivateAttr()

    def model_post_init(self, context: Any, /) -> None:
        self._reorderer = self.build_reorderer()

    @classmethod
    def is_lc_serializable(cls) -> bool:
        return True

    @classmethod
    def get_lc_namespace(cls) -> list[str]:
        return ["langchain_posrag", "document_transformers"]

    def _score(self, document: Document) -> float | None:
        value = document.metadata.get(self.score_key)
        return None if value is None else float(value)

    def transform_documents(self, documents: Sequence[Document], **kwargs: Any) -> list[Document]:
        order, scores, ranked_by = self.plan(self._reorderer, [self._score(d) for d in documents])
        total = len(order)
        out = [
            Document(
                page_content=documents[old].page_content,
                metadata={
                    **documents[old].metadata,
                    **PositionInfo(new, total).to_metadata(),
                    SIMILARITY_KEY: as_similarity(scores[old], self.score_direction),
                    RANKED_BY_KEY: ranked_by,
                },
                id=documents[old].id,
            )
            for new, old in enumerate(order)
        ]
        return out

    async def atransform_documents(self, documents: Sequence[Document], **kwargs: Any) -> list[Document]:
        # Pure CPU work on a handful of documents: cheaper inline than a thread hop.
        return self.transform_documents(documents, **kwargs)

    def invoke(self, input: Sequence[Document], config: RunnableConfig | None = None, **kwargs: Any) -> list[Document]:
        return self._call_with_config(self.transform_documents, input, config, run_type="parser", **kwargs)

    async def ainvoke(
        self, input: Sequence[Document], config: RunnableConfig | None = None, **kwargs: Any
    ) -> list[Document]:
        return await self._acall_with_config(self.atransform_documents, input, config, run_type="parser", **kwargs)
