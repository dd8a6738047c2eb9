"""SiLU, x sigma(x): the op, its kernels and its layer kernels, all generated from its
one entry in the scalar table.  Against SciPy's expit in float64, central finite
differences, PyTorch's silu and its autograd, float32 kept, the limits at +-inf."""

import numpy as np
import pytest
import scipy.special as sps
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import structjac as sj
from structjac import kernels as K
from structjac.kernels import layer
from structjac.layers import get_activation


def _ref(x):
    s = sps.expit(x)
    return x * s, s * (1 + x * (1 - s))


X = np.concatenate([np.linspace(-30, 30, 601), [-700.0, -80.0, 0.0, 80.0, 700.0]])


def test_value_and_derivative_against_scipy():
    value, deriv = _ref(X)
    np.testing.assert_allclose(sj.silu(X), value, rtol=1e-14, atol=1e-300)
    np.testing.assert_allclose(sj.silu.derivative(X), deriv, rtol=1e-14, atol=1e-300)


def test_derivative_against_central_differences():
    x = np.linspace(-8, 8, 161)
    h = 1e-6
    fd = (sj.silu(x + h) - sj.silu(x - h)) / (2 * h)
    np.testing.assert_allclose(sj.silu.derivative(x), fd, rtol=1e-8, atol=1e-9)


def test_against_torch():
    torch = pytest.importorskip("torch")
    for dtype, tdtype, rtol in (
        (np.float32, torch.float32, 4e-6),
        (np.float64, torch.float64, 1e-14),
    ):
        x = X[np.abs(X) < 100].astype(dtype)
        t = torch.tensor(x, requires_grad=True)
        y = torch.nn.functional.silu(t)
        g = np.random.default_rng(0).standard_normal(x.size).astype(dtype)
        (gt,) = torch.autograd.grad(y, t, torch.tensor(g))
        np.testing.assert_allclose(sj.silu(x), y.detach().numpy(), rtol=rtol, atol=1e-30)
        np.testing.assert_allclose(sj.silu.vjp(x, g), gt.numpy(), rtol=rtol, atol=1e-30)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float32_stays_float32_and_vjp_is_fused_product(dtype):
    x = X.astype(dtype)
    g = np.random.default_rng(1).standard_normal(x.size).astype(dtype)
    for f in (sj.silu, sj.silu.derivative):
        assert f(x).dtype == dtype
    np.testing.assert_allclose(
        sj.silu.vjp(x, g), g * sj.silu.derivative(x), rtol=2 * np.finfo(dtype).eps
    )
    if dtype == np.float32:  # against float64 at the float32 inputs
        value, deriv = _ref(x.astype(np.float64))
        np.testing.assert_allclose(sj.silu(x), value.astype(dtype), rtol=4e-7, atol=1e-37)
        # s + x s (1 - s) cancels near its root x = -1.278: error relative to the terms
        xs = x.astype(np.float64)
        e = sps.expit(xs)
        scale = e + np.abs(xs) * e * (1 - e)
        err = np.abs(sj.silu.derivative(x) - deriv)
        assert np.all(err <= 8 * np.finfo(dtype).eps * scale + 1e-37), err.max()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_limits_nan_and_inf(dtype):
    x = np.array([np.inf, -np.inf, np.nan, -0.0], dtype)
    np.testing.assert_array_equal(sj.silu(x), np.array([np.inf, 0.0, np.nan, 0.0], dtype))
    np.testing.assert_array_equal(sj.silu.derivative(x), np.array([1.0, 0.0, np.nan, 0.5], dtype))


def test_jacobian_is_diagonal_of_the_derivative():
    x = np.linspace(-3, 3, 12).reshape(3, 4)
    J = sj.silu.jacobian(x)
    assert isinstance(J, sj.Diagonal) and J.shape == (12, 12)
    np.testing.assert_array_equal(J.diagonal(), sj.silu.derivative(x).ravel())


@given(arrays(np.float64, st.integers(1, 40), elements=st.floats(-50, 50)))
def test_vjp_property(x):
    g = np.cos(np.arange(x.size))
    np.testing.assert_allclose(sj.silu.vjp(x, g), g * _ref(x)[1], rtol=1e-13, atol=1e-300)


def test_inputs_untouched_and_out_used():
    x = np.linspace(-2, 2, 9)
    keep = x.copy()
    out = np.empty_like(x)
    assert sj.silu(x, out=out) is out
    np.testing.assert_array_equal(x, keep)
    assert K.silu_vjp(x, np.ones(9)).shape == (9,)


@pytest.mark.parametrize("threshold", [1 << 62, 0], ids=["serial", "parallel"])
def test_layer_kernels_agree_with_the_op(threshold):
    old = K.set_parallel_threshold(threshold)
    try:
        rng = np.random.default_rng(2)
        Z = 3 * rng.standard_normal((300, 7))
        b = rng.standard_normal(7)
        A = np.empty_like(Z)
        Zk = Z.copy()
        layer.bias_activation(Zk, b, "silu", out=A)
        np.testing.assert_array_equal(Zk, Z + b)
        np.testing.assert_array_equal(A, sj.silu(Z + b))
        G = rng.standard_normal(Z.shape)
        Gk = G.copy()
        gb = layer.activation_vjp_bias_grad(Gk, Zk, "silu")
        np.testing.assert_array_equal(Gk, sj.silu.vjp(Zk, G))
        np.testing.assert_allclose(gb, Gk.sum(axis=0), rtol=1e-13)
    finally:
        K.set_parallel_threshold(old)


def test_layer_activation_name():
    assert get_activation("silu") is sj.silu
    assert sj.silu.layer_activation == ("silu", ())
    assert layer.ACTIVATIONS["silu"] is False  # the derivative needs z


@pytest.mark.parametrize("method", ["fused", "structures"])
def test_network_gradient_against_finite_differences(method):
    rng = np.random.default_rng(3)
    X = rng.standard_normal((6, 3))
    y = rng.standard_normal((6, 1))
    params = [
        (rng.standard_normal((4, 3)), rng.standard_normal(4)),
        (rng.standard_normal((1, 4)), rng.standard_normal(1)),
    ]
    acts = ["silu", None]
    res = sj.nn.value_and_grad(params, X, y, acts, loss="mse", method=method)

    def loss(ps):
        return float(sj.nn.value_and_grad(ps, X, y, acts, loss="mse").loss)

    h = 1e-6
    W = params[0][0]
    fd = np.zeros_like(W)
    for i in np.ndindex(W.shape):
        E = np.zeros_like(W)
        E[i] = h
        fd[i] = (
            loss([(W + E, params[0][1]), params[1]]) - loss([(W - E, params[0][1]), params[1]])
        ) / (2 * h)
    np.testing.assert_allclose(res.grads[0][0], fd, rtol=1e-6, atol=1e-8)
