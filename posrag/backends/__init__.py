"""What runs a model for :class:`posrag.engine.Engine`: the :class:`Backend` boundary and its implementations.

``torch`` (:mod:`posrag.backends.torch`) and ``llama.cpp`` (:mod:`posrag.backends.llamacpp`) are imported on use
by :func:`load_backend`, the one place a backend is chosen by name (for :meth:`posrag.engine.Engine.load`, the
benchmark and the demo). The llama.cpp backend is split by concept:
``llamacpp_binding`` (the lazily imported binding, a context whose callback forwards to its holder, the GGUF's
tokenizer and layout), ``llamacpp_callback`` (both steering mechanisms as the graph-evaluation callback),
``llamacpp_requests`` (the request and prefix types it takes), ``llamacpp_batches`` (the load-time check that its
batched prompt path computes what decoding computes) and ``decoding`` (token choice, stops and streamed pieces for
a backend with its own decode loop).
"""

from __future__ import annotations

import os
from typing import Any, Literal

from posrag.backends.base import Backend
from posrag.errors import ConfigurationError, MissingDependencyError

BackendName = Literal["torch", "llama.cpp", "auto"]
#: The backends :func:`load_backend` knows by name.
BACKENDS: tuple[str, ...] = ("torch", "llama.cpp", "auto")


def load_backend(
    model: Any = None,
    backend: BackendName | str = "torch",
    *,
    quantize: str | None = None,
    threads: int | None = None,
    progress: bool | None = None,
) -> Backend:
    """``model`` loaded on ``backend``.

    ``"torch"`` (the reference) takes what :func:`posrag.models.resolve_model` takes (``None``: the packaged Gemma 3
    270M; a path, a cached hub id, a ``LoadedModel``, a ``(model, tokenizer)`` pair) and ``quantize``
    (:func:`~posrag.models.load_causal_lm`'s). ``"llama.cpp"`` runs a ``.gguf`` file (``None``: the packaged one)
    with ``threads`` threads per decode (``None``: the CPU count). ``"auto"`` picks llama.cpp for a GGUF file
    (``None``: the packaged one) when the ``posrag[llamacpp]`` extra is installed and nothing asks for torch
    (``quantize``), torch otherwise: both backends give the same accuracy on both model families
    (``docs/backends.md``), and llama.cpp decodes several times faster. ``progress``: a progress bar while a model
    is prepared for the first time (``None``: on a terminal, a log line otherwise).
    """
    if backend not in BACKENDS:
        raise ConfigurationError(f"backend={backend!r} is not one of {', '.join(map(repr, BACKENDS))}.")
    if backend == "auto":
        backend = "llama.cpp" if quantize is None and _llamacpp_runs(model) else "torch"
    if backend == "llama.cpp":
        if quantize is not None:
            raise ConfigurationError(
                f"quantize={quantize!r} quantizes the torch backend's linear layers; a GGUF file on llama.cpp is "
                "quantized already. Drop --quantize, or use --backend torch."
            )
        try:
            from posrag.backends.llamacpp import LlamaCppBackend  # type: ignore[import-not-found]
        except ImportError as exc:
            raise MissingDependencyError(
                "backend='llama.cpp' needs posrag's llama.cpp extra: pip install 'posrag[llamacpp]'"
            ) from exc
        return LlamaCppBackend.load(model, progress=bool(progress), n_threads=threads)  # type: ignore[no-any-return]
    from posrag.backends.torch import TorchBackend
    from posrag.models import resolve_model

    if quantize is not None:
        if model is not None and not isinstance(model, (str, os.PathLike)):
            raise ConfigurationError("quantize applies to a model loaded by name or path; pass its name or path.")
        model = {"model": model, "quantize": quantize}
    hf_model, tokenizer, name = resolve_model(model, progress=progress)
    return TorchBackend(hf_model, tokenizer, model_name=name)


def _llamacpp_runs(model: Any) -> bool:
    """Whether ``model`` names a GGUF file (:func:`~posrag.backends.llamacpp_binding.gguf_model`) and llama.cpp's
    binding imports: what ``backend="auto"`` needs to pick llama.cpp."""
    from posrag.backends.llamacpp_binding import binding, gguf_model

    try:
        gguf_model(model)
        binding()
    except (ConfigurationError, MissingDependencyError):
        return False
    return True


__all__ = ["BACKENDS", "Backend", "BackendName", "load_backend"]
