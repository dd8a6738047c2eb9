r"""Dense Jacobians: the last resort, and what :math:`\partial z/\partial x = W` is."""

from __future__ import annotations

from numpy.typing import ArrayLike, DTypeLike

import numpy as np
import scipy.sparse as sp

from ._validation import frozen_array
from .base import Jacobian

__all__ = ["Dense"]

#: The dtypes structures compute in (structjac._dtypes): arrays of them need no cast.
_COMPUTING = frozenset((np.float32, np.float64, np.complex64, np.complex128))


class Dense(Jacobian):
    r"""A general matrix :math:`M \in \mathbb{F}^{m \times n}`, all ``m * n`` numbers.

    Parameters
    ----------
    M : array_like, shape (m, n)
        The matrix; copied (``copy=True``) and kept read-only.
    copy : bool, default True

    Examples
    --------
    The Jacobian of :math:`z = Wx + b` with respect to :math:`x` is :math:`W`:

    >>> import numpy as np, structjac as sj
    >>> W = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    >>> dz_dx = sj.Dense(W)
    >>> g = sj.Diagonal(np.array([1.0, 0.5, 0.0]))   # diag(g'(z))
    >>> (g @ dz_dx).to_dense()                         # rows of W scaled by g'
    array([[1. , 2. ],
           [1.5, 2. ],
           [0. , 0. ]])
    """

    __slots__ = ("_matrix",)
    _dense_is_stored = True

    def __init__(self, M: ArrayLike, copy: bool = True) -> None:
        if sp.issparse(M):
            raise TypeError("Dense expects an ndarray; wrap a scipy.sparse matrix in Sparse")
        matrix = frozen_array(M, ndim=2, name="the matrix M", owner="Dense", copy=copy)
        super().__init__(matrix.shape, matrix.dtype)
        self._set(_matrix=matrix)

    @classmethod
    def _wrap(cls, matrix: np.ndarray) -> "Dense":
        """Build from a fresh 2-D array the caller owns (a product it has just formed).

        For the rule table's hot path: no validation and no copy when ``matrix`` is
        C-contiguous with a computing dtype (the array is then marked read-only); any
        other array goes through the checked constructor.
        """
        if (
            type(matrix) is not np.ndarray
            or matrix.ndim != 2
            or not matrix.flags.c_contiguous
            or matrix.dtype.type not in _COMPUTING
        ):
            return Dense(matrix, copy=False)
        if matrix.base is not None:  # a view: freeze the view, never the array it shows
            matrix = matrix.view()
        matrix.flags.writeable = False
        self = object.__new__(Dense)
        _setattr = object.__setattr__
        _setattr(self, "_shape", matrix.shape)
        _setattr(self, "_dtype", matrix.dtype)
        _setattr(self, "_matrix", matrix)
        return self

    @property
    def matrix(self) -> np.ndarray:
        """ndarray, shape (m, n): the matrix, read-only (no copy)."""
        return self._matrix

    @classmethod
    def _stored_estimate(cls, shape, nnz, left, right) -> float:
        return float(shape[0] * shape[1])

    @property
    def nbytes(self) -> int:
        return self._matrix.nbytes

    def _to_dense(self) -> np.ndarray:
        return np.array(self._matrix)

    def to_sparse(self) -> sp.csr_array:
        return sp.csr_array(self._matrix)

    def diagonal(self) -> np.ndarray:
        return np.array(np.diagonal(self._matrix))

    def inv(self) -> "Dense":
        m, n = self.shape
        if m != n:
            raise np.linalg.LinAlgError(
                f"Dense of shape {self.shape} is not square and has no inverse"
            )
        return Dense(np.linalg.inv(self._matrix), copy=False)

    def astype(self, dtype: DTypeLike) -> "Dense":
        if np.dtype(dtype) == self.dtype:
            return self
        return Dense(self._matrix.astype(dtype), copy=False)

    def _transpose(self) -> "Dense":
        return Dense(self._matrix.T, copy=False)

    def _scale(self, c) -> "Dense":
        return Dense(self._matrix * c, copy=False)

    def _matmat(self, X: np.ndarray) -> np.ndarray:
        return self._matrix @ X

    def _rmatmat(self, Y: np.ndarray) -> np.ndarray:
        return Y @ self._matrix
