"""Attention-bias injection: extra attention from the question and answer tokens toward a document's tokens.

A forward pre-hook on a layer's attention module rewrites the ``attention_mask`` keyword it receives: rows of
query positions after the documents (the question and each generated token) get ``+bias`` in the columns of
the document's key positions, an additive term on the (scaled) attention scores before the softmax, so
``bias = log 2`` doubles the weight of each document token relative to the rest.

What the attention module receives in transformers 5 (``masking_utils``): with ``sdpa``, ``None`` when the mask
is plain causal (no padding, full layers or a sequence shorter than the window; sdpa then uses
``is_causal``) or a boolean ``(batch, 1, q, kv)`` mask; with ``eager``, an additive float mask (0 / dtype
min). The hook turns ``None`` into the explicit causal mask and a boolean mask into its additive form before
adding the bias, so both implementations behave alike; flash/flex attention take other mask formats and are
rejected when this mechanism is selected.

Key columns map to absolute positions because a dynamic cache returns the ``kv`` most recent positions ending
at the current query (full layers keep everything; sliding layers keep the window). On sliding-window layers
(Gemma 3: 5 of every 6 layers, window 512 on the 270M) a document further than the window from the question
is masked out for those queries and cannot be reached there: the bias adds to ``-inf`` and changes nothing;
the trace lists only the layers where the document is reachable.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from posrag.steering.spans import TokenSpan

#: Attention implementations whose masks this mechanism understands.
SUPPORTED_ATTENTION = ("sdpa", "eager")


@dataclass(frozen=True)
class AttentionTarget:
    """One document's bias at one attention module: its token span and the additive bias."""

    span: TokenSpan
    bias: float


def reachable(span: TokenSpan, steer_from: int, window: int | None) -> bool:
    """Whether the first steered query (``steer_from``) can attend to any token of ``span`` in a window layer."""
    return window is None or span.end - 1 > steer_from - window


def _additive_base(
    mask: torch.Tensor | None, q_abs: torch.Tensor, k_abs: torch.Tensor, window: int | None, dtype: torch.dtype
) -> torch.Tensor:
    """The layer's mask as an additive float tensor (batch or 1, 1, q, kv)."""
    min_value = torch.finfo(dtype).min
    if mask is None:
        allowed = k_abs[None, :] <= q_abs[:, None]
        if window is not None:
            allowed &= k_abs[None, :] > q_abs[:, None] - window
        zero = torch.zeros((), dtype=dtype, device=q_abs.device)
        return torch.where(allowed, zero, min_value)[None, None]
    if mask.dtype == torch.bool:
        return torch.where(mask, torch.zeros((), dtype=dtype, device=mask.device), min_value)
    return mask


def attention_bias_hook(
    targets: Sequence[AttentionTarget], steer_from: int, window: int | None, start: int = 0
) -> Callable[..., Any]:
    """A forward pre-hook (``with_kwargs=True``) for one attention module, with its own position counter.

    The bias of every key position is precomputed once (documents lie in the prompt), so a decode step only
    slices it: the hook's cost per step is a few tensor operations, whatever the number of documents.
    ``start``: the number of positions already in the KV cache when the hook's first call comes (a reused
    prefix); the bias only touches query rows from ``steer_from`` on, so a prefix before it is unchanged.
    """
    seen = start
    spans = [(t.span.start, t.span.end) for t in targets if t.bias]
    end_of_bias = max((e for _, e in spans), default=0)
    by_position = torch.zeros(end_of_bias, dtype=torch.float32)
    for target in targets:
        by_position[target.span.start : target.span.end] += target.bias
    cached: dict[tuple[torch.device, torch.dtype], torch.Tensor] = {}

    def column_bias(first: int, kv_length: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        key = (device, dtype)
        if key not in cached:
            cached[key] = by_position.to(device=device, dtype=dtype)
        bias = cached[key]
        lo, hi = min(max(first, 0), end_of_bias), min(first + kv_length, end_of_bias)
        row = torch.zeros(kv_length, dtype=dtype, device=device)
        if hi > lo:
            row[lo - first : hi - first] = bias[lo:hi]
        return row

    def hook(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any] | None = None) -> Any:
        nonlocal seen
        if kwargs is None:  # called without kwargs during a concurrent removal: not ours to act on
            return None
        hidden = kwargs.get("hidden_states", args[0] if args else None)
        offset, length = seen, int(hidden.shape[1])
        seen += length
        if steer_from - offset >= length:
            return None
        mask = kwargs.get("attention_mask")
        if mask is not None and not isinstance(mask, torch.Tensor):
            raise TypeError(
                f"posrag's attention bias needs a tensor attention mask, got {type(mask).__name__}; load the "
                f"model with attn_implementation in {SUPPORTED_ATTENTION}."
            )
        kv_length = int(mask.shape[-1]) if mask is not None else offset + length
        first_key = offset + length - kv_length  # absolute position of the first key column
        if not any(s < first_key + kv_length and e > first_key for s, e in spans):
            return None  # no document token among this call's keys (e.g. slid out of the window)
        device = hidden.device
        dtype = mask.dtype if mask is not None and mask.dtype != torch.bool else hidden.dtype
        columns = column_bias(first_key, kv_length, device, dtype)
        if length == 1 and mask is None:  # a decode step with a plain causal mask: every key is visible
            new_mask = columns.view(1, 1, 1, kv_length)
        else:
            q_abs = torch.arange(offset, offset + length, device=device)
            k_abs = torch.arange(first_key, first_key + kv_length, device=device)
            base = _additive_base(mask, q_abs, k_abs, window, dtype)
            if offset >= steer_from:
                new_mask = base + columns.view(1, 1, 1, kv_length)
            else:
                rows = (q_abs >= steer_from).to(dtype)
                new_mask = base + (rows[:, None] * columns[None, :])[None, None]
        return args, {**kwargs, "attention_mask": new_mask}

    return hook


__all__ = ["SUPPORTED_ATTENTION", "AttentionTarget", "attention_bias_hook", "reachable"]
