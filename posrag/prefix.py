"""Prefix reuse: run a prompt prefix once, keep its KV cache, and generate many continuations from it.

Requests that share a prefix (the benchmark's conditions at one position share everything up to the question;
real chains share a system prompt and instructions) need not recompute it: :func:`prefill` runs the prefix
once, unsteered, and :meth:`PrefixCache.inputs_for` turns a full prompt that starts with it into generation
inputs that continue from a private copy of its cache, so the prefix's tensors are never written to and one
prefix serves any number of generations. :class:`PrefixStore` keeps the few most recent prefixes by their
token ids.

Exactness. Running ``prefix + rest`` as one prefill or as the prefix, then ``rest`` over its cache, is the same
computation up to floating-point summation order (transformers' chunked prefill): equal within the rounding
of the last bits, and identical greedy output except at a near tie of two tokens. Attention steering can
continue a prefix when the prefix ends by the steered positions (the question), because its bias only changes
rows from there on: pass ``past_length=prefix.length`` to
:meth:`~posrag.engine.Engine.session`. Activation steering changes the documents' hidden states
during the prefill, so it cannot continue an unsteered prefix (the generator refuses).

The copy is per generation (``copy.deepcopy`` of the cache): cropping a grown cache back is not possible on
sliding-window layers once the window has moved (Gemma 3), and the copy costs a memory copy of the cached keys
and values, tiny next to the prefill it replaces.
"""

from __future__ import annotations

import copy
import weakref
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from posrag.errors import ConfigurationError


@dataclass(frozen=True, eq=False)
class PrefixCache:
    """A prompt prefix run once through the model, unsteered: its token ids and its KV cache (never mutated)."""

    input_ids: tuple[int, ...]
    cache: Any

    @property
    def length(self) -> int:
        return len(self.input_ids)

    def covers(self, input_ids: torch.Tensor | Sequence[int]) -> bool:
        """Whether a prompt of ``input_ids`` (one sequence) starts with this prefix and has tokens after it."""
        ids = _as_ids(input_ids)
        return len(ids) > self.length and tuple(ids[: self.length]) == self.input_ids

    def inputs_for(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """Generation inputs for a full prompt (``input_ids``, ``attention_mask``) that continue from a copy of
        this prefix's cache: ``model.generate(**prefix.inputs_for(inputs), ...)`` runs only the rest."""
        if not self.covers(inputs["input_ids"]):
            raise ConfigurationError(
                f"The prompt ({len(_as_ids(inputs['input_ids']))} tokens) does not start with this {self.length}-"
                "token prefix followed by at least one more token; prefill the prompt's own prefix "
                "(posrag.prefix.prefill) or generate without one."
            )
        return {**inputs, "cache": copy.deepcopy(self.cache)}


def _as_ids(input_ids: torch.Tensor | Sequence[int]) -> list[int]:
    if isinstance(input_ids, torch.Tensor):
        if input_ids.dim() == 2:
            if input_ids.shape[0] != 1:
                raise ConfigurationError(
                    f"A prefix continues one sequence at a time; got a batch of {input_ids.shape[0]}."
                )
            input_ids = input_ids[0]
        return [int(i) for i in input_ids.tolist()]
    return [int(i) for i in input_ids]


@torch.inference_mode()
def prefill(model: Any, input_ids: torch.Tensor | Sequence[int]) -> PrefixCache:
    """Run ``input_ids`` (a prompt prefix, one sequence) once, unsteered, and keep its KV cache.

    The cache is the kind ``model.generate`` would build (a ``DynamicCache`` from the model's config, with
    sliding-window layers where the model has them), so a generation that continues it behaves as one that
    prefilled the whole prompt.
    """
    from transformers import DynamicCache

    ids = _as_ids(input_ids)
    if not ids:
        raise ConfigurationError("A prefix needs at least one token; got none.")
    cache = DynamicCache(config=model.config)
    tensor = torch.tensor([ids], device=model.device)
    model(input_ids=tensor, attention_mask=torch.ones_like(tensor), cache=cache, use_cache=True, logits_to_keep=1)
    cache._posrag_model = weakref.ref(model)  # copied along (deepcopy keeps a weak reference as it is)
    return PrefixCache(tuple(ids), cache)


def check_cache(model: Any, cache: Any) -> None:
    """Refuse a KV cache that another model computed (a :func:`prefill` of another model, or a cache with
    another number of layers): continuing it would generate from meaningless keys and values."""
    if cache is None:
        return
    source = getattr(cache, "_posrag_model", None)
    if source is not None and source() is not model:
        raise ConfigurationError(
            "This prefix cache was prefilled by another model; a cache continues only the model that computed "
            "it. Prefill the prefix with this model (posrag.prefix.prefill(model, ids), or one PrefixStore per "
            "model)."
        )
    layers = getattr(cache, "layers", None)
    expected = getattr(getattr(model, "config", None), "num_hidden_layers", None)
    if layers is not None and isinstance(expected, int) and len(layers) not in (0, expected):
        raise ConfigurationError(
            f"This KV cache has {len(layers)} layers but the model has {expected}; it was computed by another "
            "model. Prefill the prefix with this model (posrag.prefix.prefill)."
        )


class PrefixStore:
    """The ``max_entries`` most recently used prefixes of one model, by token ids; prefilled on first use.

    ``prefill``: what runs a prefix, given its token ids: a backend's
    :meth:`~posrag.backends.Backend.prefill` (so the prefix lives in that backend's own cache: a
    :class:`PrefixCache` on the torch backend, llama.cpp's KV state on llama.cpp), or
    ``functools.partial(prefill, model)`` for a Hugging Face model.
    """

    def __init__(self, prefill: Callable[[list[int]], Any], max_entries: int = 4) -> None:
        if not callable(prefill) or isinstance(prefill, torch.nn.Module):
            raise ConfigurationError(
                f"prefill must be a function of token ids (a backend's prefill), got {type(prefill).__name__}; "
                "for a Hugging Face model pass functools.partial(posrag.prefix.prefill, model)."
            )
        if isinstance(max_entries, bool) or not isinstance(max_entries, int) or max_entries < 1:
            raise ConfigurationError(f"max_entries must be a positive integer, got {max_entries!r}.")
        self._prefill = prefill
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple[int, ...], Any] = OrderedDict()
        #: How many lookups found their prefix already computed, and how many prefilled it.
        self.hits = 0
        self.misses = 0

    def get(self, input_ids: torch.Tensor | Sequence[int]) -> Any:
        """The prefix of exactly ``input_ids``: the stored one, or a new :func:`prefill` (the oldest goes)."""
        key = tuple(_as_ids(input_ids))
        found = self._entries.get(key)
        if found is not None:
            self.hits += 1
            self._entries.move_to_end(key)
            return found
        self.misses += 1
        prefix = self._prefill(list(key))
        self._entries[key] = prefix
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        return prefix

    def __contains__(self, input_ids: object) -> bool:
        if isinstance(input_ids, (str, bytes)) or not isinstance(input_ids, (torch.Tensor, Sequence)):
            return False
        return tuple(_as_ids(input_ids)) in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        self._entries.clear()


__all__ = ["PrefixCache", "PrefixStore", "check_cache", "prefill"]
