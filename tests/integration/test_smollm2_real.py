"""SmolLM2-135M-Instruct (Llama architecture, a chat model) from its GGUF, converted once into posrag's cache.

The file comes from ``python benchmarks/fetch_smollm2.py`` (or ``$POSRAG_SMOLLM2_GGUF``); without it these tests
are skipped. The first load ever converts it (~10 s on 2 cores); later loads read the converted directory.
"""

from __future__ import annotations

import pytest

from posrag import architectures
from posrag.chat import format_messages
from posrag.engine import Engine
from posrag.generation import GenerationConfig, generate_text
from posrag.model_cache import gguf_cache_target, verify_model_cache
from posrag.models import find_smollm2, load_causal_lm


@pytest.fixture(scope="module")
def smollm2():
    path = find_smollm2()
    if path is None:
        pytest.skip(
            "SmolLM2-135M-Instruct GGUF not found: run `python benchmarks/fetch_smollm2.py` "
            "(or set POSRAG_SMOLLM2_GGUF to a local SmolLM2-135M-Instruct .gguf)"
        )
    return path, load_causal_lm(path)


def test_smollm2_loads_from_its_converted_copy_and_is_recognised(smollm2):
    path, loaded = smollm2
    target = gguf_cache_target(path)
    assert loaded.source == f"gguf file ({path}), converted in {target}"
    assert verify_model_cache(target) == []
    model = loaded.model
    assert model.config.model_type == "llama" and not model.training
    assert architectures.num_layers(model) == 30
    assert architectures.hidden_size(model) == 576
    assert architectures.position_encoding(model) == "rope"
    assert load_causal_lm(path) is loaded  # one shared instance per process


def test_smollm2_answers_through_its_chat_template(smollm2):
    _, loaded = smollm2
    messages = [
        {
            "role": "user",
            "content": "Document [1] The Marrowvale lighthouse was built in 1887 by the engineer Ottoline Brisk.\n\n"
            "Who built the Marrowvale lighthouse?",
        }
    ]
    prompt = format_messages(loaded.tokenizer, messages, use_chat_template=None)
    assert not prompt.add_special_tokens and "<|im_start|>assistant" in prompt.text
    answer = generate_text(
        loaded.model,
        loaded.tokenizer,
        prompt.text,
        GenerationConfig(max_new_tokens=24),
        add_special_tokens=prompt.add_special_tokens,
    )
    assert answer.strip() and "<|im_" not in answer
    assert "Brisk" in answer, answer


def test_the_model_object_alone_finds_its_shipped_calibration(smollm2, real_lm, recwarn):
    """Engine.from_model(lm.model, lm.tokenizer), no model name: the packaged Gemma 3 270M and the SmolLM2 GGUF
    are found by the name they were loaded by, not by the folder of their converted copy."""
    from posrag.profiles import load_profile

    _, loaded = smollm2
    for lm in (real_lm, loaded):
        shipped = load_profile(lm.name).steering
        assert shipped is not None
        config = Engine.from_model(lm.model, lm.tokenizer).config
        assert config.attention_bias == shipped.attention_bias  # Gemma 5, SmolLM2 8; the uncalibrated preset is 2
        assert config.attention_layers == (shipped.attention_layers or "all")
    assert not [w for w in recwarn if "no steering calibration" in str(w.message)]
