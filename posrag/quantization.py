"""Opt-in int8 dynamic quantization of a causal LM's linear layers (``load_causal_lm(quantize=...)``).

Faster CPU decoding (``docs/generation.md``) at different numerics; steering hooks sit on the decoder layers and
attention modules, which quantization leaves in place. Two choices, measured on the lost-in-the-middle
benchmark next to fp32 (``docs/litm.md``):

- ``"int8-output"``: the output layer only (per-channel weight scales). On Gemma 3 270M its 262k x 640 matrix is
  about 40 % of an fp32 decode step; quantizing it keeps the benchmark's accuracy within noise.
- ``"int8"``: every linear layer (per-tensor scales): the fastest, but it costs the packaged Gemma 3 270M
  15-40 points of accuracy on that benchmark; quantized activations inside the decoder layers are what hurt.
"""

from __future__ import annotations

from typing import Any

import torch

from posrag.errors import ConfigurationError

#: The values of ``load_causal_lm(quantize=...)``.
QUANTIZE_CHOICES = (None, "int8", "int8-output")


def _check_quantize(quantize: Any, device: str | torch.device, dtype: torch.dtype) -> None:
    if quantize not in QUANTIZE_CHOICES:
        raise ConfigurationError(
            f"quantize={quantize!r} is not supported; use quantize=None (the weights as loaded), 'int8-output' (the "
            "output layer in int8, CPU) or 'int8' (every linear layer in int8, CPU; costs accuracy)."
        )
    if quantize is not None and (torch.device(device).type != "cpu" or dtype != torch.float32):
        raise ConfigurationError(
            f"quantize={quantize!r} needs device='cpu' and dtype float32 (torch's dynamic quantization kernels), "
            f"got device={str(device)!r} and dtype={dtype}; drop quantize, or load on the CPU in float32."
        )


def _quantize_dynamic(model: Any, spec: Any) -> Any:
    import warnings

    with warnings.catch_warnings():  # torch marks the eager API deprecated in favour of torchao (not installed)
        warnings.filterwarnings("ignore", message=r".*torch\.ao\.quantization.*deprecated", category=Warning)
        warnings.filterwarnings("ignore", message=r".*quantize_per_tensor.*deprecated", category=Warning)
        warnings.filterwarnings("ignore", message=r".*quantize_per_channel.*deprecated", category=Warning)
        return torch.ao.quantization.quantize_dynamic(model, spec, dtype=torch.qint8, inplace=True)


def quantize_output_int8(model: Any) -> Any:
    """Quantize ``model``'s output layer (``get_output_embeddings()``) in place: int8 weights with per-channel
    (per-token) scales, dynamic int8 activations. A tied output layer gets its own int8 copy; the input embedding
    and every decoder layer stay in float."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    name = next((n for n, m in model.named_modules() if m is head), None)
    if not isinstance(head, torch.nn.Linear) or not name:
        raise ConfigurationError(
            f"{type(model).__name__} has no nn.Linear output layer (get_output_embeddings() is "
            f"{type(head).__name__}); use quantize=None or quantize='int8'."
        )
    return _quantize_dynamic(model, {name: torch.ao.quantization.per_channel_dynamic_qconfig})


def quantize_linear_int8(model: Any) -> Any:
    """Quantize every ``nn.Linear`` of ``model`` in place to int8 weights with dynamic int8 activations.

    torch's eager dynamic quantization (fbgemm / x86 kernels, AVX2 is enough); the modules around the linear
    layers (decoder layers, attention, norms, embeddings) stay the same objects, so hooks on them still work.
    A tied output layer gets its own int8 copy; the input embedding stays in float.
    """
    return _quantize_dynamic(model, {torch.nn.Linear})


__all__ = ["QUANTIZE_CHOICES", "quantize_linear_int8", "quantize_output_int8"]
