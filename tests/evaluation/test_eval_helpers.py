"""flip_average and average_query_expansion: values by hand, types kept, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reid_pipeline.evaluation import average_query_expansion, flip_average, l2_normalize


def test_flip_average_by_hand_and_keeps_the_type() -> None:
    a = np.array([[1.0, 3.0], [2.0, 0.0]], np.float32)
    b = np.array([[3.0, 1.0], [0.0, 0.0]], np.float32)
    out = flip_average(a, b)
    assert isinstance(out, np.ndarray)
    np.testing.assert_allclose(out, [[2.0, 2.0], [1.0, 0.0]])
    t = flip_average(torch.from_numpy(a), b, normalize_first=True)
    assert isinstance(t, torch.Tensor)
    s = 1 / np.sqrt(10)
    np.testing.assert_allclose(t.numpy(), [[2 * s, 2 * s], [0.5, 0.0]], rtol=1e-6)


def test_flip_average_shape_mismatch() -> None:
    with pytest.raises(ValueError, match="feats and flipped_feats must have the same shape"):
        flip_average(np.ones((2, 3)), np.ones((3, 3)))


def test_aqe_by_hand() -> None:
    # database: q0 = e0; g0 = (cos 30deg, sin 30deg); g1 = e1
    q = np.array([[1.0, 0.0]])
    g = np.array([[np.sqrt(3) / 2, 0.5], [0.0, 1.0]])
    new_q, new_g = average_query_expansion(q, g, k=2, alpha=1.0)
    # q0's two nearest: itself (cos 1) and g0 (cos 0.866): 1 * e0 + 0.866 * g0, normalised
    expected = np.array([1.0, 0.0]) + np.sqrt(3) / 2 * g[0]
    np.testing.assert_allclose(new_q[0], expected / np.linalg.norm(expected), atol=1e-12)
    # alpha 0: plain average of the k nearest (g1's nearest: itself and g0, cos 0.5)
    _, plain_g = average_query_expansion(q, g, k=2, alpha=0.0)
    expected = g[1] + g[0]
    np.testing.assert_allclose(plain_g[1], expected / np.linalg.norm(expected), atol=1e-12)
    assert new_g.shape == (2, 2)


def test_aqe_chunks_and_iterations_agree() -> None:
    rng = np.random.default_rng(0)
    q, g = rng.standard_normal((30, 5)), rng.standard_normal((70, 5))
    a = average_query_expansion(q, g, k=4, alpha=3.0, chunk_size=7, iterations=2)
    b = average_query_expansion(
        torch.from_numpy(q), g, k=4, alpha=3.0, chunk_size=1000, iterations=2
    )
    np.testing.assert_allclose(a[0], b[0].numpy(), atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(a[1], axis=1), 1.0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"k": 0}, "k must be an integer >= 1"),
        ({"k": 200}, "k=200 exceeds the 8 query"),
        ({"alpha": -1.0}, "alpha must be a number >= 0"),
        ({"iterations": 0}, "iterations must be an integer >= 1"),
    ],
)
def test_aqe_bad_options(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        average_query_expansion(np.ones((3, 2)), np.ones((5, 2)), **kwargs)


def test_l2_normalize_keeps_zero_rows() -> None:
    out = l2_normalize(np.array([[3.0, 4.0], [0.0, 0.0]]))
    np.testing.assert_allclose(out, [[0.6, 0.8], [0.0, 0.0]])
