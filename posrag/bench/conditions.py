"""What the "Lost in the Middle" benchmark runs: conditions, regimes and :class:`LitmConfig`.

A condition is an optional reorder strategy plus an optional steering mechanism and its aim; a regime decides
what steering aims at. :func:`config_from_options` builds a config from the CLI's text options, so
``posrag bench litm`` only parses arguments.

Conditions (what the model gets for one question with the gold document at one position):

``baseline``              the documents as given, plain generation.
``recency`` … ``none``    each reorder strategy of :mod:`posrag.ordering`, over the retriever's scores.
``steer-activation``      the given order, activation steering toward the regime's relevant document(s).
``steer-attention``       the same with attention steering.
``hybrid``                reorder (``hybrid_strategy``) + steering (``hybrid_mechanism``), as users run it.
``control-activation``    steering aimed at a distractor instead (seeded per question and position), to
``control-attention``     measure the harm of steering the wrong document.
``gold-alone``            reference row: only the gold document, no distractors, plain generation (what the
                          model can do when nothing is lost; the same at every position).
``closed-book``           reference row: no documents at all (LITM's closed-book prompt, question and answer cue).

Every document is scored by posrag's FAISS retriever (cosine similarity of the question and the document,
over each question's own documents); every ordering uses those scores, never ``isgold`` (an oracle ordering
would put the gold document in the best slot by construction and measure nothing). The regimes differ in
what steering aims at:

``oracle``     the gold document. Measures the mechanisms themselves.
``retrieval``  the steering configuration's ``top_k`` best scored documents (``--steering '{"top_k": 2}'``;
               ``None``: every document); ``isgold`` is never consulted. What users get.

Conditions without steering (baseline, reorder strategies) are the same in both regimes and are reported
under each (computed once). Controls aim at a seeded random document that is neither gold nor targeted.

Identical inputs give identical greedy outputs, so each distinct (prompt, steering plan) is generated once
and reused: a reorder strategy puts the documents in the same order whatever the gold position was, ``none``
is the baseline, ``graduated`` is ``recency``, and the baseline is shared by both regimes. Conditions run
side by side per question and position, so machine load drifts over all of them alike.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from posrag.errors import ConfigurationError
from posrag.generation import GenerationConfig
from posrag.ordering import STRATEGIES
from posrag.prompts import DEFAULT_TEMPLATE, LITM_INSTRUCTION, PromptTemplate

Regime = Literal["oracle", "retrieval"]
ChatTemplate = Literal["auto", "on", "off"]
CHAT_TEMPLATES: tuple[str, ...] = ("auto", "on", "off")
REGIMES: tuple[str, ...] = ("oracle", "retrieval")
STEER_MECHANISMS: tuple[str, ...] = ("activation", "attention")
CONDITIONS: tuple[str, ...] = (
    "baseline",
    *STRATEGIES,
    "steer-activation",
    "steer-attention",
    "steer-confident",
    "steer-unscored",
    "hybrid",
    "control-activation",
    "control-attention",
    "gold-alone",
    "closed-book",
)
#: LITM's reference rows: the gold document alone, and no document at all (unsteered, position-independent).
REFERENCE_CONDITIONS: tuple[str, ...] = ("gold-alone", "closed-book")
#: Conditions whose accuracy is compared in the targets ("single" = one technique, no control).
SINGLE_CONDITIONS: tuple[str, ...] = ("baseline", *STRATEGIES, "steer-activation", "steer-attention")

#: LITM's closed-book prompt: the question and the answer cue, nothing else.
CLOSED_BOOK_TEMPLATE = PromptTemplate(header="", footer="Question: {question}\nAnswer:")


@dataclass(frozen=True)
class BenchPrompt:
    """How the benchmark asks: the prompt template, and for chat-templated models the text that opens the model's
    reply (an answer cue in its own turn; nothing without a chat template, where the prompt already ends in one)."""

    name: str
    template: PromptTemplate
    reply_cue: str = ""
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "reply_cue": self.reply_cue, "description": self.description}


_INSTRUCTION_LAST = PromptTemplate(header="", footer="\n\n" + LITM_INSTRUCTION + "\n\nQuestion: {question}\nAnswer:")
#: LITM's instruction asking for the answer alone (small chat models restate the question, cut off at 20 tokens).
_SHORT_INSTRUCTION = LITM_INSTRUCTION + " Answer with a short phrase of a few words, not a sentence."
_SHORT = PromptTemplate(header=_SHORT_INSTRUCTION + "\n\n")
#: ...and one worked question (not from NQ's questions) showing that form.
_SHORT_EXAMPLE = PromptTemplate(
    header=_SHORT_INSTRUCTION + "\n\nExample:\nQuestion: what is the capital city of france\nAnswer: Paris\n\n"
)
#: The prompts ``LitmConfig.prompt`` names. All keep LITM's instruction and put the question last with an answer
#: cue; they differ in where the instruction sits and whether the cue opens the model's reply. ``litm`` is the
#: paper's and the published numbers'; the others are candidates for chat-templated models that do not answer
#: under it (``posrag bench choose-prompt`` picks one on calibration questions).
_CUE = "Answer:"
PROMPTS: dict[str, BenchPrompt] = {
    name: BenchPrompt(name, template, cue, description)
    for name, template, cue, description in (
        ("litm", DEFAULT_TEMPLATE, "", "LITM's prompt: instruction, documents, question, 'Answer:'"),
        ("litm-reply-cue", DEFAULT_TEMPLATE, _CUE, "LITM's prompt; the reply opens with 'Answer:'"),
        ("instruction-last", _INSTRUCTION_LAST, "", "documents, then LITM's instruction, question, 'Answer:'"),
        ("instruction-last-reply-cue", _INSTRUCTION_LAST, _CUE, "instruction-last; the reply opens with 'Answer:'"),
        ("short-reply-cue", _SHORT, _CUE, "LITM's prompt asking for a short phrase; the reply opens with 'Answer:'"),
        ("short-example-reply-cue", _SHORT_EXAMPLE, _CUE, "short-reply-cue with one worked example"),
    )
}

#: Greedy, short: the answer is a few words and only the first line is scored. 20 tokens hold a full
#: restatement of any gold sentence of the shipped set (the longest is 16 tokens for Gemma 3).
DEFAULT_BENCH_GENERATION = GenerationConfig(max_new_tokens=20, stop=("\n",), strip_leading=True)


@dataclass(frozen=True)
class Condition:
    """One benchmark condition: an optional reorder strategy, an optional steering mechanism, and its aim."""

    name: str
    strategy: str | None = None
    mechanism: str | None = None
    aim: Literal["relevant", "distractor"] = "relevant"
    #: In the retrieval regime, choose and weigh the steered document as posrag's LLM classes do
    #: (:func:`posrag.steering.selection.select_targets`: request-level ranks and confidence-aware intensity).
    confident: bool = False
    #: ...and with the retriever's scores withheld, as from a retriever that reports none: posrag's own relevance
    #: (the packaged embedder's similarity to the text after the documents) ranks them.
    unscored: bool = False
    #: Which documents the prompt holds: all of the question's, only the gold one, or none (closed-book).
    documents: Literal["all", "gold", "none"] = "all"

    @property
    def steered(self) -> bool:
        return self.mechanism is not None

    @property
    def description(self) -> str:
        if self.documents == "gold":
            return "reference: only the gold document, no distractors, no steering"
        if self.documents == "none":
            return "reference: closed-book, no documents, no steering"
        order = f"reorder '{self.strategy}'" if self.strategy else "given order"
        if not self.steered:
            return f"{order}, no steering"
        aim = "a distractor" if self.aim == "distractor" else "the relevant document(s)"
        weighed = ", weighed by the ranking's confidence" if self.confident else ""
        if self.unscored:
            weighed += ", ranked by posrag's own relevance (scores withheld)"
        return f"{order}, {self.mechanism} steering aimed at {aim}{weighed}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "strategy": self.strategy,
            "mechanism": self.mechanism,
            "aim": self.aim,
            "confident": self.confident,
            "unscored": self.unscored,
            "documents": self.documents,
        }


def resolve_condition(name: str, *, hybrid_strategy: str, hybrid_mechanism: str) -> Condition:
    """The :class:`Condition` a condition name stands for."""
    if name == "baseline":
        return Condition(name)
    if name in STRATEGIES:
        return Condition(name, strategy=name)
    if name == "steer-confident":
        return Condition(name, mechanism="attention", confident=True)
    if name == "steer-unscored":
        return Condition(name, mechanism="attention", confident=True, unscored=True)
    if name.startswith("steer-") and name[6:] in STEER_MECHANISMS:
        return Condition(name, mechanism=name[6:])
    if name.startswith("control-") and name[8:] in STEER_MECHANISMS:
        return Condition(name, mechanism=name[8:], aim="distractor")
    if name == "hybrid":
        return Condition(name, strategy=hybrid_strategy, mechanism=hybrid_mechanism)
    if name == "gold-alone":
        return Condition(name, documents="gold")
    if name == "closed-book":
        return Condition(name, documents="none")
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

    ``chat_template``: ``"on"`` wraps each prompt as one user turn through the tokenizer's chat template
    (:func:`posrag.chat.format_completion`), ``"auto"`` does so when the tokenizer has one, ``"off"`` (default,
    the published numbers) feeds the prompt as is. ``measure_memory``: sample peak memory during each
    generation (:mod:`posrag.bench.measure`; off by default, the CPU sampler competes with torch for cores).
    ``prompt``: one of :data:`PROMPTS` (default ``"litm"``, the paper's); for chat-templated models that continue
    the document list instead of answering. ``reuse_prefix``: plain and attention-steered conditions with the same
    prompt up to the question prefill that prefix once and continue it (:mod:`posrag.prefix`); the same output,
    less compute. ``False`` runs every prompt whole.
    """

    positions: tuple[int, ...] = (1, 5, 10, 15, 20)
    conditions: tuple[str, ...] = CONDITIONS
    regimes: tuple[str, ...] = REGIMES
    num_docs: int | None = None
    generation: GenerationConfig = DEFAULT_BENCH_GENERATION
    steering: Mapping[str, Any] = field(default_factory=dict)
    hybrid_strategy: str | None = None
    hybrid_mechanism: str | None = None
    seed: int = 0
    template: PromptTemplate = DEFAULT_TEMPLATE
    chat_template: ChatTemplate = "off"
    measure_memory: bool = False
    reuse_prefix: bool = True
    prompt: str = "litm"

    def __post_init__(self) -> None:
        if self.prompt not in PROMPTS:
            raise ConfigurationError(f"prompt={self.prompt!r} is not one of {', '.join(PROMPTS)}.")
        if self.prompt != "litm":
            if self.template != DEFAULT_TEMPLATE:
                raise ConfigurationError(
                    f"prompt={self.prompt!r} sets the template itself; pass either prompt or template, not both."
                )
            object.__setattr__(self, "template", PROMPTS[self.prompt].template)
        if self.chat_template not in CHAT_TEMPLATES:
            raise ConfigurationError(
                f"chat_template={self.chat_template!r} must be 'auto', 'on' or 'off' (the default: the prompt as is)."
            )
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
            "seed": self.seed,
            "chat_template": self.chat_template,
            "measure_memory": self.measure_memory,
            "reuse_prefix": self.reuse_prefix,
            "prompt": PROMPTS[self.prompt].to_dict(),
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


def _ints(value: str, field_name: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise ConfigurationError(
            f"{field_name} takes comma-separated integers, e.g. 1,5,10,15,20; got {value!r}."
        ) from None


def _names(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip())


def _json_object(value: str, field_name: str) -> dict[str, Any]:
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as exc:
        raise ConfigurationError(
            f'{field_name} must be a JSON object of SteeringConfig fields, e.g. {{"curve": "flat"}}; got {value!r} '
            f"({exc})."
        ) from None
    if not isinstance(parsed, dict):
        raise ConfigurationError(
            f'{field_name} must be a JSON object of SteeringConfig fields, e.g. {{"curve": "flat"}}; got {value!r}.'
        )
    return parsed


def config_from_options(
    *,
    positions: str = "1,5,10,15,20",
    conditions: str = "all",
    regimes: str = "oracle,retrieval",
    num_docs: int | None = None,
    max_new_tokens: int = 20,
    steering: str = "{}",
    hybrid_strategy: str | None = None,
    hybrid_mechanism: str | None = None,
    seed: int = 0,
    chat_template: str = "off",
    measure_memory: bool = False,
    reuse_prefix: bool = True,
    prompt: str = "litm",
) -> LitmConfig:
    """A :class:`LitmConfig` from text options as the CLI takes them: comma-separated ``positions``,
    ``conditions`` (or ``"all"``) and ``regimes``, ``steering`` overrides as a JSON object."""
    return LitmConfig(
        positions=_ints(positions, "positions"),
        conditions=CONDITIONS if conditions.strip() == "all" else _names(conditions),
        regimes=_names(regimes),
        num_docs=num_docs,
        generation=replace(DEFAULT_BENCH_GENERATION, max_new_tokens=max_new_tokens),
        steering=_json_object(steering, "steering"),
        hybrid_strategy=hybrid_strategy,
        hybrid_mechanism=hybrid_mechanism,
        seed=seed,
        chat_template=chat_template,  # type: ignore[arg-type]
        measure_memory=measure_memory,
        reuse_prefix=reuse_prefix,
        prompt=prompt,
    )


__all__ = [
    "CHAT_TEMPLATES",
    "CLOSED_BOOK_TEMPLATE",
    "CONDITIONS",
    "DEFAULT_BENCH_GENERATION",
    "PROMPTS",
    "REFERENCE_CONDITIONS",
    "REGIMES",
    "SINGLE_CONDITIONS",
    "STEER_MECHANISMS",
    "BenchPrompt",
    "ChatTemplate",
    "Condition",
    "LitmConfig",
    "Regime",
    "config_from_options",
    "resolve_condition",
    "steering_overrides",
]
