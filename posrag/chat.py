"""Chat messages and completion prompts as the text a model reads, and whether its special tokens are in it.

The LLM front-ends (posrag's LangChain and LlamaIndex classes, :meth:`Engine.complete
<posrag.engine.Engine.complete>`) format here: a tokenizer's chat template when it has one (and
it is not turned off), else plain ``Role: content`` lines. Pure string work; no model is loaded.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from posrag.generation import apply_chat_template, has_chat_template


@dataclass(frozen=True)
class FormattedPrompt:
    """The text the model reads and whether its special tokens are already in it (a chat template's are).

    ``segments``: where the caller's own texts lie in ``text``, as ``(start, end)`` character ranges: the
    completion prompt (one segment), or each chat message's content in order (a message the template dropped
    or rewrote is ``None``). Steering traces are reported in the caller's coordinates through them.
    """

    text: str
    add_special_tokens: bool
    segments: tuple[tuple[int, int] | None, ...] = ()

    def to_caller(self, start: int, end: int) -> tuple[int | None, int, int]:
        """``(segment index, start, end)`` of a character range of ``text`` in the caller's coordinates: within
        the completion prompt (segment 0) or the chat message that holds it. ``(None, start, end)`` when no
        segment holds it (e.g. no template was applied and no segments were recorded)."""
        for index, segment in enumerate(self.segments):
            if segment is not None and segment[0] <= start and end <= segment[1]:
                return index, start - segment[0], end - segment[0]
        return None, start, end


def _segments(text: str, parts: Sequence[str]) -> tuple[tuple[int, int] | None, ...]:
    """Where each of ``parts`` occurs in ``text``, searched in order (each after the previous one)."""
    found: list[tuple[int, int] | None] = []
    cursor = 0
    for part in parts:
        at = text.find(part, cursor) if part else -1
        if at < 0:
            found.append(None)
            continue
        found.append((at, at + len(part)))
        cursor = at + len(part)
    return tuple(found)


def format_messages(
    tokenizer: Any, messages: Sequence[Mapping[str, str]], use_chat_template: bool | None
) -> FormattedPrompt:
    """Chat messages as one prompt: the tokenizer's chat template if it has one (and it is not turned off),
    else ``Role: content`` lines ending in ``Assistant:`` (a lone user message is passed through as is)."""
    contents = [m.get("content") or "" for m in messages]
    if use_chat_template is not False and has_chat_template(tokenizer):
        text = apply_chat_template(tokenizer, messages)
        return FormattedPrompt(text, add_special_tokens=False, segments=_segments(text, contents))
    if use_chat_template:
        apply_chat_template(tokenizer, messages)  # raises the actionable "no chat template" error
    if len(messages) == 1 and messages[0].get("role") == "user":
        content = messages[0]["content"]
        return FormattedPrompt(content, add_special_tokens=True, segments=((0, len(content)),))
    lines = [f"{m.get('role', 'user').capitalize()}: {m['content']}" for m in messages]
    text = "\n\n".join([*lines, "Assistant:"])
    return FormattedPrompt(text, add_special_tokens=True, segments=_segments(text, contents))


def format_completion(tokenizer: Any, prompt: str, use_chat_template: bool | None = False) -> FormattedPrompt:
    """A completion prompt as the model reads it: as is, or wrapped as a user turn by the chat template
    (``use_chat_template=True``, or ``None`` when the tokenizer has one)."""
    if use_chat_template is False or (use_chat_template is None and not has_chat_template(tokenizer)):
        return FormattedPrompt(prompt, add_special_tokens=True, segments=((0, len(prompt)),))
    return format_messages(tokenizer, [{"role": "user", "content": prompt}], use_chat_template)


__all__ = ["FormattedPrompt", "format_completion", "format_messages"]
