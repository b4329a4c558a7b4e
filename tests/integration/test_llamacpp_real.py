"""The llama.cpp backend on the packaged Gemma 3 270M GGUF: the callback is transparent when it changes nothing,
the bias and the activation steer are posrag's, steering reaches every decode step, lifts a lost-in-the-middle
prompt as the torch backend does, and concurrent requests each steer their own documents."""

from __future__ import annotations

import math
import threading
from typing import Any

import numpy as np
import pytest
import torch

from posrag.documents import ScoredDocument
from posrag.engine import Engine
from posrag.errors import ConfigurationError, MissingDependencyError, PositionOutOfRangeError
from posrag.generation import GenerationConfig
from posrag.prompts import build_prompt
from posrag.steering import SteeringConfig
from posrag.steering.activation import ActivationTarget, combined_steer
from posrag.steering.attention import AttentionTarget
from tests.integration.lost_in_the_middle import synthetic_prompt

try:
    from posrag.backends.llamacpp import LlamaCppBackend, LlamaRequest, binding

    binding()
except MissingDependencyError as exc:  # the extra is not installed: say how to get it
    pytest.skip(str(exc), allow_module_level=True)

FULL_LAYER = 5  # Gemma 3 270M: layers 5, 11, 17 attend globally, the others in a 512-token window
#: A request whose best-scored document ("gold") holds the answer, "Ottoline Brisk", for the framework LLMs.
LIGHTHOUSE_QUESTION = "Who built the Marrowvale lighthouse?"
LIGHTHOUSE_DOCS = [
    ScoredDocument("Marrowvale is a fishing town on the northern coast.", score=0.31, id="town"),
    ScoredDocument(
        "The Marrowvale lighthouse was built in 1887 by the engineer Ottoline Brisk.", score=0.82, id="gold"
    ),
    ScoredDocument("The town's market opens every Saturday morning.", score=0.12, id="market"),
]


@pytest.fixture(scope="module")
def backend() -> Any:
    with LlamaCppBackend(n_threads=1, n_ctx=2048, max_contexts=2) as loaded:
        yield loaded


def _request(backend: Any, prompt: str, steer_from: int, **layers: Any) -> LlamaRequest:
    ids = tuple(backend.tokenizer(prompt)["input_ids"])
    steer = len(backend.tokenizer(prompt[:steer_from])["input_ids"])
    return LlamaRequest(ids, steer, (1, steer), layers.get("activation", {}), layers.get("attention", {}))


def _span(backend: Any, prompt: str, start: int, end: int) -> Any:
    from posrag.steering.spans import TokenSpan

    return TokenSpan(
        len(backend.tokenizer(prompt[:start])["input_ids"]), len(backend.tokenizer(prompt[:end])["input_ids"])
    )


def test_a_callback_that_changes_nothing_keeps_the_logits_identical(backend: Any) -> None:
    prompt, _, question, _ = synthetic_prompt(0, n_docs=5, position=3)
    request = _request(backend, prompt, question)
    plain = backend.prompt_logits(request)
    seen: list[str] = []
    taps = {f"{kind}-{layer}": (lambda a, p, n=f"{kind}-{layer}": seen.append(n))
            for kind in ("kq", "kq_soft_max_ext", "l_out") for layer in range(backend.num_layers)}  # fmt: skip
    observed = backend.prompt_logits(request, taps=taps)
    assert len(set(seen)) == 3 * backend.num_layers
    np.testing.assert_array_equal(observed, plain)


def test_a_log_2_bias_doubles_the_documents_attention_weight(backend: Any) -> None:
    prompt, target, question, _ = synthetic_prompt(1, n_docs=5, position=3)
    span = _span(backend, prompt, target.start_char, target.end_char)
    weights: dict[str, np.ndarray] = {}

    def keep(key: str) -> Any:
        return lambda array, first: weights.__setitem__(key, array[0].copy())

    node = f"kq_soft_max_ext-{FULL_LAYER}"
    plain = _request(backend, prompt, question)
    backend.prompt_logits(plain, taps={node: keep("plain")})
    steered = _request(backend, prompt, question, attention={FULL_LAYER: [AttentionTarget(span, math.log(2))]})
    backend.prompt_logits(steered, taps={node: keep("steered")})
    before, after = weights["plain"], weights["steered"]  # (heads, query rows, key cells)
    n, steer = len(plain.input_ids), plain.steer_from
    np.testing.assert_array_equal(after[:, :steer], before[:, :steer])  # rows before the question untouched
    with np.errstate(invalid="ignore"):  # masked (future) keys: 0 / 0
        ratio = after[:, steer:n, :n] / before[:, steer:n, :n]
    other = ratio[..., 0:1]  # <bos>: not a document token
    np.testing.assert_allclose(ratio[..., span.start : span.end] / other, 2.0, rtol=2e-3)
    outside = [c for c in range(n) if not span.start <= c < span.end]
    causal = np.tril(np.ones((n, n), dtype=bool))[steer:n][:, outside]
    np.testing.assert_allclose((ratio[..., outside] / other)[:, causal], 1.0, rtol=2e-3)
    assert (after[:, steer:n, span.start : span.end].sum(-1) > before[:, steer:n, span.start : span.end].sum(-1)).all()


def test_the_activation_change_equals_the_torch_formula(backend: Any) -> None:
    prompt, target, question, _ = synthetic_prompt(2, n_docs=5, position=3)
    span = _span(backend, prompt, target.start_char, target.end_char)
    layer = 8
    states: dict[str, np.ndarray] = {}
    node = f"l_out-{layer}"
    plain = _request(backend, prompt, question)
    backend.prompt_logits(plain, taps={node: lambda a, first: states.__setitem__("plain", a[0, 0].copy())})
    steered = _request(backend, prompt, question, activation={layer: [ActivationTarget(span, 0.4)]})
    backend.prompt_logits(steered, taps={node: lambda a, first: states.__setitem__("steered", a[0, 0].copy())})
    hidden = torch.from_numpy(states["plain"])
    steer, context = plain.steer_from, plain.context
    vector = hidden[span.start : span.end].mean(0) - hidden[context[0] : context[1]].mean(0)
    expected = hidden.clone()
    expected[steer:] += combined_steer(hidden[steer:], [vector], [0.4])
    torch.testing.assert_close(torch.from_numpy(states["steered"]), expected, rtol=1e-4, atol=1e-4)
    assert not torch.equal(expected[steer:], hidden[steer:])


def test_the_bias_added_once_to_a_shared_mask_steers_as_the_bias_on_each_layers_scores(backend: Any) -> None:
    """Layers 12-17 take the bias through both masks (after layers 10 and 11 ran); all 18 layers take it before
    layers 0 and 5 read them: the same logits and tokens, step after step, as the bias on every ``kq`` node (where
    a tap on ``kq`` keeps it)."""
    prompt, target, question, _ = synthetic_prompt(3, n_docs=20, position=10)
    span = _span(backend, prompt, target.start_char, target.end_char)
    plain = backend.prompt_logits(_request(backend, prompt, question)).copy()
    generation = GenerationConfig(max_new_tokens=12, min_new_tokens=12)
    for layers in (range(12, 18), range(18)):
        bias = {layer: [AttentionTarget(span, 3.0)] for layer in layers}
        request = _request(backend, prompt, question, attention=bias)
        on_scores = {f"kq-{layer}": lambda array, first: None for layer in layers}
        assert not any(name.startswith(b"kq-") for name in backend.steering_for(request).wanted)
        through_mask = backend.prompt_logits(request).copy()
        np.testing.assert_allclose(through_mask, backend.prompt_logits(request, taps=on_scores), atol=1e-4)
        assert np.abs(through_mask - plain).max() > 1.0
        assert list(backend.tokens(request, generation)) == list(backend.tokens(request, generation, taps=on_scores))


def test_the_callback_fires_on_every_decode_step(backend: Any) -> None:
    prompt, target, question, _ = synthetic_prompt(3, n_docs=5, position=3)
    span = _span(backend, prompt, target.start_char, target.end_char)
    request = _request(backend, prompt, question, attention={FULL_LAYER: [AttentionTarget(span, 2.0)]},
                       activation={8: [ActivationTarget(span, 0.3)]})  # fmt: skip
    rows: dict[str, list[tuple[int, int]]] = {"kq": [], "l_out": []}
    taps = {f"kq-{FULL_LAYER}": lambda a, first: rows["kq"].append((first, a.shape[-2])),
            "l_out-8": lambda a, first: rows["l_out"].append((first, a.shape[-2]))}  # fmt: skip
    new = list(backend.tokens(request, GenerationConfig(max_new_tokens=10, min_new_tokens=10), taps=taps))
    n = len(request.input_ids)
    expected = [(0, n)] + [(n + i, 1) for i in range(len(new) - 1)]
    assert len(new) == 10 and rows["kq"] == expected and rows["l_out"] == expected


def test_steering_lifts_a_lost_in_the_middle_prompt_as_the_torch_backend_does(backend: Any) -> None:
    """The torch backend's test (gold document at position 15 of 20, shipped calibration), on llama.cpp."""
    generation = GenerationConfig(max_new_tokens=24)
    engine = Engine(backend, SteeringConfig(mechanism="attention"))
    base_hits = steered_hits = 0
    for seed in range(10):
        prompt, target, question, answer = synthetic_prompt(seed)
        plain = engine.generate(prompt, [], generation).text
        steered = engine.generate(prompt, [target], generation, steer_from=question)
        assert steered.trace[0].attention_layers
        base_hits += answer in plain.split("\n")[0]
        steered_hits += answer in steered.text.split("\n")[0]
    assert steered_hits >= base_hits + 2, (base_hits, steered_hits)


def test_the_engine_runs_on_the_backend_and_refuses_what_it_cannot_honour(backend: Any) -> None:
    prompt, target, question, _ = synthetic_prompt(7, n_docs=5, position=3)
    engine = Engine(backend, SteeringConfig(mechanism="both"))
    assert engine.num_layers == backend.num_layers == 18 and backend.model_name == engine.model_name
    generation = GenerationConfig(max_new_tokens=8)
    result = engine.generate(prompt, [target], generation, steer_from=question)
    assert result.trace[0].layers and result.trace[0].attention_layers
    assert "".join(engine.stream(prompt, [target], generation, steer_from=question)) == result.text
    with pytest.raises(ConfigurationError, match="last layer"):
        Engine(backend, SteeringConfig(mechanism="activation", layer_policy="all"))
    assert engine.context_window() == backend.n_ctx == 2048
    with pytest.raises(PositionOutOfRangeError, match="n_ctx=2048"):
        engine.generate(prompt, [target], GenerationConfig(max_new_tokens=2048))


@pytest.mark.parametrize("layers", [(FULL_LAYER,), tuple(range(18))], ids=["on kq", "through the masks"])
def test_two_concurrent_requests_each_steer_their_own_document(backend: Any, layers: tuple[int, ...]) -> None:
    prompt, _, question, _ = synthetic_prompt(4, n_docs=6, position=3)
    starts = [prompt.index("Document [2]"), prompt.index("Document [5]")]
    spans = [_span(backend, prompt, s, prompt.index("\n", s)) for s in starts]
    node = f"kq_soft_max_ext-{FULL_LAYER}"
    generation = GenerationConfig(max_new_tokens=8, min_new_tokens=8)

    def run(span: Any, mass: list[float], barrier: threading.Barrier | None) -> list[int]:
        request = _request(
            backend, prompt, question, attention={layer: [AttentionTarget(span, 3.0)] for layer in layers}
        )
        taps = {node: lambda a, first: mass.append(float(a[0, :, -1, span.start : span.end].sum(-1).mean()))}
        if barrier is not None:
            barrier.wait()
        return list(backend.tokens(request, generation, taps=taps))

    alone = [run(span, [], None) for span in spans]
    masses: list[list[float]] = [[], []]
    results: list[list[int]] = [[], []]
    barrier = threading.Barrier(2)
    threads = [threading.Thread(target=lambda i=i: results.__setitem__(i, run(spans[i], masses[i], barrier)))
               for i in range(2)]  # fmt: skip
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == alone  # each request's tokens are those it gets alone
    unsteered: list[float] = []
    plain = _request(backend, prompt, question)
    list(backend.tokens(plain, GenerationConfig(max_new_tokens=1),
                        taps={node: lambda a, first: unsteered.extend(
                            float(a[0, :, -1, s.start : s.end].sum(-1).mean()) for s in spans)}))  # fmt: skip
    # Each request's last query row gives its own document more weight than plain generation, not the other's.
    assert masses[0][0] > unsteered[0] and masses[1][0] > unsteered[1]


def test_closing_a_stream_stops_and_leaves_the_model_usable(backend: Any) -> None:
    prompt, _, question, _ = synthetic_prompt(5, n_docs=4, position=2)
    request = _request(backend, prompt, question)
    generation = GenerationConfig(max_new_tokens=16)
    text, _ = backend.generate(request, generation)
    stream = backend.stream(request, generation)
    first = next(stream)
    stream.close()
    assert text.startswith(first)
    assert backend.generate(request, generation)[0] == text
    assert "".join(backend.stream(request, generation)) == text


def test_stop_strings_cut_the_completion(backend: Any) -> None:
    prompt, _, question, _ = synthetic_prompt(5, n_docs=4, position=2)
    request = _request(backend, prompt, question)
    text, _ = backend.generate(request, GenerationConfig(max_new_tokens=16))
    word = text.split()[1]
    cut, _ = backend.generate(request, GenerationConfig(max_new_tokens=16, stop=(word,)))
    assert cut == text[: text.index(word)]
    assert "".join(backend.stream(request, GenerationConfig(max_new_tokens=16, stop=(word,)))) == cut


def test_a_prefilled_prefix_gives_the_same_steered_completion(backend: Any) -> None:
    prompt, target, question, _ = synthetic_prompt(6, n_docs=6, position=3)
    span = _span(backend, prompt, target.start_char, target.end_char)
    request = _request(backend, prompt, question, attention={FULL_LAYER: [AttentionTarget(span, 2.0)]})
    generation = GenerationConfig(max_new_tokens=12)
    whole = backend.generate(request, generation)
    prefix = backend.prefill(request.input_ids[: request.steer_from])
    assert backend.generate(request, generation, prefix=prefix) == whole
    plain = _request(backend, prompt, len(prompt))
    everything = backend.prefill(plain.input_ids)  # the whole prompt: its last token runs again for the logits
    assert backend.generate(plain, generation, prefix=everything) == backend.generate(plain, generation)
    with pytest.raises(ConfigurationError, match="reused prefix"):
        backend.generate(_request(backend, prompt, question, activation={8: [ActivationTarget(span, 0.3)]}),
                         generation, prefix=prefix)  # fmt: skip


def test_the_frameworks_llm_steers_the_best_document_on_the_llama_cpp_backend() -> None:
    """``PosragLLM(backend="llama.cpp")``: the LangChain LLM runs on llama.cpp, steers the request's best document
    (the trace) and answers from it."""
    pytest.importorskip("langchain_core")
    from langchain_posrag import PosragLLM

    prompt = build_prompt(LIGHTHOUSE_QUESTION, LIGHTHOUSE_DOCS).text
    llm = PosragLLM(backend="llama.cpp", max_tokens=12, strip_leading=True, stop=["\n"])
    info = llm.generate([prompt], documents=LIGHTHOUSE_DOCS).generations[0][0]
    steered = [entry["doc_id"] for entry in info.generation_info["posrag_trace"] if entry["tier"] == "full"]
    assert steered == ["gold"]
    assert "Brisk" in info.text


def test_a_streamed_chat_on_llama_cpp_steers_and_reports_invokes_usage() -> None:
    """``ChatPosrag(backend="llama.cpp").stream``: the stream steers the request's best document and its chunks
    add up to invoke()'s text and usage_metadata (what a chat UI's tracer bills), also when a stop cuts it."""
    pytest.importorskip("langchain_core")
    from langchain_core.messages import HumanMessage
    from langchain_posrag import ChatPosrag

    messages = [HumanMessage(build_prompt(LIGHTHOUSE_QUESTION, LIGHTHOUSE_DOCS).text)]
    chat = ChatPosrag(backend="llama.cpp", max_tokens=16, strip_leading=True)
    used = []
    for stop in (None, ["Brisk"]):
        invoked = chat.invoke(messages, documents=LIGHTHOUSE_DOCS, stop=stop)
        merged = None
        for chunk in chat.stream(messages, documents=LIGHTHOUSE_DOCS, stop=stop):
            merged = chunk if merged is None else merged + chunk
        assert merged is not None and merged.text == invoked.text
        assert merged.usage_metadata == invoked.usage_metadata and invoked.usage_metadata["output_tokens"] > 0
        trace = merged.response_metadata["posrag_trace"]
        assert [entry["doc_id"] for entry in trace if entry["tier"] == "full"] == ["gold"]
        used.append((merged.text, merged.usage_metadata["output_tokens"]))
    (whole, whole_tokens), (cut, cut_tokens) = used
    assert "Brisk" in whole and cut == whole[: whole.index("Brisk")] and cut_tokens < whole_tokens


def test_the_benchmark_runs_its_trials_on_the_llama_cpp_backend(backend: Any, tmp_path: Any) -> None:
    import hashlib

    from posrag.bench.cache import GenerationCache
    from posrag.bench.conditions import LitmConfig
    from posrag.bench.data import load_records, packaged_dataset
    from posrag.bench.runner import LitmBenchmark

    config = LitmConfig(positions=(10,), conditions=("baseline", "steer-attention"), regimes=("oracle",))
    records = load_records(packaged_dataset())[:3]
    with GenerationCache(tmp_path / "generations.sqlite") as cache:
        result = LitmBenchmark(backend, config, cache=cache).run(records, progress=False, keep_records=True)
        again = LitmBenchmark(backend, config, cache=cache).run(records, progress=False, keep_records=True)
    # The second run reads every generation the first stored, keyed by the GGUF file's own digest.
    assert backend.fingerprint()["weights"] == hashlib.sha256(backend.path.read_bytes()).hexdigest()
    assert again.timing["generations"] == 0 and again.timing["cached"] == result.timing["generations"] == 6
    assert [t.prediction for t in again.records] == [t.prediction for t in result.records]
    assert result.environment["backend"] == "llama.cpp" and result.settings["backend"] == "llama.cpp"
    # Gemma loses the middle of the 20 documents; steering toward the gold document there finds it again.
    baseline, steered = (result.result(c, "oracle").mean_accuracy for c in ("baseline", "steer-attention"))
    assert steered > baseline
    # The steered trials continued the unsteered prefix the baseline prefilled in llama.cpp's own cache.
    assert result.timing["prefix_passes"] == 3 and result.timing["prefix_reuses"] == 3


def test_gemma_prompts_keep_full_batches(backend: Any) -> None:
    """The load-time batch check finds Gemma's batched prompt path the same function as decoding token by token,
    so its prefill keeps 512-token ubatches (a lowered batch would cost prefill speed)."""
    check = backend.batch_check
    assert check is not None and not check.lowered and backend.n_ubatch == 512
    assert check.agreement[512] > 0.995


def test_auto_runs_the_packaged_gguf_on_llama_cpp() -> None:
    """With the extra installed, backend='auto' runs a GGUF file on llama.cpp (parity shown for both families in
    docs/backends.md); a Hugging Face model stays on torch (tests/unit/test_engine.py)."""
    from posrag.backends import load_backend
    from posrag.backends.llamacpp_binding import packaged_gguf

    auto = load_backend(None, "auto", threads=1)
    try:
        assert auto.name == "llama.cpp" and auto.path == packaged_gguf()
    finally:
        auto.close()
