"""posrag's two steering mechanisms as a llama.cpp graph-evaluation callback (``cb_eval``).

llama.cpp's scheduler calls the callback twice per graph node it evaluates: once with ``ask=True`` (does the
callback want this node? answering False lets the scheduler compute on without stopping), then, for a wanted
node, with ``ask=False`` right after computing it, before any node that depends on it runs. On the CPU backend
the node's data can then be read *and changed* in place. Two nodes per layer are used (ik_llama.cpp names,
also upstream's, flash attention off):

* ``kq-<layer>``: the raw attention scores, f32, ``ne = (n_kv, n_tokens, n_head)`` (key cell, query row,
  head). llama.cpp then computes ``soft_max_ext(kq, mask, scale)`` = softmax(scale·kq + mask), so a bias ``b``
  on the scaled scores (what the torch backend adds) is ``b / scale`` here. The scale is read from the softmax
  node's parameters when the model is loaded (:class:`~posrag.backends.llamacpp_nodes.ScaleProbe`), never
  assumed. Key cell ``i`` holds position ``i`` because each request's sequence starts at 0 in a cleared cache;
  the mask added later keeps masked cells at -inf, so biasing the whole column is safe.
* ``l_out-<layer>``: the decoder layer's output (the residual stream), f32, ``ne = (n_embd, n_rows)``: the same
  tensor the torch backend's layer hook sees. Activation steering adds :func:`steer` (the torch backend's
  :func:`posrag.steering.activation.combined_steer` in numpy; tested equal) to the rows from the question on; the
  ``hidden_mean`` vectors are accumulated from the prefill rows over each document's span (and the context, for
  centering) as they pass, so a prefill split into several micro-batches gives the same vectors.

Attention bias through the mask. Every layer's softmax adds an attention mask, an input tensor llama.cpp writes
before each evaluation and several layers share (``KQ_mask``; Gemma 3 has a second, ``KQ_mask_swa``, for its
sliding-window layers). When the steered layers of one mask are all the layers that read it from some layer on,
with one bias row, the bias is added once to that mask instead of to each layer's ``kq`` (:func:`plan_mask_bias`):
just before the first steered layer's softmax reads it. That is after the previous layer on the same mask has
computed its softmax (the callback wants that node: one stop of the scheduler instead of one per steered layer), or,
when the first layer on the mask is steered, at the moment the scheduler asks about that layer's softmax node,
before anything reading the mask has run (no stop at all): the scheduler asks about a node before it computes it
and the nodes since the last one it stopped at. The sum is the same (``scale·kq + (mask + b)``); a layer whose
``kq`` node has a tap keeps the bias on ``kq``, where the tap reads it.

Everything that depends on one request lives in a :class:`RequestSteering`; the callback of a llama.cpp
context only forwards to the request that currently holds the context.
"""

from __future__ import annotations

import ctypes
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from posrag.backends.llamacpp_nodes import (
    ATTENTION_NODE,
    HEADER_BYTES,
    LAYER_OUTPUT_NODE,
    SOFTMAX_NODE,
    GgmlTensor,
    name_filter,
    node_name,
    tensor_array,
)
from posrag.errors import PosragError
from posrag.steering.activation import ActivationTarget
from posrag.steering.attention import AttentionTarget

_EPS = 1e-6  # as posrag.steering.activation
_MAX_NODES = 256  # a request's cached node views (a decode step has one per wanted node; the prefill a few more)


def bias_by_position(targets: Sequence[AttentionTarget], scale: float) -> np.ndarray:
    """The bias each key position gets at one layer, in llama.cpp's unscaled ``kq`` units (bias / scale)."""
    end = max((t.span.end for t in targets if t.bias), default=0)
    row = np.zeros(end, dtype=np.float32)
    for target in targets:
        row[target.span.start : target.span.end] += target.bias
    return row / np.float32(scale)


def add_attention_bias(scores: np.ndarray, first_position: int, steer_from: int, bias: np.ndarray) -> None:
    """Add ``bias`` (by key position) to the score rows of queries at ``steer_from`` and after, in place.

    ``scores``: (..., n_rows, n_kv), row ``r`` the query at ``first_position + r``, column ``c`` key position ``c``.
    """
    biased = attention_bias_slices(scores, first_position, steer_from, bias)
    if biased is not None:
        biased[0][...] += biased[1]


def attention_bias_slices(
    scores: np.ndarray, first_position: int, steer_from: int, bias: np.ndarray
) -> tuple[np.ndarray, np.ndarray] | None:
    """The view of ``scores`` that :func:`add_attention_bias` changes and the bias row it adds (``None``: none)."""
    start = max(steer_from - first_position, 0)
    columns = min(scores.shape[-1], bias.shape[0])
    if start < scores.shape[-2] and columns:
        return scores[..., start:, :columns], bias[:columns]
    return None


def plan_mask_bias(
    rows: Mapping[int, np.ndarray], masks: Mapping[int, str]
) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray], frozenset[int]]:
    """Which layers' attention bias can go into the mask they share, and where it is added.

    ``rows``: each steered layer's bias by key position, in the softmax's (scaled) units; ``masks``: the name of
    the mask each layer's softmax reads (every layer of the model, or empty: none known). A mask takes the bias
    when the layers steered on it are all its layers from some layer on and have one bias row. Returns
    ``(after, before, covered)``: layer -> bias row, add the row to that layer's mask after its softmax ran (the
    layer before the first steered one on the mask) or before its softmax runs (the first layer on the mask is
    steered); and the steered layers this covers. Any other steered layer keeps its bias on ``kq``.
    """
    groups: dict[str, list[int]] = {}
    for layer in sorted(masks):
        groups.setdefault(masks[layer], []).append(layer)
    after: dict[int, np.ndarray] = {}
    before: dict[int, np.ndarray] = {}
    covered: set[int] = set()
    for layers in groups.values():
        steered = [layer for layer in layers if layer in rows]
        if not steered:
            continue
        first = layers.index(steered[0])
        row = rows[steered[0]]
        if layers[first:] != steered or any(not np.array_equal(rows[layer], row) for layer in steered):
            continue
        if first:
            after[layers[first - 1]] = row
        else:
            before[layers[0]] = row
        covered.update(steered)
    return after, before, frozenset(covered)


def steer(hidden: np.ndarray, vectors: np.ndarray, intensities: np.ndarray) -> np.ndarray:
    """:func:`posrag.steering.activation.combined_steer` in numpy (the same formula, a tenth of torch's per-call
    overhead on the one row of a decode step): ``max s · ‖h‖ · unit(Σ sₖ·uₖ)``, ``uₖ`` the unit of ``vₖ − proj_h vₖ``.

    ``hidden`` (n, d), ``vectors`` (K, d), ``intensities`` (K,); for K = 1 this is ``orthogonal_steer``.
    """
    h_norm_sq = np.einsum("nd,nd->n", hidden, hidden)[:, None]  # (n, 1)
    coefficients = (hidden @ vectors.T) / np.maximum(h_norm_sq, _EPS)  # (n, K)
    perp = vectors[None] - coefficients[..., None] * hidden[:, None]  # (n, K, d)
    perp_norm = np.linalg.norm(perp, axis=-1, keepdims=True)
    units = np.where(perp_norm > _EPS, perp / np.maximum(perp_norm, _EPS), 0.0).astype(np.float32)
    if len(vectors) == 1:
        return (intensities[0] * np.sqrt(h_norm_sq) * units[:, 0]).astype(np.float32)
    mix = np.einsum("k,nkd->nd", intensities, units)
    mix_norm = np.linalg.norm(mix, axis=-1, keepdims=True)
    unit = np.where(mix_norm > _EPS, mix / np.maximum(mix_norm, _EPS), 0.0)
    return (intensities.max() * np.sqrt(h_norm_sq) * unit).astype(np.float32)


@dataclass
class LayerActivation:
    """Activation steering at one layer for one request: accumulates the ``hidden_mean`` vectors, then steers."""

    targets: Sequence[ActivationTarget]
    steer_from: int
    context: tuple[int, int]
    center: bool
    _sums: np.ndarray | None = None  # (K, d), float64
    _context_sum: np.ndarray | None = None
    _started_at: int | None = None
    vectors: np.ndarray | None = None
    intensities: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32))

    def __call__(self, hidden: np.ndarray, first_position: int) -> None:
        """``hidden``: (n_rows, d) f32, row ``r`` at ``first_position + r``; steered in place."""
        rows = hidden.shape[0]
        if self.vectors is None:
            self._accumulate(hidden, first_position)
            if first_position + rows <= self.steer_from:
                return
            self._finish()
        start = max(self.steer_from - first_position, 0)
        if start >= rows:
            return
        tail = hidden[start:]
        tail += steer(tail, self.vectors, self.intensities)  # type: ignore[arg-type]

    def _accumulate(self, hidden: np.ndarray, first: int) -> None:
        if self._started_at is None:
            self._started_at = first
            self._sums = np.zeros((len(self.targets), hidden.shape[1]))
            self._context_sum = np.zeros(hidden.shape[1])
        assert self._sums is not None and self._context_sum is not None
        last = first + hidden.shape[0]
        for k, target in enumerate(self.targets):
            lo, hi = max(target.span.start, first), min(target.span.end, last)
            if hi > lo:
                self._sums[k] += hidden[lo - first : hi - first].sum(0, dtype=np.float64)
        lo, hi = max(self.context[0], first), min(self.context[1], last)
        if hi > lo:
            self._context_sum += hidden[lo - first : hi - first].sum(0, dtype=np.float64)

    def _finish(self) -> None:
        first_needed = min([self.context[0], *(t.span.start for t in self.targets)])
        if self._started_at is None or self._started_at > first_needed or self._sums is None:
            raise PosragError(
                "Activation steering reads the documents' hidden states during the prefill, but this request's "
                f"first pass started at position {self._started_at}, after position {first_needed}; it cannot "
                "continue a reused prefix. Run the whole prompt, or steer with mechanism='attention'."
            )
        context_count = self.context[1] - self.context[0]
        centered = self.center and context_count > 0 and self._context_sum is not None
        baseline = self._context_sum / context_count if centered else 0.0  # type: ignore[operator]
        vectors = []
        for target, total in zip(self.targets, self._sums, strict=True):
            if target.vector is not None:
                vectors.append(target.vector.detach().to(torch.float32).reshape(-1).numpy())
                continue
            vectors.append(total / max(len(target.span), 1) - baseline)
        self.vectors = np.stack(vectors).astype(np.float32)
        self.intensities = np.array([t.intensity for t in self.targets], dtype=np.float32)


_Node = tuple[str, np.ndarray, "Callable[[np.ndarray], None] | None", "Callable[[np.ndarray, int], None] | None"]


class RequestSteering:
    """One request's steering, as the nodes it acts on: what the callback does while this request runs.

    ``scales``: each layer's softmax scale and ``masks`` the name of the mask each layer's softmax reads
    (:class:`~posrag.backends.llamacpp_nodes.ScaleProbe`; empty: every bias goes on ``kq``); ``taps``: extra
    read-only observers by node name, called with the node's array and the position of its first row after
    steering (diagnostics, tests). The backend sets :attr:`first_position` / :attr:`batch_size` before each
    ``llama_decode``.
    """

    def __init__(
        self,
        *,
        steer_from: int,
        context: tuple[int, int],
        activation: Mapping[int, Sequence[ActivationTarget]],
        attention: Mapping[int, Sequence[AttentionTarget]],
        scales: Mapping[int, float],
        center: bool = True,
        taps: Mapping[str, Callable[[np.ndarray, int], None]] | None = None,
        masks: Mapping[int, str] | None = None,
    ) -> None:
        self.steer_from = steer_from
        self.first_position = 0
        self.batch_size = 0
        self.calls: Counter[str] = Counter()
        self.error: BaseException | None = None
        self._handlers: dict[bytes, Callable[[np.ndarray], None]] = {}
        attention = {layer: targets for layer, targets in attention.items() if any(t.bias for t in targets)}
        for layer in attention:
            if layer not in scales:
                raise PosragError(f"No softmax scale known for layer {layer}; the model has layers {sorted(scales)}.")
        tapped = {name.encode() for name in taps or {}}  # a tap on kq reads the bias there
        untapped = {
            layer: bias_by_position(targets, 1.0)
            for layer, targets in attention.items()
            if ATTENTION_NODE.format(layer).encode() not in tapped
        }
        after, before, covered = plan_mask_bias(untapped, masks or {})
        # softmax node -> the bias row its mask gets after the node ran / when the scheduler asks about it
        self._mask_rows = {SOFTMAX_NODE.format(layer).encode(): row for layer, row in after.items()}
        self._on_ask = {SOFTMAX_NODE.format(layer).encode(): row for layer, row in before.items()}
        for layer, targets in attention.items():
            if layer not in covered:
                self._handlers[ATTENTION_NODE.format(layer).encode()] = self._attention(
                    bias_by_position(targets, scales[layer])
                )
        for layer, act_targets in activation.items():
            if act_targets:
                self._handlers[LAYER_OUTPUT_NODE.format(layer).encode()] = self._activation(
                    LayerActivation(act_targets, steer_from, context, center)
                )
        self._taps = {name.encode(): tap for name, tap in (taps or {}).items()}
        self.wanted = frozenset(self._handlers) | frozenset(self._mask_rows) | frozenset(self._taps)
        self._is_wanted = name_filter(self.wanted | frozenset(self._on_ask))
        self._nodes: dict[bytes, _Node] = {}

    @property
    def active(self) -> bool:
        return bool(self.wanted or self._on_ask)

    def _add_to_mask(self, mask_address: int, row: np.ndarray) -> None:
        """Add ``row`` (by key position) to the rows of the mask at ``mask_address`` that belong to queries at
        ``steer_from`` and after (row ``r``: the query at ``first_position + r``; padding rows stay as they are)."""
        mask = tensor_array(GgmlTensor.from_address(mask_address))  # its data moves between graphs: read it anew
        start = max(self.steer_from - self.first_position, 0)
        columns = min(mask.shape[-1], row.shape[0])
        if start < self.batch_size and columns:
            mask[..., start : self.batch_size, :columns] += row[:columns]

    def _attention(self, bias: np.ndarray) -> Callable[[np.ndarray], None]:
        # Decode steps repeat one node view (cached in evaluate) and one start row: slice once, then only add
        # (what add_attention_bias does, without re-slicing in the hot path). Holds the last view it sliced.
        last: list[Any] = [None, -1, None]  # scores, start row, their attention_bias_slices

        def handle(scores: np.ndarray) -> None:
            first = self.first_position + self.batch_size - scores.shape[-2]
            start = max(self.steer_from - first, 0)
            if scores is not last[0] or start != last[1]:
                last[:] = [scores, start, attention_bias_slices(scores, first, self.steer_from, bias)]
            if last[2] is not None:
                target, row = last[2]
                target += row

        return handle

    def _activation(self, layer: LayerActivation) -> Callable[[np.ndarray], None]:
        def handle(hidden: np.ndarray) -> None:
            rows = hidden.reshape(-1, hidden.shape[-1])
            # The last layer keeps only the rows whose logits are wanted: the last ones of the batch.
            layer(rows, self.first_position + self.batch_size - rows.shape[0])

        return handle

    def evaluate(self, address: int, ask: bool) -> bool:
        """The callback's work: at ask time, whether this node is wanted; after it is computed, act on it."""
        if ask:
            if not self._is_wanted(address):
                return False
            if not self._on_ask:
                return True
            name = node_name(address)
            row = self._on_ask.get(name)
            if row is not None and self.error is None:
                try:
                    self._add_to_mask(int(GgmlTensor.from_address(address).src[1]), row)
                    self.calls[name.decode()] += 1
                except BaseException as exc:  # raised by the backend after llama_decode returns
                    self.error = exc
            return name in self.wanted
        if self.error is not None:
            return True
        try:
            # The node's whole header (type, shape, strides, sources, data pointer, name) decides its numpy view
            # and what acts on it; decode steps mostly repeat the same few, so both are looked up, not rebuilt.
            header = ctypes.string_at(address, HEADER_BYTES)
            node = self._nodes.get(header)
            if node is None:
                node = self._nodes[header] = self._node(address)
                if len(self._nodes) > _MAX_NODES:
                    self._nodes.clear()
            name, array, handler, tap = node
            self.calls[name] += 1
            if handler is not None:
                handler(array)
            if tap is not None:
                tap(array, self.first_position + self.batch_size - array.shape[-2])
        except BaseException as exc:  # raised by the backend after llama_decode returns
            self.error = exc
        return True

    def _node(self, address: int) -> _Node:
        tensor = GgmlTensor.from_address(address)
        name = bytes(tensor.name)
        handler = self._handlers.get(name)
        row = self._mask_rows.get(name)
        if row is not None:  # the mask's address is part of the header this node is cached under
            mask = int(tensor.src[1])
            handler = lambda _: self._add_to_mask(mask, row)  # noqa: E731
        return name.decode(), tensor_array(tensor), handler, self._taps.get(name)


__all__ = [
    "LayerActivation",
    "RequestSteering",
    "add_attention_bias",
    "attention_bias_slices",
    "bias_by_position",
    "plan_mask_bias",
    "steer",
]
