"""Paired differences: against the baseline (same question, same gold position, another condition), and
between two runs of the same benchmark (same trial, another backend or version: :func:`paired_runs`).

Accuracy differences between conditions measured on the same questions are far less noisy than the difference
of two accuracies, so each condition is compared with the baseline trial by trial: ``d = correct(condition) -
correct(baseline)`` in {-1, 0, 1}, averaged per (condition, regime, position), with a 95 % normal interval of
the mean (``mean ± 1.96·s/√n``, ``s`` the sample standard deviation of the ``d``) and the counts of trials the
condition won and lost.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from posrag.bench.results import TrialRecord

Z95 = 1.959964


@dataclass(frozen=True)
class PairedDifference:
    """``condition`` minus the baseline at one position and regime, over ``n`` paired trials."""

    condition: str
    regime: str
    position: int
    n: int
    mean: float
    ci_low: float
    ci_high: float
    wins: int
    losses: int

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def paired_differences(trials: Sequence[TrialRecord], baseline: str = "baseline") -> list[PairedDifference]:
    """Every non-baseline condition's paired difference to ``baseline``, by regime and position.

    The baseline is matched by question and position in the same regime, or in any regime (it does not steer,
    so it is the same trial in both).
    """
    base: dict[tuple[str, int], bool] = {}
    for t in trials:
        if t.condition == baseline:
            base[(t.question_id, t.position)] = t.correct
    groups: dict[tuple[str, str, int], list[int]] = defaultdict(list)
    for t in trials:
        if t.condition == baseline or (t.question_id, t.position) not in base:
            continue
        groups[(t.condition, t.regime, t.position)].append(int(t.correct) - int(base[(t.question_id, t.position)]))
    out = []
    for (condition, regime, position), diffs in sorted(groups.items()):
        mean, low, high = _mean_interval(diffs)
        out.append(
            PairedDifference(condition, regime, position, len(diffs), mean, low, high, diffs.count(1), diffs.count(-1))
        )
    return out


def _mean_interval(diffs: Sequence[int]) -> tuple[float, float, float]:
    """The mean of paired differences and its 95 % normal interval (``mean ± 1.96·s/√n``)."""
    n = len(diffs)
    mean = sum(diffs) / n
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1)) if n > 1 else 0.0
    half = Z95 * sd / math.sqrt(n)
    return mean, mean - half, mean + half


@dataclass(frozen=True)
class GainKept:
    """The share of the oracle regime's gain over the baseline that the retrieval regime keeps, for one condition:
    ``share = (retrieval - baseline) / (oracle - baseline)``, accuracies averaged over the positions of the
    ``questions`` that have all three at every position, with a 95 % percentile bootstrap interval over those
    questions (``resamples``, seeded: the same trials give the same interval). ``kept`` and ``gain`` are the two
    lifts in accuracy points."""

    condition: str
    questions: int
    kept: float
    gain: float
    share: float
    ci_low: float
    ci_high: float
    resamples: int

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def oracle_gain_kept(
    trials: Sequence[TrialRecord], condition: str, *, baseline: str = "baseline", resamples: int = 2000
) -> GainKept | None:
    """:class:`GainKept` of ``condition`` from its oracle and retrieval trials and the baseline's (either regime:
    it does not steer); ``None`` when no question has all three at the same positions or the oracle gains nothing.

    The interval resamples questions, not trials: a question's positions share its difficulty, so they move
    together. Resamples whose oracle gain is not positive (the share is undefined there) are left out.
    """
    import numpy as np

    base: dict[tuple[str, int], bool] = {}
    runs: dict[str, dict[tuple[str, int], bool]] = {"oracle": {}, "retrieval": {}}
    for t in trials:
        if t.condition == baseline:
            base[(t.question_id, t.position)] = t.correct
        elif t.condition == condition and t.regime in runs:
            runs[t.regime][(t.question_id, t.position)] = t.correct
    by_question: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for key in runs["oracle"]:
        if key in runs["retrieval"] and key in base:
            by_question[key[0]].append(key)
    if not by_question:
        return None
    rows = np.array(
        [
            [np.mean([float(table[k]) for k in keys]) for table in (base, runs["oracle"], runs["retrieval"])]
            for keys in by_question.values()
        ]
    )
    b, o, r = rows.mean(axis=0)
    if o - b <= 1e-12:
        return None
    picks = np.random.default_rng(0).integers(0, len(rows), size=(resamples, len(rows)))
    sums = rows[picks].mean(axis=1)  # resamples x (baseline, oracle, retrieval)
    gains = sums[:, 1] - sums[:, 0]
    shares = (sums[gains > 1e-12, 2] - sums[gains > 1e-12, 0]) / gains[gains > 1e-12]
    low, high = np.percentile(shares, [2.5, 97.5])
    return GainKept(
        condition,
        len(rows),
        float(100 * (r - b)),
        float(100 * (o - b)),
        float((r - b) / (o - b)),
        float(low),
        float(high),
        resamples,
    )


@dataclass(frozen=True)
class RunDifference:
    """Run B minus run A for one condition, regime and position, over ``n`` matched trials: the paired mean
    difference of correctness with its 95 % interval, the trials B won and lost, and ``changed``: how many
    answers (first output lines) differ at all, right or wrong."""

    condition: str
    regime: str
    position: int
    n: int
    mean: float
    ci_low: float
    ci_high: float
    wins: int
    losses: int
    changed: int
    accuracy_a: float
    accuracy_b: float

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def paired_runs(a: Sequence[TrialRecord], b: Sequence[TrialRecord]) -> list[RunDifference]:
    """Each trial of run ``b`` against the same trial of run ``a`` (same question, position, condition, regime).

    Both runs must hold the same trials (two backends, or two versions, on one data file and settings);
    trials found in one run only are refused, so a partial run is never compared as if it were whole.
    """
    from posrag.errors import ConfigurationError

    def keyed(trials: Sequence[TrialRecord]) -> dict[tuple[str, str, str, int], TrialRecord]:
        return {(t.condition, t.regime, t.question_id, t.position): t for t in trials}

    first, second = keyed(a), keyed(b)
    if first.keys() != second.keys():
        only_a, only_b = len(first.keys() - second.keys()), len(second.keys() - first.keys())
        raise ConfigurationError(
            f"The runs hold different trials ({only_a} only in the first, {only_b} only in the second); compare "
            "two runs of the same data, limit, positions, conditions and regimes."
        )
    groups: dict[tuple[str, str, int], list[tuple[TrialRecord, TrialRecord]]] = defaultdict(list)
    for key, trial in first.items():
        groups[(key[0], key[1], key[3])].append((trial, second[key]))
    out = []
    for (condition, regime, position), pairs in sorted(groups.items()):
        diffs = [int(y.correct) - int(x.correct) for x, y in pairs]
        n = len(diffs)
        mean, low, high = _mean_interval(diffs)
        out.append(
            RunDifference(
                condition,
                regime,
                position,
                n,
                mean,
                low,
                high,
                diffs.count(1),
                diffs.count(-1),
                sum(x.prediction != y.prediction for x, y in pairs),
                sum(x.correct for x, _ in pairs) / n,
                sum(y.correct for _, y in pairs) / n,
            )
        )
    return out


def format_run_differences(differences: Sequence[RunDifference], names: tuple[str, str] = ("A", "B")) -> str:
    """Markdown: per regime, a row per condition and position: both accuracies, B - A with its interval, and the
    answers that changed."""
    a, b = names
    lines: list[str] = []
    for regime in dict.fromkeys(d.regime for d in differences):
        lines += [
            f"#### {b} minus {a}, {regime} regime (points, paired 95 % interval)",
            "",
            f"| condition | position | n | {a} % | {b} % | {b} - {a} [95 % CI] | wins / losses | answers changed |",
            "|---|--:|--:|--:|--:|--:|--:|--:|",
        ]
        for d in (d for d in differences if d.regime == regime):
            lines.append(
                f"| {d.condition} | {d.position} | {d.n} | {100 * d.accuracy_a:.0f} | {100 * d.accuracy_b:.0f} | "
                f"{100 * d.mean:+.1f} [{100 * d.ci_low:+.1f}, {100 * d.ci_high:+.1f}] | {d.wins} / {d.losses} | "
                f"{d.changed} |"
            )
        lines.append("")
    return "\n".join(lines)


def format_paired(differences: Sequence[PairedDifference]) -> str:
    """Markdown: one table per regime, a row per condition, ``+d [low, high]`` points per position."""
    lines: list[str] = []
    for regime in dict.fromkeys(d.regime for d in differences):
        rows = [d for d in differences if d.regime == regime]
        positions = sorted({d.position for d in rows})
        lines += [
            f"#### Paired difference to the baseline, {regime} regime (points, 95 % interval)",
            "",
            "| condition | " + " | ".join(f"pos {p}" for p in positions) + " | worst |",
            "|---|" + "--:|" * (len(positions) + 1),
        ]
        for condition in dict.fromkeys(d.condition for d in rows):
            cells = {d.position: d for d in rows if d.condition == condition}
            text = [
                f"{100 * c.mean:+.0f} [{100 * c.ci_low:+.0f}, {100 * c.ci_high:+.0f}]" if (c := cells.get(p)) else "-"
                for p in positions
            ]
            worst = min(c.mean for c in cells.values())
            lines.append(f"| {condition} | " + " | ".join(text) + f" | {100 * worst:+.0f} |")
        lines.append("")
    return "\n".join(lines)


__all__ = [
    "GainKept",
    "PairedDifference",
    "RunDifference",
    "format_paired",
    "format_run_differences",
    "oracle_gain_kept",
    "paired_differences",
    "paired_runs",
]
