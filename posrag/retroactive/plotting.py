"""A picture of an exploration: how the top next-token probabilities shift with the gap."""

from __future__ import annotations

import os
from pathlib import Path

from posrag.retroactive.results import ExplorationResult


def _label(token: str) -> str:
    return repr(token)[1:-1] or "∅"


def plot_exploration(result: ExplorationResult, path: str | os.PathLike[str], *, title: str | None = None) -> Path:
    """Save a two-panel figure to ``path`` (format from its suffix) and return the path.

    Top: the probability of the top and second prediction at each gap (each point labelled with its token),
    and of the gap-0 top prediction as the token moves away. Bottom: entropy and KL from gap 0 (nats).
    Uses matplotlib's object API, so no global pyplot state or backend is touched.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    points = sorted({e.gap: e for e in (result.baseline, *result.explorations)}.items())
    gaps = [g for g, _ in points]
    rows = [e for _, e in points]
    figure = Figure(figsize=(8, 6.5), constrained_layout=True)
    FigureCanvasAgg(figure)
    top, bottom = figure.subplots(2, 1, sharex=True, height_ratios=(2, 1))
    top.plot(gaps, [e.top_next_prob for e in rows], "o-", label="top prediction")
    second = [(g, e.top_probs[1]) for g, e in zip(gaps, rows, strict=True) if len(e.top_probs) > 1]
    if second:
        top.plot(*zip(*second, strict=True), "s--", label="second prediction")
    baseline_label = f"gap-0 top prediction ({_label(result.baseline.top_next_token)})"
    top.plot(gaps, [e.baseline_token_prob for e in rows], "^:", label=baseline_label)
    for gap, e in zip(gaps, rows, strict=True):
        top.annotate(
            _label(e.top_next_token),
            (gap, e.top_next_prob),
            textcoords="offset points",
            xytext=(0, 6),
            ha="center",
            fontsize=8,
        )
    top.set_ylabel("probability of the next token")
    top.set_ylim(0, min(1.0, max(e.top_next_prob for e in rows) * 1.25 + 0.02))
    top.legend(loc="best", fontsize=8)
    top.set_title(
        title or f"Token {result.original_token!r} (natural position {result.original_position}) placed at later gaps"
    )
    bottom.plot(gaps, [e.entropy for e in rows], "o-", label="entropy")
    bottom.plot(gaps, [e.kl_divergence for e in rows], "s--", label="KL from gap 0")
    bottom.set_xlabel("gap (positions after the natural one)")
    bottom.set_ylabel("nats")
    bottom.legend(loc="best", fontsize=8)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=120)
    return out


__all__ = ["plot_exploration"]
