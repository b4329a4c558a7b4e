"""``PosragRetriever``: a LlamaIndex retriever over a posrag :class:`~posrag.retrieval.DocumentIndex`."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from llama_index.callbacks import posrag as _request_tracking  # noqa: F401  (tracks each query's nodes)
from llama_index.core.callbacks import CallbackManager
from llama_index.core.retrievers import BaseRetriever
from llama_index.core.schema import BaseNode, NodeWithScore, QueryBundle, TextNode

from posrag.documents import ScoredDocument
from posrag.errors import ConfigurationError
from posrag.retrieval import DocumentIndex


def document_to_node(document: ScoredDocument) -> NodeWithScore:
    """A ``NodeWithScore`` for a retrieved document: a ``TextNode`` with its id, text and metadata."""
    node = TextNode(id_=document.id, text=document.text, metadata=dict(document.metadata))
    return NodeWithScore(node=node, score=document.score)


class PosragRetriever(BaseRetriever):
    """Retrieve the ``similarity_top_k`` nodes most similar to the query (score: cosine similarity).

    Searching, persistence and index types are :class:`~posrag.retrieval.DocumentIndex`'s; this class only
    translates to nodes; posrag's LLM finds the nodes of its own query in its prompt
    (:mod:`llama_index.callbacks.posrag`).
    The async path embeds and searches in a worker thread, so it never blocks the event loop.
    """

    def __init__(
        self,
        index: DocumentIndex,
        similarity_top_k: int = 4,
        callback_manager: CallbackManager | None = None,
        verbose: bool = False,
    ) -> None:
        if not isinstance(index, DocumentIndex):
            raise ConfigurationError(
                f"PosragRetriever needs a posrag DocumentIndex; got {type(index).__name__}. Build one with "
                "DocumentIndex.from_texts(...) or PosragRetriever.from_nodes(nodes)."
            )
        if isinstance(similarity_top_k, bool) or not isinstance(similarity_top_k, int) or similarity_top_k < 1:
            raise ConfigurationError(f"similarity_top_k must be a positive integer; got {similarity_top_k!r}.")
        self._index = index
        self.similarity_top_k = similarity_top_k
        super().__init__(callback_manager=callback_manager, verbose=verbose)

    @classmethod
    def from_texts(
        cls,
        texts: Sequence[str],
        metadatas: Sequence[Mapping[str, Any]] | None = None,
        ids: Sequence[str] | None = None,
        *,
        similarity_top_k: int = 4,
        **index_kwargs: Any,
    ) -> PosragRetriever:
        """Index ``texts`` (see :meth:`DocumentIndex.from_texts` for ``index_kwargs``) and retrieve from them."""
        return cls(DocumentIndex.from_texts(texts, metadatas, ids, **index_kwargs), similarity_top_k)

    @classmethod
    def from_nodes(
        cls, nodes: Sequence[BaseNode], *, similarity_top_k: int = 4, **index_kwargs: Any
    ) -> PosragRetriever:
        """Index LlamaIndex nodes by their content (without metadata), keeping their ids and metadata."""
        return cls.from_texts(
            [node.get_content() for node in nodes],
            [dict(node.metadata) for node in nodes],
            [node.node_id for node in nodes],
            similarity_top_k=similarity_top_k,
            **index_kwargs,
        )

    @property
    def index(self) -> DocumentIndex:
        return self._index

    def _search(self, query: str) -> list[NodeWithScore]:
        documents = self._index.search(query, k=self.similarity_top_k)
        return [document_to_node(d) for d in documents]

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return self._search(query_bundle.query_str)

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return await asyncio.to_thread(self._search, query_bundle.query_str)
