"""Benchmarks: the "Lost in the Middle" position benchmark and position-bias profiling.

* :mod:`~posrag.bench.data`: the paper's record format, answer scoring, moving the gold document.
* :mod:`~posrag.bench.synthetic`: an offline, seeded data set in that format (shipped: ``litm-synthetic-20``).
* :mod:`~posrag.bench.nq`: NQ-open with mined distractors, its calibration/evaluation split, retriever recall.
* :mod:`~posrag.bench.conditions`: what a run measures (conditions, regimes, :class:`LitmConfig`).
* :mod:`~posrag.bench.runner`: :class:`LitmBenchmark` runs it on a loaded model; :func:`run_litm` from a data file
  and a model name (``posrag bench litm``); :func:`profile_bias` measures a model's position-bias profile and hands
  back a :class:`posrag.profiles.BiasProfile` (``posrag profile``).
* :mod:`~posrag.bench.results` (result types), :mod:`~posrag.bench.summary` (statistics from trials),
  :mod:`~posrag.bench.paired` (paired differences to the baseline), :mod:`~posrag.bench.report` (environment,
  tables, output files), :mod:`~posrag.bench.variant` (a trial's prompt as the model reads it).
* :mod:`~posrag.bench.shards` (``--shard i/N``, merging shards), :mod:`~posrag.bench.parallel` (``--jobs N``).
* :mod:`~posrag.bench.stats`, :mod:`~posrag.bench.measure`, :mod:`~posrag.bench.plot`: intervals, cost, plot.
* :mod:`~posrag.bench.calibrate`: ``posrag calibrate``.

The profile type, its storage and ``position_bias="auto"`` live in the core (:mod:`posrag.profiles`,
:mod:`posrag.bias`).
"""

from posrag.bench.conditions import CONDITIONS, REGIMES, LitmConfig
from posrag.bench.data import (
    LitmDocument,
    LitmRecord,
    fit_documents,
    is_correct,
    load_records,
    normalize_answer,
    packaged_dataset,
)
from posrag.bench.plot import plot_accuracy
from posrag.bench.results import ConditionResult, LitmResult, PositionAccuracy, TrialRecord
from posrag.bench.runner import LitmBenchmark, profile_bias, run_litm
from posrag.bench.shards import Shard, merge_results
from posrag.bench.stats import wilson_interval
from posrag.bench.synthetic import make_synthetic_records, write_jsonl

__all__ = [
    "CONDITIONS",
    "REGIMES",
    "ConditionResult",
    "LitmBenchmark",
    "LitmConfig",
    "LitmDocument",
    "LitmRecord",
    "LitmResult",
    "PositionAccuracy",
    "Shard",
    "TrialRecord",
    "fit_documents",
    "is_correct",
    "load_records",
    "make_synthetic_records",
    "merge_results",
    "normalize_answer",
    "packaged_dataset",
    "plot_accuracy",
    "profile_bias",
    "run_litm",
    "wilson_interval",
    "write_jsonl",
]
