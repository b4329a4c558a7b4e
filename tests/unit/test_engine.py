"""The engine (torch backend) on tiny models of every family: exact layers, spans, decode steps, cleanup, threads."""

from __future__ import annotations

import ast
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from posrag.architectures import attention_modules, decoder_layers
from posrag.documents import ScoredDocument
from posrag.engine import Engine
from posrag.errors import ConfigurationError
from posrag.generation import GenerationConfig, generate_text, stream_text
from posrag.steering import (
    SteeringConfig,
    SteeringTarget,
    hook_counts,
    plan_steering,
    targets_from_prompt,
)
from posrag.testing import TINY_ARCHS, TinyModel, tiny_model

DOC_A = "Paris is the capital of France."
DOC_B = "Everest is the highest mountain on Earth."
PROMPT = (
    "Use the documents below to answer the question.\n"
    f"Document [1] {DOC_A}\n"
    f"Document [2] {DOC_B}\n\n"
    "Question: What is the capital of France?\nAnswer:"
)
GEN = GenerationConfig(max_new_tokens=6)


def _targets() -> list[SteeringTarget]:
    a, b = PROMPT.index(DOC_A), PROMPT.index(DOC_B)
    return [
        SteeringTarget(a, a + len(DOC_A), 0.0, score=0.9, doc_id="a"),
        SteeringTarget(b, b + len(DOC_B), 1.0, score=0.8, doc_id="b"),
    ]


@pytest.fixture(scope="module", params=TINY_ARCHS)
def tiny(request: pytest.FixtureRequest) -> TinyModel:
    return tiny_model(request.param, num_layers=6, sliding_window=64)


def _no_hooks(model: torch.nn.Module) -> bool:
    return hook_counts(model) == {"forward": 0, "forward_pre": 0}


def _logits(model: torch.nn.Module, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    with torch.inference_mode():
        return model(**inputs).logits


# ----------------------------------------------------------------------------- plain behaviour


@pytest.mark.parametrize("mechanism", ["activation", "attention", "both"])
def test_no_targets_is_exactly_plain_generation(tiny: TinyModel, mechanism: str) -> None:
    generator = Engine.from_model(tiny.model, tiny.tokenizer, SteeringConfig(mechanism=mechanism))  # type: ignore[arg-type]
    plain = generate_text(tiny.model, tiny.tokenizer, PROMPT, GEN)
    result = generator.generate(PROMPT, [], GEN)
    assert result.text == plain
    assert result.trace == () and not result.steered
    assert (
        "".join(generator.stream(PROMPT, [], GEN))
        == plain
        == "".join(stream_text(tiny.model, tiny.tokenizer, PROMPT, GEN))
    )


@pytest.mark.parametrize("mechanism", ["activation", "attention", "both"])
def test_steering_changes_only_positions_after_the_documents(tiny: TinyModel, mechanism: str) -> None:
    config = SteeringConfig(mechanism=mechanism, base_intensity=0.5, attention_bias=3.0)  # type: ignore[arg-type]
    generator = Engine.from_model(tiny.model, tiny.tokenizer, config)
    with generator.session(PROMPT, _targets()) as (prepared, handle):
        assert len(handle) == len(prepared.hook_specs) > 0
        steered = _logits(tiny.model, prepared.inputs)
    assert _no_hooks(tiny.model)
    base = _logits(tiny.model, prepared.inputs)
    cut = prepared.steer_from
    assert cut == max(span.end for span in prepared.spans)
    torch.testing.assert_close(steered[:, :cut], base[:, :cut], rtol=0, atol=0)
    assert not torch.allclose(steered[:, cut:], base[:, cut:])


def test_steered_generation_differs_and_is_deterministic(tiny: TinyModel) -> None:
    config = SteeringConfig(mechanism="both", base_intensity=1.0, attention_bias=8.0)
    generator = Engine.from_model(tiny.model, tiny.tokenizer, config)
    first = generator.generate(PROMPT, _targets(), GenerationConfig(max_new_tokens=12))
    second = generator.generate(PROMPT, _targets(), GenerationConfig(max_new_tokens=12))
    assert first == second
    assert first.steered and first.generated_tokens >= 1
    assert "".join(generator.stream(PROMPT, _targets(), GenerationConfig(max_new_tokens=12))) == first.text
    assert _no_hooks(tiny.model)


def test_a_stream_counts_the_tokens_the_same_request_reports_unstreamed(tiny: TinyModel) -> None:
    """What a streaming caller bills and traces: once exhausted, the stream's token count is the generated
    length of the same request not streamed, also when a stop string ends it early."""
    generator = Engine.from_model(tiny.model, tiny.tokenizer, SteeringConfig(mechanism="both"))
    whole = generator.generate(PROMPT, _targets(), GenerationConfig(max_new_tokens=16))
    stop = whole.text.strip()[3:6]
    assert stop and stop in whole.text
    for config in (GenerationConfig(max_new_tokens=16), GenerationConfig(max_new_tokens=16, stop=(stop,))):
        expected = generator.generate(PROMPT, _targets(), config)
        stream = generator.stream(PROMPT, _targets(), config)
        assert stream.generated_tokens == 0
        assert "".join(stream) == expected.text
        assert stream.generated_tokens == expected.generated_tokens
    cut = generator.generate(PROMPT, _targets(), GenerationConfig(max_new_tokens=16, stop=(stop,)))
    assert 0 < cut.generated_tokens < whole.generated_tokens == 16


# ----------------------------------------------------------------------------- exactly the planned layers and spans


def _record_outputs(layers: list[torch.nn.Module], store: list[torch.Tensor]) -> list[Any]:
    def make(i: int):
        def hook(module: torch.nn.Module, args: Any, output: Any) -> None:
            hidden = output[0] if isinstance(output, tuple) else output
            store[i] = hidden.detach().clone()

        return hook

    return [layer.register_forward_hook(make(i)) for i, layer in enumerate(layers)]


def test_activation_touches_exactly_the_planned_layers_and_positions(tiny: TinyModel) -> None:
    layers = decoder_layers(tiny.model)
    config = SteeringConfig(mechanism="activation", base_intensity=0.3, curve="step")
    generator = Engine.from_model(tiny.model, tiny.tokenizer, config)
    before: list[torch.Tensor] = [torch.empty(0)] * len(layers)
    after: list[torch.Tensor] = [torch.empty(0)] * len(layers)
    recorders = _record_outputs(layers, before)  # registered first: sees each layer's own output
    try:
        with generator.session(PROMPT, _targets()) as (prepared, _):
            late = _record_outputs(layers, after)  # registered after the steering hooks: sees the steered output
            try:
                _logits(tiny.model, prepared.inputs)
            finally:
                for handle in late:
                    handle.remove()
    finally:
        for handle in recorders:
            handle.remove()
    assert _no_hooks(tiny.model)
    planned = {layer: plan for plan in prepared.plans for layer in plan.layers}
    assert planned, "the plan must steer some layer"
    cut = prepared.steer_from
    for index in range(len(layers)):
        delta = (after[index] - before[index])[0]
        if index not in planned:
            assert torch.equal(delta, torch.zeros_like(delta)), f"layer {index} was not planned but changed"
            continue
        assert torch.equal(delta[:cut], torch.zeros_like(delta[:cut])), "document/instruction tokens were steered"
        tail, h = delta[cut:], before[index][0, cut:]
        assert (tail.norm(dim=-1) > 0).all()
        # Orthogonal to the current hidden state, with norm intensity·‖h‖ (one target per layer here).
        cosine = (tail * h).sum(-1) / (tail.norm(dim=-1) * h.norm(dim=-1))
        assert cosine.abs().max() < 1e-3
        torch.testing.assert_close(tail.norm(dim=-1), planned[index].intensity * h.norm(dim=-1), rtol=1e-3, atol=1e-5)
    assert {e.doc_id: e.layers for e in generator.generate(PROMPT, _targets(), GEN).trace} == {
        p.target.doc_id: p.layers for p in prepared.plans
    }


@pytest.mark.parametrize("attn_implementation", ["sdpa", "eager"])
def test_attention_bias_touches_exactly_the_planned_layers_rows_and_columns(attn_implementation: str) -> None:
    tiny = tiny_model("gemma3", num_layers=4, sliding_window=12, attn_implementation=attn_implementation)
    attention = attention_modules(tiny.model)
    masks: dict[int, Any] = {}

    def make(i: int):
        def hook(module: torch.nn.Module, args: Any, kwargs: dict[str, Any]) -> None:
            masks[i] = kwargs.get("attention_mask")

        return hook

    config = SteeringConfig(mechanism="attention", attention_bias=2.0, curve="step")
    generator = Engine.from_model(tiny.model, tiny.tokenizer, config)
    prepared = generator.prepare(PROMPT, _targets())
    baseline = [m.register_forward_pre_hook(make(i), with_kwargs=True) for i, m in enumerate(attention)]
    try:
        _logits(tiny.model, prepared.inputs)
    finally:
        for handle in baseline:
            handle.remove()
    base_masks = dict(masks)
    with generator.session(PROMPT, _targets()) as (prepared, _):
        late = [m.register_forward_pre_hook(make(i), with_kwargs=True) for i, m in enumerate(attention)]
        try:
            _logits(tiny.model, prepared.inputs)
        finally:
            for handle in late:
                handle.remove()
    assert _no_hooks(tiny.model)
    seq = prepared.encoded.num_tokens
    cut = prepared.steer_from
    q = torch.arange(seq)[:, None]
    k = torch.arange(seq)[None, :]
    entries = {e.doc_id: e for e in generator.prepare(PROMPT, _targets()).trace}
    for index, module in enumerate(attention):
        window = module.sliding_window if getattr(module, "is_sliding", False) else None
        allowed = (k <= q) & ((k > q - window) if window else torch.ones_like(k <= q))
        expected = torch.zeros(seq, seq)
        for plan, span in zip(prepared.plans, prepared.spans, strict=True):
            if index in entries[plan.target.doc_id].attention_layers:
                expected[cut:, span.start : span.end] += plan.attention_bias
        seen = masks[index]
        if not expected.any():  # untouched: exactly what the model made
            assert (seen is None and base_masks[index] is None) or torch.equal(seen, base_masks[index])
            continue
        seen = seen[0, 0].float()
        min_value = torch.finfo(torch.float32).min
        bias = torch.where(allowed, seen, torch.zeros_like(seen))
        torch.testing.assert_close(bias, torch.where(allowed, expected, torch.zeros_like(expected)))
        assert (seen[~allowed] <= min_value / 2).all(), "masked positions must stay masked"
    # With a window of 12 the first document is out of reach of the question on sliding layers.
    sliding = [i for i, m in enumerate(attention) if getattr(m, "is_sliding", False)]
    assert not set(sliding) & set(entries["a"].attention_layers)
    assert set(entries["a"].attention_layers) == set(range(len(attention))) - set(sliding)


@pytest.mark.parametrize("mechanism", ["activation", "attention", "both"])
def test_decode_steps_are_steered_like_a_full_recompute(tiny: TinyModel, mechanism: str) -> None:
    """The cached decode steps see the same steering as a fresh prefill over the sequence so far."""
    config = SteeringConfig(mechanism=mechanism, base_intensity=0.4, attention_bias=2.0)  # type: ignore[arg-type]
    generator = Engine.from_model(tiny.model, tiny.tokenizer, config)
    with generator.session(PROMPT, _targets()) as (prepared, _), torch.inference_mode():
        out = tiny.model.generate(
            **prepared.inputs,
            max_new_tokens=4,
            do_sample=False,
            output_scores=True,
            return_dict_in_generate=True,
            pad_token_id=tiny.tokenizer.pad_token_id,
        )
    prompt_len = prepared.encoded.num_tokens
    for step, scores in enumerate(out.scores):
        ids = out.sequences[:, : prompt_len + step]
        with generator.session(PROMPT, _targets()) as (_fresh, _):
            logits = _logits(tiny.model, {"input_ids": ids, "attention_mask": torch.ones_like(ids)})
        torch.testing.assert_close(scores, logits[:, -1], rtol=1e-4, atol=1e-4)
    assert _no_hooks(tiny.model)


# ----------------------------------------------------------------------------- cleanup


def test_hooks_are_gone_after_an_exception_in_the_block(tiny: TinyModel) -> None:
    generator = Engine.from_model(tiny.model, tiny.tokenizer, SteeringConfig(mechanism="both"))
    plain = generate_text(tiny.model, tiny.tokenizer, PROMPT, GEN)
    with pytest.raises(RuntimeError, match="interrupted"), generator.session(PROMPT, _targets()) as (prepared, _):
        _logits(tiny.model, prepared.inputs)
        raise RuntimeError("interrupted")
    assert _no_hooks(tiny.model)
    assert generate_text(tiny.model, tiny.tokenizer, PROMPT, GEN) == plain


def test_hooks_are_gone_after_generation_raises(tiny: TinyModel, monkeypatch: pytest.MonkeyPatch) -> None:
    generator = Engine.from_model(tiny.model, tiny.tokenizer, SteeringConfig(mechanism="both"))
    plain = generate_text(tiny.model, tiny.tokenizer, PROMPT, GEN)
    seen_hooks: list[dict[str, int]] = []

    def failing_generate(**kwargs: Any) -> Any:
        tiny.model(input_ids=kwargs["input_ids"])  # the hooks fire, then generation fails
        seen_hooks.append(hook_counts(tiny.model))
        raise RuntimeError("out of memory")

    monkeypatch.setattr(tiny.model, "generate", failing_generate)
    with pytest.raises(RuntimeError, match="out of memory"):
        generator.generate(PROMPT, _targets(), GEN)
    with pytest.raises(RuntimeError, match="out of memory"):
        list(generator.stream(PROMPT, _targets(), GEN))
    monkeypatch.undo()
    assert seen_hooks and all(sum(c.values()) > 0 for c in seen_hooks)
    assert _no_hooks(tiny.model)
    assert generate_text(tiny.model, tiny.tokenizer, PROMPT, GEN) == plain


def test_stream_removes_hooks_when_closed_early_or_exhausted(tiny: TinyModel) -> None:
    generator = Engine.from_model(tiny.model, tiny.tokenizer, SteeringConfig(mechanism="both"))
    long = GenerationConfig(max_new_tokens=400, min_new_tokens=400)
    stream: Iterator[str] = generator.stream(PROMPT, _targets(), long)
    next(stream)
    stream.close()  # type: ignore[attr-defined]
    assert _no_hooks(tiny.model)
    assert not any(t.name == "posrag-generate" and t.is_alive() for t in threading.enumerate())
    pieces = list(generator.stream(PROMPT, _targets(), GEN))
    assert pieces and _no_hooks(tiny.model)


# ----------------------------------------------------------------------------- concurrency


def test_concurrent_steered_and_plain_requests_do_not_interfere() -> None:
    tiny = tiny_model("llama", num_layers=6)
    config = SteeringConfig(mechanism="both", base_intensity=1.0, attention_bias=6.0)
    generator = Engine.from_model(tiny.model, tiny.tokenizer, config)
    gen = GenerationConfig(max_new_tokens=16)
    other_targets = _targets()[1:]
    expected = {
        "plain": generate_text(tiny.model, tiny.tokenizer, PROMPT, gen),
        "steered": generator.generate(PROMPT, _targets(), gen).text,
        "other": generator.generate(PROMPT, other_targets, gen).text,
        "stream": generator.generate(PROMPT, _targets(), gen).text,
    }
    assert len({expected["plain"], expected["steered"], expected["other"]}) == 3, "setup must tell them apart"
    results: dict[str, list[str]] = {name: [] for name in expected}
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(expected))
    jobs = {
        "plain": lambda: generate_text(tiny.model, tiny.tokenizer, PROMPT, gen),
        "steered": lambda: generator.generate(PROMPT, _targets(), gen).text,
        "other": lambda: generator.generate(PROMPT, other_targets, gen).text,
        "stream": lambda: "".join(generator.stream(PROMPT, _targets(), gen)),
    }

    def run(name: str) -> None:
        try:
            for _ in range(5):
                barrier.wait()
                results[name].append(jobs[name]())
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=run, args=(name,)) for name in expected]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    for name, outputs in results.items():
        assert outputs == [expected[name]] * 5, name
    assert _no_hooks(tiny.model)


# ----------------------------------------------------------------------------- trace, targets, options


def test_trace_reports_span_position_layers_intensity_mechanism(tiny: TinyModel) -> None:
    config = SteeringConfig(mechanism="both", retrieval_threshold=0.85, base_intensity=0.1, curve="step")
    result = Engine.from_model(tiny.model, tiny.tokenizer, config).generate(PROMPT, _targets(), GEN)
    a, b = result.trace
    assert (a.doc_id, a.tier, a.mechanism) == ("a", "full", "both")
    assert (b.doc_id, b.tier) == ("b", "ghost")
    assert a.intensity == pytest.approx(0.15) and b.intensity == pytest.approx(0.1 * 0.7 * 0.3)
    assert a.token_start < a.token_end <= b.token_start < b.token_end
    decoded = tiny.tokenizer.decode(result_ids := tiny.tokenizer(PROMPT)["input_ids"][a.token_start : a.token_end])
    assert DOC_A in decoded and result_ids
    assert result.to_dict()["trace"][0]["span"] == {"start_char": a.start_char, "end_char": a.end_char}


def test_no_steer_above_leaves_late_documents_alone(tiny: TinyModel) -> None:
    config = SteeringConfig(mechanism="both", no_steer_above=0.9)
    result = Engine.from_model(tiny.model, tiny.tokenizer, config).generate(PROMPT, _targets(), GEN)
    assert result.trace[1].tier == "off" and result.trace[1].mechanism == "none"
    assert result.trace[1].layers == () and result.trace[1].attention_layers == ()
    only_late = Engine.from_model(tiny.model, tiny.tokenizer, config).generate(PROMPT, _targets()[1:], GEN)
    assert only_late.text == generate_text(tiny.model, tiny.tokenizer, PROMPT, GEN)


def test_targets_from_prompt_locates_the_given_documents(tiny: TinyModel) -> None:
    documents = [
        ScoredDocument(DOC_A, {"rule_type": "DEFINITION"}, score=0.9, id="a"),
        ScoredDocument(DOC_B, score=0.4, id="b"),
    ]
    targets = targets_from_prompt(PROMPT, documents)
    assert [(t.doc_id, t.relative_position, t.rule_type) for t in targets] == [
        ("a", 0.0, "DEFINITION"),
        ("b", 1.0, None),
    ]
    assert PROMPT[targets[0].start_char : targets[0].end_char] == DOC_A
    assert targets_from_prompt("Question: nothing retrieved here?", documents) == []


def test_embedding_vector_source_steers_orthogonally(tiny: TinyModel) -> None:
    class Embedder:
        def encode(self, texts: list[str], convert_to_numpy: bool = True) -> Any:
            torch.manual_seed(1)
            return torch.randn(len(texts), 7).numpy()

    config = SteeringConfig(mechanism="activation", vector_source="embedding", base_intensity=0.5)
    generator = Engine.from_model(tiny.model, tiny.tokenizer, config, embedder=Embedder())
    with generator.session(PROMPT, _targets()) as (prepared, _):
        steered = _logits(tiny.model, prepared.inputs)
    base = _logits(tiny.model, prepared.inputs)
    assert not torch.allclose(steered[:, prepared.steer_from :], base[:, prepared.steer_from :])
    assert _no_hooks(tiny.model)


def test_explicit_steer_from_and_bad_spans(tiny: TinyModel) -> None:
    generator = Engine.from_model(tiny.model, tiny.tokenizer, SteeringConfig())
    question = PROMPT.index("\n\nQuestion")
    prepared = generator.prepare(PROMPT, _targets()[:1], steer_from=question)
    assert prepared.steer_from > max(span.end for span in prepared.spans)
    with pytest.raises(ConfigurationError, match="ends past the prompt"):
        generator.prepare(PROMPT, [SteeringTarget(0, len(PROMPT) + 1, 0.5)])
    with pytest.raises(ConfigurationError, match="steer_from"):
        generator.prepare(PROMPT, _targets(), steer_from=len(PROMPT) + 3)


def test_attention_mechanism_rejects_unsupported_attention_implementation() -> None:
    tiny = tiny_model("llama")
    tiny.model.config._attn_implementation = "flash_attention_2"
    with pytest.raises(ConfigurationError, match="attn_implementation"):
        Engine.from_model(tiny.model, tiny.tokenizer, SteeringConfig(mechanism="attention"))
    Engine.from_model(tiny.model, tiny.tokenizer, SteeringConfig(mechanism="activation"))


# ----------------------------------------------------------------------------- a reused prefix


def test_attention_steering_continues_a_reused_prefix_exactly(tiny: TinyModel) -> None:
    """Attention steering leaves positions before the question unchanged, so an unsteered prefix cache
    continued with ``past_length`` gives the same logits as the steered prompt run whole."""
    from transformers import DynamicCache

    config = SteeringConfig(mechanism="attention", attention_bias=4.0)
    generator = Engine.from_model(tiny.model, tiny.tokenizer, config)
    steer_from = PROMPT.index("Question:")
    with generator.session(PROMPT, _targets(), steer_from=steer_from) as (prepared, _):
        whole = _logits(tiny.model, prepared.inputs)
    cut = prepared.steer_from
    ids = prepared.inputs["input_ids"]
    cache = DynamicCache(config=tiny.model.config)
    with torch.inference_mode():
        tiny.model(input_ids=ids[:, :cut], attention_mask=torch.ones_like(ids[:, :cut]), cache=cache)
    with generator.session(PROMPT, _targets(), steer_from=steer_from, past_length=cut) as (_, _handle):
        rest = _logits(tiny.model, {"input_ids": ids[:, cut:], "attention_mask": torch.ones_like(ids), "cache": cache})
    unsteered = _logits(tiny.model, prepared.inputs)
    torch.testing.assert_close(rest, whole[:, cut:], rtol=1e-4, atol=1e-4)
    assert not torch.allclose(unsteered[:, cut:], whole[:, cut:], atol=1e-3), "the bias must change the suffix"
    assert _no_hooks(tiny.model)


def test_a_reused_prefix_must_end_by_the_question_and_rules_out_activation(tiny: TinyModel) -> None:
    steer_from = PROMPT.index("Question:")
    attention = Engine.from_model(tiny.model, tiny.tokenizer, SteeringConfig(mechanism="attention"))
    prepared = attention.prepare(PROMPT, _targets(), steer_from=steer_from)
    with pytest.raises(ConfigurationError, match="past_length"):
        attention.prepare(PROMPT, _targets(), steer_from=steer_from, past_length=prepared.steer_from + 1)
    activation = Engine.from_model(tiny.model, tiny.tokenizer, SteeringConfig(mechanism="activation"))
    with pytest.raises(ConfigurationError, match="cannot continue a reused prefix"):
        activation.prepare(PROMPT, _targets(), steer_from=steer_from, past_length=3)


def _model_loops(source: str) -> list[str]:
    """Calls in ``source`` that run a model's generation loop themselves: the torch generation functions, or
    ``<something named model>.generate(...)``."""
    loops = {"generate_from_inputs", "stream_from_inputs", "generate_text", "stream_text"}
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Name) and func.id in loops:
            found.append(func.id)
        elif isinstance(func, ast.Attribute) and func.attr in loops:
            found.append(func.attr)
        elif isinstance(func, ast.Attribute) and func.attr == "generate" and "model" in ast.unparse(func.value):
            found.append(f"{ast.unparse(func.value)}.generate")
    return found


def test_only_the_backends_run_a_model() -> None:
    """One seam: outside ``posrag/generation.py`` (the torch generation loop) and ``posrag/backends/``, nothing in
    posrag or its adapters runs a model's generation itself; everything goes through the engine."""
    import posrag

    root = Path(posrag.__file__).resolve().parent
    sources = [*root.rglob("*.py"), *(root.parent / "integrations").rglob("*.py")]
    offenders = {
        str(path.relative_to(root.parent)): loops
        for path in sources
        if path.name != "generation.py" and "backends" not in path.parts
        if (loops := _model_loops(path.read_text(encoding="utf-8")))
    }
    assert offenders == {}
    assert _model_loops("generate_text(m, t, p)\nself.model.generate(**x)\nengine.generate(p)") == [
        "generate_text",
        "self.model.generate",
    ]


def test_auto_runs_a_hugging_face_model_on_the_torch_backend(tiny: TinyModel, tmp_path: Path) -> None:
    from posrag.backends import load_backend

    tiny.model.save_pretrained(tmp_path)
    tiny.tokenizer.save_pretrained(tmp_path)
    assert load_backend(str(tmp_path), "auto", progress=False).name == "torch"  # not a GGUF: llama.cpp cannot run it
    assert load_backend((tiny.model, tiny.tokenizer), "auto").name == "torch"
    with pytest.raises(ConfigurationError, match="is not one of"):
        load_backend(None, "onnx")


def test_an_unscored_request_steers_the_document_whose_one_sentence_answers(tiny: TinyModel) -> None:
    # posrag's own relevance adds each document's best sentence: the answer document's passage as a whole looks
    # less like the question than an on-topic distractor's does (the passage alone steers the distractor).
    from posrag.chat import FormattedPrompt
    from posrag.prompts import build_prompt
    from tests.unit.hashing_embedder import HashingEmbedder
    from tests.unit.test_relevance import DILUTED_ANSWER, MONA_LISA, ON_TOPIC_DISTRACTOR

    docs = [
        ScoredDocument(ON_TOPIC_DISTRACTOR, {"title": "Art"}, id="distractor"),
        ScoredDocument(DILUTED_ANSWER, {"title": "Art"}, id="answer"),
    ]
    prompt = FormattedPrompt(build_prompt(MONA_LISA, docs).text, add_special_tokens=True)
    generator = Engine.from_model(tiny.model, tiny.tokenizer, SteeringConfig(), embedder=HashingEmbedder())
    targets, summary = generator.select(prompt, docs, query=MONA_LISA)
    assert summary.scores == "relevance"
    assert [t.doc_id for t in targets if t.rank == 0] == ["answer"]
    assert [p.target.doc_id for p in plan_steering(targets, generator.config, 4) if p.active] == ["answer"]
    # unscored="passage" (the faster ranking) reads the passage alone, and steers the distractor here.
    passage = Engine.from_model(
        tiny.model, tiny.tokenizer, SteeringConfig(unscored="passage"), embedder=HashingEmbedder()
    )
    targets, summary = passage.select(prompt, docs, query=MONA_LISA)
    assert summary.scores == "relevance"
    assert [p.target.doc_id for p in plan_steering(targets, passage.config, 4) if p.active] == ["distractor"]
