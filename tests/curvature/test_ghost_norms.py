"""The per-sample gradient norms of a stack of layers in one kernel call
(:func:`structjac.kernels.curvature.ghost_norms`): against the norms of the per-sample
gradients formed in numpy, read-only and non-contiguous inputs, and bad input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from structjac.kernels.curvature import ghost_norms, ghost_norms_from_row_squares


def naive(Gs, As):
    """sqrt(sum_l ||g_k a_k^T||_F^2 + ||g_k||^2) from the per-sample gradients themselves."""
    N = Gs[0].shape[0]
    out = np.zeros(N)
    for G, A in zip(Gs, As):
        G = G.astype(np.float64)
        A = A.astype(np.float64)
        per_sample_W = G[:, :, None] * A[:, None, :]  # (N, m, d)
        out += (per_sample_W**2).sum(axis=(1, 2)) + (G**2).sum(axis=1)
    return np.sqrt(out)


def layers(rng, N, widths, dtype):
    Gs = [rng.standard_normal((N, m)).astype(dtype) for m in widths[1:]]
    As = [rng.standard_normal((N, d)).astype(dtype) for d in widths[:-1]]
    return Gs, As


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("widths", [(3, 1), (5, 4, 2), (32, 64, 64, 1), (1, 1, 1)])
def test_against_per_sample_gradients(dtype, widths):
    rng = np.random.default_rng(7)
    Gs, As = layers(rng, 9, widths, dtype)
    copies = [x.copy() for x in Gs + As]
    n = ghost_norms(Gs, As)
    assert n.dtype == dtype and n.shape == (9,)
    tol = 1e-5 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(n, naive(Gs, As), rtol=tol)
    for x, c in zip(Gs + As, copies):
        np.testing.assert_array_equal(x, c)  # inputs are not written to


@settings(max_examples=40, deadline=None)
@given(
    N=st.integers(1, 12),
    widths=st.lists(st.integers(1, 9), min_size=2, max_size=5),
    seed=st.integers(0, 2**16),
)
def test_property_float64(N, widths, seed):
    rng = np.random.default_rng(seed)
    Gs, As = layers(rng, N, widths, np.float64)
    np.testing.assert_allclose(ghost_norms(Gs, As), naive(Gs, As), rtol=1e-13)


def test_read_only_and_strided_inputs():
    rng = np.random.default_rng(1)
    Gs, As = layers(rng, 6, (4, 3, 2), np.float32)
    expect = naive(Gs, As)
    As[0].flags.writeable = False  # e.g. a user's read-only X beside writeable buffers
    Gs[1] = np.asfortranarray(Gs[1])
    As[1] = np.repeat(As[1], 2, axis=1)[:, ::2]
    np.testing.assert_allclose(ghost_norms(Gs, As), expect, rtol=1e-5)


def test_nan_in_nan_out_per_sample():
    Gs, As = layers(np.random.default_rng(2), 4, (3, 2), np.float64)
    As[0][2, 1] = np.nan
    n = ghost_norms(Gs, As)
    assert np.isnan(n[2]) and np.isfinite(np.delete(n, 2)).all()


def test_bad_input_names_what_is_wrong():
    rng = np.random.default_rng(0)
    Gs, As = layers(rng, 5, (3, 2, 2), np.float64)
    with pytest.raises(ValueError, match="one A per G"):
        ghost_norms(Gs, As[:1])
    with pytest.raises(ValueError, match="at least one layer"):
        ghost_norms([], [])
    with pytest.raises(ValueError, match=r"layer 1: G \(5, 2\) and A \(4, 2\)"):
        ghost_norms(Gs, [As[0], As[1][:4]])
    with pytest.raises(ValueError, match=r"A\[0\] must be a 2-D float32/float64 array of dtype"):
        ghost_norms(Gs, [As[0].astype(np.float32), As[1]])
    with pytest.raises(ValueError, match=r"G\[0\] must be a 2-D"):
        ghost_norms([Gs[0].ravel(), Gs[1]], As)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_from_row_squares_against_per_sample_gradients(dtype):
    """The fused passes' factors: per layer ||g_k||^2, per hidden layer ||a_k||^2, and
    ||x_k||^2 summed in the same call."""
    rng = np.random.default_rng(4)
    Gs, As = layers(rng, 11, (6, 5, 4, 2), dtype)
    g_sq = [(G * G).sum(axis=1) for G in Gs]
    a_sq = [(A * A).sum(axis=1) for A in As[1:]]
    a_sq[0].flags.writeable = False  # copied, not refused
    n = ghost_norms_from_row_squares(As[0], g_sq, a_sq)
    assert n.dtype == dtype
    np.testing.assert_allclose(n, naive(Gs, As), rtol=1e-5 if dtype == np.float32 else 1e-13)
    np.testing.assert_allclose(n, ghost_norms(Gs, As), rtol=1e-5 if dtype == np.float32 else 1e-13)


def test_from_row_squares_bad_input():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((5, 3))
    with pytest.raises(ValueError, match=r"2 layers \(g_sq\) need 1 hidden-layer row squares"):
        ghost_norms_from_row_squares(X, [np.ones(5), np.ones(5)], [])
    with pytest.raises(ValueError, match=r"g_sq\[1\] must be a C-contiguous array of shape \(5,\)"):
        ghost_norms_from_row_squares(X, [np.ones(5), np.ones(4)], [np.ones(5)])
    with pytest.raises(ValueError, match=r"a_sq\[0\] .* dtype float64 \(X has shape \(5, 3\)\)"):
        ghost_norms_from_row_squares(X, [np.ones(5)] * 2, [np.ones(5, np.float32)])
