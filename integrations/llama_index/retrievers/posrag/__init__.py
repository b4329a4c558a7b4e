"""posrag's LlamaIndex retriever: ``from llama_index.retrievers.posrag import PosragRetriever``."""

from llama_index.retrievers.posrag.base import PosragRetriever

__all__ = ["PosragRetriever"]
