"""``posrag bench litm --jobs N``: local worker processes whose merged result equals the one-process run."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from posrag.bench.conditions import config_from_options
from posrag.bench.parallel import run_litm_parallel, threads_per_job
from posrag.cli.main import app
from posrag.errors import ConfigurationError

runner = CliRunner()
COSTS = {"latency_s", "peak_memory_mb", "memory_delta_mb"}


def _args(data, tiny_dir, out, *extra):
    return [
        "bench", "litm", "--data", str(data), "--model", str(tiny_dir), "--positions", "1,3",
        "--conditions", "baseline,recency,steer-attention,control-attention", "--regimes", "oracle,retrieval",
        "--max-new-tokens", "3", "--no-progress", "--json", str(out), *extra,
    ]  # fmt: skip


def test_jobs_merge_to_exactly_the_one_process_result(tmp_path, tiny_dir):
    data = tmp_path / "d.jsonl"
    runner.invoke(app, ["bench", "make-synthetic", str(data), "--questions", "3", "--docs", "3"])
    one = runner.invoke(app, _args(data, tiny_dir, tmp_path / "one.json", "--records", str(tmp_path / "one.jsonl")))
    assert one.exit_code == 0, one.output
    two = runner.invoke(app, _args(data, tiny_dir, tmp_path / "two.json", "--jobs", "2", "--threads", "1"))
    assert two.exit_code == 0, two.output
    whole, split = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("one", "two"))
    trials = [
        {k: v for k, v in json.loads(line).items() if k not in COSTS}
        for line in (tmp_path / "one.jsonl").read_text().splitlines()
    ]
    assert [{k: v for k, v in r.items() if k not in COSTS} for r in split["records"]] == trials
    accuracy = [[(p["position"], p["correct"], p["n"]) for p in r["positions"]] for r in whole["results"]]
    assert [[(p["position"], p["correct"], p["n"]) for p in r["positions"]] for r in split["results"]] == accuracy
    assert split["settings"] == whole["settings"] and split["retrieval"] == whole["retrieval"]
    assert split["timing"]["jobs"] == 2 and split["timing"]["threads_per_job"] == 1
    assert len(split["timing"]["shard_wall_s"]) == 2 and split["data"]["questions"] == 3


def test_jobs_refuses_what_it_cannot_do(tmp_path, tiny_dir):
    data = tmp_path / "d.jsonl"
    runner.invoke(app, ["bench", "make-synthetic", str(data), "--questions", "2", "--docs", "3"])
    both = runner.invoke(app, _args(data, tiny_dir, tmp_path / "x.json", "--jobs", "2", "--shard", "0/2"))
    assert both.exit_code == 2 and "drop --shard 0/2" in both.output
    config = config_from_options(positions="1", conditions="baseline", regimes="oracle")
    with pytest.raises(ConfigurationError, match="more worker processes than questions"):
        run_litm_parallel(config, jobs=3, data=data, model=str(tiny_dir), progress=False)
    with pytest.raises(ConfigurationError, match="jobs must be a positive integer"):
        run_litm_parallel(config, jobs=0, data=data, model=str(tiny_dir), progress=False)
    assert threads_per_job(2, cores=2) == 1 and threads_per_job(3, cores=2) == 1 and threads_per_job(1, cores=8) == 8


def test_a_failing_job_stops_the_run_with_its_error(tmp_path):
    data = tmp_path / "d.jsonl"
    runner.invoke(app, ["bench", "make-synthetic", str(data), "--questions", "2", "--docs", "3"])
    config = config_from_options(positions="1", conditions="baseline", regimes="oracle")
    with pytest.raises(Exception, match="no-such-model"):
        run_litm_parallel(config, jobs=2, data=data, model=str(tmp_path / "no-such-model"), progress=False)
