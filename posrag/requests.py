"""Request-scoped document hand-off: what a request's retriever and reorder steps emitted, for its LLM calls only.

An ordinary LangChain chain or LlamaIndex query engine hands the LLM a plain prompt string: the retrieved
documents are in it, but nothing says which ones they are or how they scored. posrag therefore records the
documents each *request* emits (with that request's scores and query) and lets the LLM calls of the same
request, and only those, find them in their prompt.

A request is the root of the framework's own run tree: LangChain's root run (every child run carries its
parent's id through ``RunnableConfig`` callbacks, across ``batch``, thread pools and ``async``), LlamaIndex's
root instrumentation span (its dispatcher carries the active span id through sync, async and streaming code).
The adapters feed :class:`RequestTracker` the tree's edges (``enter(run_id, parent_id)`` / ``exit(run_id)``)
and the documents emitted under a run; the tracker maps every run to its root and keeps one
:class:`RequestDocuments` per open root, dropped when the root run ends. Nothing is keyed by content across
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


_key = locatable_text


class RequestTracker:
    """Run tree → request root, and each open request's documents. Thread-safe; bounded.

    ``max_runs`` bounds the runs remembered at once (the oldest are forgotten first), so a framework that
    never reports a run's end cannot grow the tracker without limit.
    """

    def __init__(self, max_runs: int = 65_536) -> None:
        self.max_runs = max_runs
        self._root_of: OrderedDict[RunId, RunId] = OrderedDict()
        self._requests: dict[RunId, _Request] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------------- the run tree

    def enter(self, run_id: RunId, parent_id: RunId | None) -> RunId:
        """Record that ``run_id`` started under ``parent_id`` (``None``: it is a root); returns its request id."""
        with self._lock:
            root = run_id if parent_id is None else self._root_of.get(parent_id, parent_id)
            self._root_of[run_id] = root
            if parent_id is not None and parent_id not in self._root_of:
                # A parent that started before tracking began (or was forgotten): it stands for its request.
                self._root_of[parent_id] = root
            while len(self._root_of) > self.max_runs:
                old, old_root = self._root_of.popitem(last=False)
                if old == old_root:
                    self._requests.pop(old, None)
            return root

    def exit(self, run_id: RunId) -> None:
        """``run_id`` ended; a root's end closes its request and drops its documents."""
        with self._lock:
            root = self._root_of.pop(run_id, None)
            if root is not None and root == run_id:
                self._requests.pop(run_id, None)

    def request_of(self, run_id: RunId | None) -> RunId | None:
        """The request (root run) that ``run_id`` belongs to; ``None`` for an unknown run."""
        if run_id is None:
            return None
        with self._lock:
            return self._root_of.get(run_id)

    # ------------------------------------------------------------------------- documents

    def record(
        self, run_id: RunId | None, documents: Iterable[ScoredDocument], *, query: str | None = None
    ) -> RunId | None:
        """Add ``documents`` (and the query, if given) to the request of ``run_id``; returns the request id.

        A run the tracker does not know is its own request (a component called outside any tracked tree).
        """
        if run_id is None:
            return None
        docs = [d for d in documents if len(_key(d)) >= MIN_LOCATABLE_CHARS]
        with self._lock:
            root = self._root_of.get(run_id)
            if root is None:
                root = self._root_of[run_id] = run_id
            request = self._requests.setdefault(root, _Request())
            if query and not request.query:
                request.query = query
            for doc in docs:
                key = _key(doc)
                previous = request.documents.get(key)
                if previous is not None and doc.score is None and previous.score is not None:
                    doc = ScoredDocument(doc.text, doc.metadata, previous.score, doc.id or previous.id)
                request.documents[key] = doc
            return root

    def documents(self, run_id: RunId | None) -> RequestDocuments | None:
        """A snapshot of the documents of ``run_id``'s request; ``None`` when it has recorded none."""
        if run_id is None:
            return None
        with self._lock:
            root = self._root_of.get(run_id, run_id)
            request = self._requests.get(root)
            if request is None:
                return None
            return RequestDocuments(root, tuple(request.documents.values()), request.query)

    def __len__(self) -> int:
        """How many requests hold documents right now."""
        with self._lock:
            return len(self._requests)

    def open_runs(self) -> int:
        with self._lock:
            return len(self._root_of)


__all__ = ["RequestDocuments", "RequestTracker"]
