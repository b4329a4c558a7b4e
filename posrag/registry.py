"""Which documents the retriever / reorderer handed on, so a local LLM can find them in its prompt.

An unmodified LlamaIndex ``RetrieverQueryEngine`` or LangChain LCEL chain gives the LLM a plain string:
the documents are in it, but nothing says where. posrag's retrievers and reorder steps therefore
*remember* the documents they emit (text, score, metadata) in a bounded, thread-safe, process-wide
registry, and the LLM *locates* remembered texts in the prompt it receives. Positions are recomputed from
the order in which the documents appear in the prompt, so the registry never has to be "current": two
concurrent requests each find only the documents that are in their own prompt.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable

from posrag.documents import DocumentSpan, ScoredDocument, enumerate_positions

#: Texts shorter than this are not located: they would match by accident.
MIN_LOCATABLE_CHARS = 16


#: A remembered document found in a prompt: the same type as a span :func:`posrag.prompts.build_prompt` records.
LocatedDocument = DocumentSpan


class DocumentRegistry:
    """A bounded LRU map from document text to the last :class:`ScoredDocument` emitted with that text."""

    def __init__(self, capacity: int = 4096) -> None:
        self.capacity = capacity
        self._docs: OrderedDict[str, ScoredDocument] = OrderedDict()
        self._lock = threading.Lock()

    def remember(self, documents: Iterable[ScoredDocument]) -> None:
        with self._lock:
            for doc in documents:
                text = doc.text.strip()
                if len(text) < MIN_LOCATABLE_CHARS:
                    continue
                self._docs[text] = doc
                self._docs.move_to_end(text)
            while len(self._docs) > self.capacity:
                self._docs.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._docs.clear()

    def __len__(self) -> int:
        return len(self._docs)

    def locate(self, prompt: str) -> list[DocumentSpan]:
        """The remembered documents that occur in ``prompt``, in prompt order, with recomputed positions.

        Each text is matched at its first occurrence; a text contained in a longer located text is not
        counted again.
        """
        with self._lock:
            candidates = list(self._docs.items())
        found: list[tuple[int, int, ScoredDocument]] = []
        for text, doc in sorted(candidates, key=lambda item: -len(item[0])):
            start = prompt.find(text)
            if start < 0:
                continue
            end = start + len(text)
            if any(s <= start and end <= e for s, e, _ in found):
                continue
            found.append((start, end, doc))
        found.sort(key=lambda item: item[0])
        return [DocumentSpan(doc, s, e, position) for position, (s, e, doc) in enumerate_positions(found)]


#: The process-wide registry used by posrag's adapters.
default_registry = DocumentRegistry()


def remember_documents(documents: Iterable[ScoredDocument]) -> None:
    default_registry.remember(documents)


def locate_documents(prompt: str) -> list[DocumentSpan]:
    return default_registry.locate(prompt)


__all__ = [
    "MIN_LOCATABLE_CHARS",
    "DocumentRegistry",
    "DocumentSpan",
    "LocatedDocument",
    "default_registry",
    "locate_documents",
    "remember_documents",
]
