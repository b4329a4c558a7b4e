"""posrag's LlamaIndex node postprocessor: ``from llama_index.postprocessor.posrag import PositionReorder``."""

from posrag._extras import require

require("llama_index.core", "llama_index.postprocessor.posrag")

from llama_index.postprocessor.posrag.base import PositionReorder  # noqa: E402

__all__ = ["PositionReorder"]
