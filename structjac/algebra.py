r"""The rule table: how two structures combine, in closed form.

Every rule is a small function with its one line of mathematics, registered (in
:mod:`structjac._registry`) under ``(operation, left type, right type)``. A pair of operands is looked up
along both method resolution orders, so a rule written for :class:`Diagonal` serves
:class:`ScaledIdentity` and :class:`Identity` too, and a rule written for a tighter
type overrides it. Among the rules that match, the one whose types are closest to the
operands' (the smallest sum of MRO distances) wins; ties go to the rule of higher
``priority`` (identities and zeros first, then the block rules that keep a few rows or
columns), then to the closer left type.

A rule may decline (return ``NotImplemented``) when a condition on shapes fails, e.g.
the mixed-product rule of two Kronecker products whose factors do not fit. When no rule
applies, the result is computed exactly through ``scipy.sparse`` and a
:class:`~structjac.StructureLostWarning` says so (``structjac.strict()`` raises
instead): nothing is densified behind the user's back.

Results have the dtype ``np.result_type(left.dtype, right.dtype)``.
"""

from __future__ import annotations

import dataclasses

from typing import Callable, NamedTuple

import numpy as np
import scipy.sparse as sp

from ._registry import (
    SAME_AS_LEFT,
    SAME_AS_RIGHT,
    Rule,
    add,
    lookup as _lookup,
    matmul,
    pair_dtype as _pair_dtype,
    register as _rule,
    rule_for,
    rules,
    scale,
    subtract,
)
from ._warnings import StructureLostError, strict
from .structures import (
    BlockDiagonal,
    BlockMatrix,
    RowScaled,
    StackedKronecker,
    BlockColumn,
    BlockRow,
    Dense,
    Diagonal,
    Identity,
    Jacobian,
    Kronecker,
    ScaledIdentity,
    Sparse,
    Zero,
)
from .structures._wrap import as_jacobian
from .structures.base import coerce_operand

__all__ = [
    "Rule",
    "rules",
    "rule_for",
    "matmul",
    "add",
    "subtract",
    "scale",
    "as_jacobian",
]

# The registry (structjac._registry) holds the table, looks rules up and applies them;
# this module only registers the rules, after the classes exist, so that no structure
# imports it.


def _one_row(J: Jacobian) -> bool:
    return J.shape[0] == 1


def _one_col(J: Jacobian) -> bool:
    return J.shape[1] == 1


# =====================================================================  matmul
# ---- identities and zeros: nothing to compute -------------------------------
@_rule("matmul", Identity, Jacobian, SAME_AS_RIGHT, priority=2, cost=lambda a, b: (0.0, b))
def _identity_at(a, b):
    """I J = J (the same object, no copy)"""
    return b


@_rule("matmul", Jacobian, Identity, SAME_AS_LEFT, priority=2, cost=lambda a, b: (0.0, a))
def _at_identity(a, b):
    """J I = J (the same object, no copy)"""
    return a


@_rule(
    "matmul",
    ScaledIdentity,
    Jacobian,
    SAME_AS_RIGHT,
    priority=2,
    cost=lambda a, b: (b.nnz, dataclasses.replace(b)),
)  # a scaled copy of b
def _scaled_identity_at(a, b):
    """(cI) J = cJ, in the structure of J"""
    return b._scale(a.scalar)


@_rule(
    "matmul",
    Jacobian,
    ScaledIdentity,
    SAME_AS_LEFT,
    priority=2,
    cost=lambda a, b: (a.nnz, dataclasses.replace(a)),
)  # a scaled copy of a
def _at_scaled_identity(a, b):
    """J (cI) = cJ, in the structure of J"""
    return a._scale(b.scalar)


@_rule("matmul", Zero, Jacobian, Zero, priority=3)
def _zero_at(a, b):
    """0 J = 0"""
    return Zero._wrap(a._shape[0], b._shape[1], _pair_dtype(a, b))


@_rule("matmul", Jacobian, Zero, Zero, priority=3)
def _at_zero(a, b):
    """J 0 = 0"""
    return Zero._wrap(a._shape[0], b._shape[1], _pair_dtype(a, b))


# ---- diagonals ---------------------------------------------------------------
@_rule("matmul", Diagonal, Diagonal, Diagonal)
def _diagonal_at_diagonal(a, b):
    """diag(a) diag(b) = diag(a * b)"""
    return Diagonal._wrap(a._values * b._values)


@_rule("matmul", Diagonal, BlockRow, BlockRow)
def _diagonal_at_blockrow(a, b):
    """diag(d) sum_j e_{i_j} r_j^T = sum_j e_{i_j} (d_{i_j} r_j)^T"""
    rows = a.values[b.indices][:, None] * b.rows
    return b._rebuild(rows)


@_rule("matmul", BlockRow, Diagonal, BlockRow)
def _blockrow_at_diagonal(a, b):
    """(sum_j e_{i_j} r_j^T) diag(d) = sum_j e_{i_j} (r_j * d)^T"""
    return a._rebuild(a.rows * b.values)


@_rule("matmul", Diagonal, BlockColumn, BlockColumn)
def _diagonal_at_blockcolumn(a, b):
    """diag(d) sum_j c_j e_{i_j}^T = sum_j (d * c_j) e_{i_j}^T"""
    return b._rebuild(b.columns * a.values)


@_rule("matmul", BlockColumn, Diagonal, BlockColumn)
def _blockcolumn_at_diagonal(a, b):
    """(sum_j c_j e_{i_j}^T) diag(d) = sum_j (d_{i_j} c_j) e_{i_j}^T"""
    cols = b.values[a.indices][:, None] * a.columns
    return a._rebuild(cols)


@_rule("matmul", Diagonal, Dense, Dense)
def _diagonal_at_dense(a, b):
    """diag(d) M = M with row i scaled by d_i"""
    return Dense._wrap(a.values[:, None] * b.matrix)


@_rule("matmul", Dense, Diagonal, Dense)
def _dense_at_diagonal(a, b):
    """M diag(d) = M with column j scaled by d_j"""
    return Dense._wrap(a.matrix * b.values)


@_rule(
    "matmul",
    Diagonal,
    Kronecker,
    (Kronecker, RowScaled),
    condition="Kronecker when a factor has one row, else RowScaled",
)
def _diagonal_at_kronecker(a, b):
    """diag(d) (A (x) b^T) = (diag(d) A) (x) b^T;  diag(d) (a^T (x) B) = a^T (x) (diag(d) B);  else diag(d) kept beside A (x) B"""
    if _one_row(b.B):
        return Kronecker._wrap(matmul(a, b.A), b.B)
    if _one_row(b.A):
        return Kronecker._wrap(b.A, matmul(a, b.B))
    # e.g. diag(g') (I_N (x) W) over a batch: block diagonal with N different blocks.
    return RowScaled(a.values, b, copy=False)


@_rule(
    "matmul",
    Kronecker,
    Diagonal,
    (Kronecker, BlockDiagonal),
    condition="a factor has one column, else A is diagonal (then block diagonal)",
)
def _kronecker_at_diagonal(a, b):
    """(A (x) b) diag(d) = (A diag(d)) (x) b;  (a (x) B) diag(d) = a (x) (B diag(d));  (diag(c) (x) B) diag(d) = diag(c_k B diag(d_k))"""
    if _one_col(a.B):
        return Kronecker._wrap(matmul(a.A, b), a.B)
    if _one_col(a.A):
        return Kronecker._wrap(a.A, matmul(a.B, b))
    return _block_kronecker_at_diagonal(a, b)  # the block-diagonal section below


# ---- block rows and columns: a few rows (columns) stay a few rows (columns) ----
@_rule("matmul", BlockRow, Jacobian, BlockRow, priority=1)
def _blockrow_at(a, b):
    """(sum_j e_{i_j} r_j^T) J = sum_j e_{i_j} (r_j^T J): only the nonzero rows are applied"""
    return a._rebuild(b._rmatmat(a.rows))


@_rule("matmul", Jacobian, BlockColumn, BlockColumn, priority=1)
def _at_blockcolumn(a, b):
    """J (sum_j c_j e_{i_j}^T) = sum_j (J c_j) e_{i_j}^T"""
    return b._rebuild(a._matmat(b.columns.T).T)


@_rule("matmul", Dense, BlockRow, Dense)
def _dense_at_blockrow(a, b):
    """M (sum_j e_{i_j} r_j^T) = sum_j (M e_{i_j}) r_j^T, a rank-r outer product"""
    return Dense._wrap(a.matrix[:, b.indices] @ b.rows)


@_rule("matmul", BlockColumn, BlockRow, Dense)
def _blockcolumn_at_blockrow(a, b):
    """(sum_j c_j e_{i_j}^T)(sum_l e_{k_l} r_l^T) = sum_{i_j = k_l} c_j r_l^T, a low-rank outer product"""
    common, ja, jb = np.intersect1d(a.indices, b.indices, assume_unique=True, return_indices=True)
    dtype = np.result_type(a.dtype, b.dtype)
    return Dense._wrap((a.columns[ja].T @ b.rows[jb]).astype(dtype, copy=False))


# ---- Kronecker products ------------------------------------------------------
def _mixed_product_cost(a, b):
    """The planner's estimate of (A (x) B)(C (x) D): the factors multiply, nothing expands."""
    p, q, r = a.shape[0], a.shape[1], b.shape[1]
    stored = a.stored + b.stored
    return stored, dataclasses.replace(
        a,
        shape=(p, r),
        nnz=min(a.nnz * b.nnz / max(q, 1), p * r),
        stored=stored,
        nzrows=a.nzrows,
        nzcols=b.nzcols,
    )


@_rule(
    "matmul",
    Kronecker,
    Kronecker,
    Kronecker,
    condition="A.shape[1] == C.shape[0]",
    cost=_mixed_product_cost,
)
def _kronecker_at_kronecker(a, b):
    """(A (x) B)(C (x) D) = (AC) (x) (BD)  (mixed product)"""
    if a.A.shape[1] != b.A.shape[0] or a.B.shape[1] != b.B.shape[0]:
        return NotImplemented
    return Kronecker._wrap(matmul(a.A, b.A), matmul(a.B, b.B))


# ---- dense and sparse: the loose types absorb the others ---------------------
@_rule("matmul", Dense, Jacobian, Dense)
def _dense_at(a, b):
    """M J = (J^T M^T)^T, J applied from the left to the rows of M"""
    return Dense._wrap(b._rmatmat(a.matrix))


@_rule("matmul", Jacobian, Dense, Dense)
def _at_dense(a, b):
    """J M, J applied to the columns of M"""
    return Dense._wrap(a._matmat(b.matrix))


@_rule("matmul", Sparse, Jacobian, Sparse)
def _sparse_at(a, b):
    """S J = S sparse(J)"""
    return Sparse(sp.csr_array(a.csr @ b.to_sparse()), copy=False)


@_rule("matmul", Jacobian, Sparse, Sparse)
def _at_sparse(a, b):
    """J S = sparse(J) S"""
    return Sparse(sp.csr_array(a.to_sparse() @ b.csr), copy=False)


@_rule("matmul", Dense, Sparse, Dense)
def _dense_at_sparse(a, b):
    """M S = (S^T M^T)^T, dense"""
    return Dense._wrap(np.asarray((b.csr.T @ a.matrix.T).T))


@_rule("matmul", Sparse, Dense, Dense)
def _sparse_at_dense(a, b):
    """S M, dense"""
    return Dense._wrap(np.asarray(a.csr @ b.matrix))


# ========================================================================  add
@_rule("add", Zero, Jacobian, SAME_AS_RIGHT, priority=3)
def _zero_plus(a, b):
    """0 + J = J"""
    return b


@_rule("add", Jacobian, Zero, SAME_AS_LEFT, priority=3)
def _plus_zero(a, b):
    """J + 0 = J"""
    return a


@_rule("add", Diagonal, Diagonal, Diagonal)
def _diagonal_plus_diagonal(a, b):
    """diag(a) + diag(b) = diag(a + b)"""
    return Diagonal._wrap(a._values + b._values)


@_rule("add", ScaledIdentity, ScaledIdentity, ScaledIdentity)
def _scaled_identity_plus_scaled_identity(a, b):
    """aI + bI = (a + b)I"""
    # numpy scalars promote as numpy.result_type(a.dtype, b.dtype): the sum has its dtype
    return ScaledIdentity._wrap(a.shape[0], a.scalar + b.scalar)


@_rule("add", BlockRow, BlockRow, BlockRow)
def _blockrow_plus_blockrow(a, b):
    """sum_j e_{i_j} r_j^T + sum_l e_{k_l} s_l^T: rows on the union of the indices"""
    indices = np.union1d(a.indices, b.indices)
    dtype = np.result_type(a.dtype, b.dtype)
    rows = np.zeros((indices.size, a.shape[1]), dtype=dtype)
    rows[np.searchsorted(indices, a.indices)] += a.rows
    rows[np.searchsorted(indices, b.indices)] += b.rows
    scalar = a._scalar_index and b._scalar_index and indices.size == 1
    return BlockRow._from_parts(indices, rows, a.shape[0], scalar)


@_rule("add", BlockColumn, BlockColumn, BlockColumn)
def _blockcolumn_plus_blockcolumn(a, b):
    """(B + C)^T = B^T + C^T: block columns add as block rows"""
    return add(a.T, b.T).T


@_rule("add", Kronecker, Kronecker, Kronecker, condition="a factor is shared")
def _kronecker_plus_kronecker(a, b):
    """A (x) B + A (x) C = A (x) (B + C);  A (x) C + B (x) C = (A + B) (x) C"""
    if _same_factor(a.A, b.A) and a.B.shape == b.B.shape:
        return Kronecker._wrap(a.A, add(a.B, b.B))
    if _same_factor(a.B, b.B) and a.A.shape == b.A.shape:
        return Kronecker._wrap(add(a.A, b.A), a.B)
    return NotImplemented


@_rule(
    "add", Kronecker, ScaledIdentity, Kronecker, condition="a factor is a multiple of the identity"
)
def _kronecker_plus_scaled_identity(a, b):
    """aI (x) B + cI = I (x) (aB + cI);  A (x) bI + cI = (bA + cI) (x) I"""
    if isinstance(a.A, ScaledIdentity):
        inner = add(scale(a.B, a.A.scalar), ScaledIdentity(a.B.shape[0], b.scalar, dtype=b.dtype))
        return Kronecker._wrap(Identity(a.A.shape[0], dtype=inner.dtype), inner)
    if isinstance(a.B, ScaledIdentity):
        inner = add(scale(a.A, a.B.scalar), ScaledIdentity(a.A.shape[0], b.scalar, dtype=b.dtype))
        return Kronecker._wrap(inner, Identity(a.B.shape[0], dtype=inner.dtype))
    return NotImplemented


@_rule(
    "add", ScaledIdentity, Kronecker, Kronecker, condition="a factor is a multiple of the identity"
)
def _scaled_identity_plus_kronecker(a, b):
    """cI + A (x) B = A (x) B + cI"""
    return _kronecker_plus_scaled_identity(b, a)


def _same_factor(X: Jacobian, Y: Jacobian) -> bool:
    if X is Y:
        return True
    if isinstance(X, ScaledIdentity) and isinstance(Y, ScaledIdentity):
        return X.shape == Y.shape and X.scalar == Y.scalar
    return False


@_rule("add", Dense, Jacobian, Dense)
def _dense_plus(a, b):
    """M + J, dense"""
    return Dense._wrap(a.matrix + b.to_dense())


@_rule("add", Jacobian, Dense, Dense)
def _plus_dense(a, b):
    """J + M, dense"""
    return Dense._wrap(a.to_dense() + b.matrix)


@_rule("add", Sparse, Jacobian, Sparse)
def _sparse_plus(a, b):
    """S + J = S + sparse(J)"""
    return Sparse(sp.csr_array(a.csr + b.to_sparse()), copy=False)


@_rule("add", Jacobian, Sparse, Sparse)
def _plus_sparse(a, b):
    """J + S = sparse(J) + S"""
    return Sparse(sp.csr_array(a.to_sparse() + b.csr), copy=False)


@_rule("add", Dense, Sparse, Dense)
def _dense_plus_sparse(a, b):
    """M + S, dense"""
    return Dense._wrap(a.matrix + b.csr.toarray())


@_rule("add", Sparse, Dense, Dense)
def _sparse_plus_dense(a, b):
    """S + M, dense"""
    return Dense._wrap(a.csr.toarray() + b.matrix)


# =====================================================  batches of dense layers
# Issue 4 (layers, chain, nn): the Jacobians of a dense layer over a mini-batch.
# dZ/dvec_r(W) is a StackedKronecker (stores X); diag(g') applied to it keeps the
# diagonal beside the structure as a RowScaled.


@_rule("matmul", Diagonal, StackedKronecker, RowScaled)
def _diagonal_at_stacked_kronecker(a, b):
    """diag(d) [I_m (x) x^(k)T]_k = RowScaled(d, [I_m (x) x^(k)T]_k): the diagonal kept beside X"""
    return RowScaled(a.values, b, copy=False)


@_rule("matmul", Diagonal, RowScaled, RowScaled)
def _diagonal_at_row_scaled(a, b):
    """diag(d) (diag(s) J) = diag(d * s) J"""
    return RowScaled(a.values * b.scales, b.inner, copy=False)


# ===========================================================  block diagonals
# Per-sample Jacobians: diag(B_1, ..., B_N). A Kronecker product with a diagonal left
# factor, diag(a) (x) B = diag(a_1 B, ..., a_N B), and a RowScaled of such a product are
# block diagonal too; their products and sums with a BlockDiagonal stay block diagonal
# whenever the block boundaries fit (one block count divides the other).


def _without_fall(build):
    """``build()`` with every inner product kept structured, or NotImplemented.

    A rule that combines blocks through the table declines as a whole when one inner
    product would fall to Sparse: the caller's product then falls visibly, once.
    """
    with strict():
        try:
            return build()
        except StructureLostError:
            return NotImplemented


def _block_view(J: Jacobian):
    """``(N, blocks)`` with ``blocks`` of shape ``(N, p, q)`` or ``(1, p, q)`` (N equal
    blocks, broadcast) when ``J`` is block diagonal with dense blocks in its structure:
    a BlockDiagonal, ``diag(c) (x) W`` with ``W`` Dense, a RowScaled of either; else None."""
    if isinstance(J, BlockDiagonal):
        return J.n_blocks, J.blocks
    if isinstance(J, Kronecker) and isinstance(J.A, Diagonal) and isinstance(J.B, Dense):
        # Only a Dense right factor: its blocks are stored densely already, so the
        # blockwise products densify nothing (a structured B would be).
        N = J.A.shape[0]
        B = J.B.matrix[None]
        if isinstance(J.A, ScaledIdentity):
            return N, B * J.A.scalar if not isinstance(J.A, Identity) else B
        return N, J.A.values[:, None, None] * B
    if isinstance(J, RowScaled):
        inner = _block_view(J.inner)
        if inner is None:
            return None
        N, blocks = inner
        p = J.shape[0] // N if N else 0
        return N, J.scales.reshape(N, p, 1) * blocks
    return None


def _full(N: int, blocks: np.ndarray) -> np.ndarray:
    return np.broadcast_to(blocks, (N,) + blocks.shape[1:])


def _blockwise_product(a: Jacobian, b: Jacobian):
    """The product of two block-diagonal views whose boundaries fit, or NotImplemented."""
    va, vb = _block_view(a), _block_view(b)
    if va is None or vb is None:
        return NotImplemented
    (Na, A), (Nb, B) = va, vb
    (pa, qa), (pb, qb) = A.shape[1:], B.shape[1:]
    if Na == Nb:
        if qa != pb:
            return NotImplemented
        out = np.matmul(A, B)
        return BlockDiagonal(_full(Na, out), copy=out.shape[0] != Na)
    if Na and Nb and Na % Nb == 0:
        # each block of b spans t blocks of a: block k is [A_{kt+j} B_k[rows j]]_j stacked
        t = Na // Nb
        out = np.matmul(_full(Na, A).reshape(Nb, t, pa, qa), _full(Nb, B).reshape(Nb, t, qa, qb))
        return BlockDiagonal(out.reshape(Nb, t * pa, qb), copy=False)
    if Na and Nb and Nb % Na == 0:
        # each block of a spans t blocks of b: block k is [A_k[:, cols j] B_{kt+j}]_j side by side
        t = Nb // Na
        out = np.einsum(
            "kpjr,kjrs->kpjs",
            _full(Na, A).reshape(Na, pa, t, pb),
            _full(Nb, B).reshape(Na, t, pb, qb),
        )
        return BlockDiagonal(out.reshape(Na, pa, t * qb), copy=False)
    return NotImplemented


def _block_kronecker_at_diagonal(a: Kronecker, b: Diagonal):
    """(diag(c) (x) B) diag(d) = diag(c_k B diag(d_k)), or NotImplemented (A not diagonal)."""
    view = _block_view(a)
    if view is None:
        return NotImplemented
    N, blocks = view
    q = blocks.shape[2]
    return BlockDiagonal(blocks * b.values.reshape(N, 1, q), copy=False)


def _blockwise_sum(a: Jacobian, b: Jacobian):
    """The sum of two block-diagonal views with equal blocks, or NotImplemented."""
    va, vb = _block_view(a), _block_view(b)
    if va is None or vb is None:
        return NotImplemented
    (Na, A), (Nb, B) = va, vb
    if Na != Nb or A.shape[1:] != B.shape[1:]:
        return NotImplemented
    return BlockDiagonal(_full(Na, A + B), copy=True)


_FITS = "the block boundaries fit (one block count divides the other)"


@_rule("matmul", BlockDiagonal, BlockDiagonal, BlockDiagonal, condition=_FITS)
def _block_diagonal_at_block_diagonal(a, b):
    """diag(A_k) diag(B_k) = diag(A_k B_k)"""
    return _blockwise_product(a, b)


@_rule("matmul", Diagonal, BlockDiagonal, BlockDiagonal)
def _diagonal_at_block_diagonal(a, b):
    """diag(d) diag(B_k) = diag(diag(d_k) B_k): the rows of each block scaled"""
    N, p, _ = b.blocks.shape
    return BlockDiagonal(a.values.reshape(N, p, 1) * b.blocks, copy=False)


@_rule("matmul", BlockDiagonal, Diagonal, BlockDiagonal)
def _block_diagonal_at_diagonal(a, b):
    """diag(B_k) diag(d) = diag(B_k diag(d_k)): the columns of each block scaled"""
    N, _, q = a.blocks.shape
    return BlockDiagonal(a.blocks * b.values.reshape(N, 1, q), copy=False)


@_rule(
    "matmul",
    Kronecker,
    BlockDiagonal,
    BlockDiagonal,
    condition="the left factor is diagonal, the right one Dense, and " + _FITS,
)
def _kronecker_at_block_diagonal(a, b):
    """(diag(c) (x) A) diag(B_k) = diag(c_k A B_k)  (I_N (x) A is diag(A, ..., A))"""
    return _blockwise_product(a, b)


@_rule(
    "matmul",
    BlockDiagonal,
    Kronecker,
    (BlockDiagonal, Dense),
    condition="the left factor is diagonal, the right one Dense, and "
    + _FITS
    + "; a one-column left factor gives Dense",
)
def _block_diagonal_at_kronecker(a, b):
    """diag(B_k) (diag(c) (x) A) = diag(c_k B_k A);  diag(B_k) (c (x) A) = [c_k B_k A]_k stacked (no zero left: Dense)"""
    result = _blockwise_product(a, b)
    if (
        result is NotImplemented
        and b.A.shape == (a.n_blocks, 1)
        and a.block_shape[1] == b.B.shape[0]
    ):
        N, p, q = a.blocks.shape
        c = b.A.to_dense().reshape(N, 1, 1)
        stacked = (c * a.blocks).reshape(N * p, q)
        return Dense._wrap(b.B._rmatmat(stacked))
    return result


@_rule(
    "matmul",
    RowScaled,
    BlockDiagonal,
    BlockDiagonal,
    condition="the scaled structure is block diagonal and " + _FITS,
)
def _row_scaled_at_block_diagonal(a, b):
    """diag(d) diag(A_k) diag(B_k) = diag(diag(d_k) A_k B_k)"""
    return _blockwise_product(a, b)


def _blocks_at_row_scaled(a: Jacobian, b: RowScaled):
    """A diag(d) J: blockwise when J is block diagonal, else (A diag(d)) J through the table."""
    result = _blockwise_product(a, b)
    if result is not NotImplemented:
        return result
    va = _block_view(a)
    if va is None:
        return NotImplemented
    N, A = va
    q = A.shape[2]
    if N == 0 or b.shape[0] != N * q:
        return NotImplemented
    scaled = BlockDiagonal(_full(N, A) * b.scales.reshape(N, 1, q), copy=False)
    kept = _without_fall(lambda: matmul(scaled, b.inner))
    if kept is NotImplemented or not isinstance(kept, (BlockDiagonal, Dense)):
        return NotImplemented
    return kept


_THROUGH = "; otherwise (A diag(d)) J by the table when that is BlockDiagonal or Dense"


@_rule(
    "matmul",
    BlockDiagonal,
    RowScaled,
    (BlockDiagonal, Dense),
    condition="the scaled structure is block diagonal and " + _FITS + _THROUGH,
)
def _block_diagonal_at_row_scaled(a, b):
    """diag(B_k) diag(d) diag(A_k) = diag(B_k diag(d_k) A_k);  else diag(B_k diag(d_k)) J"""
    return _blocks_at_row_scaled(a, b)


@_rule(
    "matmul",
    Kronecker,
    RowScaled,
    (BlockDiagonal, Dense),
    condition="both are block diagonal (a diagonal left Kronecker factor) and " + _FITS + _THROUGH,
)
def _kronecker_at_row_scaled(a, b):
    """(I_N (x) W_2) diag(d) (I_N (x) W_1) = diag(W_2 diag(d_k) W_1): the per-sample Jacobians of a network"""
    return _blocks_at_row_scaled(a, b)


@_rule(
    "matmul",
    RowScaled,
    RowScaled,
    (BlockDiagonal, Dense),
    condition="both scaled structures are block diagonal and " + _FITS + _THROUGH,
)
def _row_scaled_at_row_scaled(a, b):
    """diag(d) diag(A_k) diag(e) diag(B_k) = diag(diag(d_k) A_k diag(e_k) B_k)"""
    return _blocks_at_row_scaled(a, b)


@_rule("matmul", BlockDiagonal, StackedKronecker, Dense, condition="N blocks of m columns")
def _block_diagonal_at_stacked_kronecker(a, b):
    """diag(B_k) [I_m (x) x^(k)T]_k = [B_k (x) x^(k)T]_k: every entry B_k[i, j] X[k, l] is a product, no zero left (Dense)"""
    N, p, q = a.blocks.shape
    if N != b.X.shape[0] or q != b.m:
        return NotImplemented
    out = np.einsum("kij,kl->kijl", a.blocks, b.X)
    return Dense._wrap(out.reshape(N * p, q * b.X.shape[1]))


@_rule(
    "matmul",
    RowScaled,
    Kronecker,
    (RowScaled, BlockDiagonal),
    condition="Kronecker factors that fit, else both block diagonal and " + _FITS,
)
def _row_scaled_at_kronecker(a, b):
    """diag(d) (A (x) B)(C (x) D) = diag(d) (AC (x) BD);  else diag(d) diag(A_k) diag(c_k D) = diag(c_k diag(d_k) A_k D)"""
    inner = a.inner
    if (
        isinstance(inner, Kronecker)
        and inner.A.shape[1] == b.A.shape[0]
        and inner.B.shape[1] == b.B.shape[0]
    ):
        kept = _without_fall(lambda: RowScaled(a.scales, matmul(inner, b), copy=False))
        if kept is not NotImplemented:
            return kept
    return _blockwise_product(a, b)


@_rule("matmul", BlockDiagonal, BlockRow, BlockRow)
def _block_diagonal_at_blockrow(a, b):
    """diag(B_k) sum_j e_{i_j} r_j^T = sum_j sum_a e_{k_j p + a} (B_{k_j})_{a c_j} r_j^T, k_j = i_j // q, c_j = i_j % q: p rows per index"""
    _, p, q = a.blocks.shape
    k, c = np.divmod(b.indices, q)
    rows_of = (k[:, None] * p + np.arange(p)).reshape(-1)  # (r*p,)
    weights = a.blocks[k, :, c].reshape(-1)  # B_{k_j}[:, c_j]
    indices, where = np.unique(rows_of, return_inverse=True)
    dtype = np.result_type(a.dtype, b.dtype)
    rows = np.zeros((indices.size, b.shape[1]), dtype=dtype)
    np.add.at(rows, where, weights[:, None] * np.repeat(b.rows, p, axis=0))
    return BlockRow(indices, rows, a.shape[0], copy=False)


@_rule("matmul", BlockColumn, BlockDiagonal, BlockColumn)
def _blockcolumn_at_block_diagonal(a, b):
    """(sum_j c_j e_{i_j}^T) diag(B_k) = (diag(B_k^T) sum_j e_{i_j} c_j^T)^T: q columns per index"""
    return matmul(b.T, a.T).T


# ---- sums ------------------------------------------------------------------------
@_rule("add", BlockDiagonal, BlockDiagonal, BlockDiagonal, condition="equal block shapes")
def _block_diagonal_plus_block_diagonal(a, b):
    """diag(A_k) + diag(B_k) = diag(A_k + B_k)"""
    return _blockwise_sum(a, b)


@_rule("add", BlockDiagonal, Diagonal, BlockDiagonal)
def _block_diagonal_plus_diagonal(a, b):
    """diag(B_k) + diag(d) = diag(B_k + diag(d_k)) (a square BlockDiagonal has square blocks)"""
    N, p, _ = a.blocks.shape
    blocks = np.array(a.blocks, dtype=np.result_type(a.dtype, b.dtype))
    i = np.arange(p)
    blocks[:, i, i] += np.asarray(b.values).reshape(N, p)
    return BlockDiagonal(blocks, copy=False)


@_rule("add", Diagonal, BlockDiagonal, BlockDiagonal)
def _diagonal_plus_block_diagonal(a, b):
    """diag(d) + diag(B_k) = diag(diag(d_k) + B_k)"""
    return _block_diagonal_plus_diagonal(b, a)


@_rule(
    "add",
    BlockDiagonal,
    Kronecker,
    BlockDiagonal,
    condition="the left factor is diagonal, the right one Dense, and the blocks are equal in shape",
)
def _block_diagonal_plus_kronecker(a, b):
    """diag(B_k) + diag(c) (x) A = diag(B_k + c_k A)"""
    return _blockwise_sum(a, b)


@_rule(
    "add",
    Kronecker,
    BlockDiagonal,
    BlockDiagonal,
    condition="the left factor is diagonal, the right one Dense, and the blocks are equal in shape",
)
def _kronecker_plus_block_diagonal(a, b):
    """diag(c) (x) A + diag(B_k) = diag(c_k A + B_k)"""
    return _blockwise_sum(a, b)


@_rule(
    "add",
    BlockDiagonal,
    RowScaled,
    BlockDiagonal,
    condition="the scaled structure is block diagonal with equal blocks",
)
def _block_diagonal_plus_row_scaled(a, b):
    """diag(B_k) + diag(d) diag(A_k) = diag(B_k + diag(d_k) A_k)"""
    return _blockwise_sum(a, b)


@_rule(
    "add",
    RowScaled,
    BlockDiagonal,
    BlockDiagonal,
    condition="the scaled structure is block diagonal with equal blocks",
)
def _row_scaled_plus_block_diagonal(a, b):
    """diag(d) diag(A_k) + diag(B_k) = diag(diag(d_k) A_k + B_k)"""
    return _blockwise_sum(a, b)


# ===========================================================  block matrices
# A grid of structures: products and sums go block by block through the table.


def _split_diagonal(D: Diagonal, sizes) -> list:
    offsets = BlockMatrix._offsets(sizes)
    return [Diagonal(D.values[offsets[j] : offsets[j + 1]]) for j in range(len(sizes))]


@_rule(
    "matmul",
    BlockMatrix,
    Jacobian,
    (BlockMatrix, Dense, Sparse),
    condition="one grid column, or J diagonal, dense or sparse",
)
def _block_matrix_at(a, b):
    """[A_i] J = [A_i J];  [A_ij] diag(d) = [A_ij diag(d_j)];  [A_ij] M = dense, block by block"""
    return _without_fall(lambda: _block_matrix_at_parts(a, b))


def _block_matrix_at_parts(a, b):
    if isinstance(b, Diagonal):
        parts = _split_diagonal(b, a.col_sizes)
        return BlockMatrix([[matmul(A, parts[j]) for j, A in enumerate(row)] for row in a.grid])
    if a.grid_shape[1] == 1:
        return BlockMatrix([[matmul(row[0], b)] for row in a.grid])
    if isinstance(b, Dense):
        return Dense._wrap(a._matmat(b.matrix))
    if isinstance(b, Sparse):
        return Sparse(sp.csr_array(a.to_sparse() @ b.csr), copy=False)
    return NotImplemented


@_rule(
    "matmul",
    Jacobian,
    BlockMatrix,
    (BlockMatrix, Dense, Sparse),
    condition="one grid row, or J diagonal, dense or sparse",
)
def _at_block_matrix(a, b):
    """J [B_j] = [J B_j];  diag(d) [B_ij] = [diag(d_i) B_ij];  M [B_ij] = dense, block by block"""
    return _without_fall(lambda: _at_block_matrix_parts(a, b))


def _at_block_matrix_parts(a, b):
    if isinstance(a, Diagonal):
        parts = _split_diagonal(a, b.row_sizes)
        return BlockMatrix([[matmul(parts[i], B) for B in row] for i, row in enumerate(b.grid)])
    if b.grid_shape[0] == 1:
        return BlockMatrix([[matmul(a, B) for B in b.grid[0]]])
    if isinstance(a, Dense):
        return Dense._wrap(b._rmatmat(a.matrix))
    if isinstance(a, Sparse):
        return Sparse(sp.csr_array(a.csr @ b.to_sparse()), copy=False)
    return NotImplemented


@_rule(
    "matmul",
    BlockMatrix,
    BlockMatrix,
    BlockMatrix,
    condition="the column partition of A is the row partition of B, or one grid column / row",
)
def _block_matrix_at_block_matrix(a, b):
    """[A_ij] [B_jk] = [sum_j A_ij B_jk]  (block product, when the partitions fit)"""
    return _without_fall(lambda: _block_matrix_at_block_matrix_parts(a, b))


def _block_matrix_at_block_matrix_parts(a, b):
    if a.col_sizes == b.row_sizes:
        grid = []
        for row in a.grid:
            out = []
            for k in range(b.grid_shape[1]):
                total = matmul(row[0], b.grid[0][k])
                for j in range(1, len(row)):
                    total = add(total, matmul(row[j], b.grid[j][k]))
                out.append(total)
            grid.append(out)
        return BlockMatrix(grid)
    if a.grid_shape[1] == 1:
        return BlockMatrix([[matmul(row[0], b)] for row in a.grid])
    if b.grid_shape[0] == 1:
        return BlockMatrix([[matmul(a, B) for B in b.grid[0]]])
    return NotImplemented


@_rule("add", BlockMatrix, BlockMatrix, BlockMatrix, condition="equal partitions")
def _block_matrix_plus_block_matrix(a, b):
    """[A_ij] + [B_ij] = [A_ij + B_ij]"""
    if a.row_sizes != b.row_sizes or a.col_sizes != b.col_sizes:
        return NotImplemented
    return _without_fall(
        lambda: BlockMatrix([[add(A, B) for A, B in zip(ra, rb)] for ra, rb in zip(a.grid, b.grid)])
    )
