"""A completion streamed piece by piece: the stream every backend returns, and the stop strings applied
across its pieces."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Protocol


class Stops(Protocol):
    """What :func:`held_pieces` reads of a generation's settings (a :class:`~posrag.generation.GenerationConfig`)."""

    @property
    def stop(self) -> Sequence[str]: ...

    def apply_stop(self, text: str) -> tuple[str, bool]: ...


class CompletionStream(Iterator[str]):
    """A completion streamed piece by piece (stops applied across pieces); ``close()`` stops generation at the
    next token. ``generated_tokens``: the tokens the model has generated so far; once the pieces are exhausted,
    what a non-streamed call of the same request reports (the usage a streaming caller bills and traces)."""

    def __init__(self, pieces: Iterator[str], generated: Callable[[], int]) -> None:
        self._pieces, self._generated = pieces, generated

    def __next__(self) -> str:
        return next(self._pieces)

    def close(self) -> None:
        self._pieces.close()  # type: ignore[attr-defined]

    @property
    def generated_tokens(self) -> int:
        return self._generated()


def held_pieces(
    completions: Iterable[str], config: Stops, *, keep_tail: Callable[[], bool] | None = None
) -> Iterator[str]:
    """The new pieces of a completion that grows step by step, the stop strings applied across pieces.

    ``completions``: the whole completion so far, after each step (a token or a streamer's piece). A tail that may
    start a stop string, or an incomplete UTF-8 character, is held back until a later step decides it; the pieces
    end at a stop. When the steps end without one, the held tail is yielded too, unless ``keep_tail`` says
    otherwise (a cancelled generation ends without the rest). Every streaming path uses this, whatever runs the
    model.
    """
    hold = max((len(s) - 1 for s in config.stop), default=0)
    seen = emitted = ""
    for seen in completions:
        text, stopped = config.apply_stop(seen)
        if text.endswith("\ufffd") and not stopped:
            continue  # an incomplete UTF-8 sequence: wait for the next step
        safe = text if stopped else text[: max(len(emitted), len(text) - hold)]
        if len(safe) > len(emitted):
            yield safe[len(emitted) :]
            emitted = safe
        if stopped:
            return
    if keep_tail is not None and not keep_tail():
        return
    text, _ = config.apply_stop(seen)
    if len(text) > len(emitted):
        yield text[len(emitted) :]


__all__ = ["CompletionStream", "held_pieces"]
