"""``--chat-template auto|on|off`` in the benchmark, on a tiny llama whose tokenizer has a chat template."""

from __future__ import annotations

import pytest

from posrag.bench.conditions import LitmConfig
from posrag.bench.data import parse_record
from posrag.bench.runner import LitmBenchmark
from posrag.bench.synthetic import make_synthetic_records
from posrag.errors import ConfigurationError
from posrag.generation import GenerationConfig
from tests.unit.hashing_embedder import HashingEmbedder

GEN = GenerationConfig(max_new_tokens=3, stop=("\n",))
CONDITIONS = ("baseline", "steer-attention", "steer-activation", "steer-confident", "control-attention")


@pytest.fixture(scope="module")
def tiny():
    from posrag.testing import tiny_model

    return tiny_model("llama")


@pytest.fixture(scope="module")
def records():
    return [parse_record(r, f"c{i}") for i, r in enumerate(make_synthetic_records(2, 4, seed=5))]


class _Recording:
    """Records the ``add_special_tokens`` of every encoding of a tokenizer (a spy, not the thing under test)."""

    def __init__(self, tokenizer):
        original = type(tokenizer)
        calls = self.calls = []

        class Recording(original):  # type: ignore[misc, valid-type]
            def __call__(self, *args, **kwargs):
                calls.append((args[0] if args else kwargs.get("text"), kwargs.get("add_special_tokens", True)))
                return super().__call__(*args, **kwargs)

        self.tokenizer = tokenizer
        self.original = original
        self.cls = Recording

    def __enter__(self):
        self.tokenizer.__class__ = self.cls
        return self.calls

    def __exit__(self, *exc):
        self.tokenizer.__class__ = self.original


def _bench(tiny, chat_template, tokenizer=None, **config) -> LitmBenchmark:
    config = LitmConfig(
        positions=(1, 3, 4), conditions=CONDITIONS, generation=GEN, chat_template=chat_template, **config
    )
    return LitmBenchmark.from_model(
        tiny.model, tokenizer or tiny.tokenizer, config, embedder=HashingEmbedder(), model_name="tiny"
    )


def _order(record, position):
    distractors = [i for i in range(len(record.documents)) if i != record.gold_index]
    return [*distractors[: position - 1], record.gold_index, *distractors[position - 1 :]]


def test_templated_prompts_hold_the_original_and_every_target_on_its_document(tiny, records):
    on, off = _bench(tiny, "on"), _bench(tiny, "off")
    assert on.chat_template is True and off.chat_template is False
    assert _bench(tiny, "auto").chat_template is True  # the tiny tokenizer has a template
    scores = [0.2, 0.9, 0.4, 0.1]
    checked = 0
    for record in records:
        for condition in on.conditions:
            for regime in ("oracle", "retrieval"):
                for position in (1, 3, 4):
                    args = (record, _order(record, position), condition, regime, scores, position)
                    templated, plain = on.variant(*args), off.variant(*args)
                    assert plain.text == plain.prompt.text and plain.add_special_tokens is True
                    assert templated.prompt.text == plain.prompt.text and templated.add_special_tokens is False
                    assert templated.text != plain.text and plain.text in templated.text
                    assert templated.text.startswith("<|user|>") and templated.text.endswith("<|assistant|>")
                    assert templated.text[templated.offset :].startswith(plain.text)
                    assert len(templated.targets) == len(plain.targets)
                    by_id = {d.id: d.text for d in (s.document for s in plain.prompt.spans)}
                    for t, p in zip(templated.targets, plain.targets, strict=True):
                        assert templated.text[t.start_char : t.end_char] == by_id[t.doc_id]
                        assert plain.text[p.start_char : p.end_char] == by_id[p.doc_id]
                        assert (t.relative_position, t.weight, t.rank) == (p.relative_position, p.weight, p.rank)
                        checked += 1
    assert checked > 50


def test_generation_reads_templated_prompts_without_added_special_tokens(tiny, records):
    from posrag.testing import tiny_tokenizer

    tokenizer = tiny_tokenizer()
    with _Recording(tokenizer) as calls:
        on = _bench(tiny, "on", tokenizer, regimes=("oracle",))
        result = on.run(records[:1], progress=False, keep_records=True)
    encoded = [(text, special) for text, special in calls if isinstance(text, str) and "Question:" in text]
    assert encoded, "no prompt was encoded"
    assert all(text.startswith("<|user|>") and special is False for text, special in encoded)
    assert {t.condition for t in result.records} == set(CONDITIONS)
    assert result.settings["chat_template"] == "on" and result.settings["chat_template_applied"] is True

    with _Recording(tokenizer) as calls:
        _bench(tiny, "off", tokenizer, regimes=("oracle",)).run(records[:1], progress=False)
    encoded = [(text, special) for text, special in calls if isinstance(text, str) and "Question:" in text]
    assert encoded and all(not text.startswith("<|user|>") and special is True for text, special in encoded)


def test_chat_template_on_needs_a_template_and_the_option_is_checked(tiny):
    from posrag.testing import tiny_tokenizer

    bare = tiny_tokenizer()
    bare.chat_template = None
    with pytest.raises(ConfigurationError, match="has no chat template"):
        _bench(tiny, "on", bare)
    assert _bench(tiny, "auto", bare).chat_template is False
    with pytest.raises(ConfigurationError, match="chat_template='maybe'"):
        LitmConfig(chat_template="maybe")  # type: ignore[arg-type]
