"""load_causal_lm(quantize=...): clear errors for what is not supported, and steering still works on it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.ao.nn.quantized.dynamic import Linear as DynamicQuantizedLinear

from posrag import models
from posrag.architectures import attention_modules, decoder_layers
from posrag.engine import Engine
from posrag.errors import ConfigurationError
from posrag.generation import GenerationConfig, generate_text
from posrag.steering import SteeringConfig, SteeringTarget, hook_counts
from posrag.testing import tiny_model

DOC = "Paris is the capital of France."
PROMPT = f"Document [1] {DOC}\nDocument [2] Everest is high.\n\nQuestion: What is the capital of France?\nAnswer:"
GEN = GenerationConfig(max_new_tokens=5, min_new_tokens=5)


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("value", ["int4", "INT8", 8, True])
def test_unknown_quantize_value_is_refused_before_loading(value) -> None:
    with pytest.raises(ConfigurationError, match=rf"quantize={value!r}.*'int8'"):
        models.load_causal_lm("/no/such/model", quantize=value)


def test_int8_needs_cpu_and_float32() -> None:
    with pytest.raises(ConfigurationError, match=r"device='cpu' and dtype float32.*bfloat16"):
        models.load_causal_lm("/no/such/model", dtype="bfloat16", quantize="int8")
    with pytest.raises(ConfigurationError, match="device='meta'"):
        models.load_causal_lm("/no/such/model", device="meta", quantize="int8")


def _linear_kinds(model: torch.nn.Module) -> tuple[int, int]:
    modules = list(model.modules())
    float_linear = sum(type(m) is torch.nn.Linear for m in modules)
    return float_linear, sum(isinstance(m, DynamicQuantizedLinear) for m in modules)


def test_quantize_replaces_every_linear_and_keeps_the_layers_steering_hooks_on() -> None:
    tiny = tiny_model("gemma3", num_layers=4, sliding_window=64)
    layers, attention = decoder_layers(tiny.model), attention_modules(tiny.model)
    inputs = tiny.tokenizer(PROMPT, return_tensors="pt")
    with torch.inference_mode():
        before = tiny.model(**inputs).logits

    assert models.quantize_linear_int8(tiny.model) is tiny.model
    float_linear, quantized = _linear_kinds(tiny.model)
    assert float_linear == 0 and quantized == 4 * 7 + 1  # q, k, v, o, gate, up, down per layer; the output layer
    assert decoder_layers(tiny.model) == layers and attention_modules(tiny.model) == attention
    with torch.inference_mode():
        after = tiny.model(**inputs).logits
    assert after.shape == before.shape and not torch.equal(after, before)
    assert torch.allclose(after, before, atol=0.1 * float(before.abs().max()))  # int8: close, not equal


@pytest.mark.parametrize("mechanism", ["attention", "activation"])
def test_steering_runs_on_a_quantized_model_and_removes_its_hooks(mechanism: str) -> None:
    tiny = tiny_model("gemma3", num_layers=4, sliding_window=64)
    models.quantize_linear_int8(tiny.model)
    plain = generate_text(tiny.model, tiny.tokenizer, PROMPT, GEN)
    start = PROMPT.index(DOC)
    target = SteeringTarget(start, start + len(DOC), 0.5, score=0.9, doc_id="a")
    config = SteeringConfig(mechanism=mechanism, base_intensity=2.0, attention_bias=4.0)  # type: ignore[arg-type]
    generator = Engine.from_model(tiny.model, tiny.tokenizer, config)
    inputs = tiny.tokenizer(PROMPT, return_tensors="pt")
    with torch.inference_mode():
        unsteered = tiny.model(**inputs).logits
        with generator.session(PROMPT, [target]) as (prepared, handle):
            assert len(handle) > 0
            steered = tiny.model(**prepared.inputs).logits
    assert not torch.equal(steered[0, -1], unsteered[0, -1])  # the hooks act on the quantized model
    result = generator.generate(PROMPT, [target], GEN)
    assert result.steered and result.generated_tokens == 5
    assert hook_counts(tiny.model) == {"forward": 0, "forward_pre": 0}
    assert generate_text(tiny.model, tiny.tokenizer, PROMPT, GEN) == plain


def test_load_causal_lm_quantizes_a_local_model_and_caches_it_apart(tmp_path: Path) -> None:
    tiny = tiny_model("llama")
    tiny.save(tmp_path)

    quantized = models.load_causal_lm(tmp_path, quantize="int8")
    plain = models.load_causal_lm(tmp_path)

    assert quantized is not plain and quantized.model is not plain.model
    assert _linear_kinds(quantized.model)[0] == 0 and _linear_kinds(plain.model)[1] == 0
    assert models.load_causal_lm(tmp_path, quantize="int8") is quantized
    assert generate_text(quantized.model, quantized.tokenizer, PROMPT, GEN)  # it generates


def test_int8_output_quantizes_the_output_layer_alone_per_channel(tmp_path: Path) -> None:
    tiny = tiny_model("gemma3", num_layers=2, sliding_window=64)  # tied output layer
    inputs = tiny.tokenizer(PROMPT, return_tensors="pt")
    with torch.inference_mode():
        before = tiny.model(**inputs).logits
    embedding = tiny.model.get_input_embeddings().weight.detach().clone()

    models.quantize_output_int8(tiny.model)
    float_linear, quantized = _linear_kinds(tiny.model)
    assert float_linear == 2 * 7 and quantized == 1
    head = tiny.model.get_output_embeddings()
    assert isinstance(head, DynamicQuantizedLinear)
    assert head.weight().qscheme() == torch.per_channel_affine  # one scale per vocabulary row
    assert torch.equal(tiny.model.get_input_embeddings().weight, embedding)  # the input embedding stays float
    with torch.inference_mode():
        after = tiny.model(**inputs).logits
    assert not torch.equal(after, before)
    assert torch.allclose(after, before, atol=0.05 * float(before.abs().max()))

    tiny = tiny_model("llama")
    tiny.save(tmp_path)
    loaded = models.load_causal_lm(tmp_path, quantize="int8-output")
    assert _linear_kinds(loaded.model) == (2 * 7, 1)
    assert loaded is not models.load_causal_lm(tmp_path, quantize="int8")
    assert generate_text(loaded.model, loaded.tokenizer, PROMPT, GEN)


def test_int8_output_needs_a_linear_output_layer() -> None:
    class NoHead(torch.nn.Module):
        def get_output_embeddings(self) -> None:
            return None

    with pytest.raises(ConfigurationError, match=r"no nn\.Linear output layer.*quantize=None"):
        models.quantize_output_int8(NoHead())
