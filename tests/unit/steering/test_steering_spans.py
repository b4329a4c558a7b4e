"""Character spans → token spans: offsets, BOS tokens, and the fallback for tokenizers without offsets."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenizers.processors import TemplateProcessing

from posrag.errors import ConfigurationError
from posrag.steering import TokenSpan, char_span_to_tokens, encode_with_offsets
from posrag.steering.spans import first_token_at_or_after
from posrag.testing import tiny_tokenizer

PROMPT = (
    "Use the documents below to answer the question.\n"
    "Document [1] Paris is the capital of France.\n"
    "Document [2] Everest is the highest mountain on Earth.\n\n"
    "Question: What is the capital of France?\nAnswer:"
)


def _bos_tokenizer() -> Any:
    tokenizer = tiny_tokenizer()
    tokenizer._tokenizer.post_processor = TemplateProcessing(
        single="<bos> $A", special_tokens=[("<bos>", tokenizer.bos_token_id)]
    )
    return tokenizer


class _NoOffsets:
    """A tokenizer that cannot report offsets (as a slow, pure-Python tokenizer)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __call__(self, text: str, **kwargs: Any) -> Any:
        if kwargs.get("return_offsets_mapping"):
            raise NotImplementedError("return_offset_mapping is not available when using Python tokenizers")
        return self._inner(text, **kwargs)


def _text_of(tokenizer: Any, encoded: Any, span: TokenSpan) -> str:
    return tokenizer.decode(encoded.input_ids[0, span.start : span.end])


def test_bos_is_never_part_of_a_span() -> None:
    tokenizer = _bos_tokenizer()
    encoded = encode_with_offsets(tokenizer, PROMPT)
    assert encoded.input_ids[0, 0].item() == tokenizer.bos_token_id
    assert encoded.offsets[0] is None
    span = char_span_to_tokens(encoded, 0, 3)
    assert span.start == 1
    assert _text_of(tokenizer, encoded, span).startswith("Use")


@pytest.mark.parametrize("bos", [False, True])
def test_document_span_covers_exactly_its_text(bos: bool) -> None:
    tokenizer = _bos_tokenizer() if bos else tiny_tokenizer()
    encoded = encode_with_offsets(tokenizer, PROMPT)
    start = PROMPT.index("Paris")
    end = PROMPT.index("\nDocument [2]")
    span = char_span_to_tokens(encoded, start, end)
    decoded = _text_of(tokenizer, encoded, span)
    assert "Paris is the capital of France." in decoded
    assert "Document [1]" not in decoded and "Everest" not in decoded
    # The tokens just outside the span do not overlap it.
    assert encoded.offsets[span.start - 1][1] <= start
    assert span.end == encoded.num_tokens or encoded.offsets[span.end][0] >= end


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_any_char_span_maps_to_the_tokens_that_overlap_it(data: st.DataObject) -> None:
    tokenizer = tiny_tokenizer()
    encoded = encode_with_offsets(tokenizer, PROMPT)
    start = data.draw(st.integers(0, len(PROMPT) - 1))
    end = data.draw(st.integers(start + 1, len(PROMPT)))
    span = char_span_to_tokens(encoded, start, end)
    inside = [off for off in encoded.offsets[span.start : span.end]]
    assert inside[0][0] <= start < inside[0][1] or inside[0][0] >= start
    assert all(off[0] < end for off in inside)
    for i, off in enumerate(encoded.offsets):
        if not span.start <= i < span.end:
            assert not (off[0] < end and off[1] > start)


def test_span_outside_the_prompt_is_rejected() -> None:
    encoded = encode_with_offsets(tiny_tokenizer(), PROMPT)
    with pytest.raises(ConfigurationError, match="outside the prompt"):
        char_span_to_tokens(encoded, 10, len(PROMPT) + 5)


def test_first_token_at_or_after() -> None:
    tokenizer = tiny_tokenizer()
    encoded = encode_with_offsets(tokenizer, PROMPT)
    question = PROMPT.index("\n\nQuestion")
    index = first_token_at_or_after(encoded, question)
    assert encoded.offsets[index][0] >= question
    assert encoded.offsets[index - 1][0] < question
    assert first_token_at_or_after(encoded, len(PROMPT)) == encoded.num_tokens


def test_tokenizer_without_offsets_falls_back_with_a_warning() -> None:
    fast = _bos_tokenizer()
    slow = _NoOffsets(fast)
    with pytest.warns(UserWarning, match="no offset mapping"):
        encoded = encode_with_offsets(slow, PROMPT)
    assert encoded.method == "prefix"
    exact = encode_with_offsets(fast, PROMPT)
    assert encoded.input_ids.tolist() == exact.input_ids.tolist()
    # Word-aligned spans (the usual document boundaries) map exactly as with offsets.
    start, end = PROMPT.index("Document [2]"), PROMPT.index("\n\nQuestion")
    assert char_span_to_tokens(encoded, start, end, slow) == char_span_to_tokens(exact, start, end)


def test_empty_prompt_is_rejected() -> None:
    with pytest.raises(ConfigurationError, match="empty"):
        encode_with_offsets(tiny_tokenizer(), "")
