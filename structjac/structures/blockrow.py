r"""Block rows: matrices with only a few nonzero rows.

The Jacobian of :math:`z = Wx + b` with respect to the weight row :math:`w_i` has one
nonzero row,

.. math:: \frac{\partial z}{\partial w_i} = e_i x^T,

and over a mini-batch :math:`\partial z / \partial x^{(k)} = e_k w^T`. Their transposes are
block columns, :math:`(e_i x^T)^T = x e_i^T`; both live in this module because each is
the other's transpose.
"""

from __future__ import annotations

from numpy.typing import ArrayLike

import numpy as np
import scipy.sparse as sp

from ._blocks import Blocks
from .base import Jacobian

__all__ = ["BlockRow", "BlockColumn"]


class BlockRow(Blocks):
    r"""An ``n_rows x n`` matrix whose only nonzero rows are ``index``.

    .. math:: B = \sum_{j} e_{i_j} r_j^T

    Parameters
    ----------
    index : int or array_like of int, shape (r,)
        The nonzero row (an int) or rows (distinct; negative counts from the end).
    row : array_like, shape (n,) or (r, n)
        The row for an int ``index``; a 2-D block, one row per index, otherwise.
    n_rows : int
        The number of rows of the matrix.
    copy : bool, default True
        Copy ``row``; ``copy=False`` hands a fresh array over (then read-only).

    Examples
    --------
    The Jacobian :math:`\partial z / \partial w_2` for a layer with three outputs:

    >>> import numpy as np, structjac as sj
    >>> x = np.array([1.0, 2.0])
    >>> dz_dw2 = sj.BlockRow(1, x, 3)
    >>> dz_dw2.to_dense()
    array([[0., 0.],
           [1., 2.],
           [0., 0.]])
    >>> dz_dw2.T
    BlockColumn(shape=(2, 3), dtype=float64, stored=16 B, dense=48 B)
    """

    __slots__ = ()
    _axis = "n_rows"

    def __init__(self, index: int, row: ArrayLike, n_rows: int, copy: bool = True) -> None:
        super().__init__(index, row, n_rows, copy)

    @property
    def nnz(self) -> int:
        return self._block.size

    @property
    def n_nonzero_rows(self) -> int:
        return self._indices.size

    @classmethod
    def _stored_estimate(cls, shape, nnz, left, right) -> float:
        return float(left.nzrows * shape[1])

    @staticmethod
    def _shape_of(block, length):
        return (length, block.shape[1])

    @property
    def row(self) -> np.ndarray:
        """ndarray: the nonzero row, shape (n,), or rows, shape (r, n); read-only."""
        return self._block[0] if self._scalar_index else self._block

    @property
    def rows(self) -> np.ndarray:
        """ndarray, shape (r, n): the nonzero rows (always 2-D), read-only."""
        return self._block

    def _to_dense(self) -> np.ndarray:
        out = np.zeros(self.shape, dtype=self.dtype)
        out[self._indices] = self._block
        return out

    def to_sparse(self) -> sp.csr_array:
        r, n = self._block.shape
        m = self.shape[0]
        counts = np.zeros(m, dtype=np.int64)
        counts[self._indices] = n
        indptr = np.concatenate(([0], np.cumsum(counts)))
        order = np.argsort(self._indices, kind="stable")
        data = np.array(self._block[order], dtype=self.dtype).reshape(-1)
        cols = np.tile(np.arange(n), r)
        return sp.csr_array((data, cols, indptr), shape=self.shape)

    def diagonal(self) -> np.ndarray:
        out = np.zeros(min(self.shape), dtype=self.dtype)
        keep = self._indices < min(self.shape)
        out[self._indices[keep]] = self._block[keep, self._indices[keep]]
        return out

    def inv(self) -> "Jacobian":
        """Raise why there is no inverse of this kind (LinAlgError or NotImplementedError)."""
        _no_inverse(self, "row")

    def _transpose(self):
        return BlockColumn._from_parts(
            self._indices, self._block, self.shape[0], self._scalar_index
        )

    def _matmat(self, X: np.ndarray) -> np.ndarray:
        out = np.zeros((self.shape[0], X.shape[1]), dtype=np.result_type(self.dtype, X.dtype))
        out[self._indices] = self._block @ X
        return out

    def _rmatmat(self, Y: np.ndarray) -> np.ndarray:
        return Y[:, self._indices] @ self._block


class BlockColumn(Blocks):
    r"""An ``m x n_cols`` matrix whose only nonzero columns are ``index``.

    .. math:: C = \sum_j c_j e_{i_j}^T

    Parameters
    ----------
    index : int or array_like of int, shape (r,)
        The nonzero column (an int) or columns (distinct).
    column : array_like, shape (m,) or (r, m)
        The column for an int ``index``; otherwise one column per index, given as the
        rows of an ``(r, m)`` array (the layout of ``BlockRow.rows``, so that
        ``BlockColumn(i, c, n).T`` is ``BlockRow(i, c, n)`` without a copy).
    n_cols : int
        The number of columns of the matrix.
    copy : bool, default True

    Examples
    --------
    >>> import numpy as np, structjac as sj
    >>> C = sj.BlockColumn(2, np.array([1.0, -1.0]), 3)
    >>> C.to_dense()
    array([[ 0.,  0.,  1.],
           [ 0.,  0., -1.]])
    >>> np.array([1.0, 1.0]) @ C
    array([0., 0., 0.])
    """

    __slots__ = ()
    _axis = "n_cols"

    def __init__(self, index: int, column: ArrayLike, n_cols: int, copy: bool = True) -> None:
        super().__init__(index, column, n_cols, copy)

    @property
    def nnz(self) -> int:
        return self._block.size

    @property
    def n_nonzero_cols(self) -> int:
        return self._indices.size

    @classmethod
    def _stored_estimate(cls, shape, nnz, left, right) -> float:
        return float(right.nzcols * shape[0])

    @staticmethod
    def _shape_of(block, length):
        return (block.shape[1], length)

    @property
    def columns(self) -> np.ndarray:
        """ndarray, shape (r, m): the nonzero columns, one per row, read-only."""
        return self._block

    def _to_dense(self) -> np.ndarray:
        out = np.zeros(self.shape, dtype=self.dtype)
        out[:, self._indices] = self._block.T
        return out

    def to_sparse(self) -> sp.csr_array:
        return self._transpose().to_sparse().T.tocsr()

    def diagonal(self) -> np.ndarray:
        return self._transpose().diagonal()

    def inv(self) -> "Jacobian":
        """Raise why there is no inverse of this kind (LinAlgError or NotImplementedError)."""
        _no_inverse(self, "column")

    def _transpose(self):
        return BlockRow._from_parts(self._indices, self._block, self.shape[1], self._scalar_index)

    def _matmat(self, X: np.ndarray) -> np.ndarray:
        return self._block.T @ X[self._indices]

    def _rmatmat(self, Y: np.ndarray) -> np.ndarray:
        out = np.zeros((Y.shape[0], self.shape[1]), dtype=np.result_type(self.dtype, Y.dtype))
        out[:, self._indices] = Y @ self._block.T
        return out


def _no_inverse(B, axis: str):
    """Raise the reason why the block row (``axis="row"``) or column ``B`` has no inverse.

    Not square: ``LinAlgError``.  Square with a zero row (column): singular,
    ``LinAlgError`` naming it.  Square with every row (column) stored: a general
    dense matrix, whose inverse is not a block row (column): ``NotImplementedError``
    that says how to invert it on purpose.
    """
    from numpy.linalg import LinAlgError

    name, (m, n) = type(B).__name__, B.shape
    if m != n:
        raise LinAlgError(f"{name} of shape {B.shape} is not square and has no inverse")
    stored = np.sort(B.indices)
    if stored.size < m:
        zero = int(np.setdiff1d(np.arange(m), stored)[0])
        shown = np.array2string(stored, threshold=8)
        raise LinAlgError(
            f"{name} of shape {B.shape} is singular: {axis} {zero} is zero "
            f"(it stores {axis}s {shown} only)"
        )
    raise NotImplementedError(
        f"{name} of shape {B.shape} stores all {m} of its {axis}s: it is a general "
        f"{m} x {n} matrix, whose inverse is not a {name}, so there is no closed-form "
        f"inverse; invert it on purpose with sj.Dense(J.to_dense()).inv()"
    )
