"""Activation steering: add a document-derived vector to the residual stream after a decoder layer.

At a target layer, for every position after the documents (the question and the answer being written),
a planned document adds ``intensity · ‖h‖ · unit(v − proj_h v)``: its vector ``v`` made orthogonal to the
current hidden state ``h`` (so it adds a direction without overwriting what is there) and scaled relative to
``‖h‖`` (so one intensity means the same at every layer and position, whatever the model's activation
scale). Several documents at one layer are mixed by :func:`combined_steer` (intensity-weighted direction,
norm of the strongest).

Vector sources:

* ``hidden_mean`` (default): the model's own mean hidden state over the document's tokens *at that layer*,
  taken from the prefill pass of the same request (no extra forward pass), minus the mean over the whole
  context when ``center`` is on. It is cached in the hook's closure for the decode steps.
* ``embedding``: a sentence-transformer embedding of the document, brought to the model's width by
  :func:`align_dimension`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import torch
from torch import nn

from posrag.errors import PosragError
from posrag.steering.spans import TokenSpan

_EPS = 1e-6


@dataclass(frozen=True)
class ActivationTarget:
    """One document's steering at one layer: its token span, intensity and (optionally) a fixed vector."""

    span: TokenSpan
    intensity: float
    vector: torch.Tensor | None = None  # None: the hidden mean over ``span`` at this layer


@lru_cache(maxsize=16)
def _alignment_matrix(source_dim: int, target_dim: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(1_000_003 * source_dim + target_dim)
    big, small = max(source_dim, target_dim), min(source_dim, target_dim)
    q, r = torch.linalg.qr(torch.randn(big, small, generator=generator, dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r))  # a unique, deterministic orthonormal basis
    return q.to(torch.float32)  # big × small, orthonormal columns


def align_dimension(vector: torch.Tensor, width: int) -> torch.Tensor:
    """Bring an embedding to the model's hidden width (the seed's "dynamic dimension alignment").

    The alignment is a fixed isometry: a ``width × k`` matrix with orthonormal columns, drawn once from a
    seed that depends only on the two sizes, maps a ``k``-dimensional embedding into the hidden space (k ≤
    width), so norms and the angles between documents' embeddings are kept exactly; for k > width the
    transpose projects onto a fixed ``width``-dimensional subspace (Johnson–Lindenstrauss). Identity when
    the sizes already match. It aligns *dimensions*, not meanings: the direction is consistent across
    documents and runs, but it is not a direction the model itself uses for that document, which is why
    ``hidden_mean`` is the default source.
    """
    vector = vector.to(torch.float32).reshape(-1)
    k = vector.shape[0]
    if k == width:
        return vector.clone()
    matrix = _alignment_matrix(k, width)
    return matrix @ vector if k < width else matrix.T @ vector


def orthogonal_steer(hidden: torch.Tensor, vector: torch.Tensor, intensity: float) -> torch.Tensor:
    """``intensity · ‖h‖ · unit(v − proj_h v)`` for each row ``h`` of ``hidden`` (…, d); zero where undefined."""
    h = hidden.to(torch.float32)
    v = vector.to(device=h.device, dtype=torch.float32)
    h_norm_sq = (h * h).sum(-1, keepdim=True)
    perp = v - ((h @ v).unsqueeze(-1) / h_norm_sq.clamp_min(_EPS)) * h
    perp_norm = perp.norm(dim=-1, keepdim=True)
    unit = torch.where(perp_norm > _EPS, perp / perp_norm.clamp_min(_EPS), torch.zeros_like(perp))
    return intensity * h_norm_sq.sqrt() * unit


def combined_steer(
    hidden: torch.Tensor, vectors: Sequence[torch.Tensor] | torch.Tensor, intensities: Sequence[float] | torch.Tensor
) -> torch.Tensor:
    """The steer of several documents at once: direction ``unit(Σ sₖ·uₖ)``, norm ``max sₖ · ‖h‖``.

    ``uₖ`` is document k's unit vector orthogonal to ``h`` and ``sₖ`` its intensity, so a document in a worse
    position pulls the direction harder, while the total never exceeds the strongest single steer: ten
    similar documents do not add up to ten times the push. For one document this is :func:`orthogonal_steer`.
    ``vectors`` may be a list or a stacked (K, d) tensor (one vectorised pass either way).
    """
    if len(vectors) == 1:
        return orthogonal_steer(hidden, vectors[0], float(intensities[0]))
    h = hidden.to(torch.float32)
    v = vectors if isinstance(vectors, torch.Tensor) else torch.stack(list(vectors))
    v = v.to(device=h.device, dtype=torch.float32)  # (K, d)
    s = torch.as_tensor(intensities, dtype=torch.float32, device=h.device)  # (K,)
    h_norm_sq = (h * h).sum(-1, keepdim=True)  # (..., 1)
    coefficients = (h @ v.T) / h_norm_sq.clamp_min(_EPS)  # (..., K)
    perp = v - coefficients.unsqueeze(-1) * h.unsqueeze(-2)  # (..., K, d)
    perp_norm = perp.norm(dim=-1, keepdim=True)
    units = torch.where(perp_norm > _EPS, perp / perp_norm.clamp_min(_EPS), torch.zeros_like(perp))
    mix = (s.unsqueeze(-1) * units).sum(-2)  # (..., d)
    mix_norm = mix.norm(dim=-1, keepdim=True)
    unit = torch.where(mix_norm > _EPS, mix / mix_norm.clamp_min(_EPS), torch.zeros_like(mix))
    return s.max() * h_norm_sq.sqrt() * unit


def _document_vectors(
    hidden: torch.Tensor, targets: Sequence[ActivationTarget], context: tuple[int, int], center: bool
) -> list[torch.Tensor]:
    """Each target's vector at this layer, from the prefill hidden states ``hidden`` (1, T, d)."""
    h = hidden[0].to(torch.float32)
    baseline = h[context[0] : context[1]].mean(0) if center and context[1] > context[0] else None
    vectors = []
    for target in targets:
        if target.vector is not None:
            vectors.append(target.vector.to(device=h.device, dtype=torch.float32))
            continue
        mean = h[target.span.start : target.span.end].mean(0)
        vectors.append(mean - baseline if baseline is not None else mean)
    return vectors


def activation_hook(
    targets: Sequence[ActivationTarget],
    steer_from: int,
    context: tuple[int, int],
    center: bool,
) -> Callable[[nn.Module, Any, Any], Any]:
    """A forward hook for one decoder layer (a closure with its own position counter and vector cache).

    ``steer_from``: the first token index to steer (the question and everything generated after it);
    ``context``: the token range whose mean centres ``hidden_mean`` vectors.
    """
    seen = 0
    vectors: torch.Tensor | None = None
    intensities = torch.zeros(0)
    min_prefill = max([context[1], *(t.span.end for t in targets)])

    def hook(module: nn.Module, args: Any, output: Any) -> Any:
        nonlocal seen, vectors, intensities
        hidden = output[0] if isinstance(output, tuple) else output
        if not isinstance(hidden, torch.Tensor) or hidden.dim() != 3:
            raise PosragError(
                f"{type(module).__name__} returned {type(hidden).__name__}, not a (batch, seq, hidden) tensor; "
                "posrag's activation steering cannot hook this architecture's decoder layers."
            )
        offset, length = seen, hidden.shape[1]
        seen += length
        if vectors is None:
            if offset != 0 or length < min_prefill:
                raise PosragError(
                    "Activation steering expected a prefill pass over the prompt first (at least "
                    f"{min_prefill} tokens) but saw {length} tokens at offset {offset}; steered generation needs "
                    "a fresh request (no pre-filled cache, no chunked prefill)."
                )
            vectors = torch.stack(_document_vectors(hidden, targets, context, center))
            intensities = torch.tensor([t.intensity for t in targets], dtype=torch.float32, device=hidden.device)
        start = max(steer_from - offset, 0)
        if start >= length:
            return None
        tail = hidden[:, start:]
        delta = combined_steer(tail, vectors, intensities)
        steered = torch.cat([hidden[:, :start], (tail.to(torch.float32) + delta).to(hidden.dtype)], dim=1)
        if isinstance(output, tuple):
            return (steered, *output[1:])
        return steered

    return hook


__all__ = ["ActivationTarget", "activation_hook", "align_dimension", "combined_steer", "orthogonal_steer"]
