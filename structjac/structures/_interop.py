"""How a structure meets numpy, scipy, pickle and copy: the mixin :class:`Jacobian` inherits.

A structure is not an array. numpy functions on it give the right answer when the
answer is a product or a transpose (``np.dot``, ``np.matmul``, ``np.transpose``), and
otherwise raise a :class:`TypeError` that names what to call instead
(``J.to_dense()``, ``J @ v``). Nothing here densifies behind the caller's back:
``np.asarray(J)`` raises rather than building the ``m x n`` matrix.

Structures are immutable, yet pickle, :func:`copy.copy` and :func:`copy.deepcopy`
work: the state is restored around the immutability guard and the restored arrays
are read-only again.
"""

from __future__ import annotations

import functools
import operator
import sys
import types

import numpy as np

__all__ = ["InteropMixin", "scipy_adjoint_aware"]


def _advice(name: str) -> str:
    return (
        f"{name} on a structured Jacobian is not defined: a Jacobian is a linear map, not an "
        "array. Apply it with J @ v (Jacobian-vector product) or v @ J (vector-Jacobian "
        "product), build the matrix explicitly with J.to_dense() or J.to_sparse(), or hand "
        "it to scipy as J.aslinearoperator()"
    )


# ufunc -> (operator on (J, other), reflected operator on (J, other)) for the ufuncs that
# are Python operators: the same answer as the operator, so ``x @ J`` with ``x`` an
# ndarray reaches the vector-Jacobian product.
_OPERATOR_UFUNCS = {
    np.matmul: ("__matmul__", "__rmatmul__"),
    np.add: ("__add__", "__radd__"),
    np.subtract: ("__sub__", "__rsub__"),
    np.multiply: ("__mul__", "__rmul__"),
    np.true_divide: ("__truediv__", None),
}


def _slot_names(cls):
    names = []
    for klass in cls.__mro__:
        for name in klass.__dict__.get("__slots__", ()):
            if name not in names and name not in ("__dict__", "__weakref__"):
                names.append(name)
    return names


# The scipy.sparse methods that read a 0-d object array from np.asanyarray(other) as
# "not an array" and return NotImplemented (scipy/sparse/_base.py).
_SPARSE_DEFERRING = frozenset(
    {"_matmul_dispatch", "_rmatmul_dispatch", "multiply", "_comparison", "_divide"}
)


def _called_by_scipy_sparse_dispatch() -> bool:
    """True when np.asarray(J) was called by one of scipy.sparse's deferring operators."""
    frame = sys._getframe(2)  # 0: this function, 1: __array__, 2: who called np.asarray
    return frame.f_code.co_name in _SPARSE_DEFERRING and frame.f_globals.get(
        "__name__", ""
    ).startswith("scipy.sparse.")


def _called_by_scipy_aslinearoperator() -> bool:
    """True when the attribute is being read by scipy.sparse.linalg.aslinearoperator."""
    frame = sys._getframe(2)  # 0: this function, 1: __get__, 2: who read the attribute
    return frame.f_code.co_name == "aslinearoperator" and frame.f_globals.get(
        "__name__", ""
    ).startswith("scipy.sparse.linalg")


class scipy_adjoint_aware:
    r"""Decorate :meth:`Jacobian.matvec` / :meth:`Jacobian.rmatvec` for scipy's duck typing.

    ``scipy.sparse.linalg.aslinearoperator(J)`` builds its operator from ``J.matvec``
    and ``J.rmatvec``, and uses ``rmatvec`` as the adjoint :math:`v \mapsto \bar J^T v`.
    structjac's ``rmatvec`` is the row-vector product :math:`x \mapsto x J` (no
    conjugate), so for that one reader the attribute is the method of
    :meth:`Jacobian.aslinearoperator` of the same name instead (conjugated adjoint,
    columns ``(n, 1)`` accepted); every other access is the ordinary method.
    """

    def __init__(self, function):
        self.function = function
        functools.update_wrapper(self, function)

    def __set_name__(self, owner, name):
        self.name = name

    def __get__(self, instance, owner=None):
        if instance is None:
            return self.function
        if _called_by_scipy_aslinearoperator():
            return getattr(instance.aslinearoperator(), self.name)
        return types.MethodType(self.function, instance)


class InteropMixin:
    """numpy / scipy / pickle protocols for :class:`structjac.Jacobian` (no state)."""

    __slots__ = ()

    # ------------------------------------------------------------ pickle and copy
    def __getstate__(self):
        """Return the slots as a dict (a broadcast array is kept as its one stored row)."""
        state = {}
        for name in _slot_names(type(self)):
            try:
                value = object.__getattribute__(self, name)
            except AttributeError:
                continue
            if isinstance(value, np.ndarray) and _is_broadcast(value):
                value = _Broadcast(value)
            state[name] = value
        return state

    def __setstate__(self, state):
        """Restore the slots around the immutability guard; arrays become read-only again."""
        if isinstance(state, tuple):  # (dict or None, slots) from object.__reduce_ex__
            merged = {}
            for part in state:
                if part:
                    merged.update(part)
            state = merged
        for name, value in state.items():
            if isinstance(value, _Broadcast):
                value = value.expand()
            if isinstance(value, np.ndarray):
                value.flags.writeable = False
            object.__setattr__(self, name, value)

    def _map_state(self, function):
        """A new structure of the same type whose state is ``function`` of this one's."""
        new = object.__new__(type(self))
        state = {}
        for name, value in self.__getstate__().items():
            if isinstance(value, _Broadcast):
                value = value.expand()
            state[name] = function(value)
        new.__setstate__(state)
        return new

    # ------------------------------------------------------------------- numpy
    def __array__(self, dtype=None, copy=None):
        if _called_by_scipy_sparse_dispatch():
            # scipy.sparse's operators (S @ J, S.multiply(J), S / J ...) turn an operand
            # numpy cannot read into a 0-d object array and then return NotImplemented,
            # so that Python asks J.__rmatmul__ etc. Answer them so, and them only.
            holder = np.empty((), dtype=object)
            holder[()] = self
            return holder
        raise TypeError(
            f"np.asarray / np.array of a {type(self).__name__} of shape {self.shape} would "
            f"densify it ({self.dense_nbytes} bytes): call J.to_dense() (or J.toarray()) to "
            "build the dense matrix on purpose, J.to_sparse() for a scipy.sparse array, or "
            "J.aslinearoperator() to hand it to scipy (A @ J.aslinearoperator() for a "
            "scipy LinearOperator A; least_squares(jac=lambda x: J(x).aslinearoperator(), "
            "tr_solver='lsmr'))"
        )

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        names = _OPERATOR_UFUNCS.get(ufunc)
        if names is not None and method == "__call__" and not kwargs and len(inputs) == 2:
            a, b = inputs
            if a is self:
                result = getattr(self, names[0])(b)
            elif names[1] is not None:
                result = getattr(self, names[1])(a)
            else:
                result = NotImplemented
            if result is not NotImplemented:
                return result
        if ufunc is np.negative and method == "__call__" and not kwargs and len(inputs) == 1:
            return -self
        if ufunc is np.conjugate and method == "__call__" and not kwargs and len(inputs) == 1:
            return self.conj()
        where = ufunc.__name__ if method == "__call__" else f"{ufunc.__name__}.{method}"
        raise TypeError(_advice(f"np.{where}"))

    def __array_function__(self, func, types, args, kwargs):
        handler = _FUNCTIONS.get(func)
        if handler is None:
            raise TypeError(_advice(f"np.{func.__name__}"))
        return handler(*args, **kwargs)

    def _foreign_matmul(self, other, side: str):
        """``J @ A`` / ``A @ J`` with a scipy LinearOperator ``A``: a LinearOperator."""
        from scipy.sparse.linalg import LinearOperator

        if isinstance(other, LinearOperator):
            mine = self.aslinearoperator()
            return mine @ other if side == "right" else other @ mine
        return NotImplemented

    # ------------------------------------------------------- scipy-style names
    def toarray(self) -> np.ndarray:
        """Return the dense matrix as an ndarray (scipy.sparse's name for :meth:`to_dense`)."""
        return self.to_dense()

    def todense(self) -> np.ndarray:
        """Return the dense matrix as an ndarray (an alias of :meth:`to_dense`; never ``np.matrix``)."""
        return self.to_dense()

    def dot(self, other):
        """Return ``self @ other`` (scipy.sparse's and numpy's method name)."""
        result = self.__matmul__(other)
        if result is NotImplemented:
            raise TypeError(
                f"{type(self).__name__}.dot: cannot multiply by {type(other).__name__}; "
                "pass an ndarray, a scipy.sparse matrix, a Jacobian or a LinearOperator"
            )
        return result

    def conj(self):
        r"""Return the entry-wise complex conjugate :math:`\bar J`, structure kept.

        Every stored number is conjugated (the structure is linear in them, so the
        conjugate of the structure is the structure of the conjugates); a real
        structure is returned as it is.
        """
        if self.dtype.kind != "c":
            return self
        return self._map_state(_conjugate)

    @property
    def H(self):
        r"""Jacobian: the conjugate transpose :math:`J^H = \bar J^T` (``J.T`` for real dtypes)."""
        return self.conj().T


def _is_broadcast(array: np.ndarray) -> bool:
    """True for a view that repeats its numbers (a stride of 0 along an axis longer than 1)."""
    return any(step == 0 and length > 1 for step, length in zip(array.strides, array.shape))


class _Broadcast:
    """A read-only broadcast array (a stride of 0) pickled as its stored part and shape."""

    __slots__ = ("shape", "stored")

    def __init__(self, array):
        index = tuple(slice(0, 1) if step == 0 else slice(None) for step in array.strides)
        # (an axis of length 1 with stride 0 is kept whole: the slice is the same)
        self.stored = np.array(array[index])
        self.shape = array.shape

    def __getstate__(self):
        return (self.stored, self.shape)

    def __setstate__(self, state):
        self.stored, self.shape = state

    def expand(self):
        return np.broadcast_to(self.stored, self.shape)


def _conjugate(value):
    """Conjugate the numbers in one piece of a structure's state (indices untouched)."""
    if isinstance(value, InteropMixin):  # a structure inside a structure
        return value.conj()
    if isinstance(value, np.ndarray):
        return np.conj(value) if value.dtype.kind == "c" else value
    if isinstance(value, (complex, np.complexfloating)):
        return value.conjugate()
    if isinstance(value, (tuple, list)):
        return type(value)(_conjugate(item) for item in value)
    if hasattr(value, "conj") and hasattr(value, "tocsr"):  # scipy.sparse
        return value.conj()
    return value


def _dot(a, b, out=None):
    if out is not None:
        raise TypeError(_advice("np.dot with out="))
    return operator.matmul(a, b)


def _transpose(a, axes=None):
    if axes is not None and tuple(axes) != (1, 0):
        if tuple(axes) == (0, 1):
            return a
        raise ValueError(f"np.transpose of a Jacobian: axes must be (1, 0) or (0, 1), got {axes!r}")
    return a.T


def _shape(a):
    return a.shape


def _ndim(a):
    return 2


_FUNCTIONS = {
    np.dot: _dot,
    np.transpose: _transpose,
    np.shape: _shape,
    np.ndim: _ndim,
}
