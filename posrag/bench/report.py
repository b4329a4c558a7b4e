"""Reporting a "Lost in the Middle" run: the environment it ran in, markdown tables, and the files a run
writes (JSON, table, plot, per-trial records)."""

from __future__ import annotations

import json
import math
import platform
import sys
from pathlib import Path
from typing import Any

from posrag.bench._targets import evaluate_targets
from posrag.bench.results import LitmResult
from posrag.bench.stats import percent
from posrag.bench.summary import steering_gains


def environment(model: Any = None, *, backend: Any = None) -> dict[str, Any]:
    """Versions and hardware, recorded with every result (``model``: a torch model; ``backend``: the posrag
    backend that ran it, with its threads when it runs its own)."""
    import os

    import torch
    import transformers

    import posrag

    env: dict[str, Any] = {
        "posrag": getattr(posrag, "__version__", "unknown"),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
    }
    if model is not None:
        env["device"] = str(getattr(model, "device", "cpu"))
        env["dtype"] = str(getattr(model, "dtype", ""))
        env["attn_implementation"] = getattr(getattr(model, "config", None), "_attn_implementation", None)
    if backend is not None:
        env["backend"] = backend.name
        if getattr(backend, "n_threads", None) is not None:
            env["backend_threads"] = backend.n_threads
        if getattr(backend, "path", None) is not None:
            env["model_file"] = str(backend.path)
        check = getattr(backend, "batch_check", None)
        if check is not None:
            env["backend_ubatch"] = {"requested": check.requested, "used": check.used, "agreement": check.agreement}
    return env


def format_tables(result: LitmResult) -> str:
    """Markdown tables, one per regime: accuracy (95 % CI) by position, mean, worst, cost; then the targets."""
    lines: list[str] = []
    for regime in result.regimes:
        rows = [r for r in result.results if r.regime == regime]
        header = [
            "condition",
            *[f"pos {p}" for p in result.positions],
            "mean",
            "worst",
            "+latency",
            "peak Δmem",
            "format fail",
        ]
        lines.append(f"**{regime} regime** — accuracy % (95% CI) by gold position, n={rows[0].positions[0].n}")
        lines.append("")
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "|".join(["---"] + ["--:"] * (len(header) - 1)) + "|")
        for r in rows:
            cells = [f"{percent(p.accuracy)} ({percent(p.ci_low)}–{percent(p.ci_high)})" for p in r.positions]
            added = "-" if r.added_latency_s is None else f"{r.added_latency_s * 1000:+.0f} ms"
            delta = r.peak_memory_delta_mb
            memory = "-" if delta is None or math.isnan(delta) else f"{delta:.0f} MiB"
            worst = f"{percent(r.worst.accuracy)} @{r.worst.position}"
            failed = f"{percent(r.format_failures)}%" if r.format_failures is not None else "-"
            row = [r.condition, *cells, percent(r.mean_accuracy), worst, added, memory, failed]
            lines.append("| " + " | ".join(row) + " |")
        lines.append("")
        lines.extend(_gain_table(result, regime))
    lines.append("Targets:")
    for check in evaluate_targets(result):
        mark = {True: "MET", False: "NOT MET", None: "INFO"}[check.met]
        lines.append(f"- [{mark}] {check.name}: {check.detail}")
    return "\n".join(lines)


def _gain_table(result: LitmResult, regime: str) -> list[str]:
    """Steering's gain over the baseline by position (points), with the share of the gold-alone gap recovered."""
    gains = [g for g in steering_gains(result) if g.regime == regime]
    if not gains:
        return []
    lines = [
        f"Gain over the baseline, points (share of the gap to gold-alone recovered), {regime} regime:",
        "",
        "| condition | " + " | ".join(f"pos {p}" for p in result.positions) + " |",
        "|---|" + "--:|" * len(result.positions),
    ]
    for condition in dict.fromkeys(g.condition for g in gains):
        cells = [
            f"{100 * g.gain:+.0f}" + ("" if g.recovered is None else f" ({percent(g.recovered)}%)")
            for g in gains
            if g.condition == condition
        ]
        lines.append(f"| {condition} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def write_outputs(
    result: LitmResult,
    *,
    json_path: str | Path | None = None,
    table_path: str | Path | None = None,
    plot_path: str | Path | None = None,
    records_path: str | Path | None = None,
) -> dict[str, Any]:
    """Write the requested files of a run; returns the JSON payload (written to ``json_path`` if given): the
    result's :meth:`~LitmResult.to_dict` with the targets judged on it.

    ``records_path``: every trial, one JSON object a line (``.jsonl`` or ``.jsonl.gz``); the payload then
    names that file instead of holding the records.
    """
    payload = result.to_dict()
    payload["targets"] = [check.to_dict() for check in evaluate_targets(result)]
    payload["steering_gains"] = [gain.to_dict() for gain in steering_gains(result)]
    if records_path is not None:
        from posrag.bench.synthetic import write_jsonl

        write_jsonl([trial.to_dict() for trial in result.records], records_path)
        payload.pop("records", None)
        payload["records_file"] = str(records_path)
    if json_path is not None:
        path = Path(json_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    if table_path is not None:
        path = Path(table_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        text = format_tables(result) + "\n"
        if result.records:
            from posrag.bench.paired import format_paired, paired_differences

            text += "\n" + format_paired(paired_differences(result.records)) + "\n"
        path.write_text(text, encoding="utf-8")
    if plot_path is not None:
        from posrag.bench.plot import plot_accuracy

        plot_accuracy(result, plot_path)
    return payload


__all__ = ["environment", "format_tables", "write_outputs"]
