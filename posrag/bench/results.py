"""What the "Lost in the Middle" benchmark measured, as data: trials, accuracy by position with intervals,
per-condition results, the whole run (:class:`LitmResult`, JSON round trip) and the issue's targets judged
on it (:func:`evaluate_targets`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from posrag.bench.conditions import SINGLE_CONDITIONS, STEER_MECHANISMS
from posrag.bench.report import format_tables, percent
from posrag.bench.stats import mean
from posrag.errors import ConfigurationError

SCHEMA = "posrag.bench.litm"
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class TrialRecord:
    """One question at one gold position under one condition and regime."""

    question_id: str
    position: int
    condition: str
    regime: str
    correct: bool
    prediction: str
    gold_prompt_position: int  # 1-based, where the gold document ended up in the prompt
    latency_s: float
    new_tokens: int
    peak_memory_mb: float | None  # None: memory not measured (LitmConfig.measure_memory)
    memory_delta_mb: float | None
    reused: bool  # the same prompt and steering plan had been generated already (its output and cost reused)
    gold_rank: int | None = None  # the retriever's rank of the gold document (1 = best); None: not scored

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class PositionAccuracy:
    """Accuracy at one gold position with its 95 % Wilson interval."""

    position: int
    relative_position: float
    n: int
    correct: int
    ci_low: float
    ci_high: float

    @property
    def accuracy(self) -> float:
        return self.correct / self.n

    def to_dict(self) -> dict[str, Any]:
        return {
            "position": self.position,
            "relative_position": self.relative_position,
            "n": self.n,
            "correct": self.correct,
            "accuracy": self.accuracy,
            "ci95": [self.ci_low, self.ci_high],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PositionAccuracy:
        low, high = data["ci95"]
        return cls(
            int(data["position"]),
            float(data["relative_position"]),
            int(data["n"]),
            int(data["correct"]),
            float(low),
            float(high),
        )


@dataclass(frozen=True)
class ConditionResult:
    """Accuracy by position, its summary, and the cost of one condition in one regime."""

    condition: str
    regime: str
    description: str
    positions: tuple[PositionAccuracy, ...]
    mean_latency_s: float
    added_latency_s: float | None
    mean_new_tokens: float
    generations: int
    peak_memory_mb: float | None  # None: memory not measured
    peak_memory_delta_mb: float | None
    steering: Mapping[str, Any] | None = None
    added_latency_same_length_s: float | None = None
    same_length_pairs: int = 0

    @property
    def accuracies(self) -> list[float]:
        return [p.accuracy for p in self.positions]

    @property
    def mean_accuracy(self) -> float:
        return mean(self.accuracies)

    @property
    def worst(self) -> PositionAccuracy:
        return min(self.positions, key=lambda p: (p.accuracy, p.position))

    @property
    def best(self) -> PositionAccuracy:
        return max(self.positions, key=lambda p: (p.accuracy, -p.position))

    def at(self, position: int) -> PositionAccuracy:
        for p in self.positions:
            if p.position == position:
                return p
        raise KeyError(position)

    def to_dict(self) -> dict[str, Any]:
        return {
            "condition": self.condition,
            "regime": self.regime,
            "description": self.description,
            "positions": [p.to_dict() for p in self.positions],
            "mean_accuracy": self.mean_accuracy,
            "worst_accuracy": self.worst.accuracy,
            "worst_position": self.worst.position,
            "best_accuracy": self.best.accuracy,
            "best_position": self.best.position,
            "mean_latency_s": self.mean_latency_s,
            "added_latency_s": self.added_latency_s,
            "added_latency_same_length_s": self.added_latency_same_length_s,
            "same_length_pairs": self.same_length_pairs,
            "mean_new_tokens": self.mean_new_tokens,
            "generations": self.generations,
            "peak_memory_mb": self.peak_memory_mb,
            "peak_memory_delta_mb": self.peak_memory_delta_mb,
            "steering": dict(self.steering) if self.steering is not None else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ConditionResult:
        return cls(
            condition=data["condition"],
            regime=data["regime"],
            description=data["description"],
            positions=tuple(PositionAccuracy.from_dict(p) for p in data["positions"]),
            mean_latency_s=float(data["mean_latency_s"]),
            added_latency_s=None if data["added_latency_s"] is None else float(data["added_latency_s"]),
            mean_new_tokens=float(data["mean_new_tokens"]),
            generations=int(data["generations"]),
            peak_memory_mb=_optional_float(data["peak_memory_mb"]),
            peak_memory_delta_mb=_optional_float(data["peak_memory_delta_mb"]),
            steering=data.get("steering"),
            added_latency_same_length_s=data.get("added_latency_same_length_s"),
            same_length_pairs=int(data.get("same_length_pairs", 0)),
        )


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


@dataclass(frozen=True)
class TargetCheck:
    """One of the issue's targets, evaluated on a result: ``met`` is ``None`` where it cannot be judged."""

    name: str
    met: bool | None
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "met": self.met, "detail": self.detail}


@dataclass(frozen=True)
class LitmResult:
    """A whole benchmark run: settings, per-condition results, target checks, environment and timing."""

    model: str
    embedder: str | None
    data: Mapping[str, Any]
    settings: Mapping[str, Any]
    retrieval: Mapping[str, Any]
    results: tuple[ConditionResult, ...]
    environment: Mapping[str, Any]
    timing: Mapping[str, Any]
    records: tuple[TrialRecord, ...] = ()

    @property
    def positions(self) -> tuple[int, ...]:
        return tuple(self.settings["positions"])

    @property
    def regimes(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(r.regime for r in self.results))

    @property
    def chance_accuracy(self) -> float:
        return 1.0 / int(self.data["num_docs"])

    def get(self, condition: str, regime: str = "oracle") -> ConditionResult | None:
        return next((r for r in self.results if r.condition == condition and r.regime == regime), None)

    def result(self, condition: str, regime: str = "oracle") -> ConditionResult:
        found = self.get(condition, regime)
        if found is None:
            raise ConfigurationError(
                f"No result for condition {condition!r} in regime {regime!r}; this run has "
                f"{sorted({(r.condition, r.regime) for r in self.results})}."
            )
        return found

    def checks(self) -> list[TargetCheck]:
        return evaluate_targets(self)

    def to_dict(self) -> dict[str, Any]:
        out = {
            "schema": SCHEMA,
            "schema_version": SCHEMA_VERSION,
            "model": self.model,
            "embedder": self.embedder,
            "data": dict(self.data),
            "settings": dict(self.settings),
            "retrieval": dict(self.retrieval),
            "results": [r.to_dict() for r in self.results],
            "targets": [c.to_dict() for c in self.checks()],
            "environment": dict(self.environment),
            "timing": dict(self.timing),
        }
        if self.records:
            out["records"] = [r.to_dict() for r in self.records]
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LitmResult:
        if data.get("schema") != SCHEMA:
            raise ConfigurationError(f"Not a posrag LITM benchmark result (schema {data.get('schema')!r}).")
        if int(data.get("schema_version", 0)) > SCHEMA_VERSION:
            raise ConfigurationError(
                f"Result schema version {data['schema_version']} is newer than this posrag reads "
                f"({SCHEMA_VERSION}); upgrade posrag."
            )
        return cls(
            model=data["model"],
            embedder=data.get("embedder"),
            data=data["data"],
            settings=data["settings"],
            retrieval=data.get("retrieval", {}),
            results=tuple(ConditionResult.from_dict(r) for r in data["results"]),
            environment=data.get("environment", {}),
            timing=data.get("timing", {}),
            records=tuple(TrialRecord(**r) for r in data.get("records", ())),
        )

    def table(self) -> str:
        """Markdown tables, one per regime: accuracy (95 % CI) by position, mean, worst, cost."""
        return format_tables(self)


def evaluate_targets(result: LitmResult) -> list[TargetCheck]:
    """The issue's targets, judged plainly on ``result`` (see docs/litm.md for the exact rules)."""
    checks: list[TargetCheck] = []
    positions = result.positions
    first, last = positions[0], positions[-1]
    regime = "oracle" if "oracle" in result.regimes else result.regimes[0]
    base = result.get("baseline", regime)
    if base is not None and len(positions) >= 3:
        ends = min(base.at(first).accuracy, base.at(last).accuracy)
        middle = min(p.accuracy for p in base.positions[1:-1])
        met = ends >= 0.9 and middle <= ends - 0.2
        checks.append(
            TargetCheck(
                "baseline U-curve (ends >= 90%, middle at least 20 points lower)",
                met,
                f"pos {first}: {percent(base.at(first).accuracy)}%, pos {last}: "
                f"{percent(base.at(last).accuracy)}%, worst middle: {percent(middle)}%",
            )
        )
    for regime_name in result.regimes:
        base = result.get("baseline", regime_name)
        for mechanism in STEER_MECHANISMS:
            steer = result.get(f"steer-{mechanism}", regime_name)
            if steer is None or base is None:
                continue
            gap = steer.best.accuracy - steer.worst.accuracy
            drops = [
                (b.position, b.accuracy - s.accuracy) for s, b in zip(steer.positions, base.positions, strict=True)
            ]
            worst_drop = max(drops, key=lambda d: d[1])
            met = gap <= 0.05 + 1e-9 and worst_drop[1] <= 0.03 + 1e-9
            checks.append(
                TargetCheck(
                    f"steer-{mechanism} alone ({regime_name}): worst within 5 points of best, "
                    "no position >3 points below baseline",
                    met,
                    f"best {percent(steer.best.accuracy)}% @{steer.best.position}, worst "
                    f"{percent(steer.worst.accuracy)}% @{steer.worst.position} (gap {100 * gap:.0f}); largest "
                    f"drop vs baseline {100 * worst_drop[1]:+.0f} points @{worst_drop[0]}; mean "
                    f"{percent(steer.mean_accuracy)}% vs baseline {percent(base.mean_accuracy)}%",
                )
            )
    if "retrieval" in result.regimes:
        hybrid = result.get("hybrid", "retrieval")
        singles = [r for r in result.results if r.regime == "retrieval" and r.condition in SINGLE_CONDITIONS]
        if hybrid is not None and singles:
            shortfalls = []
            for p in hybrid.positions:
                best = max(singles, key=lambda r: r.at(p.position).accuracy)
                shortfalls.append((best.at(p.position).accuracy - p.accuracy, p.position, best.condition))
            worst = max(shortfalls)
            checks.append(
                TargetCheck(
                    "retrieval regime: hybrid >= best single condition at every position",
                    worst[0] <= 1e-9,
                    "hybrid matches or beats every single condition at every position"
                    if worst[0] <= 1e-9
                    else f"largest shortfall {100 * worst[0]:.0f} points at pos {worst[1]} (vs {worst[2]})",
                )
            )
    for regime_name in result.regimes:
        base = result.get("baseline", regime_name)
        for mechanism in STEER_MECHANISMS:
            control = result.get(f"control-{mechanism}", regime_name)
            if control is None or base is None:
                continue
            checks.append(
                TargetCheck(
                    f"control-{mechanism} ({regime_name}): harm of steering a distractor",
                    None,
                    f"mean {percent(control.mean_accuracy)}% vs baseline {percent(base.mean_accuracy)}% "
                    f"({100 * (control.mean_accuracy - base.mean_accuracy):+.0f} points), worst "
                    f"{percent(control.worst.accuracy)}% @{control.worst.position}",
                )
            )
    baseline = result.get("baseline", regime)
    for r in result.results:
        if r.regime != regime or r.steering is None or r.condition.startswith("control-") or baseline is None:
            continue
        added = r.added_latency_same_length_s if r.added_latency_same_length_s is not None else r.added_latency_s
        if added is None:
            continue
        ratio = added / baseline.mean_latency_s
        how = (
            f"paired on {r.same_length_pairs} equally long outputs"
            if r.added_latency_same_length_s is not None
            else "paired on all outputs (none equally long)"
        )
        checks.append(
            TargetCheck(
                f"{r.condition} overhead within the steering budget (<= 10% and <= 100 ms per query)",
                ratio <= 0.10 and added <= 0.100,
                f"{1000 * added:+.0f} ms per query ({100 * ratio:+.0f}% of the baseline's "
                f"{baseline.mean_latency_s:.2f} s), {how}",
            )
        )
    return checks


__all__ = [
    "SCHEMA",
    "SCHEMA_VERSION",
    "ConditionResult",
    "LitmResult",
    "PositionAccuracy",
    "TargetCheck",
    "TrialRecord",
    "evaluate_targets",
]
