"""The record format, the paper's answer scoring, moving the gold document, filling distractors."""

from __future__ import annotations

import gzip
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from posrag.bench.data import (
    LitmDocument,
    LitmRecord,
    first_line,
    fit_documents,
    is_correct,
    load_records,
    normalize_answer,
    packaged_dataset,
    parse_record,
)
from posrag.errors import ConfigurationError


def _record(n: int = 5, gold: int = 2, rid: str = "q") -> LitmRecord:
    docs = tuple(LitmDocument(f"T{i}", f"text {i}", isgold=i == gold) for i in range(n))
    return LitmRecord(rid, "Who?", ("answer",), docs)


def test_normalize_answer_follows_squad():
    assert normalize_answer("The  Eiffel-Tower!") == "eiffeltower"
    assert normalize_answer("An apple, a day") == "apple day"
    assert normalize_answer("Wilhelm Conrad Röntgen.") == "wilhelm conrad röntgen"


def test_is_correct_scores_the_first_line_by_normalized_substring():
    assert is_correct(" He was born in the city of Quillbrook.\nMore", ["Quillbrook"])
    assert is_correct("THE QUILLBROOK", ["quillbrook"])
    assert not is_correct("Ambervale\nQuillbrook", ["Quillbrook"])  # only the first line counts
    assert not is_correct("", ["x"])
    assert is_correct("x", ["nope", "x"])
    assert first_line("\n  a\nb") == "a"


def test_an_empty_normalized_answer_never_matches():
    assert not is_correct("anything", ["the", "!"])


@given(n=st.integers(2, 25), data=st.data())
def test_moving_the_gold_keeps_the_distractors_in_order(n, data):
    gold = data.draw(st.integers(0, n - 1))
    target = data.draw(st.integers(0, n - 1))
    record = _record(n, gold)
    moved = record.with_gold_at(target)
    assert moved[target].isgold
    assert [d for d in moved if not d.isgold] == list(record.distractors)
    assert len(moved) == n


def test_gold_position_out_of_range_is_an_actionable_error():
    with pytest.raises(ConfigurationError, match=r"outside 1\.\.5"):
        _record().with_gold_at(5)


def test_a_record_needs_exactly_one_gold():
    with pytest.raises(ConfigurationError, match="2 gold documents"):
        LitmRecord("q", "?", ("a",), (LitmDocument("", "x", True), LitmDocument("", "y", True)))
    with pytest.raises(ConfigurationError, match="0 gold"):
        LitmRecord("q", "?", ("a",), (LitmDocument("", "x"),))


def test_load_records_reads_jsonl_and_gz(tmp_path):
    line = {"question": "q?", "answers": ["a"], "ctxs": [{"title": "t", "text": "a b", "isgold": True}]}
    plain = tmp_path / "d.jsonl"
    plain.write_text(json.dumps(line) + "\n\n" + json.dumps(line) + "\n")
    packed = tmp_path / "d.jsonl.gz"
    with gzip.open(packed, "wt") as handle:
        handle.write(json.dumps(line) + "\n")
    assert len(load_records(plain)) == 2
    assert load_records(plain, limit=1)[0].id == "d-1"
    assert load_records(packed)[0].gold.text == "a b"


def test_load_records_names_the_bad_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "q", "answers": ["a"], "ctxs": [{"text": "x", "isgold": true}]}\n{"question": 1}\n')
    with pytest.raises(ConfigurationError, match=r"bad.jsonl:2: missing key"):
        load_records(bad)
    bad.write_text("not json\n")
    with pytest.raises(ConfigurationError, match=r"bad\.jsonl:1: not valid JSON"):
        load_records(bad)
    with pytest.raises(ConfigurationError, match="make-synthetic"):
        load_records(tmp_path / "missing.jsonl")


def test_parse_record_accepts_a_single_answer_string():
    record = parse_record({"question": "q", "answers": "a", "ctxs": [{"text": "t", "isgold": True}]}, "x")
    assert record.answers == ("a",)


def test_fit_documents_fills_from_other_records_never_with_an_answer():
    records = [
        LitmRecord(f"r{i}", f"q{i}", (f"ans{i}",), (LitmDocument(f"T{i}", f"about ans{i} here", True),))
        for i in range(12)
    ]
    records.append(LitmRecord("r12", "q", ("ans0",), (LitmDocument("x", "gold ans0", True),)))
    fitted = fit_documents(records, 6, seed=3)
    assert all(len(r.documents) == 6 for r in fitted)
    for record in fitted:
        assert record.documents[0].isgold  # the gold stays where it was; fillers are appended
        assert sum(d.isgold for d in record.documents) == 1
        for doc in record.distractors:
            words = f" {normalize_answer(doc.title + ' ' + doc.text)} "
            assert not any(f" {normalize_answer(a)} " in words for a in record.answers)
        assert len({d.text for d in record.documents}) == 6
    assert fitted == fit_documents(records, 6, seed=3)  # seeded
    assert fitted != fit_documents(records, 6, seed=4)


def test_fit_documents_truncates_keeping_the_gold():
    fitted = fit_documents([_record(10, gold=8)], 4)[0]
    assert len(fitted.documents) == 4
    assert fitted.gold.text == "text 8"
    assert [d.text for d in fitted.distractors] == ["text 0", "text 1", "text 2"]


def test_fit_documents_says_when_the_pool_is_too_small():
    with pytest.raises(ConfigurationError, match="only 1 documents"):
        fit_documents([LitmRecord("r", "q", ("a",), (LitmDocument("", "a", True),))], 3)


def test_the_packaged_dataset_loads():
    records = load_records(packaged_dataset())
    assert len(records) == 100
    assert all(len(r.documents) == 20 for r in records)
    with pytest.raises(ConfigurationError, match="ships no data set"):
        packaged_dataset("nope")


def test_a_one_letter_answer_excludes_only_passages_with_that_word():
    gold = LitmRecord("s", "which letter?", ("S",), (LitmDocument("", "An S-shaped basin.", True),))
    others = [
        LitmRecord(f"o{i}", "q", ("x",), (LitmDocument("", text, True),))
        for i, text in enumerate(["Rivers and seas.", "The letter s stands alone.", "Mountains rise."])
    ]
    (fitted, *_) = fit_documents([gold, *others], 3)
    assert sorted(d.text for d in fitted.distractors) == ["Mountains rise.", "Rivers and seas."]
