"""Opt-in int8 dynamic quantization of a causal LM's linear layers (``load_causal_lm(quantize="int8")``).

Faster CPU decoding (measured in ``docs/generation.md``) at slightly different numerics; steering hooks sit on
the decoder layers and attention modules, which quantization leaves in place.
"""

from __future__ import annotations

from typing import Any

import torch

from posrag.errors import ConfigurationError

#: The values of ``load_causal_lm(quantize=...)``.
QUANTIZE_CHOICES = (None, "int8")


def _check_quantize(quantize: Any, device: str | torch.device, dtype: torch.dtype) -> None:
    if quantize not in QUANTIZE_CHOICES:
        raise ConfigurationError(
            f"quantize={quantize!r} is not supported; use quantize=None (the weights as loaded) or quantize='int8' "
            "(int8 dynamic quantization of the linear layers, CPU)."
        )
    if quantize is not None and (torch.device(device).type != "cpu" or dtype != torch.float32):
        raise ConfigurationError(
            f"quantize={quantize!r} needs device='cpu' and dtype float32 (torch's dynamic quantization kernels), "
            f"got device={str(device)!r} and dtype={dtype}; drop quantize, or load on the CPU in float32."
        )


def quantize_linear_int8(model: Any) -> Any:
    """Quantize every ``nn.Linear`` of ``model`` in place to int8 weights with dynamic int8 activations.

    torch's eager dynamic quantization (fbgemm / x86 kernels, AVX2 is enough); the modules around the linear
    layers (decoder layers, attention, norms, embeddings) stay the same objects, so hooks on them still work.
    A tied output layer gets its own int8 copy; the input embedding stays in float.
    """
    import warnings

    with warnings.catch_warnings():  # torch marks the eager API deprecated in favour of torchao (not installed)
        warnings.filterwarnings("ignore", message=r".*torch\.ao\.quantization.*deprecated", category=Warning)
        warnings.filterwarnings("ignore", message=r".*quantize_per_tensor.*deprecated", category=Warning)
        return torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8, inplace=True)


__all__ = ["QUANTIZE_CHOICES", "quantize_linear_int8"]
