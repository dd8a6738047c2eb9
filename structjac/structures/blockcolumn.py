r"""Block columns: the transpose of a :class:`BlockRow`, a few nonzero columns.

:math:`(e_i x^T)^T = x e_i^T`: the transpose of a block row keeps its structure.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ._blocks import Blocks

__all__ = ["BlockColumn"]


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

    def __init__(self, index, column, n_cols, copy: bool = True):
        super().__init__(index, column, n_cols, copy)

    @staticmethod
    def _shape_of(block, length):
        return (block.shape[1], length)

    @property
    def columns(self) -> np.ndarray:
        """ndarray, shape (r, m): the nonzero columns, one per row, read-only."""
        return self._block

    def to_dense(self) -> np.ndarray:
        out = np.zeros(self.shape, dtype=self.dtype)
        out[:, self._indices] = self._block.T
        return out

    def to_sparse(self) -> sp.csr_array:
        return self._transpose().to_sparse().T.tocsr()

    def diagonal(self) -> np.ndarray:
        return self._transpose().diagonal()

    def inv(self):
        return self._transpose().inv()

    def _transpose(self):
        from .blockrow import BlockRow

        return BlockRow._from_parts(self._indices, self._block, self.shape[1], self._scalar_index)

    def _matmat(self, X: np.ndarray) -> np.ndarray:
        return self._block.T @ X[self._indices]

    def _rmatmat(self, Y: np.ndarray) -> np.ndarray:
        out = np.zeros((Y.shape[0], self.shape[1]), dtype=np.result_type(self.dtype, Y.dtype))
        out[:, self._indices] = Y @ self._block.T
        return out
