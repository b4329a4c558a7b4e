"""What runs a model for :class:`posrag.engine.Engine`: the :class:`Backend` boundary and its implementations.

``torch`` (:mod:`posrag.backends.torch`) and ``llama.cpp`` (:mod:`posrag.backends.llamacpp`) are imported on use
by :meth:`posrag.engine.Engine.load`, which chooses one.
"""

from posrag.backends.base import Backend

__all__ = ["Backend"]
