"""Request-scoped document hand-off: what a request's retriever and reorder steps emitted, for its LLM calls only.

An ordinary LangChain chain or LlamaIndex query engine hands the LLM a plain prompt string: the retrieved
documents are in it, but nothing says which ones they are or how they scored. posrag therefore records the
documents each *request* emits (with that request's scores and query) and lets the LLM calls of the same
request, and only those, find them in their prompt.

A request is a run of the framework's own run tree: LangChain's runs (every child run carries its
parent's id through ``RunnableConfig`` callbacks, across ``batch``, thread pools and ``async``), LlamaIndex's
root instrumentation span (its dispatcher carries the active span id through sync, async and streaming code).
The adapters feed :class:`RequestTracker` the tree's edges (``enter(run_id, parent_id)`` / ``exit(run_id)``)
and the documents emitted under a run. Requests nest: an LLM call's request is the innermost run above it
whose subtree emitted documents (in a plain chain the root; in an agent, each call of a RAG tool), and a
run's documents are dropped when it ends. Nothing is keyed by content across
requests: two concurrent requests that retrieve the same text each see their own score for it.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any

from posrag.documents import ScoredDocument
from posrag.locate import MIN_LOCATABLE_CHARS, locatable_text

RunId = Hashable


@dataclass(frozen=True)
class RequestDocuments:
    """The documents one request emitted so far, in first-emission order, and the request's query.

    A text emitted twice in the request (by the retriever, then by a reorder step) is one document: the later
    emission's metadata wins, and a score seen earlier in the request is kept when the later one has none.
    """

    request_id: RunId
    documents: tuple[ScoredDocument, ...] = ()
    query: str | None = None

    @property
    def scored(self) -> bool:
        """Whether any document of the request carries a retrieval score."""
        return any(d.score is not None for d in self.documents)

    def to_dict(self) -> dict[str, Any]:
        return {
            "request_id": str(self.request_id),
            "query": self.query,
            "documents": [d.to_dict() for d in self.documents],
        }


@dataclass
class _Request:
    documents: OrderedDict[str, ScoredDocument] = field(default_factory=OrderedDict)
    query: str | None = None

    def add(self, documents: Iterable[ScoredDocument], query: str | None) -> None:
        if query and not self.query:
            self.query = query
        for doc in documents:
            key = _key(doc)
            previous = self.documents.get(key)
            if previous is not None and doc.score is None and previous.score is not None:
                doc = ScoredDocument(doc.text, doc.metadata, previous.score, doc.id or previous.id)
            self.documents[key] = doc


@dataclass
class _Run:
    parent: RunId | None
    root: RunId
    #: What was emitted inside this run (itself and the runs under it), once anything was.
    emitted: _Request | None = None


_key = locatable_text


class RequestTracker:
    """Run tree → request, and what each run's subtree emitted. Thread-safe; bounded.

    Requests nest: documents emitted under a run are recorded for that run and every run above it, and an LLM
    call's request is the innermost run above it whose subtree emitted documents (the chain that retrieved).
    In a plain chain that is the root; in an agent that calls a RAG tool twice, each tool call is its own
    request, steered toward its own documents. A root's end closes its whole tree: runs under it that never
    reported their end (a cancelled call) are forgotten with it.

    ``max_runs`` bounds the runs remembered at once, so a framework that never reports a run's end cannot grow
    the tracker without limit: runs below a root that never ended go first (oldest first), then the requests least
    recently active; the request being used is never the one forgotten.
    """

    def __init__(self, max_runs: int = 65_536) -> None:
        self.max_runs = max_runs
        self._runs: dict[RunId, _Run] = {}
        #: Each root's runs, roots ordered by last activity (least recent first).
        self._trees: OrderedDict[RunId, dict[RunId, None]] = OrderedDict()
        #: The runs below a root, oldest first.
        self._children: OrderedDict[RunId, None] = OrderedDict()
        self._lock = threading.Lock()

    # ------------------------------------------------------------------------- the run tree

    def _add(self, run_id: RunId, parent_id: RunId | None) -> _Run:
        parent = None if parent_id is None else self._runs.get(parent_id)
        if parent_id is not None and parent is None:
            # A parent that started before tracking began (or was forgotten): it stands for its request.
            parent = self._add(parent_id, None)
        run = self._runs.get(run_id)
        if run is None:
            root = run_id if parent is None else parent.root
            run = self._runs[run_id] = _Run(parent_id if parent is not None else None, root)
            self._trees.setdefault(root, {})[run_id] = None
            if root != run_id:
                self._children[run_id] = None
        return run

    def _touch(self, root: RunId, keep: RunId | None = None) -> None:
        if root in self._trees:
            self._trees.move_to_end(root)
        while len(self._runs) > self.max_runs:
            # First runs of other requests that never reported their end (oldest first), then other whole
            # requests (least recently active first), and only then old runs of the request in use (``root``),
            # never its root nor the run just entered (``keep``).
            child = next((c for c in self._children if self._runs[c].root != root), None)
            if child is None:
                stale = next((r for r in self._trees if r != root), None)
                if stale is not None:
                    self._forget_tree(stale)
                    continue
                child = next((c for c in self._children if c != keep), None)
                if child is None:
                    break
            run = self._runs.pop(child)
            del self._children[child]
            self._trees.get(run.root, {}).pop(child, None)

    def _forget_tree(self, root: RunId) -> None:
        for run_id in self._trees.pop(root, {}):
            self._runs.pop(run_id, None)
            self._children.pop(run_id, None)

    def _ancestry(self, run_id: RunId) -> Iterable[tuple[RunId, _Run]]:
        current: RunId | None = run_id
        while current is not None:
            run = self._runs.get(current)
            if run is None:
                return
            yield current, run
            current = run.parent

    def _request(self, run_id: RunId) -> tuple[RunId, _Run] | None:
        """The innermost run at or above ``run_id`` whose subtree emitted documents, else the nearest that
        recorded anything (a query), else None."""
        fallback = None
        for current, run in self._ancestry(run_id):
            if run.emitted is not None and run.emitted.documents:
                return current, run
            if fallback is None and run.emitted is not None:
                fallback = (current, run)
        return fallback

    def enter(self, run_id: RunId, parent_id: RunId | None) -> RunId:
        """Record that ``run_id`` started under ``parent_id`` (``None``: it is a root); returns its request id."""
        with self._lock:
            run = self._add(run_id, parent_id)
            self._touch(run.root, keep=run_id)
            found = self._request(run_id)
            return run.root if found is None else found[0]

    def exit(self, run_id: RunId) -> None:
        """``run_id`` ended and what it emitted is dropped; a root's end closes its whole tree."""
        with self._lock:
            run = self._runs.get(run_id)
            if run is None:
                return
            if run.root == run_id:
                self._forget_tree(run_id)
            else:
                del self._runs[run_id]
                self._children.pop(run_id, None)
                self._trees.get(run.root, {}).pop(run_id, None)

    def request_of(self, run_id: RunId | None) -> RunId | None:
        """The request ``run_id`` belongs to (the innermost run above it that emitted documents, else its root);
        ``None`` for an unknown run."""
        if run_id is None:
            return None
        with self._lock:
            run = self._runs.get(run_id)
            if run is None:
                return None
            found = self._request(run_id)
            return run.root if found is None else found[0]

    # ------------------------------------------------------------------------- documents

    def record(
        self, run_id: RunId | None, documents: Iterable[ScoredDocument], *, query: str | None = None
    ) -> RunId | None:
        """Add ``documents`` (and the query, if given) to ``run_id`` and every run above it; returns the
        request id of ``run_id``.

        A run the tracker does not know is its own request (a component called outside any tracked tree).
        """
        if run_id is None:
            return None
        docs = [d for d in documents if len(_key(d)) >= MIN_LOCATABLE_CHARS]
        with self._lock:
            root = self._add(run_id, None).root
            self._touch(root, keep=run_id)
            for _current, run in self._ancestry(run_id):
                if run.emitted is None:
                    run.emitted = _Request()
                run.emitted.add(docs, query)
            found = self._request(run_id)
            return root if found is None else found[0]

    def documents(self, run_id: RunId | None) -> RequestDocuments | None:
        """A snapshot of the documents of ``run_id``'s request; ``None`` when it has recorded none."""
        if run_id is None:
            return None
        with self._lock:
            found = self._request(run_id)
            if found is None:
                return None
            request_id, run = found
            self._touch(run.root)
            assert run.emitted is not None
            return RequestDocuments(request_id, tuple(run.emitted.documents.values()), run.emitted.query)

    def __len__(self) -> int:
        """How many requests (trees) hold documents or a query right now."""
        with self._lock:
            return sum(1 for root in self._trees if (run := self._runs.get(root)) is not None and run.emitted)

    def open_runs(self) -> int:
        with self._lock:
            return len(self._runs)


__all__ = ["RequestDocuments", "RequestTracker"]
