"""posrag's LlamaIndex embedding: ``from llama_index.embeddings.posrag import PosragEmbedding``."""

from posrag._extras import require

require("llama_index.core", "llama_index.embeddings.posrag")

from llama_index.embeddings.posrag.base import PosragEmbedding  # noqa: E402

__all__ = ["PosragEmbedding"]
