"""Splitting a "Lost in the Middle" run across processes or machines, and merging the parts into one result.

``posrag bench litm --shard i/N`` runs shard ``i`` (0-based) of ``N``: the records whose index in the
(limited) data file is ``i`` modulo ``N``. Round-robin rather than contiguous blocks, so each shard gets the
same mix of question kinds and similar cost. Documents per question, distractor filling and every seed are
decided over the whole file first, so a question's prompts are the same in every split. Each shard writes
the usual JSON with its trial records; :func:`merge_results` (``posrag bench merge``) checks the shards
belong together (same model, settings and data, each index once, none missing) and recomputes every
statistic from the union of the trials through the functions an unsharded run uses, so accuracy, Wilson
intervals, means, worst positions, paired added latency and retrieval statistics are those of one run.
Only wall-clock figures differ (each shard measured its own).
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

from posrag.bench.results import LitmResult, TrialRecord
from posrag.bench.stats import mean
from posrag.bench.summary import retrieval_summary, summarize_condition
from posrag.errors import ConfigurationError

SPLIT = "record index modulo the shard count (round-robin), over the data file after --limit"
#: ``data`` fields that legitimately differ between the shards of one run.
_PER_SHARD_DATA = ("questions", "shard", "command")

T = TypeVar("T")


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` (0-based) of ``count``: the records whose index is ``index`` modulo ``count``."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ConfigurationError(
                f"A shard is i/N with N >= 1 and 0 <= i < N (0-based, e.g. 0/4 ... 3/4); got {self.index}/{self.count}."
            )

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``"i/N"`` as the CLI takes it."""
        try:
            index, count = (int(part) for part in text.split("/"))
        except ValueError:
            raise ConfigurationError(
                f"--shard takes i/N (0-based shard i of N, e.g. 0/4 ... 3/4); got {text!r}."
            ) from None
        return cls(index, count)

    def select(self, items: Sequence[T]) -> list[T]:
        """This shard's part of ``items`` (every ``count``-th, from ``index``)."""
        mine = list(items[self.index :: self.count])
        if not mine:
            raise ConfigurationError(
                f"Shard {self} has no questions: only {len(items)} in the data; use at most {len(items)} shards."
            )
        return mine

    def to_dict(self, total: int) -> dict[str, Any]:
        return {"index": self.index, "count": self.count, "questions_total": total, "split": SPLIT}

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:  # type: ignore[operator]
        return [json.loads(line) for line in handle if line.strip()]


def read_result(path: str | Path) -> LitmResult:
    """A result JSON; its trial records from the JSON itself or from the ``records_file`` it names (a path
    relative to the JSON's folder is tried when it does not exist as written)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigurationError(f"Cannot read benchmark result {str(path)!r}: {exc}.") from None
    if "records" not in data and data.get("records_file"):
        records = Path(data["records_file"])
        if not records.exists():
            records = path.parent / records.name
        if not records.exists():
            raise ConfigurationError(
                f"{str(path)!r} keeps its trial records in {data['records_file']!r}, which does not exist; "
                "put that file next to the JSON."
            )
        data = {**data, "records": _read_jsonl(records)}
    return LitmResult.from_dict(data)


def _same(name: str, values: Sequence[Any], labels: Sequence[str]) -> None:
    for value, label in zip(values[1:], labels[1:], strict=True):
        if value != values[0]:
            raise ConfigurationError(
                f"Shards of different runs: {name} of {label} differs from {labels[0]}'s "
                f"({value!r} vs {values[0]!r}). Merge only shards of one run (same model, data, settings)."
            )


def merge_results(results: Sequence[LitmResult], labels: Sequence[str] | None = None) -> LitmResult:
    """One result from the shards of a run (see the module docstring); ``labels`` name them in errors."""
    if not results:
        raise ConfigurationError("Nothing to merge; pass the JSON of every shard.")
    labels = list(labels) if labels is not None else [f"result {i + 1}" for i in range(len(results))]
    shards: list[Mapping[str, Any]] = []
    for result, label in zip(results, labels, strict=True):
        shard = result.data.get("shard")
        if not shard:
            raise ConfigurationError(f"{label} is not a shard (no data.shard); run it with --shard i/N.")
        if not result.records:
            raise ConfigurationError(
                f"{label} has no trial records; shards keep them (rerun with --shard, which always keeps them)."
            )
        shards.append(shard)
    _same("the shard count", [s["count"] for s in shards], labels)
    _same("the question total", [s["questions_total"] for s in shards], labels)
    _same("the model", [r.model for r in results], labels)
    _same("the embedder", [r.embedder for r in results], labels)
    _same("the settings", [dict(r.settings) for r in results], labels)
    common = [{k: v for k, v in r.data.items() if k not in _PER_SHARD_DATA} for r in results]
    _same("the data", common, labels)
    count = int(shards[0]["count"])
    seen: dict[int, str] = {}
    for shard, label in zip(shards, labels, strict=True):
        index = int(shard["index"])
        if index in seen:
            raise ConfigurationError(f"Shard {index}/{count} given twice: {seen[index]} and {label}.")
        seen[index] = label
    missing = [f"{i}/{count}" for i in range(count) if i not in seen]
    if missing:
        raise ConfigurationError(f"Missing shard(s) {', '.join(missing)} of {count}; merge every shard of the run.")

    # The unsharded run's order: record j went to shard j % N as its (j // N)-th question.
    order: dict[str, int] = {}
    for result, shard in zip(results, shards, strict=True):
        for local, question in enumerate(dict.fromkeys(t.question_id for t in result.records)):
            order[question] = local * count + int(shard["index"])
    trials = sorted((t for r in results for t in r.records), key=lambda t: order[t.question_id])
    total = int(shards[0]["questions_total"])
    if len(order) != total:
        raise ConfigurationError(
            f"The shards hold {len(order)} questions, but the run had {total}; were some shards cut short?"
        )
    return _build(results, trials, total)


def _build(results: Sequence[LitmResult], trials: list[TrialRecord], total: int) -> LitmResult:
    first = results[0]
    num_docs = int(first.data["num_docs"])
    summaries = tuple(
        summarize_condition(
            trials,
            condition=r.condition,
            regime=r.regime,
            description=r.description,
            positions=first.positions,
            num_docs=num_docs,
            steering=r.steering,
        )
        for r in first.results
    )
    ranks = {t.question_id: t.gold_rank for t in trials if t.gold_rank is not None}
    retrieval = retrieval_summary(list(ranks.values()))
    timings = [r.timing for r in results]
    generations = sum(int(t.get("generations", 0)) for t in timings)
    data = {k: v for k, v in first.data.items() if k not in _PER_SHARD_DATA}
    data["questions"] = total
    data["merged_from"] = [
        {"shard": f"{r.data['shard']['index']}/{r.data['shard']['count']}", "command": r.data.get("command")}
        for r in sorted(results, key=lambda r: int(r.data["shard"]["index"]))
    ]
    environments = [dict(r.environment) for r in results]
    environment = environments[0] if all(e == environments[0] for e in environments) else {"shards": environments}
    timing: dict[str, Any] = {
        "started_at": min(str(t.get("started_at", "")) for t in timings),
        "wall_s": sum(float(t.get("wall_s", 0.0)) for t in timings),  # summed over the shards
        "shard_wall_s": [float(t.get("wall_s", 0.0)) for t in timings],
        "generations": generations,
        "cached": sum(int(t.get("cached", 0)) for t in timings),
        "trials": len(trials),
        "mean_generation_s": sum(float(t["mean_generation_s"]) * int(t["generations"]) for t in timings) / generations
        if generations
        else mean([]),
    }
    if all("total_s_with_model_load" in t for t in timings):
        timing["total_s_with_model_load"] = sum(float(t["total_s_with_model_load"]) for t in timings)
    return replace(
        first,
        data=data,
        retrieval=retrieval,
        results=summaries,
        environment=environment,
        timing=timing,
        records=tuple(trials),
    )


__all__ = ["SPLIT", "Shard", "merge_results", "read_result"]
