"""Measuring a model's position-bias profile: a short synthetic "Lost in the Middle" run, classified.

:func:`profile_bias` runs the benchmark (the gold document moved through the positions; baseline only, no
ordering, no steering) and hands back a :class:`posrag.profiles.BiasProfile`. Everything else about profiles
(the type, the classification, storage, the shipped profiles, ``position_bias`` resolution) lives in the core,
in :mod:`posrag.profiles` and :mod:`posrag.bias`; it is re-exported here so the old import paths keep working.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from posrag.bench.data import parse_record
from posrag.bench.litm import LitmBenchmark, LitmConfig
from posrag.bench.synthetic import make_synthetic_records
from posrag.bias import DEFAULT_TOLERANCE
from posrag.profiles import BiasProfile


def profile_bias(
    model: Any,
    tokenizer: Any,
    *,
    model_name: str | None = None,
    questions: int = 20,
    positions: Sequence[int] = (1, 5, 10, 15, 20),
    num_docs: int = 20,
    seed: int = 1,
    tolerance: float = DEFAULT_TOLERANCE,
    progress: bool = True,
) -> BiasProfile:
    """Probe ``model`` with a short synthetic run (baseline only) and classify its position bias.

    The probe questions are generated with ``seed`` (1 by default, so they differ from the packaged
    benchmark set, which uses seed 0).
    """
    records = [
        parse_record(r, f"synthetic:{i}") for i, r in enumerate(make_synthetic_records(questions, num_docs, seed=seed))
    ]
    config = LitmConfig(positions=tuple(positions), conditions=("baseline",), regimes=("oracle",), num_docs=num_docs)
    bench = LitmBenchmark(model, tokenizer, config, model_name=model_name)
    result = bench.run(records, progress=progress).result("baseline", "oracle")
    return BiasProfile.measured(
        bench.model_name,
        [p.position for p in result.positions],
        num_docs,
        [p.accuracy for p in result.positions],
        questions=questions,
        tolerance=tolerance,
        ci95=[(p.ci_low, p.ci_high) for p in result.positions],
    )


__all__ = ["profile_bias"]
