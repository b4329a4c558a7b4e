"""What retroactive exploration returns: frozen dataclasses with the seed's field names and ``to_dict()``."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from posrag.errors import ConfigurationError

Number = int | float


def normalize_number(value: Number) -> Number:
    """``5.0`` → ``5``: integral gaps and positions are ints, so ``get_exploration(5)`` and ``(5.0)`` agree."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


@dataclass(frozen=True)
class GapExploration:
    """The next-token distribution after the generated token when it sits ``gap`` positions later.

    ``parallel_tokens`` / ``parallel_probs``: every token with probability >= the selection threshold, most
    likely first. ``top_tokens`` / ``top_probs``: the ``top_k`` most likely, whatever their probability.
    ``entropy`` and ``kl_divergence`` are in nats; ``kl_divergence`` is KL(P_gap ‖ P_gap0), how far this
    distribution moved from the one at the token's natural position. ``baseline_token_prob`` is the
    probability, here, of the token that is most likely at gap 0.
    """

    gap: Number
    position: Number
    parallel_tokens: tuple[str, ...]
    parallel_token_ids: tuple[int, ...]
    parallel_probs: tuple[float, ...]
    top_next_token: str
    top_next_token_id: int
    top_next_prob: float
    top_tokens: tuple[str, ...]
    top_token_ids: tuple[int, ...]
    top_probs: tuple[float, ...]
    entropy: float
    kl_divergence: float
    baseline_token_prob: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "gap": self.gap,
            "position": self.position,
            "parallel_tokens": list(self.parallel_tokens),
            "parallel_token_ids": list(self.parallel_token_ids),
            "parallel_probs": list(self.parallel_probs),
            "top_next_token": self.top_next_token,
            "top_next_token_id": self.top_next_token_id,
            "top_next_prob": self.top_next_prob,
            "top_tokens": list(self.top_tokens),
            "top_token_ids": list(self.top_token_ids),
            "top_probs": list(self.top_probs),
            "entropy": self.entropy,
            "kl_divergence": self.kl_divergence,
            "baseline_token_prob": self.baseline_token_prob,
        }


@dataclass(frozen=True)
class ExplorationResult:
    """One generated token explored at several gaps (or absolute positions) after its prompt.

    The prompt has ``prompt_length`` tokens at positions ``0..prompt_length-1``; ``original_token`` is the
    greedy next token, whose natural position is ``prompt_length`` (gap 0). ``baseline`` is gap 0, always
    computed (it is the reference of every ``kl_divergence``); ``explorations`` are the requested gaps, in
    the order asked.
    """

    prompt: str | None
    prompt_length: int
    original_token: str
    original_token_id: int
    original_prob: float
    generation_entropy: float
    selection_threshold: float
    baseline: GapExploration
    explorations: tuple[GapExploration, ...]

    @property
    def original_position(self) -> int:
        return self.prompt_length

    def gaps(self) -> list[Number]:
        return [e.gap for e in self.explorations]

    def positions(self) -> list[Number]:
        return [e.position for e in self.explorations]

    def __iter__(self) -> Iterator[GapExploration]:
        return iter(self.explorations)

    def __len__(self) -> int:
        return len(self.explorations)

    def get_exploration(self, gap: Number) -> GapExploration:
        """The exploration at ``gap`` (``0`` gives the baseline even if it was not requested)."""
        for exploration in self.explorations:
            if exploration.gap == gap:
                return exploration
        if gap == 0:
            return self.baseline
        raise ConfigurationError(f"Gap {gap!r} was not explored; explored gaps: {self.gaps()}.")

    def at_position(self, position: Number) -> GapExploration:
        """The exploration at absolute position ``position`` (``prompt_length + gap``)."""
        return self.get_exploration(normalize_number(position - self.prompt_length))

    def by_gap(self) -> dict[Number, GapExploration]:
        return {e.gap: e for e in self.explorations}

    def by_position(self) -> dict[Number, GapExploration]:
        return {e.position: e for e in self.explorations}

    def to_dict(self) -> dict[str, Any]:
        return {
            "prompt": self.prompt,
            "prompt_length": self.prompt_length,
            "original_token": self.original_token,
            "original_token_id": self.original_token_id,
            "original_position": self.original_position,
            "original_prob": self.original_prob,
            "generation_entropy": self.generation_entropy,
            "selection_threshold": self.selection_threshold,
            "baseline": self.baseline.to_dict(),
            "explorations": [e.to_dict() for e in self.explorations],
        }


@dataclass(frozen=True)
class PathExpansion:
    """The explored token continued greedily into a path while it sits ``gap`` positions later.

    ``token`` sits at ``start_position = prompt_length + gap``; ``tokens[i]`` follows at
    ``positions[i] = start_position + i + 1``, and ``probs[i]`` is the probability it was chosen with.
    The path stops early (shorter than asked) at the end-of-sequence token.
    """

    gap: Number
    start_position: Number
    token: str
    token_id: int
    tokens: tuple[str, ...]
    token_ids: tuple[int, ...]
    probs: tuple[float, ...]
    positions: tuple[Number, ...]
    text: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "gap": self.gap,
            "start_position": self.start_position,
            "token": self.token,
            "token_id": self.token_id,
            "tokens": list(self.tokens),
            "token_ids": list(self.token_ids),
            "probs": list(self.probs),
            "positions": list(self.positions),
            "text": self.text,
        }


__all__ = ["ExplorationResult", "GapExploration", "Number", "PathExpansion", "normalize_number"]
