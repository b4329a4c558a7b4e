"""Request tracking for LlamaIndex: which nodes each request's retriever, postprocessors and synthesizer saw.

LlamaIndex's instrumentation dispatcher opens a span for every retriever, postprocessor, synthesizer and LLM
call and carries the active span id through sync, async and streaming code. :class:`PosragRequestSpanHandler`
(registered once on the root dispatcher by :func:`install`) maps every span to its root span (the request,
e.g. one ``query_engine.query``) and records the nodes that pass through any span: the nodes a span is
called with (``postprocess_nodes(nodes)``, ``synthesize(query, nodes)``) and the nodes it returns
(``retrieve``), with the scores of that request. posrag's LLM then steers only toward nodes of its own
request, whatever retriever or postprocessor produced them. A request's nodes are dropped when its root
span ends.
"""

from __future__ import annotations

import inspect
import math
import threading
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterator
from contextvars import ContextVar
from typing import Any

from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.span import SimpleSpan, active_span_id
from llama_index.core.instrumentation.span_handlers import BaseSpanHandler
from llama_index.core.schema import NodeWithScore, QueryBundle

from posrag.adapters import SELECTION_KEY, TRACE_KEY
from posrag.documents import SIMILARITY_KEY, ScoredDocument
from posrag.requests import RequestDocuments, RequestTracker

#: The process's request tracker for LlamaIndex spans (keyed by span ids, never by content).
tracker = RequestTracker()

_QUERY_ARGUMENTS = ("query_bundle", "str_or_query_bundle", "query", "query_str")

#: The documents of a streaming query whose response is being consumed after the query returned. LlamaIndex's
#: streaming synthesizers call the LLM lazily, from the consumer's own context, after the query's span ended;
#: the query's response generator is wrapped to carry its request's documents to that call.
_streaming_request: ContextVar[RequestDocuments | None] = ContextVar("posrag_streaming_request", default=None)


#: What posrag's LLM calls of each open request reported (trace and selection), by request id, put on the
#: request's response when its root span ends (``Response.metadata``). Bounded; dropped when the request ends.
_calls: OrderedDict[str, list[dict[str, Any]]] = OrderedDict()
_calls_lock = threading.Lock()
_MAX_OPEN_REQUESTS = 4096


def record_call(info: dict[str, Any]) -> None:
    """Remember what one posrag LLM call reported (``additional_kwargs``) for the request it runs in."""
    request = current_request_id()
    if request is None or TRACE_KEY not in info:
        return
    with _calls_lock:
        _calls.setdefault(request, []).append({TRACE_KEY: info[TRACE_KEY], SELECTION_KEY: info.get(SELECTION_KEY)})
        while len(_calls) > _MAX_OPEN_REQUESTS:
            _calls.popitem(last=False)


def _report_calls(request_id: str, result: Any) -> None:
    """A request's response gets the traces and selections of its posrag LLM calls in its ``metadata``."""
    with _calls_lock:
        calls = _calls.pop(request_id, None)
    if calls and hasattr(result, "metadata") and isinstance(result.metadata, (dict, type(None))):
        result.metadata = {
            **(result.metadata or {}),
            TRACE_KEY: [c[TRACE_KEY] for c in calls],
            SELECTION_KEY: [c[SELECTION_KEY] for c in calls],
        }


def _carry(request: RequestDocuments, generator: Iterator[Any]) -> Iterator[Any]:
    while True:
        token = _streaming_request.set(request)
        try:
            item = next(generator)
        except StopIteration:
            return
        finally:
            _streaming_request.reset(token)
        yield item


async def _acarry(request: RequestDocuments, generator: AsyncIterator[Any]) -> AsyncIterator[Any]:
    while True:
        token = _streaming_request.set(request)
        try:
            item = await generator.__anext__()
        except StopAsyncIteration:
            return
        finally:
            _streaming_request.reset(token)
        yield item


def _carry_into_stream(result: Any, request: RequestDocuments | None) -> None:
    """A streaming response returned by a request's root span keeps that request's documents for its stream."""
    stream = getattr(result, "response_gen", None)
    if request is None or stream is None:
        return
    if inspect.isasyncgen(stream):
        result.response_gen = _acarry(request, stream)
    elif inspect.isgenerator(stream):
        result.response_gen = _carry(request, stream)


def node_to_document(node: NodeWithScore) -> ScoredDocument:
    """posrag's view of a node: its text without metadata, its metadata, its score (posrag's reorder step's
    ``posrag_similarity`` if it wrote one, else the node's score; None if absent) and id."""
    score = node.node.metadata.get(SIMILARITY_KEY, node.score)
    if score is not None and (isinstance(score, bool) or not math.isfinite(float(score))):
        score = None
    return ScoredDocument(
        text=node.node.get_content(), metadata=dict(node.node.metadata), score=score, id=node.node.node_id
    )


def _nodes(value: Any) -> list[NodeWithScore]:
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, NodeWithScore) for v in value):
        return list(value)
    return []


def _query(arguments: dict[str, Any]) -> str | None:
    for name in _QUERY_ARGUMENTS:
        value = arguments.get(name)
        if isinstance(value, QueryBundle):
            return value.query_str
        if isinstance(value, str) and value.strip():
            return value
    return None


class PosragRequestSpanHandler(BaseSpanHandler[SimpleSpan]):
    """Feeds LlamaIndex's span tree and the nodes passing through it to :data:`tracker`."""

    @classmethod
    def class_name(cls) -> str:
        return "PosragRequestSpanHandler"

    def new_span(
        self,
        id_: str,
        bound_args: inspect.BoundArguments,
        instance: Any | None = None,
        parent_span_id: str | None = None,
        tags: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        tracker.enter(id_, parent_span_id)
        arguments = bound_args.arguments
        nodes = _nodes(arguments.get("nodes"))
        query = _query(arguments)
        if nodes or query:
            tracker.record(id_, (node_to_document(n) for n in nodes), query=query)
        return None  # no span object to keep: the tracker holds what posrag needs

    def prepare_to_exit_span(
        self, id_: str, bound_args: inspect.BoundArguments, instance: Any | None = None, result: Any | None = None,
        **kwargs: Any,
    ) -> None:  # fmt: skip
        nodes = _nodes(result)
        if nodes:
            tracker.record(id_, (node_to_document(n) for n in nodes))
        if tracker.request_of(id_) == id_:  # a request ends: a stream it returns still needs its documents
            _carry_into_stream(result, tracker.documents(id_))
            _report_calls(id_, result)
        tracker.exit(id_)

    def prepare_to_drop_span(
        self, id_: str, bound_args: inspect.BoundArguments, instance: Any | None = None,
        err: BaseException | None = None, **kwargs: Any,
    ) -> None:  # fmt: skip
        with _calls_lock:
            _calls.pop(id_, None)
        tracker.exit(id_)


_install_lock = threading.Lock()
_handler: PosragRequestSpanHandler | None = None


def install() -> PosragRequestSpanHandler:
    """Register the request handler on LlamaIndex's root dispatcher (once per process); returns it."""
    global _handler
    with _install_lock:
        if _handler is None:
            _handler = PosragRequestSpanHandler()
            get_dispatcher().add_span_handler(_handler)
        return _handler


def current_request_id() -> str | None:
    """The request (root span) of the span active in this context; ``None`` outside any tracked span."""
    return tracker.request_of(active_span_id.get())


def request_documents(span_id: str | None = None) -> RequestDocuments | None:
    """The nodes (as posrag documents) of the request that ``span_id`` (default: the active span) belongs to;
    inside the stream of a streaming query that already returned, that query's nodes."""
    span = active_span_id.get() if span_id is None else span_id
    documents = tracker.documents(span) if tracker.request_of(span) is not None else None
    if documents is None and span_id is None:
        return _streaming_request.get()
    return documents


install()

__all__ = [
    "PosragRequestSpanHandler",
    "current_request_id",
    "install",
    "node_to_document",
    "record_call",
    "request_documents",
    "tracker",
]
