"""posrag's LlamaIndex node postprocessor: ``from llama_index.postprocessor.posrag import PositionReorder``."""

from llama_index.postprocessor.posrag.base import PositionReorder

__all__ = ["PositionReorder"]
