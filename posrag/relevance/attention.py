"""Relevance by the model's own attention from the query to each document, corrected for position.

The documents are encoded once with the model's own attention kernel; the query and a content-free query
(:data:`CALIBRATION_QUERY`, as In-Context Re-ranking's ``"N/A"``) then each run on a copy of that cache with
eager attention, whose weights forward hooks reduce at once to a mass per document. Their difference is the
``attention`` relevance; the query's mass alone is ``attention_raw``. See :mod:`posrag.relevance`.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from posrag.errors import ConfigurationError
from posrag.relevance.query import check_spans, query_start
from posrag.relevance.scores import RelevanceScores

LayerSelection = Literal["all", "global"] | Sequence[int]

#: The content-free query whose attention calibrates the position bias (as In-Context Re-ranking's "N/A").
CALIBRATION_QUERY = "N/A"


@dataclass(frozen=True)
class AttentionReadout:
    """What the query tokens paid to each document.

    ``query_mass[i]``: the attention weight that the query's tokens put on document ``i``'s tokens, summed over
    its tokens and averaged over the query's tokens, the heads and ``layers`` (a fraction of 1).
    ``calibration_mass[i]``: the same for the content-free query at the same place (``None`` if not measured).
    ``token_spans``: each document's tokens ``[start, end)`` in the encoded prompt; ``query_tokens`` and
    ``calibration_tokens``: how many tokens each query had.
    """

    query_mass: tuple[float, ...]
    calibration_mass: tuple[float, ...] | None
    token_spans: tuple[tuple[int, int], ...]
    layers: tuple[int, ...]
    query_tokens: int
    calibration_tokens: int

    def relevance(self, corrected: bool = True) -> RelevanceScores:
        """``attention`` (query mass minus calibration mass) or, with ``corrected=False``, ``attention_raw``."""
        if not corrected:
            return RelevanceScores("attention_raw", self.query_mass)
        if self.calibration_mass is None:
            raise ConfigurationError(
                "This readout has no calibration (read_attention(..., calibrate=False)); use "
                "relevance(corrected=False) or read it again with calibrate=True."
            )
        return RelevanceScores(
            "attention", tuple(q - c for q, c in zip(self.query_mass, self.calibration_mass, strict=True))
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "query_mass": list(self.query_mass),
            "calibration_mass": None if self.calibration_mass is None else list(self.calibration_mass),
            "token_spans": [list(s) for s in self.token_spans],
            "layers": list(self.layers),
            "query_tokens": self.query_tokens,
            "calibration_tokens": self.calibration_tokens,
        }


def _select_layers(model: nn.Module, layers: LayerSelection) -> tuple[int, ...]:
    from posrag.architectures import layer_types, num_layers

    depth = num_layers(model)
    if layers == "all":
        return tuple(range(depth))
    if layers == "global":
        chosen = tuple(i for i, kind in enumerate(layer_types(model)) if kind != "sliding_attention")
        return chosen or tuple(range(depth))
    if isinstance(layers, str):
        raise ConfigurationError(f"layers={layers!r} must be 'all', 'global' or a list of layer indices.")
    chosen = tuple(sorted({int(i) for i in layers}))
    if not chosen or chosen[0] < 0 or chosen[-1] >= depth:
        raise ConfigurationError(f"layers={list(layers)} must be non-empty indices in 0..{depth - 1}.")
    return chosen


@contextmanager
def eager_attention(model: nn.Module) -> Iterator[None]:
    """Run ``model`` with eager attention (which returns its weights) inside the block, and restore its own
    implementation afterwards, also when the block raises. The setting is the model's: concurrent calls on the
    same model run eager too while the block lasts (same results, slower)."""
    previous = getattr(model.config, "_attn_implementation", None)
    if previous in (None, "eager"):
        yield
        return
    model.set_attn_implementation("eager")
    try:
        yield
    finally:
        model.set_attn_implementation(previous)


def _create_mass_hook(columns: torch.Tensor, sink: list[torch.Tensor]) -> Any:
    """A forward hook that reduces the module's attention weights (B × H × q × kv) to the mean mass per
    document: ``columns`` (P × D, P = the tokens before the query) is 1 where token ``k`` belongs to document
    ``d``. The keys are the last ``kv`` positions up to the current query token (a sliding-window layer's
    cache holds only its window), so key ``j`` is position ``P + q - kv + j``."""

    def hook(module: nn.Module, args: Any, output: Any) -> None:
        weights = output[1] if isinstance(output, tuple) and len(output) > 1 else None
        if weights is None:
            raise ConfigurationError(
                f"{type(module).__name__} returned no attention weights; posrag reads them with eager attention."
            )
        prefix = columns.shape[0]
        offset = prefix + weights.shape[-2] - weights.shape[-1]
        if offset >= prefix:  # the window holds none of the documents' tokens
            sink.append(torch.zeros(columns.shape[1], device=columns.device))
            return
        per_doc = weights[0, :, :, : prefix - offset].float() @ columns[offset:].to(weights.device)  # H × q × D
        sink.append(per_doc.mean(dim=(0, 1)))

    return hook


def _document_masses(
    model: nn.Module,
    attention: Sequence[nn.Module],
    layers: Sequence[int],
    cache: Any,
    ids: torch.Tensor,
    start: int,
    columns: torch.Tensor,
) -> tuple[float, ...]:
    sink: list[torch.Tensor] = []
    handles = []
    try:
        for layer in layers:
            handles.append(attention[layer].register_forward_hook(_create_mass_hook(columns, sink)))
        positions = torch.arange(start, start + ids.shape[1], device=ids.device).unsqueeze(0)
        with eager_attention(model):
            model(
                input_ids=ids,
                cache=cache,
                logits_to_keep=1,
                use_cache=True,
                position_ids=positions,
                cache_position=positions[0],
            )
    finally:
        for handle in handles:
            handle.remove()
    return tuple(torch.stack(sink).mean(dim=0).tolist())


def _calibration_text(region: str, question: str | None, calibration: str) -> str:
    """The query region with the question replaced by the content-free query (all of it if not found)."""
    if question and question.strip() and question.strip() in region:
        q = question.strip()
        cut = region.rindex(q)
        return region[:cut] + calibration + region[cut + len(q) :]
    stripped = region.lstrip()
    return region[: len(region) - len(stripped)] + calibration


@torch.inference_mode()
def read_attention(
    model: nn.Module,
    tokenizer: Any,
    prompt: str,
    spans: Sequence[tuple[int, int]],
    *,
    question: str | None = None,
    query_start_char: int | None = None,
    calibration: str = CALIBRATION_QUERY,
    calibrate: bool = True,
    layers: LayerSelection = "all",
) -> AttentionReadout:
    """Read the attention from the query (the prompt after the last document, or from ``query_start_char``) to
    each document ``spans[i]`` (characters of ``prompt``), and with ``calibrate`` the attention of the
    content-free query (the region with ``question`` replaced by ``calibration``, or all of it replaced when
    the question is not given or not found) at the same place.

    Cost: one forward pass over the documents with the model's own attention kernel, plus one eager pass per
    query over the query's tokens only (a copy of the documents' cache serves the calibration).
    """
    from posrag.architectures import attention_modules
    from posrag.steering.spans import char_span_to_tokens, encode_with_offsets, first_token_at_or_after

    checked = check_spans(prompt, spans)
    cut = query_start(prompt, checked) if query_start_char is None else int(query_start_char)
    if not 0 < cut < len(prompt) or not prompt[cut:].strip():
        raise ConfigurationError(
            f"The query starts at character {cut} of a {len(prompt)}-character prompt and is empty; the query "
            "(the question) must follow the documents."
        )
    if any(end > cut for _, end in checked):
        raise ConfigurationError(f"Every document must end before the query (character {cut}); got {checked}.")
    chosen = _select_layers(model, layers)
    encoded = encode_with_offsets(tokenizer, prompt)
    token_spans = [char_span_to_tokens(encoded, s, e, tokenizer) for s, e in checked]
    first_query = first_token_at_or_after(encoded, cut, tokenizer)
    if first_query >= encoded.num_tokens:
        raise ConfigurationError("No token of the prompt starts after the last document; there is no query.")
    first_query = max(first_query, max(span.end for span in token_spans))
    device = next(model.parameters()).device
    ids = encoded.input_ids.to(device)
    columns = torch.zeros(first_query, len(token_spans), device=device)
    for d, span in enumerate(token_spans):
        columns[span.start : span.end, d] = 1.0
    attention = attention_modules(model)

    prefix = model(input_ids=ids[:, :first_query], use_cache=True, logits_to_keep=1)
    cache = prefix.cache if getattr(prefix, "cache", None) is not None else prefix.past_key_values
    calibration_cache = copy.deepcopy(cache) if calibrate else None
    query_ids = ids[:, first_query:]
    query_mass = _document_masses(model, attention, chosen, cache, query_ids, first_query, columns)
    calibration_mass = None
    calibration_tokens = 0
    if calibrate:
        text = _calibration_text(prompt[cut:], question, calibration)
        calibration_ids = tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"].to(device)
        calibration_tokens = int(calibration_ids.shape[1])
        if calibration_tokens == 0:
            raise ConfigurationError(f"calibration={calibration!r} tokenizes to nothing; pass a non-empty text.")
        calibration_mass = _document_masses(
            model, attention, chosen, calibration_cache, calibration_ids, first_query, columns
        )
    return AttentionReadout(
        query_mass=query_mass,
        calibration_mass=calibration_mass,
        token_spans=tuple((span.start, span.end) for span in token_spans),
        layers=chosen,
        query_tokens=int(query_ids.shape[1]),
        calibration_tokens=calibration_tokens,
    )


def attention_relevance(
    model: nn.Module,
    tokenizer: Any,
    prompt: str,
    spans: Sequence[tuple[int, int]],
    *,
    question: str | None = None,
    corrected: bool = True,
    **options: Any,
) -> RelevanceScores:
    """The model's position-corrected attention from the query to each document (``attention``), or the raw
    attention with ``corrected=False`` (``attention_raw``); ``options`` as :func:`read_attention`."""
    readout = read_attention(model, tokenizer, prompt, spans, question=question, calibrate=corrected, **options)
    return readout.relevance(corrected=corrected)


__all__ = [
    "CALIBRATION_QUERY",
    "AttentionReadout",
    "LayerSelection",
    "attention_relevance",
    "eager_attention",
    "read_attention",
]
