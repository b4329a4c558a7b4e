"""Wilson score intervals."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from posrag.bench.stats import mean, wilson_interval
from posrag.errors import ConfigurationError


@pytest.mark.parametrize(
    ("successes", "n", "expected"),
    [
        # Textbook values (e.g. Newcombe 1998; statsmodels' proportion_confint(method="wilson")).
        (5, 10, (0.2365931, 0.7634069)),
        (0, 10, (0.0, 0.2775328)),
        (10, 10, (0.7224672, 1.0)),
    ],
)
def test_wilson_matches_reference_values(successes, n, expected):
    low, high = wilson_interval(successes, n)
    assert low == pytest.approx(expected[0], abs=1e-6)
    assert high == pytest.approx(expected[1], abs=1e-6)


@given(n=st.integers(1, 500), data=st.data())
def test_wilson_bounds_solve_the_score_equation(n, data):
    """The bounds are the p where |k/n - p| = z * sqrt(p (1 - p) / n): the roots of a quadratic in p."""
    k = data.draw(st.integers(1, n - 1)) if n > 1 else 0
    z = 1.959963984540054
    phat = k / n
    a, b, c = 1 + z * z / n, -(2 * phat + z * z / n), phat * phat
    disc = math.sqrt(b * b - 4 * a * c)
    low, high = wilson_interval(k, n)
    assert low == pytest.approx((-b - disc) / (2 * a), abs=1e-12)
    assert high == pytest.approx((-b + disc) / (2 * a), abs=1e-12)


@given(n=st.integers(1, 2000), data=st.data())
def test_wilson_contains_the_estimate_and_stays_in_bounds(n, data):
    k = data.draw(st.integers(0, n))
    low, high = wilson_interval(k, n)
    assert 0.0 <= low <= k / n <= high <= 1.0


def test_wilson_narrows_with_more_trials_and_widens_with_confidence():
    def width(k: int, n: int) -> float:
        low, high = wilson_interval(k, n)
        return high - low

    assert width(50, 100) < width(5, 10)
    wide = wilson_interval(5, 10, 0.99)
    narrow = wilson_interval(5, 10, 0.90)
    assert wide[0] < narrow[0] and wide[1] > narrow[1]


def test_wilson_rejects_impossible_counts():
    with pytest.raises(ConfigurationError, match="n >= 1"):
        wilson_interval(0, 0)
    with pytest.raises(ConfigurationError, match="successes"):
        wilson_interval(3, 2)
    with pytest.raises(ConfigurationError, match="confidence"):
        wilson_interval(1, 2, 1.0)


def test_mean_of_nothing_is_nan():
    assert mean([]) != mean([])
    assert mean([1.0, 2.0]) == 1.5
