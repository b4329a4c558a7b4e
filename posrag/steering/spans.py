"""Character spans in a prompt → token spans in its tokenization.

A fast tokenizer reports each token's character offsets; a document's token span is the run of tokens
whose offsets overlap its characters. Special tokens (BOS, which carries the offset ``(0, 0)``) are never part
of a span. A tokenizer without offsets (a "slow" Python tokenizer) falls back to counting the tokens of the
prompt's prefixes, which is exact whenever the tokenizer does not merge across the span boundary and otherwise
off by at most one token at an edge; :func:`encode_with_offsets` says which method it used.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import torch

from posrag.errors import ConfigurationError


@dataclass(frozen=True)
class TokenSpan:
    """Tokens ``[start, end)`` of the encoded prompt."""

    start: int
    end: int

    def __len__(self) -> int:
        return self.end - self.start

    def to_dict(self) -> dict[str, int]:
        return {"start": self.start, "end": self.end}


@dataclass(frozen=True)
class EncodedPrompt:
    """A prompt's ``input_ids`` (1 × T) with per-token character offsets (``None`` for special tokens)."""

    text: str
    input_ids: torch.Tensor
    offsets: tuple[tuple[int, int] | None, ...]
    method: str  # "offsets" or "prefix"
    add_special_tokens: bool = True

    @property
    def num_tokens(self) -> int:
        return int(self.input_ids.shape[1])


def _special_ids(tokenizer: Any) -> set[int]:
    return set(getattr(tokenizer, "all_special_ids", []) or [])


def encode_with_offsets(tokenizer: Any, prompt: str, *, add_special_tokens: bool = True) -> EncodedPrompt:
    """Tokenize ``prompt`` as generation will, with the character offsets of every token."""
    if not prompt:
        raise ConfigurationError("The prompt is empty; pass some text to generate from.")
    try:
        encoded = tokenizer(
            prompt, return_offsets_mapping=True, add_special_tokens=add_special_tokens, return_tensors="pt"
        )
    except NotImplementedError:
        return _encode_by_prefixes(tokenizer, prompt, add_special_tokens)
    ids = encoded["input_ids"]
    special = _special_ids(tokenizer)
    offsets: list[tuple[int, int] | None] = []
    offset_mapping = encoded["offset_mapping"][0].tolist()
    for token_id, (start, end) in zip(ids[0].tolist(), offset_mapping, strict=True):
        offsets.append(None if (start == end and token_id in special) else (int(start), int(end)))
    return EncodedPrompt(prompt, ids, tuple(offsets), "offsets", add_special_tokens)


def _encode_by_prefixes(tokenizer: Any, prompt: str, add_special_tokens: bool) -> EncodedPrompt:
    warnings.warn(
        f"{type(tokenizer).__name__} has no offset mapping (not a fast tokenizer); posrag locates document "
        "tokens by tokenizing prompt prefixes, which can be one token off at a span edge. Use a fast tokenizer "
        "(AutoTokenizer.from_pretrained(..., use_fast=True)) for exact spans.",
        stacklevel=3,
    )
    ids = tokenizer(prompt, add_special_tokens=add_special_tokens, return_tensors="pt")["input_ids"]
    return EncodedPrompt(prompt, ids, (), "prefix", add_special_tokens)


def _prefix_token_count(tokenizer: Any, encoded: EncodedPrompt, char: int) -> int:
    if tokenizer is None:
        raise ConfigurationError("A prompt encoded without offsets needs its tokenizer to map spans.")
    text = encoded.text[:char]
    count = len(tokenizer(text, add_special_tokens=encoded.add_special_tokens)["input_ids"])
    return min(count, encoded.num_tokens)


def char_span_to_tokens(encoded: EncodedPrompt, start: int, end: int, tokenizer: Any = None) -> TokenSpan:
    """The token span covering characters ``[start, end)`` of ``encoded.text``."""
    if not 0 <= start < end <= len(encoded.text):
        raise ConfigurationError(
            f"Character span [{start}, {end}) is outside the prompt (length {len(encoded.text)}); targets must "
            "be spans of the very prompt string that is generated from."
        )
    if encoded.method == "prefix":
        first = _prefix_token_count(tokenizer, encoded, start)
        last = max(first + 1, _prefix_token_count(tokenizer, encoded, end))
        return TokenSpan(first, min(last, encoded.num_tokens))
    hits = [i for i, off in enumerate(encoded.offsets) if off is not None and off[0] < end and off[1] > start]
    if not hits:
        raise ConfigurationError(
            f"No token of the prompt covers characters [{start}, {end}); is the span empty or only whitespace "
            "that the tokenizer dropped?"
        )
    return TokenSpan(hits[0], hits[-1] + 1)


def first_token_at_or_after(encoded: EncodedPrompt, char: int, tokenizer: Any = None) -> int:
    """Index of the first token that starts at or after character ``char`` (``num_tokens`` if none)."""
    if encoded.method == "prefix":
        return _prefix_token_count(tokenizer, encoded, char) if char < len(encoded.text) else encoded.num_tokens
    for i, off in enumerate(encoded.offsets):
        if off is not None and off[0] >= char:
            return i
    return encoded.num_tokens


__all__ = [
    "EncodedPrompt",
    "TokenSpan",
    "char_span_to_tokens",
    "encode_with_offsets",
    "first_token_at_or_after",
]
