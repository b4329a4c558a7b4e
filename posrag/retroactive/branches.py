"""The two passes under retroactive exploration: the prompt once (:class:`PromptState`), then many branches at once.

A branch is one copy of the generated token (and, for path expansion, its continuation) at its own position
ids, after the shared prefix. All branches of a step go through one forward pass as new tokens of one
sequence; a 4D additive mask (:func:`branch_masks`) lets each see the cached prefix and its own branch only,
causally and within the sliding window, by sequence index. The prefix tensors are never written to: each pass
starts from a new cache built from them (:func:`new_cache`). See :mod:`posrag.retroactive.generator` for the
semantics of gaps and positions.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from posrag.errors import UnsupportedArchitectureError
from posrag.retroactive.results import Number


@dataclass(frozen=True, eq=False)
class PromptState:
    """A prompt run once through the model: its ids, its per-layer KV cache, the next-token log-probs.

    Every method of :class:`~posrag.retroactive.generator.RetroactivePositionGenerator` accepts one in place
    of a prompt, so several explorations of the same prompt share one prefix pass (see its ``prefill``).
    """

    input_ids: tuple[int, ...]
    text: str | None
    past: tuple[tuple[torch.Tensor, torch.Tensor], ...]
    log_probs: torch.Tensor

    @property
    def length(self) -> int:
        return len(self.input_ids)

    @property
    def token_id(self) -> int:
        """The greedy next token (the one explored)."""
        return int(self.log_probs.argmax())

    @property
    def token_prob(self) -> float:
        return float(self.log_probs.max().exp())

    @property
    def entropy(self) -> float:
        """Entropy (nats) of the distribution the token was chosen from: the model's uncertainty."""
        return float(torch.special.entr(self.log_probs.exp()).sum())


Prompt = str | Sequence[int] | PromptState


@torch.inference_mode()
def run_prefix(model: Any, ids: tuple[int, ...], text: str | None, layer_types: Sequence[str]) -> PromptState:
    """Run the prompt once, keeping its KV cache and the log-probs of its last position only."""
    out = model(input_ids=torch.tensor([ids], device=model.device), use_cache=True, logits_to_keep=1, return_dict=True)
    past = tuple(_cache_tensors(model, out.cache, layer_types))
    log_probs = torch.log_softmax(out.logits[0, -1].float(), dim=-1)
    return PromptState(input_ids=ids, text=text, past=past, log_probs=log_probs)


def _cache_tensors(model: Any, cache: Any, layer_types: Sequence[str]) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
    layers = getattr(cache, "layers", None)
    if layers is None or len(layers) != len(layer_types):
        raise UnsupportedArchitectureError(
            f"{type(model).__name__} returned a cache without one key/value layer per decoder layer; "
            "retroactive exploration needs a transformers DynamicCache."
        )
    for layer in layers:
        if getattr(layer, "keys", None) is None or layer.keys.numel() == 0:
            raise UnsupportedArchitectureError(
                f"{type(model).__name__}: a cache layer holds no keys (shared or linear-attention "
                "layers are not supported by retroactive exploration)."
            )
        yield layer.keys, layer.values


def new_cache(state: PromptState) -> Any:
    """A fresh cache over the prefix's tensors (plain DynamicLayers concatenate into new tensors)."""
    from transformers import DynamicCache

    return DynamicCache(ddp_cache_data=[(k, v) for k, v in state.past])


def branch_masks(
    model: Any,
    state: PromptState,
    step: int,
    branches: int,
    *,
    layer_types: Sequence[str],
    window: int | None,
) -> torch.Tensor | dict[str, torch.Tensor]:
    """The 4D additive mask(s) for ``branches`` new tokens at step ``step`` of as many independent branches.

    Keys are the cached prefix, then for each earlier step one key per branch, then this step's keys. A
    query sees the prefix and its own branch, causally and within the sliding window, by sequence index.
    One mask per layer kind (a dict when the model has several, as transformers takes them).
    """
    device, dtype = model.device, model.dtype
    length = state.length
    masks: dict[str, torch.Tensor] = {}
    for kind in dict.fromkeys(layer_types):
        counts = {state.past[i][0].shape[-2] for i, t in enumerate(layer_types) if t == kind}
        if len(counts) != 1:
            raise UnsupportedArchitectureError(
                f"{type(model).__name__}: {kind} layers cache different numbers of tokens ({sorted(counts)}); "
                "retroactive exploration needs one mask per layer kind."
            )
        cached = counts.pop()
        key_seq = torch.cat(
            [
                torch.arange(length - cached, length, device=device),
                length + torch.arange(step + 1, device=device).repeat_interleave(branches),
            ]
        )
        key_branch = torch.cat(
            [
                torch.full((cached,), -1, device=device),
                torch.arange(branches, device=device).repeat(step + 1),
            ]
        )
        query_seq = torch.full((branches, 1), length + step, device=device)
        query_branch = torch.arange(branches, device=device)[:, None]
        allowed = (key_seq[None] <= query_seq) & ((key_branch[None] < 0) | (key_branch[None] == query_branch))
        if kind == "sliding_attention" and window:
            allowed &= key_seq[None] > query_seq - window
        mask = torch.zeros(allowed.shape, dtype=dtype, device=device)
        mask.masked_fill_(~allowed, torch.finfo(dtype).min)
        masks[kind] = mask[None, None]
    return masks if len(masks) > 1 else next(iter(masks.values()))


def branch_step(
    model: Any,
    state: PromptState,
    cache: Any,
    token_ids: torch.Tensor,
    positions: Sequence[Number],
    step: int,
    *,
    layer_types: Sequence[str],
    window: int | None,
) -> torch.Tensor:
    """One batched pass of ``len(token_ids)`` branch tokens; their next-token log-probs, (B, vocab) fp32.

    ``cache`` grows by one token per branch; integer positions stay ``long``, fractional ones (RoPE) float.
    """
    device = model.device
    if all(isinstance(p, int) for p in positions):
        position_ids = torch.tensor([list(positions)], dtype=torch.long, device=device)
    else:
        position_ids = torch.tensor([[float(p) for p in positions]], dtype=torch.float32, device=device)
    out = model(
        input_ids=token_ids[None].to(device),
        position_ids=position_ids,
        attention_mask=branch_masks(model, state, step, len(positions), layer_types=layer_types, window=window),
        cache=cache,
        use_cache=True,
        return_dict=True,
    )
    return torch.log_softmax(out.logits[0].float(), dim=-1)


def chunked(gaps: Sequence[Number], chunk_size: int) -> list[Sequence[Number]]:
    """Split into as few passes as ``chunk_size`` allows, of (nearly) equal size."""
    n_chunks = -(-len(gaps) // chunk_size)
    size = -(-len(gaps) // n_chunks)
    return [gaps[i : i + size] for i in range(0, len(gaps), size)]


__all__ = ["Prompt", "PromptState", "branch_masks", "branch_step", "chunked", "new_cache", "run_prefix"]
