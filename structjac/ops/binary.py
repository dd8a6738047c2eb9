r"""Binary element-wise ops: value, the two diagonal Jacobians, fused vjp.

For :math:`f_i(u, v) = f(u_i, v_i)` both Jacobians are diagonal:

=============  ==========================  ================================
op             :math:`\partial f/\partial u`  :math:`\partial f/\partial v`
=============  ==========================  ================================
``add``        :math:`I`                    :math:`I`
``subtract``   :math:`I`                    :math:`-I`
``multiply``   :math:`\mathrm{diag}(v)`     :math:`\mathrm{diag}(u)`
``divide``     :math:`\mathrm{diag}(1/v)`   :math:`\mathrm{diag}(-u/v^2)`
=============  ==========================  ================================

returned as ``Identity``, ``ScaledIdentity(n, -1)`` and ``Diagonal`` over
``u.size`` values (row-major), in the dtype of the inputs (integers and bools:
float64; mixed: :func:`numpy.result_type`).  ``u`` and ``v`` must have the same
shape (no broadcasting; ``ValueError`` naming both shapes).
"""

from __future__ import annotations

from numpy.typing import ArrayLike
from structjac.structures import Jacobian

import numpy as np

from structjac import kernels as _k
from structjac.structures import Diagonal, Identity, ScaledIdentity

from ._dispatch import dispatched
from ._checks import flat_copy, float_dtype, same_shape

__all__ = [
    "BinaryOp",
    "Add",
    "Subtract",
    "Multiply",
    "Divide",
    "add",
    "subtract",
    "multiply",
    "divide",
]


class BinaryOp:
    """Base class of the binary element-wise ops.

    ``op(u, v)``, ``op.jacobians(u, v) -> (J_u, J_v)``,
    ``op.vjp(u, v, g) -> (g_u, g_v)``.

    Examples
    --------
    >>> import numpy as np
    >>> from structjac.ops import multiply
    >>> isinstance(multiply, BinaryOp)
    True
    """

    _op_kind = "binary"  # how foreign-array handlers (structjac._dask) tell the ops apart

    name = "binary"
    _ufunc = None

    def _prepare(self, u, v):
        u, v = same_shape(u, v, "u", "v")
        return u, v, float_dtype(u, v)

    @dispatched
    def __call__(self, u: ArrayLike, v: ArrayLike, out: np.ndarray | None = None) -> np.ndarray:
        """Return ``f(u, v)`` element-wise (same shape as ``u`` and ``v``)."""
        u, v, dtype = self._prepare(u, v)
        if out is not None:
            from structjac.kernels._config import prepare_out

            prepare_out(out, u.shape, dtype)
        res = self._ufunc(u, v, out=out, dtype=dtype, casting="unsafe")
        return np.asarray(res)

    @dispatched
    def jacobians(self, u: ArrayLike, v: ArrayLike) -> tuple["Jacobian", "Jacobian"]:
        """Return ``(J_u, J_v)``, structures of shape ``(u.size, u.size)``."""
        u, v, dtype = self._prepare(u, v)
        return self._jacobians(u, v, dtype)

    @dispatched
    def vjp(self, u: ArrayLike, v: ArrayLike, g: ArrayLike) -> np.ndarray:
        """Return ``(g^T J_u, g^T J_v)`` reshaped like ``u`` (fresh arrays)."""
        u, v, dtype = self._prepare(u, v)
        u, g = same_shape(u, g, "u", "g")
        return self._vjp(u, v, g, float_dtype(u, v, g))

    def __repr__(self):
        return f"structjac.ops.{self.name}"


class Add(BinaryOp):
    r"""Element-wise sum :math:`u + v`; Jacobians :math:`(I, I)`.

    Examples
    --------
    >>> import numpy as np
    >>> from structjac.ops import add
    >>> Ju, Jv = add.jacobians(np.ones(3), np.zeros(3))
    >>> type(Ju).__name__, Ju.shape
    ('Identity', (3, 3))
    >>> add.vjp(np.ones(2), np.ones(2), np.array([1.0, 2.0]))
    (array([1., 2.]), array([1., 2.]))
    """

    name = "add"
    _ufunc = staticmethod(np.add)

    def _jacobians(self, u, v, dtype):
        return Identity(u.size, dtype=dtype), Identity(u.size, dtype=dtype)

    def _vjp(self, u, v, g, dtype):
        gu = np.array(g, dtype=dtype, copy=True)
        return gu, gu.copy()


class Subtract(BinaryOp):
    r"""Element-wise difference :math:`u - v`; Jacobians :math:`(I, -I)`.

    Examples
    --------
    >>> import numpy as np
    >>> from structjac.ops import subtract
    >>> Ju, Jv = subtract.jacobians(np.ones(2), np.ones(2))
    >>> type(Jv).__name__, Jv.to_dense().tolist()
    ('ScaledIdentity', [[-1.0, 0.0], [0.0, -1.0]])
    """

    name = "subtract"
    _ufunc = staticmethod(np.subtract)

    def _jacobians(self, u, v, dtype):
        return Identity(u.size, dtype=dtype), ScaledIdentity(u.size, -1, dtype=dtype)

    def _vjp(self, u, v, g, dtype):
        gu = np.array(g, dtype=dtype, copy=True)
        return gu, np.negative(gu)


class Multiply(BinaryOp):
    r"""Element-wise product :math:`u \odot v`; Jacobians :math:`(\mathrm{diag}(v), \mathrm{diag}(u))`.

    Examples
    --------
    >>> import numpy as np
    >>> from structjac.ops import multiply
    >>> u, v = np.array([1.0, 2.0]), np.array([3.0, 4.0])
    >>> Ju, Jv = multiply.jacobians(u, v)
    >>> Ju.diagonal(), Jv.diagonal()
    (array([3., 4.]), array([1., 2.]))
    >>> multiply.vjp(u, v, np.array([1.0, 10.0]))
    (array([ 3., 40.]), array([ 1., 20.]))
    """

    name = "multiply"
    _ufunc = staticmethod(np.multiply)

    def _jacobians(self, u, v, dtype):
        return (
            Diagonal(flat_copy(v, dtype), copy=False),
            Diagonal(flat_copy(u, dtype), copy=False),
        )

    def _vjp(self, u, v, g, dtype):
        return _k.multiply_vjp(u, v, g)


class Divide(BinaryOp):
    r"""Element-wise quotient :math:`u / v`; Jacobians :math:`(\mathrm{diag}(1/v), \mathrm{diag}(-u/v^2))`.

    Division by zero follows IEEE (inf or NaN), without a warning.

    Examples
    --------
    >>> import numpy as np
    >>> from structjac.ops import divide
    >>> u, v = np.array([1.0, 2.0]), np.array([2.0, 4.0])
    >>> Ju, Jv = divide.jacobians(u, v)
    >>> Ju.diagonal(), Jv.diagonal()
    (array([0.5 , 0.25]), array([-0.25 , -0.125]))
    """

    name = "divide"
    _ufunc = staticmethod(np.divide)

    @dispatched
    def __call__(self, u: ArrayLike, v: ArrayLike, out: np.ndarray | None = None) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return super().__call__(u, v, out=out)

    def _jacobians(self, u, v, dtype):
        du, dv = _k.divide_jacobians(u, v)
        return Diagonal(du.reshape(-1), copy=False), Diagonal(dv.reshape(-1), copy=False)

    def _vjp(self, u, v, g, dtype):
        return _k.divide_vjp(u, v, g)


#: Element-wise ``u + v`` (see :class:`Add`).
add = Add()
#: Element-wise ``u - v`` (see :class:`Subtract`).
subtract = Subtract()
#: Element-wise ``u * v`` (see :class:`Multiply`).
multiply = Multiply()
#: Element-wise ``u / v`` (see :class:`Divide`).
divide = Divide()
