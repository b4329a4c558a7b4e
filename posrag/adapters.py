"""What posrag's LangChain and LlamaIndex adapters share, without importing either framework.

The adapters translate types and delegate; everything they would otherwise each write again lives here: the
settings of a reorder step (:class:`ReorderSettings`), the generation settings built from an LLM's fields and a
call's options (:func:`generation_config`, :func:`check_call_options`), the trace they report under
:data:`TRACE_KEY` (:func:`trace_dicts`, :func:`generation_info`), and the name a model is serialized by
(:func:`model_reference`). Importing this module imports neither torch nor transformers.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from posrag.documents import ScoredDocument
from posrag.errors import ConfigurationError, UnsupportedFeatureError
from posrag.ordering import BestAt, Reorderer, StrategyOrAuto, UnscoredPolicy
from posrag.ranking import ScoreDirection

if TYPE_CHECKING:
    from posrag.generation import GenerationConfig
    from posrag.steering import SteeringConfig

#: Key under which the adapters report the steering trace (LangChain ``generation_info`` / ``response_metadata``,
#: LlamaIndex ``additional_kwargs``).
TRACE_KEY = "posrag_trace"
#: Key under which the adapters report which of the request's documents a call located and steered, and why not.
SELECTION_KEY = "posrag_selection"
#: Metadata key a reorder step writes on each document: what it ranked by (``"score"`` or ``"retriever_order"``).
RANKED_BY_KEY = "posrag_ranked_by"


class ReorderSettings(BaseModel):
    """The fields of both frameworks' ``PositionReorder`` (see :mod:`posrag.ordering` for the strategies).

    A pydantic mixin: each adapter subclasses it next to its framework's base class and keeps the built
    :class:`~posrag.ordering.Reorderer` as its own private attribute.
    """

    strategy: StrategyOrAuto = Field(
        default="recency",
        description="recency, graduated, sandwich, long_context, none, or auto (the saved `posrag profile` of "
        "model_name recommends one).",
    )
    model_name: str | None = Field(
        default=None, description="strategy='auto' only: whose saved profile to follow (default: the packaged model)."
    )
    score_direction: ScoreDirection = Field(
        default="similarity", description="'similarity' if higher scores are better, 'distance' if lower are."
    )
    unscored: UnscoredPolicy = Field(
        default="start",
        description="Where documents without a score go, as a block: 'start', 'end' or 'error'.",
    )
    best_at: BestAt = Field(default="end", description="long_context only: which end gets the best document.")
    model_config = ConfigDict(protected_namespaces=())

    def build_reorderer(self) -> Reorderer:
        return Reorderer(self.strategy, self.score_direction, self.unscored, self.best_at, self.model_name)

    def plan(self, reorderer: Reorderer, scores: Sequence[float | None]) -> tuple[list[int], list[float | None], str]:
        """The new order of documents with ``scores``, the scores it ranked by, and what they are
        (:data:`RANKED_BY_KEY`): ``"score"``, or ``"retriever_order"`` when no document has a score (a standard
        vector-store retriever puts none in metadata, but returns the best first: that order is the ranking, so
        reordering is never a silent no-op). ``unscored="error"`` still refuses unscored documents."""
        scores = list(scores)
        if scores and self.unscored != "error" and all(s is None for s in scores):
            n = len(scores)
            similarity = self.score_direction == "similarity"
            scores = [float(n - i) if similarity else float(i) for i in range(n)]
            return reorderer.plan(scores), scores, "retriever_order"
        return reorderer.plan(scores), scores, "score"


def _stop_strings(stop: str | Iterable[str] | None) -> tuple[str, ...]:
    """``stop=`` as given to a call: one string is one stop sequence (not its characters); ``None`` is none."""
    if stop is None:
        return ()
    return (stop,) if isinstance(stop, str) else tuple(stop)


def generation_config(
    max_new_tokens: int,
    temperature: float,
    top_p: float,
    own_stop: str | Iterable[str] | None = None,
    call_stop: str | Iterable[str] | None = None,
    strip_leading: bool = False,
) -> GenerationConfig:
    """The generation settings of one call: the model's stop sequences and the call's, merged in order, once each.

    ``strip_leading``: drop the completion's leading whitespace before the stops apply, so ``stop=["\n"]`` does
    not cut a completion that opens with a newline to nothing.
    """
    from posrag.generation import GenerationConfig

    stops = tuple(dict.fromkeys([*_stop_strings(own_stop), *_stop_strings(call_stop)]))
    return GenerationConfig(
        max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, stop=stops, strip_leading=strip_leading
    )


#: What posrag cannot do that other LLM classes take, and what to use instead.
UNSUPPORTED_OPTIONS = {
    "top_k": "posrag samples with temperature and top_p; top_k is not supported (use top_p)",
    "seed": "posrag decodes greedily by default (temperature=0, deterministic); seeds are not supported",
    "n": "posrag returns one completion per call; call it once per completion",
    "tools": "posrag's LLMs do not call tools; use a tool-calling model as the agent and posrag for the RAG step",
}


def no_tools(owner: str, feature: str) -> UnsupportedFeatureError:
    """The error of a tool-calling or structured-output request to posrag's LLMs, with the pattern that works."""
    return UnsupportedFeatureError(
        f"{owner} does not support {feature}: posrag's models are small local LMs that answer from retrieved "
        "documents, without tool calls. Use a tool-calling model as the agent and posrag for the RAG step: wrap "
        "your posrag chain or query engine as a tool (LangChain: chain.as_tool(name=..., description=...); "
        "LlamaIndex: QueryEngineTool.from_defaults(query_engine, name=..., description=...)) and give that tool "
        "to the agent. For structured answers, parse the text (an output parser) instead."
    )


def _unknown(owner: str, what: str, unknown: Iterable[str], allowed: Iterable[str]) -> ConfigurationError:
    allowed = tuple(allowed)
    hints = []
    for name in sorted(unknown):
        if name in UNSUPPORTED_OPTIONS:
            hints.append(f"{name!r}: {UNSUPPORTED_OPTIONS[name]}")
        elif close := difflib.get_close_matches(name, allowed, n=1, cutoff=0.6):
            hints.append(f"{name!r}: did you mean {close[0]!r}?")
        else:
            hints.append(f"{name!r}: not a setting of {owner}")
    return ConfigurationError(
        f"{owner} got unknown {what} ({'; '.join(hints)}). It accepts {', '.join(map(repr, allowed))}."
    )


def check_call_options(options: Mapping[str, Any], allowed: Iterable[str], owner: str) -> None:
    """Reject per-call options the adapter would otherwise silently ignore (a misspelt ``max_token``, ``top_k``),
    naming the right one."""
    allowed = tuple(allowed)
    unknown = set(options) - set(allowed)
    if unknown:
        raise _unknown(owner, "call option(s)", unknown, allowed)


#: The names both frameworks' users write for the longest completion: LangChain's and OpenAI's ``max_tokens``,
#: LlamaIndex's and Hugging Face's ``max_new_tokens``. Each adapter accepts both, in its constructor and per call.
MAX_TOKENS_NAMES = ("max_tokens", "max_new_tokens")


def max_tokens_option(owner: str, options: Mapping[str, Any], default: int) -> int:
    """The one maximum-length setting among ``options`` (either name, see :data:`MAX_TOKENS_NAMES`)."""
    given = {name: options[name] for name in MAX_TOKENS_NAMES if options.get(name) is not None}
    if len(set(given.values())) > 1:
        raise ConfigurationError(
            f"{owner} got both max_tokens={given['max_tokens']!r} and max_new_tokens={given['max_new_tokens']!r}; "
            "they are one setting (the most new tokens to generate): pass one of them."
        )
    return int(next(iter(given.values()), default))


def constructor_settings(owner: str, data: Any, fields: Iterable[str], without_effect: Iterable[str] = ()) -> Any:
    """A framework class's constructor arguments with the other framework's name for the maximum length mapped to
    this class's field (``max_tokens`` ⇄ ``max_new_tokens``), and unknown names refused naming the right one (a
    pydantic model would otherwise drop them silently). ``without_effect``: names the framework's standard
    interface passes every model (a remote client's ``timeout``, ``max_retries``, ``api_key``), which mean nothing
    for a local model: accepted and dropped."""
    if not isinstance(data, dict):
        return data
    without_effect = set(without_effect)
    data = {key: value for key, value in data.items() if key not in without_effect}
    fields = tuple(fields)
    own = next(name for name in MAX_TOKENS_NAMES if name in fields)
    other = next(name for name in MAX_TOKENS_NAMES if name != own)
    if other in data:
        data = dict(data)
        value = data.pop(other)
        data[own] = max_tokens_option(owner, {own: data.get(own), other: value}, value)
    unknown = set(data) - set(fields)
    if unknown:
        raise _unknown(owner, "setting(s)", unknown, [*fields, other])
    return data


def explicit_documents(
    documents: Any, converters: Mapping[type, Callable[[Any], ScoredDocument]], accepted: str
) -> list[ScoredDocument]:
    """``documents=`` of one LLM call as posrag documents: one item or a sequence of them, each a posrag
    ``ScoredDocument``, a plain string (the text as it appears in the prompt) or a framework type that
    ``converters`` maps (LangChain ``Document``, LlamaIndex ``NodeWithScore``); ``accepted`` names those."""
    kinds = (ScoredDocument, str, *converters)
    if isinstance(documents, (Mapping, bytes)) or not isinstance(documents, (*kinds, Iterable)):
        raise ConfigurationError(
            f"documents={documents!r} is a {type(documents).__name__}; pass one document or a list of them: "
            f"{accepted}, posrag ScoredDocuments or strings (the texts as they appear in the prompt)."
        )
    items = [documents] if isinstance(documents, kinds) else list(documents)
    converted = []
    for item in items:
        if isinstance(item, ScoredDocument):
            converted.append(item)
        elif isinstance(item, str):
            converted.append(ScoredDocument(item))
        elif convert := next((c for kind, c in converters.items() if isinstance(item, kind)), None):
            converted.append(convert(item))
        else:
            raise ConfigurationError(
                f"documents=[...] holds a {type(item).__name__}; pass {accepted}, posrag ScoredDocuments or "
                "strings (the texts as they appear in the prompt)."
            )
    return converted


def trace_dicts(trace: Iterable[Any]) -> list[dict[str, Any]]:
    """A steering trace (``SteeringTraceEntry``s) as JSON-ready dicts."""
    return [entry.to_dict() for entry in trace]


def _selection(result: Any) -> dict[str, Any] | None:
    selection = getattr(result, "selection", None)
    return None if selection is None else selection.to_dict()


def generation_info(result: Any, model_name: str | None) -> dict[str, Any]:
    """What an adapter reports about one completed generation (a ``SteeredGeneration``): the trace, which of
    the request's documents were located and steered (``posrag_selection``), the model and token counts."""
    return {
        TRACE_KEY: trace_dicts(result.trace),
        SELECTION_KEY: _selection(result),
        "model_name": model_name,
        "prompt_tokens": result.prompt_tokens,
        "generated_tokens": result.generated_tokens,
    }


def stream_info(header: Any, model_name: str | None) -> dict[str, Any]:
    """What an adapter reports on the first chunk of a stream: the trace and selection of ``header`` (the
    text-less ``SteeredGeneration`` a stream starts with; token counts are not known yet)."""
    return {TRACE_KEY: trace_dicts(header.trace), SELECTION_KEY: _selection(header), "model_name": model_name}


def stream_usage(header: Any, stream: Any) -> dict[str, int]:
    """What an adapter reports on the last chunk of a finished stream: its token counts, as
    :func:`generation_info` reports them for the same request not streamed."""
    return {"prompt_tokens": header.prompt_tokens, "generated_tokens": stream.generated_tokens}


def steering_kwargs(config: SteeringConfig | None) -> dict[str, Any] | None:
    """The constructor arguments of a ``SteeringConfig`` (what a serialized LLM records), ``None`` for no steering."""
    if config is None:
        return None
    return {f.name: getattr(config, f.name) for f in dataclasses.fields(config) if f.init}


def steering_from_kwargs(value: Any) -> Any:
    """A ``SteeringConfig`` again from :func:`steering_kwargs`' dict; anything else is returned as it is."""
    if isinstance(value, Mapping):
        from posrag.steering import SteeringConfig

        return SteeringConfig(**value)
    return value


def model_reference(model: Any) -> str | dict[str, str] | None:
    """The name or path that loads ``model`` again (what a serialized LLM records), or ``None`` for the default.

    A path / hub id is itself; a posrag ``LoadedModel`` its ``name`` (with its ``quantize``, as
    ``{"model": name, "quantize": "int8"}``, when it was quantized, so it loads back quantized); a
    ``(model, tokenizer)`` pair the model's ``config.name_or_path``. A model object with no name raises
    :class:`~posrag.errors.ConfigurationError`.
    """
    if model is None:
        return None
    if isinstance(model, (str, os.PathLike)):
        return os.fspath(model)
    if isinstance(model, Mapping) and isinstance(model.get("model"), str):  # a reference recorded before
        return dict(model)
    name = getattr(model, "name", None)
    if isinstance(name, str) and hasattr(model, "source"):  # posrag.models.LoadedModel
        quantize = getattr(model, "quantize", None)
        return name if quantize is None else {"model": name, "quantize": quantize}
    hf_model = model[0] if isinstance(model, tuple) and len(model) == 2 else getattr(model, "model", None)
    name_or_path = getattr(getattr(hf_model, "config", None), "name_or_path", "")
    if isinstance(name_or_path, str) and name_or_path:
        return name_or_path
    raise ConfigurationError(
        f"model={type(model).__name__} object has no name or path to record, so this LLM cannot be serialized. "
        "Pass the model by its local directory or cached hub id (model='path/or/id'), or load it with "
        "posrag.models.load_causal_lm('path/or/id')."
    )


__all__ = [
    "MAX_TOKENS_NAMES",
    "RANKED_BY_KEY",
    "SELECTION_KEY",
    "TRACE_KEY",
    "ReorderSettings",
    "check_call_options",
    "constructor_settings",
    "explicit_documents",
    "generation_config",
    "generation_info",
    "max_tokens_option",
    "model_reference",
    "no_tools",
    "steering_from_kwargs",
    "steering_kwargs",
    "stream_info",
    "stream_usage",
    "trace_dicts",
]
