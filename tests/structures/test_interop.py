"""Structures in real use: pickle and copy, numpy's protocols, scipy's names and solvers.

Every maker in ``makers.py`` is tried; the reference is the maker's independent dense matrix.
"""

from __future__ import annotations

import copy
import multiprocessing
import operator
import pickle
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla

import structjac as sj

from .makers import MAKERS, make

SHAPES = [(6, 6), (3, 6), (6, 3)]
KINDS = sorted(MAKERS)


def _cases(kind, dtype=np.float64, seed=0):
    out = []
    for shape in SHAPES:
        made = make(kind, shape, np.random.default_rng(seed), dtype)
        if made is not None:
            out.append(made)
    assert out, kind
    return out


def _copies(J):
    return {
        "pickle": pickle.loads(pickle.dumps(J)),
        "pickle protocol 2": pickle.loads(pickle.dumps(J, protocol=2)),
        "copy": copy.copy(J),
        "deepcopy": copy.deepcopy(J),
    }


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex128])
@pytest.mark.parametrize("kind", KINDS)
def test_pickle_and_copy_round_trip(kind, dtype):
    for J, M in _cases(kind, dtype):
        for how, K in _copies(J).items():
            assert type(K) is type(J), how
            assert K.shape == J.shape and K.dtype == J.dtype, how
            np.testing.assert_array_equal(K.to_dense(), M, err_msg=how)
            x = np.arange(1.0, M.shape[1] + 1)
            np.testing.assert_array_equal(K @ x, J @ x, err_msg=how)
            with pytest.raises(AttributeError, match="immutable"):
                K._shape = (1, 1)


@pytest.mark.parametrize("kind", KINDS)
def test_copies_stay_read_only(kind):
    for J, _ in _cases(kind):
        for how, K in _copies(J).items():
            for name, value in K.__getstate__().items():
                if isinstance(value, np.ndarray):
                    assert not value.flags.writeable, (how, name)


def test_scaled_identity_pickles_one_number():
    small = len(pickle.dumps(sj.ScaledIdentity(2, 3.0)))
    large = pickle.dumps(sj.ScaledIdentity(10**6, 3.0))
    assert len(large) < small + 64  # not 10^6 numbers
    K = pickle.loads(large)
    assert K.shape == (10**6, 10**6) and K.scalar == 3.0
    np.testing.assert_array_equal(K.diagonal()[:3], [3.0, 3.0, 3.0])


def test_structures_cross_a_process_pool():
    rng = np.random.default_rng(0)
    cases = [make(kind, (6, 6), rng) or make(kind, (3, 6), rng) for kind in KINDS]
    # spawn: a fresh interpreter unpickles every structure (and no fork of a threaded process)
    with ProcessPoolExecutor(
        max_workers=1, mp_context=multiprocessing.get_context("spawn")
    ) as pool:
        results = list(
            pool.map(
                operator.matmul,
                [J for J, _ in cases],
                [np.arange(M.shape[1], dtype=float) for _, M in cases],
            )
        )
    for (J, M), y in zip(cases, results):
        np.testing.assert_allclose(y, M @ np.arange(M.shape[1], dtype=float), rtol=1e-12)


# ------------------------------------------------------------------ numpy protocols
@pytest.mark.parametrize("kind", KINDS)
def test_asarray_raises_naming_to_dense(kind):
    for J, _ in _cases(kind):
        for convert in (np.asarray, np.array, np.asanyarray):
            with pytest.raises(TypeError, match=r"to_dense\(\)"):
                convert(J)


@pytest.mark.parametrize("kind", KINDS)
def test_numpy_products_and_transpose_give_the_right_answer(kind):
    rng = np.random.default_rng(1)
    for J, M in _cases(kind):
        x = rng.standard_normal(M.shape[1])
        g = rng.standard_normal(M.shape[0])
        G = rng.standard_normal((4, M.shape[0]))
        for result, expected in [
            (np.dot(J, x), M @ x),
            (np.matmul(J, x), M @ x),
            (np.dot(g, J), g @ M),
            (np.matmul(G, J), G @ M),
            (J.dot(x), M @ x),
        ]:
            assert isinstance(result, np.ndarray) and result.dtype == np.float64
            np.testing.assert_allclose(result, expected, rtol=1e-12, atol=1e-12)
        T = np.transpose(J)
        assert isinstance(T, sj.Jacobian)
        np.testing.assert_array_equal(T.to_dense(), M.T)
        assert np.shape(J) == M.shape and np.ndim(J) == 2


@pytest.mark.parametrize(
    "call",
    [
        np.sum,
        np.exp,
        np.abs,
        np.linalg.norm,
        np.trace,
        np.diag,
        np.sqrt,
        lambda J: np.ones(J.shape[1]) * J,
        lambda J: np.dot(J, np.ones(J.shape[1]), out=np.empty(J.shape[0])),
    ],
    ids=["sum", "exp", "abs", "norm", "trace", "diag", "sqrt", "ndarray*J", "dot(out=)"],
)
def test_other_numpy_functions_raise_naming_what_to_call(call):
    J, _ = make("Diagonal", (4, 4), np.random.default_rng(0))
    with pytest.raises(TypeError, match=r"to_dense\(\)"):
        call(J)


def test_numpy_ufunc_operators_agree_with_python_operators():
    J, M = make("Dense", (3, 3), np.random.default_rng(0))
    A = np.arange(9.0).reshape(3, 3)
    np.testing.assert_array_equal(np.add(A, J).to_dense(), A + M)
    np.testing.assert_array_equal(np.subtract(J, A).to_dense(), M - A)
    np.testing.assert_array_equal(np.negative(J).to_dense(), -M)
    np.testing.assert_array_equal(np.multiply(2.0, J).to_dense(), 2.0 * M)


# ------------------------------------------------------------------ scipy names
@pytest.mark.parametrize("kind", KINDS)
def test_toarray_todense_and_real_H(kind):
    for J, M in _cases(kind):
        for D in (J.toarray(), J.todense()):
            assert type(D) is np.ndarray
            np.testing.assert_array_equal(D, M)
        np.testing.assert_array_equal(J.H.to_dense(), M.T)
        assert J.conj() is J


@pytest.mark.parametrize("kind", KINDS)
def test_complex_conj_and_H(kind):
    c = 0.5 - 1.5j
    for J, M in _cases(kind):
        C = J * c
        dense = M * c
        assert C.dtype == np.complex128
        assert type(C.conj()) is type(C)
        np.testing.assert_allclose(C.conj().to_dense(), dense.conj(), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(C.H.to_dense(), dense.conj().T, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(np.conjugate(C).to_dense(), dense.conj(), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(C.to_dense(), dense, rtol=1e-12, atol=1e-12)  # not changed


def test_sum_of_structures_starts_from_zero():
    J, M = make("Diagonal", (4, 4), np.random.default_rng(0))
    K, N = make("Dense", (4, 4), np.random.default_rng(1))
    np.testing.assert_allclose(sum([J, K, J]).to_dense(), 2 * M + N)
    assert sum([J]) is J
    with pytest.raises(TypeError):
        1 + J


def test_scipy_sparse_operators_defer_to_the_structure():
    J, M = make("Diagonal", (4, 4), np.random.default_rng(0))
    S = sp.random_array((3, 4), density=0.5, random_state=0, format="csr")
    product = S @ J
    assert isinstance(product, sj.Jacobian)
    np.testing.assert_allclose(product.to_dense(), S.toarray() @ M)
    np.testing.assert_allclose((J @ S.T).to_dense(), M @ S.toarray().T)
    with pytest.raises(TypeError):
        S.multiply(J)


def test_linear_operators_compose_with_structures():
    rng = np.random.default_rng(2)
    J, M = make("Kronecker", (3, 6), rng)
    A = rng.standard_normal((6, 5))
    L = spla.aslinearoperator(A)
    right = J @ L
    assert isinstance(right, spla.LinearOperator) and right.shape == (3, 5)
    x = rng.standard_normal(5)
    np.testing.assert_allclose(right.matvec(x), M @ A @ x, rtol=1e-12)
    B = rng.standard_normal((4, 3))
    left = spla.aslinearoperator(B) @ J.aslinearoperator()
    y = rng.standard_normal(6)
    np.testing.assert_allclose(left.matvec(y), B @ M @ y, rtol=1e-12)
    with pytest.raises(TypeError, match=r"aslinearoperator\(\)"):
        spla.aslinearoperator(B) @ J


def test_least_squares_with_a_structured_jacobian():
    from scipy.optimize import least_squares

    rng = np.random.default_rng(3)
    d = rng.uniform(1.0, 2.0, 6)
    b = rng.standard_normal(6)

    def residual(x):  # r(x) = d * x + 0.1 x^3 - b, Jacobian diag(d + 0.3 x^2)
        return d * x + 0.1 * x**3 - b

    def jac(x):
        return sj.Diagonal(d + 0.3 * x**2).aslinearoperator()

    found = least_squares(residual, np.zeros(6), jac=jac, tr_solver="lsmr", x_scale=1.0)
    reference = least_squares(
        residual, np.zeros(6), jac=lambda x: np.diag(d + 0.3 * x**2), x_scale=1.0
    )
    assert found.success
    np.testing.assert_allclose(found.x, reference.x, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(residual(found.x), 0, atol=1e-8)
    with pytest.raises(TypeError, match=r"aslinearoperator\(\)"):
        least_squares(residual, np.zeros(6), jac=lambda x: sj.Diagonal(d + 0.3 * x**2))


@pytest.mark.parametrize("kind", KINDS)
def test_scipy_aslinearoperator_has_the_conjugated_adjoint(kind):
    rng = np.random.default_rng(4)
    c = 0.5 - 1.5j
    for J, M in _cases(kind):
        C, dense = J * c, M * c
        A = spla.aslinearoperator(C)
        x = rng.standard_normal(M.shape[1]) + 1j * rng.standard_normal(M.shape[1])
        y = rng.standard_normal(M.shape[0]) + 1j * rng.standard_normal(M.shape[0])
        Y = rng.standard_normal((M.shape[0], 2)) + 1j * rng.standard_normal((M.shape[0], 2))
        np.testing.assert_allclose(A.matvec(x), dense @ x, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(
            A.matvec(x[:, None]), (dense @ x)[:, None], rtol=1e-12, atol=1e-12
        )
        np.testing.assert_allclose(A.rmatvec(y), dense.conj().T @ y, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(
            A.rmatvec(y[:, None]), (dense.conj().T @ y)[:, None], rtol=1e-12, atol=1e-12
        )
        np.testing.assert_allclose(A.H.matvec(y), dense.conj().T @ y, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(A.rmatmat(Y), dense.conj().T @ Y, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(A.T.matvec(y), dense.T @ y, rtol=1e-12, atol=1e-12)
        # structjac's own rmatvec stays the row-vector product y J, unconjugated
        np.testing.assert_allclose(C.rmatvec(y), y @ dense, rtol=1e-12, atol=1e-12)


def test_scipy_solvers_take_the_structure_itself():
    rng = np.random.default_rng(5)
    K, M = make("Kronecker", (3, 6), rng)
    C, dense = K * (1 + 1j), M * (1 + 1j)
    y = rng.standard_normal(3) + 1j * rng.standard_normal(3)
    x = spla.lsqr(C, y, atol=1e-14, btol=1e-14)[0]  # lsqr needs the conjugated adjoint
    np.testing.assert_allclose(x, np.linalg.lstsq(dense, y, rcond=None)[0], rtol=1e-6, atol=1e-8)
