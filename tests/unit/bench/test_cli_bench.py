"""``posrag bench`` and ``posrag profile`` through typer's CliRunner, on a tiny model saved to disk."""

from __future__ import annotations

import gzip
import json

import pytest
from typer.testing import CliRunner

from posrag.bench.data import load_records
from posrag.cli.main import app

runner = CliRunner()


def test_make_synthetic_is_seeded(tmp_path):
    for name in ("a.jsonl", "b.jsonl.gz"):
        out = runner.invoke(app, ["bench", "make-synthetic", str(tmp_path / name), "--questions", "5", "--docs", "6"])
        assert out.exit_code == 0, out.output
    a, b = (load_records(tmp_path / n) for n in ("a.jsonl", "b.jsonl.gz"))
    assert a == b and len(a) == 5 and len(a[0].documents) == 6


def test_bench_litm_writes_table_json_and_plot(tmp_path, tiny_dir):
    data = tmp_path / "d.jsonl"
    runner.invoke(app, ["bench", "make-synthetic", str(data), "--questions", "2", "--docs", "3"])
    args = [
        "bench",
        "litm",
        "--data",
        str(data),
        "--model",
        str(tiny_dir),
        "--positions",
        "1,3",
        "--conditions",
        "baseline",
        "--regimes",
        "oracle",
        "--json",
        str(tmp_path / "r.json"),
        "--plot",
        str(tmp_path / "r.png"),
        "--max-new-tokens",
        "2",
        "--no-progress",
        "--records",
        str(tmp_path / "trials.jsonl.gz"),
    ]
    out = runner.invoke(app, args)
    assert out.exit_code == 0, out.output
    assert "| baseline |" in out.stdout
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["schema"] == "posrag.bench.litm"
    assert [p["position"] for p in result["results"][0]["positions"]] == [1, 3]
    assert "records" not in result and result["records_file"].endswith("trials.jsonl.gz")
    with gzip.open(tmp_path / "trials.jsonl.gz", "rt") as handle:
        trials = [json.loads(line) for line in handle]
    assert len(trials) == 4 and {t["position"] for t in trials} == {1, 3}
    assert result["data"]["path"] == str(data) and len(result["data"]["sha256"]) == 64
    assert (tmp_path / "r.png").stat().st_size > 0


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--conditions", "baseline,magic"], "Unknown condition"),
        (["--positions", "1,x"], "comma-separated integers"),
        (["--regimes", "sideways"], "regimes must be"),
        (["--steering", "[1]"], "JSON object"),
    ],
)
def test_bench_litm_reports_bad_options(extra, message, tiny_dir):
    out = runner.invoke(app, ["bench", "litm", "--model", str(tiny_dir), "--limit", "1", "--no-progress", *extra])
    assert out.exit_code == 2
    assert message in out.output


def test_profile_command_saves_a_profile(tmp_path, tiny_dir):
    target = tmp_path / "profile.json"
    out = runner.invoke(
        app,
        [
            "profile",
            "--model",
            str(tiny_dir),
            "--questions",
            "2",
            "--positions",
            "1,2,3",
            "--docs",
            "3",
            "--out",
            str(target),
            "--json",
            "--no-progress",
        ],
    )
    assert out.exit_code == 0, out.output
    saved = json.loads(target.read_text())
    assert saved["classification"] in ("recency", "u_curve", "flat", "primacy")
    assert saved["positions"] == [1, 2, 3] and saved["total"] == 3
    assert json.loads(out.stdout)["path"] == str(target)


def test_bench_litm_shards_merge_and_the_new_options(tmp_path, tiny_dir):
    data = tmp_path / "d.jsonl"
    runner.invoke(app, ["bench", "make-synthetic", str(data), "--questions", "3", "--docs", "3"])
    common = ["bench", "litm", "--data", str(data), "--model", str(tiny_dir), "--positions", "1,3"]
    common += ["--conditions", "baseline", "--regimes", "oracle", "--max-new-tokens", "2", "--no-progress"]
    common += ["--chat-template", "on", "--memory"]
    for i in range(2):
        out = runner.invoke(app, [*common, "--shard", f"{i}/2", "--json", str(tmp_path / f"s{i}.json")])
        assert out.exit_code == 0, out.output
    shard = json.loads((tmp_path / "s0.json").read_text())
    assert shard["data"]["shard"]["index"] == 0 and shard["data"]["questions"] == 2 and len(shard["records"]) == 4
    assert shard["settings"]["chat_template_applied"] is True and shard["settings"]["measure_memory"] is True
    assert shard["results"][0]["peak_memory_mb"] > 0
    merged = tmp_path / "all.json"
    out = runner.invoke(app, ["bench", "merge", str(merged), str(tmp_path / "s1.json"), str(tmp_path / "s0.json")])
    assert out.exit_code == 0, out.output
    result = json.loads(merged.read_text())
    assert result["data"]["questions"] == 3 and len(result["records"]) == 6
    assert [p["n"] for p in result["results"][0]["positions"]] == [3, 3]
    missing = runner.invoke(app, ["bench", "merge", str(tmp_path / "x.json"), str(tmp_path / "s0.json")])
    assert missing.exit_code == 2 and "Missing shard(s) 1/2" in missing.output
    bad = runner.invoke(app, [*common, "--shard", "2/2"])
    assert bad.exit_code == 2 and "0 <= i < N" in bad.output
    bad = runner.invoke(app, [*common[:-3], "--chat-template", "maybe"])
    assert bad.exit_code == 2 and "chat_template='maybe'" in bad.output


def test_the_ray_executor_options_are_checked_before_anything_loads(monkeypatch):
    import sys

    out = CliRunner().invoke(app, ["bench", "litm", "--address", "auto"])
    assert out.exit_code == 2 and "--address and --shards go with --executor ray" in out.output
    out = CliRunner().invoke(app, ["bench", "litm", "--executor", "spark"])
    assert out.exit_code == 2 and "must be 'local' or 'ray'" in out.output
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    out = CliRunner().invoke(app, ["bench", "litm", "--executor", "ray", "--limit", "1"])
    assert out.exit_code == 2 and "pip install 'posrag[ray]'" in out.output


def test_choose_prompt_refuses_evaluation_questions():
    out = CliRunner().invoke(app, ["bench", "choose-prompt", "--data", "docs/data/nq-mined-10.jsonl.gz"])
    assert out.exit_code == 2 and "calibration questions only" in out.output


def test_bench_compare_pairs_two_runs_trial_for_trial(tmp_path, tiny_dir):
    data = tmp_path / "d.jsonl"
    runner.invoke(app, ["bench", "make-synthetic", str(data), "--questions", "3", "--docs", "3"])
    common = ["bench", "litm", "--data", str(data), "--model", str(tiny_dir), "--positions", "1,3", "--no-progress"]
    common += ["--conditions", "baseline,steer-attention", "--regimes", "oracle", "--max-new-tokens", "3"]
    runs = {"plain": "{}", "strong": '{"attention_bias": 40.0}'}
    for name, steering in runs.items():
        out = runner.invoke(
            app,
            [
                *common,
                "--steering",
                steering,
                "--json",
                str(tmp_path / f"{name}.json"),
                "--records",
                str(tmp_path / f"{name}.jsonl.gz"),
            ],
        )
        assert out.exit_code == 0, out.output
    out = runner.invoke(
        app,
        [
            "bench",
            "compare",
            str(tmp_path / "plain.json"),
            str(tmp_path / "strong.json"),
            "--names",
            "bias 2,bias 40",
            "--json",
            str(tmp_path / "cmp.json"),
        ],
    )
    assert out.exit_code == 0, out.output
    assert "bias 40 minus bias 2, oracle regime" in out.stdout
    trials = {}
    for name in runs:
        with gzip.open(tmp_path / f"{name}.jsonl.gz", "rt") as handle:
            trials[name] = {(t["condition"], t["position"], t["question_id"]): t for t in map(json.loads, handle)}
    rows = {(d["condition"], d["position"]): d for d in json.loads((tmp_path / "cmp.json").read_text())["differences"]}
    assert len(rows) == 4
    for (condition, position), row in rows.items():
        pairs = [(a, trials["strong"][key]) for key, a in trials["plain"].items() if key[:2] == (condition, position)]
        assert row["n"] == len(pairs) == 3
        assert row["changed"] == sum(a["prediction"] != b["prediction"] for a, b in pairs)
        assert row["mean"] == pytest.approx(sum(b["correct"] - a["correct"] for a, b in pairs) / 3)
    assert all(rows["baseline", p]["changed"] == 0 for p in (1, 3))  # the bias does not reach unsteered trials
    assert sum(rows["steer-attention", p]["changed"] for p in (1, 3)) > 0  # a 20x bias changes steered answers
    same = runner.invoke(app, ["bench", "compare", str(tmp_path / "plain.json"), str(tmp_path / "plain.json")])
    assert same.exit_code == 0 and "| 0 / 0 | 0 |" in same.stdout
    out = runner.invoke(app, [*common, "--limit", "2", "--json", str(tmp_path / "two.json"), "--records",
                              str(tmp_path / "two.jsonl.gz")])  # fmt: skip
    partial = runner.invoke(app, ["bench", "compare", str(tmp_path / "plain.json"), str(tmp_path / "two.json")])
    assert partial.exit_code == 2 and "different trials (4 only in the first, 0 only in the second)" in partial.output
    bare = runner.invoke(app, [*common, "--json", str(tmp_path / "bare.json")])
    assert bare.exit_code == 0
    refused = runner.invoke(app, ["bench", "compare", str(tmp_path / "bare.json"), str(tmp_path / "plain.json")])
    assert refused.exit_code == 2 and "no trial records" in refused.output


def test_the_llama_cpp_backend_refuses_torch_quantization():
    out = CliRunner().invoke(app, ["bench", "litm", "--backend", "llama.cpp", "--quantize", "int8", "--limit", "1"])
    assert out.exit_code == 2 and "Drop --quantize, or use --backend torch" in out.output
    out = CliRunner().invoke(app, ["bench", "litm", "--backend", "vllm", "--limit", "1"])
    assert out.exit_code == 2 and "backend='vllm' is not one of" in out.output
