"""posrag's LlamaIndex embedding: ``from llama_index.embeddings.posrag import PosragEmbedding``."""

from llama_index.embeddings.posrag.base import PosragEmbedding

__all__ = ["PosragEmbedding"]
