"""Position-bias profiles: measure how well a model reads each position, classify the shape, save it.

A :class:`BiasProfile` is the baseline accuracy curve of a short synthetic "Lost in the Middle" run (the
gold document moved through the positions, no ordering, no steering) and its classification:

The classification and the ordering it recommends are :mod:`posrag.bias`'s (``flat``, ``u_curve``,
``recency``, ``primacy``), the same rule that steering's :class:`posrag.steering.PositionBiasProfile` uses.

Profiles are saved as JSON in ``posrag.models.cache_dir() / "profiles" / <model-slug>.json``; the JSON
carries ``relative_positions``, ``accuracy`` and ``model``, so it is also a valid steering
``position_bias`` profile file. ``position_bias="auto"`` resolves to the saved profile of the model
(:func:`resolve_position_bias`), and :attr:`BiasProfile.recommended_strategy` is the reorder step's pairing.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from posrag.bias import (
    BIAS_CLASSES,
    DEFAULT_TOLERANCE,
    RECOMMENDED_STRATEGY,
    BiasClass,
    classify_bias,
    recommend_ordering,
)
from posrag.errors import ConfigurationError

#: The presets a ``position_bias`` setting may name directly (besides ``auto`` and a profile).
BIAS_PRESET_NAMES: tuple[str, ...] = ("recency", "u_curve", "flat")
PROFILE_SCHEMA = "posrag.bias_profile"
PROFILE_VERSION = 1


def model_slug(model_name: str) -> str:
    """A file-name-safe slug of a model name; a name that had to change (a path, say) gets a short hash."""
    slug = re.sub(r"[^a-z0-9._-]+", "-", model_name.lower()).strip("-.") or "model"
    if slug == model_name and len(slug) <= 80:
        return slug
    digest = hashlib.sha256(model_name.encode()).hexdigest()[:8]
    return f"{slug[-60:].strip('-.')}-{digest}"


def profiles_dir() -> Path:
    """Where profiles live: ``posrag.models.cache_dir() / "profiles"``."""
    from posrag.models import cache_dir

    return cache_dir() / "profiles"


def profile_path(model_name: str, path: str | os.PathLike[str] | None = None) -> Path:
    """``path`` if given, else the cache's ``profiles/<model-slug>.json``."""
    return Path(path) if path is not None else profiles_dir() / f"{model_slug(model_name)}.json"


@dataclass(frozen=True)
class BiasProfile:
    """A model's measured accuracy by gold-document position and the shape it was classified as."""

    model: str
    positions: tuple[int, ...]  # 1-based, as probed
    num_docs: int
    accuracy: tuple[float, ...]
    classification: BiasClass
    created_at: str
    questions: int = 0
    tolerance: float = DEFAULT_TOLERANCE
    ci95: tuple[tuple[float, float], ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "positions", tuple(int(p) for p in self.positions))
        object.__setattr__(self, "accuracy", tuple(float(a) for a in self.accuracy))
        object.__setattr__(self, "ci95", tuple((float(lo), float(hi)) for lo, hi in self.ci95))
        if len(self.positions) != len(self.accuracy) or len(self.positions) < 2:
            raise ConfigurationError(
                f"A BiasProfile needs >= 2 positions, one accuracy each; got {len(self.positions)} positions "
                f"and {len(self.accuracy)} accuracies."
            )
        if list(self.positions) != sorted(set(self.positions)) or not all(
            1 <= p <= self.num_docs for p in self.positions
        ):
            raise ConfigurationError(
                f"Profile positions must be increasing 1-based positions within num_docs={self.num_docs}; "
                f"got {self.positions}."
            )
        if self.classification not in BIAS_CLASSES:
            raise ConfigurationError(f"classification={self.classification!r} is not one of {', '.join(BIAS_CLASSES)}.")

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
        """A profile classified from its curve, stamped now."""
        relative = [0.0 if num_docs == 1 else (p - 1) / (num_docs - 1) for p in positions]
        return cls(
            model=model,
            positions=tuple(positions),
            num_docs=num_docs,
            accuracy=tuple(accuracy),
            classification=classify_bias(relative, accuracy, tolerance),
            created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            questions=questions,
            tolerance=tolerance,
            ci95=tuple(ci95),
        )

    @property
    def relative_positions(self) -> tuple[float, ...]:
        n = self.num_docs
        return tuple(0.0 if n == 1 else (p - 1) / (n - 1) for p in self.positions)

    @property
    def recommended_strategy(self) -> str:
        """The reorder strategy for this shape (recency → recency, u_curve → long_context, flat → none)."""
        return RECOMMENDED_STRATEGY[self.classification]

    @property
    def recommended_best_at(self) -> str:
        """``long_context``'s end for the best document: the end this model reads better."""
        return recommend_ordering(self.relative_positions, self.accuracy, self.tolerance)[1]

    def to_steering_profile(self) -> Any:
        """This curve as a :class:`posrag.steering.PositionBiasProfile` (steering's measured-curve type)."""
        from posrag.steering import PositionBiasProfile

        return PositionBiasProfile(self.relative_positions, self.accuracy, self.model)

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
            "classification": self.classification,
            "recommended_strategy": self.recommended_strategy,
            "recommended_best_at": self.recommended_best_at,
            "tolerance": self.tolerance,
            "questions": self.questions,
            "created_at": self.created_at,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BiasProfile:
        try:
            positions = [int(p) for p in data["positions"]]
            num_docs = int(data.get("total") or max(positions))
            accuracy = [float(a) for a in data["accuracy"]]
            tolerance = float(data.get("tolerance", DEFAULT_TOLERANCE))
            relative = [0.0 if num_docs == 1 else (p - 1) / (num_docs - 1) for p in positions]
            return cls(
                model=str(data.get("model") or "unknown"),
                positions=tuple(positions),
                num_docs=num_docs,
                accuracy=tuple(accuracy),
                classification=data.get("classification") or classify_bias(relative, accuracy, tolerance),
                created_at=str(data.get("created_at", "")),
                questions=int(data.get("questions", 0)),
                tolerance=tolerance,
                ci95=tuple(tuple(ci) for ci in data.get("ci95", ())),  # type: ignore[misc]
            )
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, ConfigurationError):
                raise
            raise ConfigurationError(
                f"Not a bias profile ({type(exc).__name__}: {exc}); it needs 'positions' (1-based), 'total' "
                "and 'accuracy'. Create one with `posrag profile`."
            ) from exc

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> BiasProfile:
        file = Path(path)
        try:
            return cls.from_dict(json.loads(file.read_text(encoding="utf-8")))
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigurationError(f"Cannot read a bias profile from {file}: {exc}.") from exc


def save_profile(profile: BiasProfile, path: str | os.PathLike[str] | None = None) -> Path:
    """Write ``profile`` as JSON (default: the cache's ``profiles/<model-slug>.json``), atomically."""
    target = profile_path(profile.model, path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(profile.to_dict(), indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, target)
    return target


def load_profile(model_name: str, path: str | os.PathLike[str] | None = None) -> BiasProfile:
    """The saved profile of ``model_name`` (or the one at ``path``)."""
    file = profile_path(model_name, path)
    if not file.is_file():
        raise ConfigurationError(
            f"No position-bias profile for model {model_name!r} (looked for {file}). Measure one with "
            f"`posrag profile --model {model_name}`, or set position_bias to 'recency', 'u_curve' or 'flat'."
        )
    return BiasProfile.load(file)


def resolve_position_bias(value: Any, model_name: str | None = None) -> BiasProfile | str:
    """What a ``position_bias`` setting means: a preset name, or a :class:`BiasProfile`.

    ``"auto"`` loads the saved profile of ``model_name``; a preset name is returned as is; a
    :class:`BiasProfile`, a profile dict or the path of a profile JSON file becomes a :class:`BiasProfile`.
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
        return load_profile(model_name)
    if isinstance(value, Mapping):
        return BiasProfile.from_dict(value)
    if isinstance(value, (str, os.PathLike)) and Path(value).is_file():
        return BiasProfile.load(value)
    raise ConfigurationError(
        f"position_bias={value!r} must be 'auto', one of {', '.join(BIAS_PRESET_NAMES)}, a BiasProfile, a "
        "profile dict or the path of a profile JSON file."
    )


def profile_bias(
    model: Any,
    tokenizer: Any,
    *,
    model_name: str | None = None,
    questions: int = 20,
    positions: Sequence[int] = (1, 5, 10, 15, 20),
    num_docs: int = 20,
    seed: int = 1,
    tolerance: float = DEFAULT_TOLERANCE,
    progress: bool = True,
) -> BiasProfile:
    """Probe ``model`` with a short synthetic run (baseline only) and classify its position bias.

    The probe questions are generated with ``seed`` (1 by default, so they differ from the packaged
    benchmark set, which uses seed 0).
    """
    from posrag.bench.data import parse_record
    from posrag.bench.litm import LitmBenchmark, LitmConfig
    from posrag.bench.synthetic import make_synthetic_records

    records = [
        parse_record(r, f"synthetic:{i}") for i, r in enumerate(make_synthetic_records(questions, num_docs, seed=seed))
    ]
    config = LitmConfig(positions=tuple(positions), conditions=("baseline",), regimes=("oracle",), num_docs=num_docs)
    bench = LitmBenchmark(model, tokenizer, config, model_name=model_name)
    result = bench.run(records, progress=progress).result("baseline", "oracle")
    return BiasProfile.measured(
        bench.model_name,
        [p.position for p in result.positions],
        num_docs,
        [p.accuracy for p in result.positions],
        questions=questions,
        tolerance=tolerance,
        ci95=[(p.ci_low, p.ci_high) for p in result.positions],
    )


__all__ = [
    "BIAS_CLASSES",
    "BIAS_PRESET_NAMES",
    "DEFAULT_TOLERANCE",
    "RECOMMENDED_STRATEGY",
    "BiasClass",
    "BiasProfile",
    "classify_bias",
    "load_profile",
    "model_slug",
    "profile_bias",
    "profile_path",
    "profiles_dir",
    "resolve_position_bias",
    "save_profile",
]
