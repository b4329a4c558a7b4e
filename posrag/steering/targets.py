"""From document spans to steering targets: the one builder every caller uses.

A :class:`~posrag.documents.DocumentSpan` (from :func:`posrag.prompts.build_prompt` or
:func:`~posrag.locate.locate`) already knows the document's characters, its relative position,
its score and its id; :func:`target_from_span` copies them into a :class:`~posrag.steering.planning.SteeringTarget`
and reads the rule type from the metadata by one rule (:data:`RULE_TYPE_KEYS`, first non-empty wins).
The generator, the pipeline, the benchmark and the benchmark scripts all build their targets here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from posrag.documents import DocumentSpan, ScoredDocument
from posrag.locate import locate
from posrag.steering.planning import SteeringTarget

#: Metadata keys read as a document's rule type (for the rule-type safe zones), in order of preference.
RULE_TYPE_KEYS = ("rule_type", "posrag_rule_type")


def rule_type_of(metadata: Mapping[str, Any]) -> str | None:
    """The document's rule type: the first non-empty value under :data:`RULE_TYPE_KEYS`, as a string."""
    value = next((metadata[key] for key in RULE_TYPE_KEYS if metadata.get(key)), None)
    return None if value is None else str(value)


def target_from_span(span: DocumentSpan) -> SteeringTarget:
    """The steering target of one document span: its characters, relative position, score, rule type and id."""
    document = span.document
    return SteeringTarget(
        start_char=span.start,
        end_char=span.end,
        relative_position=span.position.relative,
        score=document.score,
        rule_type=rule_type_of(document.metadata),
        doc_id=document.id,
    )


def targets_from_spans(spans: Iterable[DocumentSpan]) -> list[SteeringTarget]:
    """:func:`target_from_span` of each span, in order."""
    return [target_from_span(span) for span in spans]


def targets_from_prompt(prompt: str, documents: Sequence[ScoredDocument]) -> list[SteeringTarget]:
    """Steering targets for the ``documents`` that occur in ``prompt`` (a prompt built elsewhere).

    Built on :func:`posrag.locate.locate`: positions are those of the documents in *this* prompt. The LLM
    classes go through :func:`posrag.steering.selection.select_targets` instead, which also ranks the
    documents per request and weighs them by confidence.
    """
    return targets_from_spans(locate(prompt, documents))


__all__ = ["RULE_TYPE_KEYS", "rule_type_of", "target_from_span", "targets_from_prompt", "targets_from_spans"]
