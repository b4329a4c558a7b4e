"""posrag's own relevance: embedding similarity (hashing embedder) and position-corrected attention (tiny models)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from posrag.documents import ScoredDocument
from posrag.errors import ConfigurationError
from posrag.prompts import build_prompt
from posrag.relevance import (
    RelevanceScores,
    attention_relevance,
    combine,
    eager_attention,
    embedding_relevance,
    query_after_documents,
    read_attention,
    split_sentences,
)
from posrag.testing import tiny_model
from tests.unit.hashing_embedder import HashingEmbedder

TEXTS = [
    "Paris is the capital of France.",
    "The quick brown fox jumps over the lazy dog.",
    "Everest is the highest mountain on Earth.",
    "Berlin is the capital of Germany.",
]


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _prompt(question: str, texts: list[str]):
    prompt = build_prompt(question, [ScoredDocument(t, {}) for t in texts])
    return prompt.text, [(s.start, s.end) for s in prompt.spans]


# ----------------------------------------------------------------------------- results, query, combining


def test_scores_rank_best_first_and_ties_keep_order() -> None:
    result = RelevanceScores("x", (0.1, 0.5, 0.5, -1.0))
    assert result.ranking() == [1, 2, 0, 3]
    assert result.top() == 1
    assert result.to_dict() == {"method": "x", "scores": [0.1, 0.5, 0.5, -1.0]}
    with pytest.raises(ConfigurationError, match="NaN"):
        RelevanceScores("x", (float("nan"),))


def test_query_is_the_text_after_the_last_document() -> None:
    text, spans = _prompt("What is the highest mountain?", TEXTS)
    assert query_after_documents(text, spans) == "Question: What is the highest mountain?\nAnswer:"
    assert query_after_documents(text, list(reversed(spans))).startswith("Question:")
    with pytest.raises(ConfigurationError, match="Nothing follows"):
        query_after_documents(text[: spans[-1][1]], spans)
    with pytest.raises(ConfigurationError, match="outside the prompt"):
        query_after_documents(text, [(0, len(text) + 5)])
    with pytest.raises(ConfigurationError, match="at least one"):
        query_after_documents(text, [])


def test_combine_by_rank_and_by_z_score() -> None:
    a = RelevanceScores("embedding", (0.9, 0.2, 0.1))
    b = RelevanceScores("attention", (0.001, 0.003, 0.0))
    ranked = combine([a, b])
    assert ranked.method == "rank_mean(embedding+attention)"
    assert ranked.scores == pytest.approx((-0.5, -0.5, -2.0))
    z = combine([a, b], how="z_mean")
    assert z.top() in (0, 1) and z.ranking()[-1] == 2
    assert combine([a, RelevanceScores("flat", (1.0, 1.0, 1.0))], how="z_mean").ranking() == a.ranking()
    with pytest.raises(ConfigurationError, match="different numbers"):
        combine([a, RelevanceScores("short", (1.0,))])


# ----------------------------------------------------------------------------- embedding


def test_embedding_ranks_the_document_sharing_the_query_words_first() -> None:
    embedder = HashingEmbedder()
    result = embedding_relevance("highest mountain on Earth", TEXTS, embedder)
    assert result.method == "embedding"
    assert result.top() == 2
    assert len(result) == 4 and all(-1.0 <= s <= 1.0 for s in result.scores)
    assert embedder.calls[-1]["normalize_embeddings"] is True


def test_embedding_normalizes_even_when_the_embedder_does_not() -> None:
    careful = embedding_relevance("capital of Germany", TEXTS, HashingEmbedder())
    careless = embedding_relevance("capital of Germany", TEXTS, HashingEmbedder(normalizes=False))
    assert careless.scores == pytest.approx(careful.scores)
    assert careful.top() == 3


MONA_LISA = "Who painted the Mona Lisa?"
DILUTED_ANSWER = (
    "Leonardo painted the Mona Lisa. It hangs in Paris today. Millions of visitors queue every year. "
    "The museum opens at nine. Tickets are sold online."
)
ON_TOPIC_DISTRACTOR = (
    "The Mona Lisa is a famous portrait. Copies of the Mona Lisa are sold as posters. The Mona Lisa smile is studied."
)


def test_the_best_sentence_lifts_the_document_whose_answer_the_rest_of_its_passage_dilutes() -> None:
    # The passage as a whole looks more like the distractor (it repeats the question's words); one sentence of
    # the answer document says what was asked. The passage alone ranks the distractor first.
    docs, titles = [DILUTED_ANSWER, ON_TOPIC_DISTRACTOR], ["Art", "Art"]
    passage = embedding_relevance(MONA_LISA, docs, HashingEmbedder(), titles=titles)
    embedder = HashingEmbedder()
    with_sentence = embedding_relevance(MONA_LISA, docs, embedder, titles=titles, sentences=True)
    assert passage.top() == 1
    assert with_sentence.top() == 0
    # One encode call: the query, both passages, then each passage's sentences (5 + 3), each with its title.
    assert [call["n"] for call in embedder.calls] == [1 + 2 + 8]
    # Each score is the passage's cosine plus its best sentence's.
    best = max(
        embedding_relevance(MONA_LISA, split_sentences(DILUTED_ANSWER), HashingEmbedder(), titles=["Art"] * 5).scores
    )
    assert with_sentence.scores[0] == pytest.approx(passage.scores[0] + best)


def test_sentences_split_where_a_sentence_visibly_ends() -> None:
    assert split_sentences("It was 1889. Then (in May) it opened! Why? 3 days later") == [
        "It was 1889.",
        "Then (in May) it opened!",
        "Why?",
        "3 days later",
    ]
    assert split_sentences("e.g. a list, no end") == ["e.g. a list, no end"]
    assert split_sentences("  ") == ["  "]


def test_titles_are_read_and_must_match_the_documents() -> None:
    untitled = embedding_relevance(
        "When did the Eiffel Tower open?", ["It opened in 1889.", "It opened in 1886."], HashingEmbedder()
    )
    assert untitled.scores[0] == pytest.approx(untitled.scores[1])
    titled = embedding_relevance(
        "When did the Eiffel Tower open?",
        ["It opened in 1889.", "It opened in 1886."],
        HashingEmbedder(),
        titles=["Eiffel Tower", None],
    )
    assert titled.top() == 0
    with pytest.raises(ConfigurationError, match="one entry per document"):
        embedding_relevance("q", ["a", "b"], HashingEmbedder(), titles=["only one"])


def test_embedding_rejects_an_empty_query() -> None:
    with pytest.raises(ConfigurationError, match="query is empty"):
        embedding_relevance("  ", TEXTS, HashingEmbedder())


# ----------------------------------------------------------------------------- attention


def _reference_masses(model, tokenizer, text: str, token_spans, first_query: int) -> list[float]:
    """Mean attention mass per document from one full eager pass with output_attentions (the slow, obvious way)."""
    ids = tokenizer(text, return_tensors="pt")["input_ids"]
    with eager_attention(model), torch.inference_mode():
        attentions = model(input_ids=ids, output_attentions=True).attentions
    stacked = torch.stack([a[0, :, first_query:, :] for a in attentions])  # L × H × q × T
    return [float(stacked[..., s:e].sum(-1).mean()) for s, e in token_spans]


@pytest.mark.parametrize("arch", ["llama", "gemma3", "gpt2"])
def test_readout_equals_the_attention_of_a_full_eager_pass(arch: str) -> None:
    """The cached prefix + eager query pass reads exactly what output_attentions shows (gemma3: a window of 8
    tokens, so the sliding layers' cache holds only the last few document tokens)."""
    tiny = tiny_model(arch)  # type: ignore[arg-type]
    text, spans = _prompt("What is the highest mountain?", TEXTS)
    readout = read_attention(tiny.model, tiny.tokenizer, text, spans, calibrate=False)
    first_query = readout.token_spans[-1][1]
    reference = _reference_masses(tiny.model, tiny.tokenizer, text, readout.token_spans, first_query)
    assert readout.query_mass == pytest.approx(reference, abs=1e-5)
    assert readout.calibration_mass is None
    assert readout.layers == tuple(range(2))


def test_token_spans_cover_exactly_the_documents() -> None:
    tiny = tiny_model("llama")
    text, spans = _prompt("Which fox?", TEXTS)
    readout = read_attention(tiny.model, tiny.tokenizer, text, spans)
    ids = tiny.tokenizer(text)["input_ids"]
    for (start, end), doc in zip(readout.token_spans, TEXTS, strict=True):
        assert tiny.tokenizer.decode(ids[start:end]).strip() == doc
    assert readout.query_tokens == len(ids) - readout.token_spans[-1][1]


def _lexical_gpt2():
    """A one-layer GPT-2 whose attention logit is the dot product of the tokens' (normalized) embeddings: a query
    token attends to the same token wherever it is. No position embeddings, so no position effect."""
    tiny = tiny_model("gpt2", num_layers=1)
    with torch.no_grad():
        tiny.model.transformer.wpe.weight.zero_()
        attn = tiny.model.transformer.h[0].attn.c_attn
        eye = torch.eye(32)
        attn.weight[:, :32] = 3.0 * eye
        attn.weight[:, 32:64] = 3.0 * eye
        attn.bias.zero_()
    return tiny


@pytest.mark.parametrize("gold", [0, 2, 3])
def test_the_document_the_query_attends_to_ranks_first(gold: int) -> None:
    tiny = _lexical_gpt2()
    texts = [t for t in TEXTS if "Everest" not in t]
    texts.insert(gold, "Everest is the highest mountain on Earth.")
    text, spans = _prompt("Everest mountain", texts)
    for corrected in (True, False):
        result = attention_relevance(
            tiny.model, tiny.tokenizer, text, spans, question="Everest mountain", corrected=corrected
        )
        assert result.top() == gold
        assert result.method == ("attention" if corrected else "attention_raw")


def _position_only_llama():
    """Every token has the same embedding, so every hidden state is the same and attention depends on the
    tokens' positions alone (through RoPE): a pure position effect."""
    tiny = tiny_model("llama", num_layers=2)
    with torch.no_grad():
        emb = tiny.model.model.embed_tokens.weight
        emb[:] = emb[5].clone()
    return tiny


def test_the_calibration_removes_a_pure_position_effect() -> None:
    tiny = _position_only_llama()
    texts = [TEXTS[0], TEXTS[3], TEXTS[0], TEXTS[3]]  # two token lengths, four positions
    text, spans = _prompt("France", texts)
    readout = read_attention(tiny.model, tiny.tokenizer, text, spans, question="France", calibration="dog")
    assert readout.query_tokens == readout.calibration_tokens  # precondition: the same positions
    raw = readout.relevance(corrected=False).scores
    corrected = readout.relevance().scores
    assert max(raw) - min(raw) > 1e-3  # the raw attention does depend on position
    assert max(abs(s) for s in corrected) < 1e-6  # ... and the correction removes all of it


def test_the_model_is_restored_afterwards_also_on_error() -> None:
    tiny = tiny_model("gemma3")
    text, spans = _prompt("What is the highest mountain?", TEXTS)
    before = tiny.model.config._attn_implementation
    with torch.inference_mode():
        baseline = tiny.model(**tiny.tokenizer(text, return_tensors="pt")).logits
    read_attention(tiny.model, tiny.tokenizer, text, spans)
    assert tiny.model.config._attn_implementation == before == "sdpa"
    assert all(not module._forward_hooks for module in tiny.model.modules())
    with pytest.raises(RuntimeError, match="boom"), eager_attention(tiny.model):
        assert tiny.model.config._attn_implementation == "eager"
        raise RuntimeError("boom")
    assert tiny.model.config._attn_implementation == "sdpa"
    with torch.inference_mode():
        after = tiny.model(**tiny.tokenizer(text, return_tensors="pt")).logits
    assert torch.equal(baseline, after)


def test_hooks_are_removed_when_the_read_fails() -> None:
    """A model that fails during the query pass (after posrag registered its hooks and went eager)."""
    tiny = tiny_model("llama")
    text, spans = _prompt("What is the highest mountain?", TEXTS)

    def fail_on_short_input(module, args):
        if args[0].shape[1] < 40:  # the query pass, not the documents' prefill
            raise RuntimeError("query pass failed")

    mlp = tiny.model.model.layers[1].mlp
    failing = mlp.register_forward_pre_hook(fail_on_short_input)
    try:
        with pytest.raises(RuntimeError, match="query pass failed"):
            read_attention(tiny.model, tiny.tokenizer, text, spans)
    finally:
        failing.remove()
    assert all(not module._forward_hooks for module in tiny.model.modules())
    assert tiny.model.config._attn_implementation == "sdpa"


def test_layer_selection() -> None:
    tiny = tiny_model("gemma3", num_layers=4)
    text, spans = _prompt("What is the highest mountain?", TEXTS)
    assert read_attention(tiny.model, tiny.tokenizer, text, spans, layers="global").layers == (1, 3)
    assert read_attention(tiny.model, tiny.tokenizer, text, spans, layers=[2]).layers == (2,)
    with pytest.raises(ConfigurationError, match=r"indices in 0\.\.3"):
        read_attention(tiny.model, tiny.tokenizer, text, spans, layers=[7])


def test_uncorrected_readout_cannot_be_corrected_afterwards() -> None:
    tiny = tiny_model("llama")
    text, spans = _prompt("What is the highest mountain?", TEXTS)
    readout = read_attention(tiny.model, tiny.tokenizer, text, spans, calibrate=False)
    with pytest.raises(ConfigurationError, match="calibrate=True"):
        readout.relevance()


def test_a_document_overlapping_the_query_is_rejected() -> None:
    tiny = tiny_model("llama")
    text, spans = _prompt("What is the highest mountain?", TEXTS)
    with pytest.raises(ConfigurationError, match="end before the query"):
        read_attention(tiny.model, tiny.tokenizer, text, spans, query_start_char=spans[-1][0] + 2)
