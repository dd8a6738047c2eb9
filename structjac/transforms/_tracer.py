r"""The traced value: an ndarray that records what numpy does with it.

A :class:`Traced` wraps the value of one intermediate array of the user's function and
takes part in numpy's own dispatch (``__array_ufunc__`` for ``np.tanh``, ``np.add``,
``@`` ...; ``__array_function__`` for ``np.sum``, ``np.concatenate`` ...; the Python
operators, ``__getitem__``, ``.T``, ``.reshape``), so plain numpy code runs unchanged.
Every call is looked up in the rule table of :mod:`structjac.transforms._numpy_rules`,
which returns the value and, per traced argument, the local linear map
(:class:`~structjac.transforms._local.Local`); :func:`record` then applies the chain
rule as the transform asks:

* ``"jacobian"`` (forward): each value carries its Jacobian with respect to every
  input as a structure, :math:`J_y = \sum_u (\partial y/\partial u) J_u`;
* ``"tangent"`` (:func:`structjac.jvp`): each value carries its tangent,
  :math:`\dot y = \sum_u (\partial y/\partial u)\,\dot u`;
* ``"reverse"`` (:func:`structjac.grad`, :func:`structjac.vjp`): each value is a node
  of a tape that keeps the vjp of every call; the tape is walked backwards later.

A traced value cannot become a plain ndarray (``np.asarray``, ``float``): that would
drop its derivative, so it raises ``TypeError`` instead of giving a wrong answer, and
so does writing into it (``x[0] = 1``, ``x += 1``, ``out=``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from ._compose import accumulate, compose, diagonal_times, fused_diagonal_times

__all__ = ["Traced", "Trace", "record", "value_of"]


class Trace:
    """One run of a transform: its mode, its number of inputs, and (reverse) its tape."""

    __slots__ = ("mode", "n_inputs", "tape", "input_nodes", "once", "pending", "lazy")

    def __init__(self, mode, n_inputs, once=False):
        if mode not in ("jacobian", "tangent", "reverse"):
            raise ValueError(f"unknown trace mode {mode!r}")
        self.mode = mode
        self.n_inputs = n_inputs
        #: reverse mode: the tape is walked once, with the cotangent 1 (grad,
        #: value_and_grad), so a vjp may hand out an array it holds instead of a copy.
        self.once = once
        #: reverse mode: the number of element-wise calls recorded without being
        #: evaluated yet (:mod:`~structjac.transforms._lazy`), their serial numbers.
        self.pending = 0
        #: element-wise calls may be pending (reverse and jacobian modes; jvp evaluates all).
        self.lazy = mode != "tangent"
        #: reverse mode: tape[i] is a tuple of (parent node, Local) of node i.
        self.tape = []
        self.input_nodes = []

    def new_input(self, value, position, jacobian=None, tangent=None):
        """The traced value of input ``position``."""
        if self.mode == "jacobian":
            payload = [None] * self.n_inputs
            payload[position] = jacobian
            payload = tuple(payload)
        elif self.mode == "tangent":
            payload = tangent
        else:
            payload = len(self.tape)
            self.tape.append(())
            self.input_nodes.append(payload)
        return Traced._make(value, self, payload, None)


def value_of(x):
    """The plain value of a traced value, anything else as it is (a pending value is
    evaluated)."""
    return x.value if type(x) is Traced else x


def _read_only(value):
    value = np.asarray(value)
    if value.flags.writeable:
        value = value.view()
        value.flags.writeable = False
    return value


def record(trace, value, pairs, source=None):
    """Return the traced result of a call: ``value`` and its derivative by the chain rule.

    Parameters
    ----------
    trace : Trace
    value : ndarray
        The call's value.
    pairs : list of (Traced, Local)
        Each traced argument with its local linear map.
    source : tuple, optional
        What produced the value, for rules that look one step back (``("T", x)``:
        the transpose of ``x``).
    """
    value = _read_only(value)
    mode = trace.mode
    if mode == "jacobian":
        jacs = [None] * trace.n_inputs
        for arg, local in pairs:
            incoming = arg._payload
            if local.passthrough:
                for k, J in enumerate(incoming):
                    if J is not None:
                        jacs[k] = J if jacs[k] is None else accumulate(jacs[k], J)
                continue
            J_local = d = None
            for k, J in enumerate(incoming):
                if J is None:
                    continue
                product = None if local.times is None else local.times(J)
                if product is None and local.fused is not None:
                    product = fused_diagonal_times(local.fused[0], local.fused[1], J)
                if product is None and local.diagonal is not None:
                    if d is None:
                        d = local.diagonal()
                    product = diagonal_times(d, J, value.dtype)
                if product is None:
                    if J_local is None:
                        J_local = local.jacobian()
                    product = compose(J_local, J)
                jacs[k] = accumulate(jacs[k], product)
        payload = tuple(jacs)
    elif mode == "tangent":
        payload = None
        for arg, local in pairs:
            t = arg._payload
            if t is None:
                continue
            if local.passthrough:
                contribution = np.reshape(t, value.shape)
            else:
                contribution = (local.jacobian() @ np.reshape(t, -1)).reshape(value.shape)
            payload = contribution if payload is None else payload + contribution
    else:
        payload = len(trace.tape)
        trace.tape.append(tuple((arg._payload, local) for arg, local in pairs))
    return Traced._make(value, trace, payload, source)


_SYMBOLS = {
    "add": "+",
    "sub": "-",
    "mul": "*",
    "truediv": "/",
    "floordiv": "//",
    "mod": "%",
    "pow": "**",
    "matmul": "@",
    "and": "&",
    "or": "|",
    "xor": "^",
    "lshift": "<<",
    "rshift": ">>",
}


def _inplace(name):
    symbol = _SYMBOLS[name]

    def method(self, other):
        raise TypeError(
            f"in-place {symbol}= on a traced value: structjac traces functions that do not "
            f"write into their arrays; write y = y {symbol} other instead"
        )

    method.__name__ = f"__i{name}__"
    return method


class Traced:
    """A value traced by a structjac transform (an ndarray that records numpy calls).

    It behaves as its value does under the numpy functions that have a rule (see the
    user guide, "Your own function"); other numpy functions raise ``TypeError`` naming
    themselves. ``shape``, ``ndim``, ``size``, ``dtype`` and ``len`` are the value's.
    """

    __slots__ = ("_value", "_trace", "_payload", "_source", "_pending")
    __array_priority__ = 2000

    @classmethod
    def _make(cls, value, trace, payload, source):
        self = object.__new__(cls)
        self._value = value
        self._trace = trace
        self._payload = payload
        self._source = source
        self._pending = None
        return self

    @classmethod
    def _make_pending(cls, trace, pending):
        """A value whose element-wise call is recorded but not evaluated yet
        (:class:`structjac.transforms._lazy.Pending`); reading :attr:`value` evaluates it."""
        self = object.__new__(cls)
        self._value = None
        self._trace = trace
        self._payload = None
        self._source = None
        self._pending = pending
        return self

    @property
    def value(self) -> np.ndarray:
        """ndarray: the value (read-only); a pending element-wise call is evaluated first."""
        value = self._value
        if value is None:
            value = self._pending.force(self)
        return value

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("traced values are made by structjac's transforms (jacobian, grad, ...)")

    # ------------------------------------------------------------- metadata
    @property
    def shape(self) -> tuple[int, ...]:
        """tuple of int: the value's shape."""
        value = self._value
        return self._pending.shape if value is None else value.shape

    @property
    def ndim(self) -> int:
        """int: the value's number of axes."""
        return len(self.shape)

    @property
    def size(self) -> int:
        """int: the value's number of entries."""
        value = self._value
        return self._pending.size if value is None else value.size

    @property
    def dtype(self) -> np.dtype:
        """numpy.dtype: the value's dtype."""
        value = self._value
        return self._pending.dtype if value is None else value.dtype

    def __len__(self):
        return len(self.value)

    def __repr__(self):
        return f"Traced({self.value!r}, mode={self._trace.mode!r})"

    # -------------------------------------------------- numpy's dispatch
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        return _rules.call_ufunc(ufunc, method, inputs, kwargs)

    def __array_function__(self, func, types, args, kwargs):
        return _rules.call_function(func, args, kwargs)

    def __array__(self, dtype=None, copy=None):
        raise TypeError(
            "a traced value cannot be converted to a plain ndarray (np.asarray, np.array, "
            "a numpy function without a rule, or assignment into an ndarray): its derivative "
            "would be lost. Use the numpy functions listed in structjac's guide "
            "'Your own function'."
        )

    @staticmethod
    def __structjac_op__(op, method, args, kwargs):
        return _op_rules.call_op(op, method, args, kwargs)

    def _conversion(self, kind):
        raise TypeError(
            f"{kind}() of a traced value: converting it to a Python number would lose its "
            "derivative (control flow on traced values is not traced; compare with np.where)"
        )

    def __float__(self):
        self._conversion("float")

    def __int__(self):
        self._conversion("int")

    def __complex__(self):
        self._conversion("complex")

    def __index__(self):
        self._conversion("index")

    def __bool__(self):
        self._conversion("bool")

    def __iter__(self):
        if self.value.ndim == 0:
            raise TypeError("iteration over a 0-d traced value")
        return (self[i] for i in range(self.value.shape[0]))

    # ------------------------------------------------------------ operators
    def __add__(self, other):
        return _rules.call_ufunc(np.add, "__call__", (self, other), {})

    def __radd__(self, other):
        return _rules.call_ufunc(np.add, "__call__", (other, self), {})

    def __sub__(self, other):
        return _rules.call_ufunc(np.subtract, "__call__", (self, other), {})

    def __rsub__(self, other):
        return _rules.call_ufunc(np.subtract, "__call__", (other, self), {})

    def __mul__(self, other):
        return _rules.call_ufunc(np.multiply, "__call__", (self, other), {})

    def __rmul__(self, other):
        return _rules.call_ufunc(np.multiply, "__call__", (other, self), {})

    def __truediv__(self, other):
        return _rules.call_ufunc(np.divide, "__call__", (self, other), {})

    def __rtruediv__(self, other):
        return _rules.call_ufunc(np.divide, "__call__", (other, self), {})

    def __pow__(self, other):
        return _rules.call_ufunc(np.power, "__call__", (self, other), {})

    def __rpow__(self, other):
        return _rules.call_ufunc(np.power, "__call__", (other, self), {})

    def __matmul__(self, other: ArrayLike) -> "Traced":
        return _rules.call_ufunc(np.matmul, "__call__", (self, other), {})

    def __rmatmul__(self, other):
        return _rules.call_ufunc(np.matmul, "__call__", (other, self), {})

    def __neg__(self):
        return _rules.call_ufunc(np.negative, "__call__", (self,), {})

    def __pos__(self):
        return self

    def __abs__(self):
        return _rules.call_ufunc(np.absolute, "__call__", (self,), {})

    def __lt__(self, other):
        return _rules.call_ufunc(np.less, "__call__", (self, other), {})

    def __le__(self, other):
        return _rules.call_ufunc(np.less_equal, "__call__", (self, other), {})

    def __gt__(self, other):
        return _rules.call_ufunc(np.greater, "__call__", (self, other), {})

    def __ge__(self, other):
        return _rules.call_ufunc(np.greater_equal, "__call__", (self, other), {})

    def __eq__(self, other):
        return _rules.call_ufunc(np.equal, "__call__", (self, other), {})

    def __ne__(self, other):
        return _rules.call_ufunc(np.not_equal, "__call__", (self, other), {})

    __hash__ = None

    for _name in _SYMBOLS:
        locals()[f"__i{_name}__"] = _inplace(_name)
    del _name

    def __floordiv__(self, other):
        return _rules.call_ufunc(np.floor_divide, "__call__", (self, other), {})

    def __mod__(self, other):
        return _rules.call_ufunc(np.remainder, "__call__", (self, other), {})

    # -------------------------------------------------- indexing and views
    def __getitem__(self, key):
        return _rules.getitem(self, key)

    def __setitem__(self, key, value):
        raise TypeError(
            "item assignment into a traced value (x[...] = ...): structjac traces functions "
            "that do not write into their arrays; build the result with np.where, "
            "np.concatenate or np.stack instead"
        )

    @property
    def T(self) -> "Traced":
        """Traced: the transpose (axes reversed)."""
        return _rules.transpose(self, None)

    def transpose(self, *axes: int) -> "Traced":
        """Return the value with its axes permuted, traced (as ``ndarray.transpose``)."""
        if len(axes) == 1 and (axes[0] is None or isinstance(axes[0], (tuple, list))):
            axes = axes[0]
        return _rules.transpose(self, axes or None)

    def reshape(self, *shape: int, order: str = "C") -> "Traced":
        """Return the value reshaped, traced (row-major only, as the Jacobians are)."""
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = shape[0]
        return _rules.reshape(self, shape, order)

    def ravel(self, order: str = "C") -> "Traced":
        """Return the value flattened row-major, traced."""
        return _rules.reshape(self, (-1,), order)

    def flatten(self, order: str = "C") -> "Traced":
        """Return the value flattened row-major, traced (a copy, as ``ndarray.flatten``)."""
        return _rules.reshape(self, (-1,), order)

    def sum(self, axis: int | None = None, keepdims: bool = False, **kwargs: Any) -> "Traced":
        """Return the sum over ``axis``, traced (as ``ndarray.sum``)."""
        return _rules.call_function(np.sum, (self,), dict(axis=axis, keepdims=keepdims, **kwargs))

    def mean(self, axis: int | None = None, keepdims: bool = False, **kwargs: Any) -> "Traced":
        """Return the mean over ``axis``, traced (as ``ndarray.mean``)."""
        return _rules.call_function(np.mean, (self,), dict(axis=axis, keepdims=keepdims, **kwargs))

    def max(self, axis: int | None = None, keepdims: bool = False, **kwargs: Any) -> "Traced":
        """Return the maximum over ``axis``, traced (as ``ndarray.max``)."""
        return _rules.call_function(np.max, (self,), dict(axis=axis, keepdims=keepdims, **kwargs))

    def min(self, axis: int | None = None, keepdims: bool = False, **kwargs: Any) -> "Traced":
        """Return the minimum over ``axis``, traced (as ``ndarray.min``)."""
        return _rules.call_function(np.min, (self,), dict(axis=axis, keepdims=keepdims, **kwargs))

    def dot(self, other: ArrayLike) -> "Traced":
        """Return ``np.dot(self, other)``, traced."""
        return _rules.call_function(np.dot, (self, other), {})


# The rule modules use Traced, so this module imports neither: structjac.transforms
# imports them after this one and installs them here (no import cycle).
_rules = None
_op_rules = None


def _install(numpy_rules, op_rules) -> None:
    global _rules, _op_rules
    _rules, _op_rules = numpy_rules, op_rules
