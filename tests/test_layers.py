"""Dense-layer and neuron Jacobians against finite differences and numpy formulas."""

import numpy as np
import pytest

import structjac as sj
from structjac.layers import DenseLayer, dense_jacobians, neuron_jacobians
from structjac.structures import RowScaled, StackedKronecker

ACTS = ["sigmoid", "tanh", "relu", "leaky_relu", "softplus", None]


def fd_jacobian(f, x, h=1e-6):
    """Dense Jacobian of f at x, column by column, central differences (x flattened)."""
    x = np.asarray(x, dtype=np.float64)
    f0 = np.asarray(f(x)).ravel()
    J = np.empty((f0.size, x.size))
    for j in range(x.size):
        e = np.zeros(x.size)
        e[j] = h
        J[:, j] = (
            np.asarray(f(x + e.reshape(x.shape))).ravel()
            - np.asarray(f(x - e.reshape(x.shape))).ravel()
        ) / (2 * h)
    return J


def _g(act):
    op = sj.layers.get_activation(act)
    return (lambda z: z) if op is None else op


@pytest.fixture
def rng():
    return np.random.default_rng(1)


def _shift_from_zero(z):
    return z + 0.05 * np.sign(z) + 0.01  # keep relu kinks away from finite differences


@pytest.mark.parametrize("act", ACTS)
def test_one_sample_against_finite_differences(rng, act):
    m, d = 4, 3
    W, b, x = rng.standard_normal((m, d)), rng.standard_normal(m), rng.standard_normal(d)
    b = b + 0.3
    g = _g(act)
    J = dense_jacobians(W, b, x, act)
    fa_W = lambda w: g(w.reshape(m, d) @ x + b)
    fa_b = lambda bb: g(W @ x + bb)
    fa_x = lambda xx: g(W @ xx + b)
    np.testing.assert_allclose(J.da_dW.to_dense(), fd_jacobian(fa_W, W.ravel()), atol=1e-7)
    np.testing.assert_allclose(J.da_db.to_dense(), fd_jacobian(fa_b, b), atol=1e-7)
    np.testing.assert_allclose(J.da_dx.to_dense(), fd_jacobian(fa_x, x), atol=1e-7)
    np.testing.assert_allclose(J.dz_dW.to_dense(), np.kron(np.eye(m), x[None, :]))
    np.testing.assert_array_equal(J.dz_db.to_dense(), np.eye(m))
    np.testing.assert_array_equal(J.dz_dx.to_dense(), W)
    assert isinstance(J.dz_dW, sj.Kronecker) and isinstance(J.da_dW, sj.Kronecker)
    assert isinstance(J.dz_dx, sj.Dense)
    for i in range(m):
        zi = J.dz_dw(i)
        assert isinstance(zi, sj.BlockRow) and isinstance(J.da_dw(i), sj.BlockRow)
        ref = np.zeros((m, d))
        ref[i] = x
        np.testing.assert_array_equal(zi.to_dense(), ref)
        # row i of da/dw_i is g'_i x^T (ERRATA 2: da_i/dz_i, not da_1/dz_1)
        np.testing.assert_allclose(J.da_dw(i).to_dense(), J.da_dz.to_dense() @ ref)


@pytest.mark.parametrize("act", ACTS)
def test_batch_against_finite_differences(rng, act):
    N, m, d = 5, 3, 4
    W, b, X = rng.standard_normal((m, d)), rng.standard_normal(m) + 0.2, rng.standard_normal((N, d))
    g = _g(act)
    J = dense_jacobians(W, b, X, act)
    fa_W = lambda w: g(X @ w.reshape(m, d).T + b)
    fa_b = lambda bb: g(X @ W.T + bb)
    fa_X = lambda xx: g(xx.reshape(N, d) @ W.T + b)
    np.testing.assert_allclose(J.da_dW.to_dense(), fd_jacobian(fa_W, W.ravel()), atol=1e-7)
    np.testing.assert_allclose(J.da_db.to_dense(), fd_jacobian(fa_b, b), atol=1e-7)
    np.testing.assert_allclose(J.da_dx.to_dense(), fd_jacobian(fa_X, X.ravel()), atol=1e-7)
    # independent numpy formulas for the Z Jacobians
    ref_W = np.einsum("ab,kj->kabj", np.eye(m), X).reshape(N * m, m * d)
    np.testing.assert_array_equal(J.dz_dW.to_dense(), ref_W)
    np.testing.assert_array_equal(J.dz_db.to_dense(), np.kron(np.ones((N, 1)), np.eye(m)))
    np.testing.assert_array_equal(J.dz_dx.to_dense(), np.kron(np.eye(N), W))
    assert isinstance(J.dz_dW, StackedKronecker)
    for name, Jac in J.items():
        assert not isinstance(Jac, (sj.Dense, sj.Sparse)), name
    if act is not None:
        assert isinstance(J.da_dW, RowScaled) and isinstance(J.da_dx, RowScaled)
    # stored numbers: O(N d + m d + N m), never N m x m d
    for name, Jac in J.items():
        assert Jac.nbytes <= 8 * (N * d + m * d + 2 * N * m), name


def test_batch_weight_jacobian_is_a_permuted_kronecker(rng):
    N, m, d = 4, 3, 2
    X = rng.standard_normal((N, d))
    J = StackedKronecker(X, m).to_dense()
    # K_{m,N} (I_m (x) X): rows (i, k) -> (k, i)
    perm = np.arange(N * m).reshape(m, N).T.ravel()
    np.testing.assert_array_equal(J, np.kron(np.eye(m), X)[perm])
    # (X (x) I_m) K_{m,d}: columns (j, i) -> (i, j)
    cperm = np.arange(m * d).reshape(d, m).T.ravel()
    np.testing.assert_array_equal(J, np.kron(X, np.eye(m))[:, cperm])


def test_stacked_kronecker_applies_and_transposes(rng):
    N, m, d = 6, 3, 4
    S = StackedKronecker(rng.standard_normal((N, d)), m)
    D = S.to_dense()
    V, Y = rng.standard_normal((m * d, 2)), rng.standard_normal((3, N * m))
    np.testing.assert_allclose(S @ V, D @ V)
    np.testing.assert_allclose(Y @ S, Y @ D)
    np.testing.assert_allclose(S.T.to_dense(), D.T)
    np.testing.assert_allclose(S.T @ Y.T, D.T @ Y.T)
    np.testing.assert_array_equal(S.to_sparse().toarray(), D)
    assert S.to_sparse().nnz == N * m * d
    assert S.astype(np.float32).dtype == np.float32
    np.testing.assert_allclose((2.0 * S).to_dense(), 2 * D)


def test_float32_stays_float32(rng):
    W = rng.standard_normal((3, 2)).astype(np.float32)
    X = rng.standard_normal((5, 2)).astype(np.float32)
    J = dense_jacobians(W, np.zeros(3, np.float32), X, "tanh")
    for name, Jac in J.items():
        assert Jac.dtype == np.float32, name
    assert J.a.dtype == np.float32


@pytest.mark.parametrize("act", ["sigmoid", "tanh", None])
def test_neuron_over_a_batch(rng, act):
    N, d = 6, 3
    w, b, X = rng.standard_normal(d), 0.3, rng.standard_normal((N, d))
    g = _g(act)
    J = neuron_jacobians(w, b, X, act)
    np.testing.assert_array_equal(J.dz_dw.to_dense(), X)
    np.testing.assert_array_equal(J.dz_db.to_dense(), np.ones((N, 1)))
    np.testing.assert_allclose(
        J.da_dw.to_dense(), fd_jacobian(lambda ww: g(X @ ww + b), w), atol=1e-7
    )
    np.testing.assert_allclose(
        J.da_db.to_dense(), fd_jacobian(lambda bb: g(X @ w + bb), np.array([b])), atol=1e-7
    )
    for k in range(N):
        assert isinstance(J.dz_dx(k), sj.BlockRow) and isinstance(J.da_dx(k), sj.BlockRow)
        fX = lambda xk: g(np.vstack([X[:k], xk[None, :], X[k + 1 :]]) @ w + b)
        np.testing.assert_allclose(J.da_dx(k).to_dense(), fd_jacobian(fX, X[k]), atol=1e-7)
    assert isinstance(J.da_dz, sj.Diagonal if act else sj.Identity)
    if act == "sigmoid":
        np.testing.assert_allclose(J.da_dz.diagonal(), J.a * (1 - J.a))


def test_dense_layer_object(rng):
    layer = DenseLayer(rng.standard_normal((3, 2)), np.zeros(3), activation="relu")
    X = rng.standard_normal((4, 2))
    np.testing.assert_allclose(layer.forward(X), np.maximum(X @ layer.W.T, 0))
    assert layer.jacobians(X).dz_dW.shape == (12, 6)
    assert "2 -> 3" in repr(layer)


def test_bad_inputs():
    with pytest.raises(ValueError):
        dense_jacobians(np.ones((2, 3)), np.zeros(2), np.ones(4))
    with pytest.raises(ValueError):
        dense_jacobians(np.ones((2, 3)), np.zeros(3), np.ones(3))
    with pytest.raises(ValueError):
        sj.layers.get_activation("swish")
