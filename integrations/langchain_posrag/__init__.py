"""posrag's LangChain components."""

from langchain_posrag.document_transformers import PositionReorder

__all__ = [
    "PositionReorder",
]
