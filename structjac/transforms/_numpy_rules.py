r"""The numpy-function rules: numpy function -> value, local Jacobian structure, vjp.

Read as a table. Element-wise functions give a diagonal over the (broadcast) output,
:math:`\operatorname{diag}(f')\,B` with :math:`B` the broadcast map of
:func:`~structjac.transforms._local.broadcast_jacobian`; a derivative that is one
number (``x * 2``, ``x + b``, ``-x``) keeps a :class:`~structjac.ScaledIdentity` or
:class:`~structjac.Identity`. Linear algebra and reductions give Kronecker products,
rows and selections:

================================  =============================================  =====================================
numpy                             local Jacobian                                 vjp :math:`\bar u`
================================  =============================================  =====================================
``np.tanh(x)``                    :math:`\operatorname{diag}((1+y)(1-y))`        fused kernel, from the output
``scipy.special.expit(x)``        :math:`\operatorname{diag}(y(1-y))`            fused kernel, from the output
``np.exp``, ``np.expm1``          :math:`\operatorname{diag}(y)`, ``y + 1``      :math:`\bar y \odot f'`
``np.log``, ``np.log1p``          :math:`\operatorname{diag}(1/x)`, ``1/(1+x)``
``np.sqrt``, ``np.square``        ``0.5 / y``, ``2 x``
``np.sin``, ``np.cos``            ``cos x``, ``-sin x``
``np.abs``                        ``sign(x)`` (0 at 0; NaN at NaN)
``u + v``, ``u - v``              :math:`I`, :math:`\pm I` (broadcast: :math:`B`)
``u * v``, ``u / v``              ``v``, ``u``; ``1/v``, ``-y/v``
``u ** v``                        :math:`v u^{v-1}`, :math:`y \log u` (0 at u = 0)
``np.maximum(u, v)``              ``u >= v`` for u, ``u < v`` for v (u wins ties)
``np.minimum(u, v)``              ``u <= v`` for u, ``u > v`` for v (u wins ties)
``np.where(c, u, v)``             ``c`` for u, ``not c`` for v (c a constant)
``A @ B``, ``np.dot``             :math:`I_p \otimes B^T` for A, :math:`A \otimes I_r` for B
``C @ W.T`` (W traced)            :class:`~structjac.StackedKronecker` ``(C, m)``
``np.sum``, ``np.mean``           a row :math:`c\mathbf 1^T` (all), :math:`I \otimes \mathbf 1^T` (axis)
``np.max``, ``np.min``            the first extremal entry: per row a one-hot block
                                  (BlockDiagonal) over trailing axes, else Sparse
``reshape``, ``ravel``            the input's Jacobian as it is
``.T``, ``np.transpose``          a permutation (Sparse)
``x[key]``                        a selection (Sparse), the identity for ``x[...]``
``np.concatenate``, ``np.stack``  an embedding per part (Sparse)
================================  =============================================  =====================================

In reverse mode the rules marked by a ``fused`` entry (``exp``, ``expm1``, ``log``,
``log1p``, ``sqrt``, ``square``, ``tanh``, ``expit``, ``u * v``, ``u / v``, ``u ** 2``)
apply :math:`\bar u = \bar y \odot f'` in one Numba pass
(:mod:`~structjac.transforms._kernels`), adding it in place to the cotangent ``u``
already received; a derivative of :math:`\pm 1` (``+``, ``-``) passes the cotangent on
without multiplying.

On arrays of at least ``structjac.transforms._lazy.MIN_SIZE`` entries, ``grad``,
``vjp`` and ``jacobian`` keep the element-wise calls of one shape and dtype pending and
evaluate them, with their derivatives, in one chunked pass (a sum or mean of them in
reverse mode, the diagonal of their Jacobian in forward mode); the results are those
of the rules above (:mod:`~structjac.transforms._lazy`).

Comparisons (``x > 0``), ``np.sign``, ``np.floor`` and the other piecewise-constant
functions return plain ndarrays: their derivative is zero wherever it exists. Every
other numpy function, a ufunc method (``np.add.reduce``), ``out=`` and the other ufunc
keywords raise ``TypeError`` naming what has no rule.
"""

from __future__ import annotations

import math
import sys
from typing import Callable, NamedTuple

import numpy as np

from .. import kernels as _kernels
from ..structures import (
    BlockDiagonal,
    BlockRow,
    Dense,
    Diagonal,
    Identity,
    Kronecker,
    ScaledIdentity,
    StackedKronecker,
)
from . import _kernels as _fk
from . import _fast, _lazy
from ._local import (
    Local,
    elementwise_local,
    identity_local,
    reduction_jacobian,
    selection_jacobian,
)
from ._tracer import Traced, _read_only, record

__all__ = [
    "UNARY",
    "BINARY",
    "PIECEWISE_CONSTANT",
    "FUNCTIONS",
    "call_ufunc",
    "call_function",
    "getitem",
    "transpose",
    "reshape",
    "supported",
]


# ============================================================  helpers
def _trace_of(args):
    trace = None
    for a in args:
        if type(a) is Traced:
            if trace is None:
                trace = a._trace
            elif a._trace is not trace:
                raise TypeError(
                    "values traced by two different transforms meet in one numpy call; "
                    "nested transforms (e.g. jacobian(jacobian(f))) are not supported"
                )
    return trace


def _value(a):
    return a.value if type(a) is Traced else a


def _quiet(function):
    """Run a derivative without numpy's floating-point warnings (the value warned already)."""

    def run(*args):
        with np.errstate(all="ignore"):
            return function(*args)

    return run


# ============================================================  element-wise, one argument
class Unary(NamedTuple):
    """One row of the unary table: :math:`f'` from ``(x, y = f(x))``, an optional fused vjp
    (``vjp(x, y, g)``), and the derivative as a code of :mod:`~structjac.transforms._kernels`
    with the array it reads (``"x"`` or ``"y"``) for the one-pass reverse kernels."""

    math: str
    derivative: Callable
    vjp: Callable | None = None
    fused: tuple | None = None


def _sign_nan(x, y):
    return np.sign(x)  # sign(nan) is nan: NaN in, NaN out


UNARY = {
    np.negative: Unary("-x: -I", lambda x, y: -1),
    np.positive: Unary("+x: I", lambda x, y: 1),
    np.exp: Unary("exp: diag(y)", lambda x, y: y, fused=(_fk.TIMES, "y")),
    np.expm1: Unary("expm1: diag(y + 1)", lambda x, y: y + 1, fused=(_fk.TIMES_AP1, "y")),
    np.log: Unary("log: diag(1/x)", lambda x, y: 1 / x, fused=(_fk.OVER, "x")),
    np.log1p: Unary("log1p: diag(1/(1+x))", lambda x, y: 1 / (1 + x), fused=(_fk.OVER_1PA, "x")),
    np.sqrt: Unary("sqrt: diag(1/(2y))", lambda x, y: 0.5 / y, fused=(_fk.HALF_OVER, "y")),
    np.square: Unary("square: diag(2x)", lambda x, y: 2 * x, fused=(_fk.TIMES_2A, "x")),
    np.absolute: Unary("abs: diag(sign(x)), 0 at 0", _sign_nan),
    np.sin: Unary("sin: diag(cos x)", lambda x, y: np.cos(x)),
    np.cos: Unary("cos: diag(-sin x)", lambda x, y: -np.sin(x)),
    np.tanh: Unary(
        "tanh: diag((1+y)(1-y))",
        lambda x, y: (1 + y) * (1 - y),
        lambda x, y, g: _kernels.tanh_vjp_from_output(y, g),
        fused=(_fk.TANH_Y, "y"),
    ),
}

#: Ufuncs of other packages, found by module and name when first met.
_FOREIGN_UNARY = {
    ("scipy.special", "expit"): Unary(
        "expit: diag(y(1-y))",
        lambda x, y: y * (1 - y),
        lambda x, y, g: _kernels.sigmoid_vjp_from_output(y, g),
        fused=(_fk.SIGMOID_Y, "y"),
    ),
}


def _unary(ufunc, spec, x):
    xv = x.value
    y = np.asarray(ufunc(xv))
    trace = x._trace
    if trace.mode == "jacobian" and _fast.ENABLED and y.shape == xv.shape:
        fused = None
        if spec.fused is not None:
            code, which = spec.fused
            fused = (code, xv if which == "x" else y)
        jacs = _fast.diagonal_jacobians(
            [(x._payload, fused, _quiet(lambda: spec.derivative(xv, y)))], y.dtype, y.size
        )
        if jacs is not None:
            return Traced._make(_read_only(y), trace, jacs, None)
    derivative = _quiet(lambda: spec.derivative(xv, y))
    vjp = None
    if (
        spec.vjp is not None
        and x._trace.mode == "reverse"
        and y.dtype.kind == "f"
        and y.dtype == xv.dtype
    ):
        fused_vjp = spec.vjp

        def vjp(g):
            g = np.asarray(g, dtype=y.dtype)
            return fused_vjp(xv, y, g)

    fused = None
    if spec.fused is not None:
        code, which = spec.fused
        fused = (code, xv if which == "x" else y)
    local = elementwise_local(xv.shape, y.shape, y.dtype, derivative, vjp, fused)
    return record(x._trace, y, [(x, local)])


# ============================================================  element-wise, two arguments
class Binary(NamedTuple):
    """One row of the binary table: :math:`\\partial y/\\partial u`, :math:`\\partial y/\\partial v`
    from ``(u, v, y)``, each broadcastable to the output (a number stays a scaled identity)."""

    math: str
    du: Callable
    dv: Callable


def _power_du(u, v, y):
    if _ndim(v) == 0:
        v = np.asarray(v)[()]
        if v == 0:
            return 0
        if v == 1:
            return 1
        if v == 2:
            return 2 * u
    return np.where(np.asarray(v) == 0, 0, v * np.power(u, v - 1))


def _power_dv(u, v, y):
    return np.where(np.asarray(u) == 0, 0, y * np.log(np.where(np.asarray(u) == 0, 1, u)))


def _nan_of(y, d):
    """NaN where the output is NaN (NaN in, NaN out), else ``d``."""
    if _ndim(y) == 0 and not np.isnan(y):
        return d
    nan = np.isnan(y)
    if nan.any():
        return np.where(nan, np.nan, d)
    return d


BINARY = {
    np.add: Binary("u + v: I, I", lambda u, v, y: 1, lambda u, v, y: 1),
    np.subtract: Binary("u - v: I, -I", lambda u, v, y: 1, lambda u, v, y: -1),
    np.multiply: Binary("u * v: diag(v), diag(u)", lambda u, v, y: v, lambda u, v, y: u),
    np.divide: Binary(
        "u / v: diag(1/v), diag(-y/v)", lambda u, v, y: np.divide(1, v), lambda u, v, y: -y / v
    ),
    np.power: Binary("u ** v: diag(v u^(v-1)), diag(y log u)", _power_du, _power_dv),
    np.maximum: Binary(
        "maximum: diag(u >= v), diag(u < v) (u wins ties)",
        lambda u, v, y: _nan_of(y, np.greater_equal(u, v)),
        lambda u, v, y: _nan_of(y, np.less(u, v)),
    ),
    np.minimum: Binary(
        "minimum: diag(u <= v), diag(u > v) (u wins ties)",
        lambda u, v, y: _nan_of(y, np.less_equal(u, v)),
        lambda u, v, y: _nan_of(y, np.greater(u, v)),
    ),
}


def _ndim(a):
    """``np.ndim`` without its dispatch (the per-call cost of the tracer counts)."""
    if isinstance(a, (np.ndarray, np.generic)):
        return a.ndim
    return 0 if isinstance(a, (int, float)) else np.ndim(a)


def _as_float_derivative(d, dtype):
    if _ndim(d) == 0:
        return np.asarray(d, dtype=dtype)[()] if not isinstance(d, (int, float)) else d
    return np.asarray(d, dtype=dtype)


def _ONE():
    return 1


def _MINUS_ONE():
    return -1


def _binary_fused(ufunc, av, bv, y):
    """The one-pass reverse kernels of ``u * v``, ``u / v`` (for u) and ``u ** 2`` (for u):
    ``(code, a)`` for u and for v, or None."""
    if ufunc is np.multiply:
        return (_fk.TIMES, bv), (_fk.TIMES, av)
    if ufunc is np.divide:
        return (_fk.OVER, bv), None
    if ufunc is np.power and _ndim(bv) == 0 and np.asarray(bv)[()] == 2:
        return (_fk.TIMES_2A, av), None
    return None, None


def _binary_fast(ufunc, spec, a, b, av, bv, y, fused_u, fused_v):
    """The Jacobians of ``ufunc(a, b)`` by :func:`~structjac.transforms._fast.diagonal_jacobians`
    (the same products as the general path), or None: the general path."""
    shape, dtype = y.shape, y.dtype
    terms = []
    additive = ufunc is np.add or ufunc is np.subtract
    if type(a) is Traced:
        if av.shape != shape:
            return None
        du = _ONE if additive else _quiet(lambda: _as_float_derivative(spec.du(av, bv, y), dtype))
        terms.append((a._payload, None if additive else fused_u, du))
    if type(b) is Traced:
        if bv.shape != shape:
            return None
        if additive:
            dv = _MINUS_ONE if ufunc is np.subtract else _ONE
        else:
            dv = _quiet(lambda: _as_float_derivative(spec.dv(av, bv, y), dtype))
        terms.append((b._payload, None if additive else fused_v, dv))
    return _fast.diagonal_jacobians(terms, dtype, y.size)


def _binary(ufunc, spec, a, b):
    trace = _trace_of((a, b))
    av, bv = _value(a), _value(b)
    if ufunc is np.power and type(b) is not Traced and _ndim(bv) == 0 and bv == 2:
        y = np.asarray(np.square(av))  # the same numbers as pow(u, 2), several times faster
        if y.dtype != np.result_type(av, bv):
            y = np.asarray(ufunc(av, bv))
    else:
        y = np.asarray(ufunc(av, bv))
    fused_u, fused_v = _binary_fused(ufunc, av, bv, y)
    if trace.mode == "jacobian" and _fast.ENABLED:
        jacs = _binary_fast(ufunc, spec, a, b, av, bv, y, fused_u, fused_v)
        if jacs is not None:
            return Traced._make(_read_only(y), trace, jacs, None)
    pairs = []
    if ufunc is np.add or ufunc is np.subtract:  # +-1: nothing to compute, nothing to warn
        if type(a) is Traced:
            pairs.append((a, elementwise_local(np.shape(av), y.shape, y.dtype, _ONE)))
        if type(b) is Traced:
            minus = _MINUS_ONE if ufunc is np.subtract else _ONE
            pairs.append((b, elementwise_local(np.shape(bv), y.shape, y.dtype, minus)))
        return record(trace, y, pairs)
    if type(a) is Traced:
        du = _quiet(lambda: _as_float_derivative(spec.du(av, bv, y), y.dtype))
        pairs.append((a, elementwise_local(np.shape(av), y.shape, y.dtype, du, fused=fused_u)))
    if type(b) is Traced:
        dv = _quiet(lambda: _as_float_derivative(spec.dv(av, bv, y), y.dtype))
        pairs.append((b, elementwise_local(np.shape(bv), y.shape, y.dtype, dv, fused=fused_v)))
    return record(trace, y, pairs)


# ============================================================  piecewise constant: value only
PIECEWISE_CONSTANT = frozenset(
    {
        np.greater,
        np.greater_equal,
        np.less,
        np.less_equal,
        np.equal,
        np.not_equal,
        np.logical_and,
        np.logical_or,
        np.logical_xor,
        np.logical_not,
        np.isnan,
        np.isinf,
        np.isfinite,
        np.signbit,
        np.sign,
        np.floor,
        np.ceil,
        np.rint,
        np.trunc,
    }
)


# ============================================================  matmul and dot
def _matmul(a, b, name="numpy.matmul"):
    trace = _trace_of((a, b))
    av, bv = np.asarray(_value(a)), np.asarray(_value(b))
    for operand, v in (("first", av), ("second", bv)):
        if v.ndim not in (1, 2):
            raise TypeError(
                f"{name} with a traced operand: the {operand} operand has shape {v.shape}; "
                "the rule covers 1-D and 2-D operands (stacks of matrices have no rule)"
            )
    y = np.asarray(np.matmul(av, bv))
    dtype = y.dtype
    A2 = av if av.ndim == 2 else av[None, :]
    B2 = bv if bv.ndim == 2 else bv[:, None]
    p, q = A2.shape
    r = B2.shape[1]
    pairs = []
    if type(a) is Traced:

        def jac_a():
            # vec_r(A B) = (I_p (x) B^T) vec_r(A)
            Bt = Dense(np.array(B2.T, dtype=dtype), copy=False)
            return Bt if p == 1 else Kronecker(Identity(p, dtype=dtype), Bt)

        def vjp_a(g):
            return (np.reshape(g, (p, r)) @ B2.T).reshape(av.shape)

        pairs.append((a, Local(jac_a, vjp_a)))
    if type(b) is Traced:
        source = b._source
        if source is not None and source[0] == "T" and source[1]._trace is trace:
            # C @ W.T with W traced: d vec_r(C W^T) / d vec_r(W) = [I_m (x) c^(k)T]_k
            W = source[1]

            def jac_w():
                return StackedKronecker(np.array(A2, dtype=dtype), r, copy=False)

            def vjp_w(g):
                return np.reshape(g, (p, r)).T @ A2

            pairs.append((W, Local(jac_w, vjp_w)))
        else:

            def jac_b():
                # vec_r(A B) = (A (x) I_r) vec_r(B)
                Am = Dense(np.array(A2, dtype=dtype), copy=False)
                return Am if r == 1 else Kronecker(Am, Identity(r, dtype=dtype))

            def vjp_b(g):
                return (A2.T @ np.reshape(g, (p, r))).reshape(bv.shape)

            pairs.append((b, Local(jac_b, vjp_b)))
    return record(trace, y, pairs)


def _dot(a, b, out=None):
    _no_out("numpy.dot", out)
    if np.ndim(_value(a)) == 0 or np.ndim(_value(b)) == 0:
        return call_ufunc(np.multiply, "__call__", (a, b), {})
    return _matmul(a, b, "numpy.dot")


# ============================================================  the ufunc entry point
def _ufunc_name(ufunc):
    module = getattr(ufunc, "__module__", None) or "numpy"
    module = "numpy" if module.startswith("numpy") else module
    return f"{module}.{ufunc.__name__}"


def _foreign(ufunc):
    for (module, name), spec in _FOREIGN_UNARY.items():
        if ufunc.__name__ == name:
            owner = sys.modules.get(module)
            if owner is not None and getattr(owner, name, None) is ufunc:
                return spec
    return None


# ============================================================  pending calls (reverse mode)
def _unary_back(spec):
    """The reverse-pass entry of a unary rule for :mod:`~structjac.transforms._lazy`."""
    if spec.fused is not None:
        code, which = spec.fused
        return (_lazy._KERNEL, (code, 0 if which == "x" else -1))
    return (_lazy._GENERIC, spec.derivative)


_SIGN = {np.negative: -1, np.positive: 1}


def _pending_unary(ufunc, spec, x):
    sign = _SIGN.get(ufunc)
    entry = (_lazy._SCALE, sign) if sign is not None else _unary_back(spec)
    return _lazy.pending_call(
        ufunc, lambda: _unary(ufunc, spec, x), (x,), x._trace, lambda numbers: (entry,)
    )


def _binary_back(ufunc, spec, a, b, numbers):
    """Per argument, the reverse-pass entry of a binary rule (None: a constant), or None
    to evaluate the call now."""
    u, v = numbers
    tu, tv = type(a) is Traced, type(b) is Traced
    K, S, G = _lazy._KERNEL, _lazy._SCALE, _lazy._GENERIC
    if ufunc is np.add:
        du, dv = (S, 1), (S, 1)
    elif ufunc is np.subtract:
        du, dv = (S, 1), (S, -1)
    elif ufunc is np.multiply:
        du = (S, v) if v is not None else (K, (_fk.TIMES, 1))
        dv = (S, u) if u is not None else (K, (_fk.TIMES, 0))
    elif ufunc is np.divide:
        if v is not None:
            with np.errstate(all="ignore"):
                du = (S, np.divide(1, v))  # as the rule's derivative (1/0 is inf)
        else:
            du = (K, (_fk.OVER, 1))
        dv = (G, spec.dv)
    elif ufunc is np.power:
        if tv and tu:
            return None
        du = (K, (_fk.TIMES_2A, 0)) if v is not None and v == 2 else (G, spec.du)
        dv = (G, spec.dv)
    else:
        du, dv = (G, spec.du), (G, spec.dv)
    return (du if tu else None, dv if tv else None)


def _pending_binary(ufunc, spec, a, b):
    trace = a._trace if type(a) is Traced else b._trace
    return _lazy.pending_call(
        ufunc,
        lambda: _binary(ufunc, spec, a, b),
        (a, b),
        trace,
        lambda numbers: _binary_back(ufunc, spec, a, b, numbers),
    )


def call_ufunc(ufunc, method, inputs, kwargs):
    """Apply the rule of ``ufunc`` to traced ``inputs`` (``__array_ufunc__``)."""
    if method == "__call__" and not kwargs:
        spec = UNARY.get(ufunc)
        if spec is not None:
            x = inputs[0]
            if x._trace.lazy and x.size >= _lazy.MIN_SIZE:
                pending = _pending_unary(ufunc, spec, x)
                if pending is not None:
                    return pending
            return _unary(ufunc, spec, x)
        spec = BINARY.get(ufunc)
        if spec is not None:
            a, b = inputs
            t = a if type(a) is Traced else b
            if type(t) is Traced and t._trace.lazy and t.size >= _lazy.MIN_SIZE:
                pending = _pending_binary(ufunc, spec, a, b)
                if pending is not None:
                    return pending
            return _binary(ufunc, spec, a, b)
    name = _ufunc_name(ufunc)
    if method != "__call__":
        raise TypeError(
            f"{name}.{method} on a traced value has no rule (ufunc methods such as "
            f".reduce, .accumulate, .outer and .at are not traced); use np.sum, np.mean "
            "or an explicit expression"
        )
    if kwargs:
        if "out" in kwargs:
            raise TypeError(
                f"{name}(..., out=...) with a traced value: writing into an output array "
                "is not traced; use the returned value"
            )
        raise TypeError(
            f"{name} with keyword arguments {sorted(kwargs)} on a traced value has no rule "
            "(where=, dtype=, casting= ... are not traced)"
        )
    spec = UNARY.get(ufunc)
    if spec is not None:
        return _unary(ufunc, spec, inputs[0])
    spec = BINARY.get(ufunc)
    if spec is not None:
        return _binary(ufunc, spec, inputs[0], inputs[1])
    if ufunc is np.matmul:
        return _matmul(inputs[0], inputs[1])
    if ufunc in PIECEWISE_CONSTANT:
        _trace_of(inputs)
        return ufunc(*[_value(a) for a in inputs])
    spec = _foreign(ufunc)
    if spec is not None and len(inputs) == 1:
        if inputs[0]._trace.lazy and inputs[0].size >= _lazy.MIN_SIZE:
            pending = _pending_unary(ufunc, spec, inputs[0])
            if pending is not None:
                return pending
        return _unary(ufunc, spec, inputs[0])
    raise TypeError(
        f"{name} has no rule for traced values; structjac traces the numpy functions "
        "listed in its guide 'Your own function' (write the function with those, or "
        "make it an op with structjac.elementwise)"
    )


# ============================================================  shape functions
def reshape(x, shape, order="C"):
    """``x.reshape(shape)``: the same flat values, so the same Jacobian."""
    if order != "C":
        raise TypeError(
            f"reshape with order={order!r} of a traced value has no rule; the Jacobians are "
            "row-major (order='C')"
        )
    y = np.reshape(x.value, shape)
    return record(x._trace, y, [(x, identity_local(x.value.shape))])


def transpose(x, axes):
    """``np.transpose(x, axes)``: a permutation of the flat values."""
    xv = x.value
    if axes is not None:
        axes = tuple(int(a) % xv.ndim if xv.ndim else int(a) for a in axes)
    y = np.transpose(xv, axes)
    perm = tuple(range(xv.ndim))[::-1] if axes is None else axes
    if xv.ndim < 2 or perm == tuple(range(xv.ndim)):
        return record(x._trace, y, [(x, identity_local(xv.shape))])
    n = xv.size
    inverse = np.argsort(perm)

    def jacobian():
        cols = np.arange(n).reshape(xv.shape).transpose(perm).reshape(-1)
        return selection_jacobian(np.arange(n), cols, (n, n), y.dtype)

    def vjp(g):
        return np.reshape(g, y.shape).transpose(inverse)

    source = ("T", x) if xv.ndim == 2 else None
    return record(x._trace, y, [(x, Local(jacobian, vjp))], source)


def _is_basic_key(key):
    parts = key if isinstance(key, tuple) else (key,)
    return all(isinstance(k, (slice, int, np.integer, type(None))) or k is Ellipsis for k in parts)


def getitem(x, key):
    """``x[key]``, basic or integer-array indexing: a selection of the flat values."""
    parts = key if isinstance(key, tuple) else (key,)
    if any(type(k) is Traced for k in parts):
        raise TypeError(
            "indexing with a traced index has no rule: an index is an integer (or boolean) "
            "constant, not a differentiable value"
        )
    xv = x.value
    y = xv[key]
    positions = np.arange(xv.size).reshape(xv.shape)[key]
    n, m = xv.size, np.size(positions)
    basic = _is_basic_key(key)

    def jacobian():
        return selection_jacobian(np.arange(m), positions, (m, n), y.dtype)

    def vjp(g):
        g = np.asarray(g)
        if basic:
            out = np.zeros(xv.shape, dtype=g.dtype)
            out[key] = g
            return out
        flat = np.zeros(n, dtype=g.dtype)
        np.add.at(flat, np.reshape(positions, -1), np.reshape(g, -1))
        return flat.reshape(xv.shape)

    return record(x._trace, np.asarray(y), [(x, Local(jacobian, vjp))])


def _join(kind, arrays, axis):
    if isinstance(arrays, Traced):
        raise TypeError(f"numpy.{kind} of one traced array: pass a list or tuple of arrays")
    arrays = list(arrays)
    trace = _trace_of(arrays)
    values = [np.asarray(_value(a)) for a in arrays]
    join = np.concatenate if kind == "concatenate" else np.stack
    y = join(values, axis=axis)
    offsets = np.cumsum([0] + [v.size for v in values])
    markers = [np.arange(v.size).reshape(v.shape) + off for v, off in zip(values, offsets[:-1])]
    order = join(markers, axis=axis).reshape(-1)
    pairs = []
    for i, a in enumerate(arrays):
        if type(a) is not Traced:
            continue
        lo, hi, shape = offsets[i], offsets[i + 1], values[i].shape

        def parts(lo=lo, hi=hi):
            rows = np.flatnonzero((order >= lo) & (order < hi))
            return rows, order[rows] - lo

        def jacobian(parts=parts, size=hi - lo):
            rows, cols = parts()
            return selection_jacobian(rows, cols, (y.size, size), y.dtype)

        def vjp(g, parts=parts, size=hi - lo, shape=shape):
            rows, cols = parts()
            g = np.reshape(g, -1)
            out = np.empty(size, dtype=g.dtype)
            out[cols] = g[rows]
            return out.reshape(shape)

        pairs.append((a, Local(jacobian, vjp)))
    return record(trace, y, pairs)


# ============================================================  reductions
def _axes(axis, ndim, name):
    if axis is None:
        return tuple(range(ndim))
    axis = axis if isinstance(axis, tuple) else (axis,)
    out = []
    for a in axis:
        a = int(a)
        if not -ndim <= a < max(ndim, 1):
            raise np.exceptions.AxisError(
                f"{name}: axis {a} is out of bounds for an array of dimension {ndim}"
            )
        out.append(a % ndim if ndim else 0)
    return tuple(sorted(set(out)))


def _no_out(name, out):
    if out is not None:
        raise TypeError(
            f"{name}(..., out=...) with a traced value: writing into an output array is not traced"
        )


def _reduce(name, x, axis, keepdims, mean, dtype=None, out=None, **rest):
    _no_out(name, out)
    if dtype is not None or rest:
        extra = sorted(rest) + (["dtype"] if dtype is not None else [])
        raise TypeError(f"{name} of a traced value with {extra} has no rule")
    if type(x) is not Traced:
        raise TypeError(f"{name}: the traced value must be the array argument")
    if (
        x._value is None
        and x._trace.mode == "reverse"
        and len(_axes(axis, len(x.shape), name)) == len(x.shape)
    ):
        result = _fused_reduce(x, mean, keepdims)
        if result is not None:
            return result
    xv = x.value
    axes = _axes(axis, xv.ndim, name)
    function = np.mean if mean else np.sum
    y = np.asarray(function(xv, axis=axis, keepdims=keepdims))
    count = math.prod(xv.shape[a] for a in axes)
    scale = 1.0 / count if (mean and count) else (np.nan if mean else 1.0)
    kept = tuple(1 if i in axes else s for i, s in enumerate(xv.shape))

    def jacobian():
        return reduction_jacobian(xv.shape, axes, scale, y.dtype)

    def vjp(g):
        g = np.reshape(g, kept)
        g = g * scale if scale != 1 else g
        return np.broadcast_to(g, xv.shape)

    times = None
    if len(axes) == xv.ndim and xv.size:

        def times(J):
            # c 1^T diag(d) = the row c d^T (the table's BlockRow @ Diagonal, built once)
            if type(J) not in (Diagonal, ScaledIdentity, Identity) or J.shape[0] != xv.size:
                return None
            dtype = np.result_type(y.dtype, J.dtype)
            c = np.asarray(scale, dtype=y.dtype)  # as the row c 1^T holds it
            row = np.multiply(J.values, c, dtype=dtype)
            return BlockRow(0, row, 1, copy=False)

    return record(x._trace, y, [(x, Local(jacobian, vjp, times=times))])


def _reverse_only():
    raise RuntimeError("the fused reduction of pending element-wise calls is reverse mode only")


def _fused_vjp(trace, G, shape, dtype):
    r"""The vjp :math:`\bar s\,G` of a fused sum or mean for one traced array."""
    if not isinstance(G, np.ndarray):
        c = np.asarray(G, dtype=dtype)

        def vjp_number(g):
            return np.broadcast_to(np.reshape(g, ()) * c, shape)

        return vjp_number
    held = [G]

    def vjp(g):
        g = np.reshape(g, ())
        if trace.once and held[0] is not None and g == 1:
            G1, held[0] = held[0], None  # walked once: hand the array out, no copy
            return G1.reshape(shape)
        return (G * g).reshape(shape)

    return vjp


def _fused_reduce(x, mean, keepdims):
    """``np.sum``/``np.mean`` of all of a pending value: the chunked pass of
    :func:`~structjac.transforms._lazy.fused_reduction`, one tape entry."""
    fused = _lazy.fused_reduction(x, mean)
    if fused is None:
        return None
    total, grads = fused
    dtype = x.dtype
    y = np.asarray(total, dtype=dtype)
    if keepdims:
        y = y.reshape((1,) * len(x.shape))
    pairs = [
        (leaf, Local(_reverse_only, _fused_vjp(x._trace, G, leaf.shape, leaf.dtype)))
        for leaf, G in grads
        if G is not None
    ]
    return record(x._trace, y, pairs)


def _sum(a, axis=None, dtype=None, out=None, keepdims=False, **rest):
    return _reduce("numpy.sum", a, axis, keepdims, False, dtype, out, **rest)


def _mean(a, axis=None, dtype=None, out=None, keepdims=False, **rest):
    return _reduce("numpy.mean", a, axis, keepdims, True, dtype, out, **rest)


def _extremum(name, chooser, a, axis=None, out=None, keepdims=False, **rest):
    _no_out(name, out)
    if rest:
        raise TypeError(f"{name} of a traced value with {sorted(rest)} has no rule")
    if type(a) is not Traced:
        raise TypeError(f"{name}: the traced value must be the array argument")
    xv = a.value
    axes = _axes(axis, xv.ndim, name)
    function = np.max if chooser is np.argmax else np.min
    y = np.asarray(function(xv, axis=axis, keepdims=keepdims))
    kept = [i for i in range(xv.ndim) if i not in axes]
    order = kept + list(axes)
    K = math.prod(xv.shape[i] for i in kept)
    positions = np.arange(xv.size).reshape(xv.shape).transpose(order).reshape(K, -1)
    values = xv.transpose(order).reshape(K, -1)
    # the first extremal entry of each reduced group carries the derivative
    where = chooser(values, axis=1)
    chosen = positions[np.arange(K), where]
    per_sample = K > 1 and kept == list(range(len(kept)))

    def jacobian():
        if per_sample:
            # the reduced axes trail: output k depends on sample k only, one entry each
            blocks = np.zeros((K, 1, values.shape[1]), dtype=y.dtype)
            blocks[np.arange(K), 0, where] = 1
            return BlockDiagonal(blocks, copy=False)
        return selection_jacobian(np.arange(K), chosen, (K, xv.size), y.dtype)

    def vjp(g):
        flat = np.zeros(xv.size, dtype=np.asarray(g).dtype)
        flat[chosen] = np.reshape(g, -1)
        return flat.reshape(xv.shape)

    return record(a._trace, y, [(a, Local(jacobian, vjp))])


def _max(a, axis=None, out=None, keepdims=False, **rest):
    return _extremum("numpy.max", np.argmax, a, axis, out, keepdims, **rest)


def _min(a, axis=None, out=None, keepdims=False, **rest):
    return _extremum("numpy.min", np.argmin, a, axis, out, keepdims, **rest)


# ============================================================  the rest
def _where(condition, x=None, y=None):
    if x is None or y is None:
        raise TypeError(
            "numpy.where(condition) (the indices form) of a traced value has no rule; "
            "use numpy.where(condition, x, y)"
        )
    trace = _trace_of((x, y))
    c = np.asarray(_value(condition), dtype=bool)
    xv, yv = _value(x), _value(y)
    out = np.asarray(np.where(c, xv, yv))
    pairs = []
    if type(x) is Traced:
        pairs.append(
            (x, elementwise_local(np.shape(xv), out.shape, out.dtype, lambda: c.astype(out.dtype)))
        )
    if type(y) is Traced:
        pairs.append(
            (
                y,
                elementwise_local(
                    np.shape(yv), out.shape, out.dtype, lambda: (~c).astype(out.dtype)
                ),
            )
        )
    if not pairs:
        return out
    return record(trace, out, pairs)


def _reshape(a, shape=None, order="C", *, newshape=None, copy=None):
    return reshape(a, shape if shape is not None else newshape, order)


def _ravel(a, order="C"):
    return reshape(a, (-1,), order)


def _transpose(a, axes=None):
    return transpose(a, axes)


def _squeeze(a, axis=None):
    return reshape(a, np.squeeze(np.empty(a.shape, dtype=np.bool_), axis=axis).shape)


def _expand_dims(a, axis):
    return reshape(a, np.expand_dims(np.empty(a.shape, dtype=np.bool_), axis).shape)


def _copy(a, order="K", subok=False):
    return reshape(a, a.shape)


def _concatenate(arrays, axis=0, out=None, **rest):
    _no_out("numpy.concatenate", out)
    if rest:
        raise TypeError(f"numpy.concatenate of traced values with {sorted(rest)} has no rule")
    return _join("concatenate", arrays, axis)


def _stack(arrays, axis=0, out=None, **rest):
    _no_out("numpy.stack", out)
    if rest:
        raise TypeError(f"numpy.stack of traced values with {sorted(rest)} has no rule")
    return _join("stack", arrays, axis)


def _constant_like(function):
    def like(a, *args, **kwargs):
        return function(_value(a), *args, **kwargs)

    return like


FUNCTIONS = {
    np.sum: _sum,
    np.mean: _mean,
    np.max: _max,
    np.amax: _max,
    np.min: _min,
    np.amin: _min,
    np.reshape: _reshape,
    np.ravel: _ravel,
    np.transpose: _transpose,
    np.squeeze: _squeeze,
    np.expand_dims: _expand_dims,
    np.copy: _copy,
    np.dot: _dot,
    np.where: _where,
    np.concatenate: _concatenate,
    np.stack: _stack,
    # value-only: shapes and constants of the same shape
    np.shape: lambda a: np.shape(_value(a)),
    np.ndim: lambda a: np.ndim(_value(a)),
    np.size: lambda a, axis=None: np.size(_value(a), axis),
    np.zeros_like: _constant_like(np.zeros_like),
    np.ones_like: _constant_like(np.ones_like),
    np.full_like: _constant_like(np.full_like),
    np.empty_like: _constant_like(np.empty_like),
}


def call_function(func, args, kwargs):
    """Apply the rule of the numpy function ``func`` (``__array_function__``)."""
    rule = FUNCTIONS.get(func)
    if rule is None:
        module = getattr(func, "__module__", "numpy") or "numpy"
        module = "numpy" if module.startswith("numpy") else module
        raise TypeError(
            f"{module}.{func.__name__} has no rule for traced values; structjac traces the "
            "numpy functions listed in its guide 'Your own function'"
        )
    return rule(*args, **kwargs)


def supported() -> dict[str, list[str]]:
    """Return the names of the traced numpy functions, by kind.

    Returns
    -------
    dict of str to list of str
        ``"unary"``, ``"binary"``, ``"functions"``, ``"piecewise constant"``.
    """
    return {
        "unary": sorted(_ufunc_name(u) for u in UNARY) + [f"{m}.{n}" for m, n in _FOREIGN_UNARY],
        "binary": sorted(_ufunc_name(u) for u in BINARY) + ["numpy.matmul"],
        "functions": sorted(f"numpy.{f.__name__}" for f in FUNCTIONS),
        "piecewise constant": sorted(_ufunc_name(u) for u in PIECEWISE_CONSTANT),
    }
