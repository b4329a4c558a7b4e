"""The faster prefix pass and statistics give the same distributions as the plain computation they replace."""

from __future__ import annotations

import pytest
import torch

from posrag import architectures
from posrag.retroactive import RetroactivePositionGenerator
from posrag.retroactive.branches import last_mlp_for_last_row, run_prefix
from tests.unit.test_retroactive import LONG_PROMPT, VARIANTS, build


def _plain_prefix(model, ids):
    """The prefix pass as it was: a plain forward pass (every row through the last MLP), last logits only."""
    with torch.inference_mode():
        out = model(input_ids=torch.tensor([ids]), use_cache=True, logits_to_keep=1, return_dict=True)
    keys = [(layer.keys, layer.values) for layer in out.cache.layers]
    return torch.log_softmax(out.logits[0, -1].float(), -1), keys


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_trimmed_prefix_pass_gives_the_plain_distribution_and_the_same_cache(variant):
    model, tokenizer = build(variant)
    gen = RetroactivePositionGenerator(model, tokenizer)
    ids = tuple(tokenizer(LONG_PROMPT)["input_ids"])
    plain_lp, plain_cache = _plain_prefix(model, ids)
    state = run_prefix(model, ids, LONG_PROMPT, architectures.layer_types(model))
    assert (state.log_probs - plain_lp).abs().max() < 1e-5
    assert state.token_id == int(plain_lp.argmax())
    # The keys and values are computed before the last MLP: exactly the plain pass's.
    for (k0, v0), (k1, v1) in zip(plain_cache, state.past, strict=True):
        assert torch.equal(k0, k1) and torch.equal(v0, v1)
    # And every gap's distribution is what the previous (untrimmed) prefix gives.
    assert gen.prefill(LONG_PROMPT).token_id == state.token_id


def test_the_last_mlp_really_runs_one_row_and_the_hooks_go_away():
    model, tokenizer = build("gemma3")
    mlp = architectures.decoder_layers(model)[-1].mlp
    seen: list[int] = []
    # A forward hook sees the arguments the MLP actually ran on (after the pass's pre-hook, registered later).
    watch = mlp.register_forward_hook(lambda _m, args, _out: seen.append(args[0].shape[-2]))
    try:
        ids = tuple(tokenizer(LONG_PROMPT)["input_ids"])
        run_prefix(model, ids, None, architectures.layer_types(model))
        with torch.inference_mode():
            model(input_ids=torch.tensor([ids]))
    finally:
        watch.remove()
    assert seen == [1, len(ids)]  # trimmed inside the prefix pass, a full pass again outside
    assert not mlp._forward_hooks and not mlp._forward_pre_hooks


def test_the_hooks_go_away_when_the_pass_raises():
    model, _ = build("llama")
    mlp = architectures.decoder_layers(model)[-1].mlp
    with pytest.raises(RuntimeError, match="boom"), last_mlp_for_last_row(model):
        raise RuntimeError("boom")
    assert not mlp._forward_hooks and not mlp._forward_pre_hooks


def test_the_statistics_match_the_textbook_formulas():
    model, tokenizer = build("gemma3")
    gen = RetroactivePositionGenerator(model, tokenizer, chunk_size=2)
    state = gen.prefill(LONG_PROMPT)
    gaps = [1, 3, 9, 27]
    result = gen.generate_and_explore(state, gaps)
    rows = gen.position_log_probs(state, [state.length + g for g in [0, *gaps]])
    base = rows[0]
    for gap, lp in zip(gaps, rows[1:], strict=True):
        e = result.get_exploration(gap)
        assert e.entropy == pytest.approx(float(torch.special.entr(lp.exp()).sum()), rel=1e-5, abs=1e-6)
        assert e.kl_divergence == pytest.approx(float((lp.exp() * (lp - base)).sum()), abs=1e-5)
