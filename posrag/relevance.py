"""posrag's own relevance of documents that came without a retrieval score.

A standard retriever (``vectorstore.as_retriever()``) hands over documents but no scores, and steering every one
of them at full strength pulls the model toward the distractors too. Two ways to score them, one score per
document, higher = more relevant, returned as a :class:`RelevanceScores`:

* ``embedding``: cosine similarity between the query and each document by a sentence-transformers embedder
  (the packaged all-MiniLM-L6-v2 by default). Cheap; the same signal a dense retriever uses.
* ``attention``: the model's own attention from the query tokens to each document's tokens, **corrected for
  position**. "Found in the Middle" (Hsieh et al., 2024) shows that the attention a document receives is its
  relevance plus a bias of its position; In-Context Re-ranking (Chen et al., ICLR 2025) removes that bias by
  subtracting the attention that a *content-free* query (``"N/A"``) pays to the same documents at the same
  positions. posrag does the same, at the cost of one prefill of the prompt plus two short passes over the
  query: the documents are encoded once (the model's own attention kernel), then the query and the content-free
  query each run on a copy of that cache with eager attention, whose weights forward hooks read and reduce
  at once. The correction also removes what is intrinsic to a document and not to the question (its length,
  tokens every query looks at). ``attention_raw`` is the uncorrected attention, for comparison.
* ``rank_mean`` / ``z_mean``: :func:`combine` several results (mean rank, or mean of z-scores).

In a RAG prompt the question follows the documents, so :func:`query_after_documents` takes the text after the
last located document as the query when the question itself is not known.

Call it like this (``spans``: each located document's ``(start, end)`` characters in ``prompt``)::

    from posrag.relevance import attention_relevance, embedding_relevance, query_after_documents

    query = query_after_documents(prompt, spans)
    by_embedding = embedding_relevance(query, [prompt[s:e] for s, e in spans])
    by_attention = attention_relevance(model, tokenizer, prompt, spans)
    best = by_attention.top()  # index into spans

``benchmarks/relevance.py`` measures which one picks the answer document more often; see ``docs/relevance.md``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from posrag.errors import ConfigurationError

RelevanceMethod = Literal["embedding", "attention", "attention_raw"]
Combination = Literal["rank_mean", "z_mean"]
LayerSelection = Literal["all", "global"] | Sequence[int]

#: The content-free query whose attention calibrates the position bias (as In-Context Re-ranking's "N/A").
CALIBRATION_QUERY = "N/A"


# ----------------------------------------------------------------------------- results


@dataclass(frozen=True)
class RelevanceScores:
    """One relevance score per document (in the order given), higher = more relevant, and how it was made."""

    method: str
    scores: tuple[float, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "scores", tuple(float(s) for s in self.scores))
        if any(math.isnan(s) for s in self.scores):
            raise ConfigurationError(f"Relevance scores of method {self.method!r} contain NaN: {self.scores}.")

    def __len__(self) -> int:
        return len(self.scores)

    def ranking(self) -> list[int]:
        """Document indices, best first; ties keep the documents' order."""
        return sorted(range(len(self.scores)), key=lambda i: (-self.scores[i], i))

    def top(self) -> int:
        """Index of the best document (the first of a tie)."""
        if not self.scores:
            raise ConfigurationError(f"Relevance of method {self.method!r} has no documents; nothing ranks first.")
        return self.ranking()[0]

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "scores": list(self.scores)}


# ----------------------------------------------------------------------------- the query


def _check_spans(prompt: str, spans: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    checked = [(int(s), int(e)) for s, e in spans]
    if not checked:
        raise ConfigurationError("No document spans were given; relevance needs at least one located document.")
    for start, end in checked:
        if not 0 <= start < end <= len(prompt):
            raise ConfigurationError(
                f"Document span [{start}, {end}) is outside the prompt (length {len(prompt)}); spans must be "
                "character ranges of the very prompt string."
            )
    return checked


def query_start(prompt: str, spans: Sequence[tuple[int, int]]) -> int:
    """The character where the query begins: the end of the last located document."""
    return max(end for _, end in _check_spans(prompt, spans))


def query_after_documents(prompt: str, spans: Sequence[tuple[int, int]]) -> str:
    """The text after the last located document, stripped: the query of a RAG prompt (the question follows
    the documents). Raises if nothing but whitespace follows them."""
    query = prompt[query_start(prompt, spans) :].strip()
    if not query:
        raise ConfigurationError(
            "Nothing follows the last document in the prompt, so there is no query to score the documents "
            "against; pass the question explicitly."
        )
    return query


# ----------------------------------------------------------------------------- embedding


def embedding_relevance(query: str, documents: Sequence[str], embedder: Any = None) -> RelevanceScores:
    """Cosine similarity of ``query`` to each document by ``embedder`` (``posrag.models.load_embedder()`` if
    ``None``; any object with sentence-transformers' ``encode(texts, normalize_embeddings=, convert_to_numpy=)``).
    """
    if not query.strip():
        raise ConfigurationError("The query is empty; pass the question (or use query_after_documents).")
    if not documents:
        raise ConfigurationError("No documents were given to score.")
    if embedder is None:
        from posrag.models import load_embedder

        embedder = load_embedder()
    vectors = np.asarray(
        embedder.encode([query, *documents], normalize_embeddings=True, convert_to_numpy=True), dtype=np.float64
    )
    # Normalize again: a custom embedder may ignore normalize_embeddings.
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors = np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)
    return RelevanceScores("embedding", tuple((vectors[1:] @ vectors[0]).tolist()))


# ----------------------------------------------------------------------------- attention


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

    checked = _check_spans(prompt, spans)
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


# ----------------------------------------------------------------------------- combining


def _ranks(scores: Sequence[float]) -> np.ndarray:
    """Average ranks, 0 = best (ties share the mean of their ranks)."""
    values = np.asarray(scores, dtype=np.float64)
    order = np.argsort(-values, kind="stable")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(len(values), dtype=np.float64)
    for value in np.unique(values):
        tied = values == value
        ranks[tied] = ranks[tied].mean()
    return ranks


def combine(results: Sequence[RelevanceScores], how: Combination = "rank_mean") -> RelevanceScores:
    """One score per document from several results on different scales: ``rank_mean`` (minus the mean rank)
    or ``z_mean`` (the mean of each result's z-scores; a result with no spread contributes zeros)."""
    if not results:
        raise ConfigurationError("combine() needs at least one RelevanceScores.")
    sizes = {len(r) for r in results}
    if len(sizes) != 1:
        raise ConfigurationError(f"Relevance results to combine score different numbers of documents: {sizes}.")
    if how == "rank_mean":
        combined = -np.mean([_ranks(r.scores) for r in results], axis=0)
    elif how == "z_mean":
        rows = []
        for r in results:
            values = np.asarray(r.scores, dtype=np.float64)
            spread = values.std()
            rows.append((values - values.mean()) / spread if spread > 0 else np.zeros_like(values))
        combined = np.mean(rows, axis=0)
    else:
        raise ConfigurationError(f"how={how!r} must be 'rank_mean' or 'z_mean'.")
    name = f"{how}({'+'.join(r.method for r in results)})"
    return RelevanceScores(name, tuple(combined.tolist()))


__all__ = [
    "CALIBRATION_QUERY",
    "AttentionReadout",
    "RelevanceScores",
    "attention_relevance",
    "combine",
    "eager_attention",
    "embedding_relevance",
    "query_after_documents",
    "query_start",
    "read_attention",
]
