"""Running one "Lost in the Middle" benchmark as several local processes and merging them: ``--jobs N``.

A small model decodes one token at a time, and a decode step is bound by reading the weights from memory,
not by arithmetic: a second torch thread in the same process gains little there (the two-thread decode of
the packaged Gemma 3 270M is slower per CPU-second than the one-thread one, ``docs/generation.md``). Two
processes of one thread each keep both cores busy on both prefill and decode. :func:`run_litm_parallel`
starts ``jobs`` worker processes (``spawn``, so no torch state is forked), each loads the model and runs
shard ``i/jobs`` of the questions (:mod:`posrag.bench.shards`) with ``threads`` torch threads, and merges the
shards with :func:`~posrag.bench.shards.merge_results`: the statistics are computed from the union of the
trials exactly as in one process. Every worker holds its own copy of the model (memory grows with ``jobs``).

Greedy outputs do not depend on how the questions are split; whether they depend on the thread count is a
property of the CPU kernels (on the development machine one and two threads gave identical trials,
``docs/litm.md``).
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import queue as queue_module
import signal
import threading
import time
import traceback
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from posrag.bench.cache import prepare_cache
from posrag.bench.conditions import LitmConfig
from posrag.bench.results import LitmResult
from posrag.bench.shards import Shard, merge_results
from posrag.errors import ConfigurationError, PosragError

#: How often the parent drains the workers' messages and checks on them (seconds).
_POLL_S = 0.2
#: How long a stopped worker gets to end after SIGTERM before it is killed (seconds).
_GRACE_S = 3.0
#: How often a worker checks that its parent is still alive (seconds).
_ORPHAN_CHECK_S = 0.5


class WorkerFailedError(PosragError):
    """A ``--jobs`` worker process ended without finishing its shard (killed, crashed)."""


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return os.cpu_count() or 1


def threads_per_job(jobs: int, cores: int | None = None) -> int:
    """The torch threads each of ``jobs`` workers gets: the cores shared out evenly, at least one."""
    return max(1, (cores or available_cores()) // jobs)


def _exit_with_parent(parent: int) -> None:
    """End this worker as soon as its parent is gone (whatever ended it, SIGKILL included)."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(_ORPHAN_CHECK_S)
        os._exit(1)

    threading.Thread(target=watch, name="posrag-parent-watch", daemon=True).start()


def _worker(
    index: int,
    jobs: int,
    threads: int,
    config: LitmConfig,
    options: Mapping[str, Any],
    messages: Any,
    parent: int,
) -> None:
    """One shard in a fresh process; sends ``("done", index, result dict)`` or ``("error", index, pickled
    exception)`` on ``messages``, and ``("trial", index, 1)`` per finished trial (the progress bar)."""
    _exit_with_parent(parent)
    try:
        import torch

        from posrag.bench.runner import run_litm

        torch.set_num_threads(threads)
        result = run_litm(
            config,
            **options,
            progress=False,
            shard=Shard(index, jobs),
            on_trial=lambda _trial: messages.put(("trial", index, 1)),
            threads=threads,
        )
        messages.put(("done", index, result.to_dict()))  # the records included: a shard always keeps them
    except BaseException as exc:  # every failure goes back to the parent, which raises it
        try:
            payload = pickle.dumps(exc)
            pickle.loads(payload)
        except Exception:  # one that does not cross processes goes back as text
            payload = pickle.dumps(WorkerFailedError("".join(traceback.format_exception(exc)).strip()))
        messages.put(("error", index, payload))


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = " (SIGKILL: often the out-of-memory killer; each worker holds its own model copy)" if code == -9 else ""
        return f"exit code {code}, killed by {name}{hint}"
    return f"exit code {code}"


@contextmanager
def _sigterm_raises() -> Iterator[None]:
    """While the workers run, SIGTERM to this process unwinds it (so its workers are stopped), as Ctrl-C does."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _stop(workers: list[Any]) -> None:
    """SIGTERM every live worker, wait a little, SIGKILL what is left, reap them all."""
    for process in workers:
        if process.is_alive():
            process.terminate()
    deadline = time.monotonic() + _GRACE_S
    for process in workers:
        process.join(max(0.0, deadline - time.monotonic()))
    for process in workers:
        if process.is_alive():
            process.kill()
            process.join()


def _collect(workers: list[Any], messages: Any, jobs: int, bar: Any) -> list[dict[str, Any]]:
    """Wait for every shard; raise as soon as a worker fails or ends without its result."""
    results: dict[int, dict[str, Any]] = {}
    while len(results) < jobs:
        ended = {i: p.exitcode for i, p in enumerate(workers) if p.exitcode is not None}
        # A worker sends its message before it exits, so what it sent is readable once it has ended.
        deadline = time.monotonic() + _POLL_S
        while True:
            try:
                kind, index, payload = messages.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue_module.Empty:
                break
            if kind == "trial":
                bar.update(payload)
            elif kind == "done":
                results[index] = payload
            else:
                raise pickle.loads(payload)
        for index, code in ended.items():
            if index not in results:
                raise WorkerFailedError(
                    f"Worker {index} (shard {index}/{jobs}) ended with {_describe_exit(code)} before finishing "
                    f"its shard; nothing was written. Rerun with fewer --jobs (or --jobs 1) if memory is short, "
                    f"or run that shard alone with --shard {index}/{jobs}."
                )
    return [results[i] for i in range(jobs)]


def run_litm_parallel(
    config: LitmConfig,
    *,
    jobs: int,
    threads: int | None = None,
    data: str | Path | None = None,
    model: str | None = None,
    limit: int | None = None,
    progress: bool = True,
    command: str | None = None,
    quantize: str | None = None,
    backend: str = "torch",
    cache: str | Path | None = None,
) -> LitmResult:
    """Run ``config`` as ``jobs`` local worker processes of ``threads`` threads each and merge them.

    ``backend``: ``"torch"`` or ``"llama.cpp"`` (:func:`~posrag.backends.load_backend`), loaded once per worker.

    ``threads`` defaults to the available cores divided by ``jobs``. The merged result's statistics are those
    of one process; its ``timing`` gives ``wall_s`` from the start of the workers to the last one's end
    (model loading included, since the workers load in parallel), each shard's own ``shard_wall_s``, and
    ``jobs`` / ``threads_per_job``. Trial records are always kept. ``cache``: a generation cache every worker
    reads and adds to (:mod:`posrag.bench.cache`), checked here before any worker starts.

    A worker that fails raises its error here; one that ends without its result (killed, e.g. by the
    out-of-memory killer) raises :class:`WorkerFailedError` naming its exit code and shard, at once. Whatever
    ends the run (an error, Ctrl-C, SIGTERM), the other workers are stopped before this returns, and a worker
    whose parent dies (even by SIGKILL) ends itself.
    """
    from tqdm.auto import tqdm

    from posrag.bench.data import load_records, packaged_dataset

    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ConfigurationError(f"jobs must be a positive integer (worker processes), got {jobs!r}.")
    threads = threads_per_job(jobs) if threads is None else threads
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ConfigurationError(f"threads must be a positive integer (torch threads per job), got {threads!r}.")
    path = Path(data) if data is not None else Path(packaged_dataset())
    records = load_records(path)
    questions = len(records[:limit] if limit else records)
    if jobs > questions:
        raise ConfigurationError(
            f"--jobs {jobs} is more worker processes than questions ({questions}); use at most {questions}."
        )
    total = questions * len(config.positions) * len(config.conditions) * len(config.regimes)
    options = {
        "data": path,
        "model": model,
        "limit": limit,
        "command": command,
        "quantize": quantize,
        "backend": backend,
        "cache": prepare_cache(cache) if cache is not None else None,
    }
    context = multiprocessing.get_context("spawn")
    started = time.perf_counter()
    messages = context.Queue()
    workers = [
        context.Process(
            target=_worker,
            args=(i, jobs, threads, config, options, messages, os.getpid()),
            name=f"posrag-litm-job-{i}",
            daemon=True,
        )
        for i in range(jobs)
    ]
    bar = tqdm(total=total, desc=f"posrag bench litm ({jobs} jobs)", unit="trial", disable=not progress)
    try:
        with _sigterm_raises():
            try:
                for process in workers:
                    process.start()
                shards = [LitmResult.from_dict(d) for d in _collect(workers, messages, jobs, bar)]
            finally:
                _stop([p for p in workers if p.pid is not None])
    finally:
        bar.close()
        messages.close()
        messages.cancel_join_thread()
    elapsed = time.perf_counter() - started
    merged = merge_results(shards, labels=[f"job {i}/{jobs}" for i in range(jobs)])
    timing = {
        **merged.timing,
        "wall_s": elapsed,
        "total_s_with_model_load": elapsed,
        "summed_shard_wall_s": merged.timing["wall_s"],
        "jobs": jobs,
        "threads_per_job": threads,
    }
    data_info = {**merged.data, "command": command, "jobs": jobs}
    return replace(merged, timing=timing, data=data_info)


__all__ = ["WorkerFailedError", "available_cores", "run_litm_parallel", "threads_per_job"]
