"""End to end: the Jacobian of a network's residual with respect to all its parameters,
``hstack([J_W1, J_b1, J_W2, J_b2])``, drives ``scipy.optimize.least_squares`` as a
LinearOperator (``tr_solver="lsmr"``) and as a sparse matrix, with no hand-written operator.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.optimize import least_squares

import structjac as sj
from structjac.layers import dense_jacobians

N, D, H, M = 40, 3, 4, 2
SHAPES = [(H, D), (H,), (M, H), (M,)]


def _unpack(theta):
    out, start = [], 0
    for shape in SHAPES:
        size = int(np.prod(shape))
        out.append(theta[start : start + size].reshape(shape))
        start += size
    return out


def _problem(seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((N, D))
    teacher = np.concatenate([rng.standard_normal(int(np.prod(s))) for s in SHAPES])
    W1, b1, W2, b2 = _unpack(teacher)
    Y = np.tanh(X @ W1.T + b1) @ W2.T + b2
    start = teacher + 0.3 * rng.standard_normal(teacher.size)
    return X, Y, start


def residual(theta, X, Y):
    W1, b1, W2, b2 = _unpack(theta)
    return (np.tanh(X @ W1.T + b1) @ W2.T + b2 - Y).ravel()


def jacobian(theta, X, Y):
    """d residual / d (W1, b1, W2, b2) from the layer structures, one BlockMatrix row."""
    W1, b1, W2, b2 = _unpack(theta)
    hidden = dense_jacobians(W1, b1, X, "tanh")
    out = dense_jacobians(W2, b2, hidden.a, None)
    return sj.hstack([out.dz_dx @ hidden.da_dW, out.dz_dx @ hidden.da_db, out.dz_dW, out.dz_db])


def _central_differences(theta, X, Y, h=1e-6):
    cols = []
    for i in range(theta.size):
        e = np.zeros_like(theta)
        e[i] = h
        cols.append((residual(theta + e, X, Y) - residual(theta - e, X, Y)) / (2 * h))
    return np.stack(cols, axis=1)


def test_the_parameter_jacobian_is_structured_and_equals_finite_differences():
    X, Y, theta = _problem()
    J = jacobian(theta, X, Y)
    assert isinstance(J, sj.BlockMatrix) and J.shape == (N * M, theta.size)
    assert [type(b).__name__ for b in J.grid[0]] == [
        "Dense",
        "Dense",
        "StackedKronecker",
        "Kronecker",
    ]
    assert J.nbytes < J.dense_nbytes
    np.testing.assert_allclose(
        J.to_dense(), _central_differences(theta, X, Y), rtol=1e-6, atol=1e-8
    )
    S = J.to_sparse()
    np.testing.assert_array_equal(S.toarray(), J.to_dense())
    assert S.nnz == sum(b.to_sparse().nnz for b in J.grid[0])


@pytest.mark.parametrize("form", ["linear_operator", "sparse"])
def test_least_squares_fits_the_network(form):
    X, Y, theta0 = _problem()

    def jac(theta, X, Y):
        J = jacobian(theta, X, Y)
        return J.aslinearoperator() if form == "linear_operator" else J.to_sparse()

    def dense_jac(theta, X, Y):
        return jacobian(theta, X, Y).to_dense()

    start_cost = 0.5 * np.sum(residual(theta0, X, Y) ** 2)
    fit = least_squares(
        residual,
        theta0,
        jac=jac,
        args=(X, Y),
        method="trf",
        tr_solver="lsmr",
        xtol=1e-15,
        ftol=1e-15,
        gtol=1e-12,
        max_nfev=500,
    )
    if form == "sparse":
        assert sp.issparse(jac(theta0, X, Y))
    assert fit.success, fit.message
    assert fit.cost < 1e-12 * start_cost  # the teacher's parameters fit exactly
    reference = least_squares(
        residual,
        theta0,
        jac=dense_jac,
        args=(X, Y),
        method="trf",
        tr_solver="lsmr",
        xtol=1e-15,
        ftol=1e-15,
        gtol=1e-12,
        max_nfev=500,
    )
    assert reference.cost < 1e-12 * start_cost
    np.testing.assert_allclose(fit.fun, reference.fun, atol=1e-6)


def test_the_operator_is_what_least_squares_applies():
    X, Y, theta = _problem(1)
    J = jacobian(theta, X, Y)
    A = J.aslinearoperator()
    dense = J.to_dense()
    rng = np.random.default_rng(2)
    v, u = rng.standard_normal(theta.size), rng.standard_normal(N * M)
    np.testing.assert_allclose(A.matvec(v), dense @ v, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(A.rmatvec(u), dense.T @ u, rtol=1e-12, atol=1e-12)
    # the gradient of 0.5 ||r||^2 is J^T r
    r = residual(theta, X, Y)
    np.testing.assert_allclose(r @ J, dense.T @ r, rtol=1e-12, atol=1e-12)
