"""Prefix reuse in the lost-in-the-middle benchmark, side by side: the same run with and without it.

On the packaged Gemma 3 270M and the shipped synthetic set, one process runs the benchmark (``LitmBenchmark``)
with ``reuse_prefix=True`` and ``False`` in alternating order for ``--rounds`` rounds and reports, per setting,
the median wall-clock seconds of the run (``timing.wall_s``: the trials, not the model load or the warm-up)
and the median CPU seconds of the process during the same trials (all threads: on a machine shared with other
jobs this is the steadier measure of work), then whether every trial is identical (prediction,
correctness, new tokens, gold rank: everything but latency and memory) between the two settings.

    python benchmarks/prefix_reuse.py [--limit 1] [--positions 1,10,20]
        [--conditions baseline,steer-attention,hybrid,control-attention] [--regimes oracle] [--rounds 2]
        [--threads N]

With ``--threads 1`` the CPU seconds are the work itself (no thread waits at synchronization points, which a
busy machine stretches), the most comparable figure on a shared machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from posrag.bench.conditions import config_from_options
from posrag.bench.data import load_records, packaged_dataset
from posrag.bench.runner import LitmBenchmark
from posrag.models import load_causal_lm

COSTS = {"latency_s", "peak_memory_mb", "memory_delta_mb"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=1, help="The first N questions of the shipped set.")
    parser.add_argument("--positions", default="1,10,20")
    parser.add_argument("--conditions", default="baseline,steer-attention,hybrid,control-attention")
    parser.add_argument("--regimes", default="oracle")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own choice).")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    started = time.perf_counter()

    lm = load_causal_lm(progress=False)
    path = Path(packaged_dataset())
    everything = load_records(path)
    records = everything[: args.limit]
    pool = [doc for record in everything for doc in record.documents]

    def run(reuse: bool):
        config = config_from_options(
            positions=args.positions, conditions=args.conditions, regimes=args.regimes, reuse_prefix=reuse
        )
        bench = LitmBenchmark.from_model(lm.model, lm.tokenizer, config, model_name=lm.name)
        marks: list[float] = []
        warm_up = bench._warm_up

        def timed_warm_up(record) -> None:  # CPU time counts from the end of the run's untimed warm-up
            warm_up(record)
            marks.append(time.process_time())

        bench._warm_up = timed_warm_up  # type: ignore[method-assign]
        result = bench.run(records, progress=False, keep_records=True, pool=pool)
        return result, time.process_time() - marks[0]

    wall: dict[bool, list[float]] = {True: [], False: []}
    cpu: dict[bool, list[float]] = {True: [], False: []}
    trials: dict[bool, list[list[dict]]] = {True: [], False: []}
    counts: dict[str, int] = {}
    for round_ in range(args.rounds):
        for reuse in (True, False) if round_ % 2 == 0 else (False, True):
            result, seconds = run(reuse)
            wall[reuse].append(result.timing["wall_s"])
            cpu[reuse].append(seconds)
            trials[reuse].append(
                [{k: v for k, v in dataclasses.asdict(t).items() if k not in COSTS} for t in result.records]
            )
            if reuse:
                counts = {k: result.timing[k] for k in ("generations", "prefix_passes", "prefix_reuses")}
        print(f"round {round_ + 1}/{args.rounds} done ({time.perf_counter() - started:.0f} s)", flush=True)

    med_wall = {k: statistics.median(v) for k, v in wall.items()}
    med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
    same = all(t == trials[False][0] for t in trials[True] + trials[False])
    n_trials = len(trials[True][0])
    print()
    print(f"date: {datetime.date.today().isoformat()}; model: {lm.name} ({lm.source}), {lm.model.dtype}")
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPU cores visible, torch {torch.__version__} with "
        f"{torch.get_num_threads()} threads; questions: {len(records)}; positions {args.positions}; conditions "
        f"{args.conditions}; regimes {args.regimes}; rounds: {args.rounds} (medians)"
    )
    print(
        f"{n_trials} trials, {counts['generations']} distinct generations; with reuse: "
        f"{counts['prefix_passes']} prefix passes, {counts['prefix_reuses']} reuses"
    )
    print()
    print("| | run wall-clock (s) | process CPU (s) |")
    print("|---|---:|---:|")
    print(f"| without reuse | {med_wall[False]:.1f} | {med_cpu[False]:.1f} |")
    print(f"| with reuse | {med_wall[True]:.1f} | {med_cpu[True]:.1f} |")
    print(f"| speed-up | {med_wall[False] / med_wall[True]:.2f}x | {med_cpu[False] / med_cpu[True]:.2f}x |")
    print()
    print(f"every trial identical with and without reuse (all rounds): {'yes' if same else 'NO'}")
    print(f"total benchmark time: {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
