"""Prefix reuse on tiny real architectures: continuing a prefilled prefix equals running the whole prompt."""

from __future__ import annotations

import functools

import pytest
import torch
from transformers import AutoModelForCausalLM

from posrag.engine import Engine
from posrag.errors import ConfigurationError
from posrag.generation import GenerationConfig, encode_prompt, generate_from_inputs
from posrag.prefix import PrefixStore, prefill
from posrag.steering import SteeringConfig, SteeringTarget
from posrag.testing import TINY_ARCHS, tiny_config, tiny_tokenizer

PREFIX = (
    "Use the documents below to answer the question. Document [1] Title: Mount Everest. Everest is the highest "
    "mountain on Earth. Document [2] Paris is the capital of France. Berlin is the capital of Germany. "
)
QUESTION = "Question: What is the capital of France? Answer:"
OTHER = "Question: What is the highest mountain on Earth? Answer:"
GEN = GenerationConfig(max_new_tokens=8, min_new_tokens=8)


def build(arch: str):
    """A tiny model whose predictions depend visibly on the context (init scale 0.3), with a sliding window of 8
    where the family has one, so the prefix (longer than 8 tokens) crosses it."""
    tokenizer = tiny_tokenizer()
    config = tiny_config(arch, vocab_size=len(tokenizer), sliding_window=8)
    config.initializer_range = 0.3
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(config, attn_implementation="sdpa").eval(), tokenizer


@pytest.fixture(scope="module", params=TINY_ARCHS)
def setup(request):
    return build(request.param)


def _prefix_length(tokenizer, prompt: str) -> int:
    """Tokens of ``prompt`` that lie wholly before the question (the shared prefix)."""
    encoded = tokenizer(prompt, return_offsets_mapping=True)
    return sum(1 for _, end in encoded["offset_mapping"] if end <= len(PREFIX))


def _snapshot(cache):
    return [(layer.keys.clone(), layer.values.clone()) for layer in cache.layers]


def test_generating_from_a_prefix_equals_generating_from_the_whole_prompt(setup):
    model, tokenizer = setup
    prompt = PREFIX + QUESTION
    inputs = encode_prompt(tokenizer, prompt, model.device)
    cut = _prefix_length(tokenizer, prompt)
    prefix = prefill(model, inputs["input_ids"][0, :cut])
    before = _snapshot(prefix.cache)
    # The logits of the rest, over a copy of the prefix's cache, are the whole prompt's.
    with torch.inference_mode():
        whole = model(**inputs).logits
        reused = prefix.inputs_for(inputs)
        rest = model(
            input_ids=inputs["input_ids"][:, cut:], attention_mask=inputs["attention_mask"], cache=reused["cache"]
        ).logits
    torch.testing.assert_close(rest, whole[:, cut:], rtol=1e-5, atol=1e-5)
    # Greedy generation gives the same text, twice from the same prefix (its cache is never written to).
    plain = generate_from_inputs(model, tokenizer, inputs, GEN)
    assert generate_from_inputs(model, tokenizer, prefix.inputs_for(inputs), GEN) == plain
    assert generate_from_inputs(model, tokenizer, prefix.inputs_for(inputs), GEN) == plain
    for (k0, v0), (k1, v1) in zip(before, _snapshot(prefix.cache), strict=True):
        assert torch.equal(k0, k1) and torch.equal(v0, v1)
    # The test can fail: another question over the same prefix gives other logits.
    other = encode_prompt(tokenizer, PREFIX + OTHER, model.device)
    with torch.inference_mode():
        other_logits = model(**other).logits[0, -1]
    assert not torch.allclose(other_logits, whole[0, -1], atol=1e-3)


def test_attention_steering_continues_a_prefix_with_the_same_output(setup):
    model, tokenizer = setup
    prompt = PREFIX + QUESTION
    start = prompt.index("Paris")
    end = prompt.index("Germany.") + len("Germany.")
    targets = [SteeringTarget(start, end, 1.0, score=0.9, doc_id="2")]
    generator = Engine.from_model(model, tokenizer, SteeringConfig(mechanism="attention", attention_bias=4.0))
    steer_from = len(PREFIX)
    expected = generator.generate(prompt, targets, GEN, steer_from=steer_from)
    cut = _prefix_length(tokenizer, prompt)
    inputs = encode_prompt(tokenizer, prompt, model.device)
    prefix = prefill(model, inputs["input_ids"][0, :cut])
    with generator.session(prompt, targets, steer_from=steer_from, past_length=cut) as (prepared, _):
        assert prepared.active and prepared.steer_from >= cut
        text, new_tokens = generate_from_inputs(model, tokenizer, prefix.inputs_for(prepared.inputs), GEN)
    assert (text, new_tokens) == (expected.text, expected.generated_tokens)
    assert all(not m._forward_pre_hooks and not m._forward_hooks for m in model.modules())


def test_a_prompt_must_start_with_the_prefix_and_go_past_it():
    model, tokenizer = build("llama")
    inputs = encode_prompt(tokenizer, PREFIX + QUESTION, model.device)
    ids = inputs["input_ids"][0]
    prefix = prefill(model, ids[:10])
    assert prefix.length == 10 and prefix.covers(ids) and not prefix.covers(ids[:10])
    other = encode_prompt(tokenizer, QUESTION + PREFIX, model.device)
    with pytest.raises(ConfigurationError, match="does not start with this 10-token prefix"):
        prefix.inputs_for(other)
    with pytest.raises(ConfigurationError, match="at least one token"):
        prefill(model, [])
    with pytest.raises(ConfigurationError, match="one sequence"):
        prefix.covers(torch.stack([ids, ids]))


def test_the_store_prefills_each_prefix_once_and_keeps_the_most_recent():
    model, tokenizer = build("llama")
    ids = encode_prompt(tokenizer, PREFIX + QUESTION, model.device)["input_ids"][0].tolist()
    store = PrefixStore(functools.partial(prefill, model), max_entries=2)
    first = store.get(ids[:5])
    assert store.get(ids[:5]) is first and (store.hits, store.misses) == (1, 1)
    store.get(ids[:6])
    store.get(ids[:5])  # most recent again
    store.get(ids[:7])  # evicts ids[:6], the least recently used
    assert ids[:5] in store and ids[:7] in store and ids[:6] not in store and len(store) == 2
    assert "text" not in store and None not in store
    with pytest.raises(ConfigurationError, match="max_entries"):
        PrefixStore(functools.partial(prefill, model), max_entries=0)
    with pytest.raises(ConfigurationError, match="partial"):
        PrefixStore(model, max_entries=2)  # a model is not a prefill


@pytest.mark.parametrize("wrong", ["default", "short"])
def test_a_session_must_be_prepared_for_the_length_of_the_cache_it_continues(setup, wrong: str):
    model, tokenizer = setup
    prompt = PREFIX + QUESTION
    start = prompt.index("Paris")
    targets = [SteeringTarget(start, prompt.index("Germany.") + len("Germany."), 1.0, score=0.9, doc_id="2")]
    generator = Engine.from_model(model, tokenizer, SteeringConfig(mechanism="attention", attention_bias=4.0))
    inputs = encode_prompt(tokenizer, prompt, model.device)
    cut = _prefix_length(tokenizer, prompt)
    prefix = prefill(model, inputs["input_ids"][0, :cut])
    past = {} if wrong == "default" else {"past_length": cut - 3}
    # Before: past_length=0 gave unsteered logits while the trace said steered; others a raw size mismatch.
    expected = rf"past_length={cut - 3 if past else 0} .* a cache of {cut}\. "
    with (
        pytest.raises(ConfigurationError, match=expected),
        generator.session(prompt, targets, steer_from=len(PREFIX), **past) as (prepared, _),
    ):
        generate_from_inputs(model, tokenizer, prefix.inputs_for(prepared.inputs), GEN)
    assert all(not m._forward_pre_hooks and not m._forward_hooks for m in model.modules())


def test_a_prefix_cache_of_another_model_is_refused():
    model, tokenizer = build("llama")
    inputs = encode_prompt(tokenizer, PREFIX + QUESTION, model.device)
    other, _ = build("llama")  # another model object of the same shapes
    prefix = prefill(other, inputs["input_ids"][0, :10])
    with pytest.raises(ConfigurationError, match="prefilled by another model"):
        generate_from_inputs(model, tokenizer, prefix.inputs_for(inputs), GEN)
    config = tiny_config("llama", vocab_size=len(tokenizer), num_layers=3)
    deeper = AutoModelForCausalLM.from_config(config, attn_implementation="sdpa").eval()
    cache = prefill(deeper, inputs["input_ids"][0, :10]).inputs_for(inputs)["cache"]
    cache._posrag_model = None  # a cache of unknown origin: its layer count still tells
    with pytest.raises(ConfigurationError, match="has 3 layers but the model has"):
        generate_from_inputs(model, tokenizer, {**inputs, "cache": cache}, GEN)
    assert generate_from_inputs(model, tokenizer, prefill(model, inputs["input_ids"][0, :10]).inputs_for(inputs), GEN)
