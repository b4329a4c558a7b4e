"""posrag.profiles: one profile type, its storage and resolution, in the core below steering and the benchmark."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import posrag
from posrag.errors import ConfigurationError
from posrag.profiles import (
    BiasProfile,
    model_identity,
    model_profile,
    resolve,
    save_profile,
    shipped_profile_path,
)

PACKAGE = Path(posrag.__file__).parent


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("POSRAG_CACHE_DIR", str(tmp_path))
    return tmp_path


def _imports(path: Path) -> set[str]:
    """Every module a file imports, at module level or inside a function."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_the_core_never_imports_the_benchmark_or_the_cli():
    offenders = {}
    for path in PACKAGE.rglob("*.py"):
        part = path.relative_to(PACKAGE).parts[0]
        if part in ("bench", "cli"):
            continue
        bad = sorted(n for n in _imports(path) if n.split(".")[:2] in (["posrag", "bench"], ["posrag", "cli"]))
        if bad:
            offenders[str(path.relative_to(PACKAGE))] = bad
    assert offenders == {}


def test_profiles_and_ordering_import_without_torch():
    code = "import sys, posrag.ordering, posrag.profiles; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=PACKAGE.parent)


@pytest.mark.parametrize(
    ("model", "measured"),
    [
        ("gemma3-270m", "gemma3-270m.json"),
        ("/any/folder/SmolLM2-135M-Instruct.Q4_1.gguf", "smollm2-135m-instruct.json"),  # by its file name
    ],
)
def test_the_shipped_profiles_are_the_measured_ones(model: str, measured: str):
    shipped = shipped_profile_path(model)
    assert shipped is not None and shipped.is_file()
    published = json.loads((PACKAGE.parent / "docs" / "calibration" / measured).read_text())
    assert BiasProfile.load(shipped) == BiasProfile.from_dict(published)
    assert BiasProfile.load(shipped).steering is not None
    assert shipped_profile_path("never-profiled") is None


def test_save_is_atomic_and_leaves_no_temporary_file(cache):
    profile = BiasProfile.measured("m", (1, 10, 20), 20, (0.9, 0.2, 0.8))
    path = save_profile(profile)
    assert [p.name for p in path.parent.iterdir()] == [f"{model_identity('m').key}.json"]
    assert model_profile("m") == profile == resolve("auto", "m")
    with pytest.raises(ConfigurationError, match="path="):
        save_profile(BiasProfile((0.0, 1.0), (0.5, 0.5)))


def test_relative_only_profiles_round_trip(tmp_path):
    profile = BiasProfile((0.0, 0.5, 1.0), (1.0, 0.3, 0.95), "hand-written")
    assert BiasProfile.from_dict(profile.to_dict()) == profile
    path = save_profile(profile, tmp_path / "p.json")
    assert resolve(str(path)) == profile == resolve(path)


anything = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    st.text(max_size=6),
    st.lists(st.one_of(st.floats(allow_nan=True), st.integers(), st.text(max_size=2)), max_size=4),
)
dicts = st.fixed_dictionaries(
    {},
    optional={
        key: anything
        for key in ("relative_positions", "positions", "total", "accuracy", "tolerance", "ci95", "questions")
    },
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(anything, dicts))
def test_any_position_bias_value_resolves_or_raises_configuration_error(value):
    try:
        resolved = resolve(value, "never-profiled")
    except ConfigurationError:
        return
    assert resolved in ("recency", "u_curve", "flat") or isinstance(resolved, BiasProfile)


# ----------------------------------------------------------------------------- calibrations never lost or hidden

CALIBRATION = {"band_bias": {"first": 0.0, "early": 4.0, "middle": 8.0, "late": 2.0, "last": 0.0}, "num_layers": 6}


def _calibrated(model: str, num_layers: int = 6) -> BiasProfile:
    curve = BiasProfile.measured(model, (1, 10, 20), 20, (0.9, 0.2, 0.8))
    return BiasProfile(**{**curve.__dict__, "steering": {**CALIBRATION, "num_layers": num_layers}})


def test_a_curve_only_profile_saved_after_a_calibration_keeps_the_calibration(cache):
    path = save_profile(_calibrated("m"))  # what `posrag calibrate --model m` saves
    curve_only = BiasProfile.measured("m", (1, 10, 20), 20, (0.5, 0.4, 0.9))  # what `posrag profile --model m` saves
    assert save_profile(curve_only) == path
    stored = json.loads(path.read_text())
    assert stored["steering"]["band_bias"] == CALIBRATION["band_bias"]  # before: "steering": null
    assert stored["accuracy"] == [0.5, 0.4, 0.9]  # the new curve
    assert model_profile("m").steering.attention_bias == 8.0


@pytest.mark.parametrize(
    ("content", "reported"),
    [
        ("", "Cannot read a bias profile"),
        ("{not json", "Cannot read a bias profile"),
        (json.dumps({"relative_positions": [0, 1], "accuracy": [0.5, 1.5]}), "accuracy values must lie in"),
        (json.dumps({"relative_positions": [0, 1], "accuracy": [0.5, 0.6], "steering": {"band_bias": {}}}), "bands"),
    ],
)
def test_an_invalid_user_profile_is_reported_by_path_and_the_shipped_calibration_is_used(cache, content, reported):
    from posrag.models import DEFAULT_LLM
    from posrag.profiles import profile_path
    from posrag.steering import SteeringConfig, resolve_steering

    shipped = BiasProfile.load(shipped_profile_path(DEFAULT_LLM)).steering
    path = profile_path(DEFAULT_LLM)
    path.parent.mkdir(parents=True)
    path.write_text(content)
    with pytest.warns(UserWarning, match=rf"ignores the position-bias profile {path}: .*{reported}"):
        config = resolve_steering(SteeringConfig(), DEFAULT_LLM, shipped.num_layers)
    assert config.attention_bias == shipped.attention_bias == 5.0  # before: the uncalibrated preset's 2.0


def test_a_curve_only_user_profile_does_not_hide_the_shipped_calibration(cache):
    from posrag.models import DEFAULT_LLM
    from posrag.steering import SteeringConfig, resolve_steering

    save_profile(BiasProfile.measured(DEFAULT_LLM, (1, 10, 20), 20, (0.3, 0.4, 0.9)))
    config = resolve_steering(SteeringConfig(), DEFAULT_LLM, 18)
    assert config.attention_bias == 5.0 and config.reorder_strategy == "recency"  # shipped bias, the user's curve


# ----------------------------------------------------------------------------- keyed by model identity


def _model_folder(root: Path, layers: int) -> Path:
    folder = root / "model"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"model_type": "llama", "num_hidden_layers": layers}))
    return folder


def test_two_models_with_one_name_in_two_projects_share_nothing(cache, tmp_path, monkeypatch):
    from posrag.profiles import profile_path

    first, second = _model_folder(tmp_path / "a", 6), _model_folder(tmp_path / "b", 4)
    monkeypatch.chdir(first.parent)
    a = model_identity("model")
    save_profile(_calibrated("model", num_layers=6))
    monkeypatch.chdir(second.parent)
    b = model_identity("model")
    assert a.key != b.key and a.source == str(first) and b.source == str(second)
    assert profile_path("model") != profile_path(first)  # so `posrag calibrate`'s checkpoint differs too
    assert model_profile("model") is None  # before: the first project's profile
    assert model_profile(first, num_layers=6).steering is not None


def test_a_profile_for_another_layer_count_is_refused(cache):
    from posrag.profiles import profile_path
    from posrag.steering import SteeringConfig, resolve_steering

    save_profile(_calibrated("deep-model", num_layers=6))
    with pytest.warns(UserWarning, match=rf"{profile_path('deep-model')}: its calibration is for a model of 6 layers"):
        config = resolve_steering(SteeringConfig(), "deep-model", 4)
    assert config.attention_bias == 2.0 and config.attention_layers == "all"  # the uncalibrated preset
    assert resolve_steering(SteeringConfig(), "deep-model", 6).attention_bias == 8.0


@pytest.mark.parametrize(
    "name",
    [
        "HuggingFaceTB/SmolLM2-135M-Instruct",  # hub id
        "SmolLM2-135M-Instruct.Q4_1.gguf",
        "/models/smollm2-135m-instruct-q8_0.gguf",
        "/hf/hub/models--HuggingFaceTB--SmolLM2-135M-Instruct/snapshots/12ab34/",
    ],
)
def test_the_shipped_smollm2_calibration_is_found_by_hub_id_folder_or_file(cache, name):
    profile = model_profile(name, num_layers=30)
    assert profile is not None and profile.steering is not None and profile.steering.num_layers == 30
    assert model_profile(name, num_layers=12) is None or model_profile(name, num_layers=12).steering is None


def test_the_shipped_smollm2_calibration_is_found_from_a_local_hf_folder(cache, tmp_path):
    folder = tmp_path / "SmolLM2-135M-Instruct"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    assert model_profile(folder, num_layers=30).steering.num_layers == 30


def test_shipped_profiles_name_their_model_without_a_machine_path():
    from posrag.profiles import shipped_profiles

    for path in shipped_profiles():
        model = json.loads(path.read_text())["model"]
        assert not Path(model).is_absolute() and "/root/" not in model and "cache" not in model, (path, model)


def test_profile_and_calibrate_check_the_cache_is_writable_before_measuring(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from posrag.bench import calibrate as calibrate_module
    from posrag.bench import runner as profile_module
    from posrag.cli.main import app
    from posrag.testing import tiny_model

    model = tiny_model("llama").save(tmp_path / "tiny")
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("POSRAG_CACHE_DIR", str(blocker / "cache"))  # cannot be created (as a read-only folder)

    def never(*_args, **_kwargs):
        raise AssertionError("measured although the result could not be saved")

    monkeypatch.setattr(profile_module, "profile_bias", never)
    monkeypatch.setattr(calibrate_module.Calibrator, "run", never)
    for args in (["profile"], ["calibrate", "--no-resume"], ["calibrate"]):
        result = CliRunner().invoke(app, [*args, "--model", str(model), "--no-progress"])
        assert result.exit_code == 2, result.output
        assert (
            "Cannot write to" in result.output and str(blocker) in result.output and "POSRAG_CACHE_DIR" in result.output
        )
