"""The embedder an index uses: the packaged all-MiniLM-L6-v2 by default, loaded on first use, and its name.

Imported lazily so that building adapters, validating options or reading a saved index's metadata does not
import torch (``from langchain_posrag import PosragRetriever`` stays light until something is embedded).
"""

from __future__ import annotations

from typing import Any


def load_embedder(*args: Any, **kwargs: Any) -> Any:
    """:func:`posrag.models.load_embedder`, imported on first use."""
    from posrag.models import load_embedder as load

    return load(*args, **kwargs)


def embedder_name(embedder: Any) -> str:
    """:func:`posrag.models.embedder_name`: the name an index records for ``embedder``."""
    from posrag.models import embedder_name as name

    return name(embedder)


__all__ = ["embedder_name", "load_embedder"]
