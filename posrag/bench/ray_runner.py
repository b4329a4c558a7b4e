"""Running one "Lost in the Middle" benchmark on Ray and merging it: ``posrag bench litm --executor ray``.

The same split as ``--shard i/N`` and ``--jobs N`` (:mod:`posrag.bench.shards`: record index modulo the shard
count, documents and seeds decided over the whole file first), run by Ray actors: each of ``workers`` actors loads
the model once and runs its shards one after the other (``shards`` defaults to ``workers``; more shards than
workers balance uneven machines and make a retried shard cheaper). The driver streams the actors' progress into
one bar and merges the shards with :func:`~posrag.bench.shards.merge_results`, so the statistics are those of one
process, trial for trial.

Failures: an actor whose process dies (killed, out of memory, a lost node) is restarted by Ray, reloads the model
and re-runs the shard it was running (``max_restarts`` / ``max_task_retries``); greedy generation makes the re-run
identical. A shard that still fails (an error raised by the benchmark, or more deaths than ``retries``) fails the
run with the shard named and its error.

Ray is an optional dependency (``pip install 'posrag[ray]'``) imported only here, when the executor runs; the core
never imports it. On a cluster (``address``), every node needs posrag, the model (the packaged one, or the same
local path on every node) and the data file at the same path.
"""

from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from posrag.bench.cache import prepare_cache
from posrag.bench.conditions import LitmConfig
from posrag.bench.results import LitmResult
from posrag.bench.shards import Shard, merge_results
from posrag.errors import ConfigurationError, MissingDependencyError, PosragError

#: How often the driver drains the actors' progress and checks on their shards (seconds).
_POLL_S = 0.2
#: Fault injection for tests: a path; the first worker to record a trial while it does not exist creates it and
#: ends its process at once (``os._exit``), as a killed worker would. Read by the driver and handed to the actors.
EXIT_ONCE_ENV = "POSRAG_RAY_EXIT_ONCE"


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise MissingDependencyError(
            "--executor ray needs Ray: pip install 'posrag[ray]' (or pip install ray), or run without "
            "--executor ray (--jobs N runs local processes)."
        ) from None
    return ray


class _Worker:
    """A Ray actor's body: the model and the records loaded once, then any number of shards."""

    def __init__(
        self, config: LitmConfig, options: dict[str, Any], threads: int, progress: Any, exit_once: str | None
    ) -> None:
        import torch

        from posrag.backends import load_backend

        torch.set_num_threads(threads)
        self.config = config
        self.options = options
        self.progress = progress
        self.exit_once = exit_once
        self.backend = load_backend(
            options["model"], options["backend"], quantize=options["quantize"], threads=threads, progress=False
        )

    def pid(self) -> int:
        return os.getpid()

    def run_shard(self, index: int, count: int) -> dict[str, Any]:
        from posrag.bench.runner import run_litm

        done = 0
        last = time.monotonic()

        def on_trial(_trial: Any) -> None:
            nonlocal done, last
            done += 1
            if self.exit_once is not None and not os.path.exists(self.exit_once):
                Path(self.exit_once).write_text(f"{os.getpid()} shard {index}/{count}\n", encoding="utf-8")
                os._exit(1)
            now = time.monotonic()
            if self.progress is not None and now - last >= _POLL_S:
                self.progress.put((index, done))
                last = now

        result = run_litm(
            self.config,
            **self.options,
            progress=False,
            shard=Shard(index, count),
            on_trial=on_trial,
            loaded=self.backend,
        )
        if self.progress is not None:
            self.progress.put((index, done))
        return result.to_dict()  # plain data crosses processes; a shard keeps its trial records


def run_litm_ray(
    config: LitmConfig,
    *,
    workers: int,
    shards: int | None = None,
    address: str | None = None,
    threads: int = 1,
    retries: int = 3,
    data: str | Path | None = None,
    model: str | None = None,
    limit: int | None = None,
    progress: bool = True,
    command: str | None = None,
    quantize: str | None = None,
    backend: str = "torch",
    cache: str | Path | None = None,
) -> LitmResult:
    """Run ``config`` as ``shards`` shards on ``workers`` Ray actors of ``threads`` threads each; merge them.

    ``backend``: ``"torch"`` or ``"llama.cpp"`` (:func:`~posrag.backends.load_backend`), loaded once per actor.

    ``address``: an existing Ray cluster (``"auto"``, ``"ray://head:10001"``); ``None`` connects to the Ray
    instance this process already started, else starts a local one. ``retries``: how often an actor that died
    is restarted and its shard re-run. The merged result's ``timing`` gives ``wall_s`` from the start (model
    loading included), the summed shard times, ``workers``, ``shards`` and ``threads_per_job``. ``cache``: a
    generation cache every actor reads and adds to (:mod:`posrag.bench.cache`); a restarted actor's shard then
    reuses what the one that died had generated.
    """
    from tqdm.auto import tqdm

    from posrag.bench.data import load_records, packaged_dataset

    for name, value in (("workers", workers), ("threads", threads)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigurationError(f"{name} must be a positive integer, got {value!r}.")
    shards = workers if shards is None else shards
    if isinstance(shards, bool) or not isinstance(shards, int) or shards < 1:
        raise ConfigurationError(f"shards must be a positive integer, got {shards!r}.")
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ConfigurationError(f"retries must be a non-negative integer, got {retries!r}.")
    path = Path(data) if data is not None else Path(packaged_dataset())
    questions = len(load_records(path)[:limit] if limit else load_records(path))
    if shards > questions:
        raise ConfigurationError(f"{shards} shards is more than the {questions} questions; use at most {questions}.")
    workers = min(workers, shards)
    ray = _import_ray()
    from ray.util.queue import Queue

    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    cpus = int(ray.cluster_resources().get("CPU", 0))
    if address is None and workers * threads > cpus:
        raise ConfigurationError(
            f"{workers} workers of {threads} threads need {workers * threads} CPUs but this Ray instance has {cpus}; "
            "use fewer --jobs or --threads, or connect to a larger cluster with --address."
        )
    options = {
        "data": str(path.resolve()),
        "model": model,
        "limit": limit,
        "command": command,
        "quantize": quantize,
        "backend": backend,
        "cache": prepare_cache(cache) if cache is not None else None,
    }
    total = questions * len(config.positions) * len(config.conditions) * len(config.regimes)
    started = time.perf_counter()
    queue = Queue() if progress else None
    actor_class = ray.remote(num_cpus=threads, max_restarts=retries, max_task_retries=retries)(_Worker)
    exit_once = os.environ.get(EXIT_ONCE_ENV)
    actors = [actor_class.remote(config, options, threads, queue, exit_once) for _ in range(workers)]
    pending = {actors[i % workers].run_shard.remote(i, shards): i for i in range(shards)}
    bar = tqdm(total=total, desc=f"posrag bench litm (ray, {workers} workers)", unit="trial", disable=not progress)
    done: dict[int, int] = {}
    outputs: dict[int, dict[str, Any]] = {}
    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=len(pending), timeout=_POLL_S)
            for ref in ready:
                index = pending.pop(ref)
                try:
                    outputs[index] = ray.get(ref)
                except Exception as exc:
                    raise PosragError(
                        f"Shard {index}/{shards} failed on Ray (after up to {retries} retries): {exc}"
                    ) from exc
            _drain(queue, done, bar)
        _drain(queue, done, bar)
    finally:
        bar.close()
        for actor in actors:
            ray.kill(actor)
        if queue is not None:
            queue.shutdown()
    elapsed = time.perf_counter() - started
    results = [LitmResult.from_dict(outputs[i]) for i in range(shards)]
    merged = merge_results(results, labels=[f"ray shard {i}/{shards}" for i in range(shards)])
    timing = {
        **merged.timing,
        "wall_s": elapsed,
        "total_s_with_model_load": elapsed,
        "summed_shard_wall_s": merged.timing["wall_s"],
        "executor": "ray",
        "workers": workers,
        "shards": shards,
        "threads_per_job": threads,
    }
    return replace(merged, timing=timing, data={**merged.data, "command": command, "executor": "ray"})


def _drain(queue: Any, done: dict[int, int], bar: Any) -> None:
    """Move the bar to the trials done so far: per shard the most any attempt reported (a retried shard
    starts counting again from zero, so its trials are not counted twice)."""
    if queue is None:
        return
    while not queue.empty():
        index, count = queue.get_nowait()
        done[index] = max(done.get(index, 0), count)
    bar.update(sum(done.values()) - bar.n)


__all__ = ["EXIT_ONCE_ENV", "run_litm_ray"]
