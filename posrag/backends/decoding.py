"""From logits to tokens to text, for a backend with its own decode loop: greedy or sampled choice, and the
completion or its streamed pieces with the stop strings of a :class:`~posrag.generation.GenerationConfig`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from posrag.generation import GenerationConfig
from posrag.streaming import CompletionStream, held_pieces


def next_token(
    logits: np.ndarray,
    generation: GenerationConfig,
    produced: int,
    rng: np.random.Generator,
    is_end: Callable[[int], bool],
) -> int:
    """Argmax (``temperature == 0``) or a sample; an end-of-generation token is skipped before ``min_new_tokens``."""
    if generation.temperature > 0:
        token = sample(logits, generation.temperature, generation.top_p, rng)
    else:
        token = int(np.argmax(logits))
    if produced < generation.min_new_tokens and is_end(token):
        masked = logits.copy()
        while is_end(token):
            masked[token] = -np.inf
            token = int(np.argmax(masked))
    return token


def sample(logits: np.ndarray, temperature: float, top_p: float, rng: np.random.Generator) -> int:
    """A token drawn from ``softmax(logits / temperature)``, restricted to the top-``top_p`` mass."""
    scaled = logits.astype(np.float64) / temperature
    if top_p < 1.0:
        order = np.argsort(-scaled)
        probabilities = np.exp(scaled[order] - scaled[order[0]])
        probabilities /= probabilities.sum()
        keep = int(np.searchsorted(np.cumsum(probabilities), top_p)) + 1
        chosen = probabilities[:keep] / probabilities[:keep].sum()
        return int(order[rng.choice(keep, p=chosen)])
    probabilities = np.exp(scaled - scaled.max())
    return int(rng.choice(len(probabilities), p=probabilities / probabilities.sum()))


def _text(tokenizer: Any, tokens: list[int]) -> str:
    return str(tokenizer.decode(tokens, skip_special_tokens=True))


def completion(
    tokens: Iterator[int], tokenizer: Any, generation: GenerationConfig, *, until: Callable[[str], bool] | None = None
) -> tuple[str, int]:
    """The completion of a token stream (stops applied) and its length; the stream is closed at the first stop,
    or once ``until`` is true of the completion so far."""
    new: list[int] = []
    try:
        for token in tokens:
            new.append(token)
            if generation.stop or until is not None:
                text = _text(tokenizer, new)
                if (generation.stop and generation.apply_stop(text)[1]) or (until is not None and until(text)):
                    break
    finally:
        tokens.close()  # type: ignore[attr-defined]
    return generation.apply_stop(_text(tokenizer, new))[0], len(new)


def pieces(tokens: Iterator[int], tokenizer: Any, generation: GenerationConfig) -> CompletionStream:
    """The completion of a token stream piece by piece, stops applied across pieces
    (:func:`posrag.streaming.held_pieces`), counting the tokens drawn; closing it closes the token stream."""
    new: list[int] = []

    def completions() -> Iterator[str]:
        for token in tokens:
            new.append(token)
            yield _text(tokenizer, new)

    def run() -> Iterator[str]:
        try:
            yield from held_pieces(completions(), generation)
        finally:
            tokens.close()  # type: ignore[attr-defined]

    return CompletionStream(run(), lambda: len(new))


__all__ = ["completion", "next_token", "pieces", "sample"]
