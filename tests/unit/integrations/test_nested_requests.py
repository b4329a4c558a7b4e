"""Requests nest inside agents, and cancelled calls leave nothing in the request tracker (LangChain)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from langchain_core.runnables import RunnableLambda
from langchain_core.tools import tool
from langchain_posrag import PosragRetriever as LCRetriever
from langchain_posrag import callbacks

from tests.unit.integrations.test_request_scoping import INDEX, QUESTIONS, TINY, Traces, _chain, _llm


def test_a_rag_tool_called_twice_in_one_agent_run_steers_each_call_toward_its_own_documents() -> None:
    llm = _llm()

    @tool
    def search(question: str) -> str:
        """Answer a question from the indexed documents."""
        return _chain(llm, LCRetriever(index=INDEX, k=1)).invoke(question)

    for questions in (list(QUESTIONS)[:2], list(QUESTIONS)[1::-1], list(QUESTIONS)[2:], list(QUESTIONS)[:1:-1]):
        agent = RunnableLambda(lambda _, config, qs=questions: [search.invoke({"question": q}, config) for q in qs])
        traces = Traces()
        agent.invoke("go", config={"callbacks": [traces]})  # one root run, the tool called twice under it
        # Before: the second call's documents were ranked with the first call's (one request: the agent's root
        # run), so when its best scored below the first call's best it was not steered at all.
        assert traces.steered_by_question() == {q: [QUESTIONS[q]] for q in questions}, questions
    assert callbacks.tracker.open_runs() == 0


def test_cancelled_calls_leave_no_runs_in_the_tracker() -> None:
    llm = _llm(max_tokens=200)
    TINY.model.generation_config.eos_token_id = None
    forwards: list[int] = []

    def slow(*_args: Any) -> None:
        forwards.append(1)
        time.sleep(0.002)

    async def cancel_one(question: str) -> None:
        forwards.clear()
        task = asyncio.ensure_future(_chain(llm).ainvoke(question))
        while not forwards and not task.done():
            await asyncio.sleep(0.005)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    before = callbacks.tracker.open_runs()
    handle = TINY.model.register_forward_hook(slow)
    try:
        for question in list(QUESTIONS) * 3:
            asyncio.run(cancel_one(question))
    finally:
        handle.remove()
        TINY.model.generation_config.eos_token_id = TINY.model.config.eos_token_id
    assert callbacks.tracker.open_runs() == before  # before: about one run left per cancelled call
