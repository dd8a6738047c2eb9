r"""The Jacobian of a dense layer with respect to its weights, over a mini-batch.

For one sample, :math:`z = Wx + b` with :math:`W \in \mathbb{F}^{m \times d}` has
:math:`\partial z / \partial \operatorname{vec}_r(W) = I_m \otimes x^T` (a
:class:`~structjac.Kronecker`). Over a batch :math:`X \in \mathbb{F}^{N \times d}`,
:math:`Z = X W^T + \mathbf 1 b^T` flattened row-major (batch axis first), the Jacobian
stacks the :math:`N` per-sample Kronecker products:

.. math::

    \frac{\partial \operatorname{vec}_r(Z)}{\partial \operatorname{vec}_r(W)}
    = \begin{pmatrix} I_m \otimes x^{(1)T} \\ \vdots \\ I_m \otimes x^{(N)T} \end{pmatrix},
    \qquad
    \left[\frac{\partial Z}{\partial W}\right]_{(k, i), (i', j)} = \delta_{i i'} X_{kj}.

It is :math:`K_{m,N}(I_m \otimes X)`, a row permutation (the commutation matrix
:math:`K_{m,N}`, which maps :math:`\operatorname{vec}_r(Z^T)` to
:math:`\operatorname{vec}_r(Z)`) of a Kronecker product, and also
:math:`(X \otimes I_m) K_{m,d}` with a column permutation. Neither form is one
Kronecker product, so the stack is its own structure: it stores :math:`X` only
(:math:`Nd` numbers instead of :math:`Nm \cdot md`) and applies by a reshape and one
matrix product:

.. math::

    J \operatorname{vec}_r(V) = \operatorname{vec}_r(X V^T), \qquad
    \operatorname{vec}_r(G)^T J = \operatorname{vec}_r(G^T X)^T,

the second being the weight gradient :math:`G^T X` of backpropagation.
"""

from __future__ import annotations

from numpy.typing import ArrayLike, DTypeLike

import numpy as np
import scipy.sparse as sp

from ._validation import check_size, frozen_array
from .base import Jacobian

__all__ = ["StackedKronecker"]


class StackedKronecker(Jacobian):
    r"""The ``(N*m) x (m*d)`` stack of :math:`I_m \otimes x^{(k)T}`, :math:`k = 1..N`.

    Parameters
    ----------
    X : array_like, shape (N, d)
        The layer's inputs, one sample per row.
    m : int
        The number of outputs of the layer (rows of :math:`W`).
    copy : bool, default True
        Copy ``X``; ``copy=False`` keeps a C-contiguous float array as it is (then
        read-only).

    Notes
    -----
    Row :math:`(k, i)` (index :math:`km + i`) is :math:`e_i^T \otimes x^{(k)T}`; column
    :math:`(i', j)` (index :math:`i'd + j`) is the weight :math:`W_{i'j}`. With
    ``m == 1`` it is a neuron's :math:`\partial z/\partial w = X`.

    Examples
    --------
    >>> import numpy as np, structjac as sj
    >>> from structjac.structures import StackedKronecker
    >>> X = np.array([[1.0, 2.0], [3.0, 4.0]])        # N = 2 samples, d = 2
    >>> J = StackedKronecker(X, 2)                    # m = 2 outputs
    >>> J.to_dense()
    array([[1., 2., 0., 0.],
           [0., 0., 1., 2.],
           [3., 4., 0., 0.],
           [0., 0., 3., 4.]])
    >>> W = np.array([[1.0, 0.0], [0.0, -1.0]])
    >>> bool(np.allclose(J @ W.ravel(), (X @ W.T).ravel()))
    True
    >>> G = np.ones((2, 2))
    >>> (G.ravel() @ J).reshape(2, 2)                 # G^T X, the weight gradient
    array([[4., 6.],
           [4., 6.]])
    """

    __slots__ = ("_X", "_m")

    def __init__(self, X: ArrayLike, m: int, copy: bool = True) -> None:
        X = frozen_array(X, ndim=2, name="the inputs X", owner="StackedKronecker", copy=copy)
        m = check_size(m, "m", "StackedKronecker")
        N, d = X.shape
        super().__init__((N * m, m * d), X.dtype)
        self._set(_X=X, _m=m)

    @property
    def X(self) -> np.ndarray:
        """ndarray, shape (N, d): the inputs, read-only."""
        return self._X

    @property
    def m(self) -> int:
        """int: the number of outputs per sample."""
        return self._m

    @classmethod
    def _stored_estimate(cls, shape, nnz, left, right) -> float:
        return float(min(left.stored + right.stored, shape[0] * shape[1]))

    @property
    def nbytes(self) -> int:
        return self._X.nbytes

    @property
    def nnz(self) -> int:
        """int: the structural nonzeros, :math:`N m d`."""
        return self._X.size * self._m

    def _to_dense(self) -> np.ndarray:
        N, d = self._X.shape
        m = self._m
        out = np.zeros((N, m, m, d), dtype=self.dtype)
        for i in range(m):
            out[:, i, i, :] = self._X
        return out.reshape(N * m, m * d)

    def to_sparse(self) -> sp.csr_array:
        N, d = self._X.shape
        m = self._m
        data = np.repeat(self._X[:, None, :], m, axis=1).reshape(-1)
        cols = np.arange(m)[:, None] * d + np.arange(d)[None, :]  # (m, d)
        cols = np.broadcast_to(cols, (N, m, d)).reshape(-1)
        indptr = np.arange(N * m + 1, dtype=np.int64) * d
        return sp.csr_array((data.astype(self.dtype, copy=False), cols, indptr), shape=self.shape)

    def diagonal(self) -> np.ndarray:
        return self.to_sparse().diagonal().astype(self.dtype, copy=False)

    def astype(self, dtype: DTypeLike) -> "StackedKronecker":
        if np.dtype(dtype) == self.dtype:
            return self
        return StackedKronecker(self._X.astype(dtype), self._m, copy=False)

    def _transpose(self) -> Jacobian:
        from .row_scaled import Transposed

        return Transposed(self)

    def _scale(self, c) -> "StackedKronecker":
        # Linear in X: c [I_m (x) x^(k)T]_k = [I_m (x) (c x^(k))T]_k.
        return StackedKronecker(self._X * c, self._m, copy=False)

    def _matmat(self, V: np.ndarray) -> np.ndarray:
        # V[(i', j), c] -> out[(k, i), c] = sum_j X[k, j] V[i, j, c]
        N, d = self._X.shape
        m = self._m
        c = V.shape[1]
        T = V.reshape(m, d, c).transpose(1, 0, 2).reshape(d, m * c)
        return (self._X @ T).reshape(N * m, c)

    def _rmatmat(self, Y: np.ndarray) -> np.ndarray:
        # Y[c, (k, i)] -> out[c, (i, j)] = sum_k Y[c, k, i] X[k, j]
        N, d = self._X.shape
        m = self._m
        c = Y.shape[0]
        if c == 1:
            return (Y.reshape(N, m).T @ self._X).reshape(1, m * d)
        T = Y.reshape(c, N, m).transpose(0, 2, 1).reshape(c * m, N)
        return (T @ self._X).reshape(c, m * d)
