"""The lost-in-the-middle benchmark as it was published and as it runs now, side by side, with identical trials.

``posrag bench litm`` (the published 10-condition command of ``docs/litm.md``, its steering settings written
out) on the first ``--limit`` questions, run as separate commands in alternating order for ``--rounds``
rounds:

- **as published**: one process, torch's default threads, every prompt run whole (``--no-reuse-prefix``);
- **now**: ``--jobs J`` worker processes of one thread each (default: one per core) with prefix reuse.

It prints the wall-clock seconds of each command (model loading included: the command as a user runs it),
the median speed-up, and whether every trial (prediction, correctness, new tokens, gold rank: all but
latency and memory) is identical between the two. Run it on an otherwise idle machine.

    python benchmarks/litm_speed.py [--limit 4] [--rounds 1] [--jobs 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from posrag.bench.shards import read_result

CONDITIONS = (
    "baseline,recency,graduated,sandwich,long_context,none,steer-activation,steer-attention,hybrid,control-attention"
)
#: The published run's steering settings (the defaults have since changed to the calibrated ones).
STEERING = '{"no_steer_above": 0.9, "position_bias": "recency", "attention_bias": 3.0, "attention_layers": "all"}'
COSTS = {"latency_s", "peak_memory_mb", "memory_delta_mb"}


def run(args: list[str], out: Path) -> tuple[float, list[dict]]:
    command = [sys.executable, "-m", "posrag.cli.main", "bench", "litm", *args, "--json", str(out), "--no-progress"]
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seconds = time.perf_counter() - started
    records = read_result(out).records  # from the JSON, or the --records file it names
    return seconds, [{k: v for k, v in r.to_dict().items() if k not in COSTS} for r in records]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=4, help="The first N questions of the shipped set.")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=len(os.sched_getaffinity(0)))
    args = parser.parse_args()
    common = ["--limit", str(args.limit), "--conditions", CONDITIONS, "--hybrid-strategy", "auto"]
    common += ["--steering", STEERING]
    settings = {
        "as published": [*common, "--no-reuse-prefix", "--records", "{dir}/r.jsonl"],
        "now": [*common, "--jobs", str(args.jobs)],
    }
    seconds: dict[str, list[float]] = {name: [] for name in settings}
    trials: dict[str, list[list[dict]]] = {name: [] for name in settings}
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.rounds):
            names = list(settings) if round_ % 2 == 0 else list(reversed(settings))
            for name in names:
                extra = [a.replace("{dir}", tmp) for a in settings[name]]
                took, records = run(extra, Path(tmp) / "r.json")
                seconds[name].append(took)
                trials[name].append(records)
                print(f"round {round_ + 1}: {name}: {took:.0f} s", flush=True)
    old, new = (statistics.median(seconds[n]) for n in settings)
    same = all(t == trials["as published"][0] for runs in trials.values() for t in runs)
    print()
    print(f"{args.limit} questions, {len(trials['now'][0])} trials, {args.rounds} round(s), {os.cpu_count()} cores")
    print("| | command wall-clock (s, median) |")
    print("|---|---:|")
    print(f"| as published (1 process, --no-reuse-prefix) | {old:.0f} |")
    print(f"| now (--jobs {args.jobs}, prefix reuse) | {new:.0f} |")
    print(f"| speed-up | {old / new:.2f}x |")
    print(f"every trial identical: {'yes' if same else 'NO'}")


if __name__ == "__main__":
    main()
