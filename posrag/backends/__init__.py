"""What runs a model for :class:`posrag.engine.Engine`: the :class:`Backend` boundary and its implementations.

``torch`` (:mod:`posrag.backends.torch`) and ``llama.cpp`` (:mod:`posrag.backends.llamacpp`) are imported on use
by :meth:`posrag.engine.Engine.load`, which chooses one. The llama.cpp backend is split by concept:
``llamacpp_binding`` (the lazily imported binding, a context whose callback forwards to its holder, the GGUF's
tokenizer and layout), ``llamacpp_callback`` (both steering mechanisms as the graph-evaluation callback) and
``decoding`` (token choice, stops and streamed pieces for a backend with its own decode loop).
"""

from posrag.backends.base import Backend

__all__ = ["Backend"]
