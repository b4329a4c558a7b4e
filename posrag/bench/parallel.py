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
import queue as queue_module
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from posrag.bench.conditions import LitmConfig
from posrag.bench.results import LitmResult
from posrag.bench.shards import Shard, merge_results
from posrag.errors import ConfigurationError

#: How often the parent drains the workers' progress queue and checks on them (seconds).
_POLL_S = 0.2


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return os.cpu_count() or 1


def threads_per_job(jobs: int, cores: int | None = None) -> int:
    """The torch threads each of ``jobs`` workers gets: the cores shared out evenly, at least one."""
    return max(1, (cores or available_cores()) // jobs)


def _worker(
    index: int,
    jobs: int,
    threads: int,
    config: LitmConfig,
    options: Mapping[str, Any],
    progress: Any,
) -> dict[str, Any]:
    """One shard in a fresh process; returns the shard's result as a dict (plain data crosses processes)."""
    import torch

    from posrag.bench.runner import run_litm

    torch.set_num_threads(threads)
    result = run_litm(
        config,
        **options,
        progress=False,
        shard=Shard(index, jobs),
        on_trial=(lambda _trial: progress.put(1)) if progress is not None else None,
    )
    return result.to_dict()  # the records included: a shard always keeps them


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
) -> LitmResult:
    """Run ``config`` as ``jobs`` local worker processes of ``threads`` torch threads each and merge them.

    ``threads`` defaults to the available cores divided by ``jobs``. The merged result's statistics are those
    of one process; its ``timing`` gives ``wall_s`` from the start of the workers to the last one's end
    (model loading included, since the workers load in parallel), each shard's own ``shard_wall_s``, and
    ``jobs`` / ``threads_per_job``. Trial records are always kept.
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
    options = {"data": path, "model": model, "limit": limit, "command": command, "quantize": quantize}
    context = multiprocessing.get_context("spawn")
    started = time.perf_counter()
    bar = tqdm(total=total, desc=f"posrag bench litm ({jobs} jobs)", unit="trial", disable=not progress)
    updates = context.Manager() if progress else None
    done_queue = updates.Queue() if updates is not None else None
    pool = context.Pool(processes=jobs)
    try:
        pending = [pool.apply_async(_worker, (i, jobs, threads, config, options, done_queue)) for i in range(jobs)]
        while not all(p.ready() for p in pending):
            _drain(done_queue, bar)
            failed = next((p for p in pending if p.ready() and not p.successful()), None)
            if failed is not None:
                failed.get()  # raises the worker's exception here; the pool is terminated below
            time.sleep(_POLL_S)
        shards = [LitmResult.from_dict(p.get()) for p in pending]
        _drain(done_queue, bar)
    finally:
        pool.terminate()
        pool.join()
        bar.close()
        if updates is not None:
            updates.shutdown()
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


def _drain(done_queue: Any, bar: Any) -> None:
    if done_queue is None:
        return
    count = 0
    while True:
        try:
            count += done_queue.get_nowait()
        except queue_module.Empty:
            break
    if count:
        bar.update(count)


__all__ = ["available_cores", "run_litm_parallel", "threads_per_job"]
