"""posrag's LlamaIndex tools: ``from llama_index.tools.posrag import PositionExplorerToolSpec``."""

from posrag._extras import require

require("llama_index.core", "llama_index.tools.posrag")

from llama_index.tools.posrag.base import PositionExplorerToolSpec  # noqa: E402

__all__ = ["PositionExplorerToolSpec"]
