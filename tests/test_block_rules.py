"""The block-diagonal rules: the batch Jacobian of a network, regrouped blocks, laws.

The table walk (tests/test_algebra.py) reaches every rule with the makers; here the
cases that the walk's shapes do not reach (block counts that divide each other, several
indices in one block), the batch Jacobian of two- and three-layer networks, and
hypothesis laws involving BlockDiagonal, each against the dense product.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import structjac as sj

from .structures.makers import _block_diagonal_dense


def _bd(rng, N, p, q, dtype=np.float64):
    blocks = rng.standard_normal((N, p, q)).astype(dtype)
    return sj.BlockDiagonal(blocks), _block_diagonal_dense(blocks)


def _kron_identity(N, W):
    return sj.Kronecker(sj.Identity(N, dtype=W.dtype), sj.Dense(W))


def _no_fall(f, *args):
    with warnings.catch_warnings():
        warnings.simplefilter("error", sj.StructureLostWarning)
        return f(*args)


# ------------------------------------------------------------ the two-layer network
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_two_layer_batch_jacobian_is_block_diagonal(dtype):
    """d vec(Z2) / d vec(X) for Z2 = g(X W1^T) W2^T: diag(W2 diag(d_k) W1), O(N m d) numbers."""
    rng = np.random.default_rng(0)
    N, d, h, m = 64, 12, 20, 3
    W1 = rng.standard_normal((h, d)).astype(dtype)
    W2 = rng.standard_normal((m, h)).astype(dtype)
    g = rng.uniform(0.1, 1.0, N * h).astype(dtype)  # g'(Z1), one per sample and unit
    dA1_dX = sj.Diagonal(g) @ _kron_identity(N, W1)  # RowScaled, as the layers keep it
    assert isinstance(dA1_dX, sj.RowScaled)
    J = _no_fall(lambda: _kron_identity(N, W2) @ dA1_dX)
    assert isinstance(J, sj.BlockDiagonal) and J.dtype == dtype
    assert J.blocks.shape == (N, m, d)
    assert J.nbytes == N * m * d * np.dtype(dtype).itemsize  # O(N m d), not (N m) (N d)
    assert J.nbytes * N == J.dense_nbytes
    G = g.reshape(N, h)
    expected = np.einsum(
        "ij,kj,jl->kil", W2.astype(np.float64), G.astype(np.float64), W1.astype(np.float64)
    )
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(J.blocks, expected, rtol=rtol, atol=rtol)
    dense = np.kron(np.eye(N), W2) @ np.diag(g) @ np.kron(np.eye(N), W1)
    np.testing.assert_allclose(J.to_dense(), dense, rtol=rtol, atol=rtol)


def test_three_layer_chain_stays_block_diagonal():
    """diag(g2) (I (x) W3)... every product of the deeper chain keeps the blocks."""
    rng = np.random.default_rng(1)
    N, d, h1, h2, m = 8, 5, 7, 6, 2
    W1, W2, W3 = (rng.standard_normal(s) for s in ((h1, d), (h2, h1), (m, h2)))
    g1, g2 = rng.uniform(size=N * h1), rng.uniform(size=N * h2)
    D1, D2 = sj.Diagonal(g1), sj.Diagonal(g2)
    K1, K2, K3 = (_kron_identity(N, W) for W in (W1, W2, W3))
    dense = [np.kron(np.eye(N), W) for W in (W1, W2, W3)]
    expected = dense[2] @ np.diag(g2) @ dense[1] @ np.diag(g1) @ dense[0]
    # right to left, as forward mode builds it
    J = _no_fall(lambda: K3 @ (D2 @ (K2 @ (D1 @ K1))))
    assert isinstance(J, sj.BlockDiagonal) and J.blocks.shape == (N, m, d)
    np.testing.assert_allclose(J.to_dense(), expected, rtol=1e-12, atol=1e-12)
    # left to right, as reverse mode builds it
    J = _no_fall(lambda: (((K3 @ D2) @ K2) @ D1) @ K1)
    assert isinstance(J, sj.BlockDiagonal)
    np.testing.assert_allclose(J.to_dense(), expected, rtol=1e-12, atol=1e-12)
    # the layers' own association: diag @ BD and Kronecker(I, W) @ BD
    inner = _no_fall(lambda: K2 @ (D1 @ K1))
    assert isinstance(inner, sj.BlockDiagonal)
    assert isinstance(_no_fall(lambda: D2 @ inner), sj.BlockDiagonal)
    assert isinstance(_no_fall(lambda: K3 @ (D2 @ inner)), sj.BlockDiagonal)
    # and the planner of structjac.chain, whatever order it picks
    planned = _no_fall(lambda: sj.chain(K3, D2, K2, D1, K1))
    np.testing.assert_allclose(planned.to_dense(), expected, rtol=1e-12, atol=1e-12)
    assert isinstance(planned, (sj.BlockDiagonal, sj.RowScaled, sj.Kronecker))


def test_two_layer_under_strict_does_not_raise():
    rng = np.random.default_rng(2)
    N, d, h, m = 4, 3, 5, 2
    R = sj.RowScaled(rng.uniform(size=N * h), _kron_identity(N, rng.standard_normal((h, d))))
    with sj.strict():
        assert isinstance(_kron_identity(N, rng.standard_normal((m, h))) @ R, sj.BlockDiagonal)


# ------------------------------------------------------------ regrouped block counts
@pytest.mark.parametrize(
    "left,right",
    [
        ((6, 1, 2), (3, 4, 2)),
        ((3, 2, 4), (6, 2, 3)),
        ((2, 3, 3), (2, 3, 1)),
        ((4, 2, 1), (2, 2, 3)),
    ],
    ids=["left-finer", "right-finer", "equal", "column-blocks"],
)
def test_block_counts_that_divide_each_other(left, right):
    rng = np.random.default_rng(3)
    A, MA = _bd(rng, *left)
    B, MB = _bd(rng, *right)
    C = _no_fall(lambda: A @ B)
    assert isinstance(C, sj.BlockDiagonal)
    assert C.n_blocks == min(left[0], right[0])
    np.testing.assert_allclose(C.to_dense(), MA @ MB, rtol=1e-12, atol=1e-12)


def test_block_counts_that_do_not_fit_fall_visibly():
    rng = np.random.default_rng(4)
    A, MA = _bd(rng, 3, 1, 2)  # 3 x 6, column blocks of 2
    B, MB = _bd(rng, 2, 3, 2)  # 6 x 4, row blocks of 3
    with pytest.warns(sj.StructureLostWarning, match=r"matmul\(BlockDiagonal, BlockDiagonal\)"):
        C = A @ B
    assert isinstance(C, sj.Sparse)
    np.testing.assert_allclose(C.to_dense(), MA @ MB, rtol=1e-12)


def test_kronecker_with_diagonal_left_factor_and_finer_identity():
    """diag(c) (x) A and I_6 (x) A against a BlockDiagonal of 3 and 2 blocks."""
    rng = np.random.default_rng(5)
    c = rng.standard_normal(6)
    A = rng.standard_normal((2, 1))
    K = sj.Kronecker(sj.Diagonal(c), sj.Dense(A))  # 12 x 6, 6 blocks of 2 x 1
    B, MB = _bd(rng, 3, 2, 4)  # 6 x 12
    C = _no_fall(lambda: K @ B)
    assert isinstance(C, sj.BlockDiagonal) and C.n_blocks == 3
    np.testing.assert_allclose(C.to_dense(), K.to_dense() @ MB, rtol=1e-12)
    K2 = sj.Kronecker(sj.ScaledIdentity(4, -2.0), sj.Dense(rng.standard_normal((3, 3))))
    D, MD = _bd(rng, 2, 5, 6)
    E = _no_fall(lambda: D @ K2)
    assert isinstance(E, sj.BlockDiagonal)
    np.testing.assert_allclose(E.to_dense(), MD @ K2.to_dense(), rtol=1e-12)


def test_kronecker_with_dense_left_factor_is_not_block_diagonal():
    rng = np.random.default_rng(6)
    K = sj.Kronecker(sj.Dense(rng.standard_normal((2, 2))), sj.Identity(3))
    B, MB = _bd(rng, 2, 3, 3)
    with pytest.warns(sj.StructureLostWarning):
        C = K @ B
    np.testing.assert_allclose(C.to_dense(), K.to_dense() @ MB, rtol=1e-12)


def test_blockrow_with_two_indices_in_one_block():
    rng = np.random.default_rng(7)
    A, MA = _bd(rng, 3, 2, 2)
    R = sj.BlockRow(np.array([1, 0, 4]), rng.standard_normal((3, 5)), 6)
    C = _no_fall(lambda: A @ R)
    assert isinstance(C, sj.BlockRow) and C.indices.size == 4  # blocks 0 and 2, 2 rows each
    np.testing.assert_allclose(C.to_dense(), MA @ R.to_dense(), rtol=1e-12)
    L = sj.BlockColumn(np.array([5, 0]), rng.standard_normal((2, 4)), 6)
    D = _no_fall(lambda: L @ A)
    assert isinstance(D, sj.BlockColumn)
    np.testing.assert_allclose(D.to_dense(), L.to_dense() @ MA, rtol=1e-12)


def test_sums_keep_the_blocks():
    rng = np.random.default_rng(8)
    A, MA = _bd(rng, 3, 2, 2)
    d = rng.standard_normal(6)
    for result, expected in [
        (A + sj.Diagonal(d), MA + np.diag(d)),
        (sj.Diagonal(d) + A, MA + np.diag(d)),
        (A - sj.Identity(6), MA - np.eye(6)),
        (sj.ScaledIdentity(6, 2.0) + A, MA + 2 * np.eye(6)),
        (A + _kron_identity(3, np.ones((2, 2))), MA + np.kron(np.eye(3), np.ones((2, 2)))),
        (A - A, 0 * MA),
    ]:
        assert isinstance(result, sj.BlockDiagonal)
        np.testing.assert_allclose(result.to_dense(), expected, rtol=1e-12, atol=1e-12)
    with pytest.raises(
        ValueError, match=r"BlockDiagonal of shape \(6, 9\) and Diagonal of shape \(6, 6\)"
    ):
        sj.BlockDiagonal(np.ones((3, 2, 3))) + sj.Diagonal(rng.standard_normal(6))


def test_float32_products_stay_float32():
    rng = np.random.default_rng(9)
    A, _ = _bd(rng, 3, 2, 2, np.float32)
    D = sj.Diagonal(rng.standard_normal(6).astype(np.float32))
    K = _kron_identity(3, rng.standard_normal((2, 2)).astype(np.float32))
    for result in (A @ A, D @ A, A @ D, K @ A, A @ K, A + A, A + D):
        assert isinstance(result, sj.BlockDiagonal) and result.dtype == np.float32


# ------------------------------------------------------------ hypothesis laws
@st.composite
def block_chains(draw):
    """Three BlockDiagonal/Diagonal/Kronecker(I, W) operands of one batch that multiply."""
    N = draw(st.integers(1, 4))
    sizes = [draw(st.integers(1, 3)) for _ in range(4)]
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    out = []
    for i in range(3):
        p, q = sizes[i], sizes[i + 1]
        kind = draw(st.sampled_from(["bd", "kron", "diag"] if p == q else ["bd", "kron"]))
        if kind == "bd":
            out.append(_bd(rng, N, p, q)[0])
        elif kind == "kron":
            out.append(_kron_identity(N, rng.standard_normal((p, q))))
        else:
            out.append(sj.Diagonal(rng.standard_normal(N * p)))
    if not any(isinstance(J, sj.BlockDiagonal) for J in out):
        out[1] = _bd(rng, N, sizes[1], sizes[2])[0]
    return out


@settings(deadline=None, derandomize=True, max_examples=60)
@given(block_chains())
def test_law_associativity_and_transpose(chain_):
    A, B, C = chain_
    MA, MB, MC = (J.to_dense() for J in chain_)
    left = _no_fall(lambda: (A @ B) @ C)
    right = _no_fall(lambda: A @ (B @ C))
    np.testing.assert_allclose(left.to_dense(), MA @ MB @ MC, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(right.to_dense(), MA @ MB @ MC, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose((A @ B).T.to_dense(), (B.T @ A.T).to_dense(), rtol=1e-10, atol=1e-10)


@settings(deadline=None, derandomize=True, max_examples=40)
@given(st.integers(0, 4), st.integers(1, 3), st.integers(0, 2**32 - 1))
def test_law_inverse_and_distributivity(N, p, seed):
    rng = np.random.default_rng(seed)
    blocks = rng.standard_normal((N, p, p)) + 3 * np.eye(p)
    A = sj.BlockDiagonal(blocks)
    B, MB = _bd(rng, N, p, p)
    d = sj.Diagonal(rng.standard_normal(N * p))
    MA = A.to_dense()
    np.testing.assert_allclose((A.inv() @ A).to_dense(), np.eye(N * p), atol=1e-10)
    np.testing.assert_allclose(
        ((A + B) @ d).to_dense(), (A @ d + B @ d).to_dense(), rtol=1e-10, atol=1e-10
    )
    np.testing.assert_allclose(
        (d @ (A + B)).to_dense(), np.diag(d.values) @ (MA + MB), rtol=1e-10, atol=1e-10
    )
    x = rng.standard_normal(N * p)
    np.testing.assert_allclose((A @ B) @ x, A @ (B @ x), rtol=1e-10, atol=1e-10)


def test_kronecker_with_a_structured_right_factor_is_not_densified():
    """I_2 (x) diag(d) @ BlockDiagonal: the rule would densify diag(d) into a block; it falls visibly."""
    rng = np.random.default_rng(10)
    K = sj.Kronecker(sj.Identity(2), sj.Diagonal(rng.uniform(1, 2, 3)))
    B, MB = _bd(rng, 2, 3, 3)
    with pytest.warns(sj.StructureLostWarning, match=r"matmul\(Kronecker, BlockDiagonal\)"):
        C = K @ B
    np.testing.assert_allclose(C.to_dense(), K.to_dense() @ MB, rtol=1e-12)
