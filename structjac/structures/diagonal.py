r"""Diagonal Jacobians: the Jacobian of every element-wise function.

For :math:`f(x)_i = f_i(x_i)` the Jacobian is

.. math:: \frac{\partial f}{\partial x} = \operatorname{diag}(f_1'(x_1), \ldots, f_n'(x_n)),

:math:`n` numbers instead of :math:`n^2`.
"""

from __future__ import annotations

from numpy.typing import ArrayLike, DTypeLike

import numpy as np
import scipy.sparse as sp

from ._validation import frozen_array
from .base import Jacobian

__all__ = ["Diagonal"]


class Diagonal(Jacobian):
    r"""The diagonal matrix :math:`\operatorname{diag}(d) \in \mathbb{F}^{n \times n}`.

    Stores the ``n`` diagonal entries. Closed under the element-wise rules:
    :math:`\operatorname{diag}(a) + \operatorname{diag}(b) = \operatorname{diag}(a + b)`,
    :math:`\operatorname{diag}(a)\operatorname{diag}(b) = \operatorname{diag}(a \odot b)`,
    :math:`\operatorname{diag}(a)^{-1} = \operatorname{diag}(1/a)`.

    Parameters
    ----------
    d : array_like, shape (n,)
        The diagonal. Integer and boolean input becomes float64.
    copy : bool, default True
        Copy ``d`` (the default), so that later changes to the caller's array do not
        reach the structure. ``copy=False`` hands a freshly made array over without a
        copy; it is then marked read-only.

    See Also
    --------
    ScaledIdentity : :math:`cI`, one number.
    Identity : :math:`I`, no number.

    Examples
    --------
    >>> import numpy as np, structjac as sj
    >>> D = sj.Diagonal(np.array([1.0, 2.0, 4.0]))
    >>> D
    Diagonal(shape=(3, 3), dtype=float64, stored=24 B, dense=72 B)
    >>> (D @ D).diagonal()
    array([ 1.,  4., 16.])
    >>> D.inv() @ np.ones(3)
    array([1.  , 0.5 , 0.25])
    """

    __slots__ = ("_values",)

    def __init__(self, d: ArrayLike, copy: bool = True) -> None:
        values = frozen_array(d, ndim=1, name="the diagonal d", owner="Diagonal", copy=copy)
        super().__init__((values.shape[0], values.shape[0]), values.dtype)
        self._set(_values=values)

    @classmethod
    def _wrap(cls, values: np.ndarray) -> "Diagonal":
        """Build from a fresh 1-D float array the caller owns: no checks, no copy.

        For the rule table's hot path; the array is marked read-only.
        """
        self = object.__new__(Diagonal)
        values.flags.writeable = False
        n = values.shape[0]
        _setattr = object.__setattr__
        _setattr(self, "_shape", (n, n))
        _setattr(self, "_dtype", values.dtype)
        _setattr(self, "_values", values)
        return self

    @property
    def values(self) -> np.ndarray:
        """ndarray, shape (n,): the diagonal entries, read-only (no copy)."""
        return self._values

    @property
    def nnz(self) -> int:
        return self._shape[0]

    @classmethod
    def _stored_estimate(cls, shape, nnz, left, right) -> float:
        return float(shape[0])

    @property
    def nbytes(self) -> int:
        return self._values.nbytes

    def _to_dense(self) -> np.ndarray:
        return np.diag(self.values).astype(self.dtype, copy=False)

    def to_sparse(self) -> sp.csr_array:
        n = self.shape[0]
        return sp.csr_array(
            (np.array(self.values, dtype=self.dtype), np.arange(n), np.arange(n + 1)),
            shape=self.shape,
        )

    def diagonal(self) -> np.ndarray:
        return np.array(self.values, dtype=self.dtype)

    def inv(self) -> "Diagonal":
        values = self.values
        zeros = np.flatnonzero(values == 0)
        if zeros.size:
            from numpy.linalg import LinAlgError

            raise LinAlgError(
                f"{type(self).__name__} is singular: diagonal entry {int(zeros[0])} is zero"
                + (f" ({zeros.size} zeros in all)" if zeros.size > 1 else "")
            )
        return Diagonal(np.reciprocal(values), copy=False)

    def astype(self, dtype: DTypeLike) -> "Diagonal":
        if np.dtype(dtype) == self.dtype:
            return self
        return Diagonal(self.values.astype(dtype), copy=False)

    def _transpose(self) -> "Diagonal":
        return self

    def _scale(self, c) -> "Diagonal":
        return Diagonal(self.values * c, copy=False)

    def _matmat(self, X: np.ndarray) -> np.ndarray:
        return self.values[:, None] * X

    def _rmatmat(self, Y: np.ndarray) -> np.ndarray:
        return Y * self.values
