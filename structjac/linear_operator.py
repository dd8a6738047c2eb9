"""A Jacobian as a :class:`scipy.sparse.linalg.LinearOperator`."""

from __future__ import annotations

import numpy as np
from scipy.sparse.linalg import LinearOperator

__all__ = ["JacobianLinearOperator"]


class JacobianLinearOperator(LinearOperator):
    r"""A :class:`scipy.sparse.linalg.LinearOperator` that applies a structured Jacobian.

    Made by :meth:`structjac.Jacobian.aslinearoperator`; usable wherever scipy takes a
    linear operator (``cg``, ``gmres``, ``lsqr``, ``eigsh`` ...). Products never
    densify the Jacobian. The adjoint is :math:`J^H` (:math:`J^T` for real dtypes),
    kept structured.

    Parameters
    ----------
    jacobian : Jacobian
    conjugate : bool, default False
        Represent :math:`\bar J` instead of :math:`J` (used for the adjoint of a
        complex Jacobian).

    Examples
    --------
    >>> import numpy as np, scipy.sparse.linalg as spla, structjac as sj
    >>> A = sj.Diagonal(np.array([1.0, 2.0, 4.0])).aslinearoperator()
    >>> x, info = spla.cg(A, np.array([1.0, 1.0, 1.0]))
    >>> np.round(x, 6), info
    (array([1.  , 0.5 , 0.25]), 0)
    """

    def __init__(self, jacobian: object, conjugate: bool = False) -> None:
        self.jacobian = jacobian
        self.conjugate = bool(conjugate) and jacobian.dtype.kind == "c"
        super().__init__(dtype=jacobian.dtype, shape=jacobian.shape)

    def _apply(self, function, x):
        if self.conjugate:
            return np.conj(function(np.conj(x)))
        return function(x)

    def _matvec(self, x):
        return self._apply(self.jacobian.matvec, np.ravel(x))

    def _matmat(self, X):
        return self._apply(self.jacobian.matvec, X)

    def _rmatvec(self, x):
        # J^H x = conj(x^T J)
        return np.conj(self._apply(self.jacobian.rmatvec, np.conj(np.ravel(x))))

    def _rmatmat(self, X):
        return np.conj(self._apply(self.jacobian.rmatvec, np.conj(X).T)).T

    def _adjoint(self):
        return JacobianLinearOperator(self.jacobian.T, conjugate=not self.conjugate)

    def _transpose(self):
        return JacobianLinearOperator(self.jacobian.T, conjugate=self.conjugate)
