"""Element-wise (unary) Numba kernels: values, derivatives and fused vjps.

Every kernel here is a module-level ``numba.njit`` function on flat, C-contiguous
float32 or float64 arrays, written twice: ``_<name>_serial`` (a plain loop) and
``_<name>_parallel`` (``prange``, ``parallel=True``).  The public wrappers
(:func:`sigmoid_vjp`, ...) accept any real array, make it contiguous only when
needed, allocate or check ``out`` and call the serial or the parallel kernel
according to :data:`structjac.kernels._config.PARALLEL_THRESHOLD`.

Constants are cast to the array dtype (``x.dtype.type(1)``), so float32 is
computed in float32 from end to end.  ``exp`` is :func:`structjac.kernels._exp.vexp`
(within 1 ulp, NaN/inf/subnormals as libm), not ``np.exp``: Numba lowers ``np.exp``
to a libm call per element, which keeps the loop from vectorising.  A "vjp" kernel computes ``g * f'(x)`` in
one pass, without a temporary array for ``f'(x)``.

Examples
--------
>>> import numpy as np
>>> from structjac.kernels import unary
>>> z = np.array([-1.0, 0.0, 2.0])
>>> s = 1 / (1 + np.exp(-z))
>>> bool(np.allclose(unary.sigmoid_vjp(z, np.ones(3)), s * (1 - s)))
True
>>> unary.relu_derivative(np.array([-1.0, 0.0, 1.0, np.nan]))
array([ 0.,  1.,  1., nan])
"""

# This file was generated from a small table of formulas; each kernel is
# deliberately plain code so that Numba can cache it on disk (factory-made
# closures share one cache index and cannot be cached safely).

from __future__ import annotations

import numba
import numpy as np

from ._config import JIT, JIT_PARALLEL, as_float_array, float_dtype, pick, prepare_out
from ._exp import vexp

__all__ = []

#: Kernels without a libm call: arithmetic only, or ``exp`` through the vectorised
#: :func:`~structjac.kernels._exp.vexp` (see ``MEMORY_BOUND_PARALLEL_LIMIT``).
#: ``tanh``, ``log`` and ``softplus`` still call libm and stay parallel.
_MEMORY_BOUND = frozenset(
    "_" + name + "_serial"
    for name in ("sigmoid", "sigmoid_derivative", "sigmoid_vjp",
                 "sigmoid_derivative_from_output", "sigmoid_vjp_from_output",
                 "tanh_derivative", "tanh_vjp",
                 "tanh_derivative_from_output", "tanh_vjp_from_output", "relu",
                 "relu_derivative", "relu_vjp", "leaky_relu", "leaky_relu_derivative",
                 "leaky_relu_vjp", "exp", "exp_vjp", "log_derivative", "log_vjp",
                 "softplus_vjp")
)


@numba.njit(**JIT)
def _sigmoid_serial(x, out):  # sigma(x) = 1 / (1 + exp(-x)), evaluated as 1/(1+e) or e/(1+e) with e = exp(-|x|) (no overflow)
    one = x.dtype.type(1)
    zero = x.dtype.type(0)
    for i in range(x.size):
        v = x[i]
        e = vexp(-abs(v))
        s = one / (one + e)
        out[i] = s if v >= zero else e * s

@numba.njit(**JIT_PARALLEL)
def _sigmoid_parallel(x, out):  # sigma(x) = 1 / (1 + exp(-x)), evaluated as 1/(1+e) or e/(1+e) with e = exp(-|x|) (no overflow)
    one = x.dtype.type(1)
    zero = x.dtype.type(0)
    for i in numba.prange(x.size):
        v = x[i]
        e = vexp(-abs(v))
        s = one / (one + e)
        out[i] = s if v >= zero else e * s


@numba.njit(**JIT)
def _sigmoid_derivative_serial(x, out):  # sigma'(x) = e / (1 + e)**2 with e = exp(-|x|): accurate in both tails
    one = x.dtype.type(1)
    for i in range(x.size):
        e = vexp(-abs(x[i]))
        d = one + e
        out[i] = e / (d * d)

@numba.njit(**JIT_PARALLEL)
def _sigmoid_derivative_parallel(x, out):  # sigma'(x) = e / (1 + e)**2 with e = exp(-|x|): accurate in both tails
    one = x.dtype.type(1)
    for i in numba.prange(x.size):
        e = vexp(-abs(x[i]))
        d = one + e
        out[i] = e / (d * d)


@numba.njit(**JIT)
def _sigmoid_vjp_serial(x, g, out):  # g * sigma'(x), fused
    one = x.dtype.type(1)
    for i in range(x.size):
        e = vexp(-abs(x[i]))
        d = one + e
        out[i] = g[i] * (e / (d * d))

@numba.njit(**JIT_PARALLEL)
def _sigmoid_vjp_parallel(x, g, out):  # g * sigma'(x), fused
    one = x.dtype.type(1)
    for i in numba.prange(x.size):
        e = vexp(-abs(x[i]))
        d = one + e
        out[i] = g[i] * (e / (d * d))


@numba.njit(**JIT)
def _sigmoid_derivative_from_output_serial(a, out):  # sigma'(x) = a (1 - a) from the output a = sigma(x)
    one = a.dtype.type(1)
    for i in range(a.size):
        v = a[i]
        out[i] = v * (one - v)

@numba.njit(**JIT_PARALLEL)
def _sigmoid_derivative_from_output_parallel(a, out):  # sigma'(x) = a (1 - a) from the output a = sigma(x)
    one = a.dtype.type(1)
    for i in numba.prange(a.size):
        v = a[i]
        out[i] = v * (one - v)


@numba.njit(**JIT)
def _sigmoid_vjp_from_output_serial(a, g, out):  # g * a (1 - a), fused, from the output a = sigma(x)
    one = a.dtype.type(1)
    for i in range(a.size):
        v = a[i]
        out[i] = g[i] * v * (one - v)

@numba.njit(**JIT_PARALLEL)
def _sigmoid_vjp_from_output_parallel(a, g, out):  # g * a (1 - a), fused, from the output a = sigma(x)
    one = a.dtype.type(1)
    for i in numba.prange(a.size):
        v = a[i]
        out[i] = g[i] * v * (one - v)


@numba.njit(**JIT)
def _tanh_serial(x, out):  # tanh(x)
    for i in range(x.size):
        out[i] = np.tanh(x[i])

@numba.njit(**JIT_PARALLEL)
def _tanh_parallel(x, out):  # tanh(x)
    for i in numba.prange(x.size):
        out[i] = np.tanh(x[i])


@numba.njit(**JIT)
def _tanh_derivative_serial(x, out):  # tanh'(x) = 1/cosh(x)**2 = 4 e / (1 + e)**2 with e = exp(-2|x|): accurate in both tails
    one = x.dtype.type(1)
    four = x.dtype.type(4)
    for i in range(x.size):
        e = vexp(-abs(x[i] + x[i]))
        d = one + e
        out[i] = four * e / (d * d)

@numba.njit(**JIT_PARALLEL)
def _tanh_derivative_parallel(x, out):  # tanh'(x) = 1/cosh(x)**2 = 4 e / (1 + e)**2 with e = exp(-2|x|): accurate in both tails
    one = x.dtype.type(1)
    four = x.dtype.type(4)
    for i in numba.prange(x.size):
        e = vexp(-abs(x[i] + x[i]))
        d = one + e
        out[i] = four * e / (d * d)


@numba.njit(**JIT)
def _tanh_vjp_serial(x, g, out):  # g * tanh'(x), fused
    one = x.dtype.type(1)
    four = x.dtype.type(4)
    for i in range(x.size):
        e = vexp(-abs(x[i] + x[i]))
        d = one + e
        out[i] = g[i] * (four * e / (d * d))

@numba.njit(**JIT_PARALLEL)
def _tanh_vjp_parallel(x, g, out):  # g * tanh'(x), fused
    one = x.dtype.type(1)
    four = x.dtype.type(4)
    for i in numba.prange(x.size):
        e = vexp(-abs(x[i] + x[i]))
        d = one + e
        out[i] = g[i] * (four * e / (d * d))


@numba.njit(**JIT)
def _tanh_derivative_from_output_serial(a, out):  # tanh'(x) = (1 + a)(1 - a) from the output a = tanh(x) (the lecture's form; about 1000x more accurate in float32 than 1 - a**2)
    one = a.dtype.type(1)
    for i in range(a.size):
        v = a[i]
        out[i] = (one + v) * (one - v)

@numba.njit(**JIT_PARALLEL)
def _tanh_derivative_from_output_parallel(a, out):  # tanh'(x) = (1 + a)(1 - a) from the output a = tanh(x) (the lecture's form; about 1000x more accurate in float32 than 1 - a**2)
    one = a.dtype.type(1)
    for i in numba.prange(a.size):
        v = a[i]
        out[i] = (one + v) * (one - v)


@numba.njit(**JIT)
def _tanh_vjp_from_output_serial(a, g, out):  # g * (1 + a)(1 - a), fused, from the output a = tanh(x)
    one = a.dtype.type(1)
    for i in range(a.size):
        v = a[i]
        out[i] = g[i] * ((one + v) * (one - v))

@numba.njit(**JIT_PARALLEL)
def _tanh_vjp_from_output_parallel(a, g, out):  # g * (1 + a)(1 - a), fused, from the output a = tanh(x)
    one = a.dtype.type(1)
    for i in numba.prange(a.size):
        v = a[i]
        out[i] = g[i] * ((one + v) * (one - v))


@numba.njit(**JIT)
def _relu_serial(x, out):  # max(x, 0); NaN stays NaN
    zero = x.dtype.type(0)
    for i in range(x.size):
        v = x[i]
        out[i] = zero if v <= zero else v

@numba.njit(**JIT_PARALLEL)
def _relu_parallel(x, out):  # max(x, 0); NaN stays NaN
    zero = x.dtype.type(0)
    for i in numba.prange(x.size):
        v = x[i]
        out[i] = zero if v <= zero else v


@numba.njit(**JIT)
def _relu_derivative_serial(x, at_zero, out):  # 1 for x > 0, 0 for x < 0, at_zero at x == 0, NaN for NaN
    one = x.dtype.type(1)
    zero = x.dtype.type(0)
    for i in range(x.size):
        v = x[i]
        r = one if v > zero else zero
        r = at_zero if v == zero else r
        out[i] = v if v != v else r

@numba.njit(**JIT_PARALLEL)
def _relu_derivative_parallel(x, at_zero, out):  # 1 for x > 0, 0 for x < 0, at_zero at x == 0, NaN for NaN
    one = x.dtype.type(1)
    zero = x.dtype.type(0)
    for i in numba.prange(x.size):
        v = x[i]
        r = one if v > zero else zero
        r = at_zero if v == zero else r
        out[i] = v if v != v else r


@numba.njit(**JIT)
def _relu_vjp_serial(x, g, at_zero, out):  # g * relu'(x), fused (relu'(0) = at_zero, NaN for NaN)
    one = x.dtype.type(1)
    zero = x.dtype.type(0)
    for i in range(x.size):
        v = x[i]
        r = one if v > zero else zero
        r = at_zero if v == zero else r
        r = v if v != v else r
        out[i] = g[i] * r

@numba.njit(**JIT_PARALLEL)
def _relu_vjp_parallel(x, g, at_zero, out):  # g * relu'(x), fused (relu'(0) = at_zero, NaN for NaN)
    one = x.dtype.type(1)
    zero = x.dtype.type(0)
    for i in numba.prange(x.size):
        v = x[i]
        r = one if v > zero else zero
        r = at_zero if v == zero else r
        r = v if v != v else r
        out[i] = g[i] * r


@numba.njit(**JIT)
def _leaky_relu_serial(x, slope, out):  # x for x >= 0, slope * x for x < 0; NaN stays NaN
    zero = x.dtype.type(0)
    for i in range(x.size):
        v = x[i]
        out[i] = slope * v if v < zero else v

@numba.njit(**JIT_PARALLEL)
def _leaky_relu_parallel(x, slope, out):  # x for x >= 0, slope * x for x < 0; NaN stays NaN
    zero = x.dtype.type(0)
    for i in numba.prange(x.size):
        v = x[i]
        out[i] = slope * v if v < zero else v


@numba.njit(**JIT)
def _leaky_relu_derivative_serial(x, slope, at_zero, out):  # 1 for x > 0, slope for x < 0, at_zero at x == 0, NaN for NaN
    one = x.dtype.type(1)
    zero = x.dtype.type(0)
    for i in range(x.size):
        v = x[i]
        r = one if v > zero else slope
        r = at_zero if v == zero else r
        out[i] = v if v != v else r

@numba.njit(**JIT_PARALLEL)
def _leaky_relu_derivative_parallel(x, slope, at_zero, out):  # 1 for x > 0, slope for x < 0, at_zero at x == 0, NaN for NaN
    one = x.dtype.type(1)
    zero = x.dtype.type(0)
    for i in numba.prange(x.size):
        v = x[i]
        r = one if v > zero else slope
        r = at_zero if v == zero else r
        out[i] = v if v != v else r


@numba.njit(**JIT)
def _leaky_relu_vjp_serial(x, g, slope, at_zero, out):  # g * leaky_relu'(x), fused
    one = x.dtype.type(1)
    zero = x.dtype.type(0)
    for i in range(x.size):
        v = x[i]
        r = one if v > zero else slope
        r = at_zero if v == zero else r
        r = v if v != v else r
        out[i] = g[i] * r

@numba.njit(**JIT_PARALLEL)
def _leaky_relu_vjp_parallel(x, g, slope, at_zero, out):  # g * leaky_relu'(x), fused
    one = x.dtype.type(1)
    zero = x.dtype.type(0)
    for i in numba.prange(x.size):
        v = x[i]
        r = one if v > zero else slope
        r = at_zero if v == zero else r
        r = v if v != v else r
        out[i] = g[i] * r


@numba.njit(**JIT)
def _exp_serial(x, out):  # exp(x) (also its own derivative)
    for i in range(x.size):
        out[i] = vexp(x[i])

@numba.njit(**JIT_PARALLEL)
def _exp_parallel(x, out):  # exp(x) (also its own derivative)
    for i in numba.prange(x.size):
        out[i] = vexp(x[i])


@numba.njit(**JIT)
def _exp_vjp_serial(x, g, out):  # g * exp(x), fused
    for i in range(x.size):
        out[i] = g[i] * vexp(x[i])

@numba.njit(**JIT_PARALLEL)
def _exp_vjp_parallel(x, g, out):  # g * exp(x), fused
    for i in numba.prange(x.size):
        out[i] = g[i] * vexp(x[i])


@numba.njit(**JIT)
def _log_serial(x, out):  # log(x): NaN for x < 0, -inf at 0
    for i in range(x.size):
        out[i] = np.log(x[i])

@numba.njit(**JIT_PARALLEL)
def _log_parallel(x, out):  # log(x): NaN for x < 0, -inf at 0
    for i in numba.prange(x.size):
        out[i] = np.log(x[i])


@numba.njit(**JIT)
def _log_derivative_serial(x, out):  # 1 / x
    one = x.dtype.type(1)
    for i in range(x.size):
        out[i] = one / x[i]

@numba.njit(**JIT_PARALLEL)
def _log_derivative_parallel(x, out):  # 1 / x
    one = x.dtype.type(1)
    for i in numba.prange(x.size):
        out[i] = one / x[i]


@numba.njit(**JIT)
def _log_vjp_serial(x, g, out):  # g / x, fused
    for i in range(x.size):
        out[i] = g[i] / x[i]

@numba.njit(**JIT_PARALLEL)
def _log_vjp_parallel(x, g, out):  # g / x, fused
    for i in numba.prange(x.size):
        out[i] = g[i] / x[i]


@numba.njit(**JIT)
def _softplus_serial(x, out):  # log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|)) (no overflow, no cancellation)
    zero = x.dtype.type(0)
    for i in range(x.size):
        v = x[i]
        m = v if v > zero else zero
        out[i] = m + np.log1p(vexp(-abs(v)))

@numba.njit(**JIT_PARALLEL)
def _softplus_parallel(x, out):  # log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|)) (no overflow, no cancellation)
    zero = x.dtype.type(0)
    for i in numba.prange(x.size):
        v = x[i]
        m = v if v > zero else zero
        out[i] = m + np.log1p(vexp(-abs(v)))


@numba.njit(**JIT)
def _softplus_vjp_serial(x, g, out):  # g * sigma(x) (softplus' = sigmoid), fused
    one = x.dtype.type(1)
    zero = x.dtype.type(0)
    for i in range(x.size):
        v = x[i]
        e = vexp(-abs(v))
        s = one / (one + e)
        out[i] = g[i] * (s if v >= zero else e * s)

@numba.njit(**JIT_PARALLEL)
def _softplus_vjp_parallel(x, g, out):  # g * sigma(x) (softplus' = sigmoid), fused
    one = x.dtype.type(1)
    zero = x.dtype.type(0)
    for i in numba.prange(x.size):
        v = x[i]
        e = vexp(-abs(v))
        s = one / (one + e)
        out[i] = g[i] * (s if v >= zero else e * s)



def sigmoid(x, out=None):
    """Element-wise kernel wrapper ``sigmoid``.

    Computes sigma(x) = 1 / (1 + exp(-x)), evaluated as 1/(1+e) or e/(1+e) with e = exp(-|x|) (no overflow).

    Parameters
    ----------
    x : array_like
        Input values (any shape, any memory layout; never written to).
    out : ndarray, optional
        Where to write the result: same shape as the input, dtype of the
        result, C-contiguous.  Checked; a ``ValueError`` says what differs.

    Returns
    -------
    ndarray
        Same shape as ``x``; float32 for float32 input, float64 for
        integer, bool and float64 input (mixed inputs: ``np.result_type``).
    """
    return _map(_sigmoid_serial, _sigmoid_parallel, (x,), (), out)

__all__.append("sigmoid")



def sigmoid_derivative(x, out=None):
    """Element-wise kernel wrapper ``sigmoid_derivative``.

    Computes sigma'(x) = e / (1 + e)**2 with e = exp(-|x|): accurate in both tails.

    Parameters
    ----------
    x : array_like
        Input values (any shape, any memory layout; never written to).
    out : ndarray, optional
        Where to write the result: same shape as the input, dtype of the
        result, C-contiguous.  Checked; a ``ValueError`` says what differs.

    Returns
    -------
    ndarray
        Same shape as ``x``; float32 for float32 input, float64 for
        integer, bool and float64 input (mixed inputs: ``np.result_type``).
    """
    return _map(_sigmoid_derivative_serial, _sigmoid_derivative_parallel, (x,), (), out)

__all__.append("sigmoid_derivative")



def sigmoid_vjp(x, g, out=None):
    """Element-wise kernel wrapper ``sigmoid_vjp``.

    Computes g * sigma'(x), fused.

    Parameters
    ----------
    x : array_like
        Input values (any shape, any memory layout; never written to).
    g : array_like
        Cotangent, same shape as the first argument.
    out : ndarray, optional
        Where to write the result: same shape as the input, dtype of the
        result, C-contiguous.  Checked; a ``ValueError`` says what differs.

    Returns
    -------
    ndarray
        Same shape as ``x``; float32 for float32 input, float64 for
        integer, bool and float64 input (mixed inputs: ``np.result_type``).
    """
    return _map(_sigmoid_vjp_serial, _sigmoid_vjp_parallel, (x, g,), (), out)

__all__.append("sigmoid_vjp")



def sigmoid_derivative_from_output(a, out=None):
    """Element-wise kernel wrapper ``sigmoid_derivative_from_output``.

    Computes sigma'(x) = a (1 - a) from the output a = sigma(x).

    Parameters
    ----------
    a : array_like
        The op's output values (any shape; never written to).
    out : ndarray, optional
        Where to write the result: same shape as the input, dtype of the
        result, C-contiguous.  Checked; a ``ValueError`` says what differs.

    Returns
    -------
    ndarray
        Same shape as ``a``; float32 for float32 input, float64 for
        integer, bool and float64 input (mixed inputs: ``np.result_type``).
    """
    return _map(_sigmoid_derivative_from_output_serial, _sigmoid_derivative_from_output_parallel, (a,), (), out)

__all__.append("sigmoid_derivative_from_output")



def sigmoid_vjp_from_output(a, g, out=None):
    """Element-wise kernel wrapper ``sigmoid_vjp_from_output``.

    Computes g * a (1 - a), fused, from the output a = sigma(x).

    Parameters
    ----------
    a : array_like
        The op's output values (any shape; never written to).
    g : array_like
        Cotangent, same shape as the first argument.
    out : ndarray, optional
        Where to write the result: same shape as the input, dtype of the
        result, C-contiguous.  Checked; a ``ValueError`` says what differs.

    Returns
    -------
    ndarray
        Same shape as ``a``; float32 for float32 input, float64 for
        integer, bool and float64 input (mixed inputs: ``np.result_type``).
    """
    return _map(_sigmoid_vjp_from_output_serial, _sigmoid_vjp_from_output_parallel, (a, g,), (), out)

__all__.append("sigmoid_vjp_from_output")



def tanh(x, out=None):
    """Element-wise kernel wrapper ``tanh``.

    Computes tanh(x).

    Parameters
    ----------
    x : array_like
        Input values (any shape, any memory layout; never written to).
    out : ndarray, optional
        Where to write the result: same shape as the input, dtype of the
        result, C-contiguous.  Checked; a ``ValueError`` says what differs.

    Returns
    -------
    ndarray
        Same shape as ``x``; float32 for float32 input, float64 for
        integer, bool and float64 input (mixed inputs: ``np.result_type``).
    """
    return _map(_tanh_serial, _tanh_parallel, (x,), (), out)

__all__.append("tanh")



def tanh_derivative(x, out=None):
    """Element-wise kernel wrapper ``tanh_derivative``.

    Computes tanh'(x) = 1/cosh(x)**2 = 4 e / (1 + e)**2 with e = exp(-2|x|): accurate in both tails.

    Parameters
    ----------
    x : array_like
        Input values (any shape, any memory layout; never written to).
    out : ndarray, optional
        Where to write the result: same shape as the input, dtype of the
        result, C-contiguous.  Checked; a ``ValueError`` says what differs.

    Returns
    -------
    ndarray
        Same shape as ``x``; float32 for float32 input, float64 for
        integer, bool and float64 input (mixed inputs: ``np.result_type``).
    """
    return _map(_tanh_derivative_serial, _tanh_derivative_parallel, (x,), (), out)

__all__.append("tanh_derivative")



def tanh_vjp(x, g, out=None):
    """Element-wise kernel wrapper ``tanh_vjp``.

    Computes g * tanh'(x), fused.

    Parameters
    ----------
    x : array_like
        Input values (any shape, any memory layout; never written to).
    g : array_like
        Cotangent, same shape as the first argument.
    out : ndarray, optional
        Where to write the result: same shape as the input, dtype of the
        result, C-contiguous.  Checked; a ``ValueError`` says what differs.

    Returns
    -------
    ndarray
        Same shape as ``x``; float32 for float32 input, float64 for
        integer, bool and float64 input (mixed inputs: ``np.result_type``).
    """
    return _map(_tanh_vjp_serial, _tanh_vjp_parallel, (x, g,), (), out)

__all__.append("tanh_vjp")



def tanh_derivative_from_output(a, out=None):
    """Element-wise kernel wrapper ``tanh_derivative_from_output``.

    Computes tanh'(x) = (1 + a)(1 - a) from the output a = tanh(x) (the lecture's form; about 1000x more accurate in float32 than 1 - a**2).

    Parameters
    ----------
    a : array_like
        The op's output values (any shape; never written to).
    out : ndarray, optional
        Where to write the result: same shape as the input, dtype of the
        result, C-contiguous.  Checked; a ``ValueError`` says what differs.

    Returns
    -------
    ndarray
        Same shape as ``a``; float32 for float32 input, float64 for
        integer, bool and float64 input (mixed inputs: ``np.result_type``).
    """
    return _map(_tanh_derivative_from_output_serial, _tanh_derivative_from_output_parallel, (a,), (), out)

__all__.append("tanh_derivative_from_output")



def tanh_vjp_from_output(a, g, out=None):
    """Element-wise kernel wrapper ``tanh_vjp_from_output``.

    Computes g * (1 + a)(1 - a), fused, from the output a = tanh(x).

    Parameters
    ----------
    a : array_like
        The op's output values (any shape; never written to).
    g : array_like
        Cotangent, same shape as the first argument.
    out : ndarray, optional
        Where to write the result: same shape as the input, dtype of the
        result, C-contiguous.  Checked; a ``ValueError`` says what differs.

    Returns
    -------
    ndarray
        Same shape as ``a``; float32 for float32 input, float64 for
        integer, bool and float64 input (mixed inputs: ``np.result_type``).
    """
    return _map(_tanh_vjp_from_output_serial, _tanh_vjp_from_output_parallel, (a, g,), (), out)

__all__.append("tanh_vjp_from_output")



def relu(x, out=None):
    """Element-wise kernel wrapper ``relu``.

    Computes max(x, 0); NaN stays NaN.

    Parameters
    ----------
    x : array_like
        Input values (any shape, any memory layout; never written to).
    out : ndarray, optional
        Where to write the result: same shape as the input, dtype of the
        result, C-contiguous.  Checked; a ``ValueError`` says what differs.

    Returns
    -------
    ndarray
        Same shape as ``x``; float32 for float32 input, float64 for
        integer, bool and float64 input (mixed inputs: ``np.result_type``).
    """
    return _map(_relu_serial, _relu_parallel, (x,), (), out)

__all__.append("relu")



def relu_derivative(x, at_zero=1.0, out=None):
    """Element-wise kernel wrapper ``relu_derivative``.

    Computes 1 for x > 0, 0 for x < 0, at_zero at x == 0, NaN for NaN.

    Parameters
    ----------
    x : array_like
        Input values (any shape, any memory layout; never written to).
    at_zero : float, default 1.0
        Derivative used at exactly 0 (the lecture: 1; PyTorch/JAX: 0).
    out : ndarray, optional
        Where to write the result: same shape as the input, dtype of the
        result, C-contiguous.  Checked; a ``ValueError`` says what differs.

    Returns
    -------
    ndarray
        Same shape as ``x``; float32 for float32 input, float64 for
        integer, bool and float64 input (mixed inputs: ``np.result_type``).
    """
    return _map(_relu_derivative_serial, _relu_derivative_parallel, (x,), (at_zero,), out)

__all__.append("relu_derivative")



def relu_vjp(x, g, at_zero=1.0, out=None):
    """Element-wise kernel wrapper ``relu_vjp``.

    Computes g * relu'(x), fused (relu'(0) = at_zero, NaN for NaN).

    Parameters
    ----------
    x : array_like
        Input values (any shape, any memory layout; never written to).
    g : array_like
        Cotangent, same shape as the first argument.
    at_zero : float, default 1.0
        Derivative used at exactly 0 (the lecture: 1; PyTorch/JAX: 0).
    out : ndarray, optional
        Where to write the result: same shape as the input, dtype of the
        result, C-contiguous.  Checked; a ``ValueError`` says what differs.

    Returns
    -------
    ndarray
        Same shape as ``x``; float32 for float32 input, float64 for
        integer, bool and float64 input (mixed inputs: ``np.result_type``).
    """
    return _map(_relu_vjp_serial, _relu_vjp_parallel, (x, g,), (at_zero,), out)

__all__.append("relu_vjp")



def leaky_relu(x, slope=0.01, out=None):
    """Element-wise kernel wrapper ``leaky_relu``.

    Computes x for x >= 0, slope * x for x < 0; NaN stays NaN.

    Parameters
    ----------
    x : array_like
        Input values (any shape, any memory layout; never written to).
    slope : float, default 0.01
        Slope for negative inputs.
    out : ndarray, optional
        Where to write the result: same shape as the input, dtype of the
        result, C-contiguous.  Checked; a ``ValueError`` says what differs.

    Returns
    -------
    ndarray
        Same shape as ``x``; float32 for float32 input, float64 for
        integer, bool and float64 input (mixed inputs: ``np.result_type``).
    """
    return _map(_leaky_relu_serial, _leaky_relu_parallel, (x,), (slope,), out)

__all__.append("leaky_relu")



def leaky_relu_derivative(x, slope=0.01, at_zero=1.0, out=None):
    """Element-wise kernel wrapper ``leaky_relu_derivative``.

    Computes 1 for x > 0, slope for x < 0, at_zero at x == 0, NaN for NaN.

    Parameters
    ----------
    x : array_like
        Input values (any shape, any memory layout; never written to).
    slope : float, default 0.01
        Slope for negative inputs.
    at_zero : float, default 1.0
        Derivative used at exactly 0 (the lecture: 1; PyTorch/JAX: 0).
    out : ndarray, optional
        Where to write the result: same shape as the input, dtype of the
        result, C-contiguous.  Checked; a ``ValueError`` says what differs.

    Returns
    -------
    ndarray
        Same shape as ``x``; float32 for float32 input, float64 for
        integer, bool and float64 input (mixed inputs: ``np.result_type``).
    """
    return _map(_leaky_relu_derivative_serial, _leaky_relu_derivative_parallel, (x,), (slope, at_zero,), out)

__all__.append("leaky_relu_derivative")



def leaky_relu_vjp(x, g, slope=0.01, at_zero=1.0, out=None):
    """Element-wise kernel wrapper ``leaky_relu_vjp``.

    Computes g * leaky_relu'(x), fused.

    Parameters
    ----------
    x : array_like
        Input values (any shape, any memory layout; never written to).
    g : array_like
        Cotangent, same shape as the first argument.
    slope : float, default 0.01
        Slope for negative inputs.
    at_zero : float, default 1.0
        Derivative used at exactly 0 (the lecture: 1; PyTorch/JAX: 0).
    out : ndarray, optional
        Where to write the result: same shape as the input, dtype of the
        result, C-contiguous.  Checked; a ``ValueError`` says what differs.

    Returns
    -------
    ndarray
        Same shape as ``x``; float32 for float32 input, float64 for
        integer, bool and float64 input (mixed inputs: ``np.result_type``).
    """
    return _map(_leaky_relu_vjp_serial, _leaky_relu_vjp_parallel, (x, g,), (slope, at_zero,), out)

__all__.append("leaky_relu_vjp")



def exp(x, out=None):
    """Element-wise kernel wrapper ``exp``.

    Computes exp(x) (also its own derivative).

    Parameters
    ----------
    x : array_like
        Input values (any shape, any memory layout; never written to).
    out : ndarray, optional
        Where to write the result: same shape as the input, dtype of the
        result, C-contiguous.  Checked; a ``ValueError`` says what differs.

    Returns
    -------
    ndarray
        Same shape as ``x``; float32 for float32 input, float64 for
        integer, bool and float64 input (mixed inputs: ``np.result_type``).
    """
    return _map(_exp_serial, _exp_parallel, (x,), (), out)

__all__.append("exp")



def exp_vjp(x, g, out=None):
    """Element-wise kernel wrapper ``exp_vjp``.

    Computes g * exp(x), fused.

    Parameters
    ----------
    x : array_like
        Input values (any shape, any memory layout; never written to).
    g : array_like
        Cotangent, same shape as the first argument.
    out : ndarray, optional
        Where to write the result: same shape as the input, dtype of the
        result, C-contiguous.  Checked; a ``ValueError`` says what differs.

    Returns
    -------
    ndarray
        Same shape as ``x``; float32 for float32 input, float64 for
        integer, bool and float64 input (mixed inputs: ``np.result_type``).
    """
    return _map(_exp_vjp_serial, _exp_vjp_parallel, (x, g,), (), out)

__all__.append("exp_vjp")



def log(x, out=None):
    """Element-wise kernel wrapper ``log``.

    Computes log(x): NaN for x < 0, -inf at 0.

    Parameters
    ----------
    x : array_like
        Input values (any shape, any memory layout; never written to).
    out : ndarray, optional
        Where to write the result: same shape as the input, dtype of the
        result, C-contiguous.  Checked; a ``ValueError`` says what differs.

    Returns
    -------
    ndarray
        Same shape as ``x``; float32 for float32 input, float64 for
        integer, bool and float64 input (mixed inputs: ``np.result_type``).
    """
    return _map(_log_serial, _log_parallel, (x,), (), out)

__all__.append("log")



def log_derivative(x, out=None):
    """Element-wise kernel wrapper ``log_derivative``.

    Computes 1 / x.

    Parameters
    ----------
    x : array_like
        Input values (any shape, any memory layout; never written to).
    out : ndarray, optional
        Where to write the result: same shape as the input, dtype of the
        result, C-contiguous.  Checked; a ``ValueError`` says what differs.

    Returns
    -------
    ndarray
        Same shape as ``x``; float32 for float32 input, float64 for
        integer, bool and float64 input (mixed inputs: ``np.result_type``).
    """
    return _map(_log_derivative_serial, _log_derivative_parallel, (x,), (), out)

__all__.append("log_derivative")



def log_vjp(x, g, out=None):
    """Element-wise kernel wrapper ``log_vjp``.

    Computes g / x, fused.

    Parameters
    ----------
    x : array_like
        Input values (any shape, any memory layout; never written to).
    g : array_like
        Cotangent, same shape as the first argument.
    out : ndarray, optional
        Where to write the result: same shape as the input, dtype of the
        result, C-contiguous.  Checked; a ``ValueError`` says what differs.

    Returns
    -------
    ndarray
        Same shape as ``x``; float32 for float32 input, float64 for
        integer, bool and float64 input (mixed inputs: ``np.result_type``).
    """
    return _map(_log_vjp_serial, _log_vjp_parallel, (x, g,), (), out)

__all__.append("log_vjp")



def softplus(x, out=None):
    """Element-wise kernel wrapper ``softplus``.

    Computes log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|)) (no overflow, no cancellation).

    Parameters
    ----------
    x : array_like
        Input values (any shape, any memory layout; never written to).
    out : ndarray, optional
        Where to write the result: same shape as the input, dtype of the
        result, C-contiguous.  Checked; a ``ValueError`` says what differs.

    Returns
    -------
    ndarray
        Same shape as ``x``; float32 for float32 input, float64 for
        integer, bool and float64 input (mixed inputs: ``np.result_type``).
    """
    return _map(_softplus_serial, _softplus_parallel, (x,), (), out)

__all__.append("softplus")



def softplus_vjp(x, g, out=None):
    """Element-wise kernel wrapper ``softplus_vjp``.

    Computes g * sigma(x) (softplus' = sigmoid), fused.

    Parameters
    ----------
    x : array_like
        Input values (any shape, any memory layout; never written to).
    g : array_like
        Cotangent, same shape as the first argument.
    out : ndarray, optional
        Where to write the result: same shape as the input, dtype of the
        result, C-contiguous.  Checked; a ``ValueError`` says what differs.

    Returns
    -------
    ndarray
        Same shape as ``x``; float32 for float32 input, float64 for
        integer, bool and float64 input (mixed inputs: ``np.result_type``).
    """
    return _map(_softplus_vjp_serial, _softplus_vjp_parallel, (x, g,), (), out)

__all__.append("softplus_vjp")



def exp_derivative(x, out=None):
    """exp'(x) = exp(x) (the same kernel as :func:`exp`).

    Parameters
    ----------
    x : array_like
    out : ndarray, optional

    Returns
    -------
    ndarray
    """
    return exp(x, out=out)


def softplus_derivative(x, out=None):
    """softplus'(x) = sigmoid(x) (the same kernel as :func:`sigmoid`).

    Parameters
    ----------
    x : array_like
    out : ndarray, optional

    Returns
    -------
    ndarray
    """
    return sigmoid(x, out=out)


__all__ += ["exp_derivative", "softplus_derivative"]


def _map(serial, parallel, arrays, params, out):
    """Check shapes, convert, allocate and call the serial or parallel kernel."""
    arrays = [np.asarray(a) for a in arrays]
    shape = arrays[0].shape
    for other in arrays[1:]:
        if other.shape != shape:
            raise ValueError(
                f"shapes do not match: input has shape {shape} but g has shape {other.shape}"
            )
    dtype = float_dtype(*arrays)
    flats = [as_float_array(a, dtype) for a in arrays]
    typed = [dtype.type(p) for p in params]
    out, flat_out = prepare_out(out, shape, dtype)
    kernel = pick(serial, parallel, flat_out.size,
                  memory_bound=serial.__name__ in _MEMORY_BOUND)
    kernel(*flats, *typed, flat_out)
    return out
