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
