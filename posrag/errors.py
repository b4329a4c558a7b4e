"""posrag's exception family: one base class, a few subclasses a caller can catch precisely.

Messages say what was wrong, the value seen, and what to do about it.
"""

from __future__ import annotations


class PosragError(Exception):
    """Base class of every error posrag raises on purpose."""


class ConfigurationError(PosragError, ValueError):
    """An argument or setting has a value posrag cannot use (the message names it and the fix)."""


class ModelNotFoundError(PosragError, FileNotFoundError):
    """A model (LLM or embedder) could not be found locally."""


class IndexCorruptedError(PosragError):
    """A persisted document index is truncated, foreign or inconsistent."""


class UnsupportedArchitectureError(PosragError):
    """A model's architecture is not in posrag's architecture table and could not be recognised."""


class PositionOutOfRangeError(ConfigurationError):
    """A requested position lies outside what the model's position encoding supports."""


class MissingDependencyError(PosragError, ImportError):
    """An optional dependency is not installed; the message carries the install hint."""


class UnsupportedFeatureError(PosragError, NotImplementedError):
    """A framework feature posrag's LLMs do not offer (tool calling, structured output); the message says what
    to use instead."""


__all__ = [
    "ConfigurationError",
    "IndexCorruptedError",
    "MissingDependencyError",
    "ModelNotFoundError",
    "PositionOutOfRangeError",
    "PosragError",
    "UnsupportedArchitectureError",
    "UnsupportedFeatureError",
]
