"""Measuring what a generation costs: wall-clock latency and, when asked, peak memory sampled while it runs.

Memory is measured only when asked (``measure(memory=True)``; the benchmark's ``LitmConfig.measure_memory``,
``posrag bench litm --memory``): the CPU sampler is a Python thread calling psutil every 5 ms, which took
about 19 % of the process's CPU samples next to torch's two threads on two cores (py-spy, issue 12). Without
it the memory fields are ``None`` and only the clock is read.

Peak memory on CPU is the process's resident set size (RSS, from psutil) sampled every few milliseconds
by a background thread while the generation runs; ``tracemalloc`` cannot see torch's tensor allocations.
The reported delta is the peak RSS during the generation minus the RSS just before it: the memory the
query needed on top of what the process already held. Allocators reuse freed memory, so after the first
queries the delta is a lower bound of the transient allocations. On CUDA the peak is
``torch.cuda.max_memory_allocated`` (exact), reset before each generation.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

MEMORY_METHOD_CPU = "process RSS (psutil) sampled every 5 ms during each generation; delta = peak - RSS before it"
MEMORY_METHOD_CUDA = "torch.cuda.max_memory_allocated during each generation; delta = peak - allocated before it"
MEMORY_NOT_MEASURED = "not measured (pass --memory / LitmConfig(measure_memory=True) to sample it)"
_MB = 1024 * 1024


@dataclass
class Measurement:
    """Filled in when the measured block exits: seconds, peak memory and the peak's delta (MiB; ``None`` when
    memory was not measured)."""

    seconds: float = 0.0
    peak_mb: float | None = None
    delta_mb: float | None = None


def _rss() -> int:
    import psutil

    return int(psutil.Process().memory_info().rss)


@contextmanager
def measure(device: Any = "cpu", interval_s: float = 0.005, *, memory: bool = True) -> Iterator[Measurement]:
    """Time the block and, with ``memory``, record its peak memory (see the module docstring for what is measured)."""
    result = Measurement()
    if not memory:
        started = time.perf_counter()
        try:
            yield result
        finally:
            if str(device).startswith("cuda"):
                import torch

                torch.cuda.synchronize(device)
            result.seconds = time.perf_counter() - started
        return
    if str(device).startswith("cuda"):
        import torch

        torch.cuda.synchronize(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        started = time.perf_counter()
        try:
            yield result
        finally:
            torch.cuda.synchronize(device)
            result.seconds = time.perf_counter() - started
            peak = torch.cuda.max_memory_allocated(device)
            result.peak_mb, result.delta_mb = peak / _MB, (peak - before) / _MB
        return
    before = _rss()
    peak = [before]
    stop = threading.Event()

    def _sample() -> None:
        while not stop.wait(interval_s):
            peak[0] = max(peak[0], _rss())

    sampler = threading.Thread(target=_sample, daemon=True, name="posrag-rss-sampler")
    sampler.start()
    started = time.perf_counter()
    try:
        yield result
    finally:
        result.seconds = time.perf_counter() - started
        stop.set()
        sampler.join()
        peak[0] = max(peak[0], _rss())
        result.peak_mb, result.delta_mb = peak[0] / _MB, (peak[0] - before) / _MB


def memory_method(device: Any = "cpu", measured: bool = True) -> str:
    if not measured:
        return MEMORY_NOT_MEASURED
    return MEMORY_METHOD_CUDA if str(device).startswith("cuda") else MEMORY_METHOD_CPU


__all__ = ["MEMORY_NOT_MEASURED", "Measurement", "measure", "memory_method"]
