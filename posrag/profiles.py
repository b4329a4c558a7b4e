"""Position-bias profiles: a model's accuracy by document position, stored, shipped and resolved.

A :class:`BiasProfile` is the accuracy curve of a model by the relative position of the gold document
(0 = first, 1 = last), usually measured by ``posrag profile`` (:func:`posrag.bench.runner.profile_bias`, a
short synthetic "Lost in the Middle" run: baseline only, no ordering, no steering), and its shape by
:mod:`posrag.bias`'s rule (``flat``, ``u_curve``, ``recency``, ``primacy``) with the ordering that suits it.
It is what ``position_bias="auto"`` (steering) and ``strategy="auto"`` (ordering) follow.

Storage: JSON at ``posrag.models.cache_dir() / "profiles" / <identity key>.json`` (:func:`save_profile`,
atomic; a curve-only profile never drops a stored calibration), keyed by the model's identity
(:func:`model_identity`: resolved path or hub id plus a content fingerprint, so two models named alike never
share a file). :func:`model_profile` is the one reading of a model's stored profile: the user's first, then
the ones shipped with posrag (``posrag/data/profiles/``: the packaged Gemma 3 270M, SmolLM2-135M-Instruct,
matched by model name), an unusable user file reported by path, a calibration for another layer count
refused; so ``"auto"`` works on a fresh machine and a user's own measurement wins over the shipped one.

This module is a little longer than 400 lines because the profile type, its storage and its resolution are one
concept read together (a profile's JSON form, where it is stored and what ``position_bias`` means).

:func:`resolve` is the one reading of a ``position_bias`` value: a preset name stays a name, anything else
(``"auto"``, a profile, a dict, a JSON path) becomes a :class:`BiasProfile`. What a name or a profile means
for steering (curve, reorder strategy) is :func:`posrag.steering.config.bias_preset`.
"""

from __future__ import annotations

import hashlib
import json
import math
import numbers
import os
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from posrag._files import check_writable, write_json_atomic
from posrag._validation import check_number
from posrag.bias import (
    BIAS_CLASSES,
    DEFAULT_TOLERANCE,
    BiasClass,
    classify_bias,
    recommend_ordering,
)
from posrag.calibration import SteeringCalibration
from posrag.errors import ConfigurationError

#: The presets a ``position_bias`` setting may name directly (besides ``"auto"`` and a profile).
BIAS_PRESET_NAMES: tuple[str, ...] = ("recency", "u_curve", "flat")
BiasName = Literal["recency", "u_curve", "flat"]
PROFILE_SCHEMA = "posrag.bias_profile"
PROFILE_VERSION = 1
#: Package data folder of the shipped profiles (``importlib.resources`` path under ``posrag``).
SHIPPED_PROFILES = ("data", "profiles")


# ----------------------------------------------------------------------------- the profile


def _relative(positions: Sequence[int], num_docs: int) -> tuple[float, ...]:
    return tuple(0.0 if num_docs == 1 else (p - 1) / (num_docs - 1) for p in positions)


def _floats(name: str, values: Any) -> tuple[float, ...]:
    if isinstance(values, (str, bytes, Mapping)) or not isinstance(values, Iterable):
        raise ConfigurationError(f"A bias profile's {name} must be a list of numbers; got {values!r}.")
    out = []
    for value in values:
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
            raise ConfigurationError(f"A bias profile's {name} must be finite numbers; got {value!r} in {values!r}.")
        out.append(float(value))
    return tuple(out)


@dataclass(frozen=True)
class BiasProfile:
    """A model's accuracy at relative positions in [0, 1], and the shape and ordering it implies.

    ``relative_positions`` and ``accuracy`` are the curve (>= 2 points, positions strictly increasing);
    ``tolerance`` is the accuracy difference that counts as noise when classifying it. A measured profile also
    records the 1-based ``positions`` probed out of ``num_docs`` documents, ``questions`` per position, the 95 %
    intervals (``ci95``) and ``created_at``; a hand-written one may give only the curve.
    """

    relative_positions: tuple[float, ...]
    accuracy: tuple[float, ...]
    model: str | None = None
    tolerance: float = DEFAULT_TOLERANCE
    positions: tuple[int, ...] = ()  # 1-based, as probed; empty when only relative positions are known
    num_docs: int | None = None
    questions: int = 0
    ci95: tuple[tuple[float, float], ...] = ()
    created_at: str = ""
    #: The steering settings ``posrag calibrate`` measured for this model (``None``: curve only).
    steering: SteeringCalibration | None = None

    def __post_init__(self) -> None:
        if self.steering is not None and not isinstance(self.steering, SteeringCalibration):
            object.__setattr__(self, "steering", SteeringCalibration.from_dict(self.steering))
        xs = _floats("relative_positions", self.relative_positions)
        ys = _floats("accuracy", self.accuracy)
        object.__setattr__(self, "relative_positions", xs)
        object.__setattr__(self, "accuracy", ys)
        if len(xs) != len(ys) or len(xs) < 2:
            raise ConfigurationError(
                f"A bias profile needs >= 2 positions and one accuracy per position; got {len(xs)} positions and "
                f"{len(ys)} accuracies. Create one with `posrag profile`."
            )
        if list(xs) != sorted(set(xs)) or not all(0.0 <= x <= 1.0 for x in xs):
            raise ConfigurationError(f"Profile relative_positions must be strictly increasing in [0, 1]; got {xs}.")
        if not all(0.0 <= y <= 1.0 for y in ys):
            raise ConfigurationError(f"Profile accuracy values must lie in [0, 1]; got {ys}.")
        if self.model is not None and not isinstance(self.model, str):
            raise ConfigurationError(f"A bias profile's model must be a name (str) or None; got {self.model!r}.")
        object.__setattr__(self, "tolerance", check_number("tolerance", self.tolerance, 0.0, 1.0))
        try:
            object.__setattr__(self, "positions", tuple(int(p) for p in self.positions))
            object.__setattr__(self, "ci95", tuple((float(lo), float(hi)) for lo, hi in self.ci95))
            object.__setattr__(self, "num_docs", None if self.num_docs is None else int(self.num_docs))
            object.__setattr__(self, "questions", int(self.questions))
        except (TypeError, ValueError, OverflowError) as exc:
            raise ConfigurationError(
                f"A bias profile's positions (1-based ints), num_docs, questions (ints) and ci95 ((low, high) "
                f"pairs) could not be read: {type(exc).__name__}: {exc}."
            ) from exc
        if self.positions:
            n = self.num_docs
            if (
                n is None
                or list(self.positions) != sorted(set(self.positions))
                or not all(1 <= p <= n for p in self.positions)
            ):
                raise ConfigurationError(
                    f"Profile positions must be increasing 1-based positions within num_docs={n}; got {self.positions}."
                )
            if len(self.positions) != len(xs) or any(
                abs(a - b) > 1e-9 for a, b in zip(_relative(self.positions, n), xs, strict=True)
            ):
                raise ConfigurationError(
                    f"Profile positions {self.positions} of {n} do not match relative_positions {xs}."
                )

    @classmethod
    def measured(
        cls,
        model: str,
        positions: Sequence[int],
        num_docs: int,
        accuracy: Sequence[float],
        *,
        questions: int = 0,
        tolerance: float = DEFAULT_TOLERANCE,
        ci95: Sequence[tuple[float, float]] = (),
    ) -> BiasProfile:
        """A profile from 1-based probed ``positions`` out of ``num_docs`` documents, stamped now."""
        return cls(
            relative_positions=_relative(positions, num_docs),
            accuracy=tuple(accuracy),
            model=model,
            tolerance=tolerance,
            positions=tuple(positions),
            num_docs=num_docs,
            questions=questions,
            ci95=tuple(ci95),
            created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        )

    # -- what the curve implies (posrag.bias's rule)

    def shape(self, tolerance: float | None = None) -> BiasClass:
        """``flat``, ``u_curve``, ``recency`` or ``primacy`` (:func:`posrag.bias.classify_bias`)."""
        return classify_bias(self.relative_positions, self.accuracy, self._tolerance(tolerance))

    def reorder_strategy(self, tolerance: float | None = None) -> str:
        """The ordering to pair with this profile (:func:`posrag.bias.recommend_ordering`)."""
        return recommend_ordering(self.relative_positions, self.accuracy, self._tolerance(tolerance))[0]

    def best_at(self, tolerance: float | None = None) -> str:
        """Where ``long_context`` should put the best document: the end this model reads better."""
        return recommend_ordering(self.relative_positions, self.accuracy, self._tolerance(tolerance))[1]

    def points(self) -> list[tuple[float, float]]:
        return list(zip(self.relative_positions, self.accuracy, strict=True))

    def _tolerance(self, tolerance: float | None) -> float:
        return self.tolerance if tolerance is None else tolerance

    # -- JSON

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": PROFILE_SCHEMA,
            "schema_version": PROFILE_VERSION,
            "model": self.model,
            "positions": list(self.positions),
            "total": self.num_docs,
            "relative_positions": list(self.relative_positions),
            "accuracy": list(self.accuracy),
            "ci95": [list(ci) for ci in self.ci95],
            "classification": self.shape(),
            "recommended_strategy": self.reorder_strategy(),
            "recommended_best_at": self.best_at(),
            "tolerance": self.tolerance,
            "questions": self.questions,
            "created_at": self.created_at,
            "steering": None if self.steering is None else self.steering.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BiasProfile:
        """A profile from its JSON (``relative_positions`` or ``positions`` + ``total``, ``accuracy``; optional
        rest); a stored ``classification`` must match the curve."""
        if not isinstance(data, Mapping):
            raise ConfigurationError(f"A bias profile must be a JSON object; got {type(data).__name__}.")
        try:
            positions = tuple(int(p) for p in data.get("positions") or ())
            num_docs = data.get("total") or (max(positions) if positions else None)
            num_docs = None if num_docs is None else int(num_docs)
            if "relative_positions" in data:
                relative = data["relative_positions"]
            elif positions:
                relative = _relative(positions, num_docs)  # type: ignore[arg-type]
            else:
                raise KeyError("relative_positions")
            profile = cls(
                relative_positions=relative,
                accuracy=data["accuracy"],
                model=None if data.get("model") is None else str(data["model"]),
                tolerance=data.get("tolerance", DEFAULT_TOLERANCE),
                positions=positions,
                num_docs=num_docs,
                questions=int(data.get("questions") or 0),
                ci95=tuple((lo, hi) for lo, hi in data.get("ci95") or ()),
                created_at=str(data.get("created_at") or ""),
                steering=data.get("steering"),
            )
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            if isinstance(exc, ConfigurationError):
                raise
            raise ConfigurationError(
                f"Not a bias profile ({type(exc).__name__}: {exc}); it needs 'relative_positions' (in [0, 1]) or "
                "'positions' (1-based) with 'total', and 'accuracy'. Create one with `posrag profile`."
            ) from exc
        stored = data.get("classification")
        if stored is not None and stored != profile.shape():
            raise ConfigurationError(
                f"The profile says classification={stored!r} but its curve classifies as "
                f"{profile.shape()!r} (tolerance {profile.tolerance}); fix or remove 'classification'. "
                f"Shapes: {', '.join(BIAS_CLASSES)}."
            )
        return profile

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> BiasProfile:
        file = Path(path)
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ConfigurationError(f"Cannot read a bias profile from {file}: {exc}.") from exc
        try:
            return cls.from_dict(data)
        except ConfigurationError as exc:
            raise ConfigurationError(f"{file}: {exc}") from exc


# ----------------------------------------------------------------------------- model identity

#: A quantization or precision suffix of a model file's name (``.Q4_1``, ``-q8_0``, ``.f16``), ignored when a
#: model is matched to a shipped profile by name.
_QUANT_SUFFIX = re.compile(r"[.-](?:i?q\d[\w]*|f16|f32|bf16|fp16|fp32)$", re.IGNORECASE)
_FINGERPRINT_BYTES = 1 << 20


@dataclass(frozen=True)
class ModelIdentity:
    """Which model a profile or a checkpoint belongs to: more than its name.

    ``source`` is the resolved absolute path of a local model (a folder or a file), else the name as given (a
    hub id, the packaged model's name); ``fingerprint`` a SHA-256 over what identifies a local model's
    content (a folder's ``config.json`` and its files' names and sizes; a file's size and first MiB), empty
    for a name. ``key`` is the file-name-safe storage key derived from both, so two different models
    called ``model`` in two projects never share a profile or a checkpoint. ``family`` is the model's name
    without path, organisation or quantization suffix (``smollm2-135m-instruct``), used only to find a profile
    shipped with posrag.
    """

    name: str
    source: str
    fingerprint: str
    key: str
    family: str

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "source": self.source, "fingerprint": self.fingerprint, "key": self.key}


def _family(name: str) -> str:
    base = name.replace("\\", "/").rstrip("/")
    parts = base.split("/")
    # a Hugging Face cache snapshot: .../models--org--name/snapshots/<revision>
    snapshot = next((p for p in reversed(parts) if p.startswith("models--")), None)
    last = snapshot.split("--")[-1] if snapshot else parts[-1]
    if last.lower().endswith(".gguf"):
        last = last[: -len(".gguf")]
    return _QUANT_SUFFIX.sub("", last).lower()


def _fingerprint(path: Path) -> str:
    digest = hashlib.sha256()
    if path.is_dir():
        config = path / "config.json"
        if config.is_file():
            digest.update(config.read_bytes())
        for child in sorted(path.iterdir()):
            if child.is_file() and not child.name.startswith("."):
                digest.update(f"{child.name}\0{child.stat().st_size}\0".encode())
    else:
        digest.update(str(path.stat().st_size).encode())
        with open(path, "rb") as handle:
            digest.update(handle.read(_FINGERPRINT_BYTES))
    return digest.hexdigest()


def model_identity(model: str | os.PathLike[str] | ModelIdentity) -> ModelIdentity:
    """The identity of a model given by name: a local path (resolved, fingerprinted) or a hub id / name."""
    if isinstance(model, ModelIdentity):
        return model
    name = os.fspath(model)
    if not isinstance(name, str) or not name:
        raise ConfigurationError(f"A model's identity needs its name or path; got {model!r}.")
    local = Path(name).expanduser()
    try:
        exists = local.exists()
    except (OSError, ValueError):
        exists = False
    if exists:
        source = str(local.resolve())
        try:
            fingerprint = _fingerprint(local.resolve())
        except OSError as exc:
            raise ConfigurationError(f"Cannot read the model at {source} to identify it: {exc}.") from exc
    else:
        source, fingerprint = name, ""
    family = _family(source)
    slug = re.sub(r"[^a-z0-9._-]+", "-", family).strip("-.")[:60] or "model"
    digest = hashlib.sha256(f"{source}\0{fingerprint}".encode()).hexdigest()[:12]
    return ModelIdentity(name=name, source=source, fingerprint=fingerprint, key=f"{slug}-{digest}", family=family)


# ----------------------------------------------------------------------------- storage


def profiles_dir() -> Path:
    """Where measured profiles are saved: ``posrag.models.cache_dir() / "profiles"``."""
    from posrag.models import cache_dir  # lazy: posrag.models imports torch

    return cache_dir() / "profiles"


def profile_path(model: str | os.PathLike[str] | ModelIdentity) -> Path:
    """Where the user's profile of ``model`` is saved: the cache's ``profiles/<identity key>.json``."""
    return profiles_dir() / f"{model_identity(model).key}.json"


def shipped_profiles() -> list[Path]:
    """The profiles shipped with posrag (package data), each naming its model by hub id or name."""
    folder = resources.files("posrag")
    for part in SHIPPED_PROFILES:
        folder = folder.joinpath(part)
    return sorted(Path(str(f)) for f in folder.iterdir() if f.name.endswith(".json"))


def _shipped_matches(identity: ModelIdentity) -> list[Path]:
    matches = []
    for path in shipped_profiles():
        try:
            shipped_model = json.loads(path.read_text(encoding="utf-8")).get("model") or ""
        except (OSError, ValueError, AttributeError):
            continue
        if _family(str(shipped_model)) == identity.family:
            matches.append(path)
    return matches


def shipped_profile_path(model: str | os.PathLike[str] | ModelIdentity) -> Path | None:
    """The profile shipped with posrag for ``model`` (its hub id, a local folder or GGUF file of it), or None."""
    matches = _shipped_matches(model_identity(model))
    return matches[0] if matches else None


def _writable(target: Path) -> None:
    check_writable(target.parent, hint="pass another path (--out) or set POSRAG_CACHE_DIR to a writable folder")


def save_profile(profile: BiasProfile, path: str | os.PathLike[str] | None = None) -> Path:
    """Write ``profile`` as JSON (default: :func:`profile_path` of its model), atomically.

    A curve-only profile (``posrag profile``) saved over one that holds a calibration (``posrag calibrate``)
    keeps that calibration: a measurement of the curve never loses the steering settings.
    """
    if path is None and not profile.model:
        raise ConfigurationError("This profile has no model name, so it has no default file; pass path=.")
    target = Path(path) if path is not None else profile_path(profile.model or "")
    _writable(target)
    if profile.steering is None and target.is_file():
        try:
            kept = BiasProfile.load(target).steering
        except ConfigurationError:
            kept = None
        if kept is not None:
            profile = replace(profile, steering=kept)
    data = profile.to_dict()
    if profile.model and path is None:
        data["model_identity"] = model_identity(profile.model).to_dict()
    try:
        write_json_atomic(target, data)
    except OSError as exc:
        raise ConfigurationError(
            f"Cannot save the profile to {target}: {exc}. Pass another path (--out) or set POSRAG_CACHE_DIR to a "
            "writable folder."
        ) from exc
    return target


def _read_candidate(path: Path, num_layers: int | None, *, shipped: bool) -> BiasProfile | None:
    """A stored profile, or None (with a warning naming the file when a user's profile cannot be used)."""
    try:
        profile = BiasProfile.load(path)
    except ConfigurationError as exc:
        _warn_ignored(path, str(exc), shipped=shipped)
        return None
    layers = None if profile.steering is None else profile.steering.num_layers
    if num_layers is not None and layers is not None and layers != num_layers:
        _warn_ignored(
            path, f"its calibration is for a model of {layers} layers, this model has {num_layers}", shipped=shipped
        )
        return None
    return profile


def _warn_ignored(path: Path, reason: str, *, shipped: bool) -> None:
    if shipped:
        return  # a shipped profile of another model of the same name (another depth): not this model's
    warnings.warn(
        f"posrag ignores the position-bias profile {path}: {reason}. It falls back to the profile shipped with "
        "posrag for this model, if any, else to presets. Fix or delete that file, or measure it again with "
        "`posrag calibrate` / `posrag profile`.",
        UserWarning,
        stacklevel=4,
    )


def model_profile(
    model: str | os.PathLike[str] | ModelIdentity, *, num_layers: int | None = None
) -> BiasProfile | None:
    """The one reading of a model's stored profile: its position curve and its calibration, or None.

    Looks at the user's profile (:func:`profile_path`, by the model's identity), then at the profiles shipped
    with posrag whose model has the same name (hub id, local folder or GGUF file of it, quantization suffix
    ignored). A user profile that cannot be read, is out of range or whose calibration is for another layer
    count (``num_layers``: the model's) is reported by path and skipped. The curve comes from the first usable
    profile, the calibration (``steering``) from the first usable profile that has one: a curve-only user
    profile keeps the shipped calibration.
    """
    identity = model_identity(model)
    candidates: list[tuple[Path, bool]] = []
    saved = profile_path(identity)
    if saved.is_file():
        candidates.append((saved, False))
    candidates += [(path, True) for path in _shipped_matches(identity)]
    found = [p for p in (_read_candidate(path, num_layers, shipped=s) for path, s in candidates) if p is not None]
    if not found:
        return None
    steering = next((p.steering for p in found if p.steering is not None), None)
    return replace(found[0], steering=steering)


# ----------------------------------------------------------------------------- resolution


def _is_file(value: str | os.PathLike[str]) -> bool:
    try:
        return Path(value).is_file()
    except (OSError, ValueError):  # a name too long for the file system, a NUL byte
        return False


PositionBias = BiasName | Literal["auto"] | BiasProfile | Mapping[str, Any] | str | os.PathLike[str]


def resolve(value: Any, model_name: str | None = None) -> BiasProfile | str:
    """What a ``position_bias`` value means: a preset name (returned as is), or a :class:`BiasProfile`.

    ``"auto"`` is ``model_name``'s profile (:func:`model_profile`); a profile is itself; a dict or the path of
    a JSON file is read as one.
    """
    if isinstance(value, BiasProfile):
        return value
    if isinstance(value, str) and value in BIAS_PRESET_NAMES:
        return value
    if isinstance(value, str) and value == "auto":
        if not model_name:
            raise ConfigurationError(
                "position_bias='auto' needs the model name to find its profile; pass model_name or a preset."
            )
        profile = model_profile(model_name)
        if profile is None:
            raise ConfigurationError(
                f"No position-bias profile for model {model_name!r} (looked for {profile_path(model_name)} and "
                f"among posrag's shipped profiles). Measure one with `posrag profile --model {model_name}`, or set "
                "position_bias to 'recency', 'u_curve' or 'flat'."
            )
        return profile
    if isinstance(value, Mapping):
        return BiasProfile.from_dict(value)
    if isinstance(value, (str, os.PathLike)) and _is_file(value):
        return BiasProfile.load(value)
    raise ConfigurationError(
        f"position_bias={value!r} must be 'auto', one of {', '.join(BIAS_PRESET_NAMES)}, a BiasProfile, a "
        "profile dict or the path of a profile JSON file."
    )


__all__ = [
    "BIAS_PRESET_NAMES",
    "DEFAULT_TOLERANCE",
    "PROFILE_SCHEMA",
    "PROFILE_VERSION",
    "BiasName",
    "BiasProfile",
    "ModelIdentity",
    "PositionBias",
    "model_identity",
    "model_profile",
    "profile_path",
    "profiles_dir",
    "resolve",
    "save_profile",
    "shipped_profile_path",
    "shipped_profiles",
]
