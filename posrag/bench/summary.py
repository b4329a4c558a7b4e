"""Summaries of a "Lost in the Middle" run's trials: per-condition accuracy with intervals, cost, and the
retriever's ranking of the gold documents.

The one place these are computed: :class:`~posrag.bench.runner.LitmBenchmark` and
:func:`posrag.bench.shards.merge_results` both call it, so merged shards have the statistics of one run.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from posrag.bench.results import ConditionResult, LitmResult, PositionAccuracy, TrialRecord
from posrag.bench.stats import mean, wilson_interval
from posrag.documents import PositionInfo


def _max_measured(values: Sequence[float | None]) -> float | None:
    measured = [v for v in values if v is not None]
    return max(measured) if measured else None


def summarize_condition(
    trials: Sequence[TrialRecord],
    *,
    condition: str,
    regime: str,
    description: str,
    positions: Sequence[int],
    num_docs: int,
    steering: Mapping[str, Any] | None,
) -> ConditionResult:
    """One condition in one regime, from every trial of a run (its own and the baseline's, for pairing).

    Latencies are paired with the baseline on the same question and position; memory is the largest measured
    value (``None`` when none was measured).
    """
    mine = [t for t in trials if t.condition == condition and t.regime == regime]
    baseline = {(t.question_id, t.position): t for t in trials if t.condition == "baseline" and t.regime == regime}
    by_position = []
    for position in positions:
        at = [t for t in mine if t.position == position]
        correct = sum(t.correct for t in at)
        low, high = wilson_interval(correct, len(at))
        relative = PositionInfo(position - 1, num_docs).relative
        by_position.append(PositionAccuracy(position, relative, len(at), correct, low, high))
    pairs = [(t, baseline[(t.question_id, t.position)]) for t in mine]
    paired = [t.latency_s - b.latency_s for t, b in pairs]
    # Output length changes latency as much as steering does: also pair only equally long outputs.
    same = [t.latency_s - b.latency_s for t, b in pairs if t.new_tokens == b.new_tokens and not t.reused]
    return ConditionResult(
        condition=condition,
        regime=regime,
        description=description,
        positions=tuple(by_position),
        mean_latency_s=mean([t.latency_s for t in mine]),
        added_latency_s=mean(paired) if paired else None,
        mean_new_tokens=mean([float(t.new_tokens) for t in mine]),
        generations=sum(not t.reused for t in mine),
        peak_memory_mb=_max_measured([t.peak_memory_mb for t in mine]),
        peak_memory_delta_mb=_max_measured([t.memory_delta_mb for t in mine]),
        steering=steering,
        added_latency_same_length_s=mean(same) if same else None,
        same_length_pairs=len(same),
        format_failures=sum(t.format_failure is not None for t in mine) / len(mine) if mine else None,
        format_failure_kinds=dict(Counter(t.format_failure for t in mine if t.format_failure is not None)),
    )


@dataclass(frozen=True)
class SteeringGain:
    """A condition's gain over the baseline at one position, and the share of the gold-alone gap it recovers:
    ``(accuracy - baseline) / (gold_alone - baseline)`` (1 = as good as the gold document alone; ``None`` where
    the baseline already matches gold-alone or the run has no gold-alone row)."""

    condition: str
    regime: str
    position: int
    accuracy: float
    baseline: float
    gain: float
    gold_alone: float | None
    recovered: float | None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def steering_gains(result: LitmResult) -> list[SteeringGain]:
    """Every steered, non-control condition's gain over the baseline per regime and position."""
    gains = []
    for regime in result.regimes:
        base = result.get("baseline", regime)
        alone = result.get("gold-alone", regime)
        if base is None:
            continue
        for r in result.results:
            if r.regime != regime or r.steering is None or r.condition.startswith("control-"):
                continue
            for p, b in zip(r.positions, base.positions, strict=True):
                ceiling = alone.at(p.position).accuracy if alone is not None else None
                gap = None if ceiling is None else ceiling - b.accuracy
                recovered = (p.accuracy - b.accuracy) / gap if gap is not None and gap > 1e-9 else None
                gains.append(
                    SteeringGain(
                        r.condition,
                        regime,
                        p.position,
                        p.accuracy,
                        b.accuracy,
                        p.accuracy - b.accuracy,
                        ceiling,
                        recovered,
                    )
                )
    return gains


def retrieval_summary(gold_ranks: Sequence[int]) -> dict[str, Any]:
    """How well the retriever ranked the gold documents (one rank per question, 1 = best; empty: nothing
    scored): its recall at 1, 2 and 3 and the gold document's mean rank."""
    if not gold_ranks:
        return {}
    return {
        "scorer": "posrag.relevance.embedding_relevance over each question's documents: the packaged embedder's "
        "cosine of the question to the title and text, plus that of the best sentence",
        **{f"gold_top{k}": sum(r <= k for r in gold_ranks) / len(gold_ranks) for k in (1, 2, 3)},
        "gold_mean_rank": mean([float(r) for r in gold_ranks]),
    }


__all__ = ["SteeringGain", "retrieval_summary", "steering_gains", "summarize_condition"]
