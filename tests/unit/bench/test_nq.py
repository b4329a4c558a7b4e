"""NQ-open with mined distractors: nearest other gold passages, answers never in a distractor, a disjoint split."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from posrag.bench.data import LitmDocument, LitmRecord, is_correct, load_records, normalize_answer
from posrag.bench.nq import make_nq_records, mine_distractors, retriever_recall, split_questions
from posrag.bench.runner import retrieval_scores
from posrag.errors import ConfigurationError
from tests.unit.hashing_embedder import HashingEmbedder

DOCS = Path(__file__).resolve().parents[3] / "docs" / "data"


def _record(rid: str, question: str, answer: str, title: str, text: str) -> LitmRecord:
    return LitmRecord(rid, question, (answer,), (LitmDocument(title, text, isgold=True),))


RECORDS = [
    _record(
        "q0",
        "which river flows through the capital city",
        "Thames",
        "River",
        "the river Thames flows through the capital city",
    ),
    _record(
        "q1", "when did the capital city host the games", "1914", "Games", "the capital city hosted the games in 1914"
    ),
    _record(
        "q2",
        "how many bridges cross the river in the capital city",
        "14",
        "Bridges",
        "fourteen bridges 14 cross the river in the capital city",
    ),
    _record(
        "q3", "who painted the river at night", "Monet", "Painting", "Monet painted the river at night in the capital"
    ),
    _record("q4", "what colour is the sky", "blue", "Sky", "the sky is blue on a clear day"),
    _record("q5", "what do cows eat", "grass", "Cows", "cows eat grass in the field all day"),
    _record(
        "q6", "duplicate of the river question", "Thames", "River", "the river Thames flows through the capital city"
    ),
]


def test_distractors_are_the_nearest_other_passages_without_the_answer():
    mined = dict((r.id, (r, s)) for r, s in mine_distractors(RECORDS, 4, embedder=HashingEmbedder()))
    for original in RECORDS:
        record, scores = mined[original.id]
        assert record.gold_index == 0 and record.gold == original.gold
        assert len(record.documents) == 4
        assert scores[1:] == sorted(scores[1:], reverse=True)  # most similar first
        texts = [doc.text for doc in record.documents]
        assert len(set(texts)) == len(texts)  # no passage twice, the duplicate gold passage never a distractor
        for doc in record.distractors:
            assert not is_correct(f"{doc.title} {doc.text}", record.answers)
    # "14" is a substring of "1914": the games passage is dropped for the bridges question, not just whole words
    assert all("1914" not in doc.text for doc in mined["q2"][0].distractors)
    # the question's nearest passage (by the same embedder) is its first distractor when it has no answer
    assert mined["q3"][0].distractors[0].title in {"River", "Bridges", "Games"}


def test_mining_is_deterministic_and_fewer_documents_are_a_prefix():
    embedder = HashingEmbedder()
    twenty = mine_distractors(RECORDS, 5, embedder=embedder)
    assert twenty == mine_distractors(RECORDS, 5, embedder=embedder)
    for (short, _), (long, _) in zip(mine_distractors(RECORDS, 3, embedder=embedder), twenty, strict=True):
        assert short.documents == long.documents[:3]


def test_too_few_passages_is_an_actionable_error():
    with pytest.raises(ConfigurationError, match="use fewer documents"):
        mine_distractors(RECORDS, 7, embedder=HashingEmbedder())
    with pytest.raises(ConfigurationError, match="num_docs must be >= 2"):
        mine_distractors(RECORDS, 1, embedder=HashingEmbedder())


def test_the_split_is_seeded_disjoint_and_complete():
    ids = [f"q{i}" for i in range(50)]
    split = split_questions(ids, calibration=10, seed=0)
    assert split == split_questions(ids, calibration=10, seed=0)
    assert split != split_questions(ids, calibration=10, seed=1)
    assert sorted(split) == sorted(ids)
    assert sum(v == "calibration" for v in split.values()) == 10
    assert set(split.values()) == {"calibration", "evaluation"}
    with pytest.raises(ConfigurationError, match="between 0 and the 50"):
        split_questions(ids, calibration=51)


def _source(tmp_path) -> Path:
    path = tmp_path / "oracle.jsonl.gz"
    with gzip.open(path, "wt") as handle:
        for record in RECORDS:
            data = record.to_dict()
            data.pop("id")
            handle.write(json.dumps(data) + "\n")
    return path


def test_make_nq_records_carry_their_split_and_the_splits_never_share_a_question(tmp_path):
    source = _source(tmp_path)
    kw = {"calibration": 2, "embedder": HashingEmbedder()}
    calibration = make_nq_records(source, 3, split="calibration", **kw)
    evaluation = make_nq_records(source, 3, split="evaluation", **kw)
    both = make_nq_records(source, 3, split=None, **kw)
    assert {r["split"] for r in calibration} == {"calibration"} and len(calibration) == 2
    assert {r["split"] for r in evaluation} == {"evaluation"} and len(evaluation) == 5
    assert not {r["id"] for r in calibration} & {r["id"] for r in evaluation}
    assert sorted(r["id"] for r in both) == sorted(r["id"] for r in calibration + evaluation)
    assert make_nq_records(source, 3, split="evaluation", limit=2, **kw) == evaluation[:2]
    assert all(r["id"].startswith("oracle-") for r in both)
    with pytest.raises(ConfigurationError, match="split must be one of"):
        make_nq_records(source, 3, split="test", **kw)


def test_cli_make_nq_writes_loadable_records(tmp_path, monkeypatch):
    import posrag.models
    from posrag.cli.main import app

    monkeypatch.setattr(posrag.models, "load_embedder", lambda *a, **k: HashingEmbedder())
    out = tmp_path / "nq.jsonl.gz"
    args = ["bench", "make-nq", str(out), "--source", str(_source(tmp_path)), "--num-docs", "3"]
    result = CliRunner().invoke(app, [*args, "--calibration", "2", "--limit", "4", "--no-progress"])
    assert result.exit_code == 0, result.output
    records = load_records(out)
    assert len(records) == 4 and all(len(r.documents) == 3 and r.gold_index == 0 for r in records)


def test_retriever_recall_counts_the_gold_among_the_k_best():
    embedder = HashingEmbedder()
    easy = LitmRecord(
        "e",
        "what do cows eat",
        ("grass",),
        (LitmDocument("", "cows eat grass", True), LitmDocument("", "the sky is blue")),
    )
    hard = LitmRecord(
        "h",
        "what do cows eat",
        ("grass",),
        (LitmDocument("", "grass, mostly", True), LitmDocument("", "what do cows eat? nobody knows")),
    )
    assert retriever_recall([easy], embedder) == 1.0
    assert retriever_recall([easy, hard], embedder) == 0.5
    assert retriever_recall([easy, hard], embedder, k=2) == 1.0
    with pytest.raises(ConfigurationError):
        retriever_recall([], embedder)


def test_the_retriever_reads_each_documents_title_as_the_model_does():
    # The two passages say the same; only the gold one's title names what the question asks about (as NQ's
    # Wikipedia titles often do). The old retriever embedded the text alone: a tie, won by the distractor.
    record = LitmRecord(
        "t",
        "when did the eiffel tower open",
        ("1889",),
        (
            LitmDocument("Statue of Liberty", "It opened to visitors in 1886 after years of work."),
            LitmDocument("Eiffel Tower", "It opened to visitors in 1889 after years of work.", True),
        ),
    )
    scores = retrieval_scores(record, HashingEmbedder())
    assert scores[1] > scores[0]
    assert retriever_recall([record], HashingEmbedder()) == 1.0
    assert record.gold.passage == "Eiffel Tower\nIt opened to visitors in 1889 after years of work."
    assert LitmDocument("", "untitled").passage == "untitled"


@pytest.mark.parametrize(
    ("name", "docs", "split"),
    [
        ("nq-mined-10", 10, "evaluation"),
        ("nq-mined-20", 20, "evaluation"),
        ("nq-mined-calibration-20", 20, "calibration"),
    ],
)
def test_the_committed_nq_files_are_well_formed(name, docs, split):
    path = DOCS / f"{name}.jsonl.gz"
    records = load_records(path)
    with gzip.open(path, "rt") as handle:
        splits = {json.loads(line)["split"] for line in handle}
    assert splits == {split} and len(records) == 200
    for record in records:
        assert len(record.documents) == docs and record.gold_index == 0
        answers = [a for a in map(normalize_answer, record.answers) if a]
        for doc in record.distractors:
            assert not any(a in normalize_answer(f"{doc.title} {doc.text}") for a in answers)


def test_the_committed_calibration_and_evaluation_questions_are_disjoint():
    ids = {
        name: {r.id for r in load_records(DOCS / f"{name}.jsonl.gz")}
        for name in ("nq-mined-20", "nq-mined-calibration-20")
    }
    assert not ids["nq-mined-20"] & ids["nq-mined-calibration-20"]
    assert ids["nq-mined-20"] == {r.id for r in load_records(DOCS / "nq-mined-10.jsonl.gz")}
