"""scipy.sparse Jacobians: what no tighter structure fits."""

from __future__ import annotations

from numpy.typing import ArrayLike, DTypeLike

import warnings

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from ._validation import as_float_dtype
from .base import Jacobian

__all__ = ["Sparse"]


class Sparse(Jacobian):
    r"""A sparse matrix, kept as a ``scipy.sparse.csr_array``.

    Parameters
    ----------
    S : scipy.sparse matrix or array (any format)
        Converted to CSR with duplicates summed and indices sorted; copied.

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp, structjac as sj
    >>> S = sj.Sparse(sp.eye_array(3, k=1, format="coo"))
    >>> S @ np.array([1.0, 2.0, 3.0])
    array([2., 3., 0.])
    >>> S.to_sparse().nnz
    2
    """

    __slots__ = ("_csr",)

    def __init__(self, S: sp.sparray | sp.spmatrix | ArrayLike, copy: bool = True) -> None:
        if not sp.issparse(S):
            raise TypeError(
                f"Sparse expects a scipy.sparse matrix or array, got {type(S).__name__}; "
                "use Dense for an ndarray"
            )
        dtype = as_float_dtype(S.dtype)
        csr = sp.csr_array(S, dtype=dtype, copy=copy)
        csr.sum_duplicates()
        csr.sort_indices()
        super().__init__(csr.shape, dtype)
        self._set(_csr=csr)

    @property
    def csr(self) -> sp.csr_array:
        """scipy.sparse.csr_array: the matrix (do not modify it; ``to_sparse`` gives a copy)."""
        return self._csr

    @property
    def nnz(self) -> int:
        return int(self._csr.nnz)

    @property
    def n_nonzero_rows(self) -> int:
        return int(np.count_nonzero(np.diff(self._csr.indptr)))

    @property
    def n_nonzero_cols(self) -> int:
        return int(np.unique(self._csr.indices).size)

    @classmethod
    def _stored_estimate(cls, shape, nnz, left, right) -> float:
        return 2.0 * nnz + shape[0]  # values and column indices, row pointers

    @property
    def nbytes(self) -> int:
        c = self._csr
        return c.data.nbytes + c.indices.nbytes + c.indptr.nbytes

    def _to_dense(self) -> np.ndarray:
        return self._csr.toarray()

    def to_sparse(self) -> sp.csr_array:
        return self._csr.copy()

    def diagonal(self) -> np.ndarray:
        return self._csr.diagonal()

    def inv(self) -> "Sparse":
        m, n = self.shape
        if m != n:
            raise np.linalg.LinAlgError(
                f"Sparse of shape {self.shape} is not square and has no inverse"
            )
        if m == 0:
            return Sparse(sp.csr_array((0, 0), dtype=self.dtype), copy=False)
        if m == 1:
            value = self._csr[0, 0] if self._csr.nnz else 0
            if value == 0:
                raise np.linalg.LinAlgError("Sparse 1 x 1 matrix is singular: entry (0, 0) is zero")
            inverse = np.ones((1, 1), dtype=self.dtype) / np.asarray(value, dtype=self.dtype)
            return Sparse(sp.csr_array(inverse), copy=False)
        with warnings.catch_warnings():
            warnings.simplefilter("error", spla.MatrixRankWarning)
            try:
                inverse = spla.inv(sp.csc_array(self._csr))
            except (RuntimeError, spla.MatrixRankWarning) as err:
                raise np.linalg.LinAlgError(f"Sparse matrix is singular: {err}") from None
        return Sparse(sp.csr_array(inverse, dtype=self.dtype), copy=False)

    def astype(self, dtype: DTypeLike) -> "Sparse":
        if np.dtype(dtype) == self.dtype:
            return self
        return Sparse(self._csr.astype(dtype), copy=False)

    def _transpose(self) -> "Sparse":
        return Sparse(self._csr.T.tocsr(), copy=False)

    def _scale(self, c) -> "Sparse":
        return Sparse(self._csr * c, copy=False)

    def _matmat(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self._csr @ X)

    def _rmatmat(self, Y: np.ndarray) -> np.ndarray:
        return np.asarray((self._csr.T @ Y.T).T)
