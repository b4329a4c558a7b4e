"""Driving blocking work (a token stream, a whole generation) from asyncio, with cancellation that stops it.

:func:`iterate_in_thread` runs the whole iteration in one worker thread (a generator must be advanced and
closed by one thread at a time, so never split across executor calls) and hands the items to the event loop.
When the consuming task is cancelled, or stops iterating early, it sets a stop flag that the blocking code can
see through :func:`stop_requested`: :func:`posrag.generation.stream_from_inputs` checks it at every token (a
``StoppingCriteria``), so generation ends at the next token and its hooks are removed. The async side waits
for the worker to finish, then re-raises ``CancelledError``: once it has, no posrag thread is still running
for that request.

:func:`run_in_thread` does the same for one blocking call (a non-streaming ``ainvoke``, ``acomplete``,
``achat``): :func:`posrag.generation.generate_from_inputs` checks the same flag at every token, so a
cancelled call, an ``asyncio.wait_for`` timeout or a cancelled ``abatch`` stops generating at the next token
and has removed its hooks when ``CancelledError`` reaches the caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any, ParamSpec, TypeVar

T = TypeVar("T")
P = ParamSpec("P")

_STOP: contextvars.ContextVar[threading.Event | None] = contextvars.ContextVar("posrag_stop", default=None)


def stop_requested() -> threading.Event | None:
    """The stop flag of the :func:`iterate_in_thread` call this code runs under (``None`` outside one).

    Blocking work that can stop early (a generation loop) polls ``is_set()`` and returns when it is set.
    """
    return _STOP.get()


async def _outlive_cancellation(finished: asyncio.Future[Any]) -> None:
    """Wait until the worker has settled ``finished``, through any number of further cancellations (a
    ``gather`` or ``wait_for`` may cancel twice), so that its clean-up (hooks) is done when the caller goes on."""
    cancelled = False
    while not finished.done():
        try:
            await asyncio.shield(finished)
        except asyncio.CancelledError:
            cancelled = True
        except BaseException:  # the worker's own error: the caller is being cancelled anyway
            break
    if cancelled:
        raise asyncio.CancelledError


async def iterate_in_thread(source: Iterable[T] | Callable[[], Iterable[T]]) -> AsyncIterator[T]:
    """Yield the items of a blocking iterable, produced in a worker thread, without blocking the event loop.

    ``source`` is an iterable, or a callable that returns one (called in the worker, so its own set-up does
    not block the loop either). The worker runs in a copy of the caller's context (callbacks, tracing), with
    :func:`stop_requested` set. Cancelling the consuming task, or closing this generator early, sets the stop
    flag, closes the iterator in the worker thread and waits for the worker before returning or raising.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
    finished: asyncio.Future[None] = loop.create_future()
    stop = threading.Event()
    context = contextvars.copy_context()

    def post(kind: str, value: Any) -> None:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, (kind, value))
        except RuntimeError:  # the loop is closed: nobody is listening any more
            stop.set()

    def produce() -> None:
        _STOP.set(stop)
        try:
            iterable = source() if callable(source) else source
            iterator = iter(iterable)
            try:
                for item in iterator:
                    if stop.is_set():
                        break
                    post("item", item)
            finally:
                close = getattr(iterator, "close", None)
                if close is not None:
                    close()
        except BaseException as exc:  # re-raised on the event loop's side
            post("error", exc)
        else:
            post("done", None)
        finally:
            with contextlib.suppress(RuntimeError):  # a closed loop waits for nothing
                loop.call_soon_threadsafe(lambda: finished.done() or finished.set_result(None))

    worker = threading.Thread(target=context.run, args=(produce,), daemon=True, name="posrag-aio")
    worker.start()
    try:
        while True:
            kind, value = await queue.get()
            if kind == "item":
                yield value
            elif kind == "error":
                raise value
            else:
                return
    finally:
        stop.set()
        await _outlive_cancellation(finished)
        worker.join()  # its last statement has run: this only waits for the thread to exit


async def run_in_thread(func: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """``func(*args, **kwargs)`` in a worker thread, without blocking the event loop; cancellation stops it.

    The worker runs in a copy of the caller's context (callbacks, tracing) with :func:`stop_requested` set.
    When the awaiting task is cancelled (directly, by ``asyncio.wait_for``'s timeout, by a cancelled
    ``gather``), the stop flag is set, the worker is waited for (generation ends at its next token and removes
    its hooks), and then ``CancelledError`` is raised.
    """
    loop = asyncio.get_running_loop()
    finished: asyncio.Future[T] = loop.create_future()
    stop = threading.Event()
    context = contextvars.copy_context()

    def settle(outcome: Callable[[Any], None], value: Any) -> None:
        with contextlib.suppress(RuntimeError):  # a closed loop waits for nothing
            loop.call_soon_threadsafe(lambda: finished.done() or outcome(value))

    def work() -> None:
        _STOP.set(stop)
        try:
            result = func(*args, **kwargs)
        except BaseException as exc:  # re-raised on the event loop's side
            settle(finished.set_exception, exc)
        else:
            settle(finished.set_result, result)

    worker = threading.Thread(target=context.run, args=(work,), daemon=True, name="posrag-aio")
    worker.start()
    try:
        return await asyncio.shield(finished)
    except asyncio.CancelledError:
        stop.set()
        await _outlive_cancellation(finished)
        raise
    finally:
        if finished.done():
            worker.join()  # its last statement has run: this only waits for the thread to exit


__all__ = ["iterate_in_thread", "run_in_thread", "stop_requested"]
