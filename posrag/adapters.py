"""What posrag's LangChain and LlamaIndex adapters share, without importing either framework.

The adapters translate types and delegate; everything they would otherwise each write again lives here: the
settings of a reorder step (:class:`ReorderSettings`), the generation settings built from an LLM's fields and a
call's options (:func:`generation_config`, :func:`check_call_options`), the trace they report under
:data:`TRACE_KEY` (:func:`trace_dicts`, :func:`generation_info`), and the name a model is serialized by
(:func:`model_reference`). Importing this module imports neither torch nor transformers.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from posrag.documents import ScoredDocument
from posrag.errors import ConfigurationError
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


def generation_config(
    max_new_tokens: int,
    temperature: float,
    top_p: float,
    own_stop: Iterable[str] | None = None,
    call_stop: Iterable[str] | None = None,
) -> GenerationConfig:
    """The generation settings of one call: the model's stop sequences and the call's, merged in order, once each."""
    from posrag.generation import GenerationConfig

    stops = tuple(dict.fromkeys([*(own_stop or ()), *(call_stop or ())]))
    return GenerationConfig(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, stop=stops)


def check_call_options(options: Mapping[str, Any], allowed: Iterable[str], owner: str) -> None:
    """Reject per-call options the adapter would otherwise silently ignore (a misspelt ``max_token``, ``top_k``)."""
    allowed = tuple(allowed)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ConfigurationError(
            f"{owner} got unknown call option(s) {', '.join(map(repr, unknown))}; it accepts "
            f"{', '.join(map(repr, allowed))}. Set other settings on the model itself."
        )


def explicit_documents(
    documents: Any, converters: Mapping[type, Callable[[Any], ScoredDocument]], accepted: str
) -> list[ScoredDocument]:
    """``documents=`` of one LLM call as posrag documents: one item or a sequence of them, each a posrag
    ``ScoredDocument``, a plain string (the text as it appears in the prompt) or a framework type that
    ``converters`` maps (LangChain ``Document``, LlamaIndex ``NodeWithScore``); ``accepted`` names those."""
    kinds = (ScoredDocument, str, *converters)
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


def model_reference(model: Any) -> str | None:
    """The name or path that loads ``model`` again (what a serialized LLM records), or ``None`` for the default.

    A path / hub id is itself; a posrag ``LoadedModel`` its ``name``; a ``(model, tokenizer)`` pair the model's
    ``config.name_or_path``. A model object with no name raises :class:`~posrag.errors.ConfigurationError`.
    """
    if model is None:
        return None
    if isinstance(model, (str, os.PathLike)):
        return os.fspath(model)
    name = getattr(model, "name", None)
    if isinstance(name, str) and hasattr(model, "source"):  # posrag.models.LoadedModel
        return name
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
    "SELECTION_KEY",
    "TRACE_KEY",
    "ReorderSettings",
    "check_call_options",
    "explicit_documents",
    "generation_config",
    "generation_info",
    "model_reference",
    "steering_from_kwargs",
    "steering_kwargs",
    "stream_info",
    "trace_dicts",
]
