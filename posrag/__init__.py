"""posrag: position-aware RAG for small local language models.

Ordering, position-graduated steering and retroactive position exploration, with a FAISS retriever over
sentence-transformer embeddings. This core imports neither LangChain nor LlamaIndex; their adapters live in
``langchain_posrag`` and ``llama_index.*.posrag``.
"""

from posrag.documents import PositionInfo, ScoredDocument
from posrag.errors import (
    ConfigurationError,
    IndexCorruptedError,
    MissingDependencyError,
    ModelNotFoundError,
    PositionOutOfRangeError,
    PosragError,
    UnsupportedArchitectureError,
)

__version__ = "0.1.0"

__all__ = [
    "ConfigurationError",
    "IndexCorruptedError",
    "MissingDependencyError",
    "ModelNotFoundError",
    "PositionInfo",
    "PositionOutOfRangeError",
    "PosragError",
    "ScoredDocument",
    "UnsupportedArchitectureError",
    "__version__",
]
