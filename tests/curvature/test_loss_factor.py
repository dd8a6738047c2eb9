"""The losses' second derivatives and curvature factors, one Numba pass each
(:func:`structjac.kernels.losses.mse_hessian`, ``bce_hessian``,
``bce_with_logits_hessian``, :func:`~structjac.kernels.losses.hessian_factor` and
:func:`~structjac.kernels.losses.bernoulli_logit_factor`): against numpy's formulas,
against central differences of the gradient kernels, and the loss factors of
``structjac._extras`` against the dense Hessian of the op."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from structjac import _extras, ops
from structjac.kernels import BCE_EPS
from structjac.kernels import losses as kl

DTYPES = [np.float32, np.float64]
LOSS_NAMES = ["mse", "bce", "bce_with_logits"]
OPS = {"mse": ops.mse, "bce": ops.bce, "bce_with_logits": ops.bce_with_logits}
HESSIANS = {
    "mse": kl.mse_hessian,
    "bce": kl.bce_hessian,
    "bce_with_logits": kl.bce_with_logits_hessian,
}
GRADS = {"mse": kl.mse_grad, "bce": kl.bce_grad, "bce_with_logits": kl.bce_with_logits_grad}


def _inputs(name, shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.random(shape).astype(dtype)
    if name == "bce":
        h = rng.uniform(0.05, 0.95, shape).astype(dtype)
    else:
        h = (3 * rng.standard_normal(shape)).astype(dtype)
    return y, h


def _numpy_hessian(name, y, h):
    """The second derivatives, in float64, by numpy."""
    y = y.astype(np.float64)
    h = h.astype(np.float64)
    if name == "mse":
        return np.full(h.shape, 2.0)
    if name == "bce":
        eps = BCE_EPS[np.dtype(np.float64)]
        c = np.clip(h, eps, 1 - eps)
        return y / c**2 + (1 - y) / (1 - c) ** 2
    e = np.exp(-np.abs(h))  # sigma'(z) = e / (1 + e)**2, accurate in both tails
    return e / (1 + e) ** 2


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", LOSS_NAMES)
@pytest.mark.parametrize("shape", [(7,), (5, 3), (4, 2, 3), (0, 3)])
def test_hessian_against_numpy(name, dtype, shape):
    y, h = _inputs(name, shape, dtype)
    copies = y.copy(), h.copy()
    got = HESSIANS[name](y, h, 0.25)
    assert got.shape == shape and got.dtype == dtype
    rtol = 2e-6 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(got, 0.25 * _numpy_hessian(name, y, h), rtol=rtol)
    np.testing.assert_array_equal(y, copies[0])
    np.testing.assert_array_equal(h, copies[1])


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_hessian_is_the_derivative_of_the_gradient(name):
    y, h = _inputs(name, (6, 4), np.float64, seed=1)
    step = 1e-6
    fd = (GRADS[name](y, h + step) - GRADS[name](y, h - step)) / (2 * step)
    np.testing.assert_allclose(HESSIANS[name](y, h), fd, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("name", ["bce_with_logits"])
def test_logit_hessian_tails_are_finite(name):
    z = np.array([-1e4, -40.0, 0.0, 40.0, 1e4, np.inf, -np.inf])
    got = HESSIANS[name](np.zeros_like(z), z)
    assert np.all(np.isfinite(got)) and np.all(got >= 0)
    assert got[2] == 0.25 and got[0] == 0.0 and got[-1] == 0.0


def test_bce_hessian_is_finite_at_zero_and_one():
    for dtype in DTYPES:
        h = np.array([0.0, 1.0], dtype)
        y = np.array([1.0, 0.0], dtype)
        got = kl.bce_hessian(y, h)
        assert np.all(np.isfinite(got)) and got.dtype == dtype


def test_hessian_nan_in_nan_out():
    got = kl.bce_with_logits_hessian(np.zeros(3), np.array([0.0, np.nan, 1.0]))
    assert np.isnan(got[1]) and np.isfinite(got[[0, 2]]).all()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", LOSS_NAMES)
def test_exact_factor_squares_to_the_weighted_hessian(name, dtype):
    N, m, w = 6, 3, 0.125
    y, h = _inputs(name, (N, m), dtype, seed=2)
    copies = y.copy(), h.copy()
    S = kl.hessian_factor(name, y, h, w)
    assert S.shape == (m, N, m) and S.dtype == dtype
    rtol = 2e-6 if dtype == np.float32 else 1e-13
    H = w * _numpy_hessian(name, y, h)
    for k in range(N):
        np.testing.assert_allclose(S[:, k].T @ S[:, k], np.diag(H[k]), rtol=rtol, atol=0)
    off = S.copy()
    off[np.arange(m), :, np.arange(m)] = 0
    assert not off.any()
    np.testing.assert_array_equal(y, copies[0])
    np.testing.assert_array_equal(h, copies[1])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", LOSS_NAMES)
def test_signed_factor(name, dtype):
    R, N, m, scale = 4, 5, 2, 0.5
    y, h = _inputs(name, (N, m), dtype, seed=3)
    signs = np.random.default_rng(4).integers(0, 2, (R, N, m), dtype=np.bool_)
    S = kl.hessian_factor(name, y, h, scale, signs=signs)
    assert S.shape == (R, N, m) and S.dtype == dtype
    expect = np.where(signs, 1.0, -1.0) * np.sqrt(scale * _numpy_hessian(name, y, h))
    rtol = 2e-6 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(S, expect, rtol=rtol)


@pytest.mark.parametrize("dtype", DTYPES)
def test_bernoulli_logit_factor(dtype):
    rng = np.random.default_rng(5)
    z = (3 * rng.standard_normal((6, 2))).astype(dtype)
    u = rng.random((3, 6, 2), dtype=dtype)
    copies = z.copy(), u.copy()
    got = kl.bernoulli_logit_factor(z, u, 0.5)
    assert got.shape == (3, 6, 2) and got.dtype == dtype
    p = 1 / (1 + np.exp(-z.astype(np.float64)))
    expect = 0.5 * (p - (u < p))
    # |entries| <= scale: p - 1 cancels, so the float32 bound is absolute (a few ulps of p)
    np.testing.assert_allclose(got, expect, rtol=0, atol=1.5e-7 if dtype == np.float32 else 1e-15)
    np.testing.assert_array_equal(z, copies[0])
    np.testing.assert_array_equal(u, copies[1])


@settings(max_examples=40, deadline=None)
@given(
    z=st.floats(-30, 30),
    u=st.lists(st.floats(0, 1, exclude_max=True), min_size=1, max_size=50),
)
def test_bernoulli_factor_is_p_minus_a_label(z, u):
    got = kl.bernoulli_logit_factor(np.full((1, 1), z), np.array(u)[:, None, None])
    p = 1 / (1 + np.exp(-z))
    assert np.all(np.isclose(got, p) | np.isclose(got, p - 1))


def test_bad_input():
    y, h = np.zeros((3, 2)), np.full((3, 2), 0.5)
    with pytest.raises(ValueError, match=r"unknown loss 'cross_entropy'; expected one of"):
        kl.hessian_factor("cross_entropy", y, h)
    with pytest.raises(ValueError, match=r"shapes do not match: y has shape \(3, 2\)"):
        kl.bce_hessian(y, h[:2])
    with pytest.raises(ValueError, match=r"signs must be booleans of shape \(R, 3, 2\), got dtype"):
        kl.hessian_factor("bce", y, h, signs=np.ones((2, 3, 2)))
    with pytest.raises(ValueError, match=r"got dtype bool and shape \(2, 2, 3\)"):
        kl.hessian_factor("bce", y, h, signs=np.ones((2, 2, 3), dtype=bool))
    with pytest.raises(ValueError, match=r"u must have shape \(R, 3, 2\), got \(2, 3\)"):
        kl.bernoulli_logit_factor(h, np.zeros((2, 3)))
    with pytest.raises(ValueError, match="out has shape"):
        kl.mse_hessian(y, h, out=np.empty(3))


# --- the extras' loss factors against the op's dense Hessian --------------------------


def _record(loss, y, z, reduction="mean"):
    return _extras.Record(layers=[], y=y, out=z, loss=loss, reduction=reduction)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", LOSS_NAMES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "elementwise_mean"])
def test_extras_exact_factor_is_the_op_hessian(name, dtype, reduction):
    N, m = 5, 3
    y, z = _inputs(name, (N, m), dtype, seed=6)
    S = _extras.loss_factor(_record(OPS[name], y, z, reduction))
    H = OPS[name].hessian(y, z, reduction=reduction).to_dense()
    assert S.dtype == dtype
    blocks = np.einsum("ckj,cki->kji", S.astype(np.float64), S.astype(np.float64))
    rtol = 5e-6 if dtype == np.float32 else 1e-13
    for k in range(N):
        np.testing.assert_allclose(
            blocks[k], H[k * m : (k + 1) * m, k * m : (k + 1) * m], rtol=rtol, atol=1e-12
        )


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_extras_sampled_factor_converges_to_the_op_hessian(name):
    N, m, mc = 4, 2, 40000
    y, z = _inputs(name, (N, m), np.float64, seed=7)
    S = _extras.loss_factor(_record(OPS[name], y, z), mc_samples=mc, rng=np.random.default_rng(8))
    assert S.shape == (mc, N, m)
    H = OPS[name].hessian(y, z).to_dense()
    blocks = np.einsum("ckj,cki->kji", S, S)
    for k in range(N):
        Hk = H[k * m : (k + 1) * m, k * m : (k + 1) * m]
        np.testing.assert_allclose(blocks[k], Hk, atol=0.03 * np.abs(Hk).max())


def test_extras_sampled_factor_is_seeded_and_keeps_float32():
    y, z = _inputs("bce_with_logits", (4, 2), np.float32, seed=9)
    record = _record(ops.bce_with_logits, y, z)
    a = _extras.loss_factor(record, mc_samples=3, rng=np.random.default_rng(1))
    b = _extras.loss_factor(record, mc_samples=3, rng=np.random.default_rng(1))
    assert a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
