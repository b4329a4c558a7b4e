"""Position-bias profiles: the classification rule, persistence, and position_bias resolution."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from posrag.bench.profile import (
    BiasProfile,
    classify_bias,
    load_profile,
    model_slug,
    profile_bias,
    profile_path,
    resolve_position_bias,
    save_profile,
)
from posrag.errors import ConfigurationError

POSITIONS = (1, 5, 10, 15, 20)
RELATIVE = [(p - 1) / 19 for p in POSITIONS]


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("POSRAG_CACHE_DIR", str(tmp_path))
    return tmp_path


@pytest.mark.parametrize(
    ("accuracy", "expected"),
    [
        ((1.0, 0.6, 0.4, 0.6, 1.0), "u_curve"),  # the paper's shape
        ((0.9, 0.5, 0.3, 0.5, 0.7), "u_curve"),
        ((0.2, 0.3, 0.4, 0.7, 1.0), "recency"),  # rises toward the end
        ((0.5, 0.4, 0.45, 0.6, 1.0), "recency"),  # the start barely beats the middle: not a U
        ((0.80, 0.85, 0.78, 0.82, 0.86), "flat"),  # within the tolerance
        ((1.0, 0.8, 0.6, 0.4, 0.2), "primacy"),
    ],
)
def test_classification_rule(accuracy, expected):
    assert classify_bias(RELATIVE, accuracy) == expected


def test_tolerance_decides_flat():
    curve = (0.8, 0.75, 0.7, 0.75, 0.85)
    assert classify_bias(RELATIVE, curve, tolerance=0.2) == "flat"
    assert classify_bias(RELATIVE, curve, tolerance=0.01) != "flat"


@given(st.lists(st.floats(0, 1), min_size=5, max_size=5), st.floats(0, 0.5))
def test_classification_is_total_and_consistent(accuracy, tolerance):
    shape = classify_bias(RELATIVE, accuracy, tolerance)
    assert shape in ("recency", "u_curve", "flat", "primacy")
    assert (shape == "flat") == (max(accuracy) - min(accuracy) <= tolerance + 1e-12)
    assert classify_bias(RELATIVE, [min(1.0, a) for a in accuracy], tolerance) == shape


def test_classification_rejects_bad_curves():
    with pytest.raises(ConfigurationError):
        classify_bias([0.0], [1.0])
    with pytest.raises(ConfigurationError):
        classify_bias([0.0, 1.0], [0.5, 1.5])


def test_profile_round_trips_and_recommends_a_strategy(cache):
    profile = BiasProfile.measured("gemma3-270m", POSITIONS, 20, (1.0, 0.6, 0.4, 0.6, 1.0), questions=20)
    assert profile.classification == "u_curve" and profile.recommended_strategy == "long_context"
    path = save_profile(profile)
    assert path == cache / "profiles" / "gemma3-270m.json"
    assert load_profile("gemma3-270m") == profile
    assert BiasProfile.from_dict(json.loads(path.read_text())) == profile
    recency = BiasProfile.measured("m", POSITIONS, 20, (0.2, 0.3, 0.4, 0.7, 1.0))
    flat = BiasProfile.measured("m", POSITIONS, 20, (0.8,) * 5)
    assert (recency.recommended_strategy, flat.recommended_strategy) == ("recency", "none")


def test_saved_profiles_are_steering_position_bias_files(cache):
    from posrag.profiles import BiasProfile
    from posrag.steering import SteeringConfig

    profile = BiasProfile.measured("m", POSITIONS, 20, (1.0, 0.6, 0.4, 0.6, 1.0))
    path = save_profile(profile)
    steering_profile = BiasProfile.load(path)
    assert steering_profile.relative_positions == pytest.approx(RELATIVE)
    assert steering_profile == profile.to_steering_profile()
    config = SteeringConfig(position_bias=str(path))
    assert config.resolved_curve(0.5) > config.resolved_curve(0.0)  # steer the middle harder than the start


def test_resolve_position_bias(cache):
    assert resolve_position_bias("recency", "m") == "recency"
    with pytest.raises(ConfigurationError, match="posrag profile --model m"):
        resolve_position_bias("auto", "m")
    profile = BiasProfile.measured("m", POSITIONS, 20, (0.2, 0.3, 0.4, 0.7, 1.0))
    path = save_profile(profile)
    assert resolve_position_bias("auto", "m") == profile
    assert resolve_position_bias(profile) is profile
    assert resolve_position_bias(str(path)) == profile
    assert resolve_position_bias(profile.to_dict()) == profile
    with pytest.raises(ConfigurationError, match="model name"):
        resolve_position_bias("auto")
    with pytest.raises(ConfigurationError, match="must be 'auto'"):
        resolve_position_bias("sideways", "m")


def test_model_slugs_are_file_names():
    assert model_slug("gemma3-270m") == "gemma3-270m"
    slug = model_slug("/models/My Model/v1")
    assert "/" not in slug and " " not in slug and slug != model_slug("/models/My Model/v2")
    assert profile_path("x", "/tmp/p.json").name == "p.json"


def test_bad_profiles_are_actionable(tmp_path):
    with pytest.raises(ConfigurationError, match="posrag profile"):
        BiasProfile.from_dict({"accuracy": [1.0]})
    bad = tmp_path / "p.json"
    bad.write_text("{")
    with pytest.raises(ConfigurationError, match="Cannot read"):
        BiasProfile.load(bad)
    with pytest.raises(ConfigurationError, match="classification"):
        BiasProfile.from_dict({"positions": [1, 2], "total": 2, "accuracy": [1.0, 1.0], "classification": "recency"})
    with pytest.raises(ConfigurationError, match="do not match"):
        BiasProfile((0.0, 0.5), (1.0, 1.0), positions=(1, 2), num_docs=2)


def test_profile_bias_probes_a_model(cache):
    from posrag.testing import tiny_model

    tiny = tiny_model("llama")
    profile = profile_bias(
        tiny.model,
        tiny.tokenizer,
        model_name="tiny",
        questions=2,
        positions=(1, 3),
        num_docs=3,
        progress=False,
    )
    assert profile.model == "tiny" and profile.positions == (1, 3) and profile.questions == 2
    assert all(0 <= a <= 1 for a in profile.accuracy) and len(profile.ci95) == 2
