"""NQ-open with mined distractors, its calibration/evaluation split, and the retriever's recall.

The paper's NQ-open oracle file holds each question with its gold passage only. Here every question gets
``num_docs - 1`` distractors: the *other* questions' gold passages nearest to it by the packaged embedder
(cosine of normalized embeddings, exact top-k over all passages), most similar first, dropping every passage
identical to its own gold passage or containing one of its answers (normalized substring, the answer
metric's own test, so no distractor can get a wrong reading credited). Distractors mined this way are on
topic, as the paper's retrieved ones are, and the benchmark's retriever sometimes ranks one of them first.

Questions are split, seeded, into a *calibration* slice and an *evaluation* slice (every record carries its
``split``), so settings tuned on one never see the questions of the other. Distractors come from every
question's gold passage, whatever its split: a calibration record may show an evaluation question's
passage as a distractor, never its question or answer.
"""

from __future__ import annotations

import os
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from posrag.bench.data import LitmDocument, LitmRecord, load_records, normalize_answer
from posrag.errors import ConfigurationError

SPLITS = ("calibration", "evaluation")
NQ_ORACLE_NAME = "nq-open-oracle.jsonl.gz"


def default_nq_source() -> Path:
    """The shared NQ-open oracle file: ``shared/data/`` in a folder above the checkout or the working directory."""
    checkout = Path(__file__).resolve().parents[2]
    for start in (checkout, Path.cwd().resolve()):
        for base in start.parents:
            path = base / "shared" / "data" / NQ_ORACLE_NAME
            if path.is_file():
                return path
    raise ConfigurationError(
        f"No shared/data/{NQ_ORACLE_NAME} above {checkout} or {Path.cwd()}; pass the file with --source "
        "(the Lost in the Middle release's nq-open-oracle.jsonl.gz)."
    )


def split_questions(ids: Sequence[str], *, calibration: int = 200, seed: int = 0) -> dict[str, str]:
    """Each id's split: ``calibration`` ids drawn at random (seeded), the others ``"evaluation"``."""
    if not 0 <= calibration <= len(ids):
        raise ConfigurationError(f"calibration={calibration} must be between 0 and the {len(ids)} questions.")
    if len(set(ids)) != len(ids):
        raise ConfigurationError("Question ids must be unique to split them.")
    chosen = set(random.Random(f"nq-split:{seed}").sample(range(len(ids)), calibration))
    return {qid: SPLITS[0] if i in chosen else SPLITS[1] for i, qid in enumerate(ids)}


def _contains_answer(passage: str, answers: Sequence[str]) -> bool:
    return any(answer in passage for answer in answers)


def _encode(embedder: Any, texts: list[str], progress: bool) -> np.ndarray:
    vectors = embedder.encode(texts, normalize_embeddings=True, batch_size=64, show_progress_bar=progress)
    return np.asarray(vectors, dtype=np.float32)


def mine_distractors(
    records: Sequence[LitmRecord],
    num_docs: int,
    *,
    pool: Sequence[LitmDocument] | None = None,
    embedder: Any = None,
    progress: bool = False,
) -> list[tuple[LitmRecord, list[float]]]:
    """Each record with its gold passage first, then its ``num_docs - 1`` nearest passages from ``pool``.

    ``pool``: the candidate passages (default: the gold passages of ``records``), deduplicated by text.
    Distractors are ordered by cosine similarity to the question (most similar first; ties by pool order);
    a passage equal to the record's gold passage or containing one of its answers (normalized substring of
    title and text) is skipped. Returns each record with the similarities of its documents (gold first).
    """
    if num_docs < 2:
        raise ConfigurationError(f"num_docs must be >= 2 (one gold, the rest distractors), got {num_docs}.")
    if embedder is None:
        from posrag.models import load_embedder

        embedder = load_embedder()
    candidates = list(pool) if pool is not None else [record.gold for record in records]
    unique: dict[str, LitmDocument] = {}
    for doc in candidates:
        unique.setdefault(doc.text, doc)
    passages = list(unique.values())
    normalized = [normalize_answer(f"{doc.title} {doc.text}") for doc in passages]
    passage_vectors = _encode(embedder, [doc.text for doc in passages], progress)
    question_vectors = _encode(embedder, [record.question for record in records], progress)
    row = {doc.text: j for j, doc in enumerate(passages)}
    outside = [record.gold.text for record in records if record.gold.text not in row]
    outside_vectors = dict(zip(outside, _encode(embedder, outside, False), strict=True)) if outside else {}
    mined = []
    for i, record in enumerate(_bar(records, progress)):
        similarity = passage_vectors @ question_vectors[i]
        answers = [a for a in map(normalize_answer, record.answers) if a]
        docs = [LitmDocument(record.gold.title, record.gold.text, isgold=True)]
        gold_text = record.gold.text
        gold_vector = passage_vectors[row[gold_text]] if gold_text in row else outside_vectors[gold_text]
        scores = [float(gold_vector @ question_vectors[i])]
        for j in np.argsort(-similarity, kind="stable"):
            if len(docs) == num_docs:
                break
            doc = passages[j]
            if doc.text == record.gold.text or _contains_answer(normalized[j], answers):
                continue
            docs.append(LitmDocument(doc.title, doc.text, isgold=False))
            scores.append(float(similarity[j]))
        if len(docs) < num_docs:
            raise ConfigurationError(
                f"Record {record.id!r}: only {len(docs) - 1} passages without its answers for "
                f"num_docs={num_docs}; use fewer documents or a larger pool."
            )
        mined.append((LitmRecord(record.id, record.question, record.answers, tuple(docs)), scores))
    return mined


def _bar(items: Sequence[Any], progress: bool) -> Any:
    if not progress:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc="Mining distractors", unit="question")


def make_nq_records(
    source: str | os.PathLike[str] | None = None,
    num_docs: int = 20,
    *,
    split: str | None = "evaluation",
    limit: int | None = None,
    calibration: int = 200,
    seed: int = 0,
    embedder: Any = None,
    progress: bool = False,
) -> list[dict[str, Any]]:
    """NQ-open records with mined distractors, in the paper's JSON format plus ``split``.

    ``source``: the oracle file (default :func:`default_nq_source`); its questions get ids
    ``nq-open-oracle-<line>``. ``split``: ``"calibration"``, ``"evaluation"`` or ``None`` (both), in file
    order; ``limit``: the first N of them. Distractors come from every question's gold passage. Each ctx
    carries ``score``, its cosine similarity to the question. Deterministic for the same arguments.
    """
    if split is not None and split not in SPLITS:
        raise ConfigurationError(f"split must be one of {', '.join(SPLITS)} (or None for both), got {split!r}.")
    everything = load_records(source if source is not None else default_nq_source())
    splits = split_questions([record.id for record in everything], calibration=calibration, seed=seed)
    chosen = [record for record in everything if split is None or splits[record.id] == split]
    chosen = chosen[:limit] if limit is not None else chosen
    pool = [record.gold for record in everything]
    out = []
    for record, scores in mine_distractors(chosen, num_docs, pool=pool, embedder=embedder, progress=progress):
        data = record.to_dict()
        for ctx, score in zip(data["ctxs"], scores, strict=True):
            ctx["hasanswer"] = ctx["isgold"]
            ctx["score"] = round(score, 6)
        data["split"] = splits[record.id]
        out.append(data)
    return out


def retriever_recall(records: Sequence[LitmRecord], embedder: Any = None, k: int = 1) -> float:
    """Share of records whose gold document is among the ``k`` best by the benchmark's retriever.

    Scores come from :func:`posrag.bench.runner.retrieval_scores` (the cosine of the question to each
    document's title and text plus that of its best sentence), so this is the retrieval regime's own ranking.
    """
    if not records:
        raise ConfigurationError("retriever_recall needs at least one record.")
    if k < 1:
        raise ConfigurationError(f"k must be >= 1, got {k}.")
    from posrag.bench.runner import retrieval_scores

    if embedder is None:
        from posrag.models import load_embedder

        embedder = load_embedder()
    hits = 0
    for record in records:
        scores = retrieval_scores(record, embedder)
        best = sorted(range(len(scores)), key=lambda i: -scores[i])[:k]
        hits += record.gold_index in best
    return hits / len(records)


__all__ = [
    "SPLITS",
    "default_nq_source",
    "make_nq_records",
    "mine_distractors",
    "retriever_recall",
    "split_questions",
]
