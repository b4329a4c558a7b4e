"""Steer the retriever's top two passages when its ranking is a close call? Measured on calibration questions.

Where the benchmark's retriever (all-MiniLM-L6-v2 over title and text) ranks a distractor first, steering the
top passage commits the model to the distractor. When the best passage leads the next by a small normalized
margin (``posrag.steering.confidence.normalized_margin``: the gap in units of the scores' spread), the gold
passage is often second. This script asks whether steering the top two (``SteeringConfig(top_k=2)``) on those
close calls wins more than it costs, from two runs of ``posrag bench litm`` on the same questions:

* ``--top1``: baseline and attention steering, oracle and retrieval regimes, library defaults (``top_k=1``);
* ``--top2``: retrieval-regime steering with ``--steering '{"top_k": 2}'`` on the questions whose margin is
  under the largest threshold tried (outside them a rule at that threshold steers exactly as ``top_k=1``, so
  the same prompt and plan give the same greedy answer); ``--write-questions FILE`` writes those questions.

For each threshold it prints the retrieval regime's accuracy per position and the share of the oracle gain it
keeps, taking the top-two trial where the margin is under the threshold and the top-one trial elsewhere. Run
from the repository root (about a minute: it embeds each question's passages once):

    python benchmarks/close_calls.py --data docs/data/nq-mined-calibration-20.jsonl.gz --num-docs 10 \\
        --top1 docs/calibration/close-calls/top1.json \\
        --top2 docs/calibration/close-calls/top2-close-0.json docs/calibration/close-calls/top2-close-1.json
"""

from __future__ import annotations

import argparse
import gzip
import json
from collections import Counter
from pathlib import Path

from posrag.bench.data import LitmRecord, fit_documents, load_records
from posrag.bench.results import TrialRecord
from posrag.bench.runner import retrieval_scores
from posrag.bench.shards import read_result
from posrag.models import load_embedder
from posrag.steering.confidence import normalized_margin

THRESHOLDS = (0.25, 0.5, 0.75, 1.0)
STEER = "steer-attention"


def _trials(paths: list[Path], condition: str, regime: str) -> dict[tuple[str, int], TrialRecord]:
    out = {}
    for path in paths:
        for trial in read_result(path).records:
            if trial.condition == condition and trial.regime == regime:
                out[(trial.question_id, trial.position)] = trial
    return out


def _margins(records: list[LitmRecord]) -> dict[str, float]:
    """Each question's margin between the retriever's best and second-best passage, in spreads."""
    embedder = load_embedder()
    return {r.id: normalized_margin(retrieval_scores(r, embedder), 1) for r in records}


def write_close_calls(data: Path, num_docs: int, out: Path) -> None:
    """The records of ``data`` whose margin is under the largest threshold, as they are in ``data``."""
    margin = _margins(fit_documents(load_records(data), num_docs))
    with gzip.open(data, "rt", encoding="utf-8") as handle:
        lines = [line for line in handle if line.strip()]
    kept = [line for line in lines if margin[str(json.loads(line)["id"])] < max(THRESHOLDS)]
    with gzip.open(out, "wt", encoding="utf-8") as handle:
        handle.writelines(kept)
    print(f"wrote {len(kept)} of {len(lines)} questions to {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--num-docs", type=int, default=10)
    parser.add_argument("--top1", type=Path, nargs="+")
    parser.add_argument("--top2", type=Path, nargs="+")
    parser.add_argument("--write-questions", type=Path, help="write the close calls of --data here (.jsonl.gz)")
    args = parser.parse_args()
    if args.write_questions:
        write_close_calls(args.data, args.num_docs, args.write_questions)
        return
    if not args.top1 or not args.top2:
        parser.error("--top1 and --top2 are needed (or --write-questions)")

    one = _trials(args.top1, STEER, "retrieval")
    oracle = _trials(args.top1, STEER, "oracle")
    baseline = _trials(args.top1, "baseline", "retrieval")
    two = _trials(args.top2, STEER, "retrieval")
    again = _trials(args.top2, "baseline", "retrieval")
    same = sum(again[k].prediction == baseline[k].prediction for k in again)
    print(f"baseline reproduced on the top-two questions: {same} of {len(again)} predictions identical")

    asked = {q for q, _ in one}
    margin = _margins([r for r in fit_documents(load_records(args.data), args.num_docs) if r.id in asked])
    missing = {q for q, _ in two} - {q for q, m in margin.items() if m < max(THRESHOLDS)}
    if missing:
        raise SystemExit(f"--top2 ran questions outside the close calls: {sorted(missing)[:5]}")
    positions = sorted({p for _, p in one})

    moves = Counter((one[k].gold_rank == 1, one[k].correct, two[k].correct) for k in two)
    print("trials on the close calls (top-1 right?, top-1 steering correct, top-2 steering correct): count")
    for key, count in sorted(moves.items()):
        print(f"  {key}: {count}")

    def row(threshold: float | None) -> str:
        def chosen(k: tuple[str, int]) -> TrialRecord:
            return two[k] if threshold is not None and margin[k[0]] < threshold else one[k]

        gains, oracle_gains, accuracy = [], [], []
        for position in positions:
            keys = [k for k in one if k[1] == position]
            n = len(keys)
            steered = sum(chosen(k).correct for k in keys) / n
            base = sum(baseline[k].correct for k in keys) / n
            gains.append(steered - base)
            oracle_gains.append(sum(oracle[k].correct for k in keys) / n - base)
            accuracy.append(f"{100 * steered:4.1f}")
        share = sum(gains) / sum(oracle_gains)
        label = "top_k=1 always" if threshold is None else f"top two under {threshold:.2f}"
        count = len(margin) if threshold is None else sum(m < threshold for m in margin.values())
        return f"{label:22s} {count:4d} q  {' / '.join(accuracy)}  share of the oracle gain {100 * share:.1f} %"

    print(f"retrieval-regime steering, {len(margin)} questions, positions {positions}:")
    print(row(None))
    for threshold in THRESHOLDS:
        print(row(threshold))


if __name__ == "__main__":
    main()
