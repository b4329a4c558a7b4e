"""``PosragEmbedding``: a LlamaIndex embedding over the packaged all-MiniLM-L6-v2 (offline), or any local
sentence-transformers model, so ``VectorStoreIndex.from_documents(documents, embed_model=PosragEmbedding())``
needs no hosted API."""

from __future__ import annotations

from typing import Any

from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.bridge.pydantic import Field, PrivateAttr

from posrag.retrieval.embedders import embed, load_embedder


class PosragEmbedding(BaseEmbedding):
    """Sentence embeddings (unit length) from the packaged all-MiniLM-L6-v2, loaded on first use.

    ``model``: ``None`` (the packaged model), a local sentence-transformers directory / cached hub id, or a loaded
    ``SentenceTransformer``.
    """

    model: Any = Field(default=None, exclude=True, description="None (packaged MiniLM), a directory or a model.")
    model_name: str = Field(default="all-MiniLM-L6-v2")
    _embedder: Any = PrivateAttr(default=None)

    @classmethod
    def class_name(cls) -> str:
        return "PosragEmbedding"

    @property
    def embedder(self) -> Any:
        """The loaded sentence-transformers model (shareable: ``PosragLLM(embedder=...)``)."""
        if self._embedder is None:
            self._embedder = self.model if hasattr(self.model, "encode") else load_embedder(self.model)
        return self._embedder

    def _get_query_embedding(self, query: str) -> list[float]:
        return embed(self.embedder, [query])[0]

    def _get_text_embedding(self, text: str) -> list[float]:
        return embed(self.embedder, [text])[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return embed(self.embedder, texts, batch_size=self.embed_batch_size)

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._get_query_embedding(query)

    async def _aget_text_embedding(self, text: str) -> list[float]:
        return self._get_text_embedding(text)


__all__ = ["PosragEmbedding"]
