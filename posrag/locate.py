"""Locating documents in a prompt written elsewhere: which of a request's documents a prompt contains, and where.

An unmodified LlamaIndex ``RetrieverQueryEngine`` or LangChain LCEL chain gives the LLM a plain string: the
documents are in it, but nothing says where. The LLM is handed the documents of *its own request*
(:mod:`posrag.requests`, or passed explicitly) and :func:`locate` finds their texts in the prompt. Positions
are those of the documents in *this* prompt, in prompt order. There is no process-wide memory of documents:
what a request emitted is visible to that request only.
"""

from __future__ import annotations

from collections.abc import Iterable

from posrag.documents import DocumentSpan, ScoredDocument, enumerate_positions

#: Texts shorter than this are not located: they would match by accident.
MIN_LOCATABLE_CHARS = 16


def locatable_text(document: ScoredDocument) -> str:
    """The text that is searched for: the document's text without surrounding whitespace."""
    return document.text.strip()


def locate(prompt: str, documents: Iterable[ScoredDocument]) -> list[DocumentSpan]:
    """The ``documents`` that occur in ``prompt``, in prompt order, with their positions in this prompt.

    Each text is matched at its first occurrence (stripped of surrounding whitespace); a text contained in a
    longer located text is not counted again; texts shorter than :data:`MIN_LOCATABLE_CHARS` never match.
    """
    found: list[tuple[int, int, ScoredDocument]] = []
    for doc in sorted(documents, key=lambda d: -len(locatable_text(d))):
        text = locatable_text(doc)
        if len(text) < MIN_LOCATABLE_CHARS:
            continue
        start = prompt.find(text)
        if start < 0:
            continue
        end = start + len(text)
        if any(s <= start and end <= e for s, e, _ in found):
            continue
        found.append((start, end, doc))
    found.sort(key=lambda item: item[0])
    return [
        DocumentSpan(document=doc, start=s, end=e, position=position)
        for position, (s, e, doc) in enumerate_positions(found)
    ]


__all__ = ["MIN_LOCATABLE_CHARS", "locatable_text", "locate"]
