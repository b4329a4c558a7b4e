"""Whether llama.cpp's batched prompt path computes what decoding computes, checked once when a model loads.

llama.cpp runs a prompt in ubatches of up to ``n_ubatch`` tokens, and its CPU kernels pick other matrix paths for
many rows than for one. Those paths should differ only in summation order and activation rounding; in some
builds, for some quantization types, they are wrong: the ``ik-llama-cpp-python`` 0.1.5 wheel on an AVX-512 CPU
gives SmolLM2-135M's Q4_1 file other attention projections from 32 rows per ubatch on (the first projection of
layer 0 already differs, from the same input), while fewer rows run bit-identically to decoding one token at a
time. Nothing in llama.cpp reports it; the answers just change (``docs/backends.md``).

:func:`check_batches_agree` runs a fixed probe prompt token by token (the path every generated token takes) and in
ubatches of the requested size, then smaller ones, and keeps the largest size whose next-token logits agree. A
lowered size costs prefill speed, never accuracy, and is logged as a warning.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

#: The probe prompt: long enough that every ubatch size tried runs at least one full ubatch of it.
PROBE_TEXT = (
    "Document [1](Title: Lighthouse) The keeper of the north lighthouse from 1890 to 1921 was a woman named "
    "Ottoline Brisk, who kept a log of every ship that passed the point.\n\nQuestion: Who kept the north "
    "lighthouse?\nAnswer:"
)
PROBE_TOKENS = 40
#: The ubatch sizes tried below the requested one, largest first.
SMALLER_SIZES = (32, 31, 16, 8)
#: The correlation of the probe's next-token logits (ubatches against token by token) that counts as the same
#: function. Kernels that differ only in summation order and activation rounding give > 0.998 (Gemma 3 270M
#: Q4_K_M: 0.9989); the wrong Q4_1 path on SmolLM2-135M gave 0.84 at 512 rows and 0.92 at 32.
AGREEMENT = 0.98


@dataclass(frozen=True)
class BatchCheck:
    """The prompt ubatch asked for, the one used, and each tried size's logit correlation with decoding token by
    token."""

    requested: int
    used: int
    agreement: dict[int, float]

    @property
    def lowered(self) -> bool:
        return self.used != self.requested


def check_batches_agree(
    logits: Callable[[Sequence[int], int], np.ndarray], tokenizer: Any, requested: int, model: str
) -> BatchCheck:
    """The largest ubatch size (``requested``, then :data:`SMALLER_SIZES`) whose next-token logits on the probe
    agree with token-by-token decoding; ``logits(ids, ubatch)`` runs a prompt unsteered in ubatches of ``ubatch``
    tokens. ``model`` names the file in the warning a lowered size logs."""
    ids = tokenizer(PROBE_TEXT, add_special_tokens=False)["input_ids"][:PROBE_TOKENS]
    reference = logits(ids, 1)
    agreement: dict[int, float] = {}
    used = 1
    for size in sorted({requested, *(s for s in SMALLER_SIZES if s < requested)}, reverse=True):
        agreement[size] = round(float(np.corrcoef(reference, logits(ids, size))[0, 1]), 5)
        if agreement[size] >= AGREEMENT:
            used = size
            break
    if used != requested:
        logger.warning(
            "llama.cpp's batched prompt path gives %s other logits than decoding token by token (correlation %.3f at "
            "n_ubatch=%d); prompts run in ubatches of %d tokens instead (slower prefill, same results). A build "
            "with correct kernels for this file's quantization, or another quantization, avoids this.",
            model,
            agreement[requested],
            requested,
            used,
        )
    return BatchCheck(requested=requested, used=used, agreement=agreement)


__all__ = ["AGREEMENT", "BatchCheck", "check_batches_agree"]
