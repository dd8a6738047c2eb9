r"""Block-diagonal Jacobians: one block per sample.

A map applied row by row to a batch :math:`X \in \mathbb{F}^{N \times q}`,
:math:`Y_{k,:} = f(X_{k,:})`, has, with the batch flattened row-major (sample-major),
the Jacobian

.. math::

    \frac{\partial \operatorname{vec}_r(Y)}{\partial \operatorname{vec}_r(X)}
    = \operatorname{diag}(B_1, \ldots, B_N)
    = \begin{pmatrix} B_1 & & \\ & \ddots & \\ & & B_N \end{pmatrix},
    \qquad B_k = \frac{\partial f}{\partial x}\Big|_{X_{k,:}} \in \mathbb{F}^{p \times q},

:math:`Npq` numbers instead of :math:`Np \cdot Nq`: the row-wise softmax (blocks
:math:`\operatorname{diag}(s_k) - s_k s_k^T`), and the batch Jacobian of a network,
whose block :math:`k` is the per-sample Jacobian :math:`W_2 \operatorname{diag}(d_k) W_1`.
"""

from __future__ import annotations

from numpy.typing import ArrayLike, DTypeLike

import numpy as np
import scipy.sparse as sp

from ._validation import frozen_array
from .base import Jacobian

__all__ = ["BlockDiagonal"]


class BlockDiagonal(Jacobian):
    r"""The block-diagonal matrix :math:`\operatorname{diag}(B_1, \ldots, B_N)`.

    With blocks :math:`B_k \in \mathbb{F}^{p \times q}` the matrix is
    :math:`Np \times Nq`; row :math:`kp + i` and column :math:`kq + j` hold
    :math:`(B_k)_{ij}`, every other entry is zero. It is applied block by block, by one
    batched matrix product,

    .. math::

        \left(\operatorname{diag}(B_1, \ldots, B_N)\, x\right)_k = B_k x_k, \qquad
        \left(u^T \operatorname{diag}(B_1, \ldots, B_N)\right)_k = u_k^T B_k,

    where :math:`x_k` (:math:`u_k`) is the :math:`k`-th slice of length :math:`q`
    (:math:`p`), and it is inverted block by block,
    :math:`\operatorname{diag}(B_k)^{-1} = \operatorname{diag}(B_k^{-1})`.

    Parameters
    ----------
    blocks : array_like, shape (N, p, q)
        The blocks, ``blocks[k]`` is :math:`B_k`. Integer and boolean input becomes
        float64. ``N = 0`` gives the empty ``0 x 0`` matrix.
    copy : bool, default True
        Copy ``blocks`` (the default); ``copy=False`` hands a freshly made array over
        without a copy (it is then marked read-only).

    See Also
    --------
    Diagonal : the case :math:`p = q = 1`.
    Kronecker : :math:`I_N \otimes A`, ``N`` equal blocks stored once.

    Examples
    --------
    The Jacobian of a row-wise softmax over a batch of two rows of three:

    >>> import numpy as np, structjac as sj
    >>> S = np.array([[0.2, 0.3, 0.5], [0.1, 0.1, 0.8]])
    >>> blocks = np.einsum("ki,ij->kij", S, np.eye(3)) - S[:, :, None] * S[:, None, :]
    >>> J = sj.BlockDiagonal(blocks)
    >>> J
    BlockDiagonal(shape=(6, 6), dtype=float64, stored=144 B, dense=288 B)
    >>> J.n_blocks, J.block_shape
    (2, (3, 3))
    >>> bool(np.allclose(J @ np.ones(6), 0.0))   # each block's rows sum to zero
    True
    >>> J.to_sparse().nnz
    18
    """

    __slots__ = ("_blocks",)

    def __init__(self, blocks: ArrayLike, copy: bool = True) -> None:
        if isinstance(blocks, Jacobian) or sp.issparse(blocks):
            raise TypeError(
                f"BlockDiagonal expects an array of blocks of shape (N, p, q), "
                f"got {type(blocks).__name__}"
            )
        blocks = frozen_array(
            blocks, ndim=3, name="the blocks (N, p, q)", owner="BlockDiagonal", copy=copy
        )
        N, p, q = blocks.shape
        super().__init__((N * p, N * q), blocks.dtype)
        self._set(_blocks=blocks)

    @classmethod
    def _wrap(cls, blocks: np.ndarray) -> "BlockDiagonal":
        """Build from a fresh 3-D float array the caller owns (no copy; marked read-only)."""
        return cls(blocks, copy=False)

    def __reduce__(self):
        return (BlockDiagonal, (np.array(self._blocks),))

    # ------------------------------------------------------------------ metadata
    @property
    def blocks(self) -> np.ndarray:
        """ndarray, shape (N, p, q): the blocks, read-only (no copy)."""
        return self._blocks

    @property
    def n_blocks(self) -> int:
        """int: the number of blocks :math:`N`."""
        return self._blocks.shape[0]

    @property
    def block_shape(self) -> tuple[int, int]:
        """tuple of int: ``(p, q)``, the shape of every block."""
        return self._blocks.shape[1:]

    @property
    def nbytes(self) -> int:
        return self._blocks.nbytes

    @property
    def nnz(self) -> int:
        """int: the structural nonzeros, :math:`Npq`."""
        return self._blocks.size

    # ------------------------------------------------------------- conversions
    def _to_dense(self) -> np.ndarray:
        N, p, q = self._blocks.shape
        out = np.zeros((N, p, N, q), dtype=self.dtype)
        k = np.arange(N)
        out[k, :, k, :] = self._blocks
        return out.reshape(N * p, N * q)

    def to_sparse(self) -> sp.csr_array:
        N, p, q = self._blocks.shape
        data = np.array(self._blocks, dtype=self.dtype).reshape(-1)
        cols = np.arange(N, dtype=np.int64)[:, None, None] * q + np.arange(q, dtype=np.int64)
        cols = np.broadcast_to(cols, (N, p, q)).reshape(-1)
        indptr = np.arange(N * p + 1, dtype=np.int64) * q
        return sp.csr_array((data, cols, indptr), shape=self.shape)

    def diagonal(self) -> np.ndarray:
        _, p, q = self._blocks.shape
        if p == q:
            return (
                np.diagonal(self._blocks, axis1=1, axis2=2)
                .reshape(-1)
                .astype(self.dtype, copy=True)
            )
        i = np.arange(min(self.shape))
        row_block, col_block = i // p, i // q
        out = np.zeros(i.size, dtype=self.dtype)
        on = row_block == col_block
        k = row_block[on]
        out[on] = self._blocks[k, i[on] - k * p, i[on] - k * q]
        return out

    def inv(self) -> "BlockDiagonal":
        r""":math:`\operatorname{diag}(B_1, \ldots, B_N)^{-1} = \operatorname{diag}(B_1^{-1}, \ldots, B_N^{-1})`.

        Raises
        ------
        numpy.linalg.LinAlgError
            When the blocks are not square, or a block is singular (naming the first).
        """
        N, p, q = self._blocks.shape
        if N == 0:
            return self._transpose()  # the empty 0 x 0 matrix is its own inverse
        if p != q:
            raise np.linalg.LinAlgError(
                f"BlockDiagonal with blocks of shape {(p, q)} is not square and has no inverse"
            )
        try:
            inverse = np.linalg.inv(self._blocks)
        except np.linalg.LinAlgError:
            for k in range(N):
                try:
                    np.linalg.inv(self._blocks[k])
                except np.linalg.LinAlgError:
                    raise np.linalg.LinAlgError(
                        f"BlockDiagonal is singular: block {k} (of {N}) is singular"
                    ) from None
            raise
        return BlockDiagonal(inverse.astype(self.dtype, copy=False), copy=False)

    def astype(self, dtype: DTypeLike) -> "BlockDiagonal":
        if np.dtype(dtype) == self.dtype:
            return self
        return BlockDiagonal(self._blocks.astype(dtype), copy=False)

    def _transpose(self) -> "BlockDiagonal":
        return BlockDiagonal(self._blocks.transpose(0, 2, 1), copy=True)

    def _scale(self, c) -> "BlockDiagonal":
        return BlockDiagonal(self._blocks * c, copy=False)

    # ------------------------------------------------------------- application
    def _matmat(self, X: np.ndarray) -> np.ndarray:
        N, p, q = self._blocks.shape
        k = X.shape[1]
        return np.matmul(self._blocks, X.reshape(N, q, k)).reshape(N * p, k)

    def _rmatmat(self, Y: np.ndarray) -> np.ndarray:
        N, p, q = self._blocks.shape
        k = Y.shape[0]
        if k == 1:
            return np.matmul(Y.reshape(N, 1, p), self._blocks).reshape(1, N * q)
        T = np.matmul(Y.reshape(k, N, p).transpose(1, 0, 2), self._blocks)  # (N, k, q)
        return T.transpose(1, 0, 2).reshape(k, N * q)
