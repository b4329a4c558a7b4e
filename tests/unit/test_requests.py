"""The request tracker: run trees map to their root, documents stay with their request, nothing leaks."""

from __future__ import annotations

import threading

from posrag.documents import ScoredDocument
from posrag.locate import MIN_LOCATABLE_CHARS, locate
from posrag.requests import RequestTracker


def doc(text: str, score: float | None = None) -> ScoredDocument:
    return ScoredDocument(text=text, score=score)


def test_children_map_to_their_root_and_the_root_end_drops_the_request() -> None:
    t = RequestTracker()
    assert t.enter("root", None) == "root"
    assert t.enter("child", "root") == "root"
    assert t.enter("grandchild", "child") == "root"
    t.record("grandchild", [doc("the first document text", 0.9)], query="q?")
    t.exit("grandchild")
    t.exit("child")
    docs = t.documents("root")
    assert docs is not None and docs.query == "q?" and [d.score for d in docs.documents] == [0.9]
    t.exit("root")
    assert t.documents("root") is None and len(t) == 0 and t.open_runs() == 0


def test_two_requests_with_the_same_text_keep_their_own_scores() -> None:
    t = RequestTracker()
    for request, score in (("a", 0.1), ("b", 0.8)):
        t.enter(request, None)
        t.enter(f"{request}-retriever", request)
        t.record(f"{request}-retriever", [doc("shared text of both requests", score)])
    assert t.documents("a").documents[0].score == 0.1  # type: ignore[union-attr]
    assert t.documents("b").documents[0].score == 0.8  # type: ignore[union-attr]


def test_a_later_unscored_emission_keeps_the_request_score_and_takes_new_metadata() -> None:
    t = RequestTracker()
    t.enter("r", None)
    t.record("r", [doc("a document that gets reordered", 0.7)])
    t.record("r", [ScoredDocument("a document that gets reordered", {"posrag_position": 3})])
    (only,) = t.documents("r").documents  # type: ignore[union-attr]
    assert only.score == 0.7 and only.metadata["posrag_position"] == 3


def test_short_texts_are_not_recorded_and_unknown_runs_are_their_own_request() -> None:
    t = RequestTracker()
    t.record("lonely", [doc("x" * (MIN_LOCATABLE_CHARS - 1)), doc("long enough to be located here")])
    docs = t.documents("lonely")
    assert docs is not None and [d.text for d in docs.documents] == ["long enough to be located here"]
    assert t.documents(None) is None and t.request_of(None) is None


def test_the_tracker_is_bounded_when_runs_never_end() -> None:
    t = RequestTracker(max_runs=10)
    for i in range(100):
        t.enter(i, None)
        t.record(i, [doc(f"document number {i} of many")])
    assert t.open_runs() <= 10 and len(t) <= 10


def test_concurrent_requests_never_see_each_other() -> None:
    t = RequestTracker()
    errors: list[str] = []

    def request(i: int) -> None:
        root = f"root-{i}"
        for _ in range(50):
            t.enter(root, None)
            t.enter(f"{root}-child", root)
            t.record(f"{root}-child", [doc(f"document for request {i} only", float(i))])
            seen = t.documents(f"{root}-child")
            if seen is None or [d.score for d in seen.documents] != [float(i)]:
                errors.append(f"{i}: {seen}")
            t.exit(f"{root}-child")
            t.exit(root)

    threads = [threading.Thread(target=request, args=(i,)) for i in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == [] and len(t) == 0 and t.open_runs() == 0


def test_locate_finds_documents_in_prompt_order_and_skips_nested_texts() -> None:
    prompt = "Intro.\nSECOND document text here\nFIRST document text here, and more\nQuestion?"
    first = doc("FIRST document text here, and more")
    second = doc("SECOND document text here")
    inner = doc("document text here, and more")  # inside `first`
    absent = doc("a document that is not in the prompt")
    found = locate(prompt, [first, inner, absent, second])
    assert [span.document for span in found] == [second, first]
    assert all(prompt[span.start : span.end] == span.document.text for span in found)
    assert [(span.position.index, span.position.total) for span in found] == [(0, 2), (1, 2)]
