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
    from posrag.profiles import model_profile

    _, loaded = smollm2
    for lm in (real_lm, loaded):
        shipped = model_profile(lm.name).steering
        assert shipped is not None
        config = Engine.from_model(lm.model, lm.tokenizer).config
        assert config.attention_bias == shipped.attention_bias  # Gemma 5, SmolLM2 8; the uncalibrated preset is 2
        assert config.attention_layers == (shipped.attention_layers or "all")
    assert not [w for w in recwarn if "no steering calibration" in str(w.message)]


def test_llama_cpp_computes_the_same_next_token_distribution_as_torch_on_a_long_prompt(smollm2):
    """The llama.cpp backend runs SmolLM2's Q4_1 file as the torch backend runs its de-quantized copy, also on a
    prompt longer than 32 tokens: the batched prompt kernels of some builds differ there (the ik wheel on AVX-512
    did, correlation 0.84), so the backend checks its prompt batches at load and lowers them where they disagree
    with decoding token by token."""
    import numpy as np
    import torch

    try:
        from posrag.backends.llamacpp import LlamaCppBackend, LlamaRequest, binding

        binding()
    except ImportError as exc:
        pytest.skip(str(exc))
    path, loaded = smollm2
    text = (
        "Document [1](Title: Lighthouse) The keeper of the north lighthouse was Jormora Ashwell, appointed in "
        "1890 by the harbour board.\n\nQuestion: Who was the keeper of the north lighthouse?\nAnswer:"
    )
    ids = loaded.tokenizer(text, add_special_tokens=False)["input_ids"]
    assert len(ids) > 40
    with torch.no_grad():
        reference = loaded.model(torch.tensor([ids])).logits[0, -1].float().numpy()
    with LlamaCppBackend(path, n_threads=1, max_contexts=1) as backend:
        logits = backend.prompt_logits(LlamaRequest(tuple(ids), len(ids), (0, len(ids)), {}, {}))
        check = backend.batch_check
    assert check is not None and check.agreement[check.used] >= 0.98
    assert float(np.corrcoef(reference, logits)[0, 1]) > 0.99, check
    assert int(np.argmax(logits)) == int(np.argmax(reference))
