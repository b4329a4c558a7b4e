"""What the benchmark's retriever should embed of a passage: recall@1 and @2 on NQ with mined distractors.

Compares, with the packaged all-MiniLM-L6-v2 (cosine, as ``posrag.bench.runner.retrieval_scores``):

* ``text``: the passage's text alone (what the retriever embedded before 2026-12-04);
* ``title+text``: its title, a newline and its text (``LitmDocument.passage``, what it embeds now);
* ``bm25``: Okapi BM25 of the question over title and text (IDF from every passage of the file);
* ``title+text & bm25``: the two z-scored per question and added (a hybrid dense + lexical ranking);
* ``title+text + best sentence``: the passage's cosine plus that of its best sentence (each sentence with the
  title; :func:`posrag.relevance.embedding_relevance` with ``sentences=True``, what the benchmark's retriever
  and posrag's own relevance use since 2026-12-04). Its time per question is printed against the passage's
  alone (both one ``encode`` call per question, side by side in this run).

The choice is made on the calibration questions and reported on the evaluation questions. Run from the
repository root (about half an hour on an idle 2-core CPU machine):

    python benchmarks/retriever_passages.py --json docs/calibration/retriever-passages.json
    python benchmarks/retriever_passages.py --num-docs 10 --json docs/calibration/retriever-sentences.json

(``retriever-passages.json`` was written before the best-sentence scorer was added, so it lacks its rows.)
"""

from __future__ import annotations

import argparse
import json
import math
import re
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from posrag.bench.data import LitmRecord, fit_documents, load_records
from posrag.models import load_embedder
from posrag.relevance import embedding_relevance

SETS = {
    "calibration": "docs/data/nq-mined-calibration-20.jsonl.gz",
    "evaluation": "docs/data/nq-mined-eval-300-20.jsonl.gz",
}
_WORD = re.compile(r"\w+")
_STOP = frozenset(
    _WORD.findall(
        "the a an of in on at to is was were be by for and or what who when where which how did does do from with "
        "as that this it its are has have had i you he she they"
    )
)


def _words(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.lower()) if w not in _STOP]


class BM25:
    """Okapi BM25 (k1 = 1.2, b = 0.75) with IDF over a corpus of passages."""

    def __init__(self, corpus: Sequence[str]) -> None:
        df: Counter[str] = Counter()
        for text in corpus:
            df.update(set(_words(text)))
        n = len(corpus)
        self.idf = {w: math.log(1 + (n - k + 0.5) / (k + 0.5)) for w, k in df.items()}
        self.unseen = math.log(1 + n)

    def scores(self, query: str, passages: Sequence[str], k1: float = 1.2, b: float = 0.75) -> np.ndarray:
        words = [_words(p) for p in passages]
        average = max(1.0, float(np.mean([len(w) for w in words])))
        asked = set(_words(query))
        out = []
        for passage in words:
            counts = Counter(passage)
            norm = k1 * (1 - b + b * len(passage) / average)
            out.append(
                sum(
                    self.idf.get(w, self.unseen) * counts[w] * (k1 + 1) / (counts[w] + norm)
                    for w in asked
                    if w in counts
                )
            )
        return np.asarray(out, dtype=float)


def _z(x: np.ndarray) -> np.ndarray:
    spread = x.std()
    return (x - x.mean()) / spread if spread > 0 else x * 0


def recall(records: Sequence[LitmRecord], corpus: Sequence[str], embedder: object) -> dict[str, dict[str, float]]:
    bm25 = BM25(corpus)
    encode = embedder.encode  # type: ignore[attr-defined]
    questions = encode([r.question for r in records], normalize_embeddings=True, convert_to_numpy=True)
    hits: dict[str, list[int]] = {}
    seconds = {"title+text": 0.0, "title+text + best sentence": 0.0}
    for record, q in zip(records, questions, strict=True):
        texts, titles = [d.text for d in record.documents], [d.title for d in record.documents]
        timed = {}
        for name, sentences in (("title+text", False), ("title+text + best sentence", True)):
            start = time.perf_counter()
            timed[name] = np.asarray(
                embedding_relevance(record.question, texts, embedder, titles=titles, sentences=sentences).scores
            )
            seconds[name] += time.perf_counter() - start
        passages = [d.passage for d in record.documents]
        by_text = encode(texts, normalize_embeddings=True, convert_to_numpy=True) @ q
        by_passage = timed["title+text"]
        lexical = bm25.scores(record.question, passages)
        methods = {
            "text": by_text,
            "title+text": by_passage,
            "bm25": lexical,
            "title+text & bm25": _z(by_passage) + _z(lexical),
            "title+text + best sentence": timed["title+text + best sentence"],
        }
        for name, scores in methods.items():
            order = list(np.argsort(-scores, kind="stable"))
            hits.setdefault(name, []).append(order.index(record.gold_index) + 1)
    figures: dict[str, dict[str, float]] = {
        name: {"recall@1": sum(r == 1 for r in ranks) / len(ranks), "recall@2": sum(r <= 2 for r in ranks) / len(ranks)}
        for name, ranks in hits.items()
    }
    for name, total in seconds.items():
        figures[name]["seconds_per_question"] = total / len(records)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-docs", type=int, nargs="+", default=[10, 20])
    parser.add_argument("--limit", type=int, default=300, help="questions per set (the evidence runs use 300)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    embedder = load_embedder()
    results = []
    for split, path in SETS.items():
        records = load_records(path)
        corpus = sorted({d.passage for r in records for d in r.documents})
        for num_docs in args.num_docs:
            fitted = fit_documents(records[: args.limit], num_docs)
            measured = recall(fitted, corpus, embedder)
            ratio = (
                measured["title+text + best sentence"]["seconds_per_question"]
                / measured["title+text"]["seconds_per_question"]
            )
            print(f"{split:11s} {num_docs:2d} docs: the best sentence takes {ratio:.1f}x the passage's time")
            for method, figures in measured.items():
                row = {"set": split, "questions": len(fitted), "num_docs": num_docs, "method": method, **figures}
                results.append(row)
                timing = f"  {figures['seconds_per_question']:.3f} s/q" if "seconds_per_question" in figures else ""
                print(
                    f"{split:11s} {len(fitted):3d} q {num_docs:2d} docs  {method:26s} "
                    f"recall@1 {figures['recall@1']:.3f}  recall@2 {figures['recall@2']:.3f}{timing}"
                )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        command = "python benchmarks/retriever_passages.py " + " ".join(
            ["--num-docs", *map(str, args.num_docs), "--limit", str(args.limit)]
        )
        args.json.write_text(
            json.dumps({"command": command, "embedder": "all-MiniLM-L6-v2", "results": results}, indent=1)
        )


if __name__ == "__main__":
    main()
