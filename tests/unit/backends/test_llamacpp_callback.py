"""The llama.cpp callback's arithmetic on plain arrays (no llama.cpp needed): the bias rows and columns, the
activation steer and its vectors accumulated over micro-batches, and the tensor view of a ggml tensor."""

from __future__ import annotations

import ctypes
import math
import sys
from typing import Any

import numpy as np
import pytest
import torch

from posrag.backends.llamacpp_callback import (
    LayerActivation,
    RequestSteering,
    add_attention_bias,
    bias_by_position,
    plan_mask_bias,
    steer,
)
from posrag.backends.llamacpp_nodes import GgmlTensor, name_filter, softmax_scale, tensor_array
from posrag.errors import MissingDependencyError, PosragError
from posrag.steering.activation import ActivationTarget, combined_steer
from posrag.steering.attention import AttentionTarget
from posrag.steering.spans import TokenSpan


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_bias_in_kq_units_doubles_document_weight_after_the_scale() -> None:
    scale = 1 / 16
    bias = bias_by_position([AttentionTarget(TokenSpan(2, 5), math.log(2))], scale)
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(4, 3, 8)).astype(np.float32)  # heads, rows at positions 6, 7, 8; 8 key cells
    plain = _softmax(scale * scores)
    add_attention_bias(scores, first_position=6, steer_from=7, bias=bias)
    steered = _softmax(scale * scores)
    np.testing.assert_allclose(steered[:, 0], plain[:, 0], rtol=1e-6)  # position 6: before steer_from
    ratio = steered[:, 1:] / plain[:, 1:]
    np.testing.assert_allclose(ratio[..., 2:5] / ratio[..., [0]], 2.0, rtol=1e-4)
    np.testing.assert_allclose(ratio[..., 5:] / ratio[..., [0]], 1.0, rtol=1e-4)


def test_bias_stops_at_the_cells_there_are() -> None:
    scores = np.zeros((1, 1, 3), dtype=np.float32)
    add_attention_bias(scores, 0, 0, np.ones(10, dtype=np.float32))
    assert scores.tolist() == [[[1.0, 1.0, 1.0]]]


def _targets() -> list[ActivationTarget]:
    return [ActivationTarget(TokenSpan(1, 4), 0.3), ActivationTarget(TokenSpan(5, 7), 0.6)]


@pytest.mark.parametrize("k", [1, 3])
def test_steer_is_the_torch_formula(k: int) -> None:
    generator = torch.Generator().manual_seed(k)
    hidden, vectors = torch.randn(5, 32, generator=generator), torch.randn(k, 32, generator=generator)
    intensities = torch.tensor([0.3, 0.9, 0.5][:k])
    hidden[1] = vectors[0] * 2  # a row parallel to a vector: its perpendicular part is zero
    expected = combined_steer(hidden, vectors, intensities)
    got = steer(hidden.numpy(), vectors.numpy(), intensities.numpy())
    torch.testing.assert_close(torch.from_numpy(got), expected, rtol=1e-5, atol=1e-5)


def test_activation_equals_the_torch_formula_and_micro_batches_do_not_matter() -> None:
    hidden = torch.randn(12, 16)
    whole = hidden.clone().numpy()
    LayerActivation(_targets(), steer_from=8, context=(1, 8), center=True)(whole, 0)
    split = hidden.clone().numpy()
    layer = LayerActivation(_targets(), steer_from=8, context=(1, 8), center=True)
    for start in range(0, 12, 5):  # three micro-batches of the prefill
        layer(split[start : start + 5], start)
    baseline = hidden[1:8].mean(0)
    vectors = torch.stack([hidden[1:4].mean(0) - baseline, hidden[5:7].mean(0) - baseline])
    expected = hidden.clone()
    expected[8:] += combined_steer(hidden[8:], vectors, torch.tensor([0.3, 0.6]))
    torch.testing.assert_close(torch.from_numpy(whole), expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(torch.from_numpy(split), expected, rtol=1e-5, atol=1e-5)
    step = torch.randn(1, 16)
    stepped = step.clone().numpy()
    layer(stepped, 12)  # a decode step: steered with the vectors of the prefill
    expected_step = step + combined_steer(step, vectors, torch.tensor([0.3, 0.6]))
    torch.testing.assert_close(torch.from_numpy(stepped), expected_step, rtol=1e-5, atol=1e-5)


def test_activation_refuses_a_first_pass_that_skipped_the_documents() -> None:
    layer = LayerActivation(_targets(), steer_from=8, context=(1, 8), center=True)
    with pytest.raises(PosragError, match="reused prefix"):
        layer(np.zeros((4, 16), dtype=np.float32), 6)


def _tensor(array: np.ndarray, name: bytes, op_params: tuple[int, ...] = ()) -> GgmlTensor:
    tensor = GgmlTensor()
    tensor.type = 0
    shape = array.shape[::-1]
    for dim in range(4):
        tensor.ne[dim] = shape[dim] if dim < len(shape) else 1
    stride = 4
    for dim in range(4):
        tensor.nb[dim] = stride
        stride *= tensor.ne[dim]
    tensor.data = array.ctypes.data
    tensor.name = name
    for i, value in enumerate(op_params):
        tensor.op_params[i] = value
    return tensor


def test_tensor_array_is_a_writable_view_and_refuses_other_types() -> None:
    data = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    tensor = _tensor(data, b"kq-0")
    view = tensor_array(tensor)
    assert view.shape == (1, 2, 3, 4)
    view[0, 1, 2, 3] = -1
    assert data[1, 2, 3] == -1
    tensor.type = 1
    with pytest.raises(PosragError, match="not f32"):
        tensor_array(tensor)


def test_softmax_scale_reads_the_float_parameter() -> None:
    (bits,) = np.array([0.0625], dtype=np.float32).view(np.int32)
    assert softmax_scale(_tensor(np.zeros(1, dtype=np.float32), b"kq_soft_max_ext-0", (int(bits),))) == 0.0625


def test_request_asks_only_for_its_nodes_and_acts_on_them() -> None:
    steering = RequestSteering(
        steer_from=3,
        context=(0, 3),
        activation={},
        attention={2: [AttentionTarget(TokenSpan(0, 2), 1.0)], 4: [AttentionTarget(TokenSpan(0, 2), 0.0)]},
        scales={2: 0.5, 4: 0.5},
    )
    scores = np.zeros((1, 1, 4, 6), dtype=np.float32)
    kq, other = _tensor(scores, b"kq-2"), _tensor(scores.copy(), b"kq-4")
    assert steering.evaluate(ctypes.addressof(kq), True)
    assert not steering.evaluate(ctypes.addressof(other), True)  # zero bias: not asked for
    steering.first_position, steering.batch_size = 0, 4
    assert steering.evaluate(ctypes.addressof(kq), False)
    assert scores[0, 0, 3, :2].tolist() == [2.0, 2.0] and not scores[0, 0, :3].any() and not scores[0, 0, 3, 2:].any()
    assert steering.calls == {"kq-2": 1}


def test_the_ask_time_filter_wants_exactly_the_named_nodes() -> None:
    wanted = frozenset({b"kq-2", b"kq-20", b"l_out-1", b"l_out-12", b"blk.attn_output-3"})
    is_wanted = name_filter(wanted)
    tensor = GgmlTensor()
    address = ctypes.addressof(tensor)
    names = [
        *wanted,
        *(b"kq-%d" % layer for layer in (0, 1, 3, 21, 200)),
        b"kq",
        b"kq-",
        b"l_out-12x",  # the first 8 bytes of a wanted 8-byte name, then more
        b"l_out-120",
        b"l_out-2",
        b"blk.attn_output-30",
        b"kq_soft_max_ext-2",
        b"",
    ]
    for name in names:
        # A renamed node keeps the old name's bytes after its NUL: the filter must not read them.
        for leftover in (b"", b"\xff" * 20, b"kq-2"):
            field = address + GgmlTensor.name.offset  # type: ignore[attr-defined]
            ctypes.memset(field, 0, 64)
            ctypes.memmove(field, name + b"\0" + leftover, len(name) + 1 + len(leftover))
            assert is_wanted(address) == (name in wanted), (name, leftover)
    assert not name_filter(frozenset())(address)


def test_an_error_in_the_callback_is_kept_for_the_caller_and_computation_continues() -> None:
    steering = RequestSteering(
        steer_from=0,
        context=(0, 0),
        activation={},
        attention={0: [AttentionTarget(TokenSpan(0, 1), 1.0)]},
        scales={0: 1.0},
    )
    tensor = _tensor(np.zeros((2, 2), dtype=np.float32), b"kq-0")
    tensor.type = 1
    assert steering.evaluate(ctypes.addressof(tensor), False)
    assert isinstance(steering.error, PosragError)


def _rows(layers: Any, value: float = 1.0) -> dict[int, np.ndarray]:
    return {layer: np.full(3, value, dtype=np.float32) for layer in layers}


GEMMA_MASKS = {layer: "KQ_mask" if layer in (5, 11, 17) else "KQ_mask_swa" for layer in range(18)}


def test_the_mask_takes_the_bias_of_the_layers_that_read_it_to_the_end() -> None:
    masks = dict.fromkeys(range(30), "KQ_mask")
    after, before, covered = plan_mask_bias(_rows(range(20, 30)), masks)
    assert list(after) == [19] and not before and covered == set(range(20, 30))  # one stop, after layer 19
    after, before, covered = plan_mask_bias(_rows(range(30)), masks)
    assert not after and list(before) == [0] and covered == set(range(30))  # no stop: before layer 0 reads it
    after, before, covered = plan_mask_bias(_rows(range(12, 18)), GEMMA_MASKS)  # each mask from some layer on
    assert sorted(after) == [10, 11] and not before and covered == set(range(12, 18))
    after, before, covered = plan_mask_bias(_rows([5, 11, 17]), GEMMA_MASKS)
    assert not after and list(before) == [5] and covered == {5, 11, 17}


def test_layers_that_the_mask_would_not_steer_alike_keep_their_bias_on_kq() -> None:
    masks = dict.fromkeys(range(30), "KQ_mask")
    for rows in (_rows(range(20, 29)), _rows([0, 5, 29]), {**_rows(range(20, 29)), **_rows([29], 2.0)}):
        assert plan_mask_bias(rows, masks) == ({}, {}, frozenset())  # a later layer unsteered / steered otherwise
    assert plan_mask_bias(_rows(range(20, 30)), {}) == ({}, {}, frozenset())  # no mask known
    after, before, covered = plan_mask_bias(_rows([5, 11, 15, 17]), GEMMA_MASKS)  # 15: not the window mask's tail
    assert list(before) == [5] and not after and covered == {5, 11, 17}


def _softmax_over(mask: np.ndarray, name: bytes) -> tuple[GgmlTensor, GgmlTensor]:
    mask_tensor = _tensor(mask, b"KQ_mask")
    softmax = _tensor(np.zeros((1, 4, 6), dtype=np.float32), name)
    softmax.src[1] = ctypes.addressof(mask_tensor)
    return softmax, mask_tensor


def _steering(layers: Any, masks: Any, **options: Any) -> RequestSteering:
    return RequestSteering(
        steer_from=3,
        context=(0, 3),
        activation={},
        attention={layer: [AttentionTarget(TokenSpan(0, 2), 1.5)] for layer in layers},
        scales=dict.fromkeys(range(4), 0.5),
        masks=masks,
        **options,
    )


def test_the_bias_goes_into_the_mask_rows_of_the_steered_queries() -> None:
    masks = dict.fromkeys(range(4), "KQ_mask")
    for layers, node, at_ask in (((2, 3), b"kq_soft_max_ext-1", False), (range(4), b"kq_soft_max_ext-0", True)):
        steering = _steering(layers, masks)
        assert not any(name.startswith(b"kq-") for name in steering.wanted)  # no stop at any steered layer
        mask = np.zeros((8, 6), dtype=np.float32)  # 8 rows: 4 queries of this ubatch, then padding
        softmax, _ = _softmax_over(mask, node)
        steering.first_position, steering.batch_size = 1, 4  # rows at positions 1..4; steer_from=3: rows 2, 3
        asked = steering.evaluate(ctypes.addressof(softmax), True)
        if not at_ask:
            assert asked and not mask.any()  # wanted: the bias goes in once the node has been computed
            assert steering.evaluate(ctypes.addressof(softmax), False)
        else:
            assert not asked  # added while the scheduler asks; it need not stop there
        expected = np.zeros((8, 6), dtype=np.float32)
        expected[2:4, :2] = 1.5  # the softmax's scaled units (kq would get 1.5 / 0.5)
        np.testing.assert_array_equal(mask, expected)
        assert steering.calls == {node.decode(): 1}


def test_a_tapped_kq_node_keeps_its_layers_bias_where_the_tap_reads_it() -> None:
    masks = dict.fromkeys(range(4), "KQ_mask")
    steering = _steering((2, 3), masks, taps={"kq-2": lambda array, first: None})
    assert steering.wanted == {b"kq-2", b"kq_soft_max_ext-2"}  # layer 2 on kq; layer 3 through the mask after it
    steering = _steering((2, 3), masks, taps={"kq-3": lambda array, first: None})
    assert steering.wanted == {b"kq-2", b"kq-3"}  # layer 2 alone is not the mask's tail: both on kq


def test_missing_binding_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from posrag.backends import llamacpp_binding as llamacpp

    monkeypatch.setitem(sys.modules, "ik_llama_cpp", None)
    with pytest.raises(MissingDependencyError, match=r"posrag\[llamacpp\]"):
        llamacpp.binding()


def test_the_packaged_gguf_is_recognised_by_its_path_so_it_gets_its_calibration(tmp_path: Any) -> None:
    from posrag.backends.llamacpp_binding import is_packaged, packaged_gguf_path

    assert is_packaged(packaged_gguf_path()) and is_packaged(str(packaged_gguf_path()))
    assert not is_packaged(tmp_path / packaged_gguf_path().name)
