"""The 20-document Gemma run with the titled retriever, re-run only where the title changes what is steered.

In the retrieval regime steering aims at the retriever's top passage; the prompt (gold moved to the position,
distractors in their order) does not depend on the retriever. So a steering trial depends on the retriever only
through its top passage, and greedy decoding gives the same answer to the same prompt and plan. This script:

* ``--write-questions FILE``: writes the questions of ``--data`` (first ``--limit``, ``--num-docs`` documents)
  whose top passage differs between the text-only retriever (what the published run used) and the titled one
  (``LitmDocument.passage``, what the benchmark uses now): the only ones whose steering trials can change;
* ``--old`` / ``--new``: takes the published run's trials (``--old``, every file; for a (question, position) in
  several, the last file wins, so a later re-run of some positions goes last) and replaces the steering trials
  of the re-run questions with ``--new``'s, then prints the paired differences to the baseline and recall@1
  before and after. ``--new`` must reproduce the old baseline trial for trial (checked).

    python benchmarks/titled_top1.py --data docs/data/nq-mined-eval-300-20.jsonl.gz --num-docs 20 --limit 150 \\
        --write-questions docs/evidence/gemma-nq-20-titled-changed/questions.jsonl.gz
    python benchmarks/titled_top1.py --old docs/evidence/gemma-nq-20.json docs/evidence/gemma-nq-20-late.json \\
        --new docs/evidence/gemma-nq-20-titled-changed/shard-*.json
"""

from __future__ import annotations

import argparse
import gzip
import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from posrag.bench.data import fit_documents, load_records
from posrag.bench.paired import format_paired, paired_differences
from posrag.bench.results import TrialRecord
from posrag.bench.runner import retrieval_scores
from posrag.bench.shards import read_result
from posrag.models import load_embedder
from posrag.ranking import rank

STEER = "steer-attention"


def write_questions(data: Path, num_docs: int, limit: int, out: Path) -> None:
    records = fit_documents(load_records(data, limit=limit), num_docs)
    embedder = load_embedder()
    changed = set()
    for record in records:
        # The benchmark's own ranking, of each passage's text alone (an untitled passage is its text) and of
        # its title and text.
        untitled = replace(record, documents=tuple(replace(d, title="") for d in record.documents))
        if rank(retrieval_scores(untitled, embedder))[0] != rank(retrieval_scores(record, embedder))[0]:
            changed.add(record.id)
    with gzip.open(data, "rt", encoding="utf-8") as handle:
        lines = [line for line in handle if line.strip()][:limit]
    kept = [line for line in lines if str(json.loads(line)["id"]) in changed]
    with gzip.open(out, "wt", encoding="utf-8") as handle:
        handle.writelines(kept)
    print(f"{len(kept)} of {len(lines)} questions change their top passage; written to {out}")


def _retrieval(paths: list[Path]) -> dict[tuple[str, str, int], TrialRecord]:
    out = {}
    for path in paths:
        for trial in read_result(path).records:
            if trial.regime == "retrieval" and trial.condition in ("baseline", STEER):
                out[(trial.condition, trial.question_id, trial.position)] = trial
    return out


def report(old_paths: list[Path], new_paths: list[Path]) -> None:
    old, new = _retrieval(old_paths), _retrieval(new_paths)
    same = sum(new[k].prediction == old[k].prediction for k in new if k[0] == "baseline")
    total = sum(1 for k in new if k[0] == "baseline")
    print(f"re-run questions: {len({k[1] for k in new})}; baseline reproduced {same} of {total} predictions")
    if same != total:
        raise SystemExit("the re-run's baseline differs from the published run's: not the same setup")
    merged = {**old, **{k: v for k, v in new.items() if k[0] == STEER}}
    for name, trials in (("text-only retriever (published)", old), ("titled retriever", merged)):
        steer = [t for k, t in trials.items() if k[0] == STEER]
        ranks = {t.question_id: t.gold_rank for t in steer}
        recall = sum(r == 1 for r in ranks.values()) / len(ranks)
        accuracy = {}
        for t in steer:
            accuracy.setdefault(t.position, []).append(t.correct)
        print(f"\n{name}: recall@1 {recall:.3f} over {len(ranks)} questions; steering accuracy by position: ")
        print("  " + " / ".join(f"{p}: {100 * np.mean(v):.1f} %" for p, v in sorted(accuracy.items())))
        print(format_paired(paired_differences(list(trials.values()))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path)
    parser.add_argument("--num-docs", type=int, default=20)
    parser.add_argument("--limit", type=int, default=150)
    parser.add_argument("--write-questions", type=Path)
    parser.add_argument("--old", type=Path, nargs="+")
    parser.add_argument("--new", type=Path, nargs="+")
    args = parser.parse_args()
    if args.write_questions:
        if args.data is None:
            parser.error("--write-questions needs --data")
        write_questions(args.data, args.num_docs, args.limit, args.write_questions)
    elif args.old and args.new:
        report(args.old, args.new)
    else:
        parser.error("pass --write-questions (with --data), or --old and --new")


if __name__ == "__main__":
    main()
