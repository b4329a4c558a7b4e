"""llama.cpp graph nodes as Python sees them in the graph callback: the head of ``struct ggml_tensor``, its name
(and the exact, cheap test the callback runs on every node of every graph), a numpy view on its data, and the
softmax node's scale parameter, and the probe that reads each layer's scale and mask once at load. No steering
here: :mod:`posrag.backends.llamacpp_callback` acts on the nodes.
"""

from __future__ import annotations

import ctypes
import struct
from collections.abc import Callable

import numpy as np

from posrag.errors import PosragError

_GGML_TYPE_F32 = 0
_GGML_MAX_DIMS = 4


class GgmlTensor(ctypes.Structure):
    """The head of ``struct ggml_tensor`` (ggml.h of the ik_llama.cpp build the binding ships)."""

    _fields_ = [
        ("type", ctypes.c_int),
        ("backend", ctypes.c_int),
        ("buffer", ctypes.c_void_p),
        ("ne", ctypes.c_int64 * _GGML_MAX_DIMS),
        ("nb", ctypes.c_size_t * _GGML_MAX_DIMS),
        ("op", ctypes.c_int),
        ("op_params", ctypes.c_int32 * 16),
        ("flags", ctypes.c_int32),
        ("grad", ctypes.c_void_p),
        ("src", ctypes.c_void_p * 10),
        ("view_src", ctypes.c_void_p),
        ("view_offs", ctypes.c_size_t),
        ("data", ctypes.c_void_p),
        ("name", ctypes.c_char * 64),
        ("extra", ctypes.c_void_p),
    ]


NAME_OFFSET = GgmlTensor.name.offset  # type: ignore[attr-defined]
HEADER_BYTES = ctypes.sizeof(GgmlTensor)  # what identifies a node's view: shape, strides, sources, data, name
ATTENTION_NODE = "kq-{}"
SOFTMAX_NODE = "kq_soft_max_ext-{}"
LAYER_OUTPUT_NODE = "l_out-{}"


def node_name(address: int) -> bytes:
    """The name of the ``ggml_tensor`` at ``address``."""
    return ctypes.string_at(address + NAME_OFFSET)


def name_filter(names: frozenset[bytes]) -> Callable[[int], bool]:
    """``is_wanted(address)``: whether the node at ``address`` is named one of ``names``.

    The scheduler asks about every node of every graph (~800 per decoded token for a 30-layer model), so this
    is the callback's hot path. Reading a name as ``bytes`` costs ~1 µs; this reads its first 8 bytes as one
    integer (~0.3 µs) and compares the bytes each wanted name fixes there (the name and its terminating NUL,
    at most 8 bytes: what follows a NUL may be anything), reading the whole name only on a match. Exact: a
    node is reported wanted iff its name is in ``names``.
    """
    heads: dict[int, set[int]] = {}
    for name in names:
        fixed = min(len(name) + 1, 8)
        mask = (1 << (8 * fixed)) - 1  # little-endian: the name's first bytes are the integer's low bytes
        heads.setdefault(mask, set()).add(int.from_bytes((name + bytes(8))[:8], "little") & mask)
    groups = tuple((mask, frozenset(values)) for mask, values in heads.items())
    read_head, read_name, offset = ctypes.c_uint64.from_address, ctypes.string_at, NAME_OFFSET

    def is_wanted(address: int) -> bool:
        head = read_head(address + offset).value
        for mask, values in groups:
            if head & mask in values:
                return read_name(address + offset) in names
        return False

    return is_wanted


def tensor_array(tensor: GgmlTensor) -> np.ndarray:
    """A writable numpy view, shape ``(ne3, ne2, ne1, ne0)``, on a contiguous f32 tensor's data (no copy)."""
    name = tensor.name.decode(errors="replace")
    if tensor.type != _GGML_TYPE_F32:
        raise PosragError(f"llama.cpp node {name!r} has ggml type {tensor.type}, not f32; posrag cannot steer it.")
    ne = [int(n) for n in tensor.ne]
    stride = 4
    for dim in range(_GGML_MAX_DIMS):
        if ne[dim] > 1 and int(tensor.nb[dim]) != stride:
            raise PosragError(
                f"llama.cpp node {name!r} is not contiguous (ne={ne}, nb={list(tensor.nb)}); posrag cannot steer it."
            )
        stride *= ne[dim]
    if not tensor.data:
        raise PosragError(f"llama.cpp node {name!r} has no host data; steering needs the CPU backend.")
    return np.asarray(_Pointer(tensor.data, tuple(ne[::-1])))


class _Pointer:
    """Exposes raw f32 memory to numpy without creating a ctypes array type per call."""

    def __init__(self, address: int, shape: tuple[int, ...]) -> None:
        self.__array_interface__ = {"data": (address, False), "shape": shape, "typestr": "<f4", "version": 3}


def softmax_scale(tensor: GgmlTensor) -> float:
    """The ``scale`` parameter of a ``soft_max_ext`` node (its first op parameter, a float)."""
    return float(struct.unpack("<f", struct.pack("<i", int(tensor.op_params[0])))[0])


class ScaleProbe:
    """A callback handler for one decode that reads each layer's softmax scale and mask, and checks that ``kq``
    feeds the softmax directly (a softcap or another operation between them would squash an additive bias)."""

    def __init__(self) -> None:
        self.scales: dict[int, float] = {}
        self._masks: dict[int, str | None] = {}  # None: not a mask the bias can be added to
        self._scores: dict[int, int] = {}
        self._sources: dict[int, int] = {}

    def evaluate(self, address: int, ask: bool) -> bool:
        name = node_name(address)
        is_scores = name.startswith(b"kq-")
        if ask:
            return is_scores or name.startswith(b"kq_soft_max_ext-")
        layer = int(name.rsplit(b"-", 1)[1])
        if is_scores:
            self._scores[layer] = address
        else:
            tensor = GgmlTensor.from_address(address)
            self.scales[layer] = softmax_scale(tensor)
            self._sources[layer] = int(tensor.src[0] or 0)
            self._masks[layer] = _mask_name(tensor.src[1])
        return True

    def masks(self, num_layers: int) -> dict[int, str]:
        """The mask each layer's softmax reads, by name, when every layer's is an input f32 tensor (else empty)."""
        masks = {layer: self._masks.get(layer) for layer in range(num_layers)}
        return {layer: name for layer, name in masks.items() if name} if all(masks.values()) else {}

    def refusal(self, num_layers: int, model: str) -> str | None:
        """Why attention-bias steering cannot run on this graph, or ``None`` when it can."""
        missing = [layer for layer in range(num_layers) if layer not in self.scales or layer not in self._scores]
        if missing:
            return (
                f"llama.cpp's graph for {model} has no {ATTENTION_NODE.format('<layer>')} / "
                f"{SOFTMAX_NODE.format('<layer>')} nodes on layers {missing}, so attention-bias steering cannot run "
                "on the llama.cpp backend; use SteeringConfig(mechanism='activation') or backend='torch'."
            )
        indirect = [layer for layer in range(num_layers) if self._sources[layer] != self._scores[layer]]
        if indirect:
            return (
                f"In llama.cpp's graph for {model} the attention scores pass through another operation (a softcap?) "
                f"between kq and the softmax on layers {indirect}, which would squash an additive bias; use "
                "SteeringConfig(mechanism='activation') or backend='torch'."
            )
        return None


def _mask_name(address: int | None) -> str | None:
    """The name of the softmax's mask at ``address`` when the bias can be added to it: an input (computed by no
    operation, so llama.cpp writes it anew for every evaluation), f32, contiguous, named."""
    if not address:
        return None
    mask = GgmlTensor.from_address(address)
    if mask.op != 0 or mask.view_src or not mask.name:  # GGML_OP_NONE
        return None
    try:
        tensor_array(mask)
    except PosragError:
        return None
    return mask.name.decode()


__all__ = [
    "ATTENTION_NODE",
    "HEADER_BYTES",
    "LAYER_OUTPUT_NODE",
    "NAME_OFFSET",
    "SOFTMAX_NODE",
    "GgmlTensor",
    "ScaleProbe",
    "name_filter",
    "node_name",
    "softmax_scale",
    "tensor_array",
]
