"""SteeringConfig and IntensityCurve check every field at construction (issue 9, item 7).

Any input either builds a usable configuration or raises ConfigurationError naming the field, the value and
what is allowed; never a raw TypeError now, nor a config that fails (or steers with inf) later.
"""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from posrag.calibration import MAX_ATTENTION_BIAS
from posrag.errors import ConfigurationError
from posrag.steering import IntensityCurve, SteeringConfig, SteeringTarget, plan_steering
from posrag.steering.config import MAX_BASE_INTENSITY
from posrag.steering.curves import MAX_MULTIPLIER


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"base_intensity": "0.1"}, r"base_intensity='0.1' must be a number in \[0, 10\], not str"),
        ({"top_k": "2"}, r"top_k='2' must be an integer >= 1, not str"),
        ({"top_k": 1.5}, r"top_k=1.5 must be an integer >= 1, not float"),
        ({"top_k": True}, r"top_k=True must be an integer >= 1, not bool"),
        ({"retrieval_threshold": "high"}, r"retrieval_threshold='high' must be a finite number, not str"),
        ({"retrieval_threshold": math.nan}, r"retrieval_threshold=nan must be a finite number"),
        ({"attention_bias": 1e308}, r"attention_bias=1e\+308 must be a number in \[0, 100\]"),
        ({"base_intensity": math.inf}, r"base_intensity=inf must be a number in \[0, 10\]"),
        ({"no_steer_above": "1"}, r"no_steer_above='1' must be a number in \[0, 1\]"),
        ({"center": "no"}, r"center='no' must be True or False"),
        ({"mechanism": ["attention"]}, r"mechanism=\['attention'\] is not one of"),
        ({"curve": [(0.0, 1e308)]}, r"multiplier=1e\+308 must be a number in \[0, 100\]"),
        ({"curve": [(0.5, "2")]}, r"multiplier='2' must be a number in \[0, 100\], not str"),
        ({"curve": 5}, r"curve=5 is not a curve"),
    ],
)
def test_bad_fields_name_the_field_the_value_and_the_range(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        SteeringConfig(**kwargs)  # type: ignore[arg-type]


def test_a_huge_curve_no_longer_steers_with_inf() -> None:
    with pytest.raises(ConfigurationError, match="IntensityCurve multiplier"):
        IntensityCurve.from_points([(0.0, 1e308), (1.0, 1e308)])
    config = SteeringConfig(curve=[(0.0, MAX_MULTIPLIER)], attention_bias=MAX_ATTENTION_BIAS, mechanism="both")
    (plan,) = plan_steering([SteeringTarget(0, 5, 0.5)], config, 4)
    assert plan.attention_bias == MAX_ATTENTION_BIAS * MAX_MULTIPLIER


def test_numbers_are_stored_as_checked() -> None:
    import numpy as np

    config = SteeringConfig(base_intensity=1, top_k=np.int64(2), retrieval_threshold=np.float32(0.5))
    assert (type(config.base_intensity), type(config.top_k), type(config.retrieval_threshold)) == (float, int, float)
    json.dumps(config.to_dict())


anything = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.binary(max_size=4),
    st.lists(st.one_of(st.floats(), st.text(max_size=3), st.integers()), max_size=3),
    st.tuples(st.floats(), st.floats()),
    st.dictionaries(st.text(max_size=8), st.one_of(st.floats(), st.lists(st.floats(), max_size=3)), max_size=3),
)
points = st.lists(
    st.tuples(st.one_of(st.floats(0, 1), anything), st.one_of(st.floats(0, MAX_MULTIPLIER), anything)), max_size=4
)
profiles = st.fixed_dictionaries(
    {"relative_positions": st.just([0.0, 0.5, 1.0]), "accuracy": st.lists(st.floats(0, 1), min_size=3, max_size=3)},
    optional={"tolerance": st.one_of(st.floats(0, 0.5), anything), "model": anything, "classification": anything},
)
VALID = {
    "mechanism": st.sampled_from(["activation", "attention", "both"]),
    "base_intensity": st.floats(0, MAX_BASE_INTENSITY),
    "curve": st.one_of(st.none(), st.sampled_from(["step", "linear", "u_curve", "flat", "zigzag"]), points),
    "layer_policy": st.sampled_from(["zones", "shifted", "all"]),
    "retrieval_threshold": st.one_of(st.none(), st.floats(-1, 1)),
    "top_k": st.one_of(st.none(), st.integers(0, 5)),
    "no_steer_above": st.one_of(st.none(), st.floats(0, 1)),
    "position_bias": st.one_of(st.sampled_from(["recency", "u_curve", "flat", "auto", "primacy"]), profiles),
    "attention_bias": st.floats(0, MAX_ATTENTION_BIAS),
    "attention_layers": st.sampled_from(["all", "planned"]),
    "vector_source": st.sampled_from(["hidden_mean", "embedding"]),
    "center": st.booleans(),
}
configs = st.fixed_dictionaries({}, optional={name: st.one_of(valid, anything) for name, valid in VALID.items()})


@settings(max_examples=300, deadline=None)
@given(configs)
@example({"position_bias": {"relative_positions": [0.0, 0.5, 1.0], "accuracy": [0.0, 0.0, 0.0], "model": b""}})
def test_any_input_builds_a_usable_config_or_raises_configuration_error(kwargs: dict[str, object]) -> None:
    try:
        config = SteeringConfig(**kwargs)  # type: ignore[arg-type]
    except ConfigurationError:
        return
    json.dumps(config.to_dict())
    if config.needs_profile:
        return
    targets = [SteeringTarget(0, 4, 0.0, score=0.9), SteeringTarget(5, 9, 0.5, score=0.1), SteeringTarget(10, 12, 1.0)]
    for plan in plan_steering(targets, config, 6):
        assert 0.0 <= plan.multiplier <= MAX_MULTIPLIER
        assert 0.0 <= plan.intensity <= MAX_BASE_INTENSITY * MAX_MULTIPLIER
        assert 0.0 <= plan.attention_bias <= MAX_ATTENTION_BIAS * MAX_MULTIPLIER
        assert all(0 <= layer < 6 for layer in (*plan.layers, *plan.attention_layers))


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(st.sampled_from(["step", "linear"]), anything),
    st.one_of(points, anything),
    st.one_of(st.text(), anything),
)
def test_any_curve_input_builds_a_bounded_curve_or_raises_configuration_error(kind, pts, name) -> None:
    try:
        curve = IntensityCurve(kind, pts, name)
    except ConfigurationError:
        return
    for p in (0.0, 0.3, 0.5, 1.0):
        assert 0.0 <= curve(p) <= MAX_MULTIPLIER
    json.dumps(curve.to_dict())
