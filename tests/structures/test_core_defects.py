"""Structure defects of issue 13, each against numpy/scipy as the oracle.

Every test here failed before its fix: Sparse inverses of 1 x 1 and 0 x 0 matrices,
the dtype of Kronecker.to_sparse/diagonal when a factor stores no entries, the
precision of ``J / c`` for a numpy scalar ``c``, and the dense-size guard.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

import structjac as sj

from .makers import MAKERS, make

DTYPES = [np.float32, np.float64, np.complex128]


# ---------------------------------------------------------------- Sparse.inv
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_sparse_1x1_inverse(dtype):
    S = sj.Sparse(
        sp.csr_array(np.array([[4.0 - 2.0j if dtype is np.complex128 else 4.0]], dtype=dtype))
    )
    inverse = S.inv()
    assert isinstance(inverse, sj.Sparse)
    assert inverse.shape == (1, 1) and inverse.dtype == np.dtype(dtype)
    np.testing.assert_allclose(inverse.to_dense(), np.linalg.inv(S.to_dense()), rtol=1e-6)


@pytest.mark.parametrize("stored_zero", [False, True], ids=["no entry", "explicit zero"])
def test_sparse_1x1_singular_names_the_entry(stored_zero):
    csr = sp.csr_array(([0.0], ([0], [0])), shape=(1, 1)) if stored_zero else sp.csr_array((1, 1))
    with pytest.raises(np.linalg.LinAlgError, match=r"singular.*\(0, 0\)"):
        sj.Sparse(csr).inv()


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_sparse_0x0_inverse_is_0x0_like_diagonal_and_dense(dtype):
    inverse = sj.Sparse(sp.csr_array((0, 0), dtype=dtype)).inv()
    assert inverse.shape == (0, 0) and inverse.dtype == np.dtype(dtype)
    assert sj.Diagonal(np.zeros(0, dtype)).inv().shape == (0, 0)
    assert sj.Dense(np.zeros((0, 0), dtype)).inv().shape == (0, 0)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_sparse_inverse_keeps_dtype(dtype):
    A = np.array([[2.0, 1.0, 0.0], [0.0, 3.0, 0.0], [1.0, 0.0, 4.0]], dtype=dtype)
    inverse = sj.Sparse(sp.csr_array(A)).inv()
    assert inverse.dtype == np.dtype(dtype)
    np.testing.assert_allclose(inverse.to_dense(), np.linalg.inv(A), rtol=1e-5)


# ------------------------------------------- Kronecker with an empty factor
def _empty_factors(dtype):
    return {
        "Zero": sj.Zero((2, 3), dtype=dtype),
        "Sparse[no entries]": sj.Sparse(sp.csr_array((2, 3), dtype=dtype)),
        "BlockRow[empty]": sj.BlockRow(np.zeros(0, dtype=int), np.zeros((0, 3), dtype), 2),
    }


@pytest.mark.parametrize("dtype", [np.float32, np.complex128], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", ["Zero", "Sparse[no entries]", "BlockRow[empty]"])
@pytest.mark.parametrize("side", ["left", "right"])
def test_kronecker_with_empty_factor_keeps_dtype(dtype, name, side):
    empty = _empty_factors(dtype)[name]
    other = sj.Dense(np.arange(1.0, 7.0).reshape(3, 2).astype(dtype))
    K = sj.Kronecker(empty, other) if side == "left" else sj.Kronecker(other, empty)
    dense = (
        np.kron(empty.to_dense(), other.to_dense())
        if side == "left"
        else np.kron(other.to_dense(), empty.to_dense())
    )
    assert K.dtype == np.dtype(dtype)
    assert K.to_sparse().dtype == np.dtype(dtype)
    assert K.diagonal().dtype == np.dtype(dtype)
    np.testing.assert_array_equal(K.to_sparse().toarray(), dense)
    np.testing.assert_array_equal(K.diagonal(), np.diagonal(dense))


@pytest.mark.parametrize("dtype", [np.float32, np.complex128], ids=lambda d: np.dtype(d).name)
def test_kronecker_square_empty_factor_diagonal_dtype(dtype):
    K = sj.Kronecker(sj.Zero((2, 2), dtype=dtype), sj.Diagonal(np.ones(3, dtype)))
    assert K.diagonal().dtype == np.dtype(dtype)
    np.testing.assert_array_equal(K.diagonal(), np.zeros(6))


# ------------------------------------------------------------ J / numpy scalar
@pytest.mark.parametrize("kind", sorted(MAKERS), ids=str)
def test_float64_structure_over_float32_scalar_divides_in_float64(kind):
    built = make(kind, (4, 4), np.random.default_rng(0), np.float64)
    assert built is not None, f"{kind} has no 4 x 4 form"
    J, dense = built
    c = np.float32(3.3)
    out = J / c
    assert out.dtype == np.float64
    expected = dense / np.float64(c)
    # A reciprocal taken in float32 is off by ~2.6e-8 relative.
    np.testing.assert_allclose(out.to_dense(), expected, rtol=1e-14, atol=0)


def test_float32_structure_over_python_scalar_stays_float32():
    J = sj.Diagonal(np.array([1.0, 2.0], np.float32))
    out = J / 4.0
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out.diagonal(), np.array([0.25, 0.5], np.float32))


# ---------------------------------------------------------- dense-size guard
def test_to_dense_above_the_limit_names_the_bytes():
    I = sj.Identity(10**6)
    with pytest.raises(sj.DenseLimitError, match=r"Identity\.to_dense\(\).*8000000000000 bytes"):
        I.to_dense()
    assert issubclass(sj.DenseLimitError, MemoryError)


@pytest.mark.parametrize("kind", sorted(MAKERS), ids=str)
def test_every_structure_to_dense_is_guarded_except_stored_dense(kind):
    J, dense = make(kind, (4, 4), np.random.default_rng(1), np.float64)
    with sj.dense_limit(dense.nbytes - 1):
        if kind == "Dense":
            # Dense stores the user's own matrix: to_dense copies it.
            np.testing.assert_array_equal(J.to_dense(), dense)
        else:
            with pytest.raises(sj.DenseLimitError, match=f"{dense.nbytes} bytes"):
                J.to_dense()
    with sj.dense_limit(dense.nbytes):
        np.testing.assert_allclose(J.to_dense(), dense, rtol=1e-12, atol=1e-12)


def test_rule_forming_a_dense_result_is_guarded():
    n = 60_000
    C = sj.BlockColumn(0, np.ones(n), 1)
    R = sj.BlockRow(0, np.ones(n), 1)
    with pytest.raises(
        sj.DenseLimitError, match=r"matmul\(BlockColumn, BlockRow\).*28800000000 bytes"
    ):
        C @ R
    small = sj.BlockColumn(0, np.arange(3.0), 1) @ sj.BlockRow(0, np.arange(2.0), 1)
    np.testing.assert_array_equal(small.to_dense(), np.outer(np.arange(3.0), np.arange(2.0)))


def test_dense_limit_is_scoped_and_nests():
    assert sj.dense_limit.current() == sj.DEFAULT_DENSE_LIMIT == 2 * 1024**3
    with sj.dense_limit(10):
        assert sj.dense_limit.current() == 10
        with sj.dense_limit(None):
            assert sj.dense_limit.current() is None
            assert sj.Identity(3).to_dense().shape == (3, 3)
        assert sj.dense_limit.current() == 10
    assert sj.dense_limit.current() == sj.DEFAULT_DENSE_LIMIT


def test_dense_limit_is_per_thread():
    import threading

    seen = []
    with sj.dense_limit(10):
        t = threading.Thread(target=lambda: seen.append(sj.dense_limit.current()))
        t.start()
        t.join()
    assert seen == [sj.DEFAULT_DENSE_LIMIT]


@pytest.mark.parametrize("bad, error", [(-1, ValueError), (1.5, TypeError), ("2GB", TypeError)])
def test_dense_limit_rejects_bad_limits(bad, error):
    with pytest.raises(error, match="dense_limit"):
        sj.dense_limit(bad)
