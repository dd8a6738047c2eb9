"""Random structures of a requested shape and their dense references, for the tests.

``make(kind, shape, rng, dtype)`` returns ``(J, dense)`` or ``None`` when the type cannot
have that shape (a Diagonal is square, a Kronecker needs factors that fit). The dense
reference is built independently of the structure's own ``to_dense``.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

import structjac as sj


def _values(rng, size, dtype, positive=False):
    v = rng.uniform(0.5, 2.0, size) if positive else rng.standard_normal(size)
    return np.asarray(v, dtype=dtype)


def make_identity(shape, rng, dtype):
    m, n = shape
    if m != n:
        return None
    return sj.Identity(n, dtype=dtype), np.eye(n, dtype=dtype)


def make_scaled_identity(shape, rng, dtype):
    m, n = shape
    if m != n:
        return None
    c = dtype(rng.uniform(0.5, 2.0) * rng.choice([-1, 1]))
    return sj.ScaledIdentity(n, c, dtype=dtype), c * np.eye(n, dtype=dtype)


def make_zero(shape, rng, dtype):
    return sj.Zero(shape, dtype=dtype), np.zeros(shape, dtype=dtype)


def make_diagonal(shape, rng, dtype):
    m, n = shape
    if m != n:
        return None
    d = _values(rng, n, dtype, positive=True) * rng.choice([-1, 1], n).astype(dtype)
    M = np.zeros((n, n), dtype=dtype)
    M[np.arange(n), np.arange(n)] = d
    return sj.Diagonal(d), M


def make_blockrow_one(shape, rng, dtype):
    m, n = shape
    if m == 0:
        return None  # a block row needs a row
    i = int(rng.integers(m))
    row = _values(rng, n, dtype)
    M = np.zeros(shape, dtype=dtype)
    M[i, :] = row
    return sj.BlockRow(i, row, m), M


def make_blockrow_many(shape, rng, dtype):
    m, n = shape
    if m < 2:
        return None
    idx = rng.choice(m, size=2, replace=False)
    rows = _values(rng, (2, n), dtype)
    M = np.zeros(shape, dtype=dtype)
    for k, i in enumerate(idx):
        M[i, :] = rows[k]
    return sj.BlockRow(idx, rows, m), M


def make_blockcolumn(shape, rng, dtype):
    m, n = shape
    if n == 0:
        return None  # a block column needs a column
    j = int(rng.integers(n))
    col = _values(rng, m, dtype)
    M = np.zeros(shape, dtype=dtype)
    M[:, j] = col
    return sj.BlockColumn(j, col, n), M


def make_kronecker(shape, rng, dtype):
    """Square: Dense(2x2) (x) Diagonal; (m, 2m): Dense (x) one row; (2n, n): Dense (x) one column."""
    m, n = shape
    if m == n and m % 2 == 0:
        A = _values(rng, (2, 2), dtype) + 2 * np.eye(2, dtype=dtype)
        d = _values(rng, m // 2, dtype, positive=True)
        return sj.Kronecker(sj.Dense(A), sj.Diagonal(d)), np.kron(A, np.diag(d))
    if n == 2 * m:
        A = _values(rng, (m, m), dtype)
        b = _values(rng, (1, 2), dtype)
        return sj.Kronecker(sj.Dense(A), sj.Dense(b)), np.kron(A, b)
    if m == 2 * n:
        A = _values(rng, (n, n), dtype)
        b = _values(rng, (2, 1), dtype)
        return sj.Kronecker(sj.Dense(A), sj.Dense(b)), np.kron(A, b)
    return None


def make_kronecker_identity(shape, rng, dtype):
    """I (x) B, the shape of dz/dW = I (x) x^T: square I_2 (x) Diagonal, or I_m (x) (1 x 2)."""
    m, n = shape
    if m == n and m % 2 == 0:
        d = _values(rng, m // 2, dtype, positive=True)
        return sj.Kronecker(sj.Identity(2, dtype=dtype), sj.Diagonal(d)), np.kron(
            np.eye(2, dtype=dtype), np.diag(d)
        )
    if n == 2 * m:
        b = _values(rng, (1, 2), dtype)
        return sj.Kronecker(sj.Identity(m, dtype=dtype), sj.Dense(b)), np.kron(
            np.eye(m, dtype=dtype), b
        )
    return None


def make_stacked_kronecker(shape, rng, dtype):
    """dZ/dvec_r(W) over a batch X (N, d) of a layer with m outputs: (N*m, m*d)."""
    rows, cols = shape
    for m in (2, 3, 1):
        if rows % m == 0 and cols % m == 0:
            N, d = rows // m, cols // m
            X = _values(rng, (N, d), dtype)
            dense = np.einsum("ab,kj->kabj", np.eye(m, dtype=dtype), X).reshape(N * m, m * d)
            return sj.StackedKronecker(X, m), dense
    return None


def make_stacked_kronecker_transposed(shape, rng, dtype):
    made = make_stacked_kronecker(shape[::-1], rng, dtype)
    if made is None:
        return None
    J, dense = made
    return J.T, dense.T.copy()


def make_row_scaled(shape, rng, dtype):
    """diag(d) (I (x) W), as the batch Jacobian da/dX of a layer keeps it."""
    rows, cols = shape
    for N in (2, 3, 1):
        if rows % N == 0 and cols % N == 0:
            W = _values(rng, (rows // N, cols // N), dtype)
            d = _values(rng, rows, dtype, positive=True)
            J = sj.RowScaled(d, sj.Kronecker(sj.Identity(N, dtype=dtype), sj.Dense(W)))
            return J, d[:, None] * np.kron(np.eye(N, dtype=dtype), W)
    return None


def make_dense(shape, rng, dtype):
    M = _values(rng, shape, dtype)
    if shape[0] == shape[1]:
        M = M + 3 * np.eye(shape[0], dtype=dtype)  # well conditioned, for inv
    return sj.Dense(M), M.copy()


def make_sparse(shape, rng, dtype):
    m, n = shape
    M = _values(rng, shape, dtype) * (rng.uniform(size=shape) < 0.4)
    if m == n:
        M = M + 3 * np.eye(n, dtype=dtype)
    return sj.Sparse(sp.coo_array(M)), M.astype(dtype)


MAKERS = {
    "Identity": make_identity,
    "ScaledIdentity": make_scaled_identity,
    "Zero": make_zero,
    "Diagonal": make_diagonal,
    "BlockRow": make_blockrow_one,
    "BlockRow[2 rows]": make_blockrow_many,
    "BlockColumn": make_blockcolumn,
    "Kronecker": make_kronecker,
    "Kronecker[I (x) B]": make_kronecker_identity,
    "StackedKronecker": make_stacked_kronecker,
    "Transposed[StackedKronecker]": make_stacked_kronecker_transposed,
    "RowScaled": make_row_scaled,
    "Dense": make_dense,
    "Sparse": make_sparse,
}


def make(kind, shape, rng, dtype=np.float64):
    return MAKERS[kind](tuple(shape), rng, np.dtype(dtype).type)


def tolerance(dtype):
    """(rtol, atol) for comparing against a dense reference in ``dtype``."""
    if np.dtype(dtype) == np.float32:
        return 2e-5, 2e-5
    return 1e-12, 1e-12


# ---- block structures (BlockDiagonal, BlockMatrix) --------------------------------------
def _block_count(shape):
    """The number of blocks N the batch makers use for a shape: 2, 3 or 1, as make_row_scaled."""
    rows, cols = shape
    for N in (2, 3, 1):
        if rows % N == 0 and cols % N == 0:
            return N
    return None


def _block_diagonal_dense(blocks):
    N, p, q = blocks.shape
    M = np.zeros((N * p, N * q), dtype=blocks.dtype)
    for k in range(N):
        M[k * p : (k + 1) * p, k * q : (k + 1) * q] = blocks[k]
    return M


def make_block_diagonal(shape, rng, dtype):
    """diag(B_1, ..., B_N) with N = 2, 3 or 1 blocks (as the other batch makers), square blocks well conditioned."""
    N = _block_count(shape)
    if N is None:
        return None
    p, q = shape[0] // N, shape[1] // N
    blocks = _values(rng, (N, p, q), dtype)
    if p == q:
        blocks = blocks + 3 * np.eye(p, dtype=dtype)
    return sj.BlockDiagonal(blocks), _block_diagonal_dense(blocks)


MAKERS["BlockDiagonal"] = make_block_diagonal


def make_block_matrix_hstack(shape, rng, dtype):
    """hstack([Dense (m, n//2), BlockRow (m, n - n//2)]): the Jacobian of a residual in two parameters."""
    m, n = shape
    if n < 2 or m == 0:
        return None
    k = n // 2
    D = _values(rng, (m, k), dtype)
    i = int(rng.integers(m))
    row = _values(rng, n - k, dtype)
    M = np.zeros(shape, dtype=dtype)
    M[:, :k] = D
    M[i, k:] = row
    return sj.hstack([sj.Dense(D), sj.BlockRow(i, row, m)]), M


def make_block_matrix_vstack(shape, rng, dtype):
    """vstack([Dense (m//2, n), BlockColumn (m - m//2, n)])."""
    m, n = shape
    if m < 2 or n == 0:
        return None
    k = m // 2
    D = _values(rng, (k, n), dtype)
    j = int(rng.integers(n))
    col = _values(rng, m - k, dtype)
    M = np.zeros(shape, dtype=dtype)
    M[:k] = D
    M[k:, j] = col
    return sj.vstack([sj.Dense(D), sj.BlockColumn(j, col, n)]), M


def make_block_matrix_grid(shape, rng, dtype):
    """[[Diagonal, 0], [Dense, c I]] with the partition (m//2, m - m//2) on both sides (square)."""
    m, n = shape
    if m != n or m < 2:
        return None
    k = m // 2
    d = _values(rng, k, dtype, positive=True)
    L = _values(rng, (m - k, k), dtype)
    c = dtype(rng.uniform(0.5, 2.0))
    M = np.zeros(shape, dtype=dtype)
    M[np.arange(k), np.arange(k)] = d
    M[k:, :k] = L
    M[k:, k:] = c * np.eye(m - k, dtype=dtype)
    J = sj.block([[sj.Diagonal(d), None], [sj.Dense(L), sj.ScaledIdentity(m - k, c, dtype=dtype)]])
    return J, M


MAKERS["BlockMatrix[hstack]"] = make_block_matrix_hstack
MAKERS["BlockMatrix[vstack]"] = make_block_matrix_vstack
MAKERS["BlockMatrix[2x2]"] = make_block_matrix_grid


def make_kronecker_identity_dense(shape, rng, dtype):
    """I_N (x) W with W Dense, N = 2, 3 or 1 as the batch makers: dz/dX of a layer over a batch."""
    N = _block_count(shape)
    if N is None:
        return None
    W = _values(rng, (shape[0] // N, shape[1] // N), dtype)
    return sj.Kronecker(sj.Identity(N, dtype=dtype), sj.Dense(W)), np.kron(
        np.eye(N, dtype=dtype), W
    )


MAKERS["Kronecker[I (x) W]"] = make_kronecker_identity_dense


def make_kronecker_dense_scaled_identity(shape, rng, dtype):
    """W (x) cI_2 with W Dense: a right factor that is a multiple of the identity."""
    m, n = shape
    if m % 2 or n % 2 or m == 0 or n == 0:
        return None
    W = _values(rng, (m // 2, n // 2), dtype)
    c = dtype(rng.uniform(0.5, 2.0))
    return (
        sj.Kronecker(sj.Dense(W), sj.ScaledIdentity(2, c, dtype=dtype)),
        np.kron(W, c * np.eye(2, dtype=dtype)),
    )


MAKERS["Kronecker[W (x) cI]"] = make_kronecker_dense_scaled_identity


def make_kronecker_row_left(shape, rng, dtype):
    """a^T (x) B with a^T one row (1 x 2), B Dense (m x n/2): the second branch of diag(d) (A (x) B)."""
    m, n = shape
    if n % 2 or n < 2:
        return None
    a = _values(rng, (1, 2), dtype)
    B = _values(rng, (m, n // 2), dtype)
    return sj.Kronecker(sj.Dense(a), sj.Dense(B)), np.kron(a, B)


def make_kronecker_column_left(shape, rng, dtype):
    """a (x) B with a one column (2 x 1), B Dense (m/2 x n): the second branch of (A (x) B) diag(d)."""
    m, n = shape
    if m % 2 or m < 2:
        return None
    a = _values(rng, (2, 1), dtype)
    B = _values(rng, (m // 2, n), dtype)
    return sj.Kronecker(sj.Dense(a), sj.Dense(B)), np.kron(a, B)


MAKERS["Kronecker[a^T (x) B]"] = make_kronecker_row_left
MAKERS["Kronecker[a (x) B]"] = make_kronecker_column_left
