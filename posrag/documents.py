"""posrag's framework-agnostic document type, its position among the documents and its span in a prompt.

Adapters translate LangChain ``Document`` / LlamaIndex ``NodeWithScore`` to and from
:class:`ScoredDocument`; the core only ever sees this type. :class:`PositionInfo` is the one place where a
document's index becomes its relative position; :class:`DocumentSpan` is where its text sits in a prompt
(built by :mod:`posrag.prompts`, found by :mod:`posrag.locate`, aimed at by :mod:`posrag.steering`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, TypeVar

from posrag.errors import ConfigurationError

#: Metadata keys under which a reordered document records where it ended up.
#: Flat keys (not a nested dict) so that every framework's metadata handling keeps them intact.
POSITION_INDEX_KEY = "posrag_position"
POSITION_TOTAL_KEY = "posrag_total"
RELATIVE_POSITION_KEY = "posrag_relative_position"
POSITION_METADATA_KEYS = (POSITION_INDEX_KEY, POSITION_TOTAL_KEY, RELATIVE_POSITION_KEY)

#: Metadata key for the retrieval score, as the LangChain retriever reports it.
SCORE_KEY = "score"
#: Metadata key for a document's score in posrag's direction (higher is better), written by posrag's reorder
#: steps: a step configured with ``score_direction="distance"`` records the negated distance here, so the LLM
#: ranks the request's documents the right way round.
SIMILARITY_KEY = "posrag_similarity"


@dataclass(frozen=True)
class PositionInfo:
    """Where a document sits in the context: ``index`` of ``total`` (0-based), ``relative`` in [0, 1].

    ``relative`` is 0.0 for the first document and 1.0 for the last; a single document is at 1.0,
    the position nearest the question (it is both first and last, and "last" is where small models
    read best).
    """

    index: int
    total: int

    def __post_init__(self) -> None:
        if self.total < 1 or not 0 <= self.index < self.total:
            raise ConfigurationError(
                f"PositionInfo needs 0 <= index < total with total >= 1; got index={self.index}, total={self.total}."
            )

    @property
    def relative(self) -> float:
        return 1.0 if self.total == 1 else self.index / (self.total - 1)

    def to_metadata(self) -> dict[str, Any]:
        return {
            POSITION_INDEX_KEY: self.index,
            POSITION_TOTAL_KEY: self.total,
            RELATIVE_POSITION_KEY: self.relative,
        }

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any]) -> PositionInfo | None:
        """Read the position back from metadata written by :meth:`to_metadata`; ``None`` if absent."""
        if POSITION_INDEX_KEY not in metadata or POSITION_TOTAL_KEY not in metadata:
            return None
        return cls(int(metadata[POSITION_INDEX_KEY]), int(metadata[POSITION_TOTAL_KEY]))

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "total": self.total, "relative": self.relative}


def _frozen(mapping: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping or {}))


@dataclass(frozen=True)
class ScoredDocument:
    """A retrieved document: its text, metadata, retrieval score (higher is better) and id.

    ``score`` may be ``None`` (a document that came without a score, e.g. a pinned instruction).
    ``metadata`` is read-only; use :meth:`with_metadata` to derive a document with more keys.
    """

    text: str
    metadata: Mapping[str, Any] = field(default_factory=dict)
    score: float | None = None
    id: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "metadata", _frozen(self.metadata))

    @property
    def position(self) -> PositionInfo | None:
        return PositionInfo.from_metadata(self.metadata)

    @property
    def passage(self) -> str:
        """What an embedder reads of this document: ``metadata["title"]`` and the text (:func:`passage_text`)."""
        return passage_text(self.text, self.metadata.get("title"))

    def with_metadata(self, **extra: Any) -> ScoredDocument:
        return replace(self, metadata={**self.metadata, **extra})

    def with_position(self, position: PositionInfo) -> ScoredDocument:
        return self.with_metadata(**position.to_metadata())

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "text": self.text, "score": self.score, "metadata": dict(self.metadata)}


_T = TypeVar("_T")


def passage_text(text: str, title: Any = None) -> str:
    """The title, a newline and the text (the text alone when untitled): what a retriever should embed of a
    document, as DPR and Contriever encode Wikipedia passages and as posrag's prompt shows the model
    (``Document [i](Title: ...) text``). On NQ the title often names what the question asks about: the packaged
    embedder ranks the gold passage first for 92 % of 200 NQ calibration questions with it, 84.5 % without."""
    return f"{title}\n{text}" if title else text


def enumerate_positions(items: Iterable[_T]) -> Iterator[tuple[PositionInfo, _T]]:
    """``(PositionInfo(i, total), item)`` for each item in order: how every list of documents gets positions."""
    listed = list(items)
    for i, item in enumerate(listed):
        yield PositionInfo(i, len(listed)), item


@dataclass(frozen=True)
class DocumentSpan:
    """Where one document's text sits in a prompt: characters ``[start, end)``, and its position among the
    prompt's documents.

    :func:`posrag.prompts.build_prompt` records these while writing a prompt;
    :meth:`posrag.locate.DocumentRegistry.locate` finds them in a prompt written elsewhere;
    :func:`posrag.steering.targets.targets_from_spans` turns them into steering targets.
    """

    document: ScoredDocument
    start: int
    end: int
    position: PositionInfo

    def __post_init__(self) -> None:
        if not 0 <= self.start <= self.end:
            raise ConfigurationError(
                f"A DocumentSpan needs 0 <= start <= end; got [{self.start}, {self.end}) for document "
                f"{self.document.id!r}."
            )

    @property
    def relative_position(self) -> float:
        return self.position.relative

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.document.id,
            "score": self.document.score,
            "start": self.start,
            "end": self.end,
            "position": self.position.to_dict(),
        }


__all__ = [
    "POSITION_INDEX_KEY",
    "POSITION_METADATA_KEYS",
    "POSITION_TOTAL_KEY",
    "RELATIVE_POSITION_KEY",
    "SCORE_KEY",
    "SIMILARITY_KEY",
    "DocumentSpan",
    "PositionInfo",
    "ScoredDocument",
    "enumerate_positions",
    "passage_text",
]
