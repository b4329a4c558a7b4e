"""What the "Lost in the Middle" benchmark measured, as data: trials, accuracy by position with intervals,
per-condition results and the whole run (:class:`LitmResult`, JSON round trip). Tables, files and the
targets a run is judged by are in :mod:`posrag.bench.report`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

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
    #: Why the output is no answer at all (:func:`posrag.bench.data.format_failure`); None: it is an answer.
    format_failure: str | None = None
    #: Read from a generation cache (:mod:`posrag.bench.cache`): an earlier run generated it; its cost is that run's.
    cached: bool = False

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
    #: Share of the trials whose output is no answer (a format failure), and their count by kind; None: not
    #: classified (a result from before the classification).
    format_failures: float | None = None
    format_failure_kinds: Mapping[str, int] = field(default_factory=dict)

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
            "format_failures": self.format_failures,
            "format_failure_kinds": dict(self.format_failure_kinds),
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
            format_failures=_optional_float(data.get("format_failures")),
            format_failure_kinds=dict(data.get("format_failure_kinds", {})),
        )


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


@dataclass(frozen=True)
class LitmResult:
    """A whole benchmark run: settings, per-condition results, environment and timing."""

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


__all__ = [
    "SCHEMA",
    "SCHEMA_VERSION",
    "ConditionResult",
    "LitmResult",
    "PositionAccuracy",
    "TrialRecord",
]
