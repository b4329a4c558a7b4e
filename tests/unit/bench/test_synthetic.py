"""The synthetic data set: seeded, same-kind distractors, answers that only the gold document supports."""

from __future__ import annotations

import pytest

from posrag.bench.data import is_correct, load_records, normalize_answer, packaged_dataset, parse_record
from posrag.bench.synthetic import ATTRIBUTE_KINDS, make_synthetic_records, write_jsonl
from posrag.errors import ConfigurationError


def test_same_seed_same_records_and_different_seed_different():
    assert make_synthetic_records(10, 20, seed=5) == make_synthetic_records(10, 20, seed=5)
    assert make_synthetic_records(10, 20, seed=5) != make_synthetic_records(10, 20, seed=6)


@pytest.mark.parametrize("num_docs", [2, 7, 20])
def test_records_have_one_gold_and_distinct_non_overlapping_values(num_docs):
    for data in make_synthetic_records(30, num_docs, seed=1):
        record = parse_record(data, "x")
        assert len(record.documents) == num_docs
        assert record.gold.title in record.question
        assert is_correct(record.gold.text, record.answers)  # the gold document states the answer
        for doc in record.distractors:  # no distractor does, not even as a substring
            assert not is_correct(doc.text, record.answers)
        names = [normalize_answer(d.title) for d in record.documents]
        assert len(set(names)) == num_docs


def test_every_kind_is_used_and_distractors_share_the_gold_kind():
    records = make_synthetic_records(len(ATTRIBUTE_KINDS) * 2, 5, seed=0)
    assert {r["kind"] for r in records} == {k.name for k in ATTRIBUTE_KINDS}
    for r in records:
        stems = {ctx["text"].split(" ", 2)[2].split(" ")[0] for ctx in r["ctxs"]}
        assert len(stems) == 1  # "was ...", "founded ...", "works ...": one verb per question


def test_bad_arguments_are_actionable():
    with pytest.raises(ConfigurationError, match="between 2 and 20"):
        make_synthetic_records(1, 30)
    with pytest.raises(ConfigurationError, match="choose from"):
        make_synthetic_records(1, 5, kinds=["height"])
    with pytest.raises(ConfigurationError, match="num_questions"):
        make_synthetic_records(0)


def test_write_and_read_back(tmp_path):
    records = make_synthetic_records(4, 6, seed=2)
    for name in ("s.jsonl", "s.jsonl.gz"):
        loaded = load_records(write_jsonl(records, tmp_path / name))
        assert [r.to_dict() for r in loaded] == [
            {k: r[k] for k in ("id", "question", "answers")}
            | {"ctxs": [{k: c[k] for k in ("title", "text", "isgold")} for c in r["ctxs"]]}
            for r in records
        ]


def test_the_shipped_set_is_the_seeded_generator_output():
    """posrag/data/litm-synthetic-20.jsonl is exactly `posrag bench make-synthetic` with the defaults."""
    shipped = [r.to_dict() for r in load_records(packaged_dataset())]
    generated = [parse_record(r, "x").to_dict() for r in make_synthetic_records(100, 20, seed=0)]
    assert shipped == generated
