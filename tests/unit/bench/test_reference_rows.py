"""LITM's reference rows (gold-alone, closed-book), format failures, the gain over the baseline as the share of the
gold-alone gap recovered, and the prompt option and its choice for chat-templated models."""

from __future__ import annotations

import gzip
import json

import pytest

from posrag.backends.torch import TorchBackend
from posrag.bench.conditions import PROMPTS, LitmConfig
from posrag.bench.data import format_failure, parse_record
from posrag.bench.prompts import calibration_records, choose_prompt
from posrag.bench.report import format_tables
from posrag.bench.results import ConditionResult, LitmResult, PositionAccuracy
from posrag.bench.runner import LitmBenchmark
from posrag.bench.summary import steering_gains
from posrag.bench.synthetic import make_synthetic_records, write_jsonl
from posrag.errors import ConfigurationError
from posrag.generation import GenerationConfig
from posrag.prompts import LITM_INSTRUCTION
from tests.unit.hashing_embedder import HashingEmbedder

GEN = GenerationConfig(max_new_tokens=3, stop=("\n",))


@pytest.fixture(scope="module")
def tiny():
    from posrag.testing import tiny_model

    return tiny_model("llama")  # its tokenizer has a chat template


@pytest.fixture(scope="module")
def records():
    return [parse_record(r, f"r{i}") for i, r in enumerate(make_synthetic_records(2, 4, seed=4))]


def _bench(tiny, **config) -> LitmBenchmark:
    config = {"positions": (1, 4), "regimes": ("oracle",), "generation": GEN, **config}
    return LitmBenchmark.from_model(
        tiny.model, tiny.tokenizer, LitmConfig(**config), embedder=HashingEmbedder(), model_name="tiny"
    )


def _order(record, position):
    distractors = [i for i in range(len(record.documents)) if i != record.gold_index]
    return [*distractors[: position - 1], record.gold_index, *distractors[position - 1 :]]


# ----------------------------------------------------------------------------- format failures


@pytest.mark.parametrize(
    ("output", "new_tokens", "correct", "expected"),
    [
        ("Document [21](Title: Paris) Paris is", 20, False, "document-list"),
        ("(Title: Paris) Paris is the capital", 20, True, "document-list"),  # even when it holds the answer
        ("   \n", 1, False, "empty"),
        ("Based on the search results, the answer to", 20, False, "cut-off"),
        ("Paris is the capital of France and it has", 20, True, None),  # cut off, but the answer is there
        ("Lyon", 2, False, None),  # a wrong answer is still an answer
        ("Based on the results\nParis", 6, False, None),  # the line ended before the budget
    ],
)
def test_format_failures_are_classified(output, new_tokens, correct, expected):
    assert format_failure(output, new_tokens=new_tokens, max_new_tokens=20, correct=correct) == expected


# ----------------------------------------------------------------------------- reference rows


def test_gold_alone_holds_only_the_gold_document_and_closed_book_none(tiny, records):
    bench = _bench(tiny, conditions=("baseline", "gold-alone", "closed-book"))
    gold_alone, closed_book = bench.conditions[1:]
    record = records[0]
    scores = [None] * len(record.documents)
    for position in (1, 4):
        alone = bench.variant(record, _order(record, position), gold_alone, "oracle", scores, position)
        assert [d.text for d in alone.prompt.documents] == [record.gold.text] and alone.gold_position == 1
        closed = bench.variant(record, _order(record, position), closed_book, "oracle", scores, position)
        assert closed.prompt.documents == [] and closed.gold_position == 0
        assert closed.text == f"Question: {record.question}\nAnswer:"
    full = bench.variant(record, _order(record, 4), bench.conditions[0], "oracle", scores, 4)
    assert len(full.prompt.documents) == 4


def test_reference_rows_are_reported_with_format_failures_and_the_gain_recovered(tiny, records):
    config = {"conditions": ("baseline", "steer-attention", "gold-alone", "closed-book")}
    result = _bench(tiny, **config).run(records, progress=False, keep_records=True)
    for name in ("gold-alone", "closed-book"):
        row = result.result(name, "oracle")
        assert row.steering is None
        by_question = {}
        for t in result.records:
            if t.condition == name:
                by_question.setdefault(t.question_id, set()).add(t.prediction)
        assert all(len(p) == 1 for p in by_question.values())  # the same prompt at every position
        assert sum(t.reused for t in result.records if t.condition == name) >= len(records)  # generated once
    for row in result.results:
        mine = [t for t in result.records if t.condition == row.condition]
        assert row.format_failures == sum(t.format_failure is not None for t in mine) / len(mine)
        assert sum(row.format_failure_kinds.values()) == sum(t.format_failure is not None for t in mine)
    table = format_tables(result)
    assert "format fail" in table and "| gold-alone |" in table and "| closed-book |" in table
    assert "Gain over the baseline" in table and "| steer-attention |" in table.split("Gain over the baseline")[1]
    assert LitmResult.from_dict(json.loads(json.dumps(result.to_dict()))).to_dict() == result.to_dict()


def _row(name, correct, n=10, steering=None):
    positions = tuple(PositionAccuracy(p, 0.0, n, c, 0.0, 1.0) for p, c in zip((1, 10, 20), correct, strict=True))
    return ConditionResult(name, "oracle", name, positions, 1.0, 0.0, 5, 1, None, None, steering)


def test_the_gain_is_reported_over_the_baseline_and_as_the_share_of_the_gold_alone_gap():
    base = _row("baseline", (8, 2, 9))
    steer = _row("steer-attention", (9, 7, 9), steering={"mechanism": "attention"})
    control = _row("control-attention", (1, 1, 1), steering={"mechanism": "attention"})
    alone = _row("gold-alone", (10, 10, 9))
    result = LitmResult(
        "m", None, {"num_docs": 20}, {"positions": [1, 10, 20]}, {}, (base, steer, control, alone), {}, {}
    )
    gains = steering_gains(result)
    assert [g.condition for g in gains] == ["steer-attention"] * 3  # controls and unsteered rows are not gains
    assert [round(g.gain, 2) for g in gains] == [0.1, 0.5, 0.0]
    assert [None if g.recovered is None else round(g.recovered, 3) for g in gains] == [0.5, 0.625, None]
    without = LitmResult("m", None, {"num_docs": 20}, {"positions": [1, 10, 20]}, {}, (base, steer), {}, {})
    assert all(g.recovered is None and g.gold_alone is None for g in steering_gains(without))


# ----------------------------------------------------------------------------- prompts


def test_the_prompt_option_sets_the_template_and_the_reply_cue(tiny, records):
    record = records[0]
    scores = [None] * len(record.documents)
    texts = {}
    for name in PROMPTS:
        for chat in ("on", "off"):
            bench = _bench(tiny, conditions=("baseline",), prompt=name, chat_template=chat)
            texts[name, chat] = bench.variant(record, _order(record, 1), bench.conditions[0], "oracle", scores, 1).text
    assert texts["litm-reply-cue", "on"] == texts["litm", "on"] + "Answer:"
    assert texts["litm-reply-cue", "off"] == texts["litm", "off"]  # the prompt already ends in its cue
    last = texts["instruction-last", "off"]
    assert last.index(LITM_INSTRUCTION) > last.index(record.gold.text) and last.endswith("\nAnswer:")
    assert texts["litm", "off"].startswith(LITM_INSTRUCTION)
    for short in ("short-reply-cue", "short-example-reply-cue"):  # LITM's instruction, then a request for brevity
        assert texts[short, "off"].startswith(LITM_INSTRUCTION + " Answer with a short phrase")
        assert texts[short, "on"].endswith("Answer:") and texts[short, "off"].endswith(f"{record.question}\nAnswer:")
    assert "Answer: Paris" in texts["short-example-reply-cue", "off"] and "Paris" not in texts["short-reply-cue", "off"]
    with pytest.raises(ConfigurationError, match="not one of"):
        LitmConfig(prompt="nope")


def test_choose_prompt_scores_every_candidate_and_applies_its_rule(tiny, records):
    choice = choose_prompt(
        TorchBackend(tiny.model, tiny.tokenizer, model_name="tiny"),
        records,
        candidates=("litm", "litm-reply-cue"),
        config=LitmConfig(chat_template="on", generation=GEN),
        embedder=HashingEmbedder(),
        progress=False,
    )
    assert [s.prompt for s in choice.scores] == ["litm", "litm-reply-cue"] and choice.chat_template is True
    answering = [s for s in choice.scores if s.gold_alone_format_failures <= 0.2]
    if answering:
        assert choice.chosen == max(answering, key=lambda s: s.gold_alone).prompt
    else:
        assert choice.chosen == min(choice.scores, key=lambda s: s.gold_alone_format_failures).prompt
    assert "(chosen)" in choice.table() and choice.to_dict()["chosen"] == choice.chosen


def test_prompts_are_chosen_on_calibration_questions_only(tmp_path):
    rows = make_synthetic_records(2, 3, seed=1)
    evaluation = tmp_path / "eval.jsonl.gz"
    with gzip.open(evaluation, "wt", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps({**row, "split": "evaluation"}) + "\n")
    with pytest.raises(ConfigurationError, match="calibration questions only"):
        calibration_records(evaluation)
    plain = write_jsonl(rows, tmp_path / "calibration.jsonl")
    assert len(calibration_records(plain)) == 2


def test_the_gold_alone_format_failure_target_is_judged():
    from dataclasses import replace

    from posrag.bench._targets import evaluate_targets

    base = _row("baseline", (8, 2, 9))
    for share, met in ((0.2, True), (0.3, False)):
        alone = replace(_row("gold-alone", (10, 10, 9)), format_failures=share, format_failure_kinds={"cut-off": 9})
        result = LitmResult("m", None, {"num_docs": 20}, {"positions": [1, 10, 20]}, {}, (base, alone), {}, {})
        (check,) = [c for c in evaluate_targets(result) if c.name.startswith("gold-alone")]
        assert check.met is met and "cut-off 9" in check.detail
