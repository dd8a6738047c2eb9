r"""Fused vjp kernels of the element-wise rules: :math:`\bar u = \bar y \odot f'(a)` in one pass.

The reverse transforms (:func:`structjac.grad`, :func:`structjac.vjp`) apply, for an
element-wise call :math:`y = f(u)`, the diagonal map :math:`\bar u_i = \bar y_i\,
f'(u_i)`. Written in numpy that is two passes and a temporary (the derivative, then
the product) and a third for adding the result to what the argument already received.
Here it is one Numba loop, computing the derivative from one stored array ``a`` (the
argument or the value, whichever the rule needs) and either writing the product into
a new array or adding it in place to the cotangent the backward pass already holds:

==============  =====================================  ==================================
code            :math:`f'` from ``a``                  rules
==============  =====================================  ==================================
``TIMES``       :math:`a`                              ``exp`` (a = y), ``u * v`` (a = the other)
``TANH_Y``      :math:`(1 + a)(1 - a)`                 ``tanh`` (a = y)
``SIGMOID_Y``   :math:`a (1 - a)`                      ``expit`` (a = y)
``OVER_1PA``    :math:`1 / (1 + a)`                    ``log1p`` (a = x)
``OVER``        :math:`1 / a`                          ``log`` (a = x), ``u / v`` for u (a = v)
``TIMES_2A``    :math:`2 a`                            ``square``, ``x ** 2`` (a = x)
``HALF_OVER``   :math:`1 / (2 a)`                      ``sqrt`` (a = y)
``TIMES_AP1``   :math:`a + 1`                          ``expm1`` (a = y)
==============  =====================================  ==================================

The cotangent may be one number broadcast (the vjp of a sum or a mean): it is then read
once, never expanded to an array. Arithmetic is in the arrays' dtype (float32 stays
float32); the kernels never write to their inputs.
"""

from __future__ import annotations

import numba
import numpy as np

from ..kernels._alloc import empty
from ..kernels._config import JIT

__all__ = [
    "TIMES",
    "TANH_Y",
    "SIGMOID_Y",
    "OVER_1PA",
    "OVER",
    "TIMES_2A",
    "HALF_OVER",
    "TIMES_AP1",
    "CODES",
    "fusable",
    "elementwise_vjp",
]

TIMES, TANH_Y, SIGMOID_Y, OVER_1PA, OVER, TIMES_2A, HALF_OVER, TIMES_AP1 = range(8)

#: The derivative of each code as numpy code, from ``a`` (the reference of the tests).
CODES = {
    TIMES: lambda a: a,
    TANH_Y: lambda a: (1 + a) * (1 - a),
    SIGMOID_Y: lambda a: a * (1 - a),
    OVER_1PA: lambda a: 1 / (1 + a),
    OVER: lambda a: 1 / a,
    TIMES_2A: lambda a: 2 * a,
    HALF_OVER: lambda a: 0.5 / a,
    TIMES_AP1: lambda a: a + 1,
}

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


@numba.njit(inline="always", **JIT)
def _derivative(code, a):
    one = type(a)(1)
    if code == 0:
        return a
    elif code == 1:
        return (one + a) * (one - a)
    elif code == 2:
        return a * (one - a)
    elif code == 3:
        return one / (one + a)
    elif code == 4:
        return one / a
    elif code == 5:
        return (one + one) * a
    elif code == 6:
        return (one / (one + one)) / a
    return a + one


@numba.njit(**JIT)
def _elementwise_vjp(code, g, a, out, accumulate):
    """out[i] (+)= g[i] * f'(a[i]); ``g`` of one entry is broadcast (the loop is unswitched)."""
    n = out.size
    if g.size == 1:
        g0 = g[0]
        if accumulate:
            for i in range(n):
                out[i] += g0 * _derivative(code, a[i])
        else:
            for i in range(n):
                out[i] = g0 * _derivative(code, a[i])
    elif accumulate:
        for i in range(n):
            out[i] += g[i] * _derivative(code, a[i])
    else:
        for i in range(n):
            out[i] = g[i] * _derivative(code, a[i])


def fusable(a, dtype):
    """True when ``a`` can feed the kernels for results of ``dtype``: a C-contiguous float32
    or float64 array of exactly that dtype."""
    return (
        isinstance(a, np.ndarray)
        and a.dtype == dtype
        and a.dtype in _FLOATS
        and a.flags.c_contiguous
    )


def _flat_cotangent(g, shape, dtype):
    """``g`` as a flat contiguous array of ``dtype``: its one entry when it is one number
    broadcast (all strides zero), else all of it. None when it does not fit."""
    g = np.asarray(g)
    if g.shape != shape:
        if g.size == 1:
            return np.asarray(g, dtype=dtype).reshape(1)
        return None
    if g.ndim and g.size and not any(g.strides) or g.size == 1:  # (an empty g has zero strides)
        return np.array([g.reshape(-1)[0] if g.ndim else g[()]], dtype=dtype)
    if g.dtype != dtype:
        return None  # a wider cotangent keeps its precision: the numpy path
    return np.ascontiguousarray(g).reshape(-1)


def elementwise_vjp(code, g, a, out=None):
    r"""Return :math:`g \odot f'(a)`, or add it to ``out`` in place and return ``out``.

    Parameters
    ----------
    code : int
        One of the codes of this module (the derivative's formula).
    g : ndarray
        The cotangent, of ``a``'s shape, or one number broadcast to it.
    a : ndarray
        The stored array the derivative is computed from (C-contiguous, float32 or
        float64; see :func:`fusable`).
    out : ndarray, optional
        A C-contiguous array of ``a``'s shape and dtype that the caller owns; the product
        is added to it.

    Returns
    -------
    ndarray or None
        The product (a new array) or ``out``; None when ``g`` does not fit the kernel
        (another dtype) or ``out`` does not (shape, dtype, layout): the caller then uses
        the numpy expression.
    """
    if out is not None and not (
        isinstance(out, np.ndarray)
        and out.shape == a.shape
        and out.dtype == a.dtype
        and out.flags.c_contiguous
        and out.flags.writeable
    ):
        return None
    gf = _flat_cotangent(g, a.shape, a.dtype)
    if gf is None:
        return None
    af = a.reshape(-1)
    if out is None:
        result = empty(a.shape, a.dtype)  # aligned to a huge page when large
        _elementwise_vjp(code, gf, af, result.reshape(-1), False)
        return result
    _elementwise_vjp(code, gf, af, out.reshape(-1), True)
    return out
