"""The two passes under retroactive exploration: the prompt once (:class:`PromptState`), then many branches at once.

A branch is one copy of the generated token (and, for path expansion, its continuation) at its own position
ids, after the shared prefix. All branches of a step go through one forward pass as new tokens of one
sequence; a 4D additive mask (:func:`branch_masks`) lets each see the cached prefix and its own branch only,
causally and within the sliding window, by sequence index. The prefix tensors are never written to: each pass
starts from a new cache built from them (:func:`new_cache`). See :mod:`posrag.retroactive.generator` for the
semantics of gaps and positions.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch

from posrag import architectures
from posrag.errors import PosragError, UnsupportedArchitectureError
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
    """Run the prompt once, keeping its KV cache and the log-probs of its last position only.

    Only the last position's logits are computed, and the last layer's MLP runs for the last position only
    (:func:`last_mlp_for_last_row`): nothing else reads the other positions' outputs of the last layer.
    """
    with last_mlp_for_last_row(model):
        out = model(
            input_ids=torch.tensor([ids], device=model.device), use_cache=True, logits_to_keep=1, return_dict=True
        )
    past = tuple(_cache_tensors(model, out.cache, layer_types))
    log_probs = torch.log_softmax(out.logits[0, -1].float(), dim=-1)
    return PromptState(input_ids=ids, text=text, past=past, log_probs=log_probs)


@contextmanager
def last_mlp_for_last_row(model: Any) -> Iterator[None]:
    """While active, the last decoder layer's MLP computes its last row only.

    A prefix pass needs every layer's keys and values for all positions (the branches attend to them), but
    the last layer's output only at the last position (its logits). The MLP after the last attention is about
    70 % of that layer's weights, so skipping it for the other positions saves ~1/num_layers of a prefill.
    The other rows of the MLP's output are the last row broadcast (a view, no compute): wrong values that
    nothing reads, since logits are kept for the last position only. Models without a ``mlp`` module on their
    last layer run unchanged. The hooks are removed on exit, whatever happens.
    """
    try:
        mlp = getattr(architectures.decoder_layers(model)[-1], "mlp", None)
    except PosragError:
        mlp = None
    if not isinstance(mlp, torch.nn.Module):
        yield
        return
    rows: list[int] = []

    def take_last_row(_module: Any, args: tuple[Any, ...]) -> tuple[Any, ...]:
        hidden = args[0]
        rows.append(hidden.shape[-2])
        return (hidden[..., -1:, :], *args[1:])

    def broadcast_back(_module: Any, _args: tuple[Any, ...], output: torch.Tensor) -> torch.Tensor:
        return output.expand(*output.shape[:-2], rows.pop(), output.shape[-1])

    pre = mlp.register_forward_pre_hook(take_last_row)
    try:
        post = mlp.register_forward_hook(broadcast_back)
        try:
            yield
        finally:
            post.remove()
    finally:
        pre.remove()


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


__all__ = [
    "Prompt",
    "PromptState",
    "branch_masks",
    "branch_step",
    "chunked",
    "last_mlp_for_last_row",
    "new_cache",
    "run_prefix",
]
