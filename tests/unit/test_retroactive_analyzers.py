"""Gap selection: the seed's token analyzer and entropy-driven gaps (pure functions, property-tested)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from posrag.errors import ConfigurationError
from posrag.retroactive.analyzers import (
    LARGE_GAPS,
    MEDIUM_GAPS,
    SMALL_GAPS,
    classify_token,
    default_token_analyzer,
    gaps_from_entropy,
    normalized_entropy,
)


@pytest.mark.parametrize(
    ("token", "gaps"),
    [
        (".", LARGE_GAPS),
        (" ,", LARGE_GAPS),
        ("\n", LARGE_GAPS),
        ("?!", LARGE_GAPS),
        (" a", SMALL_GAPS),
        ("ing", SMALL_GAPS),
        (" there", MEDIUM_GAPS),
        (" Everest", MEDIUM_GAPS),
    ],
)
def test_default_analyzer_follows_the_seed(token, gaps):
    assert default_token_analyzer(token) == gaps


def test_seed_gap_sizes_are_ordered():
    assert max(SMALL_GAPS) <= max(MEDIUM_GAPS) <= max(LARGE_GAPS)


@given(st.text(max_size=12))
def test_every_token_gets_a_kind_and_positive_gaps(token):
    assert classify_token(token) in {"boundary", "short", "long"}
    assert all(g > 0 for g in default_token_analyzer(token))


VOCAB = st.integers(min_value=2, max_value=300_000)


@given(
    st.floats(min_value=0, max_value=20),
    st.floats(min_value=0, max_value=20),
    VOCAB,
    st.integers(min_value=1, max_value=16),
    st.integers(min_value=1, max_value=8),
    st.integers(min_value=0, max_value=500),
)
def test_higher_entropy_never_gives_smaller_gaps(h1, h2, vocab, num_gaps, min_gap, spread):
    low, high = sorted((h1, h2))
    max_gap = min_gap + spread
    a = gaps_from_entropy(low, vocab, num_gaps=num_gaps, min_gap=min_gap, max_gap=max_gap)
    b = gaps_from_entropy(high, vocab, num_gaps=num_gaps, min_gap=min_gap, max_gap=max_gap)
    for gaps in (a, b):
        assert list(gaps) == sorted(set(gaps)) and 1 <= len(gaps) <= num_gaps
        assert min_gap <= gaps[0] and gaps[-1] <= max_gap
    assert max(a) <= max(b)


def test_gap_extremes():
    assert gaps_from_entropy(0.0, 1000, num_gaps=4, min_gap=2, max_gap=64) == (2,)
    full = gaps_from_entropy(math.log(1000), 1000, num_gaps=4, min_gap=2, max_gap=64)
    assert full[0] == 2 and full[-1] == 64 and len(full) == 4


def test_normalized_entropy_and_errors():
    assert normalized_entropy(math.log(50), 100) == pytest.approx(math.log(50) / math.log(100))
    assert normalized_entropy(99.0, 100) == 1.0
    with pytest.raises(ConfigurationError, match="finite"):
        normalized_entropy(float("inf"), 100)
    with pytest.raises(ConfigurationError, match="min_gap"):
        gaps_from_entropy(1.0, 100, min_gap=5, max_gap=2)
    with pytest.raises(ConfigurationError, match="num_gaps"):
        gaps_from_entropy(1.0, 100, num_gaps=0)
