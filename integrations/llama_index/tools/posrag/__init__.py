"""posrag's LlamaIndex tools: ``from llama_index.tools.posrag import PositionExplorerToolSpec``."""

from llama_index.tools.posrag.base import PositionExplorerToolSpec

__all__ = ["PositionExplorerToolSpec"]
