"""posrag's LangChain components.

``PositionReorder`` is imported eagerly (it needs neither torch nor transformers); the components that load
models are imported on first use, so ``from langchain_posrag import PositionReorder`` stays light.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

try:
    import langchain_core  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised only without the extra installed
    from posrag.errors import MissingDependencyError

    raise MissingDependencyError(
        "langchain_posrag needs langchain-core, which is not installed: pip install 'posrag[langchain]'."
    ) from exc

# Registers posrag's request tracking with LangChain (a configure hook): light, and needed before any chain runs.
from langchain_posrag import callbacks as callbacks
from langchain_posrag.document_transformers import PositionReorder

if TYPE_CHECKING:
    from langchain_posrag.chat_models import ChatPosrag
    from langchain_posrag.embeddings import PosragEmbeddings
    from langchain_posrag.llms import PosragLLM
    from langchain_posrag.prompts import RAG_CHAT_PROMPT, RAG_PROMPT, format_documents
    from langchain_posrag.retrievers import PosragRetriever
    from langchain_posrag.tools import PositionExplorerTool

_LAZY = {
    "ChatPosrag": "langchain_posrag.chat_models",
    "PositionExplorerTool": "langchain_posrag.tools",
    "PosragEmbeddings": "langchain_posrag.embeddings",
    "PosragLLM": "langchain_posrag.llms",
    "PosragRetriever": "langchain_posrag.retrievers",
    "RAG_CHAT_PROMPT": "langchain_posrag.prompts",
    "RAG_PROMPT": "langchain_posrag.prompts",
    "format_documents": "langchain_posrag.prompts",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'langchain_posrag' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = [
    "RAG_CHAT_PROMPT",
    "RAG_PROMPT",
    "ChatPosrag",
    "PositionExplorerTool",
    "PositionReorder",
    "PosragEmbeddings",
    "PosragLLM",
    "PosragRetriever",
    "format_documents",
]
