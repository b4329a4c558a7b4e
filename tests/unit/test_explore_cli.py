"""``posrag explore`` end to end on a tiny model saved as a local model directory."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from posrag.cli.main import app
from posrag.retroactive import RetroactivePositionGenerator
from posrag.testing import tiny_model

PROMPT = "Once upon a time"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    tiny = tiny_model("gemma3")
    path = tmp_path_factory.mktemp("tiny-gemma3")
    tiny.save(path)
    return str(path)


def run(*args: str):
    return CliRunner().invoke(app, ["explore", *args], env={"COLUMNS": "160"})


def test_table_has_the_seed_columns_and_one_row_per_gap(model_dir):
    result = run(PROMPT, "--gaps", "5,10,20", "--model", model_dir)
    assert result.exit_code == 0, result.output
    for column in ("position", "gap", "top prediction", "second prediction"):
        assert column in result.output
    data = json.loads(run(PROMPT, "--gaps", "5,10,20", "--model", model_dir, "--json").stdout)
    length = data["prompt_length"]
    for gap in (5, 10, 20):
        assert f"{length + gap}" in result.output
    assert [e["gap"] for e in data["explorations"]] == [5, 10, 20]


def test_json_matches_the_api(model_dir):
    result = run(PROMPT, "--gaps", "3,7.5", "--model", model_dir, "--json", "--top-k", "3")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    from posrag.models import load_causal_lm

    loaded = load_causal_lm(model_dir)
    expected = RetroactivePositionGenerator(loaded.model, loaded.tokenizer, top_k=3).generate_and_explore(
        PROMPT, [3, 7.5]
    )
    assert data == json.loads(json.dumps(expected.to_dict()))


def test_positions_and_paths(model_dir):
    data = json.loads(run(PROMPT, "--model", model_dir, "--json", "--no-special-tokens").stdout)
    length = data["prompt_length"]
    result = run(PROMPT, "--positions", f"{length},{length + 6},50", "--path", "3", "--model", model_dir, "--json")
    data = json.loads(result.stdout)
    assert [e["position"] for e in data["explorations"]] == [length, length + 6, 50]
    assert [p["gap"] for p in data["paths"]] == [0, 6, 50 - length]
    assert all(1 <= len(p["tokens"]) <= 3 for p in data["paths"])


def test_plot_is_written(model_dir, tmp_path):
    target = tmp_path / "shift.png"
    result = run(PROMPT, "--gaps", "1,5,10", "--model", model_dir, "--plot", str(target))
    assert result.exit_code == 0, result.output
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and target.stat().st_size > 5_000


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--gaps", "5,x"], "is not a number"),
        (["--gaps", "-3"], "negative gap"),
        (["--gaps", "100000"], "past the model's last position"),
        (["--positions", "1"], "natural position"),
        (["--gaps", "1", "--adaptive"], "use one of"),
    ],
)
def test_errors_are_clear_and_exit_nonzero(model_dir, args, message):
    result = run(PROMPT, *args, "--model", model_dir)
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())
