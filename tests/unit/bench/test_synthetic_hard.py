"""The hard synthetic set: questions through a second fact, a decoy naming the key, answers only the gold has."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from posrag.bench.data import is_correct, load_records, normalize_answer, packaged_dataset, parse_record
from posrag.bench.synthetic import make_hard_synthetic_records, make_synthetic_records, write_jsonl
from posrag.cli.main import app
from posrag.errors import ConfigurationError


def test_same_seed_same_records_and_different_seed_different():
    assert make_hard_synthetic_records(9, 20, seed=5) == make_hard_synthetic_records(9, 20, seed=5)
    assert make_hard_synthetic_records(9, 20, seed=5) != make_hard_synthetic_records(9, 20, seed=6)
    assert make_hard_synthetic_records(3, 5) != make_synthetic_records(3, 5)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("num_docs", [2, 7, 20])
def test_the_question_names_the_key_not_the_person_and_only_the_gold_states_the_answer(seed, num_docs):
    for data in make_hard_synthetic_records(30, num_docs, seed=seed):
        record = parse_record(data, "x")
        assert len(record.documents) == num_docs
        assert data["kind"] != data["key"]
        question = normalize_answer(record.question)
        assert all(normalize_answer(doc.title) not in question for doc in record.documents)  # no person named
        assert is_correct(record.gold.text, record.answers)
        for doc in record.distractors:  # not in the text nor in the title, not even as a substring
            assert not is_correct(f"{doc.title} {doc.text}", record.answers)
        # the key value the question names: in the gold and in exactly one decoy, under another relation
        naming = [doc for doc in record.documents if _key_value(data) in normalize_answer(doc.text)]
        assert record.gold in naming
        assert len(naming) == min(2, num_docs)


def _key_value(data) -> str:
    """The key value the question names: the last word of its "the person who ..." clause."""
    clause = data["question"].split(" who ", 1)[1].rstrip("?").removesuffix(" born").removesuffix(" found")
    return normalize_answer(clause.split()[-1])


def test_every_value_of_a_record_is_distinct_and_no_value_contains_another():
    for data in make_hard_synthetic_records(12, 20, seed=3):
        names = [normalize_answer(ctx["title"]) for ctx in data["ctxs"]]
        assert len(set(names)) == len(names)
        for i, a in enumerate(names):
            assert not any(a in b for j, b in enumerate(names) if j != i)


def test_every_asked_kind_and_key_kind_is_used():
    records = make_hard_synthetic_records(12, 4)
    pairs = {(r["kind"], r["key"]) for r in records}
    assert pairs == {
        (a, b)
        for a in ("birthplace", "company", "profession")
        for b in ("birthplace", "company", "profession")
        if a != b
    }


def test_bad_arguments_are_actionable():
    with pytest.raises(ConfigurationError, match="between 2 and 20"):
        make_hard_synthetic_records(1, 21)
    with pytest.raises(ConfigurationError, match="choose from"):
        make_hard_synthetic_records(1, 5, kinds=["height"])
    with pytest.raises(ConfigurationError, match="num_questions"):
        make_hard_synthetic_records(0)


def test_the_shipped_hard_set_is_the_seeded_generator_output_byte_for_byte(tmp_path):
    """posrag/data/litm-synthetic-hard-20.jsonl is exactly `posrag bench make-synthetic --hard`."""
    shipped = packaged_dataset("litm-synthetic-hard-20")
    generated = write_jsonl(make_hard_synthetic_records(100, 20, seed=0), tmp_path / "hard.jsonl")
    assert shipped.read_bytes() == generated.read_bytes()
    assert len(load_records(shipped)) == 100


def test_cli_hard_flag_writes_the_hard_set_and_the_default_stays_the_plain_one(tmp_path):
    runner = CliRunner()
    for name, extra in (("hard.jsonl", ["--hard"]), ("plain.jsonl", [])):
        out = runner.invoke(
            app, ["bench", "make-synthetic", str(tmp_path / name), "--questions", "4", "--docs", "5", *extra]
        )
        assert out.exit_code == 0, out.output
    read = [json.loads(line) for line in (tmp_path / "hard.jsonl").read_text().splitlines()]
    assert read == make_hard_synthetic_records(4, 5)
    plain = [json.loads(line) for line in (tmp_path / "plain.jsonl").read_text().splitlines()]
    assert plain == make_synthetic_records(4, 5)


def test_gzip_output_is_byte_reproducible(tmp_path):
    records = make_hard_synthetic_records(3, 4)
    a = write_jsonl(records, tmp_path / "a" / "x.jsonl.gz").read_bytes()
    b = write_jsonl(records, tmp_path / "b" / "x.jsonl.gz").read_bytes()
    assert a == b
