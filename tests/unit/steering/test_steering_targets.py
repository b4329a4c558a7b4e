"""One span type (built or located) and one builder from spans to steering targets."""

from __future__ import annotations

import pytest

from posrag.documents import DocumentSpan, PositionInfo, ScoredDocument, enumerate_positions
from posrag.errors import ConfigurationError
from posrag.locate import locate
from posrag.pipeline import steering_targets
from posrag.prompts import build_prompt
from posrag.steering import SteeringTarget
from posrag.steering.targets import rule_type_of, target_from_span, targets_from_spans

DOCS = [
    ScoredDocument("The first document is about rivers.", {"title": "Rivers"}, score=0.2, id="a"),
    ScoredDocument("The second document is about lakes.", {"rule_type": "safety"}, score=0.9, id="b"),
    ScoredDocument("The third document is about the sea.", {"posrag_rule_type": 7}, score=None, id="c"),
]


def test_built_and_located_spans_are_one_type_with_the_same_positions() -> None:
    prompt = build_prompt("Where is the water?", DOCS)
    located = locate(prompt.text, DOCS)
    assert all(isinstance(span, DocumentSpan) for span in located)
    assert located == list(prompt.spans)
    assert [s.relative_position for s in located] == [0.0, 0.5, 1.0]
    assert located[1].to_dict() == {
        "id": "b",
        "score": 0.9,
        "start": located[1].start,
        "end": located[1].end,
        "position": {"index": 1, "total": 3, "relative": 0.5},
    }


def test_enumerate_positions_gives_each_item_its_place() -> None:
    assert [(p.index, p.relative, x) for p, x in enumerate_positions("xyz")] == [
        (0, 0.0, "x"),
        (1, 0.5, "y"),
        (2, 1.0, "z"),
    ]
    assert [p.relative for p, _ in enumerate_positions(["only"])] == [1.0]


def test_a_span_must_be_ordered() -> None:
    with pytest.raises(ConfigurationError, match=r"start <= end; got \[5, 2\)"):
        DocumentSpan(DOCS[0], 5, 2, PositionInfo(0, 1))


def test_rule_type_rule_prefers_rule_type_then_posrag_rule_type() -> None:
    assert rule_type_of({"rule_type": "a", "posrag_rule_type": "b"}) == "a"
    assert rule_type_of({"rule_type": "", "posrag_rule_type": "b"}) == "b"
    assert rule_type_of({"posrag_rule_type": 7}) == "7"
    assert rule_type_of({}) is None


def test_targets_carry_span_position_score_rule_type_and_id() -> None:
    prompt = build_prompt("Where is the water?", DOCS)
    targets = targets_from_spans(prompt.spans)
    assert targets == [
        SteeringTarget(s.start, s.end, s.position.relative, score=s.document.score, rule_type=r, doc_id=s.document.id)
        for s, r in zip(prompt.spans, [None, "safety", "7"], strict=True)
    ]
    assert target_from_span(prompt.spans[1]) == targets[1]
    # The pipeline builds its targets the same way.
    assert steering_targets(prompt) == targets
