"""Where the query of a RAG prompt is: the text after the last located document (the question follows them)."""

from __future__ import annotations

from collections.abc import Sequence

from posrag.errors import ConfigurationError


def check_spans(prompt: str, spans: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """The spans as int pairs, checked to be non-empty character ranges of ``prompt``."""
    checked = [(int(s), int(e)) for s, e in spans]
    if not checked:
        raise ConfigurationError("No document spans were given; relevance needs at least one located document.")
    for start, end in checked:
        if not 0 <= start < end <= len(prompt):
            raise ConfigurationError(
                f"Document span [{start}, {end}) is outside the prompt (length {len(prompt)}); spans must be "
                "character ranges of the very prompt string."
            )
    return checked


def query_start(prompt: str, spans: Sequence[tuple[int, int]]) -> int:
    """The character where the query begins: the end of the last located document."""
    return max(end for _, end in check_spans(prompt, spans))


def query_after_documents(prompt: str, spans: Sequence[tuple[int, int]]) -> str:
    """The text after the last located document, stripped: the query of a RAG prompt (the question follows
    the documents). Raises if nothing but whitespace follows them."""
    query = prompt[query_start(prompt, spans) :].strip()
    if not query:
        raise ConfigurationError(
            "Nothing follows the last document in the prompt, so there is no query to score the documents "
            "against; pass the question explicitly."
        )
    return query


__all__ = ["check_spans", "query_after_documents", "query_start"]
