"""What decides a backend's output besides the request: digests of its weights and tokenizer, library versions.

Each backend's :meth:`~posrag.backends.Backend.fingerprint` is built from these: two backends with equal
fingerprints give equal greedy outputs for equal requests. The benchmark's generation cache
(:mod:`posrag.bench.cache`) keys its entries on it, so a stored generation is never reused for another model.
It reads the weights themselves; :class:`posrag.profiles.ModelIdentity` names a model cheaply (its path, file
sizes and first MiB) to find the model's profile.
"""

from __future__ import annotations

import hashlib
import json
from importlib import metadata
from typing import Any


def package_versions(*distributions: str) -> dict[str, str | None]:
    """The installed version of each distribution (``None`` where it is not installed)."""
    versions: dict[str, str | None] = {}
    for name in distributions:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def tokenizer_digest(tokenizer: Any) -> str:
    """The SHA-256 of a Hugging Face tokenizer's whole definition (a fast tokenizer's serialized model, with its
    merges and normalizers; else the vocabulary), its special tokens and its chat template."""
    digest = hashlib.sha256(type(tokenizer).__name__.encode())
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        digest.update(backend.to_str().encode())
    else:
        digest.update(json.dumps(sorted(tokenizer.get_vocab().items())).encode())
    special = getattr(tokenizer, "special_tokens_map", {})
    digest.update(json.dumps(special, sort_keys=True, default=str).encode())
    digest.update(str(getattr(tokenizer, "chat_template", None)).encode())
    return digest.hexdigest()


def weights_digest(model: Any) -> str:
    """The SHA-256 of a torch model's state: every parameter and buffer by name, dtype, shape and bytes (a
    quantized tensor by its integer values, scales and zero points; packed parameters by what they pack)."""
    digest = hashlib.sha256()
    for name, value in model.state_dict().items():
        digest.update(name.encode())
        _update(digest, value)
    return digest.hexdigest()


def _update(digest: Any, value: Any) -> None:
    import torch

    if isinstance(value, torch.Tensor):
        tensor = value.detach().cpu()
        digest.update(f"{tensor.dtype}{tuple(tensor.shape)}".encode())
        if tensor.is_quantized:
            if tensor.qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric):
                _update(digest, tensor.q_per_channel_scales())
                _update(digest, tensor.q_per_channel_zero_points())
            else:
                digest.update(f"{tensor.q_scale()}/{tensor.q_zero_point()}".encode())
            tensor = tensor.int_repr()
        digest.update(tensor.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    elif isinstance(value, (tuple, list)):
        for item in value:
            _update(digest, item)
    else:
        digest.update(repr(value).encode())


__all__ = ["package_versions", "tokenizer_digest", "weights_digest"]
