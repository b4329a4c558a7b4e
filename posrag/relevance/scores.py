"""A relevance result (:class:`RelevanceScores`, one score per document) and :func:`combine` for several."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from posrag.errors import ConfigurationError

RelevanceMethod = Literal["embedding", "attention", "attention_raw"]
Combination = Literal["rank_mean", "z_mean"]


@dataclass(frozen=True)
class RelevanceScores:
    """One relevance score per document (in the order given), higher = more relevant, and how it was made."""

    method: str
    scores: tuple[float, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "scores", tuple(float(s) for s in self.scores))
        if any(math.isnan(s) for s in self.scores):
            raise ConfigurationError(f"Relevance scores of method {self.method!r} contain NaN: {self.scores}.")

    def __len__(self) -> int:
        return len(self.scores)

    def ranking(self) -> list[int]:
        """Document indices, best first; ties keep the documents' order."""
        return sorted(range(len(self.scores)), key=lambda i: (-self.scores[i], i))

    def top(self) -> int:
        """Index of the best document (the first of a tie)."""
        if not self.scores:
            raise ConfigurationError(f"Relevance of method {self.method!r} has no documents; nothing ranks first.")
        return self.ranking()[0]

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "scores": list(self.scores)}


def _ranks(scores: Sequence[float]) -> np.ndarray:
    """Average ranks, 0 = best (ties share the mean of their ranks)."""
    values = np.asarray(scores, dtype=np.float64)
    order = np.argsort(-values, kind="stable")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(len(values), dtype=np.float64)
    for value in np.unique(values):
        tied = values == value
        ranks[tied] = ranks[tied].mean()
    return ranks


def combine(results: Sequence[RelevanceScores], how: Combination = "rank_mean") -> RelevanceScores:
    """One score per document from several results on different scales: ``rank_mean`` (minus the mean rank)
    or ``z_mean`` (the mean of each result's z-scores; a result with no spread contributes zeros)."""
    if not results:
        raise ConfigurationError("combine() needs at least one RelevanceScores.")
    sizes = {len(r) for r in results}
    if len(sizes) != 1:
        raise ConfigurationError(f"Relevance results to combine score different numbers of documents: {sizes}.")
    if how == "rank_mean":
        combined = -np.mean([_ranks(r.scores) for r in results], axis=0)
    elif how == "z_mean":
        rows = []
        for r in results:
            values = np.asarray(r.scores, dtype=np.float64)
            spread = values.std()
            rows.append((values - values.mean()) / spread if spread > 0 else np.zeros_like(values))
        combined = np.mean(rows, axis=0)
    else:
        raise ConfigurationError(f"how={how!r} must be 'rank_mean' or 'z_mean'.")
    name = f"{how}({'+'.join(r.method for r in results)})"
    return RelevanceScores(name, tuple(combined.tolist()))


__all__ = ["Combination", "RelevanceMethod", "RelevanceScores", "combine"]
