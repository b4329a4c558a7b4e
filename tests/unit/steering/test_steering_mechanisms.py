"""The activation mechanism's vector algebra: orthogonal steer, the multi-document mix, dimension alignment."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from posrag.steering import align_dimension, orthogonal_steer
from posrag.steering.activation import combined_steer


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.floats(0.0, 2.0))
def test_orthogonal_steer_is_orthogonal_with_relative_norm(seed: int, intensity: float) -> None:
    torch.manual_seed(seed)
    h, v = torch.randn(3, 5, 16), torch.randn(16)
    delta = orthogonal_steer(h, v, intensity)
    assert (delta * h).sum(-1).abs().max() < 1e-3 * (1 + h.norm(dim=-1).max())
    torch.testing.assert_close(delta.norm(dim=-1), intensity * h.norm(dim=-1), rtol=1e-4, atol=1e-5)


def test_orthogonal_steer_of_a_parallel_vector_is_zero() -> None:
    h = torch.randn(1, 2, 8)
    assert torch.equal(orthogonal_steer(h, h[0, 0] * 0 + h[0, 0], 0.5)[0, 0], torch.zeros(8))


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.lists(st.floats(0.01, 1.0), min_size=2, max_size=6))
def test_combined_steer_is_bounded_by_the_strongest_document(seed: int, intensities: list[float]) -> None:
    torch.manual_seed(seed)
    h = torch.randn(1, 4, 16)
    vectors = [torch.randn(16) for _ in intensities]
    delta = combined_steer(h, vectors, intensities)
    torch.testing.assert_close(delta.norm(dim=-1), max(intensities) * h.norm(dim=-1), rtol=1e-4, atol=1e-5)
    assert (delta * h).sum(-1).abs().max() < 1e-3 * (1 + h.norm(dim=-1).max())
    one = combined_steer(h, vectors[:1], intensities[:1])
    torch.testing.assert_close(one, orthogonal_steer(h, vectors[0], intensities[0]))


def test_combined_steer_leans_toward_the_stronger_document() -> None:
    h = torch.zeros(1, 1, 3)
    h[..., 2] = 1.0
    x, y = torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 1.0, 0.0])
    delta = combined_steer(h, [x, y], [0.9, 0.1])[0, 0]
    assert delta[0] > 5 * delta[1] > 0


@pytest.mark.parametrize(("source", "width"), [(384, 640), (7, 32), (64, 32), (32, 32)])
def test_align_dimension_is_a_fixed_isometry(source: int, width: int) -> None:
    torch.manual_seed(0)
    a, b = torch.randn(source), torch.randn(source)
    ra, rb = align_dimension(a, width), align_dimension(b, width)
    assert ra.shape == (width,)
    torch.testing.assert_close(align_dimension(a, width), ra)  # deterministic
    if source <= width:  # an isometric embedding: norms and angles kept exactly
        torch.testing.assert_close(ra.norm(), a.norm(), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(ra @ rb, a @ b, rtol=1e-4, atol=1e-4)
    else:  # a projection onto a fixed subspace: never longer
        assert ra.norm() <= a.norm() + 1e-5
