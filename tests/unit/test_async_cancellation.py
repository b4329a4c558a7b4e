"""Cancelling an async stream: generation stops at the next token, hooks are removed, the task is cancelled.

A real asyncio task is cancelled while a tiny model streams, through the core driver (:mod:`posrag.aio`) and
through both adapters (LangChain ``astream``, LlamaIndex ``astream_complete``).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import torch

from posrag.aio import iterate_in_thread
from posrag.engine import Engine
from posrag.generation import GenerationConfig, stream_text
from posrag.steering import SteeringConfig, SteeringTarget, hook_counts
from posrag.testing import tiny_model

MAX_TOKENS = 300
PROMPT = "Document [1] Paris is the capital of France.\nQuestion: What is the capital of France? Answer:"
NO_HOOKS = {"forward": 0, "forward_pre": 0}


@pytest.fixture
def tm() -> Any:
    tm = tiny_model("llama", num_layers=2)
    # Never end early: the stream must still be running when it is cancelled.
    tm.model.generation_config.eos_token_id = None
    tm.model.config.eos_token_id = None
    return tm


def _posrag_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("posrag-")]


def _cancel_while_streaming(model: torch.nn.Module, make_stream: Callable[[], Any]) -> dict[str, Any]:
    """Start a task that streams, cancel it after its first chunk; what was seen."""
    forwards: list[int] = []
    seen: dict[str, Any] = {"chunks": 0}

    async def main() -> None:
        first = asyncio.Event()

        async def consume() -> None:
            stream = make_stream()
            if not isinstance(stream, AsyncIterator):
                stream = await stream
            async for _ in stream:
                seen["chunks"] += 1
                seen.setdefault("hooks_during", hook_counts(model))
                first.set()

        task = asyncio.create_task(consume())
        await asyncio.wait_for(first.wait(), timeout=120)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        seen["forwards_at_cancel"] = len(forwards)
        seen["hooks_after"] = hook_counts(model)
        seen["threads_after"] = _posrag_threads()

    handle = model.register_forward_hook(lambda *args: forwards.append(1))  # one call per token; not counted below
    try:
        asyncio.run(main())
        time.sleep(0.3)
        seen["forwards_later"] = len(forwards)
    finally:
        handle.remove()
    seen["hooks_during"] = {k: v - (k == "forward") for k, v in seen["hooks_during"].items()}
    seen["hooks_after"] = {k: v - (k == "forward") for k, v in seen["hooks_after"].items()}
    return seen


def _assert_stopped(seen: dict[str, Any]) -> None:
    assert seen["hooks_after"] == NO_HOOKS
    assert seen["threads_after"] == []
    assert seen["forwards_at_cancel"] < MAX_TOKENS  # stopped early, at the next token
    assert seen["forwards_later"] == seen["forwards_at_cancel"]  # and nothing generates any more


def test_core_driver_cancellation_stops_steered_generation_and_removes_hooks(tm) -> None:
    generator = Engine.from_model(tm.model, tm.tokenizer, SteeringConfig(mechanism="both"))
    start = PROMPT.index("Paris")
    target = SteeringTarget(start, start + len("Paris is the capital of France."), relative_position=1.0)
    config = GenerationConfig(max_new_tokens=MAX_TOKENS)
    seen = _cancel_while_streaming(
        tm.model, lambda: iterate_in_thread(lambda: generator.stream(PROMPT, [target], config))
    )
    assert seen["hooks_during"] != NO_HOOKS  # the steering hooks were on while streaming
    _assert_stopped(seen)


def test_core_driver_cancels_a_plain_stream(tm) -> None:
    config = GenerationConfig(max_new_tokens=MAX_TOKENS)
    seen = _cancel_while_streaming(
        tm.model, lambda: iterate_in_thread(stream_text(tm.model, tm.tokenizer, PROMPT, config))
    )
    _assert_stopped(seen)


def test_core_driver_passes_items_and_errors_through() -> None:
    def failing():
        yield 1
        raise KeyError("boom")

    async def collect() -> list[int]:
        return [x async for x in iterate_in_thread(failing)]

    with pytest.raises(KeyError, match="boom"):
        asyncio.run(collect())

    async def early_exit() -> list[int]:
        out = []
        async with __import__("contextlib").aclosing(iterate_in_thread(lambda: iter(range(10**9)))) as items:
            async for x in items:
                out.append(x)
                if x == 2:
                    break
        return out

    assert asyncio.run(early_exit()) == [0, 1, 2]
    assert _posrag_threads() == []


def test_langchain_astream_cancellation(tm) -> None:
    from langchain_posrag import PosragLLM

    llm = PosragLLM(model=(tm.model, tm.tokenizer), max_tokens=MAX_TOKENS, use_chat_template=False)
    _assert_stopped(_cancel_while_streaming(tm.model, lambda: llm.astream(PROMPT)))


def test_llama_index_astream_complete_cancellation(tm) -> None:
    from llama_index.llms.posrag import PosragLLM

    llm = PosragLLM(model=(tm.model, tm.tokenizer), max_new_tokens=MAX_TOKENS, use_chat_template=False)
    _assert_stopped(_cancel_while_streaming(tm.model, lambda: llm.astream_complete(PROMPT)))
