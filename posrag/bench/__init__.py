"""Benchmarks: the "Lost in the Middle" position benchmark and position-bias profiling.

* :mod:`~posrag.bench.data`: the paper's record format, answer scoring, moving the gold document.
* :mod:`~posrag.bench.synthetic`: an offline, seeded data set in that format (shipped: ``litm-synthetic-20``).
* :mod:`~posrag.bench.nq`: NQ-open with mined distractors, its calibration/evaluation split, retriever recall.
* :mod:`~posrag.bench.litm`: the benchmark (:func:`~posrag.bench.litm.run_litm`), split into
  :mod:`~posrag.bench.conditions` (conditions, regimes, :class:`LitmConfig`), :mod:`~posrag.bench.runner`
  (:class:`LitmBenchmark`), :mod:`~posrag.bench.results` (result types, target checks) and
  :mod:`~posrag.bench.report` (environment, tables, output files), :mod:`~posrag.bench.variant` (a trial's prompt
  as the model reads it, chat template or not), :mod:`~posrag.bench.summary` (statistics from trials) and
  :mod:`~posrag.bench.shards` (``--shard i/N``, merging shards); ``litm`` re-exports them all.
* :mod:`~posrag.bench.stats`, :mod:`~posrag.bench.measure`, :mod:`~posrag.bench.plot`: intervals, cost, plot.
* :mod:`~posrag.bench.profile`: :func:`~posrag.bench.profile.profile_bias` measures a model's position-bias
  profile and hands back a :class:`posrag.profiles.BiasProfile`. The profile type, its storage, the shipped
  profiles and ``position_bias="auto"`` resolution live in the core (:mod:`posrag.profiles`, :mod:`posrag.bias`).
"""

from posrag.bench.data import (
    LitmDocument,
    LitmRecord,
    fit_documents,
    is_correct,
    load_records,
    normalize_answer,
    packaged_dataset,
)
from posrag.bench.litm import (
    CONDITIONS,
    REGIMES,
    ConditionResult,
    LitmBenchmark,
    LitmConfig,
    LitmResult,
    PositionAccuracy,
    Shard,
    TargetCheck,
    TrialRecord,
    evaluate_targets,
    merge_results,
)
from posrag.bench.plot import plot_accuracy
from posrag.bench.profile import profile_bias
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
    "TargetCheck",
    "TrialRecord",
    "evaluate_targets",
    "fit_documents",
    "is_correct",
    "load_records",
    "make_synthetic_records",
    "merge_results",
    "normalize_answer",
    "packaged_dataset",
    "plot_accuracy",
    "profile_bias",
    "wilson_interval",
    "write_jsonl",
]
