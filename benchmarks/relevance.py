"""Which relevance picks the answer document: recall@1 of the retriever, embedding and attention, and their cost.

For every question and every position of the gold document, the documents are put in a "Lost in the Middle"
prompt (posrag's default template) and ranked by:

* ``retriever``: the benchmark's retrieval scores (``LitmBenchmark.retrieval_scores``: cosine of the question to
  each document's title and text by the packaged MiniLM, through posrag's FAISS index);
* ``embedding``: :func:`posrag.relevance.embedding_relevance` as an unscored chain would run it: the query is
  the prompt's text after the last document (``query_after_documents``), the documents are the located spans;
* ``attention``: the model's attention from the query to each document, corrected for position with the
  content-free query (:func:`posrag.relevance.read_attention`); ``attention_raw``: uncorrected;
* ``rank_mean`` / ``z_mean``: embedding and attention combined (:func:`posrag.relevance.combine`).

Data: (a) the shipped synthetic set (20 documents, gold at 1/10/20); (b) NQ-open with mined, on-topic
distractors: each question's gold passage plus the ``--nq-docs - 1`` gold passages of *other* questions
nearest to the question by MiniLM, never one containing an answer (a minimal local version of the data
engineer's ``posrag.bench.nq``, which did not exist when this ran); gold at first, middle and last position.

Cost: per query, each method's time next to one plain prefill of the same prompt (the model's own attention
kernel, ``use_cache=True``, ``logits_to_keep=1``), medians of the per-query ratios. The confidence rule
(:mod:`posrag.steering.confidence`) is reported on the retriever's scores (alone, and checked against the
attention ranking): its mean multiplier when the retriever's top-1 is right and when it is wrong.

    python benchmarks/relevance.py                       # prints the Markdown tables
    python benchmarks/relevance.py --json relevance.json  # and writes the raw figures
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from posrag.bench.data import LitmDocument, LitmRecord, load_records, normalize_answer, packaged_dataset
from posrag.bench.runner import retrieval_scores
from posrag.documents import ScoredDocument
from posrag.models import load_causal_lm, load_embedder
from posrag.prompts import build_prompt
from posrag.relevance import RelevanceScores, combine, embedding_relevance, query_after_documents, read_attention
from posrag.steering.confidence import DEFAULT_CONFIDENCE

METHODS = ("retriever", "embedding", "attention", "attention_raw", "rank_mean", "z_mean")
NQ_PATH = Path("/work/shared/data/nq-open-oracle.jsonl.gz")


def _contains_answer(doc: dict[str, str], answers: Sequence[str]) -> bool:
    text = f" {normalize_answer(doc['title'] + ' ' + doc['text'])} "
    return any(f" {a} " in text for a in map(normalize_answer, answers) if a)


def nq_with_mined_distractors(path: Path, limit: int, num_docs: int, pool: int, embedder: Any) -> list[LitmRecord]:
    """The first ``limit`` questions of the oracle file, each with its gold passage and the ``num_docs - 1``
    gold passages of the first ``pool`` other questions nearest to it by the embedder, none with an answer."""
    rows = []
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        for line in handle:
            rows.append(json.loads(line))
            if len(rows) == pool:
                break
    passages = [next(c for c in row["ctxs"] if c.get("isgold")) for row in rows]
    passage_vectors = embedder.encode(
        [p["text"] for p in passages], normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
    )
    question_vectors = embedder.encode(
        [row["question"] for row in rows[:limit]],
        normalize_embeddings=True,
        convert_to_numpy=True,
        show_progress_bar=False,
    )
    records = []
    for i, row in enumerate(rows[:limit]):
        similarity = passage_vectors @ question_vectors[i]
        chosen = []
        for j in np.argsort(-similarity):
            if len(chosen) == num_docs - 1:
                break
            if j == i or passages[j]["text"] == passages[i]["text"] or _contains_answer(passages[j], row["answers"]):
                continue
            chosen.append(LitmDocument(passages[j]["title"], passages[j]["text"]))
        gold = LitmDocument(passages[i]["title"], passages[i]["text"], isgold=True)
        records.append(LitmRecord(f"nq-{i}", row["question"], tuple(row["answers"]), (gold, *chosen)))
    return records


def _timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def evaluate(
    name: str,
    records: Sequence[LitmRecord],
    positions: Sequence[int],
    lm: Any,
    embedder: Any,
    *,
    attention_questions: int,
    timed_trials: int,
) -> dict:
    """Recall@1 of every method at every gold position; the model's attention (and the combinations) only on the
    first ``attention_questions`` questions, costs on the first ``timed_trials`` trials that read attention."""
    model, tokenizer = lm.model, lm.tokenizer
    hits: dict[str, dict[int, list[bool]]] = {m: {p: [] for p in positions} for m in METHODS}
    seconds: dict[str, list[float]] = {m: [] for m in ("prefill", "embedding", "attention")}
    confidence: dict[str, list[dict[str, Any]]] = {"right": [], "wrong": []}
    tokens: list[int] = []
    for number, record in enumerate(records):
        retriever_scores = retrieval_scores(record, embedder)
        for position in positions:
            docs = record.with_gold_at(position)
            prompt = build_prompt(
                record.question, [ScoredDocument(d.text, {"title": d.title} if d.title else {}) for d in docs]
            )
            text, spans = prompt.text, [(s.start, s.end) for s in prompt.spans]
            gold = next(i for i, d in enumerate(docs) if d.isgold)
            ids = tokenizer(text, return_tensors="pt")["input_ids"].to(model.device)
            tokens.append(int(ids.shape[1]))
            query = query_after_documents(text, spans)
            by_embedding, t_embedding = _timed(
                lambda q=query, t=text, sp=spans: embedding_relevance(q, [t[s:e] for s, e in sp], embedder)
            )
            order = [record.documents.index(d) for d in docs]
            results: dict[str, RelevanceScores] = {
                "retriever": RelevanceScores("retriever", tuple(retriever_scores[i] for i in order)),
                "embedding": by_embedding,
            }
            if number < attention_questions:
                timed = len(seconds["attention"]) < timed_trials
                if timed:
                    with torch.inference_mode():
                        _, prefill = _timed(lambda i=ids: model(input_ids=i, use_cache=True, logits_to_keep=1))
                readout, t_attention = _timed(
                    lambda t=text, sp=spans, q=record.question: read_attention(model, tokenizer, t, sp, question=q)
                )
                if timed:
                    seconds["prefill"].append(prefill)
                    seconds["embedding"].append(t_embedding)
                    seconds["attention"].append(t_attention)
                results["attention"] = readout.relevance()
                results["attention_raw"] = readout.relevance(corrected=False)
                results["rank_mean"] = combine([results["embedding"], results["attention"]], "rank_mean")
                results["z_mean"] = combine([results["embedding"], results["attention"]], "z_mean")
                alone = DEFAULT_CONFIDENCE.assess(results["retriever"].scores)
                checked = DEFAULT_CONFIDENCE.assess(results["retriever"].scores, second=results["attention"].scores)
                key = "right" if results["retriever"].top() == gold else "wrong"
                confidence[key].append(
                    {"margin": alone.margin, "alone": alone.multiplier, "with_attention": checked.multiplier}
                )
            for method, result in results.items():
                hits[method][position].append(result.top() == gold)
            print(
                f"{name} q{number} gold@{position + 1}: "
                + " ".join(f"{m}={r.top() == gold:d}" for m, r in results.items()),
                file=sys.stderr,
                flush=True,
            )
    prefill_s = seconds["prefill"]
    return {
        "dataset": name,
        "questions": len(records),
        "attention_questions": min(attention_questions, len(records)),
        "documents": len(records[0].documents),
        "positions": [p + 1 for p in positions],
        "median_prompt_tokens": statistics.median(tokens),
        "trials": {m: sum(len(v) for v in by_pos.values()) for m, by_pos in hits.items()},
        "recall_at_1": {
            m: {str(p + 1): float(np.mean(v)) for p, v in by_pos.items()}
            | {"mean": float(np.mean([h for v in by_pos.values() for h in v]))}
            for m, by_pos in hits.items()
        },
        "timed_trials": len(prefill_s),
        "median_seconds": {m: statistics.median(v) for m, v in seconds.items() if v},
        "median_ratio_to_prefill": {
            m: statistics.median(t / p for t, p in zip(seconds[m], prefill_s, strict=True))
            for m in ("embedding", "attention")
            if prefill_s
        },
        "confidence": {
            key: {
                "n": len(rows),
                "median_margin": statistics.median(r["margin"] for r in rows) if rows else None,
                "mean_multiplier": float(np.mean([r["alone"] for r in rows])) if rows else None,
                "mean_multiplier_with_attention": float(np.mean([r["with_attention"] for r in rows])) if rows else None,
            }
            for key, rows in confidence.items()
        },
    }


def format_tables(results: Sequence[dict]) -> str:
    lines = []
    for result in results:
        cols = [*[str(p) for p in result["positions"]], "mean"]
        lines += [
            f"### {result['dataset']}: {result['questions']} questions ({result['attention_questions']} with the "
            f"model's attention), {result['documents']} documents, median prompt {result['median_prompt_tokens']:.0f} "
            "tokens",
            "",
            "| recall@1 | trials | " + " | ".join(f"gold at {c}" if c != "mean" else "mean" for c in cols) + " |",
            "|---|---:|" + "---:|" * len(cols),
        ]
        for method in METHODS:
            row = result["recall_at_1"][method]
            trials = result["trials"][method]
            lines.append(f"| {method} | {trials} | " + " | ".join(f"{100 * row[c]:.0f} %" for c in cols) + " |")
        lines += [
            "",
            f"| cost per query ({result['timed_trials']} trials) | median seconds | median ratio to a plain prefill |",
            "|---|---:|---:|",
        ]
        if result["timed_trials"]:
            lines.append(f"| plain prefill | {result['median_seconds']['prefill']:.3f} | 1.00 |")
        for method, ratio in result["median_ratio_to_prefill"].items():
            lines.append(f"| {method} | {result['median_seconds'][method]:.3f} | {ratio:.2f} |")
        lines += [
            "",
            "| retriever top-1 | trials | median margin (spreads) | confidence multiplier | with attention check |",
            "|---|---:|---:|---:|---:|",
        ]
        for key, row in result["confidence"].items():
            if row["n"]:
                lines.append(
                    f"| {key} | {row['n']} | {row['median_margin']:.2f} | {row['mean_multiplier']:.2f} | "
                    f"{row['mean_multiplier_with_attention']:.2f} |"
                )
            else:
                lines.append(f"| {key} | 0 | – | – | – |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--synthetic", type=int, default=30, help="questions of the shipped synthetic set")
    parser.add_argument("--nq", type=int, default=40, help="NQ-open questions")
    parser.add_argument("--nq-docs", type=int, default=10, help="documents per NQ question")
    parser.add_argument("--nq-pool", type=int, default=600, help="questions whose gold passages are distractors")
    parser.add_argument("--nq-path", type=Path, default=NQ_PATH)
    parser.add_argument("--attention-questions", type=int, default=10**6, help="questions that read attention")
    parser.add_argument("--timed", type=int, default=3, help="trials per dataset whose cost is measured")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    lm = load_causal_lm(progress=False)
    embedder = load_embedder()
    started = time.perf_counter()
    results = []
    kw = {"attention_questions": args.attention_questions, "timed_trials": args.timed}
    if args.synthetic:
        records = load_records(packaged_dataset("litm-synthetic-20"), limit=args.synthetic)
        n = len(records[0].documents)
        results.append(evaluate("synthetic (litm-synthetic-20)", records, [0, n // 2 - 1, n - 1], lm, embedder, **kw))
    if args.nq:
        records = nq_with_mined_distractors(args.nq_path, args.nq, args.nq_docs, args.nq_pool, embedder)
        n = args.nq_docs
        results.append(evaluate("NQ-open, mined distractors", records, [0, n // 2 - 1, n - 1], lm, embedder, **kw))
    environment = {
        "model": lm.name,
        "dtype": str(next(lm.model.parameters()).dtype),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "machine": platform.platform(),
        "when": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "wall_seconds": round(time.perf_counter() - started, 1),
    }
    print(format_tables(results))
    print(json.dumps(environment))
    if args.json:
        args.json.write_text(json.dumps({"environment": environment, "results": results}, indent=2))


if __name__ == "__main__":
    main()
