r"""The scalar functions of the element-wise kernels: each formula written once.

Every activation is one entry of :data:`ACTIVATIONS`, an :class:`Activation` that
holds Numba scalar functions ``f(v, p1, p2)``: the value :math:`f(v)`, the
derivative from the input :math:`f'(v)` and, where one exists, the derivative from
the output :math:`a = f(v)`, with the parameters ``p1, p2`` (the leaky slope, the
derivative at 0, ...) in the array dtype, unused ones 0.  The kernels are generated
from the table by one loop body each, which calls a scalar function bound per entry
(:func:`structjac.kernels._config.serial_and_parallel` with ``bind``):

* :mod:`structjac.kernels.unary` -- value, derivative, vjp and the from-output
  variants of every entry with ``unary=True``, and their public wrappers;
* :mod:`structjac.kernels.layer` -- the fused bias + activation and vjp + bias
  gradient kernels of every entry with ``layer=True``;
* :mod:`structjac.kernels.losses` -- the per-sample terms, gradients, second
  derivatives and curvature factors of :data:`LOSSES` (the logistic ones reuse the
  sigmoid and softplus functions here);

and :mod:`structjac.ops.unary` makes an op of every unary entry.  Adding an
activation is one entry here (plus its test).

The scalar functions are compiled with ``forceinline``: LLVM inlines them into the
loops, which it then vectorises; Numba's IR inlining (``inline="always"``) would
lower :func:`~structjac.kernels._exp.vexp` with the caller's fastmath flags, which
breaks its range reduction.  The primitives are :func:`~structjac.kernels._exp.vexp`,
:func:`~structjac.kernels._log.vlog`/``vlog1p`` and
:func:`~structjac.kernels._tanh.vtanh` (libm calls per element would keep the loops
scalar).

Numba's disk cache does not see edits of the functions a kernel calls from another
module; :data:`SOURCE_TAG`, a hash of the bytecode of this module's functions, is part
of every generated kernel's name, so that an edit here gets new cache entries.

Examples
--------
>>> import numba, numpy as np
>>> from structjac.kernels._scalars import ACTIVATIONS
>>> sigmoid = ACTIVATIONS["sigmoid"]
>>> f = numba.njit(lambda v: sigmoid.derivative(v, 0.0, 0.0))
>>> s = 1 / (1 + np.exp(-2.0))
>>> bool(np.isclose(f(2.0), s * (1 - s)))
True
"""

from __future__ import annotations

import hashlib
from typing import NamedTuple

import numba
import numpy as np
from numba import types
from numba.core.extending import overload

from ._config import JIT
from ._exp import vexp
from ._log import vlog, vlog1p
from ._tanh import vtanh

__all__ = ["Activation", "ACTIVATIONS", "Loss", "LOSSES", "SOURCE_TAG", "const", "one", "zero"]

_SCALAR = dict(JIT, forceinline=True)


def one(v):
    """1 in the float type of ``v`` (Numba only; a constant after compilation)."""
    return 1.0


def zero(v):
    """0 in the float type of ``v`` (Numba only)."""
    return 0.0


def const(v, c):
    """The number ``c`` in the float type of ``v`` (Numba only)."""
    return float(c)


@overload(const, jit_options=dict(forceinline=True))
def _const_overload(v, c):
    if v == types.float32:
        return lambda v, c: np.float32(c)
    if v == types.float64:
        return lambda v, c: np.float64(c)
    return None


@overload(one, jit_options=dict(forceinline=True))
def _one_overload(v):
    if v == types.float32:
        return lambda v: np.float32(1)
    if v == types.float64:
        return lambda v: np.float64(1)
    return None


@overload(zero, jit_options=dict(forceinline=True))
def _zero_overload(v):
    if v == types.float32:
        return lambda v: np.float32(0)
    if v == types.float64:
        return lambda v: np.float64(0)
    return None


# --- the activations: value f(v, p1, p2), derivative f'(v, p1, p2), and f' from the
# output a (where there is a form); constants in the dtype of v ---


@numba.njit(**_SCALAR)
def _sigmoid_pair(v):  # (sigma(v), sigma(-v) = 1 - sigma(v)), both accurate:
    o = one(v)  # 1/(1+e) and e/(1+e), e = exp(-|v|) (no overflow)
    e = vexp(-abs(v))
    r = o / (o + e)
    er = e * r
    if v >= zero(v):
        return r, er
    return er, r


@numba.njit(**_SCALAR)
def _sigmoid(v, p1, p2):
    return _sigmoid_pair(v)[0]


@numba.njit(**_SCALAR)
def _sigmoid_derivative(v, p1, p2):  # e / (1 + e)**2, e = exp(-|v|): both tails accurate
    e = vexp(-abs(v))
    d = one(v) + e
    return e / (d * d)


@numba.njit(**_SCALAR)
def _sigmoid_from_output(a, p1, p2):  # a (1 - a)
    return a * (one(a) - a)


@numba.njit(**_SCALAR)
def _tanh(v, p1, p2):
    return vtanh(v)


@numba.njit(**_SCALAR)
def _tanh_derivative(v, p1, p2):  # 4 e / (1 + e)**2, e = exp(-2|v|)
    e = vexp(-abs(v + v))
    d = one(v) + e
    return const(v, 4) * e / (d * d)


@numba.njit(**_SCALAR)
def _tanh_from_output(a, p1, p2):  # (1 + a)(1 - a), not 1 - a**2 (1000x more accurate)
    o = one(a)
    return (o + a) * (o - a)


@numba.njit(**_SCALAR)
def _relu(v, p1, p2):  # NaN stays NaN (NaN <= 0 is false)
    z = zero(v)
    return z if v <= z else v


@numba.njit(**_SCALAR)
def _relu_derivative(v, at_zero, p2):  # 1, 0, at_zero at 0, NaN for NaN
    z = zero(v)
    r = one(v) if v > z else z
    r = at_zero if v == z else r
    return v if v != v else r


@numba.njit(**_SCALAR)
def _leaky_relu(v, slope, p2):
    return slope * v if v < zero(v) else v


@numba.njit(**_SCALAR)
def _leaky_relu_derivative(v, slope, at_zero):  # 1, slope, at_zero at 0, NaN for NaN
    z = zero(v)
    r = one(v) if v > z else slope
    r = at_zero if v == z else r
    return v if v != v else r


@numba.njit(**_SCALAR)
def _exp(v, p1, p2):  # also its own derivative
    return vexp(v)


@numba.njit(**_SCALAR)
def _log(v, p1, p2):
    return vlog(v)


@numba.njit(**_SCALAR)
def _log_derivative(v, p1, p2):
    return one(v) / v


@numba.njit(**_SCALAR)
def _log1p_exp_neg_abs(v):  # log1p(exp(-|v|)), the tail of softplus
    return vlog1p(vexp(-abs(v)))


@numba.njit(**_SCALAR)
def _softplus(v, p1, p2):  # max(v, 0) + log1p(exp(-|v|)): no overflow
    z = zero(v)
    m = v if v > z else z
    return m + _log1p_exp_neg_abs(v)


@numba.njit(**_SCALAR)
def _silu(v, p1, p2):  # v sigma(v); 0 where sigma(v) = 0 (v = -inf: the limit)
    s = _sigmoid(v, p1, p2)
    return zero(v) if s == zero(v) else v * s


@numba.njit(**_SCALAR)
def _silu_derivative(v, p1, p2):  # s (1 + v t) = s + v s (1 - s), s = sigma(v),
    s, t = _sigmoid_pair(v)  # t = sigma(-v) (not 1 - s: accurate for v > 0);
    d = s if t == zero(v) else s * (one(v) + v * t)  # the limits 1 at +inf (t = 0)
    return zero(v) if s == zero(v) else d  # and 0 at -inf (s = 0)


@numba.njit(**_SCALAR)
def _identity(v, p1, p2):
    return v


@numba.njit(**_SCALAR)
def _identity_derivative(v, p1, p2):
    return one(v)


class Activation(NamedTuple):
    """One element-wise function and everything the kernels generated from it need.

    Attributes
    ----------
    value, derivative : numba dispatcher
        Scalar functions ``(v, p1, p2) -> f(v)`` and ``f'(v)``.
    from_output : numba dispatcher or None
        ``(a, p1, p2) -> f'`` from the output ``a = f(v)``; the layer kernels use it
        when it exists (the forward pass then keeps only ``a``).
    params : tuple of (name, default, doc)
        The parameters read as ``p1, p2`` (at most two); ``doc`` is the numpydoc text.
    value_params : int
        How many of ``params`` the value reads (the leading ones).
    memory_bound : (bool, bool)
        Whether the value and the derivative are arithmetic only (or the vectorised
        ``vexp``): their kernels are run serially on large arrays, where one core
        already saturates the memory bandwidth
        (:data:`structjac.kernels._config.MEMORY_BOUND_PARALLEL_LIMIT`).
    docs : (str, str, str or None)
        The mathematics of the value, the derivative and the derivative from the
        output (the wrappers' and the ops' docstrings).
    op : str or None
        Class name of the op :mod:`structjac.ops.unary` makes of the entry (None:
        no op, and no unary kernels).
    layer : bool
        Whether :mod:`structjac.kernels.layer` has fused dense-layer kernels for it.
    """

    value: object
    derivative: object
    from_output: object = None
    params: tuple = ()
    value_params: int = 0
    memory_bound: tuple = (True, True)
    docs: tuple = ("", "", None)
    op: str | None = None
    layer: bool = True


_AT_ZERO = (
    "at_zero",
    1.0,
    "at_zero : float, default 1.0\n"
    "    Derivative used at exactly 0 (1, as a subgradient; PyTorch/JAX: 0).",
)
_SLOPE = ("slope", 0.01, "slope : float, default 0.01\n    Slope for negative inputs.")

#: The activations: name -> :class:`Activation` (see the module docstring).
ACTIVATIONS = {
    "sigmoid": Activation(
        _sigmoid,
        _sigmoid_derivative,
        _sigmoid_from_output,
        docs=(
            "Logistic sigmoid, sigma(x) = 1 / (1 + exp(-x)), element-wise.\n\n"
            "Evaluated as 1/(1+e) for x >= 0 and e/(1+e) for x < 0 with e = exp(-|x|):\n"
            "no overflow.",
            "sigma'(x) = e / (1 + e)**2 with e = exp(-|x|), element-wise: accurate in both tails.",
            "sigma'(x) = a (1 - a) from the output a = sigma(x).",
        ),
        op="Sigmoid",
    ),
    "tanh": Activation(
        _tanh,
        _tanh_derivative,
        _tanh_from_output,
        memory_bound=(False, True),
        docs=(
            "tanh(x), element-wise, within 2 ulp of ``np.tanh`` (float32: of the correctly\n"
            "rounded value).\n\n"
            "For |x| >= 0.625, 1 - 2/(exp(2|x|) + 1); below, Cephes' odd polynomial (float32)\n"
            "or rational function (float64) in x^2; the sign of x restored by copysign, so\n"
            "-0.0 gives -0.0, +-inf gives +-1 and NaN gives NaN.  Vectorised (see\n"
            ":mod:`structjac.kernels._tanh`).",
            "tanh'(x) = 1/cosh(x)**2 = 4 e / (1 + e)**2 with e = exp(-2|x|): accurate in "
            "both tails.",
            "tanh'(x) = (1 + a)(1 - a) from the output a = tanh(x).\n\n"
            "About 1000x more accurate in float32 than 1 - a**2.",
        ),
        op="Tanh",
    ),
    "relu": Activation(
        _relu,
        _relu_derivative,
        params=(_AT_ZERO,),
        docs=(
            "max(x, 0), element-wise; NaN stays NaN.",
            "relu'(x): 1 for x > 0, 0 for x < 0, ``at_zero`` at x == 0, NaN for NaN.",
            None,
        ),
        op="ReLU",
    ),
    "leaky_relu": Activation(
        _leaky_relu,
        _leaky_relu_derivative,
        params=(_SLOPE, _AT_ZERO),
        value_params=1,
        docs=(
            "x for x >= 0, slope * x for x < 0, element-wise; NaN stays NaN.",
            "1 for x > 0, slope for x < 0, ``at_zero`` at x == 0, NaN for NaN.",
            None,
        ),
        op="LeakyReLU",
    ),
    "exp": Activation(
        _exp,
        _exp,
        docs=("exp(x), element-wise (also its own derivative).", "exp'(x) = exp(x).", None),
        op="Exp",
        layer=False,
    ),
    "log": Activation(
        _log,
        _log_derivative,
        memory_bound=(False, True),
        docs=("log(x), element-wise: NaN for x < 0, -inf at 0.", "log'(x) = 1 / x.", None),
        op="Log",
        layer=False,
    ),
    "softplus": Activation(
        _softplus,
        _sigmoid,
        memory_bound=(False, True),
        docs=(
            "log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|)): no overflow, no cancellation.",
            "softplus'(x) = sigmoid(x).",
            None,
        ),
        op="Softplus",
    ),
    "silu": Activation(
        _silu,
        _silu_derivative,
        docs=(
            "SiLU (swish), x sigma(x), element-wise, computed with the stable sigmoid;\n"
            "0 at x = -inf (the limit, not -inf * 0).",
            "silu'(x) = s + x s (1 - s) = s (1 + x sigma(-x)) with s = sigma(x) (the second\n"
            "form: no cancellation); the limits 1 at +inf and 0 at -inf.",
            None,
        ),
        op="SiLU",
    ),
    "identity": Activation(_identity, _identity_derivative, docs=("x.", "1.", None)),
}


# --- the losses: per-element term of J0 and its derivative in y_hat, (y, h, p) with
# one parameter p in the dtype (0 when unused) ---


@numba.njit(**_SCALAR)
def _mse_term(y, h, p):  # (y - h)**2
    r = y - h
    return r * r


@numba.njit(**_SCALAR)
def _mse_grad(y, h, p):  # -2 (y - h)
    return const(h, 2) * (h - y)


@numba.njit(**_SCALAR)
def _mse_hessian(y, h, p):  # d/dh of -2 (y - h)
    return const(h, 2)


@numba.njit(**_SCALAR)
def _clip(h, eps):  # clip(h, eps, 1 - eps)
    c = eps if h < eps else h
    hi = one(h) - eps
    return hi if c > hi else c


@numba.njit(**_SCALAR)
def _bce_term(y, h, eps):  # -(y log c + (1 - y) log(1 - c)), c = clip(h)
    c = _clip(h, eps)
    return -(y * vlog(c) + (one(h) - y) * vlog1p(-c))


@numba.njit(**_SCALAR)
def _bce_grad(y, h, eps):  # (c - y) / (c (1 - c)) at the clamped c
    c = _clip(h, eps)
    return (c - y) / (c * (one(h) - c))


@numba.njit(**_SCALAR)
def _bce_hessian(y, h, eps):  # d/dc (c - y) / (c (1 - c)) = y / c**2 + (1 - y) / (1 - c)**2
    c = _clip(h, eps)
    d = one(h) - c
    return y / (c * c) + (one(h) - y) / (d * d)


@numba.njit(**_SCALAR)
def _bce_with_logits_term(y, z, p):  # max(z, 0) - z y + log1p(exp(-|z|))
    # max(z, 0) - z y = z c with c = 1 - y (z > 0) or -y (z <= 0), and z c is taken
    # as 0 when c = 0: then z = +-inf gives its limit (0 or inf), not inf - inf or
    # 0 * inf; z (1 - y) is also free of the cancellation of z - z y for y near 1
    c = (one(z) - y) if z > zero(z) else -y
    m = zero(z) if c == zero(z) else z * c
    return m + _log1p_exp_neg_abs(z)


@numba.njit(**_SCALAR)
def _bce_with_logits_grad(y, z, p):  # sigma(z) - y
    return _sigmoid(z, p, p) - y


@numba.njit(**_SCALAR)
def _bce_with_logits_hessian(y, z, p):  # d/dz (sigma(z) - y) = sigma'(z)
    return _sigmoid_derivative(z, p, p)


class Loss(NamedTuple):
    """A loss as scalar functions of one element ``(y, y_hat, p)``.

    Attributes
    ----------
    term : numba dispatcher
        The element's contribution to the per-sample loss :math:`J_0`.
    grad : numba dispatcher
        :math:`\\partial J_0 / \\partial \\hat y` of the element.
    hessian : numba dispatcher
        :math:`\\partial^2 J_0 / \\partial \\hat y^2` of the element (the per-sample
        Hessian is diagonal for each of these losses).
    """

    term: object
    grad: object
    hessian: object


#: The losses of :mod:`structjac.kernels.losses`: name -> :class:`Loss`.
LOSSES = {
    "mse": Loss(_mse_term, _mse_grad, _mse_hessian),
    "bce": Loss(_bce_term, _bce_grad, _bce_hessian),
    "bce_with_logits": Loss(_bce_with_logits_term, _bce_with_logits_grad, _bce_with_logits_hessian),
}


def _source_tag():
    """A hash of the bytecode and constants of this module's Numba functions."""
    h = hashlib.sha1()
    for name, f in sorted(globals().items()):
        code = getattr(getattr(f, "py_func", None), "__code__", None)
        if code is not None:
            h.update(name.encode())
            h.update(code.co_code)
            h.update(repr([c for c in code.co_consts if not hasattr(c, "co_code")]).encode())
            h.update(repr(code.co_names).encode())
    return h.hexdigest()[:8]


#: Part of the generated kernels' names (see the module docstring).
SOURCE_TAG = _source_tag()
