"""Bad input gets a clear error naming what was wrong; NaN and inf propagate; inputs are never written."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

import structjac as sj


def test_shapes_that_do_not_fit_name_both():
    A = sj.Diagonal(np.ones(3))
    B = sj.Dense(np.ones((4, 2)))
    with pytest.raises(ValueError, match=r"\(3, 3\).*\(4, 2\)"):
        A @ B
    with pytest.raises(ValueError, match=r"\(3, 3\).*\(4, 2\)"):
        A + B
    with pytest.raises(ValueError, match=r"\(3, 3\).*\(4, 2\)"):
        A - B
    with pytest.raises(ValueError, match=r"\(3, 3\).*\(5,\)"):
        A @ np.ones(5)
    with pytest.raises(ValueError, match=r"\(4, 2\).*\(2, 3\)"):
        np.ones((2, 3)) @ B
    with pytest.raises(ValueError, match=r"\(3, 3\).*\(3, 1, 1\)"):
        A @ np.ones((3, 1, 1))


def test_inverse_of_singular_names_the_zero():
    with pytest.raises(np.linalg.LinAlgError, match="entry 2 is zero"):
        sj.Diagonal(np.array([1.0, 2.0, 0.0, 4.0])).inv()
    with pytest.raises(np.linalg.LinAlgError, match="c = 0"):
        sj.ScaledIdentity(3, 0.0).inv()
    with pytest.raises(np.linalg.LinAlgError, match="singular"):
        sj.Zero(3).inv()
    with pytest.raises(np.linalg.LinAlgError, match="row 0 is zero"):
        sj.BlockRow(1, np.ones(3), 3).inv()
    with pytest.raises(np.linalg.LinAlgError, match="entry 1 is zero"):
        sj.Kronecker(sj.Identity(2), sj.Diagonal(np.array([1.0, 0.0]))).inv()
    with pytest.raises(np.linalg.LinAlgError):
        sj.Dense(np.ones((2, 2))).inv()
    with pytest.raises(np.linalg.LinAlgError, match="not square"):
        sj.Dense(np.ones((2, 3))).inv()
    with pytest.raises(np.linalg.LinAlgError, match="singular"):
        sj.Sparse(sp.csr_array(np.array([[1.0, 0.0], [0.0, 0.0]]))).inv()


def test_blockrow_index_checks():
    with pytest.raises(IndexError, match="index 5 is out of range for n_rows = 3"):
        sj.BlockRow(5, np.ones(2), 3)
    with pytest.raises(IndexError, match="index -4"):
        sj.BlockRow(-4, np.ones(2), 3)
    assert sj.BlockRow(-1, np.ones(2), 3).index == 2
    with pytest.raises(ValueError, match="index 1 appears more than once"):
        sj.BlockRow([1, 1], np.ones((2, 2)), 3)
    with pytest.raises(ValueError, match="2 indices but the block has shape \\(3, 2\\)"):
        sj.BlockRow([0, 1], np.ones((3, 2)), 3)
    with pytest.raises(ValueError, match="1-D array"):
        sj.BlockRow(0, np.ones((2, 2)), 3)
    with pytest.raises(TypeError, match="integer"):
        sj.BlockRow(1.5, np.ones(2), 3)
    with pytest.raises(TypeError, match="integer"):
        sj.BlockRow(np.array([0.0, 1.0]), np.ones((2, 2)), 3)
    with pytest.raises(IndexError, match="n_cols = 2"):
        sj.BlockColumn(2, np.ones(4), 2)


def test_constructor_checks():
    with pytest.raises(ValueError, match=r"1-D array .* shape \(2, 2\)"):
        sj.Diagonal(np.ones((2, 2)))
    with pytest.raises(ValueError, match=r"1-D array .* shape \(\)"):
        sj.Diagonal(3.0)
    with pytest.raises(ValueError, match=r"2-D array .* shape \(3,\)"):
        sj.Dense(np.ones(3))
    with pytest.raises(TypeError, match="Sparse"):
        sj.Dense(sp.eye(2))
    with pytest.raises(TypeError, match="ndarray"):
        sj.Sparse(np.eye(2))
    with pytest.raises(TypeError, match="dtype <U1"):
        sj.Diagonal(np.array(["a", "b"]))
    with pytest.raises(ValueError, match="non-negative"):
        sj.Identity(-1)
    with pytest.raises(TypeError, match="scalar"):
        sj.ScaledIdentity(2, np.ones(2))
    with pytest.raises(ValueError, match="shape"):
        sj.Zero((1, 2, 3))


def test_scalars_and_matmul_do_not_mix():
    D = sj.Diagonal(np.ones(2))
    with pytest.raises(TypeError, match="J \\* c"):
        D @ 2.0
    with pytest.raises(TypeError):
        D * np.ones(2)
    with pytest.raises(TypeError):
        D + 1.0
    with pytest.raises(ZeroDivisionError):
        D / 0


def test_integers_and_bools_become_float64():
    assert sj.Diagonal(np.array([1, 2])).dtype == np.float64
    assert sj.Dense(np.eye(2, dtype=bool)).dtype == np.float64
    assert sj.BlockRow(0, np.array([1, 2], dtype=np.int32), 2).dtype == np.float64
    assert sj.Sparse(sp.eye(2, dtype=np.int64)).dtype == np.float64
    assert (sj.Diagonal(np.ones(2, dtype=np.float32)) @ np.array([1, 2])).dtype == np.float64


def test_nan_and_inf_propagate():
    D = sj.Diagonal(np.array([np.nan, 1.0, np.inf]))
    y = D @ np.array([1.0, 2.0, 3.0])
    assert np.isnan(y[0]) and y[1] == 2.0 and np.isposinf(y[2])
    assert np.isnan((D @ D).diagonal()[0]) and np.isposinf((D + D).diagonal()[2])
    W = sj.Dense(np.array([[1.0, 2.0], [3.0, 4.0]]))
    assert np.isnan((sj.Diagonal(np.array([np.nan, 1.0])) @ W).to_dense()[0]).all()
    x = np.array([np.nan, 1.0])
    assert np.isnan(W @ x).all()
    K = sj.Kronecker(sj.Identity(2), sj.Dense(np.array([[1.0, 1.0]])))
    out = K @ np.array([np.nan, 1.0, 2.0, 3.0])
    assert np.isnan(out[0]) and out[1] == 5.0


def test_inputs_never_written_and_later_changes_do_not_leak():
    d = np.array([1.0, 2.0, 3.0])
    D = sj.Diagonal(d)
    d[0] = 100.0
    assert D.diagonal()[0] == 1.0
    with pytest.raises(ValueError):
        D.values[0] = 5.0  # read-only
    row = np.array([1.0, 2.0])
    B = sj.BlockRow(0, row, 2)
    row[:] = 0
    assert B.row[0] == 1.0
    M = np.eye(2)
    J = sj.Dense(M)
    M[0, 0] = 9
    assert J.matrix[0, 0] == 1.0
    S = sp.csr_array(np.eye(2))
    Js = sj.Sparse(S)
    S.data[:] = 7
    assert Js.to_dense()[0, 0] == 1.0
    x = np.array([1.0, 2.0])
    kept = x.copy()
    for J in (J, Js, B, sj.Diagonal(np.ones(2)), sj.Identity(2)):
        J @ x
        x @ J
        np.testing.assert_array_equal(x, kept)
    # Identity @ x returns a new array, never the caller's own
    assert not np.shares_memory(sj.Identity(2) @ x, x)


def test_copy_false_shares_memory_but_leaves_the_callers_flags():
    d = np.arange(3.0)
    D = sj.Diagonal(d, copy=False)
    assert np.shares_memory(D.values, d)
    assert d.flags.writeable and not D.values.flags.writeable
    X = np.ones((4, 2))
    sj.StackedKronecker(X, 3, copy=False)
    assert X.flags.writeable
