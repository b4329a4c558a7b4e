"""The "Lost in the Middle" runner: :class:`LitmBenchmark` generates every trial and summarizes them.

This module is longer than 400 lines because one loop owns the per-position state that makes a run cheap
(identical trials generated once, shared prompt prefixes continued instead of recomputed); split apart, that
state would be passed between modules.

What it runs and why is described in :mod:`posrag.bench.conditions`, with the configuration; the result types
are in :mod:`posrag.bench.results`. :func:`run_litm` runs a whole benchmark from a data file and a model name (what
``posrag bench litm`` calls); :func:`profile_bias` measures a model's position-bias profile with a short
synthetic run and hands back a :class:`posrag.profiles.BiasProfile` (what ``posrag profile`` calls).
"""

from __future__ import annotations

import contextlib
import hashlib
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from posrag._files import sha256_file
from posrag.backends.base import Backend
from posrag.bench.cache import Generation, GenerationCache, cache_key, code_digest, embedder_fingerprint
from posrag.bench.conditions import (
    CLOSED_BOOK_TEMPLATE,
    PROMPTS,
    Condition,
    LitmConfig,
    resolve_condition,
    steering_overrides,
)
from posrag.bench.data import LitmRecord, first_line, format_failure, is_correct, parse_record
from posrag.bench.measure import Measurement, measure, memory_method
from posrag.bench.report import environment
from posrag.bench.results import LitmResult, TrialRecord
from posrag.bench.shards import Shard
from posrag.bench.stats import mean
from posrag.bench.summary import retrieval_summary, summarize_condition
from posrag.bench.synthetic import make_synthetic_records
from posrag.bench.variant import Variant, as_read
from posrag.bias import DEFAULT_TOLERANCE
from posrag.documents import ScoredDocument
from posrag.engine import Engine
from posrag.errors import ConfigurationError
from posrag.generation import has_chat_template
from posrag.ordering import Reorderer
from posrag.prefix import PrefixCache, PrefixStore
from posrag.profiles import BiasProfile
from posrag.prompts import build_prompt
from posrag.ranking import rank
from posrag.steering.config import SteeringConfig

#: Settings for the unsteered conditions: every field given, so nothing is looked up in a calibration.
_PLAIN = SteeringConfig(attention_bias=0.0, attention_layers="all", position_bias="flat")


class LitmBenchmark:
    """Runs the benchmark on one model behind a backend: ``LitmBenchmark(backend, config).run(records)``.

    ``backend``: a :class:`~posrag.backends.Backend` (the torch backend, or llama.cpp's); every trial goes
    through an :class:`~posrag.engine.Engine` over it. :meth:`from_model` builds one over a Hugging Face model.
    ``embedder``: the sentence-transformer of the retrieval regime (``None``: the packaged default, loaded
    only if the retrieval regime runs). ``cache``: a :class:`~posrag.bench.cache.GenerationCache` to read
    generations an earlier run stored and to store this run's (greedy generation only).
    """

    def __init__(
        self,
        backend: Backend,
        config: LitmConfig | None = None,
        *,
        embedder: Any = None,
        cache: GenerationCache | None = None,
    ) -> None:
        if not isinstance(backend, Backend):
            raise ConfigurationError(
                f"LitmBenchmark runs a posrag backend, got {type(backend).__name__}; use "
                "LitmBenchmark.from_model(model, tokenizer, config) for a Hugging Face model."
            )
        self.backend = backend
        self.tokenizer = backend.tokenizer
        self.config = config or LitmConfig()
        if cache is not None and self.config.generation.temperature != 0:
            raise ConfigurationError(
                f"A generation cache needs greedy generation (temperature 0), got temperature="
                f"{self.config.generation.temperature}: a sampled output is not a function of its prompt. Drop "
                "the cache or sample without one."
            )
        self.cache = cache
        self._identity: dict[str, Any] | None = None
        self._embedder_identity: dict[str, Any] | None = None
        self.model_name = backend.model_name or backend.name
        #: Where memory is measured (a torch model's device; a llama.cpp model runs on the CPU).
        self.device = getattr(getattr(backend, "model", None), "device", "cpu")
        self._embedder = embedder
        chat = self.config.chat_template
        if chat == "on" and not has_chat_template(self.tokenizer):
            raise ConfigurationError(
                f"chat_template='on' but the tokenizer ({type(self.tokenizer).__name__}) has no chat template; use "
                "'auto' (templated only when there is one) or 'off'."
            )
        #: Whether prompts go through the tokenizer's chat template (``chat_template`` resolved).
        self.chat_template = chat == "on" or (chat == "auto" and has_chat_template(self.tokenizer))
        self._steering_configs: dict[str, Any] = {}
        self._generators: dict[str, Any] = {}
        self._plain_engine: Engine | None = None
        # Prefix reuse (LitmConfig.reuse_prefix): the prompt up to the question, prefilled once per document order
        # (by the backend, in its own cache) and continued by every condition that leaves it unchanged; the cost
        # of each prefix pass, by its ids. Prompts differ from one question and position to the next, so the
        # store holds one position's prefixes (at most one per condition) and is emptied when the position changes.
        self._prefixes = (
            PrefixStore(backend.prefill, max_entries=len(self.config.conditions) + 1)
            if self.config.reuse_prefix
            else None
        )
        self._prefix_costs: dict[tuple[int, ...], Measurement] = {}
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

    @classmethod
    def from_model(
        cls,
        model: Any,
        tokenizer: Any,
        config: LitmConfig | None = None,
        *,
        embedder: Any = None,
        model_name: str | None = None,
        cache: GenerationCache | None = None,
    ) -> LitmBenchmark:
        """The benchmark of a Hugging Face causal LM and its tokenizer, on the torch backend."""
        from posrag.backends.torch import TorchBackend

        name = model_name or str(getattr(model.config, "name_or_path", "") or type(model).__name__)
        return cls(TorchBackend(model, tokenizer, model_name=name), config, embedder=embedder, cache=cache)

    def _hybrid_defaults(self) -> tuple[str, str]:
        strategy, mechanism = self.config.hybrid_strategy, self.config.hybrid_mechanism
        if (strategy is None or mechanism is None) and "hybrid" in self.config.conditions:
            from posrag.steering import SteeringConfig, resolve_steering

            base = SteeringConfig(**steering_overrides(self.config.steering, None))
            if not base.needs_profile:  # an unset position_bias follows the model's profile, as the generator's
                base = resolve_steering(base, self.model_name, self.backend.layout.num_layers, warn=False)
            strategy = strategy or ("auto" if base.needs_profile else base.reorder_strategy)
            mechanism = mechanism or base.mechanism
        return strategy or "recency", mechanism or "attention"

    def _make_generator(self, mechanism: str) -> Any:
        from posrag.steering import SteeringConfig

        config = SteeringConfig(**steering_overrides(self.config.steering, mechanism))
        self._steering_configs[mechanism] = config
        # The retriever's embedder also scores documents whose scores are withheld (steer-unscored).
        generator = Engine(self.backend, config, embedder=self._embedder)
        self._steering_configs[mechanism] = generator.config  # position_bias="auto" resolved
        return generator

    def _plain(self) -> Engine:
        """The engine of the unsteered conditions: the same seam, nothing to steer (no targets)."""
        if self._plain_engine is None:
            self._plain_engine = Engine(self.backend, _PLAIN)
        return self._plain_engine

    @property
    def embedder(self) -> Any:
        if self._embedder is None:
            from posrag.models import load_embedder

            self._embedder = load_embedder()
        return self._embedder

    # ------------------------------------------------------------------------- pieces

    def retrieval_scores(self, record: LitmRecord) -> list[float]:
        """The retriever's score of each of the record's documents (:func:`retrieval_scores`); read from the cache
        when an earlier run stored them for the same code, embedder, question and documents."""
        if self.cache is None:
            return retrieval_scores(record, self.embedder)
        if self._embedder_identity is None:
            self._embedder_identity = {"posrag_code": code_digest(), "embedder": embedder_fingerprint(self.embedder)}
        request = {"question": record.question, "documents": [[d.title, d.text] for d in record.documents]}
        key = cache_key(self._embedder_identity, request)
        found = self.cache.get_scores(key)
        if found is not None:
            return found
        scores = retrieval_scores(record, self.embedder)
        self.cache.put_scores(key, scores)
        return scores

    def variant(
        self,
        record: LitmRecord,
        order: Sequence[int],
        condition: Condition,
        regime: str,
        scores: Sequence[float | None],
        position: int,
    ) -> Variant:
        """The prompt and steering targets of one trial.

        ``order``: document indices (into ``record.documents``) with the gold moved; ``scores``: the
        retriever's score of each document (indexed like ``record.documents``). Ordering always uses these
        scores (an oracle ordering would put the gold document in the best slot by construction and measure
        nothing); the regime decides what steering aims at: the gold document (oracle) or the
        steering configuration's ``top_k`` best scored documents (retrieval; ``None``: all of them), as
        posrag's LLM classes steer.
        """
        from posrag.steering.selection import select_targets
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
        gold = str(record.gold_index)
        cue = PROMPTS[self.config.prompt].reply_cue
        if condition.documents == "none":
            prompt = build_prompt(record.question, [], CLOSED_BOOK_TEMPLATE)
            return as_read(self.tokenizer, prompt, 0, (), self.chat_template, cue)
        if condition.documents == "gold":
            docs = [doc for doc in docs if doc.id == gold]
        if condition.strategy is not None:
            docs = self._reorderers[condition.strategy](docs)
        prompt = build_prompt(record.question, docs, self.config.template)
        ids = [span.document.id for span in prompt.spans]
        targets: tuple[Any, ...] = ()
        if condition.steered:
            if regime == "oracle":
                relevant = [gold]
            else:
                top_k = self._generators[condition.mechanism].config.top_k  # type: ignore[index]
                relevant = [str(i) for i in rank(scores)[:top_k]]
            aimed = relevant
            if condition.aim == "distractor":
                others = sorted((i for i in ids if i not in relevant and i != gold), key=int)
                if not others:
                    raise ConfigurationError("A control condition needs at least one distractor to aim at.")
                rng = random.Random(f"{self.config.seed}:{record.id}:{position}")
                aimed = [rng.choice(others)]
            if condition.confident and regime == "retrieval" and condition.aim == "relevant":
                # As posrag's LLM classes steer: the request's documents with their scores, ranked per request
                # and weighed by the ranking's confidence (the steering configuration's top_k and confidence).
                generator = self._generators[condition.mechanism]  # type: ignore[index]
                config = replace(generator.config, confidence=True)  # the condition is the confidence rule
                if condition.unscored:
                    withheld = [ScoredDocument(d.text, d.metadata, None, d.id) for d in docs]
                    selected = select_targets(prompt.text, withheld, config, relevance=generator.relevance)
                else:
                    selected = select_targets(prompt.text, docs, config)
                position_read = ids.index(gold) + 1
                return as_read(self.tokenizer, prompt, position_read, tuple(selected[0]), self.chat_template, cue)
            targets = tuple(targets_from_spans(span for span in prompt.spans if span.document.id in aimed))
        return as_read(self.tokenizer, prompt, ids.index(gold) + 1, targets, self.chat_template, cue)

    def _steer_key(self, mechanism: str, targets: Sequence[Any]) -> tuple[Any, ...]:
        """What determines a steered generation besides the prompt: the mechanism and the per-target plan."""
        from posrag.steering import plan_steering

        generator = self._generators[mechanism]
        plans = plan_steering(list(targets), generator.config, generator.num_layers)
        return (
            mechanism,
            tuple((p.target.start_char, p.target.end_char, p.tier, p.multiplier, p.target.rule_type) for p in plans),
        )

    def _reusable(self, mechanism: str | None) -> bool:
        """Whether a condition can continue an unsteered prefix: plain, or steered by attention alone (its bias
        changes nothing before the question); activation steering changes the documents' states in the prefill."""
        if self._prefixes is None:
            return False
        return mechanism is None or not self._generators[mechanism].config.uses_activation

    def _prefix(self, variant: Variant, steer_from: int) -> tuple[PrefixCache, Measurement] | None:
        """The variant's prompt up to the question, prefilled (once per distinct prefix) and what that cost;
        ``None`` when nothing precedes the question's first token or nothing follows it."""
        from posrag.steering.spans import encode_with_offsets, first_token_at_or_after

        encoded = encode_with_offsets(self.tokenizer, variant.text, add_special_tokens=variant.add_special_tokens)
        cut = first_token_at_or_after(encoded, steer_from, self.tokenizer)
        if not 0 < cut < encoded.num_tokens:
            return None
        ids = tuple(int(i) for i in encoded.input_ids[0, :cut].tolist())
        assert self._prefixes is not None
        if ids in self._prefixes:
            return self._prefixes.get(ids), self._prefix_costs[ids]
        with measure(self.device, memory=self.config.measure_memory) as cost:
            prefix = self._prefixes.get(ids)
        self._prefix_costs = {k: v for k, v in self._prefix_costs.items() if k in self._prefixes}
        self._prefix_costs[ids] = cost
        return prefix, cost

    def _steer_from(self, variant: Variant) -> int:
        """Where steering starts in the variant's text: the question's footer."""
        footer = self.config.template.footer.format(question=variant.prompt.question)
        return variant.offset + len(variant.prompt.text) - len(footer)

    def _generation(self, trial_key: tuple[Any, ...], variant: Variant, mechanism: str | None) -> Generation:
        """The variant's generation: read from the cache when an earlier run stored it, else generated (and
        stored at once, so a run that stops keeps it). ``trial_key``: the run's own key of it (:meth:`_trial`)."""
        if self.cache is None:
            return self._generate(variant, mechanism)
        key = cache_key(self._run_identity(), self._request(trial_key, variant, mechanism))
        found = self.cache.get(key)
        if found is not None:
            return found
        generation = self._generate(variant, mechanism)
        self.cache.put(key, generation)
        return generation

    def _run_identity(self) -> dict[str, Any]:
        """What decides every generation of this benchmark besides its request (:mod:`posrag.bench.cache`)."""
        if self._identity is None:
            self._identity = {
                "posrag_code": code_digest(),
                "backend": self.backend.fingerprint(),
                "generation": self.config.generation.to_dict(),
                "reuse_prefix": self.config.reuse_prefix,
            }
        return self._identity

    def _request(self, trial_key: tuple[Any, ...], variant: Variant, mechanism: str | None) -> dict[str, Any]:
        """What decides one generation besides the run: the run's own key of it (the prompt's digest, its special
        tokens, the mechanism and each target's plan) and, steered, the resolved steering configuration (fixed
        within a run, so not in that key) and where steering starts."""
        request: dict[str, Any] = {"trial": trial_key, "steering": None}
        if mechanism is not None:
            request["steering"] = {
                "config": self._generators[mechanism].config.to_dict(),
                "steer_from": self._steer_from(variant),
            }
        return request

    def _generate(self, variant: Variant, mechanism: str | None) -> Generation:
        """Generate one trial; time (and, when asked, memory) it.

        With prefix reuse, a plain or attention-steered generation continues the shared, unsteered prefix (the
        prompt up to the question) and its cost counts the prefix pass as well: seconds are its own plus the
        prefix pass's (measured once, when the prefix was first needed), memory the larger of the two; so
        latencies stay what one generation costs and compare with conditions that cannot reuse a prefix.
        """
        text = variant.text
        generation = self.config.generation
        special = variant.add_special_tokens
        steer_from = self._steer_from(variant)
        reusable = self._reusable(mechanism) and bool(variant.prompt.spans)  # closed-book: nothing before the question
        found = self._prefix(variant, steer_from) if reusable else None
        engine = self._generators[mechanism] if mechanism is not None else self._plain()
        prefix = found[0] if found is not None else None  # the variant's own first tokens: it covers the prompt
        with measure(self.device, memory=self.config.measure_memory) as cost:
            steered = engine.generate(
                text,
                list(variant.targets) if mechanism is not None else [],
                generation,
                steer_from=steer_from if mechanism is not None else None,
                add_special_tokens=special,
                prefix=prefix,
            )
            output, new_tokens = steered.text, steered.generated_tokens
        if found is None:
            return Generation(output, new_tokens, cost.seconds, cost.peak_mb, cost.delta_mb)
        pre = found[1]
        return Generation(
            output,
            new_tokens,
            cost.seconds + pre.seconds,
            None if cost.peak_mb is None or pre.peak_mb is None else max(cost.peak_mb, pre.peak_mb),
            None if cost.delta_mb is None or pre.delta_mb is None else max(cost.delta_mb, pre.delta_mb),
        )

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
        self._forget_prefixes()  # the run's prefixes are timed in the run, not in the warm-up

    def _forget_prefixes(self) -> None:
        if self._prefixes is not None:
            self._prefixes.clear()
            self._prefix_costs.clear()

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
        shard: Shard | None = None,
    ) -> LitmResult:
        """Run every condition in every regime at every position for each record; see the module docstring.

        ``pool``: documents to draw missing distractors from (default: those of ``records``; pass the whole
        file's when ``records`` is a subset). ``shard``: run only that shard of ``records``
        (:mod:`posrag.bench.shards`; documents per question and distractors are decided over all of them
        first); its trial records are always kept, for ``posrag bench merge``.
        """
        from tqdm.auto import tqdm

        selected = self._select(records, pool, shard)
        self._warm_up(selected.records[0])
        if self._prefixes is not None:  # count the run's prefix passes and reuses, not the warm-up's
            self._prefixes.hits = self._prefixes.misses = 0
        run = _Run(datetime.now(timezone.utc).isoformat(timespec="seconds"), time.perf_counter())
        total = len(selected.records) * len(self.config.positions) * len(self.conditions) * len(self.config.regimes)
        bar = tqdm(total=total, desc="posrag bench litm", unit="trial", disable=not progress, dynamic_ncols=True)
        with bar:
            for record in selected.records:
                for trial in self._record_trials(record, selected.num_docs, run):
                    if on_trial is not None:
                        on_trial(trial)
                    bar.update()
                    bar.set_postfix(generated=len(run.generations), refresh=False)
        return self._result(selected, run, data_info, keep_records=keep_records or shard is not None)

    # ------------------------------------------------------------------------- the run's phases

    def _select(self, records: Sequence[LitmRecord], pool: Sequence[Any] | None, shard: Shard | None) -> _Selection:
        """The records to run, with their documents fitted to the run's count (over all records, then sharded)."""
        from posrag.bench.data import fit_documents

        if not records:
            raise ConfigurationError("No records to benchmark; pass at least one question.")
        config = self.config
        num_docs = config.num_docs or max(max(len(r.documents) for r in records), max(config.positions))
        filled = any(len(r.documents) < num_docs for r in records)
        fitted = fit_documents(records, num_docs, seed=config.seed, pool=pool)
        if shard is None:
            return _Selection(tuple(fitted), num_docs, filled, {})
        return _Selection(tuple(shard.select(fitted)), num_docs, filled, {"shard": shard.to_dict(len(fitted))})

    def _record_trials(self, record: LitmRecord, num_docs: int, run: _Run) -> list[TrialRecord]:
        """Every trial of one question: each position, condition and regime."""
        scores: list[float | None] = [None] * num_docs
        gold_rank: int | None = None
        if "retrieval" in self.config.regimes or any(c.strategy or c.steered for c in self.conditions):
            scores = list(self.retrieval_scores(record))
            gold_rank = rank(scores).index(record.gold_index) + 1
            run.gold_ranks.append(gold_rank)
        distractors = [i for i in range(num_docs) if i != record.gold_index]
        trials = []
        for position in self.config.positions:
            order = [*distractors[: position - 1], record.gold_index, *distractors[position - 1 :]]
            self._forget_prefixes()
            for condition in self.conditions:
                for regime in self.config.regimes:
                    variant = self.variant(record, order, condition, regime, scores, position)
                    trials.append(self._trial(record, position, condition, regime, variant, gold_rank, run))
        return trials

    def _trial(
        self,
        record: LitmRecord,
        position: int,
        condition: Condition,
        regime: str,
        variant: Variant,
        gold_rank: int | None,
        run: _Run,
    ) -> TrialRecord:
        """One trial: generated, or reused when the same prompt and steering plan were generated already."""
        key: tuple[Any, ...] = (hashlib.sha256(variant.text.encode()).hexdigest(), variant.add_special_tokens)
        if condition.mechanism is not None:
            key += self._steer_key(condition.mechanism, variant.targets)
        reused = key in run.generations
        if not reused:
            run.generations[key] = self._generation(key, variant, condition.mechanism)
        generation = run.generations[key]
        correct = is_correct(generation.text, record.answers)
        trial = TrialRecord(
            question_id=record.id,
            position=position,
            condition=condition.name,
            regime=regime,
            correct=correct,
            prediction=first_line(generation.text),
            gold_prompt_position=variant.gold_position,
            latency_s=generation.seconds,
            new_tokens=generation.new_tokens,
            peak_memory_mb=generation.peak_mb,
            memory_delta_mb=generation.delta_mb,
            reused=reused,
            gold_rank=gold_rank,
            format_failure=format_failure(
                generation.text,
                new_tokens=generation.new_tokens,
                max_new_tokens=self.config.generation.max_new_tokens,
                correct=correct,
            ),
            cached=generation.cached,
        )
        run.trials.append(trial)
        return trial

    def _result(
        self, selected: _Selection, run: _Run, data_info: Mapping[str, Any] | None, *, keep_records: bool
    ) -> LitmResult:
        """The run's trials summarized per condition and regime, with its settings, environment and timing."""
        config = self.config
        wall = time.perf_counter() - run.started
        generated = [g for g in run.generations.values() if not g.cached]
        results = tuple(
            summarize_condition(
                run.trials,
                condition=condition.name,
                regime=regime,
                description=condition.description,
                positions=config.positions,
                num_docs=selected.num_docs,
                steering=self._steering_configs[condition.mechanism].to_dict() if condition.mechanism else None,
            )
            for regime in config.regimes
            for condition in self.conditions
        )
        from posrag.models import embedder_name

        return LitmResult(
            model=self.model_name,
            embedder=embedder_name(self._embedder) if self._embedder is not None else None,
            data={
                **dict(data_info or {}),
                "questions": len(selected.records),
                "num_docs": selected.num_docs,
                "distractors_filled": selected.filled,
                "chance_accuracy": 1.0 / selected.num_docs,
                **selected.shard_info,
            },
            settings=self._settings(),
            retrieval=retrieval_summary(run.gold_ranks),
            results=results,
            environment=environment(getattr(self.backend, "model", None), backend=self.backend),
            timing={
                "started_at": run.started_at,
                "wall_s": wall,
                "generations": len(generated),
                "cached": len(run.generations) - len(generated),
                "trials": len(run.trials),
                "mean_generation_s": mean([g.seconds for g in generated]),
                "prefix_passes": self._prefixes.misses if self._prefixes is not None else 0,
                "prefix_reuses": self._prefixes.hits if self._prefixes is not None else 0,
            },
            records=tuple(run.trials) if keep_records else (),
        )

    def _settings(self) -> dict[str, Any]:
        config = self.config
        return {
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
            "paired difference to the baseline on the same question and position"
            + (
                "; with reuse_prefix, a generation that continues a shared prompt prefix counts that prefix "
                "pass's seconds too (measured once)"
                if config.reuse_prefix
                else ""
            ),
            "memory": memory_method(self.device, config.measure_memory),
            "backend": self.backend.name,
            "chat_template_applied": self.chat_template,
            "steer_from": "the question (steering acts on the question and the generated tokens)",
        }


def retrieval_scores(record: LitmRecord, embedder: Any = None) -> list[float]:
    """The benchmark retriever's score of each of the record's documents: the cosine similarity of the question
    to the document's title and text (:attr:`~posrag.bench.data.LitmDocument.passage`) plus that of its best
    sentence, by :func:`posrag.relevance.embedding_relevance` (``sentences=True``), the relevance posrag's LLM
    classes give unscored documents (``embedder``: a sentence-transformer; ``None``: the packaged default)."""
    from posrag.relevance import embedding_relevance

    documents = record.documents
    return list(
        embedding_relevance(
            record.question,
            [doc.text for doc in documents],
            embedder,
            titles=[doc.title for doc in documents],
            sentences=True,
        ).scores
    )


@dataclass(frozen=True)
class _Selection:
    """The records a run covers (fitted to ``num_docs``, sharded) and what the result's ``data`` says of them."""

    records: tuple[LitmRecord, ...]
    num_docs: int
    filled: bool
    shard_info: Mapping[str, Any]


@dataclass
class _Run:
    """What a run accumulates: its trials, the generations by (prompt, plan), the gold documents' ranks."""

    started_at: str
    started: float
    generations: dict[tuple[Any, ...], Generation] = field(default_factory=dict)
    trials: list[TrialRecord] = field(default_factory=list)
    gold_ranks: list[int] = field(default_factory=list)


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
    backend: str = "torch",
    threads: int | None = None,
    loaded: Backend | None = None,
    cache: str | Path | None = None,
) -> LitmResult:
    """Load the records (``data``, default: the shipped synthetic set) and the model, and run ``config``.

    ``limit``: only the first N questions (missing distractors are still drawn from the whole file). The
    result's ``data`` records the file, its SHA-256, the limit and ``command``; its ``timing`` adds
    ``total_s_with_model_load``. ``shard``: run only that shard of the (limited) records
    (:mod:`posrag.bench.shards`; its trial records are kept for :func:`merge_results`). ``on_trial``: called
    with every trial as it is recorded. ``backend``, ``quantize``, ``threads``: how the model is loaded
    (:func:`posrag.backends.load_backend`), recorded in the settings. ``loaded``: that backend already loaded (a
    worker that runs several shards loads it once); ``None`` loads it here. ``cache``: the path of a
    :class:`~posrag.bench.cache.GenerationCache` (created if missing) whose generations are reused and to which
    this run's are added as they are made.
    """
    from posrag.bench.data import load_records, packaged_dataset

    path = Path(data) if data is not None else Path(packaged_dataset())
    everything = load_records(path)
    records = everything[:limit] if limit else everything
    started = time.perf_counter()
    # The cache is opened (and checked) before the model loads.
    with GenerationCache(cache) if cache is not None else contextlib.nullcontext() as store:
        if loaded is None:
            from posrag.backends import load_backend

            loaded = load_backend(model, backend, quantize=quantize, threads=threads, progress=progress)
        bench = LitmBenchmark(loaded, config, cache=store)
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
    bench = LitmBenchmark.from_model(model, tokenizer, config, model_name=model_name)
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


__all__ = ["LitmBenchmark", "profile_bias", "retrieval_scores", "run_litm"]
