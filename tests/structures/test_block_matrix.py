"""BlockMatrix (hstack, vstack, block) against its dense reference, and its own checks."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

import structjac as sj

from .makers import make
from .test_oracle import DenseOracle


class _BlockMatrixOracle(DenseOracle):
    no_inverse = NotImplementedError


class TestBlockMatrixHstack(_BlockMatrixOracle):
    kind = "BlockMatrix[hstack]"
    shapes = [(6, 6), (3, 6), (6, 3), (1, 2)]


class TestBlockMatrixVstack(_BlockMatrixOracle):
    kind = "BlockMatrix[vstack]"
    shapes = [(6, 6), (3, 6), (6, 3), (2, 1)]


class TestBlockMatrixGrid(_BlockMatrixOracle):
    kind = "BlockMatrix[2x2]"
    shapes = [(6, 6), (2, 2), (5, 5)]


def test_to_sparse_is_the_bmat_of_the_blocks():
    rng = np.random.default_rng(0)
    blocks = [
        sj.Diagonal(np.array([1.0, 0.0, 2.0])),
        sj.BlockRow(1, np.array([0.0, 3.0]), 3),
        sj.Kronecker(sj.Identity(3), sj.Dense(rng.standard_normal((1, 2)))),
    ]
    J = sj.hstack(blocks)
    S = J.to_sparse()
    ref = sp.block_array([[b.to_sparse() for b in blocks]])
    assert S.nnz == sum(b.to_sparse().nnz for b in blocks) == ref.nnz  # explicit zeros kept
    np.testing.assert_array_equal(S.toarray(), ref.toarray())


def test_grid_properties_and_transpose():
    A = sj.Dense(np.arange(6.0).reshape(2, 3))
    B = sj.Identity(2)
    J = sj.block([[A, B], [None, sj.Diagonal(np.array([5.0, 6.0]))]])
    assert J.grid_shape == (2, 2) and J.row_sizes == (2, 2) and J.col_sizes == (3, 2)
    assert isinstance(J[1, 0], sj.Zero) and J[1, 0].shape == (2, 3) and J[0, 1] is B
    T = J.T
    assert T.grid_shape == (2, 2) and T.row_sizes == (3, 2) and T.col_sizes == (2, 2)
    np.testing.assert_array_equal(T.to_dense(), J.to_dense().T)
    assert J.nbytes == A.nbytes + 16


def test_applies_block_by_block_without_densifying(monkeypatch):
    rng = np.random.default_rng(1)
    J, M = make("BlockMatrix[2x2]", (6, 6), rng)

    def refuse(self):
        raise AssertionError("densified")

    for cls in (sj.BlockMatrix, sj.Dense, sj.Diagonal, sj.ScaledIdentity, sj.Zero):
        monkeypatch.setattr(cls, "to_dense", refuse)
        monkeypatch.setattr(cls, "to_sparse", refuse)
    X = rng.standard_normal((6, 3))
    np.testing.assert_allclose(J @ X, M @ X, rtol=1e-12)
    np.testing.assert_allclose(X.T @ J, X.T @ M, rtol=1e-12)
    A = J.aslinearoperator()
    np.testing.assert_allclose(A.matmat(X), M @ X, rtol=1e-12)
    np.testing.assert_allclose(A.rmatvec(X[:, 0]), M.T @ X[:, 0], rtol=1e-12)


def test_mixed_dtypes_follow_result_type():
    J = sj.hstack([sj.Dense(np.ones((2, 2), dtype=np.float32)), sj.Identity(2, dtype=np.float32)])
    assert J.dtype == np.float32 and (J @ np.ones(4, dtype=np.float32)).dtype == np.float32
    K = sj.hstack([sj.Dense(np.ones((2, 2), dtype=np.float32)), sj.Identity(2)])
    assert K.dtype == np.float64 and all(b.dtype == np.float64 for b in K.grid[0])


def test_arrays_and_sparse_matrices_are_wrapped():
    J = sj.vstack([np.eye(2), sp.eye_array(2)])
    assert isinstance(J[0, 0], sj.Dense) and isinstance(J[1, 0], sj.Sparse)
    np.testing.assert_array_equal(J.to_dense(), np.vstack([np.eye(2), np.eye(2)]))


@pytest.mark.parametrize(
    "build,message",
    [
        (
            lambda: sj.hstack([sj.Identity(3), sj.Dense(np.ones((2, 2)))]),
            r"block \(0, 1\) of shape \(2, 2\) does not fit grid row 0: block \(0, 0\) has 3 rows, this one 2",
        ),
        (
            lambda: sj.vstack([sj.Identity(3), sj.Dense(np.ones((2, 2)))]),
            r"block \(1, 0\) of shape \(2, 2\) does not fit grid column 0: block \(0, 0\) has 3 columns, this one 2",
        ),
        (
            lambda: sj.block([[sj.Identity(2), None], [sj.Identity(2)]]),
            r"ragged grid: row 0 has 2 blocks, row 1 has 1",
        ),
        (
            lambda: sj.block([[sj.Identity(2), None], [sj.Identity(2), None]]),
            r"grid column 1 has only None",
        ),
        (lambda: sj.hstack([]), r"at least one"),
        (lambda: sj.block([]), r"no rows"),
        (lambda: sj.hstack([np.ones(3)]), r"block \(0, 0\) cannot be a block.*\(3,\)"),
    ],
    ids=[
        "rows-differ",
        "columns-differ",
        "ragged",
        "only-none",
        "empty-hstack",
        "empty-grid",
        "1-D-array",
    ],
)
def test_bad_grids_name_what_is_wrong(build, message):
    with pytest.raises(ValueError, match=message):
        build()


@pytest.mark.parametrize(
    "build",
    [
        lambda: sj.hstack(sj.Identity(2)),
        lambda: sj.BlockMatrix(np.ones((2, 2))),
        lambda: sj.BlockMatrix([sj.Identity(2)]),
    ],
    ids=["hstack-of-one-jacobian", "array-grid", "flat-list"],
)
def test_not_a_grid_is_a_type_error(build):
    with pytest.raises(TypeError):
        build()


def test_products_keep_the_grid():
    rng = np.random.default_rng(2)
    W = rng.standard_normal((3, 4))
    J = sj.hstack([sj.Dense(W), sj.Identity(3)])  # 3 x 7
    D = sj.Diagonal(rng.standard_normal(3))
    E = sj.Diagonal(rng.standard_normal(7))
    for result, expected in [
        (D @ J, np.diag(D.values) @ J.to_dense()),
        (J @ E, J.to_dense() @ np.diag(E.values)),
        (J @ J.T, J.to_dense() @ J.to_dense().T),
        (J.T @ J, J.to_dense().T @ J.to_dense()),
        (J + J, 2 * J.to_dense()),
        (J - 0.5 * J, 0.5 * J.to_dense()),
    ]:
        assert isinstance(result, sj.BlockMatrix), type(result)
        np.testing.assert_allclose(result.to_dense(), expected, rtol=1e-12, atol=1e-12)
    assert isinstance((D @ J)[0, 1], sj.Diagonal)  # diag(d) I stays a diagonal
    G = (J @ J.T)[0, 0]
    assert isinstance(G, sj.Dense)  # W W^T + I


def test_a_fall_inside_a_block_is_one_visible_fall():
    rng = np.random.default_rng(3)
    K = sj.Kronecker(sj.Dense(rng.standard_normal((2, 2))), sj.Diagonal(rng.uniform(1, 2, 2)))
    J = sj.hstack([sj.BlockRow(0, rng.standard_normal(2), 4), sj.Identity(4)])
    with pytest.warns(sj.StructureLostWarning, match=r"matmul\(Kronecker, BlockMatrix\)") as record:
        result = K @ J
    assert len([w for w in record if issubclass(w.category, sj.StructureLostWarning)]) == 1
    assert isinstance(result, sj.Sparse)
    np.testing.assert_allclose(result.to_dense(), K.to_dense() @ J.to_dense(), rtol=1e-12)
    with sj.strict(), pytest.raises(sj.StructureLostError, match="BlockMatrix"):
        K @ J


def test_pickle_round_trip_of_picklable_blocks():
    import pickle

    rng = np.random.default_rng(4)
    blocks = rng.standard_normal((2, 2, 3))
    J = sj.hstack([sj.BlockDiagonal(blocks), sj.BlockDiagonal(blocks[:, :, :1])])
    K = pickle.loads(pickle.dumps(J))
    assert isinstance(K, sj.BlockMatrix) and K.col_sizes == J.col_sizes
    np.testing.assert_array_equal(K.to_dense(), J.to_dense())
