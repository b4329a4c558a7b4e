"""posrag's LangChain components."""

from langchain_posrag.chat_models import ChatPosrag
from langchain_posrag.document_transformers import PositionReorder
from langchain_posrag.llms import PosragLLM
from langchain_posrag.retrievers import PosragRetriever
from langchain_posrag.tools import PositionExplorerTool

__all__ = [
    "ChatPosrag",
    "PositionExplorerTool",
    "PositionReorder",
    "PosragLLM",
    "PosragRetriever",
]
