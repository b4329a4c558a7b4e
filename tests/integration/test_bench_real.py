"""The LITM benchmark on the embedded Gemma 3 270M: a real, small run through the CLI."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from posrag.bench.stats import wilson_interval
from posrag.cli.main import app


def test_bench_litm_on_the_embedded_model(tmp_path, real_lm):
    out_json, out_png = tmp_path / "litm.json", tmp_path / "litm.png"
    args = [
        "bench",
        "litm",
        "--limit",
        "4",
        "--num-docs",
        "10",
        "--positions",
        "1,10",
        "--conditions",
        "baseline,recency",
        "--regimes",
        "retrieval",
        "--json",
        str(out_json),
        "--plot",
        str(out_png),
        "--no-progress",
        "--memory",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "| baseline |" in result.stdout and "| recency |" in result.stdout

    data = json.loads(out_json.read_text())
    assert data["schema"] == "posrag.bench.litm" and data["schema_version"] == 1
    assert data["model"] == "gemma3-270m" and data["data"]["questions"] == 4 and data["data"]["num_docs"] == 10
    assert {(r["condition"], r["regime"]) for r in data["results"]} == {
        ("baseline", "retrieval"),
        ("recency", "retrieval"),
    }
    for r in data["results"]:
        assert [p["position"] for p in r["positions"]] == [1, 10]
        assert all(p["n"] == 4 and 0 <= p["ci95"][0] <= p["accuracy"] <= p["ci95"][1] <= 1 for p in r["positions"])
        assert r["mean_latency_s"] > 0 and r["peak_memory_mb"] > 0
    # recency reorders by the retriever's scores: one prompt per question whatever the gold position was.
    recency = next(r for r in data["results"] if r["condition"] == "recency")
    assert recency["generations"] <= 4
    assert data["retrieval"]["gold_top1"] > 0.5  # the retriever finds the named person's document

    # The baseline reads the ends of a 10-document context far better than chance (1 in 10): even the
    # lower end of the 95% interval over its 8 trials is above it.
    baseline = next(r for r in data["results"] if r["condition"] == "baseline")
    correct = sum(p["correct"] for p in baseline["positions"])
    assert wilson_interval(correct, 8)[0] > data["data"]["chance_accuracy"]
    assert out_png.read_bytes()[:4] == b"\x89PNG"
