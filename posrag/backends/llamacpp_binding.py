"""Loading llama.cpp through ``ik-llama-cpp-python``: the binding (imported lazily, with the install hint), the C
functions its module does not declare, a context whose graph callback forwards to whoever holds it, and the
Hugging Face tokenizer and layer layout of a GGUF file.
"""

from __future__ import annotations

import ctypes
import os
import queue
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from posrag.architectures import ModelLayout
from posrag.errors import ConfigurationError, MissingDependencyError, PosragError

#: The distribution of the binding (the ``posrag[llamacpp]`` extra).
BINDING_DISTRIBUTION = "ik-llama-cpp-python"
INSTALL_HINT = f"pip install 'posrag[llamacpp]'  (the {BINDING_DISTRIBUTION} wheel)"
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
        ("llama_model_n_embd", [model], ctypes.c_int32),
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


def layout_of(config: Any, num_layers: int, hidden_size: int) -> ModelLayout:
    """The planner's view of a GGUF model's layers, from its Hugging Face config (as the torch backend reads it)."""
    types = getattr(config, "layer_types", None)
    window = getattr(config, "sliding_window", None)
    if not types:
        full = config.model_type in ("llama", "gpt2", "qwen2")  # configs that carry an unused sliding_window
        types = ["sliding_attention" if window and not full else "full_attention"] * num_layers
    sliding = int(window) if window and "sliding_attention" in types else None
    return ModelLayout(num_layers, hidden_size, tuple(types), sliding)


class ContextPool:
    """Up to ``size`` llama.cpp contexts on one model, created on demand; each held by one request at a time."""

    def __init__(self, create: Callable[[], LlamaContext], size: int) -> None:
        self._create = create
        self._size = size
        self._idle: queue.LifoQueue[LlamaContext] = queue.LifoQueue()
        self._created = 0
        self._lock = threading.Lock()
        self._contexts: list[LlamaContext] = []

    @contextmanager
    def hold(self) -> Iterator[LlamaContext]:
        """A context held exclusively for the block (waiting for one when ``size`` are busy); its callback is
        detached from the holder when the block ends, whatever happens."""
        try:
            context = self._idle.get_nowait()
        except queue.Empty:
            with self._lock:
                create = self._created < self._size
                if create:
                    self._created += 1
            if create:
                try:
                    context = self._create()
                except BaseException:
                    with self._lock:
                        self._created -= 1
                    raise
                self._contexts.append(context)
            else:
                context = self._idle.get()
        try:
            yield context
        finally:
            context.handler = None
            self._idle.put(context)

    def free(self) -> None:
        for context in self._contexts:
            context.free()
        self._contexts.clear()


def packaged_gguf_path() -> Path:
    """Where the packaged Gemma 3 270M GGUF file is assembled in posrag's cache (whether it is there or not)."""
    from posrag.model_cache import _gemma_package, cache_dir

    return cache_dir() / "gguf" / _gemma_package().MODEL_NAME


def packaged_gguf() -> Path:
    """The packaged Gemma 3 270M GGUF file, assembled once into posrag's cache from its package (safely when
    several processes start at once: :func:`posrag.model_cache.packaged_gguf_file`)."""
    from posrag.model_cache import packaged_gguf_file

    return packaged_gguf_file(packaged_gguf_path())


def gguf_model(model: Any) -> str | os.PathLike[str] | None:
    """The GGUF file ``model`` names for llama.cpp: ``None`` for the packaged Gemma 3 270M (``None`` or a default
    model alias), or the path of a ``.gguf`` file; anything else is a :class:`ConfigurationError` naming the fix."""
    from posrag.models import _DEFAULT_LLM_ALIASES

    if model is None or (isinstance(model, str) and model in _DEFAULT_LLM_ALIASES):
        return None
    if isinstance(model, (str, os.PathLike)) and os.fspath(model).endswith(".gguf"):
        return model
    raise ConfigurationError(
        f"The llama.cpp backend runs GGUF files, got model={model!r}; pass the path of a .gguf file (or None for "
        "the packaged Gemma 3 270M), or use backend='torch' for a Hugging Face model."
    )


def is_packaged(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is the packaged model's assembled GGUF file."""
    return Path(path).expanduser().resolve() == packaged_gguf_path().resolve()


def tokenizer_and_config(path: Path, tokenizer: Any = None) -> tuple[Any, Any]:
    """The Hugging Face tokenizer and config of a GGUF file: from posrag's converted copy when there is one."""
    from transformers import AutoConfig, AutoTokenizer

    from posrag.model_cache import _is_complete, default_llm_path, gguf_cache_target

    if is_packaged(path):
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
    "BINDING_DISTRIBUTION",
    "INSTALL_HINT",
    "ContextPool",
    "LlamaContext",
    "binding",
    "gguf_model",
    "is_packaged",
    "layout_of",
    "packaged_gguf",
    "packaged_gguf_path",
    "quiet_logs",
    "tokenizer_and_config",
]
