"""The targets a "Lost in the Middle" run was built to meet, judged plainly on its result (the rules are in
docs/litm.md). Private: one round's targets, printed under the tables and written into the JSON, not an API."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from posrag.bench.conditions import SINGLE_CONDITIONS, STEER_MECHANISMS
from posrag.bench.paired import oracle_gain_kept, paired_differences
from posrag.bench.results import LitmResult
from posrag.bench.stats import percent


@dataclass(frozen=True)
class TargetCheck:
    """One of the issue's targets, evaluated on a result: ``met`` is ``None`` where it cannot be judged."""

    name: str
    met: bool | None
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "met": self.met, "detail": self.detail}


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
                    f"{percent(steer.worst.accuracy)}% @{steer.worst.position} (gap {100 * gap:.0f}); steering minus "
                    f"baseline at worst {-100 * worst_drop[1]:+.0f} points @{worst_drop[0]}; mean "
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
    checks.extend(_paired_checks(result))
    checks.extend(_oracle_gain_kept(result))
    alone = result.get("gold-alone", regime)
    if alone is not None and alone.format_failures is not None:
        checks.append(
            TargetCheck(
                "gold-alone: the model answers (<= 20% format failures)",
                alone.format_failures <= 0.20 + 1e-9,
                f"{percent(alone.format_failures)}% format failures "
                f"({', '.join(f'{k} {v}' for k, v in sorted(alone.format_failure_kinds.items())) or 'none'}); "
                f"gold-alone accuracy {percent(alone.mean_accuracy)}%",
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


def _paired_checks(result: LitmResult) -> list[TargetCheck]:
    """From the trial records: every steering-vs-baseline paired difference's 95 % interval no wider than ±10
    points (the run is large enough to decide), and none entirely below -2 points (steering never significantly
    hurts)."""
    if not result.records:
        return []
    steered = [d for d in paired_differences(result.records) if d.condition.startswith("steer-")]
    if not steered:
        return []
    widest = max(steered, key=lambda d: d.ci_high - d.ci_low)
    half = (widest.ci_high - widest.ci_low) / 2
    harmed = [d for d in steered if d.ci_high < -0.02]
    return [
        TargetCheck(
            "steering vs baseline: every paired 95% interval within +-10 points",
            half <= 0.10 + 1e-9,
            f"widest +-{100 * half:.1f} points at {_where(widest)}, n={widest.n}",
        ),
        TargetCheck(
            "steering never significantly below the baseline (no paired interval entirely below -2 points)",
            not harmed,
            "none"
            if not harmed
            else "; ".join(
                f"{_where(d)}: {100 * d.mean:+.1f} [{100 * d.ci_low:+.1f}, {100 * d.ci_high:+.1f}]" for d in harmed
            ),
        ),
    ]


def _where(d: Any) -> str:
    return f"{d.condition} @{d.position} ({d.regime})"


def _oracle_gain_kept(result: LitmResult) -> list[TargetCheck]:
    """The share of the oracle regime's mean gain over the baseline that the retrieval regime keeps, per steered
    condition (the retriever's misses cost the rest)."""
    base_o, base_r = result.get("baseline", "oracle"), result.get("baseline", "retrieval")
    if base_o is None or base_r is None:
        return []
    checks = []
    for r in result.results:
        if r.regime != "oracle" or r.steering is None or r.condition.startswith("control-"):
            continue
        retrieved = result.get(r.condition, "retrieval")
        if retrieved is None:
            continue
        oracle_gain = r.mean_accuracy - base_o.mean_accuracy
        retrieval_gain = retrieved.mean_accuracy - base_r.mean_accuracy
        if oracle_gain <= 1e-9:
            continue
        kept = retrieval_gain / oracle_gain
        detail = (
            f"{percent(kept)}% ({100 * retrieval_gain:+.1f} of {100 * oracle_gain:+.1f} points, mean over positions"
        )
        shared = oracle_gain_kept(result.records, r.condition) if result.records else None
        if shared is not None:
            detail += (
                f"; 95% interval {percent(shared.ci_low)}-{percent(shared.ci_high)}% over {shared.questions} questions"
            )
        checks.append(
            TargetCheck(
                f"{r.condition}: the retrieval regime keeps >= 90% of the oracle gain",
                kept >= 0.90 - 1e-9,
                detail + ")",
            )
        )
    return checks
