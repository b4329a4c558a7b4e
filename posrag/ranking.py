"""Ranking scored entries: the one definition every caller uses (ordering, steering's tiers, selection).

Scores are similarities (higher is better) unless ``score_direction="distance"``; entries without a score are
left out of the ranking (never silently ranked as worst); ties keep their input order; a NaN score is an error.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal, get_args

from posrag._validation import check_choice
from posrag.errors import ConfigurationError

ScoreDirection = Literal["similarity", "distance"]


def rank(scores: Sequence[float | None], score_direction: ScoreDirection = "similarity") -> list[int]:
    """Indices of the scored entries, best first; ties keep input order. Unscored entries are left out."""
    check_choice("score_direction", score_direction, get_args(ScoreDirection))
    scored = []
    for i, score in enumerate(scores):
        if score is None:
            continue
        value = float(score)
        if math.isnan(value):
            raise ConfigurationError(
                f"Document {i} has a NaN score; give it a real score or None (unscored) before ranking."
            )
        scored.append((i, value))
    sign = -1.0 if score_direction == "similarity" else 1.0
    return [i for i, value in sorted(scored, key=lambda item: sign * item[1])]


def ranks_by_score(scores: Sequence[float | None]) -> list[int | None]:
    """Each entry's rank by score (0 = best; ties keep their order); ``None`` for an entry without a score."""
    ranks: list[int | None] = [None] * len(scores)
    for position, index in enumerate(rank(scores)):
        ranks[index] = position
    return ranks


__all__ = ["ScoreDirection", "rank", "ranks_by_score"]
