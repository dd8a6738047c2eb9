"""structjac.grad / value_and_grad on scalar losses of a batch, against jax.grad (float64, 1e-12)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.special

import structjac as sj

from .support import central_difference_jacobian

N, D_IN, HIDDEN, D_OUT = 16, 5, 7, 3


def _params(rng):
    return (
        rng.normal(size=(HIDDEN, D_IN)) / 2,
        rng.normal(size=HIDDEN) / 4,
        rng.normal(size=(D_OUT, HIDDEN)) / 2,
        rng.normal(size=D_OUT) / 4,
    )


def _data(rng):
    X = rng.normal(size=(N, D_IN))
    labels = rng.integers(0, D_OUT, size=N)
    return X, np.eye(D_OUT)[labels], rng.uniform(size=(N, D_OUT))


def mlp_softmax_ce(m, W1, b1, W2, b2, X, Y):
    H = m.tanh(X @ W1.T + b1)
    Z = H @ W2.T + b2
    Z = Z - m.max(Z, axis=1, keepdims=True)
    log_p = Z - m.log(m.sum(m.exp(Z), axis=1, keepdims=True))
    return -m.mean(m.sum(Y * log_p, axis=1))


def mlp_bce_logits(m, W1, b1, W2, b2, X, T):
    Z = m.maximum(X @ W1.T + b1, 0.0) @ W2.T + b2
    per = m.maximum(Z, 0.0) - Z * T + m.log1p(m.exp(-m.abs(Z)))
    return m.mean(m.sum(per, axis=1))


def mlp_sigmoid_mse(m, W1, b1, W2, b2, X, T):
    A = m.expit(X @ W1.T + b1)
    return m.mean((A @ W2.T + b2 - T) ** 2)


def issue_function_mean(m, x):
    return m.mean(m.tanh(x) * m.exp(-x) + m.log1p(x**2))


class _NP:
    def __getattr__(self, name):
        return scipy.special.expit if name == "expit" else getattr(np, name)


NPM = _NP()
LOSSES = {
    "mlp_softmax_cross_entropy": (mlp_softmax_ce, 1),
    "mlp_relu_bce_with_logits": (mlp_bce_logits, 2),
    "mlp_sigmoid_mse": (mlp_sigmoid_mse, 2),
}


def _jax():
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)

    class _JM:
        def __getattr__(self, name):
            return jax.nn.sigmoid if name == "expit" else getattr(jax.numpy, name)

    return jax, _JM()


def _relative(a, b):
    return np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300)


@pytest.mark.parametrize("name", LOSSES, ids=list(LOSSES))
def test_network_gradient_against_jax(name):
    jax, JM = _jax()
    loss, target = LOSSES[name]
    rng = np.random.default_rng(3)
    params = _params(rng)
    X, Y, T = _data(rng)
    data = (X, Y if target == 1 else T)
    value, grads = sj.value_and_grad(lambda *p: loss(NPM, *p, *data), argnums=(0, 1, 2, 3))(*params)
    jv, jg = jax.value_and_grad(lambda *p: loss(JM, *p, *data), argnums=(0, 1, 2, 3))(*params)
    assert abs(value - float(jv)) <= 1e-12 * abs(float(jv))
    for g, e in zip(grads, jg):
        assert g.shape == e.shape and g.dtype == np.float64
        assert _relative(g, np.asarray(e)) <= 1e-12


@pytest.mark.parametrize("name", LOSSES, ids=list(LOSSES))
def test_gradient_with_respect_to_the_batch_against_jax(name):
    jax, JM = _jax()
    loss, target = LOSSES[name]
    rng = np.random.default_rng(4)
    params = _params(rng)
    X, Y, T = _data(rng)
    data = Y if target == 1 else T
    g = sj.grad(lambda X: loss(NPM, *params, X, data))(X)
    e = np.asarray(jax.grad(lambda X: loss(JM, *params, X, data))(X))
    assert _relative(g, e) <= 1e-12


def test_issue_function_gradient_against_jax():
    jax, JM = _jax()
    x = np.linspace(-2.0, 3.0, 1001)
    g = sj.grad(lambda x: issue_function_mean(NPM, x))(x)
    e = np.asarray(jax.grad(lambda x: issue_function_mean(JM, x))(x))
    assert _relative(g, e) <= 1e-12


@pytest.mark.parametrize("name", LOSSES, ids=list(LOSSES))
def test_network_gradient_against_central_differences(name):
    loss, target = LOSSES[name]
    rng = np.random.default_rng(5)
    params = _params(rng)
    X, Y, T = _data(rng)
    data = (X, Y if target == 1 else T)
    grads = sj.grad(lambda *p: loss(NPM, *p, *data), argnums=(0, 1, 2, 3))(*params)
    for k, g in enumerate(grads):
        fd = central_difference_jacobian(lambda *p: loss(NPM, *p, *data), params, k)
        np.testing.assert_allclose(g.reshape(-1), fd.reshape(-1), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("name", LOSSES, ids=list(LOSSES))
def test_float32_gradient_stays_float32(name):
    loss, target = LOSSES[name]
    rng = np.random.default_rng(6)
    params = tuple(p.astype(np.float32) for p in _params(rng))
    X, Y, T = (a.astype(np.float32) for a in _data(rng))
    data = (X, Y if target == 1 else T)
    value, grads = sj.value_and_grad(lambda *p: loss(NPM, *p, *data), argnums=(0, 1, 2, 3))(*params)
    assert np.asarray(value).dtype == np.float32
    grads64 = sj.grad(
        lambda *p: loss(NPM, *p, *(d.astype(np.float64) for d in data)), argnums=(0, 1, 2, 3)
    )(*(p.astype(np.float64) for p in params))
    for g, g64 in zip(grads, grads64):
        assert g.dtype == np.float32
        np.testing.assert_allclose(g, g64, rtol=2e-4, atol=2e-6)


def test_grad_of_ops_network_matches_the_mlp_routine():
    """The transform over sj ops equals structjac.nn.value_and_grad on the same network."""
    rng = np.random.default_rng(8)
    W1, b1 = rng.normal(size=(4, 3)), rng.normal(size=4)
    W2, b2 = rng.normal(size=(1, 4)), rng.normal(size=1)
    X = rng.normal(size=(10, 3))
    y = rng.uniform(size=(10, 1))

    def loss(W1, b1, W2, b2):
        return sj.mse(y, sj.sigmoid(sj.tanh(X @ W1.T + b1) @ W2.T + b2))

    value, grads = sj.value_and_grad(loss, argnums=(0, 1, 2, 3))(W1, b1, W2, b2)
    ref_value, ref = sj.nn.value_and_grad([(W1, b1), (W2, b2)], X, y, [sj.tanh, sj.sigmoid], sj.mse)
    np.testing.assert_allclose(value, ref_value, rtol=1e-13)
    flat_ref = [a for pair in ref for a in pair]
    for g, r in zip(grads, flat_ref):
        np.testing.assert_allclose(g, r, rtol=1e-12, atol=1e-15)


def test_value_and_grad_returns_the_value():
    x = np.array([0.5, -1.0, 2.0])
    value, g = sj.value_and_grad(lambda x: np.sum(np.sin(x)))(x)
    assert value == pytest.approx(np.sum(np.sin(x)))
    np.testing.assert_allclose(g, np.cos(x), rtol=1e-15)


def test_unused_argument_has_zero_gradient():
    g = sj.grad(lambda x, y: np.sum(x**2), argnums=1)(np.ones(3), np.ones(2))
    np.testing.assert_array_equal(g, np.zeros(2))


def test_constant_function_jacobian_is_zero():
    J = sj.jacobian(lambda x: np.ones(4))(np.ones(3))
    assert type(J) is sj.Zero and J.shape == (4, 3)
    J = sj.jacobian(lambda x, y: np.tanh(y), argnums=0)(np.ones(3), np.ones(2))
    assert type(J) is sj.Zero and J.shape == (2, 3)


def test_nan_in_nan_out():
    x = np.array([np.nan, 1.0, -1.0])
    for f in (np.abs, lambda x: np.maximum(x, 0.0), lambda x: np.minimum(x, 0.0), np.tanh):
        d = sj.jacobian(f)(x).diagonal()
        assert np.isnan(d[0]) and np.all(np.isfinite(d[1:]))


def test_subgradient_conventions():
    x = np.array([0.0, 0.0])
    assert sj.jacobian(np.abs)(x).diagonal().tolist() == [0.0, 0.0]
    # ReLU written as np.maximum(x, 0) has derivative 1 at 0, as structjac.relu: the first
    # argument wins ties (np.minimum too).
    assert sj.jacobian(lambda x: np.maximum(x, 0.0))(x).diagonal().tolist() == [1.0, 1.0]
    assert sj.jacobian(lambda x: np.maximum(0.0, x))(x).diagonal().tolist() == [0.0, 0.0]
    assert sj.jacobian(lambda x: np.minimum(x, 0.0))(x).diagonal().tolist() == [1.0, 1.0]
    np.testing.assert_array_equal(
        sj.jacobian(sj.relu)(x).diagonal(), sj.jacobian(lambda x: np.maximum(x, 0.0))(x).diagonal()
    )
