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
"""

from __future__ import annotations

import hashlib
import math
import platform
import random
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any, Literal

from posrag.bench.data import LitmRecord, first_line, is_correct
from posrag.bench.measure import measure, memory_method
from posrag.bench.stats import mean, wilson_interval
from posrag.documents import PositionInfo, ScoredDocument
from posrag.errors import ConfigurationError
from posrag.generation import GenerationConfig, encode_prompt, generate_from_inputs
from posrag.ordering import STRATEGIES, Reorderer, rank
from posrag.prompts import DEFAULT_TEMPLATE, PromptTemplate, RAGPrompt, build_prompt

SCHEMA = "posrag.bench.litm"
SCHEMA_VERSION = 1

Regime = Literal["oracle", "retrieval"]
REGIMES: tuple[str, ...] = ("oracle", "retrieval")
STEER_MECHANISMS: tuple[str, ...] = ("activation", "attention")
CONDITIONS: tuple[str, ...] = (
    "baseline",
    *STRATEGIES,
    "steer-activation",
    "steer-attention",
    "hybrid",
    "control-activation",
    "control-attention",
)
#: Conditions whose accuracy is compared in the targets ("single" = one technique, no control).
SINGLE_CONDITIONS: tuple[str, ...] = ("baseline", *STRATEGIES, "steer-activation", "steer-attention")

#: Greedy, short: the answer is a few words and only the first line is scored. 20 tokens hold a full
#: restatement of any gold sentence of the shipped set (the longest is 16 tokens for Gemma 3).
DEFAULT_BENCH_GENERATION = GenerationConfig(max_new_tokens=20, stop=("\n",), strip_leading=True)


# ----------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class Condition:
    """One benchmark condition: an optional reorder strategy, an optional steering mechanism, and its aim."""

    name: str
    strategy: str | None = None
    mechanism: str | None = None
    aim: Literal["relevant", "distractor"] = "relevant"

    @property
    def steered(self) -> bool:
        return self.mechanism is not None

    @property
    def description(self) -> str:
        order = f"reorder '{self.strategy}'" if self.strategy else "given order"
        if not self.steered:
            return f"{order}, no steering"
        aim = "a distractor" if self.aim == "distractor" else "the relevant document(s)"
        return f"{order}, {self.mechanism} steering aimed at {aim}"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "strategy": self.strategy, "mechanism": self.mechanism, "aim": self.aim}


def resolve_condition(name: str, *, hybrid_strategy: str, hybrid_mechanism: str) -> Condition:
    """The :class:`Condition` a condition name stands for."""
    if name == "baseline":
        return Condition(name)
    if name in STRATEGIES:
        return Condition(name, strategy=name)
    if name.startswith("steer-") and name[6:] in STEER_MECHANISMS:
        return Condition(name, mechanism=name[6:])
    if name.startswith("control-") and name[8:] in STEER_MECHANISMS:
        return Condition(name, mechanism=name[8:], aim="distractor")
    if name == "hybrid":
        return Condition(name, strategy=hybrid_strategy, mechanism=hybrid_mechanism)
    raise ConfigurationError(f"Unknown condition {name!r}; choose from {', '.join(CONDITIONS)}.")


@dataclass(frozen=True)
class LitmConfig:
    """What to run. ``positions`` are 1-based (as in the paper); ``num_docs=None`` uses the records' own
    document count, at least the largest position (records with fewer documents get distractors drawn from
    the others, see :func:`posrag.bench.data.fit_documents`).

    ``steering``: :class:`~posrag.steering.SteeringConfig` keyword overrides for every steered condition
    (the condition sets ``mechanism``; per-mechanism overrides go under ``"activation"`` / ``"attention"`` /
    ``"both"``, see :func:`steering_overrides`). ``hybrid_strategy`` / ``hybrid_mechanism``: ``None`` takes
    what that steering configuration pairs by itself (its ``position_bias`` preset's reorder strategy, its
    mechanism).
    """

    positions: tuple[int, ...] = (1, 5, 10, 15, 20)
    conditions: tuple[str, ...] = CONDITIONS
    regimes: tuple[str, ...] = REGIMES
    num_docs: int | None = None
    generation: GenerationConfig = DEFAULT_BENCH_GENERATION
    steering: Mapping[str, Any] = field(default_factory=dict)
    hybrid_strategy: str | None = None
    hybrid_mechanism: str | None = None
    steer_top_k: int = 1
    seed: int = 0
    template: PromptTemplate = DEFAULT_TEMPLATE

    def __post_init__(self) -> None:
        positions = tuple(int(p) for p in self.positions)
        if not positions or any(p < 1 for p in positions) or len(set(positions)) != len(positions):
            raise ConfigurationError(
                f"positions must be distinct 1-based positions (e.g. 1,5,10,15,20); got {self.positions}."
            )
        object.__setattr__(self, "positions", tuple(sorted(positions)))
        conditions = tuple(dict.fromkeys(self.conditions))
        unknown = [c for c in conditions if c not in CONDITIONS]
        if unknown:
            raise ConfigurationError(f"Unknown condition(s) {unknown}; choose from {', '.join(CONDITIONS)}.")
        if "baseline" not in conditions:  # every comparison is against it
            conditions = ("baseline", *conditions)
        object.__setattr__(self, "conditions", conditions)
        regimes = tuple(dict.fromkeys(self.regimes))
        if not regimes or any(r not in REGIMES for r in regimes):
            raise ConfigurationError(f"regimes must be a non-empty subset of {REGIMES}; got {self.regimes}.")
        object.__setattr__(self, "regimes", regimes)
        if self.num_docs is not None and self.num_docs < max(positions):
            raise ConfigurationError(
                f"num_docs={self.num_docs} is smaller than the largest position {max(positions)}; "
                "use more documents or smaller positions."
            )
        if self.steer_top_k < 1:
            raise ConfigurationError(f"steer_top_k must be >= 1, got {self.steer_top_k}.")
        if self.hybrid_strategy is not None and self.hybrid_strategy not in (*STRATEGIES, "auto"):
            raise ConfigurationError(
                f"hybrid_strategy={self.hybrid_strategy!r} is not one of {', '.join(STRATEGIES)} or 'auto' (the "
                "model's saved `posrag profile`)."
            )
        if self.hybrid_mechanism is not None and self.hybrid_mechanism not in (*STEER_MECHANISMS, "both"):
            raise ConfigurationError(
                f"hybrid_mechanism={self.hybrid_mechanism!r} must be 'activation', 'attention' or 'both'."
            )
        object.__setattr__(self, "steering", dict(self.steering))

    @property
    def steered(self) -> bool:
        return any(c.startswith(("steer-", "control-")) or c == "hybrid" for c in self.conditions)

    def to_dict(self) -> dict[str, Any]:
        return {
            "positions": list(self.positions),
            "conditions": list(self.conditions),
            "regimes": list(self.regimes),
            "num_docs": self.num_docs,
            "generation": self.generation.to_dict(),
            "steering_overrides": dict(self.steering),
            "hybrid_strategy": self.hybrid_strategy,
            "hybrid_mechanism": self.hybrid_mechanism,
            "steer_top_k": self.steer_top_k,
            "seed": self.seed,
        }


def steering_overrides(overrides: Mapping[str, Any], mechanism: str | None) -> dict[str, Any]:
    """The SteeringConfig keywords for ``mechanism``: shared overrides, then that mechanism's own.

    ``overrides`` may hold per-mechanism dicts under ``"activation"``, ``"attention"`` or ``"both"``, e.g.
    ``{"curve": "flat", "activation": {"base_intensity": 0.05}}``.
    """
    shared = {k: v for k, v in overrides.items() if k not in (*STEER_MECHANISMS, "both")}
    own = overrides.get(mechanism, {}) if mechanism is not None else {}
    if not isinstance(own, Mapping):
        raise ConfigurationError(
            f"steering[{mechanism!r}] must be a dict of SteeringConfig fields for it; got {own!r}."
        )
    return {**shared, **own, **({"mechanism": mechanism} if mechanism is not None else {})}


# ----------------------------------------------------------------------------- results


@dataclass(frozen=True)
class TrialRecord:
    """One question at one gold position under one condition and regime."""

    question_id: str
    position: int
    condition: str
    regime: str
    correct: bool
    prediction: str
    gold_prompt_position: int  # 1-based, where the gold document ended up in the prompt
    latency_s: float
    new_tokens: int
    peak_memory_mb: float
    memory_delta_mb: float
    reused: bool  # the same prompt and steering plan had been generated already (its output and cost reused)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class PositionAccuracy:
    """Accuracy at one gold position with its 95 % Wilson interval."""

    position: int
    relative_position: float
    n: int
    correct: int
    ci_low: float
    ci_high: float

    @property
    def accuracy(self) -> float:
        return self.correct / self.n

    def to_dict(self) -> dict[str, Any]:
        return {
            "position": self.position,
            "relative_position": self.relative_position,
            "n": self.n,
            "correct": self.correct,
            "accuracy": self.accuracy,
            "ci95": [self.ci_low, self.ci_high],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PositionAccuracy:
        low, high = data["ci95"]
        return cls(
            int(data["position"]),
            float(data["relative_position"]),
            int(data["n"]),
            int(data["correct"]),
            float(low),
            float(high),
        )


@dataclass(frozen=True)
class ConditionResult:
    """Accuracy by position, its summary, and the cost of one condition in one regime."""

    condition: str
    regime: str
    description: str
    positions: tuple[PositionAccuracy, ...]
    mean_latency_s: float
    added_latency_s: float | None
    mean_new_tokens: float
    generations: int
    peak_memory_mb: float
    peak_memory_delta_mb: float
    steering: Mapping[str, Any] | None = None
    added_latency_same_length_s: float | None = None
    same_length_pairs: int = 0

    @property
    def accuracies(self) -> list[float]:
        return [p.accuracy for p in self.positions]

    @property
    def mean_accuracy(self) -> float:
        return mean(self.accuracies)

    @property
    def worst(self) -> PositionAccuracy:
        return min(self.positions, key=lambda p: (p.accuracy, p.position))

    @property
    def best(self) -> PositionAccuracy:
        return max(self.positions, key=lambda p: (p.accuracy, -p.position))

    def at(self, position: int) -> PositionAccuracy:
        for p in self.positions:
            if p.position == position:
                return p
        raise KeyError(position)

    def to_dict(self) -> dict[str, Any]:
        return {
            "condition": self.condition,
            "regime": self.regime,
            "description": self.description,
            "positions": [p.to_dict() for p in self.positions],
            "mean_accuracy": self.mean_accuracy,
            "worst_accuracy": self.worst.accuracy,
            "worst_position": self.worst.position,
            "best_accuracy": self.best.accuracy,
            "best_position": self.best.position,
            "mean_latency_s": self.mean_latency_s,
            "added_latency_s": self.added_latency_s,
            "added_latency_same_length_s": self.added_latency_same_length_s,
            "same_length_pairs": self.same_length_pairs,
            "mean_new_tokens": self.mean_new_tokens,
            "generations": self.generations,
            "peak_memory_mb": self.peak_memory_mb,
            "peak_memory_delta_mb": self.peak_memory_delta_mb,
            "steering": dict(self.steering) if self.steering is not None else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ConditionResult:
        return cls(
            condition=data["condition"],
            regime=data["regime"],
            description=data["description"],
            positions=tuple(PositionAccuracy.from_dict(p) for p in data["positions"]),
            mean_latency_s=float(data["mean_latency_s"]),
            added_latency_s=None if data["added_latency_s"] is None else float(data["added_latency_s"]),
            mean_new_tokens=float(data["mean_new_tokens"]),
            generations=int(data["generations"]),
            peak_memory_mb=float(data["peak_memory_mb"]),
            peak_memory_delta_mb=float(data["peak_memory_delta_mb"]),
            steering=data.get("steering"),
            added_latency_same_length_s=data.get("added_latency_same_length_s"),
            same_length_pairs=int(data.get("same_length_pairs", 0)),
        )


@dataclass(frozen=True)
class TargetCheck:
    """One of the issue's targets, evaluated on a result: ``met`` is ``None`` where it cannot be judged."""

    name: str
    met: bool | None
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "met": self.met, "detail": self.detail}


@dataclass(frozen=True)
class LitmResult:
    """A whole benchmark run: settings, per-condition results, target checks, environment and timing."""

    model: str
    embedder: str | None
    data: Mapping[str, Any]
    settings: Mapping[str, Any]
    retrieval: Mapping[str, Any]
    results: tuple[ConditionResult, ...]
    environment: Mapping[str, Any]
    timing: Mapping[str, Any]
    records: tuple[TrialRecord, ...] = ()

    @property
    def positions(self) -> tuple[int, ...]:
        return tuple(self.settings["positions"])

    @property
    def regimes(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(r.regime for r in self.results))

    @property
    def chance_accuracy(self) -> float:
        return 1.0 / int(self.data["num_docs"])

    def get(self, condition: str, regime: str = "oracle") -> ConditionResult | None:
        return next((r for r in self.results if r.condition == condition and r.regime == regime), None)

    def result(self, condition: str, regime: str = "oracle") -> ConditionResult:
        found = self.get(condition, regime)
        if found is None:
            raise ConfigurationError(
                f"No result for condition {condition!r} in regime {regime!r}; this run has "
                f"{sorted({(r.condition, r.regime) for r in self.results})}."
            )
        return found

    def checks(self) -> list[TargetCheck]:
        return evaluate_targets(self)

    def to_dict(self) -> dict[str, Any]:
        out = {
            "schema": SCHEMA,
            "schema_version": SCHEMA_VERSION,
            "model": self.model,
            "embedder": self.embedder,
            "data": dict(self.data),
            "settings": dict(self.settings),
            "retrieval": dict(self.retrieval),
            "results": [r.to_dict() for r in self.results],
            "targets": [c.to_dict() for c in self.checks()],
            "environment": dict(self.environment),
            "timing": dict(self.timing),
        }
        if self.records:
            out["records"] = [r.to_dict() for r in self.records]
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LitmResult:
        if data.get("schema") != SCHEMA:
            raise ConfigurationError(f"Not a posrag LITM benchmark result (schema {data.get('schema')!r}).")
        if int(data.get("schema_version", 0)) > SCHEMA_VERSION:
            raise ConfigurationError(
                f"Result schema version {data['schema_version']} is newer than this posrag reads "
                f"({SCHEMA_VERSION}); upgrade posrag."
            )
        return cls(
            model=data["model"],
            embedder=data.get("embedder"),
            data=data["data"],
            settings=data["settings"],
            retrieval=data.get("retrieval", {}),
            results=tuple(ConditionResult.from_dict(r) for r in data["results"]),
            environment=data.get("environment", {}),
            timing=data.get("timing", {}),
            records=tuple(TrialRecord(**r) for r in data.get("records", ())),
        )

    def table(self) -> str:
        """Markdown tables, one per regime: accuracy (95 % CI) by position, mean, worst, cost."""
        return format_tables(self)


# ----------------------------------------------------------------------------- the runner


@dataclass(frozen=True)
class _Generation:
    text: str
    new_tokens: int
    seconds: float
    peak_mb: float
    delta_mb: float


@dataclass(frozen=True)
class _Variant:
    """A prompt and what to steer in it, ready to generate."""

    prompt: RAGPrompt
    gold_position: int
    targets: tuple[Any, ...]


class LitmBenchmark:
    """Runs the benchmark on one model: ``LitmBenchmark(model, tokenizer, config).run(records)``.

    ``embedder``: the sentence-transformer of the retrieval regime (``None``: the packaged default, loaded
    only if the retrieval regime runs). ``model_name`` is recorded in the result.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        config: LitmConfig | None = None,
        *,
        embedder: Any = None,
        model_name: str | None = None,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.config = config or LitmConfig()
        self.model_name = model_name or str(getattr(model.config, "name_or_path", "") or type(model).__name__)
        self._embedder = embedder
        self._steering_configs: dict[str, Any] = {}
        self._generators: dict[str, Any] = {}
        hybrid_strategy, hybrid_mechanism = self._hybrid_defaults()
        self.conditions = tuple(
            resolve_condition(name, hybrid_strategy=hybrid_strategy, hybrid_mechanism=hybrid_mechanism)
            for name in self.config.conditions
        )
        # strategy "auto" follows the model's saved profile (strategy and long_context's best end).
        self._reorderers = {
            c.strategy: Reorderer(c.strategy, model_name=self.model_name)  # type: ignore[arg-type]
            for c in self.conditions
            if c.strategy is not None
        }
        for condition in self.conditions:
            if condition.mechanism is not None and condition.mechanism not in self._generators:
                self._generators[condition.mechanism] = self._make_generator(condition.mechanism)

    def _hybrid_defaults(self) -> tuple[str, str]:
        strategy, mechanism = self.config.hybrid_strategy, self.config.hybrid_mechanism
        if (strategy is None or mechanism is None) and "hybrid" in self.config.conditions:
            from posrag.steering import SteeringConfig

            base = SteeringConfig(**steering_overrides(self.config.steering, None))
            strategy = strategy or ("auto" if base.needs_profile else base.reorder_strategy)
            mechanism = mechanism or base.mechanism
        return strategy or "recency", mechanism or "attention"

    def _make_generator(self, mechanism: str) -> Any:
        from posrag.steering import SteeredGenerator, SteeringConfig

        config = SteeringConfig(**steering_overrides(self.config.steering, mechanism))
        self._steering_configs[mechanism] = config
        generator = SteeredGenerator(self.model, self.tokenizer, config, model_name=self.model_name)
        self._steering_configs[mechanism] = generator.config  # position_bias="auto" resolved
        return generator

    @property
    def embedder(self) -> Any:
        if self._embedder is None:
            from posrag.models import load_embedder

            self._embedder = load_embedder()
        return self._embedder

    # ------------------------------------------------------------------------- pieces

    def retrieval_scores(self, record: LitmRecord) -> list[float]:
        """Cosine similarity of the question to each of the record's documents, from posrag's FAISS index."""
        from posrag.retrieval import DocumentIndex

        ids = [str(i) for i in range(len(record.documents))]
        index = DocumentIndex.from_texts(
            [doc.text for doc in record.documents], ids=ids, embedder=self.embedder, show_progress_bar=False
        )
        by_id = {doc.id: float(doc.score) for doc in index.search(record.question, k=len(ids)) if doc.score is not None}
        return [by_id[i] for i in ids]

    def variant(
        self,
        record: LitmRecord,
        order: Sequence[int],
        condition: Condition,
        regime: str,
        scores: Sequence[float | None],
        position: int,
    ) -> _Variant:
        """The prompt and steering targets of one trial.

        ``order``: document indices (into ``record.documents``) with the gold moved; ``scores``: the
        retriever's score of each document (indexed like ``record.documents``). Ordering always uses these
        scores (an oracle ordering would put the gold document in the best slot by construction and measure
        nothing); the regime decides what steering aims at: the gold document (oracle) or the
        ``steer_top_k`` best scored documents (retrieval).
        """
        from posrag.steering.targets import targets_from_spans

        docs = [
            ScoredDocument(
                record.documents[i].text,
                {"title": record.documents[i].title} if record.documents[i].title else {},
                score=scores[i],
                id=str(i),
            )
            for i in order
        ]
        if condition.strategy is not None:
            docs = self._reorderers[condition.strategy](docs)
        prompt = build_prompt(record.question, docs, self.config.template)
        ids = [span.document.id for span in prompt.spans]
        gold = str(record.gold_index)
        targets: tuple[Any, ...] = ()
        if condition.steered:
            relevant = [gold] if regime == "oracle" else [str(i) for i in rank(scores)[: self.config.steer_top_k]]
            aimed = relevant
            if condition.aim == "distractor":
                others = sorted((i for i in ids if i not in relevant and i != gold), key=int)
                if not others:
                    raise ConfigurationError("A control condition needs at least one distractor to aim at.")
                rng = random.Random(f"{self.config.seed}:{record.id}:{position}")
                aimed = [rng.choice(others)]
            targets = tuple(targets_from_spans(span for span in prompt.spans if span.document.id in aimed))
        return _Variant(prompt, ids.index(gold) + 1, targets)

    def _steer_key(self, mechanism: str, targets: Sequence[Any]) -> tuple[Any, ...]:
        """What determines a steered generation besides the prompt: the mechanism and the per-target plan."""
        from posrag.steering import plan_steering

        generator = self._generators[mechanism]
        plans = plan_steering(list(targets), generator.config, generator.num_layers)
        return (
            mechanism,
            tuple((p.target.start_char, p.target.end_char, p.tier, p.multiplier, p.target.rule_type) for p in plans),
        )

    def _generate(self, variant: _Variant, mechanism: str | None) -> _Generation:
        text = variant.prompt.text
        device = getattr(self.model, "device", "cpu")
        generation = self.config.generation
        with measure(device) as cost:
            if mechanism is None:
                inputs = encode_prompt(self.tokenizer, text, self.model.device)
                output, new_tokens = generate_from_inputs(self.model, self.tokenizer, inputs, generation)
            else:
                footer = self.config.template.footer.format(question=variant.prompt.question)
                steered = self._generators[mechanism].generate(
                    text, list(variant.targets), generation, steer_from=len(text) - len(footer)
                )
                output, new_tokens = steered.text, steered.generated_tokens
        return _Generation(output, new_tokens, cost.seconds, cost.peak_mb, cost.delta_mb)

    def _warm_up(self, record: LitmRecord) -> None:
        """One untimed generation per mechanism first: memory-mapped weights page in, kernels initialize."""
        order = list(range(len(record.documents)))
        scores: list[float | None] = [1.0 if i == record.gold_index else 0.0 for i in order]
        done: set[str | None] = set()
        for condition in self.conditions:
            if condition.mechanism in done:
                continue
            done.add(condition.mechanism)
            warm = replace(condition, strategy=None, aim="relevant")
            self._generate(self.variant(record, order, warm, "oracle", scores, 1), condition.mechanism)

    # ------------------------------------------------------------------------- running

    def run(
        self,
        records: Sequence[LitmRecord],
        *,
        progress: bool = True,
        keep_records: bool = False,
        data_info: Mapping[str, Any] | None = None,
        on_trial: Callable[[TrialRecord], None] | None = None,
        pool: Sequence[Any] | None = None,
    ) -> LitmResult:
        """Run every condition in every regime at every position for each record; see the module docstring.

        ``pool``: documents to draw missing distractors from (default: those of ``records``; pass the whole
        file's when ``records`` is a subset).
        """
        from tqdm.auto import tqdm

        from posrag.bench.data import fit_documents

        if not records:
            raise ConfigurationError("No records to benchmark; pass at least one question.")
        config = self.config
        num_docs = config.num_docs or max(max(len(r.documents) for r in records), max(config.positions))
        filled = any(len(r.documents) < num_docs for r in records)
        records = fit_documents(records, num_docs, seed=config.seed, pool=pool)
        self._warm_up(records[0])
        started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
        started = time.perf_counter()
        cache: dict[tuple[Any, ...], _Generation] = {}
        trials: list[TrialRecord] = []
        gold_ranks: list[int] = []
        needs_scores = "retrieval" in config.regimes or any(c.strategy or c.steered for c in self.conditions)
        total = len(records) * len(config.positions) * len(self.conditions) * len(config.regimes)
        bar = tqdm(total=total, desc="posrag bench litm", unit="trial", disable=not progress, dynamic_ncols=True)
        with bar:
            for record in records:
                scores: list[float | None] = [None] * num_docs
                if needs_scores:
                    scores = list(self.retrieval_scores(record))
                    gold_ranks.append(rank(scores).index(record.gold_index) + 1)
                distractors = [i for i in range(num_docs) if i != record.gold_index]
                for position in config.positions:
                    order = [*distractors[: position - 1], record.gold_index, *distractors[position - 1 :]]
                    for condition in self.conditions:
                        for regime in config.regimes:
                            variant = self.variant(record, order, condition, regime, scores, position)
                            key: tuple[Any, ...] = (hashlib.sha256(variant.prompt.text.encode()).hexdigest(),)
                            if condition.mechanism is not None:
                                key += self._steer_key(condition.mechanism, variant.targets)
                            reused = key in cache
                            if not reused:
                                cache[key] = self._generate(variant, condition.mechanism)
                            generation = cache[key]
                            trial = TrialRecord(
                                question_id=record.id,
                                position=position,
                                condition=condition.name,
                                regime=regime,
                                correct=is_correct(generation.text, record.answers),
                                prediction=first_line(generation.text),
                                gold_prompt_position=variant.gold_position,
                                latency_s=generation.seconds,
                                new_tokens=generation.new_tokens,
                                peak_memory_mb=generation.peak_mb,
                                memory_delta_mb=generation.delta_mb,
                                reused=reused,
                            )
                            trials.append(trial)
                            if on_trial is not None:
                                on_trial(trial)
                            bar.update()
                            bar.set_postfix(generated=len(cache), refresh=False)
        wall = time.perf_counter() - started
        results = tuple(
            self._summarize(condition, regime, trials, num_docs)
            for regime in config.regimes
            for condition in self.conditions
        )
        retrieval: dict[str, Any] = {}
        if gold_ranks:
            retrieval = {
                "scorer": "posrag.retrieval.DocumentIndex (flat, cosine) over each question's documents",
                "gold_top1": sum(r == 1 for r in gold_ranks) / len(gold_ranks),
                f"gold_top{config.steer_top_k}": sum(r <= config.steer_top_k for r in gold_ranks) / len(gold_ranks),
                "gold_mean_rank": mean([float(r) for r in gold_ranks]),
            }
        from posrag.models import embedder_name

        return LitmResult(
            model=self.model_name,
            embedder=embedder_name(self._embedder) if self._embedder is not None else None,
            data={
                **dict(data_info or {}),
                "questions": len(records),
                "num_docs": num_docs,
                "distractors_filled": filled,
                "chance_accuracy": 1.0 / num_docs,
            },
            settings={
                **config.to_dict(),
                "conditions_resolved": [
                    {
                        **c.to_dict(),
                        "resolved_strategy": self._reorderers[c.strategy].strategy if c.strategy else None,
                        "best_at": self._reorderers[c.strategy].best_at if c.strategy else None,
                    }
                    for c in self.conditions
                ],
                "steering_configs": {m: c.to_dict() for m, c in self._steering_configs.items()},
                "metric": "any normalized gold answer is a substring of the normalized first output line",
                "ci": "95% Wilson score interval per position",
                "latency": "wall-clock seconds per generation (tokenize, steering setup, generate); added = "
                "paired difference to the baseline on the same question and position",
                "memory": memory_method(getattr(self.model, "device", "cpu")),
                "steer_from": "the question (steering acts on the question and the generated tokens)",
            },
            retrieval=retrieval,
            results=results,
            environment=environment(self.model),
            timing={
                "started_at": started_at,
                "wall_s": wall,
                "generations": len(cache),
                "trials": len(trials),
                "mean_generation_s": mean([g.seconds for g in cache.values()]),
            },
            records=tuple(trials) if keep_records else (),
        )

    def _summarize(
        self,
        condition: Condition,
        regime: str,
        trials: Sequence[TrialRecord],
        num_docs: int,
    ) -> ConditionResult:
        mine = [t for t in trials if t.condition == condition.name and t.regime == regime]
        baseline = {(t.question_id, t.position): t for t in trials if t.condition == "baseline" and t.regime == regime}
        positions = []
        for position in self.config.positions:
            at = [t for t in mine if t.position == position]
            correct = sum(t.correct for t in at)
            low, high = wilson_interval(correct, len(at))
            relative = PositionInfo(position - 1, num_docs).relative
            positions.append(PositionAccuracy(position, relative, len(at), correct, low, high))
        pairs = [(t, baseline[(t.question_id, t.position)]) for t in mine]
        paired = [t.latency_s - b.latency_s for t, b in pairs]
        # Output length changes latency as much as steering does: also pair only equally long outputs.
        same = [t.latency_s - b.latency_s for t, b in pairs if t.new_tokens == b.new_tokens and not t.reused]
        steering = self._steering_configs[condition.mechanism].to_dict() if condition.mechanism else None
        return ConditionResult(
            condition=condition.name,
            regime=regime,
            description=condition.description,
            positions=tuple(positions),
            mean_latency_s=mean([t.latency_s for t in mine]),
            added_latency_s=mean(paired) if paired else None,
            mean_new_tokens=mean([float(t.new_tokens) for t in mine]),
            generations=sum(not t.reused for t in mine),
            peak_memory_mb=max(t.peak_memory_mb for t in mine),
            peak_memory_delta_mb=max(t.memory_delta_mb for t in mine),
            steering=steering,
            added_latency_same_length_s=mean(same) if same else None,
            same_length_pairs=len(same),
        )


def environment(model: Any = None) -> dict[str, Any]:
    """Versions and hardware, recorded with every result."""
    import os

    import torch
    import transformers

    import posrag

    env: dict[str, Any] = {
        "posrag": getattr(posrag, "__version__", "unknown"),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
    }
    if model is not None:
        env["device"] = str(getattr(model, "device", "cpu"))
        env["dtype"] = str(getattr(model, "dtype", ""))
        env["attn_implementation"] = getattr(getattr(model, "config", None), "_attn_implementation", None)
    return env


# ----------------------------------------------------------------------------- reporting


def _pct(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{100 * value:.0f}"


def format_tables(result: LitmResult) -> str:
    """Markdown tables, one per regime (see :meth:`LitmResult.table`)."""
    lines: list[str] = []
    for regime in result.regimes:
        rows = [r for r in result.results if r.regime == regime]
        header = [
            "condition",
            *[f"pos {p}" for p in result.positions],
            "mean",
            "worst",
            "+latency",
            "peak Δmem",
        ]
        lines.append(f"**{regime} regime** — accuracy % (95% CI) by gold position, n={rows[0].positions[0].n}")
        lines.append("")
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "|".join(["---"] + ["--:"] * (len(header) - 1)) + "|")
        for r in rows:
            cells = [f"{_pct(p.accuracy)} ({_pct(p.ci_low)}–{_pct(p.ci_high)})" for p in r.positions]
            added = "-" if r.added_latency_s is None else f"{r.added_latency_s * 1000:+.0f} ms"
            memory = "-" if math.isnan(r.peak_memory_delta_mb) else f"{r.peak_memory_delta_mb:.0f} MiB"
            worst = f"{_pct(r.worst.accuracy)} @{r.worst.position}"
            lines.append("| " + " | ".join([r.condition, *cells, _pct(r.mean_accuracy), worst, added, memory]) + " |")
        lines.append("")
    lines.append("Targets:")
    for check in result.checks():
        mark = {True: "MET", False: "NOT MET", None: "INFO"}[check.met]
        lines.append(f"- [{mark}] {check.name}: {check.detail}")
    return "\n".join(lines)


def evaluate_targets(result: LitmResult) -> list[TargetCheck]:
    """The issue's targets, judged plainly on ``result`` (see docs/litm.md for the exact rules)."""
    checks: list[TargetCheck] = []
    positions = result.positions
    first, last = positions[0], positions[-1]
    regime = "oracle" if "oracle" in result.regimes else result.regimes[0]
    base = result.get("baseline", regime)
    if base is not None and len(positions) >= 3:
        ends = min(base.at(first).accuracy, base.at(last).accuracy)
        middle = min(p.accuracy for p in base.positions[1:-1])
        met = ends >= 0.9 and middle <= ends - 0.2
        checks.append(
            TargetCheck(
                "baseline U-curve (ends >= 90%, middle at least 20 points lower)",
                met,
                f"pos {first}: {_pct(base.at(first).accuracy)}%, pos {last}: "
                f"{_pct(base.at(last).accuracy)}%, worst middle: {_pct(middle)}%",
            )
        )
    for regime_name in result.regimes:
        base = result.get("baseline", regime_name)
        for mechanism in STEER_MECHANISMS:
            steer = result.get(f"steer-{mechanism}", regime_name)
            if steer is None or base is None:
                continue
            gap = steer.best.accuracy - steer.worst.accuracy
            drops = [
                (b.position, b.accuracy - s.accuracy) for s, b in zip(steer.positions, base.positions, strict=True)
            ]
            worst_drop = max(drops, key=lambda d: d[1])
            met = gap <= 0.05 + 1e-9 and worst_drop[1] <= 0.03 + 1e-9
            checks.append(
                TargetCheck(
                    f"steer-{mechanism} alone ({regime_name}): worst within 5 points of best, "
                    "no position >3 points below baseline",
                    met,
                    f"best {_pct(steer.best.accuracy)}% @{steer.best.position}, worst "
                    f"{_pct(steer.worst.accuracy)}% @{steer.worst.position} (gap {100 * gap:.0f}); largest "
                    f"drop vs baseline {100 * worst_drop[1]:+.0f} points @{worst_drop[0]}; mean "
                    f"{_pct(steer.mean_accuracy)}% vs baseline {_pct(base.mean_accuracy)}%",
                )
            )
    if "retrieval" in result.regimes:
        hybrid = result.get("hybrid", "retrieval")
        singles = [r for r in result.results if r.regime == "retrieval" and r.condition in SINGLE_CONDITIONS]
        if hybrid is not None and singles:
            shortfalls = []
            for p in hybrid.positions:
                best = max(singles, key=lambda r: r.at(p.position).accuracy)
                shortfalls.append((best.at(p.position).accuracy - p.accuracy, p.position, best.condition))
            worst = max(shortfalls)
            checks.append(
                TargetCheck(
                    "retrieval regime: hybrid >= best single condition at every position",
                    worst[0] <= 1e-9,
                    "hybrid matches or beats every single condition at every position"
                    if worst[0] <= 1e-9
                    else f"largest shortfall {100 * worst[0]:.0f} points at pos {worst[1]} (vs {worst[2]})",
                )
            )
    for regime_name in result.regimes:
        base = result.get("baseline", regime_name)
        for mechanism in STEER_MECHANISMS:
            control = result.get(f"control-{mechanism}", regime_name)
            if control is None or base is None:
                continue
            checks.append(
                TargetCheck(
                    f"control-{mechanism} ({regime_name}): harm of steering a distractor",
                    None,
                    f"mean {_pct(control.mean_accuracy)}% vs baseline {_pct(base.mean_accuracy)}% "
                    f"({100 * (control.mean_accuracy - base.mean_accuracy):+.0f} points), worst "
                    f"{_pct(control.worst.accuracy)}% @{control.worst.position}",
                )
            )
    baseline = result.get("baseline", regime)
    for r in result.results:
        if r.regime != regime or r.steering is None or r.condition.startswith("control-") or baseline is None:
            continue
        added = r.added_latency_same_length_s if r.added_latency_same_length_s is not None else r.added_latency_s
        if added is None:
            continue
        ratio = added / baseline.mean_latency_s
        how = (
            f"paired on {r.same_length_pairs} equally long outputs"
            if r.added_latency_same_length_s is not None
            else "paired on all outputs (none equally long)"
        )
        checks.append(
            TargetCheck(
                f"{r.condition} overhead within the steering budget (<= 10% and <= 100 ms per query)",
                ratio <= 0.10 and added <= 0.100,
                f"{1000 * added:+.0f} ms per query ({100 * ratio:+.0f}% of the baseline's "
                f"{baseline.mean_latency_s:.2f} s), {how}",
            )
        )
    return checks


__all__ = [
    "CONDITIONS",
    "DEFAULT_BENCH_GENERATION",
    "REGIMES",
    "SCHEMA",
    "SCHEMA_VERSION",
    "STEER_MECHANISMS",
    "Condition",
    "ConditionResult",
    "LitmBenchmark",
    "LitmConfig",
    "LitmResult",
    "PositionAccuracy",
    "TargetCheck",
    "TrialRecord",
    "evaluate_targets",
    "format_tables",
    "resolve_condition",
]
