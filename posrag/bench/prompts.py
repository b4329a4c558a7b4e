"""Choosing the benchmark's prompt for a chat-templated model, on calibration questions.

Some chat-templated models do not answer under LITM's prompt: SmolLM2-135M-Instruct continues the document list
(``Document [21](Title: ...``) until its token budget ends, even with the gold document alone. Its baseline then
measures the format, not the position effect. :func:`choose_prompt` runs each candidate of
:data:`~posrag.bench.conditions.PROMPTS` with the gold document alone (``gold-alone``, and the baseline at
position 1 for reference) on *calibration* questions, and picks the one with the best gold-alone accuracy among
those with at most ``max_format_failures`` format failures (when none qualifies, the fewest failures). The
evaluation questions are never read: a file whose records carry ``"split": "evaluation"`` is refused.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from posrag.backends.base import Backend
from posrag.bench.conditions import PROMPTS, LitmConfig
from posrag.bench.data import LitmRecord, load_records
from posrag.bench.runner import LitmBenchmark
from posrag.errors import ConfigurationError

#: The issue's bar for a baseline that tries to answer: at most this share of format failures, gold alone.
MAX_FORMAT_FAILURES = 0.20


@dataclass(frozen=True)
class PromptScore:
    """One candidate prompt on the calibration questions."""

    prompt: str
    gold_alone: float
    gold_alone_format_failures: float
    baseline: float
    baseline_format_failures: float

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class PromptChoice:
    """The chosen prompt, every candidate's scores, and on what they were measured."""

    chosen: str
    scores: tuple[PromptScore, ...]
    questions: int
    chat_template: bool
    rule: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "chosen": self.chosen,
            "scores": [s.to_dict() for s in self.scores],
            "questions": self.questions,
            "chat_template": self.chat_template,
            "rule": self.rule,
        }

    def table(self) -> str:
        lines = [
            "| prompt | gold-alone % | format fail % | baseline @1 % | format fail % |",
            "|---|--:|--:|--:|--:|",
        ]
        for s in self.scores:
            mark = " (chosen)" if s.prompt == self.chosen else ""
            lines.append(
                f"| {s.prompt}{mark} | {100 * s.gold_alone:.0f} | {100 * s.gold_alone_format_failures:.0f} | "
                f"{100 * s.baseline:.0f} | {100 * s.baseline_format_failures:.0f} |"
            )
        return "\n".join(lines)


def calibration_records(path: str | Path) -> list[LitmRecord]:
    """The records of ``path``, refusing evaluation questions (records marked ``"split": "evaluation"``)."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as handle:
        splits = {json.loads(line).get("split") for line in handle if line.strip()}
    if "evaluation" in splits:
        raise ConfigurationError(
            f"{path} holds evaluation questions; choose the prompt on calibration questions only (e.g. "
            "`posrag bench make-nq --split calibration`, or docs/data/nq-mined-calibration-20.jsonl.gz)."
        )
    return load_records(path)


def choose_prompt(
    backend: Backend,
    records: Sequence[LitmRecord],
    *,
    candidates: Sequence[str] | None = None,
    config: LitmConfig | None = None,
    max_format_failures: float = MAX_FORMAT_FAILURES,
    embedder: Any = None,
    progress: bool = True,
) -> PromptChoice:
    """Score each candidate prompt (default: all of :data:`PROMPTS`) on ``records`` and pick one (module docstring).

    ``backend``: the model that answers (:func:`posrag.backends.load_backend`, or a
    :class:`~posrag.backends.torch.TorchBackend` over a loaded model).

    ``config``: the run's other settings (``chat_template``, generation); positions, conditions and regimes are
    set here (gold-alone and the baseline at position 1, oracle regime, no steering).
    """
    names = tuple(candidates or PROMPTS)
    unknown = [n for n in names if n not in PROMPTS]
    if unknown:
        raise ConfigurationError(f"Unknown prompt(s) {unknown}; choose from {', '.join(PROMPTS)}.")
    base = config or LitmConfig(chat_template="auto")
    scores = []
    applied = False
    for name in names:
        run_config = replace(
            base,
            prompt=name,
            template=PROMPTS["litm"].template,  # the candidate sets its own
            positions=(1,),
            conditions=("baseline", "gold-alone"),
            regimes=("oracle",),
        )
        bench = LitmBenchmark(backend, run_config, embedder=embedder)
        applied = bench.chat_template
        result = bench.run(records, progress=progress)
        alone, baseline = result.result("gold-alone"), result.result("baseline")
        scores.append(
            PromptScore(
                name,
                alone.mean_accuracy,
                alone.format_failures or 0.0,
                baseline.mean_accuracy,
                baseline.format_failures or 0.0,
            )
        )
    answering = [s for s in scores if s.gold_alone_format_failures <= max_format_failures + 1e-9]
    if answering:
        chosen = max(answering, key=lambda s: (s.gold_alone, -s.gold_alone_format_failures, -names.index(s.prompt)))
        rule = f"best gold-alone accuracy among prompts with <= {100 * max_format_failures:.0f}% format failures"
    else:
        chosen = min(scores, key=lambda s: (s.gold_alone_format_failures, -s.gold_alone, names.index(s.prompt)))
        rule = f"no prompt kept format failures <= {100 * max_format_failures:.0f}%: the fewest failures"
    return PromptChoice(chosen.prompt, tuple(scores), len(records), applied, rule)


__all__ = ["MAX_FORMAT_FAILURES", "PromptChoice", "PromptScore", "calibration_records", "choose_prompt"]
