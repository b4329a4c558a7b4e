"""Request tracking for LangChain: which documents each request's retriever and reorder steps emitted.

LangChain gives every run an id and its parent's id, and carries them through ``RunnableConfig`` callbacks
across ``invoke``, ``batch``/``abatch`` (one root run per input), ``stream``, ``RunnableParallel`` and thread
pools. :class:`PosragRequestHandler` listens to those runs through a LangChain *configure hook* (the mechanism
LangChain's own tracers use), so it sees every run without the user passing a callback: it maps each run to
its root run (the request) and records the documents any retriever returns (``on_retriever_end``: posrag's or
any other, scored or not) and any step outputs (``on_chain_end`` with documents: posrag's ``PositionReorder``,
LangChain's ``LongContextReorder``, a custom lambda). posrag's LLMs then steer only toward documents of their
own request. The documents of a request are dropped when its root run ends.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from contextvars import ContextVar
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.documents import Document
from langchain_core.runnables.config import ensure_config
from langchain_core.tracers.context import register_configure_hook

from posrag.documents import SIMILARITY_KEY, ScoredDocument
from posrag.requests import RequestDocuments, RequestTracker

#: Metadata keys read as a document's retrieval score (higher is better), in this order: the one posrag's
#: reorder step writes in posrag's direction, posrag's retriever's, a reranker's.
SCORE_KEYS = (SIMILARITY_KEY, "score", "relevance_score")

#: The process's request tracker for LangChain runs (keyed by run ids, never by content).
tracker = RequestTracker()


def _score(metadata: dict[str, Any]) -> float | None:
    for key in SCORE_KEYS:
        value = metadata.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
    return None


def to_scored(document: Document) -> ScoredDocument:
    """posrag's view of a LangChain document: text, metadata, the score found in metadata (or None), id."""
    return ScoredDocument(
        text=document.page_content, metadata=dict(document.metadata), score=_score(document.metadata), id=document.id
    )


def _documents_in(value: Any) -> list[Document]:
    if isinstance(value, Document):
        return [value]
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, Document) for v in value):
        return list(value)
    if isinstance(value, dict) and "output" in value:  # RunnableLambda / parser outputs are wrapped this way
        return _documents_in(value["output"])
    return []


class PosragRequestHandler(BaseCallbackHandler):
    """Feeds LangChain's run tree and emitted documents to :data:`tracker`. Installed for every run.

    Not ``run_inline``: langchain-core's ``AsyncCallbackManager.on_llm_start`` calls only the inline handlers
    when there are any, so an inline handler installed on every manager would hide LLM starts from every
    other handler in the process. Async managers run it in a worker thread and await it before the run
    continues, so the documents a step emits are recorded before the next step starts.
    """

    raise_error = False

    def __init__(self, request_tracker: RequestTracker | None = None) -> None:
        self.tracker = request_tracker or tracker

    # run starts: remember the edge to the parent
    def on_chain_start(self, serialized: Any, inputs: Any, *, run_id: UUID, parent_run_id: UUID | None = None,
                       **kwargs: Any) -> None:  # fmt: skip
        self.tracker.enter(run_id, parent_run_id)

    def on_llm_start(self, serialized: Any, prompts: Any, *, run_id: UUID, parent_run_id: UUID | None = None,
                     **kwargs: Any) -> None:  # fmt: skip
        self.tracker.enter(run_id, parent_run_id)

    def on_chat_model_start(self, serialized: Any, messages: Any, *, run_id: UUID,
                            parent_run_id: UUID | None = None, **kwargs: Any) -> None:  # fmt: skip
        self.tracker.enter(run_id, parent_run_id)

    def on_tool_start(self, serialized: Any, input_str: str, *, run_id: UUID, parent_run_id: UUID | None = None,
                      **kwargs: Any) -> None:  # fmt: skip
        self.tracker.enter(run_id, parent_run_id)

    def on_retriever_start(self, serialized: Any, query: str, *, run_id: UUID, parent_run_id: UUID | None = None,
                           **kwargs: Any) -> None:  # fmt: skip
        self.tracker.enter(run_id, parent_run_id)
        self.tracker.record(run_id, (), query=query)

    # run ends: record what it emitted, then forget the run (a root's end closes the request)
    def on_retriever_end(self, documents: Sequence[Document], *, run_id: UUID, **kwargs: Any) -> None:
        self.tracker.record(run_id, (to_scored(d) for d in documents))
        self.tracker.exit(run_id)

    def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        documents = _documents_in(outputs)
        if documents:
            self.tracker.record(run_id, (to_scored(d) for d in documents))
        self.tracker.exit(run_id)

    def _end(self, *args: Any, run_id: UUID, **kwargs: Any) -> None:
        self.tracker.exit(run_id)

    on_chain_error = _end
    on_llm_end = _end
    on_llm_error = _end
    on_tool_end = _end
    on_tool_error = _end
    on_retriever_error = _end


#: The handler every LangChain callback manager gets (through the configure hook below).
request_handler = PosragRequestHandler()
_handler_var: ContextVar[PosragRequestHandler | None] = ContextVar("posrag_request_handler", default=request_handler)
register_configure_hook(_handler_var, inheritable=True)


def parent_run(run_manager: Any) -> UUID | None:
    """The run an LLM call runs under (``None``: the call is a request of its own).

    The run manager's parent; without a run manager (langchain-core's ``BaseChatModel.stream``/``astream`` and
    its streaming ``invoke`` call ``_stream`` without one) the parent named by the config the call runs under:
    the callback manager LangChain hands a runnable's children through its child-config context variable
    (what :func:`~langchain_core.runnables.config.ensure_config` reads), across threads, ``async`` and
    LangGraph nodes. The parent is used rather than the LLM run itself, whose start handlers may not see
    (another handler can make an async callback manager skip them).
    """
    if run_manager is not None:
        return getattr(run_manager, "parent_run_id", None)
    callbacks = ensure_config().get("callbacks")
    return getattr(callbacks, "parent_run_id", None)


def request_documents(run_manager: Any) -> RequestDocuments | None:
    """The documents of the request that the LLM run behind ``run_manager`` belongs to (``None``: none); with
    no run manager, the request of the run the call runs under (see :func:`parent_run`)."""
    run_id = parent_run(run_manager)
    return tracker.documents(run_id) if tracker.request_of(run_id) is not None else None


def record_documents(run_manager: Any, documents: Iterable[ScoredDocument], *, query: str | None = None) -> None:
    """Add ``documents`` to the request of the run behind ``run_manager`` (posrag's own components)."""
    tracker.record(getattr(run_manager, "run_id", None), documents, query=query)


__all__ = [
    "SCORE_KEYS",
    "PosragRequestHandler",
    "parent_run",
    "record_documents",
    "request_documents",
    "request_handler",
    "to_scored",
    "tracker",
]
