"""The embedder an index uses: the packaged all-MiniLM-L6-v2 by default, loaded on first use, and its name.

Imported lazily so that building adapters, validating options or reading a saved index's metadata does not
import torch (``from langchain_posrag import PosragRetriever`` stays light until something is embedded).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def load_embedder(*args: Any, **kwargs: Any) -> Any:
    """:func:`posrag.models.load_embedder`, imported on first use."""
    from posrag.models import load_embedder as load

    return load(*args, **kwargs)


def embedder_name(embedder: Any) -> str:
    """:func:`posrag.models.embedder_name`: the name an index records for ``embedder``."""
    from posrag.models import embedder_name as name

    return name(embedder)


def embed(embedder: Any, texts: Sequence[str], *, batch_size: int = 32) -> list[list[float]]:
    """Unit-length embeddings of ``texts`` as plain lists (what the frameworks' embedding classes return), as a
    :class:`~posrag.retrieval.DocumentIndex` embeds them."""
    import numpy as np

    raw = embedder.encode(
        list(texts), batch_size=batch_size, show_progress_bar=False, normalize_embeddings=True, convert_to_numpy=True
    )
    vectors = np.asarray(raw, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.where(norms > 0, norms, 1.0)).tolist()


__all__ = ["embed", "embedder_name", "load_embedder"]
