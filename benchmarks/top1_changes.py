"""A retrieval-regime run re-run only where a new retriever changes what is steered.

In the retrieval regime steering aims at the retriever's top passage; the prompt (gold moved to the position,
distractors in their order) does not depend on the retriever. So a steering trial depends on the retriever only
through its top passage, and greedy decoding gives the same answer to the same prompt and plan. The retrievers,
each :func:`posrag.relevance.embedding_relevance` of the packaged embedder:

* ``text``: the passage's text alone (the benchmark's retriever until 2026-12-04);
* ``passage``: its title and text (2026-12-04);
* ``passage+sentence``: that plus its best sentence's cosine (:func:`posrag.bench.runner.retrieval_scores`, now).

This script:

* ``--write-questions FILE``: writes the questions of ``--data`` (first ``--limit``, ``--num-docs`` documents)
  whose top passage differs between ``--before`` (what the published run used) and ``--after``: the only ones
  whose steering trials can change;
* ``--old`` / ``--new``: takes the published run's trials (``--old``, every file; for a (question, position) in
  several, the last file wins, so a later re-run of some positions goes last) and replaces the steering trials
  of the re-run questions with ``--new``'s, then prints the paired differences to the baseline and recall@1
  before and after, and the share of the oracle's gain kept where ``--old`` holds oracle trials. ``--new``
  must reproduce the old baseline trial for trial (checked). ``--reordered``: a re-run of the conditions
  that order by the retriever's scores (hybrid, ``long_context``: any change in the ranking changes their
  prompt) at one position, standing for every position (``_position_free``), in either regime.

    python benchmarks/top1_changes.py --data docs/data/nq-mined-eval-300-20.jsonl.gz --num-docs 20 --limit 150 \\
        --before text --after passage --write-questions docs/evidence/gemma-nq-20-titled-changed/questions.jsonl.gz
    python benchmarks/top1_changes.py --old docs/evidence/gemma-nq-20.json docs/evidence/gemma-nq-20-late.json \\
        --new docs/evidence/gemma-nq-20-titled-changed/shard-*.json
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from posrag.bench.data import LitmRecord, fit_documents, load_records
from posrag.bench.paired import format_paired, oracle_gain_kept, paired_differences
from posrag.bench.results import TrialRecord
from posrag.bench.runner import retrieval_scores
from posrag.bench.shards import read_result
from posrag.models import load_embedder
from posrag.ranking import rank
from posrag.relevance import embedding_relevance

STEER = "steer-attention"
HYBRID = "hybrid"
#: The conditions that order the passages by the retriever's scores: any change in the ranking changes their prompt.
REORDERED = (HYBRID, "long_context")
RETRIEVERS = ("text", "passage", "passage+sentence")


def scores(record: LitmRecord, retriever: str, embedder: object) -> list[float]:
    """The retriever's score of each of the record's documents (module docstring); ``passage+sentence`` is the
    benchmark's own."""
    if retriever == "passage+sentence":
        return retrieval_scores(record, embedder)
    texts = [d.text for d in record.documents]
    titles = [d.title for d in record.documents] if retriever == "passage" else None
    return list(embedding_relevance(record.question, texts, embedder, titles=titles).scores)


def write_questions(data: Path, num_docs: int, limit: int, before: str, after: str, out: Path) -> None:
    records = fit_documents(load_records(data, limit=limit), num_docs)
    embedder = load_embedder()
    changed = set()
    for record in records:
        if rank(scores(record, before, embedder))[0] != rank(scores(record, after, embedder))[0]:
            changed.add(record.id)
    with gzip.open(data, "rt", encoding="utf-8") as handle:
        lines = [line for line in handle if line.strip()][:limit]
    kept = [line for line in lines if str(json.loads(line)["id"]) in changed]
    with gzip.open(out, "wt", encoding="utf-8") as handle:
        handle.writelines(kept)
    print(f"{len(kept)} of {len(lines)} questions change their top passage; written to {out}")


def _load(paths: list[Path]) -> list[TrialRecord]:
    """Every trial of the result files, in the order given (a later file's trial wins in :func:`_trials`)."""
    return [trial for path in paths for trial in read_result(path).records]


def _trials(
    records: list[TrialRecord], regime: str, conditions: tuple[str, ...]
) -> dict[tuple[str, str, int], TrialRecord]:
    return {
        (trial.condition, trial.question_id, trial.position): trial
        for trial in records
        if trial.regime == regime and trial.condition in conditions
    }


def _accuracy(trials: dict[tuple[str, str, int], TrialRecord], condition: str) -> dict[int, float]:
    by_position: dict[int, list[bool]] = {}
    for (name, _, position), trial in trials.items():
        if name == condition:
            by_position.setdefault(position, []).append(trial.correct)
    return {p: 100 * float(np.mean(v)) for p, v in sorted(by_position.items())}


def _position_free(
    trials: dict[tuple[str, str, int], TrialRecord], new: list[TrialRecord], regime: str, condition: str
) -> dict:
    """A condition that orders the passages by the retriever's scores (hybrid, ``long_context``; in both regimes:
    the oracle regime only aims hybrid's steering at the gold passage) gives a prompt that does not depend on where
    the gold passage came from: checked on the published trials (one prediction per question), then the re-run's
    trial of each question (at any position) in ``regime`` stands for every position. Empty when the re-run has
    no such trial."""
    rerun = {k[1]: t for k, t in _trials(new, regime, (condition,)).items()}
    if not rerun:
        return {}
    published = {k: t for k, t in trials.items() if k[0] == condition}
    predictions: dict[str, set[str]] = {}
    for (_, question, _), trial in published.items():
        predictions.setdefault(question, set()).add(trial.prediction)
    varying = sum(len(p) > 1 for p in predictions.values())
    print(f"published {condition} trials ({regime}): {varying} of {len(predictions)} questions differ by position")
    if varying:
        raise SystemExit(f"{condition} depends on the position here: re-run it at every position")
    return {k: replace(rerun[k[1]], position=k[2]) for k in published if k[1] in rerun}


def _check_baseline(name: str, rerun: list[TrialRecord], published: dict[tuple[str, str, int], TrialRecord]) -> None:
    """A re-run's baseline trials (either regime: the baseline does not steer) must repeat the published ones: the
    same prompts, model and settings."""
    again = {k: t for k, t in _trials(rerun, "retrieval", ("baseline",)).items() if k in published}
    again.update({k: t for k, t in _trials(rerun, "oracle", ("baseline",)).items() if k in published})
    same = sum(t.prediction == published[k].prediction for k, t in again.items())
    print(f"{name}: baseline reproduced {same} of {len(again)} predictions")
    if same != len(again):
        raise SystemExit("the re-run's baseline differs from the published run's: not the same setup")


def report(old_paths: list[Path], new_paths: list[Path], reordered_paths: list[Path] | None = None) -> None:
    published = _load(old_paths)
    old = _trials(published, "retrieval", ("baseline", STEER, *REORDERED))
    rerun_steering = _load(new_paths)
    new = _trials(rerun_steering, "retrieval", ("baseline", STEER))
    oracle = {**_trials(published, "retrieval", ("baseline",)), **_trials(published, "oracle", (STEER, HYBRID))}
    _check_baseline(f"re-run questions ({len({k[1] for k in new})})", rerun_steering, old)
    merged = {**old, **{k: v for k, v in new.items() if k[0] == STEER}}
    oracle_now = dict(oracle)
    if reordered_paths:
        rerun = _load(reordered_paths)
        _check_baseline("reordered re-run", rerun, old)
        for (regime, trials), condition in itertools.product(
            (("retrieval", merged), ("oracle", oracle_now)), REORDERED
        ):
            before = {k: t for k, t in trials.items() if k[0] == condition}
            replaced = _position_free(before, rerun, regime, condition)
            changed = sum(replaced[k].prediction != before[k].prediction for k in replaced)
            won = sum(replaced[k].correct and not before[k].correct for k in replaced)
            lost = sum(before[k].correct and not replaced[k].correct for k in replaced)
            if replaced:
                print(
                    f"{condition} re-run ({regime}): {len(replaced)} trials replaced, {changed} predictions changed "
                    f"({won} now right, {lost} now wrong)"
                )
            trials.update(replaced)
    for name, trials, reference in (("published run", old, oracle), ("with the re-run questions", merged, oracle_now)):
        steer = [t for k, t in trials.items() if k[0] == STEER]
        ranks = {t.question_id: t.gold_rank for t in steer}
        recall = sum(r == 1 for r in ranks.values()) / len(ranks)
        print(f"\n{name}: recall@1 {recall:.3f} over {len(ranks)} questions")
        for condition in (STEER, *REORDERED):
            accuracy = _accuracy(trials, condition)
            if not accuracy:
                continue
            line = " / ".join(f"{p}: {a:.1f} %" for p, a in accuracy.items())
            share = ""
            oracle_trials = [t for k, t in reference.items() if k[0] == condition]
            kept = oracle_gain_kept([*trials.values(), *oracle_trials], condition) if oracle_trials else None
            if kept is not None:
                share = (
                    f"; lift {kept.kept:+.1f} of the oracle's {kept.gain:+.1f} points: {100 * kept.share:.1f} % kept "
                    f"[95 % interval {100 * kept.ci_low:.1f}-{100 * kept.ci_high:.1f} %, {kept.questions} questions]"
                )
            print(f"  {condition}: {line}{share}")
        print(format_paired(paired_differences(list(trials.values()))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path)
    parser.add_argument("--num-docs", type=int, default=20)
    parser.add_argument("--limit", type=int, default=150)
    parser.add_argument("--before", choices=RETRIEVERS, default="text", help="the published run's retriever")
    parser.add_argument("--after", choices=RETRIEVERS, default="passage+sentence", help="the new retriever")
    parser.add_argument("--write-questions", type=Path)
    parser.add_argument("--old", type=Path, nargs="+")
    parser.add_argument("--new", type=Path, nargs="+")
    parser.add_argument(
        "--reordered",
        type=Path,
        nargs="+",
        help="a re-run of the conditions that order by the retriever (hybrid, long_context; any one position)",
    )
    args = parser.parse_args()
    if args.write_questions:
        if args.data is None:
            parser.error("--write-questions needs --data")
        write_questions(args.data, args.num_docs, args.limit, args.before, args.after, args.write_questions)
    elif args.old and args.new:
        report(args.old, args.new, args.reordered)
    else:
        parser.error("pass --write-questions (with --data), or --old and --new")


if __name__ == "__main__":
    main()
