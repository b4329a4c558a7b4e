"""The optional framework extras: a clear install hint instead of a raw ``ModuleNotFoundError``."""

from __future__ import annotations

from importlib import import_module

from posrag.errors import MissingDependencyError

#: The extra that installs each framework posrag's adapters need.
EXTRAS = {"langchain_core": "langchain", "llama_index.core": "llama-index"}


def require(module: str, needed_by: str) -> None:
    """Import ``module`` (a framework) or raise :class:`MissingDependencyError` naming the extra to install."""
    try:
        import_module(module)
    except ImportError as exc:
        extra = EXTRAS.get(module, "all")
        raise MissingDependencyError(
            f"{needed_by} needs {module.split('.')[0]}, which is not installed: pip install 'posrag[{extra}]'."
        ) from exc


__all__ = ["EXTRAS", "require"]
