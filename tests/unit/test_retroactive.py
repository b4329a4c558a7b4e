"""Retroactive exploration on tiny real architectures: every gap equals a plain, separate forward pass."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM

from posrag import architectures
from posrag.errors import ConfigurationError, PositionOutOfRangeError
from posrag.retroactive import ExplorationResult, RetroactivePositionGenerator
from posrag.testing import tiny_config, tiny_tokenizer

# transformers 5.x deprecates the `past_key_values` forward argument (removed in 5.40): posrag must not use it.
pytestmark = pytest.mark.filterwarnings("error:.*past_key_values.*is deprecated:FutureWarning")

TOL = 1e-4
LONG_PROMPT = "The quick brown fox jumps over the lazy dog. Once upon a time there was a small model."
SHORT_PROMPT = "Once upon a time"
WITHIN_WINDOW = "the dog"  # 4 tokens: inside the window of 8 of the sliding variants

# Variants: the five supported families, plus sliding-window layouts that use a single 4D mask (Mistral with a
# window: every layer slides) and a mixed dict of masks on another family (Qwen2 with one sliding layer).
VARIANTS = ["llama", "gemma3", "gpt2", "qwen2", "mistral", "mistral-sliding", "qwen2-mixed"]


def build(variant: str, *, attn: str = "sdpa", window: int = 8):
    """A tiny random model with weights large enough that positions visibly change its predictions.

    (At the default init scale, 0.02, a 32-wide model is nearly uniform and barely position-sensitive, so an
    equality test at 1e-4 could not fail.)
    """
    tokenizer = tiny_tokenizer()
    arch = variant.split("-")[0]
    config = tiny_config(arch, vocab_size=len(tokenizer), sliding_window=window)
    config.initializer_range = 0.3
    if variant == "mistral-sliding":
        config.sliding_window = window
    if variant == "qwen2-mixed":
        config.use_sliding_window, config.sliding_window = True, window
        config.layer_types = ["full_attention", "sliding_attention"]
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, attn_implementation=attn).eval()
    return model, tokenizer


@pytest.fixture(scope="module", params=VARIANTS)
def setup(request):
    model, tokenizer = build(request.param)
    return request.param, model, RetroactivePositionGenerator(model, tokenizer, chunk_size=3)


def reference_log_probs(model, ids: list[int], token: int, position: float) -> torch.Tensor:
    """A plain forward pass of ``ids + [token]`` with position ids ``[0..L-1, position]``, normal causal mask."""
    length = len(ids)
    float_pos = isinstance(position, float)
    positions = torch.tensor([[*range(length), position]], dtype=torch.float32 if float_pos else torch.long)
    with torch.no_grad():
        logits = model(
            input_ids=torch.tensor([[*ids, token]]),
            position_ids=positions,
            attention_mask=torch.ones(1, length + 1, dtype=torch.long),
        ).logits[0, -1]
    return torch.log_softmax(logits.float(), -1)


def gaps_for(variant: str) -> list[float]:
    gaps = [0, 1, 2, 5, 13, 40, 200]
    return gaps if variant == "gpt2" else [*gaps, 0.5, 7.25]


@pytest.mark.parametrize("prompt", [WITHIN_WINDOW, LONG_PROMPT], ids=["within-window", "past-window"])
def test_every_gap_equals_a_separate_forward_pass(setup, prompt):
    variant, model, gen = setup
    state = gen.prefill(prompt)
    assert (state.length > 8) == (prompt == LONG_PROMPT)  # the sliding variants' window is 8
    gaps = gaps_for(variant)
    ours = gen.position_log_probs(state, [state.length + g for g in gaps])
    for row, gap in zip(ours, gaps, strict=True):
        ref = reference_log_probs(model, list(state.input_ids), state.token_id, state.length + gap)
        assert (row.exp() - ref.exp()).abs().max() < TOL, gap
        assert (row - ref).abs().max() < 1e-3, gap  # log space: also the rare tokens agree
    # The test can fail: positions visibly change the distribution (far more than the tolerance).
    assert (ours[0].exp() - ours[-1].exp()).abs().max() > 100 * TOL


def test_the_prefix_pass_equals_a_plain_forward_pass(setup):
    _, model, gen = setup
    state = gen.prefill(LONG_PROMPT)
    with torch.no_grad():
        plain = model(input_ids=torch.tensor([state.input_ids])).logits[0, -1].float().log_softmax(-1)
    assert (plain.exp() - state.log_probs.exp()).abs().max() < TOL
    assert state.token_id == int(plain.argmax())


def test_the_prefix_cache_is_reused_and_never_mutated(setup):
    _, _, gen = setup
    state = gen.prefill(LONG_PROMPT)
    before = [(k.clone(), v.clone()) for k, v in state.past]
    first = gen.position_log_probs(state, [state.length + g for g in (3, 9, 30, 60)])
    again = gen.position_log_probs(state, [state.length + 30, state.length + 3])
    assert torch.allclose(first[2], again[0]) and torch.allclose(first[0], again[1])
    for (k0, v0), (k1, v1) in zip(before, state.past, strict=True):
        assert torch.equal(k0, k1) and torch.equal(v0, v1)


def test_sliding_window_masks_follow_sequence_order_not_positions():
    """With the prompt longer than the window, a full-attention mask on the sliding layers gives another answer."""
    model, tokenizer = build("gemma3")
    gen = RetroactivePositionGenerator(model, tokenizer)
    state = gen.prefill(LONG_PROMPT)
    ours = gen.position_log_probs(state, [state.length + 4])[0]
    ids = torch.tensor([[*state.input_ids, state.token_id]])
    n = ids.shape[1]
    causal = torch.zeros(1, 1, n, n).masked_fill(torch.ones(n, n).triu(1).bool(), torch.finfo(torch.float32).min)
    positions = torch.tensor([[*range(n - 1), n - 1 + 4]])
    with torch.no_grad():
        wrong = model(
            input_ids=ids,
            position_ids=positions,
            attention_mask={"full_attention": causal, "sliding_attention": causal},
        ).logits[0, -1]
    assert (ours.exp() - wrong.float().softmax(-1)).abs().max() > 100 * TOL
    assert architectures.sliding_window(model) == 8 < state.length


@pytest.mark.parametrize("variant", ["llama", "gemma3", "gpt2"])
def test_eager_attention_takes_the_same_masks(variant):
    model, tokenizer = build(variant, attn="eager")
    gen = RetroactivePositionGenerator(model, tokenizer)
    state = gen.prefill(LONG_PROMPT)
    ours = gen.position_log_probs(state, [state.length + 6, state.length + 50])
    for row, gap in zip(ours, (6, 50), strict=True):
        ref = reference_log_probs(model, list(state.input_ids), state.token_id, state.length + gap)
        assert (row.exp() - ref.exp()).abs().max() < TOL


@pytest.mark.parametrize("prompt", [WITHIN_WINDOW, LONG_PROMPT], ids=["crosses-window", "past-window"])
def test_path_expansion_equals_greedy_decoding_at_shifted_positions(setup, prompt):
    variant, model, gen = setup
    state = gen.prefill(prompt)
    gaps = [0, 7, 30] if variant == "gpt2" else [0, 7, 2.5]
    paths = gen.expand_paths(state, gaps, length=6)  # a short prompt's path crosses the window of 8
    assert [p.gap for p in paths] == gaps
    for path, gap in zip(paths, gaps, strict=True):
        ids = list(state.input_ids)
        seq = [state.token_id]
        for i, chosen in enumerate(path.token_ids):
            length = len(ids)
            positions = [*range(length), *(length + gap + j for j in range(len(seq)))]
            with torch.no_grad():
                logits = model(
                    input_ids=torch.tensor([[*ids, *seq]]),
                    position_ids=torch.tensor(
                        [positions], dtype=torch.float32 if isinstance(gap, float) else torch.long
                    ),
                    attention_mask=torch.ones(1, length + len(seq), dtype=torch.long),
                ).logits[0, -1]
            probs = logits.float().softmax(-1)
            assert int(probs.argmax()) == chosen
            assert abs(float(probs.max()) - path.probs[i]) < TOL
            seq.append(chosen)
        assert path.positions[0] == path.start_position + 1 == state.length + gap + 1


def test_generate_and_explore_result(setup):
    _, _, gen = setup
    result = gen.generate_and_explore(LONG_PROMPT, [5, 10, 20], selection_threshold=0.05)
    assert isinstance(result, ExplorationResult)
    assert result.gaps() == [5, 10, 20]
    state = gen.prefill(LONG_PROMPT)
    assert result.original_token_id == state.token_id and result.prompt_length == state.length
    assert result.baseline.gap == 0 and result.baseline.kl_divergence == pytest.approx(0, abs=1e-6)
    lp = gen.position_log_probs(state, [state.length + 10])[0]
    e = result.get_exploration(10)
    assert e.position == state.length + 10
    assert e.top_next_token_id == int(lp.argmax()) and e.top_next_prob == pytest.approx(float(lp.exp().max()), abs=1e-6)
    expected_parallel = set(torch.nonzero(lp.exp() >= 0.05).flatten().tolist())
    assert set(e.parallel_token_ids) == expected_parallel
    assert all(p >= 0.05 for p in e.parallel_probs) and list(e.parallel_probs) == sorted(e.parallel_probs, reverse=True)
    assert e.entropy == pytest.approx(float(-(lp.exp() * lp).sum()), rel=1e-4)
    base = gen.position_log_probs(state, [state.length])[0]
    assert e.kl_divergence == pytest.approx(float((lp.exp() * (lp - base)).sum()), abs=1e-5)
    assert e.baseline_token_prob == pytest.approx(float(lp.exp()[result.baseline.top_next_token_id]), abs=1e-6)
    assert result.get_exploration(10.0) is e and result.get_exploration(0) is result.baseline
    with pytest.raises(ConfigurationError, match="not explored"):
        result.get_exploration(11)
    data = result.to_dict()
    assert data["explorations"][1]["gap"] == 10 and data["original_token"] == result.original_token


def test_compare_positions_keys_by_absolute_position(tiny_llama):
    gen = RetroactivePositionGenerator(tiny_llama.model, tiny_llama.tokenizer, add_special_tokens=False)
    length = gen.count_tokens(SHORT_PROMPT)
    positions = [length, length + 6, 50, 100]
    result = gen.compare_positions(SHORT_PROMPT, positions)
    assert result.positions() == positions and sorted(result.by_position()) == sorted(positions)
    assert result.at_position(50).gap == 50 - length
    by_gap = gen.generate_and_explore(SHORT_PROMPT, [0, 6, 50 - length, 100 - length])
    assert [e.top_probs for e in by_gap] == [e.top_probs for e in result]


def test_gap_dedup_and_order(tiny_llama):
    gen = RetroactivePositionGenerator(tiny_llama.model, tiny_llama.tokenizer)
    result = gen.generate_and_explore(SHORT_PROMPT, [20, 5, 5.0, 0])
    assert result.gaps() == [20, 5, 0]


def test_batch_equals_one_by_one(tiny_gemma3):
    gen = RetroactivePositionGenerator(tiny_gemma3.model, tiny_gemma3.tokenizer)
    prompts = [SHORT_PROMPT, LONG_PROMPT, [2, 40, 41, 42]]
    batch = gen.batch_generate_and_explore(prompts, [1, 9])
    single = [gen.generate_and_explore(p, [1, 9]) for p in prompts]
    assert [r.to_dict() for r in batch] == [r.to_dict() for r in single]


def test_adaptive_exploration_uses_the_analyzer(tiny_llama):
    gen = RetroactivePositionGenerator(tiny_llama.model, tiny_llama.tokenizer)
    seen = []

    def analyzer(token: str) -> list[int]:
        seen.append(token)
        return [3, 33]

    result = gen.adaptive_exploration(SHORT_PROMPT, analyzer)
    assert seen == [result.original_token] and result.gaps() == [3, 33]
    default = gen.adaptive_exploration(SHORT_PROMPT)
    from posrag.retroactive import default_token_analyzer

    assert tuple(default.gaps()) == default_token_analyzer(default.original_token)


def test_dynamic_exploration_scales_with_entropy(tiny_llama):
    gen = RetroactivePositionGenerator(tiny_llama.model, tiny_llama.tokenizer)
    result = gen.dynamic_exploration(SHORT_PROMPT, num_gaps=6, max_gap=300)
    from posrag.retroactive import gaps_from_entropy

    state = gen.prefill(SHORT_PROMPT)
    expected = gaps_from_entropy(state.entropy, state.log_probs.numel(), num_gaps=6, max_gap=300)
    assert tuple(result.gaps()) == expected
    assert result.generation_entropy == pytest.approx(state.entropy)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"gaps": [-1]}, ConfigurationError, "negative gap"),
        ({"gaps": []}, ConfigurationError, "No gaps"),
        ({"gaps": [1, float("nan")]}, ConfigurationError, "finite"),
        ({"gaps": [1, "2"]}, ConfigurationError, "finite number"),
        ({"gaps": 5}, ConfigurationError, "list of numbers"),
        ({"gaps": list(range(9))}, ConfigurationError, "max_gaps=8"),
        ({"gaps": [600]}, PositionOutOfRangeError, "last position 511"),
        ({"gaps": [3], "selection_threshold": 0}, ConfigurationError, "selection_threshold"),
        ({"prompt": "   ", "gaps": [1]}, ConfigurationError, "empty"),
        ({"prompt": [], "gaps": [1]}, ConfigurationError, "empty"),
        ({"prompt": [5] * 40, "gaps": [1]}, ConfigurationError, "max_prompt_tokens=32"),
    ],
)
def test_clear_errors(tiny_llama, kwargs, error, match):
    gen = RetroactivePositionGenerator(tiny_llama.model, tiny_llama.tokenizer, max_gaps=8, max_prompt_tokens=32)
    kwargs = {"prompt": SHORT_PROMPT, **kwargs}
    with pytest.raises(error, match=match):
        gen.generate_and_explore(**kwargs)


def test_fractional_positions_need_rope():
    model, tokenizer = build("gpt2")
    gen = RetroactivePositionGenerator(model, tokenizer)
    with pytest.raises(PositionOutOfRangeError, match="integer positions only"):
        gen.generate_and_explore(SHORT_PROMPT, [2.5])
    assert gen.generate_and_explore(SHORT_PROMPT, [2.0]).gaps() == [2]
    assert gen.generate_and_explore(SHORT_PROMPT, np.array([1, 3])).gaps() == [1, 3]  # numpy ints stay integers


def test_positions_before_the_token_are_rejected_with_a_hint(tiny_gemma3):
    gen = RetroactivePositionGenerator(tiny_gemma3.model, tiny_gemma3.tokenizer)
    length = gen.count_tokens(SHORT_PROMPT)
    with pytest.raises(ConfigurationError, match=f"natural position is {length}"):
        gen.compare_positions(SHORT_PROMPT, [length - 1])


def test_path_past_the_last_position_is_rejected(tiny_llama):
    gen = RetroactivePositionGenerator(tiny_llama.model, tiny_llama.tokenizer)
    length = gen.count_tokens(SHORT_PROMPT)
    with pytest.raises(PositionOutOfRangeError, match="shorter path"):
        gen.expand_path(SHORT_PROMPT, 511 - length - 2, length=4)
    path = gen.expand_path(SHORT_PROMPT, 3, length=4)
    assert path.text.startswith(path.token) and len(path.tokens) <= 4


def test_models_that_cannot_take_a_4d_mask_are_refused(tiny_llama):
    tiny_llama.model.config._attn_implementation = "flash_attention_2"
    with pytest.raises(ConfigurationError, match="attn_implementation='sdpa'"):
        RetroactivePositionGenerator(tiny_llama.model, tiny_llama.tokenizer)


def test_training_mode_is_refused(tiny_llama):
    gen = RetroactivePositionGenerator(tiny_llama.model, tiny_llama.tokenizer)
    tiny_llama.model.train()
    with pytest.raises(ConfigurationError, match=r"model.eval\(\)"):
        gen.generate_and_explore(SHORT_PROMPT, [1])


@pytest.mark.parametrize("arch", ["gemma3", "gpt2"])
def test_exploration_uses_the_supported_cache_api(arch):
    """No deprecated `past_key_values` argument or output attribute (a FutureWarning, then a log line)."""
    import warnings

    from transformers.utils import logging as hf_logging

    model, tokenizer = build(arch)
    generator = RetroactivePositionGenerator(model, tokenizer)
    messages: list[str] = []

    class _Collect(__import__("logging").Handler):
        def emit(self, record):
            messages.append(record.getMessage())

    handler = _Collect()
    hf_logging.get_logger().addHandler(handler)
    warning_once = type(hf_logging.get_logger()).warning_once
    if hasattr(warning_once, "cache_clear"):
        warning_once.cache_clear()  # transformers logs each deprecation once per process
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", FutureWarning)
            generator.generate_and_explore(SHORT_PROMPT, [0, 2])
    finally:
        hf_logging.get_logger().removeHandler(handler)
    assert not [m for m in messages if "past_key_values" in m]


def test_branch_masks_show_each_branch_the_prefix_and_itself_only():
    """Two branches at step 1 after a 3-token prefix: keys are prefix, step-0 keys, step-1 keys (branch order)."""
    from posrag.retroactive.branches import PromptState, branch_masks

    model, _ = build("llama")
    past = tuple((torch.zeros(1, 1, 3, 4), torch.zeros(1, 1, 3, 4)) for _ in architectures.layer_types(model))
    state = PromptState(input_ids=(1, 2, 3), text=None, past=past, log_probs=torch.zeros(5))
    mask = branch_masks(model, state, step=1, branches=2, layer_types=architectures.layer_types(model), window=None)
    visible = (mask[0, 0] == 0).int().tolist()
    #                prefix   step 0 (b0, b1)  step 1 (b0, b1)
    assert visible == [[1, 1, 1, 1, 0, 1, 0], [1, 1, 1, 0, 1, 0, 1]]
    sliding = branch_masks(model, state, step=1, branches=2, layer_types=["sliding_attention"] * len(past), window=2)
    assert (sliding[0, 0] == 0).int().tolist() == [[0, 0, 0, 1, 0, 1, 0], [0, 0, 0, 0, 1, 0, 1]]


def test_gap_checks_name_the_value_and_the_fix():
    from posrag.retroactive.validation import check_gaps

    kwargs = {"prompt_length": 10, "max_gaps": 4, "max_positions": 32, "position_encoding": "learned"}
    assert check_gaps([3, 3.0, np.int64(5), 0], **kwargs) == [3, 5, 0]
    with pytest.raises(ConfigurationError, match=r"position 9 is a negative gap.*includes the BOS token"):
        check_gaps([9], what="position", counts_bos=True, **kwargs)
    with pytest.raises(PositionOutOfRangeError, match=r"gap 2\.5: this model has learned absolute positions"):
        check_gaps([2.5], **kwargs)
    with pytest.raises(PositionOutOfRangeError, match="largest gap is 21"):
        check_gaps([22], **kwargs)
    with pytest.raises(ConfigurationError, match="more than max_gaps=4"):
        check_gaps(range(5), **kwargs)
    with pytest.raises(ConfigurationError, match="list of numbers"):
        check_gaps(True, **kwargs)
