"""Ordering: pure permutations (properties over many inputs) and the documents they produce."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from posrag.documents import PositionInfo, ScoredDocument
from posrag.errors import ConfigurationError
from posrag.ordering import STRATEGIES, Reorderer, plan_order, reorder
from posrag.ranking import rank

scores_lists = st.lists(st.one_of(st.none(), st.floats(-10, 10, allow_nan=False)), max_size=25)
scored_lists = st.lists(st.floats(-10, 10, allow_nan=False), min_size=1, max_size=25)


@given(
    scores_lists,
    st.sampled_from(STRATEGIES),
    st.sampled_from(["start", "end"]),
    st.sampled_from(["end", "start"]),
)
def test_every_strategy_returns_a_permutation(scores, strategy, unscored, best_at):
    order = plan_order(scores, strategy, unscored=unscored, best_at=best_at)
    assert sorted(order) == list(range(len(scores)))


@given(scored_lists, st.sampled_from(["recency", "graduated", "sandwich", "long_context"]))
def test_best_document_is_last(scores, strategy):
    order = plan_order(scores, strategy)
    assert scores[order[-1]] == max(scores)


@given(scored_lists)
def test_recency_and_graduated_rise_toward_the_end(scores):
    for strategy in ("recency", "graduated"):
        placed = [scores[i] for i in plan_order(scores, strategy)]
        assert placed == sorted(placed)


@given(st.lists(st.floats(-10, 10, allow_nan=False), min_size=2, max_size=25, unique=True))
def test_sandwich_puts_second_best_first_and_the_rest_ascending(scores):
    placed = [scores[i] for i in plan_order(scores, "sandwich")]
    ranked = sorted(scores, reverse=True)
    assert placed[0] == ranked[1] and placed[-1] == ranked[0]
    assert placed[1:-1] == sorted(placed[1:-1])


@given(
    st.lists(st.floats(-10, 10, allow_nan=False), min_size=1, max_size=25, unique=True),
    st.sampled_from(["end", "start"]),
)
def test_long_context_keeps_the_least_relevant_in_the_middle(scores, best_at):
    placed = [scores[i] for i in plan_order(scores, "long_context", best_at=best_at)]
    best_index = len(placed) - 1 if best_at == "end" else 0
    assert placed[best_index] == max(scores)
    # Relevance falls from both ends toward a single minimum.
    low = placed.index(min(placed))
    assert placed[: low + 1] == sorted(placed[: low + 1], reverse=True)
    assert placed[low:] == sorted(placed[low:])


@given(scored_lists, st.sampled_from(STRATEGIES))
def test_distance_direction_is_the_mirror_of_similarity(scores, strategy):
    assert plan_order(scores, strategy, score_direction="distance") == plan_order(
        [-s for s in scores], strategy, score_direction="similarity"
    )


def test_ties_keep_input_order():
    assert rank([0.5, 0.9, 0.5, 0.9]) == [1, 3, 0, 2]
    assert plan_order([0.5, 0.5, 0.5], "recency") == [2, 1, 0]  # reversed rank: stable ties, mirrored


def test_unscored_documents_form_a_block_in_input_order():
    scores = [None, 0.2, None, 0.9, 0.5]
    assert plan_order(scores, "recency", unscored="start") == [0, 2, 1, 4, 3]
    assert plan_order(scores, "recency", unscored="end") == [1, 4, 3, 0, 2]
    with pytest.raises(ConfigurationError, match=r"no score .*indices \[0, 2\]"):
        plan_order(scores, "recency", unscored="error")


def test_none_strategy_keeps_order_but_still_validates():
    assert plan_order([0.1, None, 0.3], "none") == [0, 1, 2]
    with pytest.raises(ConfigurationError, match="NaN"):
        plan_order([0.1, float("nan")], "none")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"strategy": "middle"}, "strategy='middle'"),
        ({"score_direction": "higher"}, "score_direction='higher'"),
        ({"unscored": "worst"}, "unscored='worst'"),
        ({"best_at": "middle"}, "best_at='middle'"),
    ],
)
def test_bad_settings_name_the_setting_and_the_choices(kwargs, match):
    with pytest.raises(ConfigurationError, match=match):
        Reorderer(**kwargs)


def test_reorder_records_positions_and_never_mutates_the_input():
    docs = [ScoredDocument(f"doc {i}", {"k": i}, score=s, id=str(i)) for i, s in enumerate([0.3, 0.9, 0.1])]
    before = [d.to_dict() for d in docs]
    out = reorder(docs, "recency")
    assert [d.id for d in out] == ["2", "0", "1"]
    assert [d.position for d in out] == [PositionInfo(0, 3), PositionInfo(1, 3), PositionInfo(2, 3)]
    assert [d.position.relative for d in out] == [0.0, 0.5, 1.0]
    assert out[0].metadata["k"] == 2
    assert [d.to_dict() for d in docs] == before
    assert reorder([], "sandwich") == []


def test_position_info_edges():
    assert PositionInfo(0, 1).relative == 1.0  # a lone document is as close to the question as it gets
    with pytest.raises(ConfigurationError):
        PositionInfo(3, 3)
