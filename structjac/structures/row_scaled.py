r"""Lazy compositions that keep their factors: :math:`\operatorname{diag}(d)\,J` and :math:`J^T`.

Backpropagation inside a layer multiplies a Jacobian by the activation's diagonal,
:math:`\partial a/\partial(\cdot) = \operatorname{diag}(g'(z))\,\partial z/\partial(\cdot)`.
When the product has no tighter closed form (the batch Jacobians
:math:`I_N \otimes W`, :math:`\mathbf 1_N \otimes I_m` and the
:class:`~structjac.structures.StackedKronecker` of the weights),
:class:`RowScaled` keeps the diagonal and the structure side by side: it stores
:math:`n` numbers more than the structure and applies as

.. math::

    (\operatorname{diag}(d) J)\,v = d \odot (J v), \qquad
    u^T \operatorname{diag}(d) J = (u \odot d)^T J.
"""

from __future__ import annotations

from numpy.typing import ArrayLike, DTypeLike

import numpy as np
import scipy.sparse as sp

from ._validation import frozen_array
from .base import Jacobian

__all__ = ["RowScaled", "Transposed"]


class RowScaled(Jacobian):
    r"""The product :math:`\operatorname{diag}(d)\,J`, kept as :math:`d` and :math:`J`.

    Parameters
    ----------
    d : array_like, shape (m,)
        The row scales, ``m == J.shape[0]``.
    J : Jacobian
        The structure whose rows are scaled.
    copy : bool, default True
        Copy ``d``.

    Examples
    --------
    :math:`\operatorname{diag}(g')(I_N \otimes W)` for a batch of two samples:

    >>> import numpy as np, structjac as sj
    >>> from structjac.structures import RowScaled
    >>> W = np.array([[1.0, 2.0]])
    >>> K = sj.Kronecker(sj.Identity(2), sj.Dense(W))
    >>> J = RowScaled(np.array([0.5, 2.0]), K)
    >>> J.to_dense()
    array([[0.5, 1. , 0. , 0. ],
           [0. , 0. , 2. , 4. ]])
    >>> np.array([1.0, 1.0]) @ J
    array([0.5, 1. , 2. , 4. ])
    """

    __slots__ = ("_d", "_J")

    def __init__(self, d: ArrayLike, J: Jacobian, copy: bool = True) -> None:
        if not isinstance(J, Jacobian):
            raise TypeError(f"RowScaled expects a Jacobian J, got {type(J).__name__}")
        d = frozen_array(d, ndim=1, name="the row scales d", owner="RowScaled", copy=copy)
        if d.shape[0] != J.shape[0]:
            raise ValueError(
                f"RowScaled: shapes do not fit: {d.shape[0]} scales for a "
                f"{type(J).__name__} of shape {J.shape}"
            )
        dtype = np.result_type(d.dtype, J.dtype)
        if d.dtype != dtype:
            d = d.astype(dtype)
            d.flags.writeable = False
        J = J.astype(dtype)
        super().__init__(J.shape, dtype)
        self._set(_d=d, _J=J)

    @property
    def scales(self) -> np.ndarray:
        """ndarray, shape (m,): the row scales :math:`d`, read-only."""
        return self._d

    @property
    def inner(self) -> Jacobian:
        """Jacobian: the structure :math:`J` whose rows are scaled."""
        return self._J

    @property
    def nnz(self) -> int:
        return self._J.nnz

    @property
    def n_nonzero_rows(self) -> int:
        return self._J.n_nonzero_rows

    @property
    def n_nonzero_cols(self) -> int:
        return self._J.n_nonzero_cols

    @classmethod
    def _stored_estimate(cls, shape, nnz, left, right) -> float:
        return float(min(left.stored + right.stored, shape[0] * shape[1]))

    @property
    def nbytes(self) -> int:
        return self._d.nbytes + self._J.nbytes

    def _to_dense(self) -> np.ndarray:
        return self._d[:, None] * self._J.to_dense()

    def to_sparse(self) -> sp.csr_array:
        return sp.csr_array(sp.diags_array(self._d) @ self._J.to_sparse())

    def diagonal(self) -> np.ndarray:
        k = min(self.shape)
        return self._d[:k] * self._J.diagonal()

    def astype(self, dtype: DTypeLike) -> "RowScaled":
        if np.dtype(dtype) == self.dtype:
            return self
        return RowScaled(self._d.astype(dtype), self._J.astype(dtype), copy=False)

    def _transpose(self) -> Jacobian:
        return Transposed(self)

    def _scale(self, c) -> "RowScaled":
        return RowScaled(self._d * c, self._J, copy=False)

    def _matmat(self, X: np.ndarray) -> np.ndarray:
        return self._d[:, None] * self._J._matmat(X)

    def _rmatmat(self, Y: np.ndarray) -> np.ndarray:
        return self._J._rmatmat(Y * self._d)


class Transposed(Jacobian):
    r"""The transpose :math:`J^T` of a structure whose transpose has no type of its own.

    Applies through the structure: :math:`J^T v = (v^T J)^T`. ``Transposed(J).T`` is
    ``J`` itself.

    Examples
    --------
    >>> import numpy as np
    >>> from structjac.structures import StackedKronecker
    >>> J = StackedKronecker(np.array([[1.0, 2.0]]), 1)
    >>> J.T.to_dense()
    array([[1.],
           [2.]])
    >>> J.T.T is J
    True
    """

    __slots__ = ("_J",)

    def __init__(self, J: Jacobian) -> None:
        if not isinstance(J, Jacobian):
            raise TypeError(f"Transposed expects a Jacobian, got {type(J).__name__}")
        m, n = J.shape
        super().__init__((n, m), J.dtype)
        self._set(_J=J)

    @property
    def inner(self) -> Jacobian:
        """Jacobian: the structure transposed."""
        return self._J

    @property
    def nnz(self) -> int:
        return self._J.nnz

    @property
    def n_nonzero_rows(self) -> int:
        return self._J.n_nonzero_cols

    @property
    def n_nonzero_cols(self) -> int:
        return self._J.n_nonzero_rows

    @property
    def nbytes(self) -> int:
        return self._J.nbytes

    def _to_dense(self) -> np.ndarray:
        return np.array(self._J.to_dense().T)

    def to_sparse(self) -> sp.csr_array:
        return sp.csr_array(self._J.to_sparse().T.tocsr())

    def diagonal(self) -> np.ndarray:
        return self._J.diagonal()

    def astype(self, dtype: DTypeLike) -> "Transposed":
        if np.dtype(dtype) == self.dtype:
            return self
        return Transposed(self._J.astype(dtype))

    def _transpose(self) -> Jacobian:
        return self._J

    def _scale(self, c) -> "Transposed":
        return Transposed(self._J._scale(c))

    def _matmat(self, X: np.ndarray) -> np.ndarray:
        return self._J._rmatmat(X.T).T

    def _rmatmat(self, Y: np.ndarray) -> np.ndarray:
        return self._J._matmat(Y.T).T
