"""What other code's callbacks and instrumentation receive, run in a fresh interpreter with or without posrag.

``python -m tests.unit.integrations.host_events langchain|llama_index with|without`` prints, as JSON, every
event that third-party handlers (LangChain's ``RunCollectorCallbackHandler``, a sync and an async callback
handler; LlamaIndex span and event handlers) receive from third-party components (langchain-core's fake LLM
and chat model; LlamaIndex's ``MockLLM`` query engine) across invoke/ainvoke/batch/abatch/stream/astream.
Runs become a tree of event names without ids (:func:`canonical`), so two runs compare equal when the events
are the same.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import sys
from typing import Any, ClassVar


def canonical(log: list[tuple[Any, Any, Any]]) -> list[Any]:
    """``(event, run id, parent id)`` records as a tree with no ids: each run is its events in the order they
    arrived and its child runs; siblings sorted (a batch's inputs run concurrently, in any order)."""
    events: dict[Any, list[Any]] = {}
    children: dict[Any, list[Any]] = {}
    for name, run_id, parent_id in log:
        if run_id not in events:
            events[run_id] = []
            children.setdefault(parent_id, []).append(run_id)
        events[run_id].append(name)

    def tree(run_id: Any) -> list[Any]:
        return [events[run_id], sorted((tree(child) for child in children.get(run_id, [])), key=json.dumps)]

    roots = [run_id for run_id in events if run_id in children.get(None, []) or _orphan(run_id, events, log)]
    return sorted((tree(root) for root in roots), key=json.dumps)


def _orphan(run_id: Any, events: dict[Any, Any], log: list[Any]) -> bool:
    parent = next(p for _, r, p in log if r == run_id)
    return parent is not None and parent not in events


def _flatten(runs: list[Any]) -> list[Any]:
    return [item for run in runs for item in (run, *_flatten(run.child_runs))]


def langchain_events() -> dict[str, Any]:
    from langchain_core.callbacks import AsyncCallbackHandler, BaseCallbackHandler
    from langchain_core.language_models import FakeListChatModel, FakeListLLM
    from langchain_core.prompts import PromptTemplate
    from langchain_core.tracers.run_collector import RunCollectorCallbackHandler

    events = ("on_llm_start", "on_chat_model_start", "on_llm_new_token", "on_llm_end", "on_chain_start",
              "on_chain_end", "on_llm_error", "on_chain_error")  # fmt: skip

    def recorder(base: type, is_async: bool) -> Any:
        log: list[Any] = []

        def make(name: str) -> Any:
            def record(self: Any, *args: Any, run_id: Any, parent_run_id: Any = None, **kwargs: Any) -> None:
                log.append((name, run_id, parent_run_id))

            if not is_async:
                return record

            async def arecord(self: Any, *args: Any, **kwargs: Any) -> None:
                record(self, *args, **kwargs)

            return arecord

        handler = type("Recorder", (base,), {name: make(name) for name in events})()
        return handler, log

    out: dict[str, Any] = {}
    for kind in ("llm", "chat"):
        model = FakeListLLM(responses=["an answer"] * 64) if kind == "llm" else FakeListChatModel(responses=["hi"] * 64)
        chain = PromptTemplate.from_template("Q: {q}") | model
        for entry in ("invoke", "ainvoke", "batch", "abatch", "stream", "astream"):
            collector = RunCollectorCallbackHandler()
            sync_handler, sync_log = recorder(BaseCallbackHandler, False)
            async_handler, async_log = recorder(AsyncCallbackHandler, True)
            config = {"callbacks": [collector, sync_handler, async_handler]}
            for runnable, value in ((model, "Q: hello"), (chain, {"q": "hello"})):
                if entry == "invoke":
                    runnable.invoke(value, config)
                elif entry == "batch":
                    runnable.batch([value, value], config)
                elif entry == "stream":
                    list(runnable.stream(value, config))
                elif entry == "ainvoke":
                    asyncio.run(runnable.ainvoke(value, config))
                elif entry == "abatch":
                    asyncio.run(runnable.abatch([value, value], config))
                else:

                    async def consume(runnable: Any = runnable, value: Any = value, config: Any = config) -> None:
                        async for _ in runnable.astream(value, config):
                            pass

                    asyncio.run(consume())
            runs = [(f"{r.run_type}:{r.name}:{r.error is None}:{r.end_time is not None}", r.id, r.parent_run_id)
                    for r in _flatten(collector.traced_runs)]  # fmt: skip
            out[f"{kind}/{entry}"] = {
                "collector": canonical(runs),
                "sync": canonical(sync_log),
                "async": canonical(async_log),
            }
    return out


def llama_index_events() -> dict[str, Any]:
    from llama_index.core import Document, VectorStoreIndex
    from llama_index.core.embeddings import MockEmbedding
    from llama_index.core.instrumentation import get_dispatcher
    from llama_index.core.instrumentation.event_handlers import BaseEventHandler
    from llama_index.core.instrumentation.span_handlers import SimpleSpanHandler
    from llama_index.core.llms import MockLLM

    class Events(BaseEventHandler):
        log: ClassVar[list[Any]] = []

        def handle(self, event: Any, **kwargs: Any) -> None:
            self.log.append([type(event).__name__, (event.span_id or "").split("-")[0]])

    dispatcher = get_dispatcher()
    spans, events = SimpleSpanHandler(), Events()
    dispatcher.add_span_handler(spans)
    dispatcher.add_event_handler(events)
    index = VectorStoreIndex.from_documents(
        [Document(text=f"Fact {i}: the sky is blue on day {i}.") for i in range(4)], embed_model=MockEmbedding(8)
    )
    out: dict[str, Any] = {}
    for entry in ("query", "aquery", "stream"):
        spans.completed_spans.clear()
        events.log.clear()
        engine = index.as_query_engine(llm=MockLLM(max_tokens=8), streaming=entry == "stream", similarity_top_k=2)
        if entry == "query":
            text = str(engine.query("what colour is the sky?"))
        elif entry == "aquery":
            text = str(asyncio.run(engine.aquery("what colour is the sky?")))
        else:
            text = "".join(engine.query("what colour is the sky?").response_gen)
        out[entry] = {
            "text": text,
            "spans": sorted([s.id_.split("-")[0], (s.parent_id or "").split("-")[0]] for s in spans.completed_spans),
            "events": events.log,
        }
    return out


def main(framework: str, posrag: str) -> None:
    if posrag == "with":
        for module in ("langchain_posrag", "llama_index.llms.posrag", "llama_index.postprocessor.posrag"):
            importlib.import_module(module)
    result = langchain_events() if framework == "langchain" else llama_index_events()
    print(json.dumps(result))


if __name__ == "__main__":
    main(*sys.argv[1:3])
