"""The demo corpus shipped with posrag and the end-to-end run behind ``posrag demo``."""

from __future__ import annotations

import json
from importlib.resources import files
from typing import TYPE_CHECKING

from posrag.documents import ScoredDocument

if TYPE_CHECKING:
    from posrag.pipeline import RAGPipeline

DEMO_QUESTION = "Who built the Marrowvale lighthouse?"


def load_demo_corpus() -> list[ScoredDocument]:
    """Sixteen short documents about a fictional island town (so the model cannot answer from memory)."""
    text = files("posrag").joinpath("data/demo_corpus.jsonl").read_text(encoding="utf-8")
    records = [json.loads(line) for line in text.splitlines() if line.strip()]
    return [ScoredDocument(text=r["text"], metadata={"title": r["title"]}, id=r["id"]) for r in records]


def build_demo_pipeline(
    *, k: int = 5, strategy: str = "recency", steering: object | None = None, backend: str = "torch"
) -> RAGPipeline:
    """The demo pipeline on the embedded defaults: packaged embedder, FAISS index, packaged Gemma 3 270M (on
    ``backend``: ``"torch"`` or ``"llama.cpp"``, :func:`posrag.backends.load_backend`)."""
    from posrag.backends import load_backend
    from posrag.models import load_embedder
    from posrag.pipeline import RAGPipeline
    from posrag.retrieval import DocumentIndex

    corpus = load_demo_corpus()
    index = DocumentIndex.from_texts(
        [d.text for d in corpus],
        metadatas=[dict(d.metadata) for d in corpus],
        ids=[d.id for d in corpus],
        embedder=load_embedder(),
    )
    llm = load_backend(None, backend, progress=True)  # the first conversion shows its progress, as before
    return RAGPipeline(index, llm, k=k, reorder=strategy, steering=steering)  # type: ignore[arg-type]


__all__ = ["DEMO_QUESTION", "build_demo_pipeline", "load_demo_corpus"]
