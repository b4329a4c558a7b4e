"""One trial's prompt as the model reads it: the benchmark's prompt as is, or wrapped as one user turn by the
tokenizer's chat template, with the steering targets as character spans of that text."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from posrag.chat import format_completion
from posrag.errors import ConfigurationError
from posrag.prompts import RAGPrompt


@dataclass(frozen=True)
class Variant:
    """A prompt and what to steer in it, ready to generate.

    ``text`` is what the model reads: ``prompt.text`` as is, or wrapped by the chat template, where it starts
    at ``offset``; ``targets`` are character spans of ``text`` (already shifted by ``offset``).
    """

    prompt: RAGPrompt
    gold_position: int
    targets: tuple[Any, ...]
    text: str = ""
    offset: int = 0
    add_special_tokens: bool = True


def as_read(
    tokenizer: Any,
    prompt: RAGPrompt,
    gold_position: int,
    targets: tuple[Any, ...],
    chat_template: bool,
    reply_cue: str = "",
) -> Variant:
    """The variant as the model reads it: through the chat template (targets shifted) or as is. ``reply_cue``
    opens the model's reply under a chat template (ignored without one: the prompt ends in its own cue)."""
    formatted = format_completion(tokenizer, prompt.text, chat_template)
    segment = formatted.segments[0] if formatted.segments else None
    if segment is None or formatted.text[segment[0] : segment[1]] != prompt.text:
        raise ConfigurationError(
            "The chat template rewrote the benchmark's prompt, so the steering spans cannot be placed in it; "
            "run with chat_template='off'."
        )
    offset = segment[0]
    shifted = tuple(replace(t, start_char=t.start_char + offset, end_char=t.end_char + offset) for t in targets)
    text = formatted.text + reply_cue if chat_template else formatted.text
    return Variant(prompt, gold_position, shifted, text, offset, formatted.add_special_tokens)


__all__ = ["Variant", "as_read"]
