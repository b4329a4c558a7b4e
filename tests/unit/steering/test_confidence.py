"""The confidence rule: bounded, monotone in the margin, agreement >= disagreement, ties get the minimum."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from posrag.errors import ConfigurationError
from posrag.steering.confidence import (
    DEFAULT_CONFIDENCE,
    ConfidenceRule,
    agrees,
    confidence_multiplier,
    normalized_margin,
)

finite = st.floats(min_value=-1e3, max_value=1e3, allow_nan=False, allow_infinity=False)
score_lists = st.lists(finite, min_size=1, max_size=25)
rules = st.builds(
    ConfidenceRule,
    low=st.floats(0, 2),
    high=st.floats(2.01, 5),
    floor=st.floats(0, 1),
    disagreement=st.floats(0, 1),
    k=st.integers(1, 3),
)


def test_clear_winner_gets_full_strength_and_a_tie_gets_the_floor() -> None:
    assert confidence_multiplier([0.9, 0.1, 0.1, 0.1, 0.1]) == 1.0
    assert confidence_multiplier([0.5, 0.5, 0.1, 0.0]) == 0.0
    assert ConfidenceRule(floor=0.2).assess([0.5, 0.5, 0.1]).multiplier == pytest.approx(0.2)


def test_margin_is_in_units_of_the_spread_so_scale_and_shift_do_not_matter() -> None:
    scores = [0.71, 0.64, 0.60, 0.31, 0.2]
    rescaled = [1000 * s - 7 for s in scores]
    assert normalized_margin(scores) == pytest.approx(normalized_margin(rescaled))
    assert confidence_multiplier(scores) == pytest.approx(confidence_multiplier(rescaled))
    # The exact definition: gap / population standard deviation.
    mean = sum(scores) / len(scores)
    std = math.sqrt(sum((s - mean) ** 2 for s in scores) / len(scores))
    assert normalized_margin(scores) == pytest.approx((0.71 - 0.64) / std)


def test_k_measures_the_gap_below_the_steered_set() -> None:
    scores = [0.9, 0.88, 0.1, 0.1]
    assert normalized_margin(scores, k=1) < 0.1
    assert normalized_margin(scores, k=2) > 1.5
    assert ConfidenceRule(k=2).assess(scores).top == (0, 1)
    assert normalized_margin([0.3, 0.1], k=2) == math.inf


def test_scale_replaces_the_spread() -> None:
    assert normalized_margin([0.8, 0.7], scale=0.1) == pytest.approx(1.0)
    assert normalized_margin([0.8, 0.7]) == pytest.approx(2.0)  # two documents: always 2 spreads


def test_a_disagreeing_second_ranking_lowers_the_multiplier() -> None:
    scores = [0.9, 0.1, 0.1, 0.1]
    agreed = DEFAULT_CONFIDENCE.assess(scores, second=[5.0, 1.0, 0.0, 2.0])
    disputed = DEFAULT_CONFIDENCE.assess(scores, second=[1.0, 5.0, 0.0, 2.0])
    assert agreed.agreement is True and agreed.multiplier == 1.0
    assert disputed.agreement is False and disputed.multiplier == pytest.approx(0.5)
    assert agrees([0.9, 0.2], [1.0, 1.0])  # a tie is no evidence against


def test_a_single_document_is_steered_fully() -> None:
    assert confidence_multiplier([0.3]) == 1.0


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [
        ({"low": 2.0, "high": 1.0}, "low < high"),
        ({"floor": 1.5}, "floor"),
        ({"disagreement": -0.1}, "disagreement"),
        ({"k": 0}, "k=0"),
        ({"scale": 0.0}, "scale"),
    ],
)
def test_bad_rules_are_rejected_with_the_field(kwargs: dict, word: str) -> None:
    with pytest.raises(ConfigurationError, match=word):
        ConfidenceRule(**kwargs)


def test_bad_scores_are_rejected() -> None:
    with pytest.raises(ConfigurationError, match="empty"):
        confidence_multiplier([])
    with pytest.raises(ConfigurationError, match="finite"):
        confidence_multiplier([0.1, float("nan")])
    with pytest.raises(ConfigurationError, match="same documents"):
        confidence_multiplier([0.1, 0.2], second=[0.3])


@given(score_lists, score_lists, rules)
def test_bounded(scores: list[float], second: list[float], rule: ConfidenceRule) -> None:
    confidence = rule.assess(scores, second=(second * len(scores))[: len(scores)])
    assert rule.floor - 1e-12 <= confidence.multiplier <= 1.0
    assert 0.0 <= confidence.multiplier <= 1.0


@given(rules, st.floats(0, 10), st.floats(0, 10), st.one_of(st.none(), st.booleans()))
def test_monotone_in_margin(rule: ConfidenceRule, a: float, b: float, agreement: bool | None) -> None:
    lo, hi = sorted((a, b))
    assert rule.multiplier(lo, agreement) <= rule.multiplier(hi, agreement) + 1e-12


@given(rules, st.floats(0, 10))
def test_agreement_never_below_disagreement(rule: ConfidenceRule, margin: float) -> None:
    assert rule.multiplier(margin, True) >= rule.multiplier(margin, False)
    assert rule.multiplier(margin, None) == rule.multiplier(margin, True)


@given(st.lists(finite, min_size=0, max_size=20), finite, rules)
def test_a_tie_at_the_cut_gets_the_minimum(rest: list[float], top: float, rule: ConfidenceRule) -> None:
    others = [min(v, top) for v in rest]
    scores = [top] * (rule.k + 1) + others  # the k-th and (k+1)-th best are tied
    assert rule.assess(scores).multiplier == pytest.approx(rule.floor)
    assert rule.assess(scores, second=scores).multiplier == pytest.approx(rule.floor)


@given(st.lists(finite, min_size=3, max_size=20, unique=True), st.floats(1.01, 10))
def test_a_larger_lead_is_never_less_sure(scores: list[float], factor: float) -> None:
    """Pulling the best document further ahead (others unchanged) never lowers the multiplier."""
    best = max(range(len(scores)), key=lambda i: scores[i])
    second = sorted(scores)[-2]
    spread = max(scores) - min(scores)
    ahead = list(scores)
    ahead[best] = second + (scores[best] - second) * factor + spread
    assert confidence_multiplier(ahead) >= confidence_multiplier(scores) - 1e-12
