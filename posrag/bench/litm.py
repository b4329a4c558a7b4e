"""The "Lost in the Middle" benchmark: accuracy by gold position for every ordering and steering condition.

The setting of Liu et al. (2023): multi-document QA, the gold document moved through the requested positions
of the *given* context (the distractors keep their order), accuracy = any normalized gold answer occurs in
the normalized first line of the greedy output.

Conditions (what the model gets for one question with the gold document at one position):

``baseline``              the documents as given, plain generation.
``recency`` … ``none``    each reorder strategy of :mod:`posrag.ordering`, over the retriever's scores.
``steer-activation``      the given order, activation steering toward the regime's relevant document(s).
``steer-attention``       the same with attention steering.
``hybrid``                reorder (``hybrid_strategy``) + steering (``hybrid_mechanism``), as users run it.
``control-activation``    steering aimed at a distractor instead (seeded per question and position), to
``control-attention``     measure the harm of steering the wrong document.

Every document is scored by posrag's FAISS retriever (cosine similarity of the question and the document,
over each question's own documents); every ordering uses those scores, never ``isgold`` (an oracle ordering
would put the gold document in the best slot by construction and measure nothing). The regimes differ in
what steering aims at:

``oracle``     the gold document. Measures the mechanisms themselves.
``retrieval``  the ``steer_top_k`` best scored documents; ``isgold`` is never consulted. What users get.

Conditions without steering (baseline, reorder strategies) are the same in both regimes and are reported
under each (computed once). Controls aim at a seeded random document that is neither gold nor targeted.

Identical inputs give identical greedy outputs, so each distinct (prompt, steering plan) is generated once
and reused: a reorder strategy puts the documents in the same order whatever the gold position was, ``none``
is the baseline, ``graduated`` is ``recency``, and the baseline is shared by both regimes. Conditions run
side by side per question and position, so machine load drifts over all of them alike.

Modules: :mod:`~posrag.bench.conditions` (what to run), :mod:`~posrag.bench.runner` (:class:`LitmBenchmark`),
:mod:`~posrag.bench.results` (what was measured, target checks), :mod:`~posrag.bench.report` (environment,
tables, output files), :mod:`~posrag.bench.shards` (``--shard i/N`` and merging the shards). This module
runs a whole benchmark from a data file and a model name (:func:`run_litm`, what ``posrag bench litm``
calls) and keeps every old import path.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from posrag._files import sha256_file
from posrag.bench.conditions import (
    CONDITIONS,
    DEFAULT_BENCH_GENERATION,
    REGIMES,
    SINGLE_CONDITIONS,
    STEER_MECHANISMS,
    Condition,
    LitmConfig,
    Regime,
    config_from_options,
    resolve_condition,
    steering_overrides,
)
from posrag.bench.report import environment, format_tables, write_outputs
from posrag.bench.results import (
    SCHEMA,
    SCHEMA_VERSION,
    ConditionResult,
    LitmResult,
    PositionAccuracy,
    TargetCheck,
    TrialRecord,
    evaluate_targets,
)
from posrag.bench.runner import LitmBenchmark
from posrag.bench.shards import Shard, merge_results, read_result


def run_litm(
    config: LitmConfig,
    *,
    data: str | Path | None = None,
    model: str | None = None,
    limit: int | None = None,
    progress: bool = True,
    keep_records: bool = False,
    command: str | None = None,
    shard: Shard | None = None,
    on_trial: Callable[[TrialRecord], None] | None = None,
    quantize: str | None = None,
) -> LitmResult:
    """Load the records (``data``, default: the shipped synthetic set) and the model, and run ``config``.

    ``limit``: only the first N questions (missing distractors are still drawn from the whole file). The
    result's ``data`` records the file, its SHA-256, the limit and ``command``; its ``timing`` adds
    ``total_s_with_model_load``. ``shard``: run only that shard of the (limited) records
    (:mod:`posrag.bench.shards`; its trial records are kept for :func:`merge_results`). ``on_trial``: called
    with every trial as it is recorded. ``quantize``: passed to
    :func:`~posrag.models.load_causal_lm` (``"int8"``: dynamic int8 linear layers) and recorded in the settings.
    """
    from posrag.bench.data import load_records, packaged_dataset
    from posrag.models import load_causal_lm

    path = Path(data) if data is not None else Path(packaged_dataset())
    everything = load_records(path)
    records = everything[:limit] if limit else everything
    started = time.perf_counter()
    lm = load_causal_lm(model, progress=progress, quantize=quantize)
    bench = LitmBenchmark(lm.model, lm.tokenizer, config, model_name=lm.name)
    result = bench.run(
        records,
        progress=progress,
        keep_records=keep_records,
        pool=[doc for record in everything for doc in record.documents],
        shard=shard,
        on_trial=on_trial,
        data_info={"path": str(path), "sha256": sha256_file(path), "limit": limit, "command": command},
    )
    return replace(
        result,
        settings={**result.settings, "quantize": quantize},
        timing={**result.timing, "total_s_with_model_load": time.perf_counter() - started},
    )


__all__ = [
    "CONDITIONS",
    "DEFAULT_BENCH_GENERATION",
    "REGIMES",
    "SCHEMA",
    "SCHEMA_VERSION",
    "SINGLE_CONDITIONS",
    "STEER_MECHANISMS",
    "Condition",
    "ConditionResult",
    "LitmBenchmark",
    "LitmConfig",
    "LitmResult",
    "PositionAccuracy",
    "Regime",
    "Shard",
    "TargetCheck",
    "TrialRecord",
    "config_from_options",
    "environment",
    "evaluate_targets",
    "format_tables",
    "merge_results",
    "read_result",
    "resolve_condition",
    "run_litm",
    "steering_overrides",
    "write_outputs",
]
