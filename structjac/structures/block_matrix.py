r"""Block matrices of structures: the Jacobian with respect to several inputs at once.

The Jacobian of a residual :math:`r(\theta_1, \ldots, \theta_k)` with respect to all its
parameters is the row of the Jacobians with respect to each,

.. math::

    \frac{\partial r}{\partial (\theta_1, \ldots, \theta_k)}
    = \begin{pmatrix} J_1 & J_2 & \cdots & J_k \end{pmatrix},
    \qquad J_j = \frac{\partial r}{\partial \theta_j},

and a function with several outputs stacks its Jacobians as a column. A
:class:`BlockMatrix` keeps every block in its own structure and applies block by block,

.. math::

    (J v)_i = \sum_j J_{ij} v_j, \qquad (u^T J)_j = \sum_i u_i^T J_{ij},

so that ``scipy.optimize.least_squares`` (through :meth:`~structjac.Jacobian.aslinearoperator`
or :meth:`BlockMatrix.to_sparse`) solves for all parameters without a hand-written operator.
"""

from __future__ import annotations

from collections.abc import Sequence

from numpy.typing import DTypeLike

import numpy as np
import scipy.sparse as sp

from ._wrap import as_jacobian
from .base import Jacobian
from .zero import Zero

__all__ = ["BlockMatrix", "hstack", "vstack", "block"]


def _as_block(obj, where: str) -> Jacobian | None:
    if obj is None or isinstance(obj, Jacobian):
        return obj
    try:
        return as_jacobian(obj)
    except ValueError as exc:
        raise ValueError(f"BlockMatrix: block {where} cannot be a block: {exc}") from None


class BlockMatrix(Jacobian):
    r"""A grid of structures :math:`\begin{pmatrix} J_{11} & \cdots & J_{1c} \\ \vdots & & \vdots \\ J_{r1} & \cdots & J_{rc}\end{pmatrix}`.

    Every block of grid row :math:`i` has the same number of rows :math:`m_i`, every block
    of grid column :math:`j` the same number of columns :math:`n_j`; the matrix is
    :math:`\sum_i m_i \times \sum_j n_j`. Products and sums with other structures go through
    the rule table block by block; applied to vectors it never builds the matrix.

    Parameters
    ----------
    blocks : sequence of sequences of Jacobian, ndarray, sparse matrix or None
        The grid, row by row, all rows of equal length. 2-D arrays and scipy sparse
        matrices are wrapped (:func:`structjac.as_jacobian`); ``None`` is a
        :class:`~structjac.Zero` block whose size the other blocks of its grid row and
        column give.

    Raises
    ------
    ValueError
        When the grid is empty or ragged, or when a block's shape does not fit its grid row
        or column (the message names the block and both shapes).

    See Also
    --------
    hstack, vstack, block

    Examples
    --------
    >>> import numpy as np, structjac as sj
    >>> J = sj.hstack([sj.Dense(np.ones((3, 2))), sj.Identity(3)])
    >>> J
    BlockMatrix(shape=(3, 5), dtype=float64, stored=48 B, dense=120 B)
    >>> J @ np.arange(5.0)
    array([3., 4., 5.])
    >>> J.to_sparse().nnz
    9
    """

    __slots__ = ("_grid", "_row_sizes", "_col_sizes")

    def __init__(self, blocks: Sequence[Sequence[Jacobian | None]]) -> None:
        if isinstance(blocks, (Jacobian, np.ndarray)) or sp.issparse(blocks):
            raise TypeError(
                "BlockMatrix expects a grid (a list of lists) of blocks, "
                f"got {type(blocks).__name__}"
            )
        rows = [list(row) if isinstance(row, (list, tuple)) else row for row in blocks]
        if not rows:
            raise ValueError("BlockMatrix: the grid has no rows")
        for i, row in enumerate(rows):
            if not isinstance(row, list):
                raise TypeError(
                    f"BlockMatrix: grid row {i} must be a list of blocks, got {type(row).__name__}"
                )
        n_cols = len(rows[0])
        if n_cols == 0:
            raise ValueError("BlockMatrix: the grid has no columns")
        for i, row in enumerate(rows):
            if len(row) != n_cols:
                raise ValueError(
                    f"BlockMatrix: ragged grid: row 0 has {n_cols} blocks, row {i} has {len(row)}"
                )
        grid = [
            [_as_block(b, f"({i}, {j})") for j, b in enumerate(row)] for i, row in enumerate(rows)
        ]
        row_sizes = [None] * len(grid)
        col_sizes = [None] * n_cols
        for i, row in enumerate(grid):
            for j, b in enumerate(row):
                if b is None:
                    continue
                m, n = b.shape
                if row_sizes[i] is None:
                    row_sizes[i] = (m, j)
                elif row_sizes[i][0] != m:
                    raise ValueError(
                        f"BlockMatrix: block ({i}, {j}) of shape {b.shape} does not fit grid row {i}: "
                        f"block ({i}, {row_sizes[i][1]}) has {row_sizes[i][0]} rows, this one {m}"
                    )
                if col_sizes[j] is None:
                    col_sizes[j] = (n, i)
                elif col_sizes[j][0] != n:
                    raise ValueError(
                        f"BlockMatrix: block ({i}, {j}) of shape {b.shape} does not fit grid column {j}: "
                        f"block ({col_sizes[j][1]}, {j}) has {col_sizes[j][0]} columns, this one {n}"
                    )
        for i, size in enumerate(row_sizes):
            if size is None:
                raise ValueError(
                    f"BlockMatrix: grid row {i} has only None blocks; its height is unknown"
                )
        for j, size in enumerate(col_sizes):
            if size is None:
                raise ValueError(
                    f"BlockMatrix: grid column {j} has only None blocks; its width is unknown"
                )
        row_sizes = tuple(s for s, _ in row_sizes)
        col_sizes = tuple(s for s, _ in col_sizes)
        present = [b for row in grid for b in row if b is not None]
        dtype = np.result_type(*[b.dtype for b in present])
        grid = tuple(
            tuple(
                Zero((row_sizes[i], col_sizes[j]), dtype=dtype) if b is None else b.astype(dtype)
                for j, b in enumerate(row)
            )
            for i, row in enumerate(grid)
        )
        super().__init__((sum(row_sizes), sum(col_sizes)), dtype)
        self._set(_grid=grid, _row_sizes=row_sizes, _col_sizes=col_sizes)

    def __reduce__(self):
        # Pickles whenever its blocks do (the grid of blocks rebuilds it).
        return (BlockMatrix, ([list(row) for row in self._grid],))

    # ------------------------------------------------------------------ metadata
    @property
    def grid(self) -> tuple[tuple[Jacobian, ...], ...]:
        """tuple of tuples of Jacobian: the blocks, row by row (``None`` became Zero)."""
        return self._grid

    @property
    def grid_shape(self) -> tuple[int, int]:
        """tuple of int: the number of grid rows and grid columns."""
        return len(self._row_sizes), len(self._col_sizes)

    @property
    def row_sizes(self) -> tuple[int, ...]:
        """tuple of int: the rows of each grid row (the row partition)."""
        return self._row_sizes

    @property
    def col_sizes(self) -> tuple[int, ...]:
        """tuple of int: the columns of each grid column (the column partition)."""
        return self._col_sizes

    def __getitem__(self, index) -> Jacobian:
        """``J[i, j]``: the block in grid row ``i``, grid column ``j``."""
        i, j = index
        return self._grid[i][j]

    @property
    def nnz(self) -> int:
        return sum(b.nnz for row in self._grid for b in row)

    @property
    def nbytes(self) -> int:
        return sum(b.nbytes for row in self._grid for b in row)

    def _blocks(self):
        for i, row in enumerate(self._grid):
            for j, b in enumerate(row):
                yield i, j, b

    @staticmethod
    def _offsets(sizes):
        return np.concatenate(([0], np.cumsum(sizes, dtype=np.int64))).tolist()

    # ------------------------------------------------------------- conversions
    def _to_dense(self) -> np.ndarray:
        out = np.zeros(self.shape, dtype=self.dtype)
        r, c = self._offsets(self._row_sizes), self._offsets(self._col_sizes)
        for i, j, b in self._blocks():
            if not isinstance(b, Zero):
                out[r[i] : r[i + 1], c[j] : c[j + 1]] = b.to_dense()
        return out

    def to_sparse(self) -> sp.csr_array:
        grid = [[b.to_sparse() for b in row] for row in self._grid]
        return sp.csr_array(sp.block_array(grid, format="csr", dtype=self.dtype))

    def diagonal(self) -> np.ndarray:
        out = np.zeros(min(self.shape), dtype=self.dtype)
        r, c = self._offsets(self._row_sizes), self._offsets(self._col_sizes)
        for i, j, b in self._blocks():
            lo, hi = max(r[i], c[j]), min(r[i + 1], c[j + 1])
            if lo < hi and not isinstance(b, Zero):
                out[lo:hi] = b.to_sparse().diagonal(k=r[i] - c[j])[: hi - lo]
        return out

    def astype(self, dtype: DTypeLike) -> "BlockMatrix":
        if np.dtype(dtype) == self.dtype:
            return self
        return BlockMatrix([[b.astype(dtype) for b in row] for row in self._grid])

    def _transpose(self) -> "BlockMatrix":
        return BlockMatrix([[row[j].T for row in self._grid] for j in range(len(self._col_sizes))])

    def _scale(self, c) -> "BlockMatrix":
        return BlockMatrix([[b._scale(c) for b in row] for row in self._grid])

    # ------------------------------------------------------------- application
    def _matmat(self, X: np.ndarray) -> np.ndarray:
        dtype = np.result_type(self.dtype, X.dtype)
        out = np.zeros((self.shape[0], X.shape[1]), dtype=dtype)
        r, c = self._offsets(self._row_sizes), self._offsets(self._col_sizes)
        for i, j, b in self._blocks():
            if not isinstance(b, Zero):
                out[r[i] : r[i + 1]] += b._matmat(X[c[j] : c[j + 1]])
        return out

    def _rmatmat(self, Y: np.ndarray) -> np.ndarray:
        dtype = np.result_type(self.dtype, Y.dtype)
        out = np.zeros((Y.shape[0], self.shape[1]), dtype=dtype)
        r, c = self._offsets(self._row_sizes), self._offsets(self._col_sizes)
        for i, j, b in self._blocks():
            if not isinstance(b, Zero):
                out[:, c[j] : c[j + 1]] += b._rmatmat(Y[:, r[i] : r[i + 1]])
        return out


def _sequence(blocks, name: str) -> list:
    if isinstance(blocks, (Jacobian, np.ndarray)) or sp.issparse(blocks):
        raise TypeError(f"{name} expects a sequence of Jacobians, got one {type(blocks).__name__}")
    blocks = list(blocks)
    if not blocks:
        raise ValueError(f"{name} needs at least one Jacobian, got an empty sequence")
    return blocks


def hstack(blocks: Sequence[Jacobian]) -> BlockMatrix:
    r"""Put Jacobians side by side: :math:`\begin{pmatrix} J_1 & \cdots & J_k \end{pmatrix}`.

    The Jacobian of one output with respect to several inputs, e.g. a residual with
    respect to all the parameters of a network, ``hstack([J_W1, J_b1, J_W2, J_b2])``.

    Parameters
    ----------
    blocks : sequence of Jacobian (or 2-D arrays, sparse matrices)
        All with the same number of rows.

    Returns
    -------
    BlockMatrix
        One grid row.

    Raises
    ------
    ValueError
        When the number of rows differs (naming the block and both shapes).

    Examples
    --------
    >>> import numpy as np, structjac as sj
    >>> x = np.array([1.0, 2.0])
    >>> dz_dW = sj.Kronecker(sj.Identity(3), sj.Dense(x[None, :]))   # z = W x + b
    >>> J = sj.hstack([dz_dW, sj.Identity(3)])                       # d z / d (W, b)
    >>> J.shape, J.grid_shape
    ((3, 9), (1, 2))
    """
    return BlockMatrix([_sequence(blocks, "hstack")])


def vstack(blocks: Sequence[Jacobian]) -> BlockMatrix:
    r"""Stack Jacobians: :math:`\begin{pmatrix} J_1 \\ \vdots \\ J_k \end{pmatrix}`.

    The Jacobian of several outputs with respect to one input.

    Parameters
    ----------
    blocks : sequence of Jacobian (or 2-D arrays, sparse matrices)
        All with the same number of columns.

    Returns
    -------
    BlockMatrix
        One grid column.

    Examples
    --------
    >>> import numpy as np, structjac as sj
    >>> J = sj.vstack([sj.Diagonal(np.array([1.0, 2.0])), sj.Dense(np.ones((1, 2)))])
    >>> J.to_dense()
    array([[1., 0.],
           [0., 2.],
           [1., 1.]])
    """
    return BlockMatrix([[b] for b in _sequence(blocks, "vstack")])


def block(grid: Sequence[Sequence[Jacobian | None]]) -> BlockMatrix:
    r"""A block matrix from a grid of Jacobians, as :func:`numpy.block` does for arrays.

    Parameters
    ----------
    grid : sequence of sequences of Jacobian, 2-D array, sparse matrix or None
        ``None`` is a zero block.

    Returns
    -------
    BlockMatrix

    Examples
    --------
    >>> import numpy as np, structjac as sj
    >>> J = sj.block([[sj.Identity(2), None], [sj.Dense(np.ones((1, 2))), sj.Identity(1)]])
    >>> J.to_dense()
    array([[1., 0., 0.],
           [0., 1., 0.],
           [1., 1., 1.]])
    """
    return BlockMatrix(grid)
