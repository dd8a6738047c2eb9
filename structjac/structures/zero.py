"""The zero matrix: the off-diagonal blocks of a Jacobian, nothing stored."""

from __future__ import annotations

from numpy.typing import DTypeLike

import numpy as np
import scipy.sparse as sp

from ._validation import check_size
from .base import Jacobian

__all__ = ["Zero"]


class Zero(Jacobian):
    r"""The zero matrix :math:`0 \in \mathbb{F}^{m \times n}`.

    :math:`0 J = 0`, :math:`J 0 = 0`, :math:`0 + J = J`.

    Parameters
    ----------
    shape : int or tuple of int
        ``(m, n)``, or ``n`` for a square ``n x n`` zero.
    dtype : dtype, default float64

    Examples
    --------
    >>> import numpy as np, structjac as sj
    >>> Z = sj.Zero((2, 3))
    >>> Z @ np.ones(3)
    array([0., 0.])
    >>> Z.to_sparse().nnz
    0
    """

    __slots__ = ()

    def __init__(self, shape: tuple[int, int], dtype: DTypeLike = np.float64) -> None:
        if np.ndim(shape) == 0:
            shape = (shape, shape)
        if len(shape) != 2:
            raise ValueError(f"Zero expects a shape (m, n), got {shape!r}")
        m = check_size(shape[0], "m", "Zero")
        n = check_size(shape[1], "n", "Zero")
        super().__init__((m, n), dtype)

    @classmethod
    def _wrap(cls, m: int, n: int, dtype: np.dtype) -> "Zero":
        """Build the ``m x n`` zero from sizes and a computing dtype already checked.

        For the rule table's hot path (the sizes come from operands, the dtype from
        :func:`structjac._dtypes.result_dtype`); the public constructor is the checked way.
        """
        self = object.__new__(Zero)
        object.__setattr__(self, "_shape", (m, n))
        object.__setattr__(self, "_dtype", dtype)
        return self

    @property
    def nnz(self) -> int:
        return 0

    @property
    def n_nonzero_rows(self) -> int:
        return 0

    @property
    def n_nonzero_cols(self) -> int:
        return 0

    @classmethod
    def _stored_estimate(cls, shape, nnz, left, right) -> float:
        return 0.0

    @property
    def nbytes(self) -> int:
        return 0

    def _to_dense(self) -> np.ndarray:
        return np.zeros(self.shape, dtype=self.dtype)

    def to_sparse(self) -> sp.csr_array:
        return sp.csr_array(self.shape, dtype=self.dtype)

    def diagonal(self) -> np.ndarray:
        return np.zeros(min(self.shape), dtype=self.dtype)

    def inv(self) -> "Zero":
        from numpy.linalg import LinAlgError

        raise LinAlgError(f"Zero of shape {self.shape} is singular: diagonal entry 0 is zero")

    def astype(self, dtype: DTypeLike) -> "Zero":
        if np.dtype(dtype) == self.dtype:
            return self
        return Zero(self.shape, dtype=dtype)

    def _transpose(self) -> "Zero":
        return Zero(self.shape[::-1], dtype=self.dtype)

    def _scale(self, c) -> "Zero":
        return Zero(self.shape, dtype=np.result_type(self.dtype, c))

    def _matmat(self, X: np.ndarray) -> np.ndarray:
        # Structural zeros are exact, as in scipy.sparse: 0 @ [nan] is 0.
        return np.zeros((self.shape[0], X.shape[1]), dtype=np.result_type(self.dtype, X.dtype))

    def _rmatmat(self, Y: np.ndarray) -> np.ndarray:
        return np.zeros((Y.shape[0], self.shape[1]), dtype=np.result_type(self.dtype, Y.dtype))
