r"""Kronecker products of two structures.

The Jacobian of a dense layer with respect to its weight matrix (flattened row-major) is

.. math:: \frac{\partial z}{\partial \operatorname{vec}(W)} = I_m \otimes x^T,

which stores the ``d`` numbers of :math:`x` instead of :math:`m \cdot md`.
"""

from __future__ import annotations

from numpy.typing import ArrayLike, DTypeLike

import numpy as np
import scipy.sparse as sp

from ._wrap import as_jacobian
from .base import _JACOBIAN_TYPES, Jacobian

__all__ = ["Kronecker"]


class Kronecker(Jacobian):
    r"""The Kronecker product :math:`A \otimes B` of two structures.

    With :math:`A \in \mathbb{F}^{p \times q}` and :math:`B \in \mathbb{F}^{r \times s}`
    the product is :math:`pr \times qs`. It is applied to a vector :math:`x` of length
    :math:`qs` by the reshape identity (row-major :math:`\operatorname{vec}`)

    .. math:: (A \otimes B)\operatorname{vec}(X) = \operatorname{vec}(A X B^T),
       \qquad X \in \mathbb{F}^{q \times s},

    never by building the product.

    Parameters
    ----------
    A, B : Jacobian or array_like
        The factors; ndarrays and scipy sparse matrices are wrapped by
        :func:`structjac.as_jacobian`.

    Examples
    --------
    :math:`\partial z / \partial W = I_3 \otimes x^T` for a layer with three outputs:

    >>> import numpy as np, structjac as sj
    >>> x = np.array([1.0, 2.0])
    >>> dz_dW = sj.Kronecker(sj.Identity(3), sj.Dense(x[None, :]))
    >>> dz_dW
    Kronecker(shape=(3, 6), dtype=float64, stored=16 B, dense=144 B)
    >>> W = np.arange(6.0).reshape(3, 2)
    >>> dz_dW @ W.ravel()     # equals W @ x
    array([ 2.,  8., 14.])
    """

    __slots__ = ("_A", "_B")

    def __init__(self, A: Jacobian | ArrayLike, B: Jacobian | ArrayLike) -> None:
        A = as_jacobian(A)
        B = as_jacobian(B)
        dtype = np.result_type(A.dtype, B.dtype)
        A, B = A.astype(dtype), B.astype(dtype)
        (p, q), (r, s) = A.shape, B.shape
        super().__init__((p * r, q * s), dtype)
        self._set(_A=A, _B=B)

    @classmethod
    def _wrap(cls, A: Jacobian, B: Jacobian) -> "Kronecker":
        r"""Build :math:`A \otimes B` from two structures a rule has just formed.

        For the rule table's hot path: with factors of one dtype nothing is converted
        or checked; otherwise (or for non-structures) the checked constructor runs.
        """
        if type(A) not in _JACOBIAN_TYPES or type(B) not in _JACOBIAN_TYPES or A._dtype != B._dtype:
            return Kronecker(A, B)
        self = object.__new__(Kronecker)
        (p, q), (r, s) = A._shape, B._shape
        _setattr = object.__setattr__
        _setattr(self, "_shape", (p * r, q * s))
        _setattr(self, "_dtype", A._dtype)
        _setattr(self, "_A", A)
        _setattr(self, "_B", B)
        return self

    @property
    def A(self) -> Jacobian:
        """Jacobian: the left factor."""
        return self._A

    @property
    def B(self) -> Jacobian:
        """Jacobian: the right factor."""
        return self._B

    @property
    def nnz(self) -> int:
        return self.A.nnz * self.B.nnz

    @property
    def n_nonzero_rows(self) -> int:
        return self.A.n_nonzero_rows * self.B.n_nonzero_rows

    @property
    def n_nonzero_cols(self) -> int:
        return self.A.n_nonzero_cols * self.B.n_nonzero_cols

    @classmethod
    def _stored_estimate(cls, shape, nnz, left, right) -> float:
        return float(min(left.stored + right.stored, shape[0] * shape[1]))

    @property
    def nbytes(self) -> int:
        return self._A.nbytes + self._B.nbytes

    def _to_dense(self) -> np.ndarray:
        return np.kron(self._A.to_dense(), self._B.to_dense())

    def to_sparse(self) -> sp.csr_array:
        # scipy's kron of a factor that stores no entries is float64: keep our dtype.
        product = sp.kron(self._A.to_sparse(), self._B.to_sparse(), format="csr")
        return sp.csr_array(product, dtype=self.dtype)

    def diagonal(self) -> np.ndarray:
        if self._A.shape[0] == self._A.shape[1] and self._B.shape[0] == self._B.shape[1]:
            diagonal = np.kron(self._A.diagonal(), self._B.diagonal())
        else:
            diagonal = self.to_sparse().diagonal()
        return diagonal.astype(self.dtype, copy=False)

    def inv(self) -> "Kronecker":
        r""":math:`(A \otimes B)^{-1} = A^{-1} \otimes B^{-1}`."""
        return Kronecker(self._A.inv(), self._B.inv())

    def astype(self, dtype: DTypeLike) -> "Kronecker":
        if np.dtype(dtype) == self.dtype:
            return self
        return Kronecker(self._A.astype(dtype), self._B.astype(dtype))

    def _transpose(self) -> "Kronecker":
        return Kronecker(self._A.T, self._B.T)

    def _scale(self, c) -> "Kronecker":
        return Kronecker(self._A._scale(c), self._B)

    def _matmat(self, X: np.ndarray) -> np.ndarray:
        (p, q), (r, s) = self._A.shape, self._B.shape
        k = X.shape[1]
        # X[(a, b), j] -> apply B along b, then A along a.
        T = X.reshape(q, s, k).transpose(1, 0, 2).reshape(s, q * k)
        T = self._B._matmat(T)  # (r, q*k)
        T = T.reshape(r, q, k).transpose(1, 0, 2).reshape(q, r * k)
        T = self._A._matmat(T)  # (p, r*k)
        return T.reshape(p * r, k)

    def _rmatmat(self, Y: np.ndarray) -> np.ndarray:
        (p, q), (r, s) = self._A.shape, self._B.shape
        k = Y.shape[0]
        # Y[j, (a, b)] -> Y_j as a p x r matrix; result A^T Y_j B, flattened.
        T = Y.reshape(k, p, r).transpose(0, 2, 1).reshape(k * r, p)
        T = self._A._rmatmat(T)  # (k*r, q)
        T = T.reshape(k, r, q).transpose(0, 2, 1).reshape(k * q, r)
        T = self._B._rmatmat(T)  # (k*q, s)
        return T.reshape(k, q * s)
