"""``posrag bench litm --jobs N``: local worker processes whose merged result equals the one-process run."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

import psutil
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


def test_jobs_share_one_cache_and_the_same_command_again_generates_nothing(tmp_path, tiny_dir):
    data = tmp_path / "d.jsonl"
    runner.invoke(app, ["bench", "make-synthetic", str(data), "--questions", "3", "--docs", "3"])
    cache = ["--jobs", "2", "--threads", "1", "--cache", str(tmp_path / "runs" / "gen.sqlite")]
    first = runner.invoke(app, _args(data, tiny_dir, tmp_path / "a.json", *cache))
    assert first.exit_code == 0, first.output
    again = runner.invoke(app, _args(data, tiny_dir, tmp_path / "b.json", *cache))
    assert again.exit_code == 0, again.output
    a, b = (json.loads((tmp_path / f"{n}.json").read_text()) for n in "ab")
    made = a["timing"]["generations"]
    assert made > 0 and a["timing"]["cached"] == 0
    assert b["timing"]["generations"] == 0 and b["timing"]["cached"] == made
    assert f"0 generations, {made} read from --cache" in again.output
    assert all(r["cached"] for r in b["records"])
    costs = COSTS | {"cached"}
    assert [{k: v for k, v in r.items() if k not in costs} for r in b["records"]] == [
        {k: v for k, v in r.items() if k not in costs} for r in a["records"]
    ]
    bad = runner.invoke(app, _args(data, tiny_dir, tmp_path / "c.json", "--jobs", "2", "--cache", str(tmp_path)))
    assert bad.exit_code == 2 and "is a directory" in bad.output


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


# ------------------------------------------------------------------ workers that die, parents that are stopped


def _start_cli_run(tmp_path, tiny_dir, *extra):
    """``posrag bench litm --jobs 2`` as a real process on a run long enough to be interrupted."""
    data = tmp_path / "long.jsonl"
    runner.invoke(app, ["bench", "make-synthetic", str(data), "--questions", "40", "--docs", "3"])
    args = [
        sys.executable, "-m", "posrag.cli.main", "bench", "litm", "--data", str(data), "--model", str(tiny_dir),
        "--positions", "1,2,3", "--conditions", "baseline,steer-attention", "--regimes", "oracle",
        "--max-new-tokens", "48", "--jobs", "2", "--threads", "1", "--json", str(tmp_path / "out.json"), *extra,
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _workers_once_running(parent: psutil.Process, count: int) -> list[psutil.Process]:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        workers = [c for c in parent.children() if "resource_tracker" not in " ".join(c.cmdline())]
        if len(workers) >= count and all(w.cpu_times().user > 1.0 for w in workers):  # past the imports
            return workers
        assert parent.is_running(), "the run ended before its workers started"
        time.sleep(0.2)
    raise AssertionError("the workers did not start")


def _gone(processes: list[psutil.Process], timeout: float) -> bool:
    _, alive = psutil.wait_procs(processes, timeout=timeout)
    return not alive


def test_a_killed_worker_fails_the_run_at_once_naming_its_exit_code_and_shard(tmp_path, tiny_dir):
    process = _start_cli_run(tmp_path, tiny_dir, "--no-progress")
    parent = psutil.Process(process.pid)
    try:
        workers = _workers_once_running(parent, 2)
        everything = parent.children(recursive=True)
        workers[0].kill()
        _, err = process.communicate(timeout=10)  # before: the pool replaced the worker and waited forever
    finally:
        process.kill()
    assert process.returncode != 0
    assert "exit code -9" in err and "SIGKILL" in err and re.search(r"shard [01]/2", err), err
    assert _gone(everything, timeout=10)
    assert not (tmp_path / "out.json").exists()


def test_sigterm_to_the_parent_ends_its_workers_and_helpers(tmp_path, tiny_dir):
    process = _start_cli_run(tmp_path, tiny_dir)  # with the progress bar: its queue has helper threads/processes
    parent = psutil.Process(process.pid)
    try:
        _workers_once_running(parent, 2)
        everything = parent.children(recursive=True)
        assert len(everything) >= 2
        process.terminate()
        process.communicate(timeout=10)
    finally:
        process.kill()
    assert process.returncode != 0
    assert _gone(everything, timeout=10), [p for p in everything if p.is_running()]


def test_workers_end_themselves_when_their_parent_is_killed(tmp_path, tiny_dir):
    process = _start_cli_run(tmp_path, tiny_dir, "--no-progress")
    parent = psutil.Process(process.pid)
    try:
        _workers_once_running(parent, 2)
        everything = parent.children(recursive=True)
        process.kill()
        process.communicate(timeout=10)
    finally:
        process.kill()
    assert _gone(everything, timeout=10), [p for p in everything if p.is_running()]
