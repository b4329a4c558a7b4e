"""The context-window guard: prompt + new tokens beyond the model's positions is a clear error, up front."""

from __future__ import annotations

import pytest

from posrag import architectures
from posrag.errors import ConfigurationError, PositionOutOfRangeError
from posrag.generation import GenerationConfig, check_context_window, generate_text, stream_text
from posrag.testing import tiny_model

LONG_PROMPT = "The quick brown fox jumps over the lazy dog. " * 60  # ~600 tokens: past the tiny models' 512


@pytest.fixture(scope="module", params=["llama", "gpt2", "gemma3"])
def tm(request):
    return tiny_model(request.param)


def test_context_window_is_the_configs_position_limit(tm):
    assert architectures.context_window(tm.model) == 512


def test_context_window_of_an_unknown_model_is_none():
    assert architectures.context_window(object()) is None  # type: ignore[arg-type]


@pytest.mark.parametrize("run", [generate_text, lambda *a: "".join(stream_text(*a))], ids=["generate", "stream"])
def test_a_prompt_past_the_window_is_a_clear_error(tm, run):
    prompt_tokens = len(tm.tokenizer(LONG_PROMPT)["input_ids"])
    assert prompt_tokens > 512
    with pytest.raises(PositionOutOfRangeError) as info:
        run(tm.model, tm.tokenizer, LONG_PROMPT, GenerationConfig(max_new_tokens=4))
    message = str(info.value)
    assert f"{prompt_tokens} tokens" in message and "window is 512" in message and "smaller k" in message
    assert isinstance(info.value, ConfigurationError)


@pytest.mark.parametrize("run", [generate_text, lambda *a: "".join(stream_text(*a))], ids=["generate", "stream"])
def test_max_new_tokens_is_bounded_by_the_window(tm, run):
    prompt = "Once upon a time"
    prompt_tokens = len(tm.tokenizer(prompt)["input_ids"])
    with pytest.raises(PositionOutOfRangeError, match=f"max_new_tokens to at most {512 - prompt_tokens}"):
        run(tm.model, tm.tokenizer, prompt, GenerationConfig(max_new_tokens=10**9))


def test_exactly_filling_the_window_is_allowed(tm):
    check_context_window(tm.model, 500, GenerationConfig(max_new_tokens=12))
    with pytest.raises(PositionOutOfRangeError, match="501 tokens and max_new_tokens=12, 513 positions"):
        check_context_window(tm.model, 501, GenerationConfig(max_new_tokens=12))


def test_llama_index_metadata_reports_the_models_window():
    from llama_index.llms.posrag import PosragLLM

    tm = tiny_model("llama")
    tm.model.config.max_position_embeddings = 300
    llm = PosragLLM(model=(tm.model, tm.tokenizer))
    assert llm.metadata.context_window == 300
