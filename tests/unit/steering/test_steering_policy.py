"""The steering policy as pure functions: curves, zones, layer maps, tiers, presets, plans."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from posrag.errors import ConfigurationError
from posrag.profiles import BiasProfile
from posrag.steering import (
    BIAS_PRESETS,
    IntensityCurve,
    LayerZone,
    SteeringConfig,
    SteeringTarget,
    bias_preset,
    layer_zone,
    measured_curve,
    plan_steering,
    position_layer_map,
    resolve_curve,
    target_layers,
    zone_layers,
)
from posrag.steering.curves import FLAT_CURVE, LINEAR_CURVE, STEP_CURVE, U_CURVE
from posrag.steering.planning import GHOST_MULTIPLIER

positions = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
depths = st.integers(min_value=1, max_value=96)


# ----------------------------------------------------------------------------- curves


@pytest.mark.parametrize(
    ("p", "expected"),
    [(0.0, 1.5), (0.149, 1.5), (0.15, 1.2), (0.49, 1.2), (0.5, 1.0), (0.749, 1.0), (0.75, 0.7), (1.0, 0.7)],
)
def test_step_curve_is_the_seeds(p: float, expected: float) -> None:
    assert STEP_CURVE(p) == expected
    assert resolve_curve("step")(p) == expected


@given(positions)
def test_linear_curve_is_one_minus_half_p(p: float) -> None:
    assert LINEAR_CURVE(p) == pytest.approx(1.0 - 0.5 * p)


@given(positions)
def test_u_curve_helps_the_middle_most_and_is_symmetric(p: float) -> None:
    assert U_CURVE(p) == pytest.approx(U_CURVE(1.0 - p), abs=1e-9)
    assert U_CURVE(0.0) == pytest.approx(0.7) == pytest.approx(U_CURVE(1.0))
    assert U_CURVE(0.5) == pytest.approx(1.5)
    assert 0.7 - 1e-9 <= U_CURVE(p) <= 1.5 + 1e-9


@given(positions)
def test_flat_curve_is_one(p: float) -> None:
    assert FLAT_CURVE(p) == 1.0


def test_custom_points_interpolate_and_hold_outside() -> None:
    curve = resolve_curve([(0.2, 1.0), (0.6, 2.0)])
    assert curve(0.0) == 1.0
    assert curve(0.4) == pytest.approx(1.5)
    assert curve(0.6) == 2.0
    assert curve(1.0) == 2.0


@pytest.mark.parametrize("points", [[], [(0.5, 1.0), (0.2, 1.0)], [(0.1, -1.0)], [(0.1, 1.0), (0.1, 2.0)]])
def test_invalid_curves_are_rejected(points: list[tuple[float, float]]) -> None:
    with pytest.raises(ConfigurationError):
        IntensityCurve.from_points(points)


def test_unknown_curve_name_says_what_exists() -> None:
    with pytest.raises(ConfigurationError, match="step"):
        resolve_curve("zigzag")  # type: ignore[arg-type]


@pytest.mark.parametrize("p", [-0.01, 1.01, math.nan])
def test_positions_outside_unit_interval_are_rejected(p: float) -> None:
    with pytest.raises(ConfigurationError):
        STEP_CURVE(p)


# ----------------------------------------------------------------------------- zones and layer maps


@pytest.mark.parametrize(
    ("p", "zone"),
    [(0.0, (0.40, 0.55)), (0.199, (0.40, 0.55)), (0.2, (0.55, 0.70)), (0.599, (0.55, 0.70)), (0.6, (0.70, 0.85))],
)
def test_position_zones_are_the_seeds(p: float, zone: tuple[float, float]) -> None:
    assert layer_zone(p) == LayerZone(*zone)


def test_zones_on_the_embedded_model_depth() -> None:
    assert target_layers(0.0, 18) == (7, 8, 9)
    assert target_layers(0.5, 18) == (10, 11)
    assert target_layers(1.0, 18) == (12, 13, 14)
    assert target_layers(0.5, 18, rule_type="EXCEPTION") == (15, 16)


@given(depths, positions)
def test_every_zone_maps_to_valid_layers_at_any_depth(num_layers: int, p: float) -> None:
    for policy in ("zones", "shifted", "all"):
        zone = layer_zone(p, policy)  # type: ignore[arg-type]
        layers = zone_layers(num_layers, zone.start, zone.end)
        assert layers, "a zone must map to at least one layer"
        assert list(layers) == sorted(set(layers))
        assert all(0 <= layer < num_layers for layer in layers)
        if num_layers > 1 and len(layers) > 1:
            depth = [layer / (num_layers - 1) for layer in layers]
            assert zone.start - 1e-9 <= min(depth) and max(depth) <= zone.end + 1e-9


@given(st.integers(min_value=8, max_value=96), positions, positions)
def test_later_documents_are_steered_deeper(num_layers: int, p: float, q: float) -> None:
    lo, hi = sorted((p, q))
    for policy in ("zones", "shifted"):
        assert min(target_layers(lo, num_layers, policy)) <= min(target_layers(hi, num_layers, policy))  # type: ignore[arg-type]


def test_shifted_zone_slides_from_first_to_last_zone() -> None:
    assert layer_zone(0.0, "shifted") == LayerZone(0.40, 0.55)
    assert layer_zone(1.0, "shifted") == LayerZone(0.70, 0.85)
    assert layer_zone(0.5, "shifted") == LayerZone(0.55, 0.70)


def test_shallow_models_get_the_nearest_layer() -> None:
    assert zone_layers(2, 0.40, 0.55) == (0,)
    assert zone_layers(2, 0.70, 0.85) == (1,)
    assert zone_layers(1, 0.70, 0.85) == (0,)


def test_position_layer_map_is_precomputed_and_cached() -> None:
    first = position_layer_map(18)
    assert position_layer_map(18) is first
    assert len(first) == 101
    assert first[0] == target_layers(0.0, 18) and first[100] == target_layers(1.0, 18)


@pytest.mark.parametrize(
    ("rule_type", "zone"),
    [
        ("DEFINITION", (0.40, 0.55)),
        ("regulatory", (0.55, 0.70)),
        ("Procedural", (0.55, 0.75)),
        ("EXCEPTION", (0.85, 0.95)),
        ("DEFAULT", (0.55, 0.70)),
        ("something-else", (0.55, 0.70)),
    ],
)
def test_rule_type_safe_zones_override_position(rule_type: str, zone: tuple[float, float]) -> None:
    assert layer_zone(0.0, rule_type=rule_type) == LayerZone(*zone)
    assert layer_zone(1.0, "shifted", rule_type=rule_type) == LayerZone(*zone)


# ----------------------------------------------------------------------------- tiers and plans


def _target(p: float, score: float | None = None, rule_type: str | None = None) -> SteeringTarget:
    return SteeringTarget(0, 10, p, score=score, rule_type=rule_type)


def test_ghost_tier_under_the_retrieval_threshold() -> None:
    config = SteeringConfig(mechanism="both", curve="flat", retrieval_threshold=0.5, base_intensity=0.2, top_k=None)
    strong, weak, unscored = plan_steering([_target(0.5, 0.9), _target(0.5, 0.1), _target(0.5)], config, 18)
    assert (strong.tier, weak.tier, unscored.tier) == ("full", "ghost", "full")
    assert weak.multiplier == pytest.approx(GHOST_MULTIPLIER)
    assert weak.intensity == pytest.approx(0.2 * GHOST_MULTIPLIER)
    assert weak.attention_bias == pytest.approx(config.resolved_attention_bias * GHOST_MULTIPLIER)
    assert strong.intensity == pytest.approx(0.2)


def test_top_k_steers_only_the_best_scored_documents() -> None:
    targets = [_target(0.0, 0.2), _target(0.5, 0.9), _target(0.75), _target(1.0, 0.6)]
    plans = plan_steering(targets, SteeringConfig(curve="flat"), 18)
    assert [p.tier for p in plans] == ["off", "full", "full", "off"]  # the unscored one is never dropped
    assert [p.active for p in plans] == [False, True, True, False]
    tiers = [p.tier for p in plan_steering(targets, SteeringConfig(curve="flat", top_k=2), 18)]
    assert tiers == ["off", "full", "full", "full"]
    assert {p.tier for p in plan_steering(targets, SteeringConfig(top_k=None), 18)} == {"full"}
    with pytest.raises(ConfigurationError, match="top_k"):
        SteeringConfig(top_k=0)


def test_no_steering_above_cutoff() -> None:
    config = SteeringConfig(mechanism="both", no_steer_above=0.9)
    below, above = plan_steering([_target(0.9), _target(0.95)], config, 18)
    assert below.active and below.layers and below.attention_layers
    assert above.tier == "off" and not above.active
    assert above.intensity == 0.0 and above.attention_bias == 0.0
    assert above.layers == () and above.attention_layers == ()


def test_plan_uses_curve_and_layer_policy() -> None:
    config = SteeringConfig(mechanism="activation", curve="step", base_intensity=0.1, top_k=None)
    first, last = plan_steering([_target(0.0, 0.5), _target(1.0, 0.9)], config, 18)
    assert first.intensity == pytest.approx(0.15) and last.intensity == pytest.approx(0.07)
    assert first.layers == (7, 8, 9) and last.layers == (12, 13, 14)
    assert first.attention_layers == () and first.attention_bias == 0.0


@pytest.mark.parametrize(("attention_layers", "expected"), [("all", tuple(range(18))), ("planned", (7, 8, 9))])
def test_attention_layers_setting(attention_layers: str, expected: tuple[int, ...]) -> None:
    config = SteeringConfig(mechanism="attention", attention_layers=attention_layers, curve="flat")  # type: ignore[arg-type]
    (plan,) = plan_steering([_target(0.0)], config, 18)
    assert plan.attention_layers == expected
    assert plan.layers == () and plan.intensity == 0.0
    assert plan.attention_bias == config.resolved_attention_bias


def test_rule_type_changes_layers_in_the_plan() -> None:
    config = SteeringConfig(mechanism="activation")
    (plan,) = plan_steering([_target(0.0, rule_type="EXCEPTION")], config, 18)
    assert plan.layers == (15, 16)


def test_plan_to_dict_is_json() -> None:
    (plan,) = plan_steering([_target(0.3, 0.7)], SteeringConfig(mechanism="both"), 18)
    json.dumps(plan.to_dict())
    json.dumps(SteeringConfig().to_dict())


# ----------------------------------------------------------------------------- position bias


@pytest.mark.parametrize(
    ("bias", "curve", "strategy"),
    [("recency", STEP_CURVE, "recency"), ("u_curve", U_CURVE, "long_context"), ("flat", FLAT_CURVE, "none")],
)
def test_position_bias_presets(bias: str, curve: IntensityCurve, strategy: str) -> None:
    config = SteeringConfig(position_bias=bias)  # type: ignore[arg-type]
    assert config.resolved_curve == curve
    assert config.reorder_strategy == strategy == BIAS_PRESETS[bias].reorder_strategy


def test_explicit_curve_wins_over_the_preset() -> None:
    assert SteeringConfig(position_bias="u_curve", curve="linear").resolved_curve == LINEAR_CURVE


def test_measured_u_profile_steers_the_middle_hardest() -> None:
    profile = BiasProfile((0.0, 0.25, 0.5, 0.75, 1.0), (1.0, 0.6, 0.3, 0.5, 1.0))
    curve = measured_curve(profile)
    assert curve(0.5) == pytest.approx(1.5) and curve(0.0) == pytest.approx(0.7)
    assert curve(0.5) > curve(0.25) > curve(0.0)
    assert profile.shape() == "u_curve"
    assert profile.reorder_strategy() == "long_context"


def test_measured_recency_and_flat_profiles() -> None:
    recency = BiasProfile((0.0, 0.5, 1.0), (0.3, 0.5, 0.9))
    assert recency.reorder_strategy() == "recency"
    assert measured_curve(recency)(0.0) > measured_curve(recency)(1.0)
    flat = BiasProfile((0.0, 1.0), (0.8, 0.82))
    assert flat.reorder_strategy() == "none" and measured_curve(flat) == FLAT_CURVE


def test_profile_from_json_file_and_positions(tmp_path) -> None:
    path = tmp_path / "profile.json"
    path.write_text(json.dumps({"positions": [1, 10, 20], "total": 20, "accuracy": [1.0, 0.3, 1.0]}))
    preset = bias_preset(str(path))
    assert preset.name == "measured" and preset.reorder_strategy == "long_context"
    config = SteeringConfig(position_bias=path)
    assert config.resolved_curve(0.5) > config.resolved_curve(0.0)


def test_one_profile_type_for_steering_and_the_benchmark() -> None:
    measured = BiasProfile.measured("gemma3-270m", (1, 10, 19), 19, (1.0, 0.3, 0.95))
    preset = bias_preset(measured)
    assert preset.name == "measured" and preset.reorder_strategy == "long_context"
    assert preset == bias_preset(measured.to_dict())


@pytest.mark.parametrize("bias", ["primacy", {"accuracy": [1.0]}, 3])
def test_bad_position_bias_is_rejected(bias: object) -> None:
    with pytest.raises(ConfigurationError):
        SteeringConfig(position_bias=bias)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"mechanism": "telepathy"},
        {"layer_policy": "random"},
        {"vector_source": "tfidf"},
        {"base_intensity": -1.0},
        {"attention_bias": math.inf},
        {"no_steer_above": 1.5},
    ],
)
def test_config_validation(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        SteeringConfig(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(("start", "end", "p"), [(5, 5, 0.5), (-1, 3, 0.5), (0, 3, 1.2)])
def test_target_validation(start: int, end: int, p: float) -> None:
    with pytest.raises(ConfigurationError):
        SteeringTarget(start, end, p)


def test_a_steering_config_written_to_json_is_read_back_with_its_curve():
    import json

    from posrag.steering import SteeringConfig
    from posrag.steering.curves import IntensityCurve, resolve_curve

    step = IntensityCurve("step", ((0.5, 1.0), (1.0, 0.3)), "calibrated")
    config = SteeringConfig(mechanism="attention", attention_bias=5.0, curve=step)
    written = json.loads(json.dumps(config.to_dict()))["curve"]  # as a result's steering_configs hold it
    again = SteeringConfig(mechanism="attention", attention_bias=5.0, curve=written)
    curve = resolve_curve(again.curve)
    assert curve == step and curve(1.0) == 0.3 and curve(0.4) == 1.0
    with pytest.raises(ConfigurationError, match="'points' and optionally 'kind' and 'name'"):
        resolve_curve({"kind": "step"})
