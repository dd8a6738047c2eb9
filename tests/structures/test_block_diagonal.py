"""BlockDiagonal against its dense reference (the dense-oracle mixin) and its own checks."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

import structjac as sj

from .makers import _block_diagonal_dense, make
from .test_oracle import DenseOracle


class TestBlockDiagonal(DenseOracle):
    kind = "BlockDiagonal"
    shapes = [(6, 6), (3, 6), (6, 3), (6, 4), (3, 3)]
    invertible = True

    def expected_nnz(self, J, M):
        N, p, q = J.blocks.shape
        return N * p * q  # every entry of every block is stored, zeros included


EDGE_BLOCKS = {
    "no blocks (N=0)": (0, 2, 3),
    "no blocks, square (N=0)": (0, 3, 3),
    "1x1 blocks": (5, 1, 1),
    "one block": (1, 3, 2),
    "one square block": (1, 4, 4),
    "4 blocks 2x3": (4, 2, 3),
    "empty blocks (p=0)": (3, 0, 2),
}


class TestBlockDiagonalEdges(DenseOracle):
    """N = 0, 1x1 blocks, a single block, empty blocks."""

    kind = "BlockDiagonal"
    invertible = True

    def cases(self, dtype, seed=0):
        rng = np.random.default_rng(seed)
        out = []
        for N, p, q in EDGE_BLOCKS.values():
            blocks = rng.standard_normal((N, p, q)).astype(dtype)
            if p == q:
                blocks = blocks + 3 * np.eye(p, dtype=dtype)
            out.append((sj.BlockDiagonal(blocks), _block_diagonal_dense(blocks)))
        return out

    def expected_nnz(self, J, M):
        return J.blocks.size


def _complex_case(seed=0, shape=(3, 2, 2)):
    rng = np.random.default_rng(seed)
    blocks = rng.standard_normal(shape) + 1j * rng.standard_normal(shape)
    if shape[1] == shape[2]:
        blocks = blocks + 3 * np.eye(shape[1])
    return sj.BlockDiagonal(blocks), _block_diagonal_dense(blocks)


@pytest.mark.parametrize("shape", [(3, 2, 2), (2, 3, 1), (1, 2, 4)], ids=["square", "tall", "wide"])
def test_complex128(shape):
    J, M = _complex_case(shape=shape)
    rng = np.random.default_rng(1)
    assert J.dtype == np.complex128
    np.testing.assert_array_equal(J.to_dense(), M)
    np.testing.assert_array_equal(J.T.to_dense(), M.T)  # transpose, not conjugate transpose
    np.testing.assert_array_equal(J.to_sparse().toarray(), M)
    np.testing.assert_array_equal(J.diagonal(), np.diagonal(M))
    x = rng.standard_normal(M.shape[1]) + 1j * rng.standard_normal(M.shape[1])
    y = rng.standard_normal(M.shape[0]) + 1j * rng.standard_normal(M.shape[0])
    np.testing.assert_allclose(J @ x, M @ x, rtol=1e-12)
    np.testing.assert_allclose(y @ J, y @ M, rtol=1e-12)
    A = J.aslinearoperator()
    np.testing.assert_allclose(A.rmatvec(y), M.conj().T @ y, rtol=1e-12)
    if shape[1] == shape[2]:
        np.testing.assert_allclose(J.inv().to_dense() @ M, np.eye(M.shape[0]), atol=1e-12)
    np.testing.assert_allclose((2j * J).to_dense(), 2j * M)


def test_blocks_property_is_read_only_and_copied():
    blocks = np.arange(12.0).reshape(2, 2, 3)
    J = sj.BlockDiagonal(blocks)
    blocks[0, 0, 0] = 100.0  # the caller's array is not shared
    assert J.blocks[0, 0, 0] == 0.0
    with pytest.raises(ValueError):
        J.blocks[0, 0, 0] = 1.0
    assert J.n_blocks == 2 and J.block_shape == (2, 3) and J.shape == (4, 6)
    assert J.nbytes == blocks.nbytes and J.nnz == 12


def test_float32_stays_float32():
    J, _ = make("BlockDiagonal", (6, 6), np.random.default_rng(0), np.float32)
    assert J.dtype == np.float32
    assert (J @ np.ones(6, dtype=np.float32)).dtype == np.float32
    assert J.T.dtype == J.inv().dtype == (2 * J).dtype == np.float32
    assert J.astype(np.float64).dtype == np.float64
    assert J.astype(np.float32) is J


def test_integer_blocks_become_float64():
    J = sj.BlockDiagonal(np.ones((2, 2, 2), dtype=np.int64))
    assert J.dtype == np.float64


@pytest.mark.parametrize(
    "bad", [np.ones((2, 2)), np.ones(3), np.ones((1, 2, 2, 2))], ids=["2-D", "1-D", "4-D"]
)
def test_wrong_ndim_names_the_shape(bad):
    with pytest.raises(
        ValueError,
        match=r"BlockDiagonal expects a 3-D array.*"
        + str(bad.shape).replace("(", r"\(").replace(")", r"\)"),
    ):
        sj.BlockDiagonal(bad)


def test_structures_are_refused():
    with pytest.raises(TypeError, match="Diagonal"):
        sj.BlockDiagonal(sj.Diagonal(np.ones(3)))


def test_string_dtype_is_refused():
    with pytest.raises(TypeError, match="dtype"):
        sj.BlockDiagonal(np.array([[["a"]]]))


def test_inv_names_the_singular_block():
    blocks = np.stack([np.eye(2), np.eye(2), np.ones((2, 2)), np.zeros((2, 2))])
    with pytest.raises(np.linalg.LinAlgError, match="block 2 "):
        sj.BlockDiagonal(blocks).inv()


def test_inv_of_rectangular_blocks_names_their_shape():
    with pytest.raises(np.linalg.LinAlgError, match=r"\(2, 3\)"):
        sj.BlockDiagonal(np.ones((2, 2, 3))).inv()


def test_application_shape_error_names_both_shapes():
    J = sj.BlockDiagonal(np.ones((2, 2, 3)))
    with pytest.raises(ValueError, match=r"\(4, 6\).*\(5,\)"):
        J @ np.ones(5)


def test_pickle_round_trip():
    J, M = make("BlockDiagonal", (6, 4), np.random.default_rng(3))
    K = pickle.loads(pickle.dumps(J))
    assert isinstance(K, sj.BlockDiagonal) and K.shape == J.shape
    np.testing.assert_array_equal(K.to_dense(), M)
    assert not K.blocks.flags.writeable


def test_applies_without_densifying(monkeypatch):
    J, M = make("BlockDiagonal", (6, 6), np.random.default_rng(0))
    monkeypatch.setattr(
        sj.BlockDiagonal, "to_dense", lambda self: (_ for _ in ()).throw(AssertionError)
    )
    monkeypatch.setattr(
        sj.BlockDiagonal, "to_sparse", lambda self: (_ for _ in ()).throw(AssertionError)
    )
    X = np.random.default_rng(1).standard_normal((6, 3))
    np.testing.assert_allclose(J @ X, M @ X)
    np.testing.assert_allclose(X.T @ J, X.T @ M)


class TestKroneckerIdentityDense(DenseOracle):
    """I_N (x) W, the maker the block rules meet most (a block diagonal of N equal blocks)."""

    kind = "Kronecker[I (x) W]"
    shapes = [(6, 6), (3, 6), (6, 4), (3, 3)]
    invertible = True

    def expected_nnz(self, J, M):
        return J.A.to_sparse().nnz * J.B.to_sparse().nnz
