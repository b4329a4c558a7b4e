"""``PosragEmbeddings``: LangChain ``Embeddings`` over the packaged all-MiniLM-L6-v2 (offline), or any local
sentence-transformers model: the embedder posrag's index and relevance use, for any LangChain vector store.

    store = InMemoryVectorStore.from_texts(texts, PosragEmbeddings())
    llm = ChatPosrag(embedder=embeddings.embedder)  # one loaded embedder for both
"""

from __future__ import annotations

from typing import Any

from langchain_core.embeddings import Embeddings
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from posrag.retrieval.embedders import embed, load_embedder


class PosragEmbeddings(BaseModel, Embeddings):
    """Sentence embeddings (unit length) from the packaged all-MiniLM-L6-v2, loaded on first use.

    ``model``: ``None`` (the packaged model), a local sentence-transformers directory / cached hub id, or a loaded
    ``SentenceTransformer``.
    """

    model: Any = Field(default=None, exclude=True, description="None (packaged MiniLM), a directory or a model.")
    batch_size: int = Field(default=32, ge=1)
    model_config = ConfigDict(arbitrary_types_allowed=True, protected_namespaces=())
    _embedder: Any = PrivateAttr(default=None)

    @property
    def embedder(self) -> Any:
        """The loaded sentence-transformers model (shareable: ``PosragLLM(embedder=...)``)."""
        if self._embedder is None:
            self._embedder = self.model if hasattr(self.model, "encode") else load_embedder(self.model)
        return self._embedder

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return embed(self.embedder, texts, batch_size=self.batch_size)

    def embed_query(self, text: str) -> list[float]:
        return embed(self.embedder, [text])[0]


__all__ = ["PosragEmbeddings"]
