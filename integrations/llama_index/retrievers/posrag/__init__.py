"""posrag's LlamaIndex retriever: ``from llama_index.retrievers.posrag import PosragRetriever``."""

from posrag._extras import require

require("llama_index.core", "llama_index.retrievers.posrag")

from llama_index.retrievers.posrag.base import PosragRetriever  # noqa: E402

__all__ = ["PosragRetriever"]
