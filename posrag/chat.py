"""Chat messages and completion prompts as the text a model reads, and whether its special tokens are in it.

The LLM front-ends (posrag's LangChain and LlamaIndex classes, :meth:`SteeredGenerator.complete
<posrag.steering.SteeredGenerator.complete>`) format here: a tokenizer's chat template when it has one (and
it is not turned off), else plain ``Role: content`` lines. Pure string work; no model is loaded.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from posrag.generation import apply_chat_template, has_chat_template


@dataclass(frozen=True)
class FormattedPrompt:
    """The text the model reads and whether its special tokens are already in it (a chat template's are)."""

    text: str
    add_special_tokens: bool


def format_messages(
    tokenizer: Any, messages: Sequence[Mapping[str, str]], use_chat_template: bool | None
) -> FormattedPrompt:
    """Chat messages as one prompt: the tokenizer's chat template if it has one (and it is not turned off),
    else ``Role: content`` lines ending in ``Assistant:`` (a lone user message is passed through as is)."""
    if use_chat_template is not False and has_chat_template(tokenizer):
        return FormattedPrompt(apply_chat_template(tokenizer, messages), add_special_tokens=False)
    if use_chat_template:
        apply_chat_template(tokenizer, messages)  # raises the actionable "no chat template" error
    if len(messages) == 1 and messages[0].get("role") == "user":
        return FormattedPrompt(messages[0]["content"], add_special_tokens=True)
    lines = [f"{m.get('role', 'user').capitalize()}: {m['content']}" for m in messages]
    return FormattedPrompt("\n\n".join([*lines, "Assistant:"]), add_special_tokens=True)


def format_completion(tokenizer: Any, prompt: str, use_chat_template: bool | None = False) -> FormattedPrompt:
    """A completion prompt as the model reads it: as is, or wrapped as a user turn by the chat template
    (``use_chat_template=True``, or ``None`` when the tokenizer has one)."""
    if use_chat_template is False or (use_chat_template is None and not has_chat_template(tokenizer)):
        return FormattedPrompt(prompt, add_special_tokens=True)
    return format_messages(tokenizer, [{"role": "user", "content": prompt}], use_chat_template)


__all__ = ["FormattedPrompt", "format_completion", "format_messages"]
