"""Which of a request's documents one LLM call steers: per-request ranks, relevance, confidence, notes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from posrag.documents import ScoredDocument
from posrag.steering import SteeringConfig, plan_steering
from posrag.steering.selection import select_targets

DOCS = [
    ScoredDocument("Alpha document about rivers and lakes.", score=0.2, id="a"),
    ScoredDocument("Bravo document about mountains and hills.", score=0.9, id="b"),
    ScoredDocument("Charlie document about oceans and seas.", score=0.5, id="c"),
]
CONFIG = SteeringConfig(confidence=False)


def prompt_with(*docs: ScoredDocument) -> str:
    return "Context:\n" + "\n".join(d.text for d in docs) + "\nQuestion: which is about mountains?\nAnswer:"


def test_ranks_are_the_requests_not_the_calls() -> None:
    """A refine call that sees only a distractor does not steer it: it is not among the request's best."""
    targets, summary = select_targets(prompt_with(DOCS[2]), DOCS, CONFIG)
    assert [(t.doc_id, t.rank) for t in targets] == [("c", 1)]
    assert [p.tier for p in plan_steering(targets, CONFIG, 4)] == ["off"]
    assert summary.located == 1 and summary.request_documents == 3
    assert any("not in this prompt" in note for note in summary.notes)
    best, _ = select_targets(prompt_with(DOCS[1]), DOCS, CONFIG)
    assert [p.tier for p in plan_steering(best, CONFIG, 4)] == ["full"]


def test_unscored_documents_get_posrags_relevance_and_no_threshold_score() -> None:
    unscored = [ScoredDocument(d.text, id=d.id) for d in DOCS]
    calls = []

    def relevance(query: str, documents: list[ScoredDocument], *, sentences: bool) -> list[float]:
        calls.append(query)
        return [float("mountains" in d.text) for d in documents]

    targets, summary = select_targets(prompt_with(*unscored), unscored, CONFIG, relevance=relevance)
    assert summary.scores == "relevance" and summary.relevance == (0.0, 1.0, 0.0)
    assert calls == ["Question: which is about mountains?\nAnswer:"]  # the text after the last document
    assert [(t.doc_id, t.rank, t.score) for t in targets] == [("a", 1, None), ("b", 0, None), ("c", 2, None)]
    select_targets(prompt_with(*unscored), unscored, CONFIG, query="hills?", relevance=relevance)
    assert calls[-1] == "hills?"


@pytest.mark.parametrize(("policy", "steered"), [("all", 3), ("off", 0)])
def test_unscored_policies(policy: str, steered: int) -> None:
    unscored = [ScoredDocument(d.text, id=d.id) for d in DOCS]
    config = SteeringConfig(confidence=False, unscored=policy)
    targets, _ = select_targets(prompt_with(*unscored), unscored, config)
    assert sum(p.active for p in plan_steering(targets, config, 4)) == steered


def test_an_unscored_document_in_a_scored_request_is_not_steered() -> None:
    mixed = [*DOCS, ScoredDocument("Delta document without any score at all.", id="d")]
    config = SteeringConfig(confidence=False, top_k=2)
    targets, summary = select_targets(prompt_with(*mixed), mixed, config)
    tiers = {t.target.doc_id: t.tier for t in plan_steering(targets, config, 4)}
    assert tiers == {"a": "off", "b": "full", "c": "full", "d": "off"}
    assert any("unscored" in note for note in summary.notes)


def test_confidence_weighs_only_the_steered_top_documents() -> None:
    close = [
        ScoredDocument("Alpha document about rivers and lakes.", score=0.50, id="a"),
        ScoredDocument("Bravo document about mountains and hills.", score=0.51, id="b"),
        ScoredDocument("Charlie document about oceans and seas.", score=0.10, id="c"),
    ]
    targets, summary = select_targets(prompt_with(*close), close, SteeringConfig(confidence=True))
    weights = {t.doc_id: t.weight for t in targets}
    assert summary.confidence is not None and summary.confidence.multiplier == weights["b"] < 0.1
    assert weights["a"] == weights["c"] == 1.0  # not steered anyway (rank beyond top_k)
    clear = [ScoredDocument(d.text, score=s, id=d.id) for d, s in zip(close, (0.1, 0.9, 0.1), strict=True)]
    targets, _ = select_targets(prompt_with(*clear), clear, SteeringConfig(confidence=True))
    assert {t.doc_id: t.weight for t in targets}["b"] == 1.0


def test_nothing_located_says_why() -> None:
    targets, summary = select_targets("Question: nothing here?", DOCS, CONFIG)
    assert targets == [] and summary.located == 0 and "none of the request's 3" in summary.notes[0]
    targets, summary = select_targets("Question: nothing here?", [], CONFIG)
    assert targets == [] and summary.notes == ()


@given(st.lists(st.floats(-10, 10), min_size=1, max_size=8), st.integers(1, 3))
def test_at_most_top_k_documents_are_steered_and_weights_stay_in_range(scores: list[float], top_k: int) -> None:
    docs = [ScoredDocument(f"Document number {i} with enough text to locate.", score=s) for i, s in enumerate(scores)]
    config = SteeringConfig(top_k=top_k, confidence=True)
    targets, _ = select_targets(prompt_with(*docs), docs, config)
    plans = plan_steering(targets, config, 4)
    assert sum(p.tier == "full" for p in plans) <= top_k
    assert all(0.0 <= t.weight <= 1.0 for t in targets)


@pytest.mark.parametrize("order", [(0, 1), (1, 0)])
def test_duplicate_documents_are_one_document_with_the_best_score(order: tuple[int, int]) -> None:
    text = "Bravo document about mountains and hills."
    copies = [ScoredDocument(text, score=0.4, id="low"), ScoredDocument(text, score=0.9, id="high")]
    documents = [copies[i] for i in order] + [DOCS[2]]
    targets, summary = select_targets(prompt_with(DOCS[2], copies[0]), documents, CONFIG)
    steered = [t for t, p in zip(targets, plan_steering(targets, CONFIG, 4), strict=True) if p.tier == "full"]
    assert [t.start_char for t in steered] == [prompt_with(DOCS[2], copies[0]).index(text)]  # before: nothing
    assert [t.rank for t in targets if t.start_char == steered[0].start_char] == [0]
    assert summary.request_documents == 2 and summary.located == 2
    assert any("1 duplicate document(s) (same text) merged" in note for note in summary.notes)
    assert not any("not in this prompt" in note or "another call" in note for note in summary.notes)


def test_an_unscored_request_steers_the_document_whose_title_answers_the_question() -> None:
    # posrag's prompt shows the model each title ("Document [i](Title: ...)"), so posrag's relevance reads it
    # too: the two passages say nothing of the question's words; only the second one's title does. Reading the
    # text alone was a tie, and the first document was steered.
    from posrag.prompts import build_prompt
    from posrag.relevance import embedding_relevance
    from tests.unit.hashing_embedder import HashingEmbedder

    docs = [
        ScoredDocument("It opened to visitors in 1886.", {"title": "Statue of Liberty"}, id="liberty"),
        ScoredDocument("It opened to visitors in 1889.", {"title": "Eiffel Tower"}, id="eiffel"),
    ]
    prompt = build_prompt("When did the Eiffel Tower open?", docs)
    assert "(Title: Eiffel Tower)" in prompt.text
    embedder = HashingEmbedder()

    def relevance(query: str, documents: list[ScoredDocument], *, sentences: bool) -> list[float]:
        titles = [d.metadata.get("title") for d in documents]
        texts = [d.text for d in documents]
        return list(embedding_relevance(query, texts, embedder, titles=titles, sentences=sentences).scores)

    targets, summary = select_targets(prompt.text, docs, CONFIG, relevance=relevance)
    assert summary.scores == "relevance"
    assert [t.doc_id for t in targets if t.rank == 0] == ["eiffel"]
    assert {p.target.doc_id: p.tier for p in plan_steering(targets, CONFIG, 4)} == {"eiffel": "full", "liberty": "off"}
