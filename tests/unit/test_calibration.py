"""Calibrated steering settings: bands, the profile's steering section, and SteeringConfig's resolution."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from posrag.calibration import BANDS, UNCALIBRATED, SteeringCalibration, band_of, probe_positions
from posrag.errors import ConfigurationError
from posrag.profiles import BiasProfile, model_profile, save_profile
from posrag.steering import SteeringConfig, SteeringTarget, plan_steering, resolve_steering
from posrag.steering.config import band_curve

CALIBRATED = SteeringCalibration(
    band_bias={"first": 0.0, "early": 4.0, "middle": 8.0, "late": 2.0, "last": 0.0},
    attention_layers=(3, 4, 5),
    num_layers=6,
)


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("POSRAG_CACHE_DIR", str(tmp_path))
    return tmp_path


def _profile(model: str, steering: SteeringCalibration | None = CALIBRATED) -> BiasProfile:
    measured = BiasProfile.measured(model, [1, 5, 10, 15, 20], 20, [0.9, 0.2, 0.2, 0.3, 0.6], questions=12)
    return BiasProfile(**{**measured.__dict__, "steering": steering})


@pytest.mark.parametrize("num_docs", [5, 10, 20, 40])
def test_first_and_last_documents_are_bands_of_their_own_at_any_count(num_docs: int) -> None:
    relative = [i / (num_docs - 1) for i in range(num_docs)]
    bands = [band_of(p) for p in relative]
    assert bands[0] == "first" and bands[-1] == "last"
    assert set(bands[1:-1]) <= {"early", "middle", "late"}
    probes = probe_positions(num_docs)
    assert [band_of((p - 1) / (num_docs - 1)) for p in probes] == list(BANDS)


def test_probe_positions_of_twenty_documents_are_the_benchmarks() -> None:
    assert probe_positions(20) == (1, 5, 10, 15, 20)
    with pytest.raises(ConfigurationError, match=">= 5 documents"):
        probe_positions(4)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"band_bias": {"first": 1.0}}, "needs exactly the bands"),
        (
            {"band_bias": {**CALIBRATED.band_bias, "middle": -1.0}},
            r"band_bias\['middle'\]=-1.0 must be a number in \[0, 100\]",
        ),
        ({"band_bias": {**CALIBRATED.band_bias, "late": float("nan")}}, r"band_bias\['late'\]=nan must be a number in"),
        ({"band_bias": CALIBRATED.band_bias, "attention_layers": ()}, "non-empty list of layer indices"),
        ({"band_bias": CALIBRATED.band_bias, "attention_layers": (1, -2)}, "non-empty list of layer indices"),
    ],
)
def test_bad_calibrations_name_the_problem(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        SteeringCalibration(**kwargs)


def test_band_curve_gives_each_band_its_bias() -> None:
    curve = band_curve(CALIBRATED)
    for num_docs in (5, 10, 20):
        for i in range(num_docs):
            p = i / (num_docs - 1)
            assert curve(p) * CALIBRATED.attention_bias == pytest.approx(CALIBRATED.band_bias[band_of(p)])


def test_the_steering_section_round_trips_through_the_profile_file(cache: Path) -> None:
    path = save_profile(_profile("round-trip"))
    loaded = model_profile("round-trip")
    assert path.parent == cache / "profiles"
    assert loaded.steering == CALIBRATED
    assert model_profile("round-trip").to_dict()["steering"]["band_bias"] == dict(CALIBRATED.band_bias)


def test_unset_settings_follow_the_models_calibration(cache: Path) -> None:
    save_profile(_profile("calibrated-model"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a calibrated model warns about nothing
        config = resolve_steering(SteeringConfig(), "calibrated-model")
    assert not config.needs_calibration
    assert config.attention_bias == 8.0 and config.attention_layers == (3, 4, 5)
    assert [config.resolved_curve(p) * 8.0 for p in (0.0, 0.2, 0.5, 0.8, 1.0)] == [0.0, 4.0, 8.0, 2.0, 0.0]
    assert isinstance(config.position_bias, BiasProfile)  # the measured curve picks the reorder strategy
    plans = plan_steering([SteeringTarget(0, 5, 0.5, score=1.0)], config, 6)
    assert plans[0].attention_bias == 8.0 and plans[0].attention_layers == (3, 4, 5)


def test_settings_you_give_are_never_changed(cache: Path) -> None:
    save_profile(_profile("calibrated-model-2"))
    config = resolve_steering(
        SteeringConfig(attention_bias=1.5, attention_layers="all", position_bias="u_curve"), "calibrated-model-2"
    )
    assert config.attention_bias == 1.5 and config.attention_layers == "all"
    assert config.resolved_curve.name == "u_curve"
    curve_only = resolve_steering(SteeringConfig(curve="flat"), "calibrated-model-2")
    assert curve_only.resolved_curve.name == "flat" and curve_only.attention_bias == 8.0


def test_a_model_without_calibration_gets_the_preset_and_one_warning(cache: Path) -> None:
    save_profile(_profile("curve-only-model", steering=None))  # `posrag profile` measures no steering
    with pytest.warns(UserWarning, match=r"posrag calibrate --model curve-only-model"):
        config = resolve_steering(SteeringConfig(), "curve-only-model")
    assert config.attention_bias == UNCALIBRATED.attention_bias and config.attention_layers == "all"
    assert config.resolved_curve(1.0) * config.attention_bias == UNCALIBRATED.band_bias["last"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        resolve_steering(SteeringConfig(), "curve-only-model")  # once per model


def test_an_unresolved_config_plans_like_the_uncalibrated_preset() -> None:
    config = SteeringConfig()
    assert config.needs_calibration
    (first, last) = plan_steering([SteeringTarget(0, 5, 0.0, score=1.0), SteeringTarget(6, 9, 1.0)], config, 4)
    assert first.attention_bias == UNCALIBRATED.band_bias["first"]
    assert last.attention_bias == UNCALIBRATED.band_bias["last"]


def test_calibrated_layers_must_exist_in_the_model() -> None:
    config = SteeringConfig(attention_layers=(2, 9), attention_bias=2.0, curve="flat")
    with pytest.raises(ConfigurationError, match=r"names layer 9, but the model has 6 decoder layers"):
        plan_steering([SteeringTarget(0, 5, 0.5)], config, 6)
    with pytest.raises(ConfigurationError, match="attention_layers"):
        SteeringConfig(attention_layers=[])


def test_the_shipped_gemma_profile_carries_a_calibration() -> None:
    from posrag.profiles import shipped_profile_path

    path = shipped_profile_path("gemma3-270m")
    assert path is not None
    steering = BiasProfile.load(path).steering
    assert steering is not None and set(steering.band_bias) == set(BANDS)
