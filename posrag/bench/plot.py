"""The benchmark's figure: accuracy vs gold position, one line per condition, one panel per regime."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from posrag.bench.results import ConditionResult, LitmResult

#: Fixed colours, so a condition looks the same in every figure.
_COLOURS = {
    "baseline": "#222222",
    "recency": "#1f77b4",
    "graduated": "#6baed6",
    "sandwich": "#17becf",
    "long_context": "#9467bd",
    "none": "#999999",
    "steer-activation": "#ff7f0e",
    "steer-attention": "#2ca02c",
    "hybrid": "#d62728",
    "control-activation": "#c49c94",
    "control-attention": "#98df8a",
    "gold-alone": "#8c564b",
    "closed-book": "#bcbd22",
}


#: Conditions that give the same generations by construction (``none`` keeps the given order, ``graduated``
#: is ``recency``'s permutation); when their curves are equal they share one line.
_SAME_AS = {"none": "baseline", "graduated": "recency"}


def _curve(result: ConditionResult) -> tuple[tuple[int, int], ...]:
    return tuple((p.position, p.correct) for p in result.positions)


def plot_accuracy(
    result: LitmResult,
    path: str | os.PathLike[str],
    *,
    title: str | None = None,
    conditions: list[str] | None = None,
) -> Path:
    """Save the accuracy-vs-position figure of ``result`` (95 % intervals shaded) to ``path``; returns it."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    regimes = result.regimes
    fig, axes = plt.subplots(
        1, len(regimes), figsize=(6.4 * len(regimes), 6.0), sharey=True, squeeze=False, layout="constrained"
    )
    positions = list(result.positions)
    for ax, regime in zip(axes[0], regimes, strict=True):
        shown = {r.condition: r for r in result.results if r.regime == regime}
        # Conditions that are the same generations by construction draw one line, named in its label.
        merged: dict[str, list[str]] = {}
        for twin, into in _SAME_AS.items():
            if twin in shown and into in shown and _curve(shown[twin]) == _curve(shown[into]):
                merged.setdefault(into, []).append(twin)
                del shown[twin]
        for r in shown.values():
            if conditions is not None and r.condition not in conditions:
                continue
            control = r.condition.startswith("control-")
            colour = _COLOURS.get(r.condition)
            xs = [p.position for p in r.positions]
            ax.plot(
                xs,
                [100 * p.accuracy for p in r.positions],
                marker="o",
                markersize=4,
                linewidth=2.2 if r.condition in ("baseline", "hybrid") else 1.5,
                linestyle=":" if control else "-",
                color=colour,
                label=" = ".join([r.condition, *merged.get(r.condition, [])])
                + f" (mean {100 * r.mean_accuracy:.0f}, worst {100 * r.worst.accuracy:.0f})",
            )
            ax.fill_between(
                xs,
                [100 * p.ci_low for p in r.positions],
                [100 * p.ci_high for p in r.positions],
                color=colour,
                alpha=0.06,
                linewidth=0,
            )
        ax.axhline(
            100 * result.chance_accuracy,
            color="#bbbbbb",
            linestyle="--",
            linewidth=1,
            label="chance (1/docs)",
        )
        ax.set_xticks(positions)
        ax.set_xlabel(f"position of the gold document (of {result.data['num_docs']})")
        ax.set_title(
            f"{regime} regime"
            + (
                " (steering aims at the gold document)"
                if regime == "oracle"
                else " (ordering and steering use retriever scores)"
            ),
            fontsize=10,
        )
        ax.set_ylim(-2, 102)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2, frameon=False)
    axes[0][0].set_ylabel("accuracy (%)  — 95% Wilson intervals shaded")
    n = result.results[0].positions[0].n
    fig.suptitle(title or f"Lost in the middle: {result.model}, {n} questions per position", fontsize=12)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(target, dpi=130)
    plt.close(fig)
    return target


__all__ = ["plot_accuracy"]
