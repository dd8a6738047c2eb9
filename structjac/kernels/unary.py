"""Element-wise (unary) Numba kernels: values, derivatives and fused vjps.

Every kernel body here is written once, as ``_<name>`` with a ``prange`` loop over
flat, C-contiguous float32 or float64 arrays, and compiled at module level by
:func:`~structjac.kernels._config.serial_and_parallel` into ``_<name>_serial``
(a plain loop) and ``_<name>_parallel`` (``parallel=True``).  The public wrappers
(:func:`sigmoid_vjp`, ...) accept any real array, make it contiguous only when
needed, allocate or check ``out`` and call the serial or the parallel kernel
according to :data:`structjac.kernels._config.PARALLEL_THRESHOLD`.

Constants are cast to the array dtype (``x.dtype.type(1)``), so float32 is
computed in float32 from end to end.  ``exp`` is :func:`structjac.kernels._exp.vexp`
(within 1 ulp, NaN/inf/subnormals as libm), not ``np.exp``: Numba lowers ``np.exp``
to a libm call per element, which keeps the loop from vectorising; likewise ``log``
and ``log1p`` are :func:`structjac.kernels._log.vlog` and ``vlog1p``.  A "vjp" kernel computes ``g * f'(x)`` in
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

from __future__ import annotations

import inspect

import numba
import numpy as np

from ._config import (
    append_doc_sections, as_float_array, float_dtype, pick, prepare_out, serial_and_parallel,
)
from ._exp import vexp
from ._log import vlog, vlog1p
from ._tanh import vtanh

__all__ = []

#: Kernels without a libm call: arithmetic only, or ``exp`` through the vectorised
#: :func:`~structjac.kernels._exp.vexp` (see ``MEMORY_BOUND_PARALLEL_LIMIT``).
#: ``log`` and ``softplus`` (:func:`~structjac.kernels._log.vlog`/``vlog1p``, vectorised)
#: and ``tanh`` (:func:`~structjac.kernels._tanh.vtanh`) are compute-bound, not
#: memory-bound, and stay parallel (measured at 2e7 elements: 2 threads 1.5-2x faster).
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


def _sigmoid(x, out):  # sigma(x) = 1/(1+e) for x >= 0, e/(1+e) for x < 0, e = exp(-|x|) (no overflow)
    one = x.dtype.type(1)
    zero = x.dtype.type(0)
    for i in numba.prange(x.size):
        v = x[i]
        e = vexp(-abs(v))
        s = one / (one + e)
        out[i] = s if v >= zero else e * s


def _sigmoid_derivative(x, out):  # sigma'(x) = e / (1 + e)**2, e = exp(-|x|)
    one = x.dtype.type(1)
    for i in numba.prange(x.size):
        e = vexp(-abs(x[i]))
        d = one + e
        out[i] = e / (d * d)


def _sigmoid_vjp(x, g, out):  # g * sigma'(x), fused
    one = x.dtype.type(1)
    for i in numba.prange(x.size):
        e = vexp(-abs(x[i]))
        d = one + e
        out[i] = g[i] * (e / (d * d))


def _sigmoid_derivative_from_output(a, out):  # a (1 - a)
    one = a.dtype.type(1)
    for i in numba.prange(a.size):
        v = a[i]
        out[i] = v * (one - v)


def _sigmoid_vjp_from_output(a, g, out):  # g * a (1 - a)
    one = a.dtype.type(1)
    for i in numba.prange(a.size):
        v = a[i]
        out[i] = g[i] * v * (one - v)


def _tanh(x, out):  # the vectorised vtanh (within 2 ulp), not libm's tanh per element
    for i in numba.prange(x.size):
        out[i] = vtanh(x[i])


def _tanh_derivative(x, out):  # 4 e / (1 + e)**2, e = exp(-2|x|)
    one = x.dtype.type(1)
    four = x.dtype.type(4)
    for i in numba.prange(x.size):
        e = vexp(-abs(x[i] + x[i]))
        d = one + e
        out[i] = four * e / (d * d)


def _tanh_vjp(x, g, out):  # g * tanh'(x), fused
    one = x.dtype.type(1)
    four = x.dtype.type(4)
    for i in numba.prange(x.size):
        e = vexp(-abs(x[i] + x[i]))
        d = one + e
        out[i] = g[i] * (four * e / (d * d))


def _tanh_derivative_from_output(a, out):  # (1 + a)(1 - a)
    one = a.dtype.type(1)
    for i in numba.prange(a.size):
        v = a[i]
        out[i] = (one + v) * (one - v)


def _tanh_vjp_from_output(a, g, out):  # g * (1 + a)(1 - a)
    one = a.dtype.type(1)
    for i in numba.prange(a.size):
        v = a[i]
        out[i] = g[i] * ((one + v) * (one - v))


def _relu(x, out):  # NaN stays NaN (NaN <= 0 is false)
    zero = x.dtype.type(0)
    for i in numba.prange(x.size):
        v = x[i]
        out[i] = zero if v <= zero else v


def _relu_derivative(x, at_zero, out):
    one = x.dtype.type(1)
    zero = x.dtype.type(0)
    for i in numba.prange(x.size):
        v = x[i]
        r = one if v > zero else zero
        r = at_zero if v == zero else r
        out[i] = v if v != v else r


def _relu_vjp(x, g, at_zero, out):
    one = x.dtype.type(1)
    zero = x.dtype.type(0)
    for i in numba.prange(x.size):
        v = x[i]
        r = one if v > zero else zero
        r = at_zero if v == zero else r
        r = v if v != v else r
        out[i] = g[i] * r


def _leaky_relu(x, slope, out):
    zero = x.dtype.type(0)
    for i in numba.prange(x.size):
        v = x[i]
        out[i] = slope * v if v < zero else v


def _leaky_relu_derivative(x, slope, at_zero, out):
    one = x.dtype.type(1)
    zero = x.dtype.type(0)
    for i in numba.prange(x.size):
        v = x[i]
        r = one if v > zero else slope
        r = at_zero if v == zero else r
        out[i] = v if v != v else r


def _leaky_relu_vjp(x, g, slope, at_zero, out):
    one = x.dtype.type(1)
    zero = x.dtype.type(0)
    for i in numba.prange(x.size):
        v = x[i]
        r = one if v > zero else slope
        r = at_zero if v == zero else r
        r = v if v != v else r
        out[i] = g[i] * r


def _exp(x, out):
    for i in numba.prange(x.size):
        out[i] = vexp(x[i])


def _exp_vjp(x, g, out):
    for i in numba.prange(x.size):
        out[i] = g[i] * vexp(x[i])


def _log(x, out):  # the vectorised vlog (within 1 ulp), not libm's log per element
    for i in numba.prange(x.size):
        out[i] = vlog(x[i])


def _log_derivative(x, out):
    one = x.dtype.type(1)
    for i in numba.prange(x.size):
        out[i] = one / x[i]


def _log_vjp(x, g, out):
    for i in numba.prange(x.size):
        out[i] = g[i] / x[i]


def _softplus(x, out):  # max(x, 0) + log1p(exp(-|x|)), vectorised (vexp, vlog1p)
    zero = x.dtype.type(0)
    for i in numba.prange(x.size):
        v = x[i]
        m = v if v > zero else zero
        out[i] = m + vlog1p(vexp(-abs(v)))


def _softplus_vjp(x, g, out):  # g * sigma(x), as in _sigmoid
    one = x.dtype.type(1)
    zero = x.dtype.type(0)
    for i in numba.prange(x.size):
        v = x[i]
        e = vexp(-abs(v))
        s = one / (one + e)
        out[i] = g[i] * (s if v >= zero else e * s)


# The compiled kernels: one serial and one parallel dispatcher per body, each with
# its own disk-cache index (see structjac.kernels._config.serial_and_parallel).
_sigmoid_serial, _sigmoid_parallel = serial_and_parallel(_sigmoid)
_sigmoid_derivative_serial, _sigmoid_derivative_parallel = serial_and_parallel(_sigmoid_derivative)
_sigmoid_vjp_serial, _sigmoid_vjp_parallel = serial_and_parallel(_sigmoid_vjp)
_sigmoid_derivative_from_output_serial, _sigmoid_derivative_from_output_parallel = \
    serial_and_parallel(_sigmoid_derivative_from_output)
_sigmoid_vjp_from_output_serial, _sigmoid_vjp_from_output_parallel = \
    serial_and_parallel(_sigmoid_vjp_from_output)
_tanh_serial, _tanh_parallel = serial_and_parallel(_tanh)
_tanh_derivative_serial, _tanh_derivative_parallel = serial_and_parallel(_tanh_derivative)
_tanh_vjp_serial, _tanh_vjp_parallel = serial_and_parallel(_tanh_vjp)
_tanh_derivative_from_output_serial, _tanh_derivative_from_output_parallel = \
    serial_and_parallel(_tanh_derivative_from_output)
_tanh_vjp_from_output_serial, _tanh_vjp_from_output_parallel = \
    serial_and_parallel(_tanh_vjp_from_output)
_relu_serial, _relu_parallel = serial_and_parallel(_relu)
_relu_derivative_serial, _relu_derivative_parallel = serial_and_parallel(_relu_derivative)
_relu_vjp_serial, _relu_vjp_parallel = serial_and_parallel(_relu_vjp)
_leaky_relu_serial, _leaky_relu_parallel = serial_and_parallel(_leaky_relu)
_leaky_relu_derivative_serial, _leaky_relu_derivative_parallel = \
    serial_and_parallel(_leaky_relu_derivative)
_leaky_relu_vjp_serial, _leaky_relu_vjp_parallel = serial_and_parallel(_leaky_relu_vjp)
_exp_serial, _exp_parallel = serial_and_parallel(_exp)
_exp_vjp_serial, _exp_vjp_parallel = serial_and_parallel(_exp_vjp)
_log_serial, _log_parallel = serial_and_parallel(_log)
_log_derivative_serial, _log_derivative_parallel = serial_and_parallel(_log_derivative)
_log_vjp_serial, _log_vjp_parallel = serial_and_parallel(_log_vjp)
_softplus_serial, _softplus_parallel = serial_and_parallel(_softplus)
_softplus_vjp_serial, _softplus_vjp_parallel = serial_and_parallel(_softplus_vjp)


# --- public wrappers --------------------------------------------------------------
# Each docstring gives the mathematics; @_public appends the Parameters and Returns
# sections, which are the same for every wrapper, from the signature.

_PARAMETER_DOCS = {
    "x": "x : array_like\n    Input values (any shape, any memory layout; never written to).",
    "a": "a : array_like\n    The op's output values (any shape; never written to).",
    "g": "g : array_like\n    Cotangent, same shape as the first argument.",
    "slope": "slope : float, default 0.01\n    Slope for negative inputs.",
    "at_zero": ("at_zero : float, default 1.0\n"
                "    Derivative used at exactly 0 (the lecture: 1; PyTorch/JAX: 0)."),
    "out": ("out : ndarray, optional\n"
            "    Where to write the result: same shape as the input, dtype of the\n"
            "    result, C-contiguous.  Checked; a ``ValueError`` says what differs."),
}


def _public(wrapper):
    """Complete the wrapper's numpydoc docstring and add it to ``__all__``."""
    names = list(inspect.signature(wrapper).parameters)
    __all__.append(wrapper.__name__)
    return append_doc_sections(
        wrapper,
        "Parameters\n----------\n" + "\n".join(_PARAMETER_DOCS[n] for n in names),
        "Returns\n-------\nndarray\n"
        f"    Same shape as ``{names[0]}``; float32 for float32 input, float64 for\n"
        "    integer, bool and float64 input (mixed inputs: ``np.result_type``).\n",
    )


@_public
def sigmoid(x, out=None):
    """Logistic sigmoid, sigma(x) = 1 / (1 + exp(-x)), element-wise.

    Evaluated as 1/(1+e) for x >= 0 and e/(1+e) for x < 0 with e = exp(-|x|):
    no overflow.
    """
    return _map(_sigmoid_serial, _sigmoid_parallel, (x,), (), out)


@_public
def sigmoid_derivative(x, out=None):
    """sigma'(x) = e / (1 + e)**2 with e = exp(-|x|), element-wise: accurate in both tails."""
    return _map(_sigmoid_derivative_serial, _sigmoid_derivative_parallel, (x,), (), out)


@_public
def sigmoid_vjp(x, g, out=None):
    """g * sigma'(x), fused (no temporary for sigma'(x))."""
    return _map(_sigmoid_vjp_serial, _sigmoid_vjp_parallel, (x, g), (), out)


@_public
def sigmoid_derivative_from_output(a, out=None):
    """sigma'(x) = a (1 - a) from the output a = sigma(x)."""
    return _map(_sigmoid_derivative_from_output_serial, _sigmoid_derivative_from_output_parallel,
                (a,), (), out)


@_public
def sigmoid_vjp_from_output(a, g, out=None):
    """g * a (1 - a), fused, from the output a = sigma(x)."""
    return _map(_sigmoid_vjp_from_output_serial, _sigmoid_vjp_from_output_parallel,
                (a, g), (), out)


@_public
def tanh(x, out=None):
    """tanh(x), element-wise, within 2 ulp of ``np.tanh`` (float32: of the correctly
    rounded value).

    For |x| >= 0.625, 1 - 2/(exp(2|x|) + 1); below, Cephes' odd polynomial (float32)
    or rational function (float64) in x^2; the sign of x restored by copysign, so
    -0.0 gives -0.0, +-inf gives +-1 and NaN gives NaN.  Vectorised (see
    :mod:`structjac.kernels._tanh`).
    """
    return _map(_tanh_serial, _tanh_parallel, (x,), (), out)


@_public
def tanh_derivative(x, out=None):
    """tanh'(x) = 1/cosh(x)**2 = 4 e / (1 + e)**2 with e = exp(-2|x|): accurate in both tails."""
    return _map(_tanh_derivative_serial, _tanh_derivative_parallel, (x,), (), out)


@_public
def tanh_vjp(x, g, out=None):
    """g * tanh'(x), fused."""
    return _map(_tanh_vjp_serial, _tanh_vjp_parallel, (x, g), (), out)


@_public
def tanh_derivative_from_output(a, out=None):
    """tanh'(x) = (1 + a)(1 - a) from the output a = tanh(x).

    The lecture's form; about 1000x more accurate in float32 than 1 - a**2.
    """
    return _map(_tanh_derivative_from_output_serial, _tanh_derivative_from_output_parallel,
                (a,), (), out)


@_public
def tanh_vjp_from_output(a, g, out=None):
    """g * (1 + a)(1 - a), fused, from the output a = tanh(x)."""
    return _map(_tanh_vjp_from_output_serial, _tanh_vjp_from_output_parallel, (a, g), (), out)


@_public
def relu(x, out=None):
    """max(x, 0), element-wise; NaN stays NaN."""
    return _map(_relu_serial, _relu_parallel, (x,), (), out)


@_public
def relu_derivative(x, at_zero=1.0, out=None):
    """relu'(x): 1 for x > 0, 0 for x < 0, ``at_zero`` at x == 0, NaN for NaN."""
    return _map(_relu_derivative_serial, _relu_derivative_parallel, (x,), (at_zero,), out)


@_public
def relu_vjp(x, g, at_zero=1.0, out=None):
    """g * relu'(x), fused (relu'(0) = ``at_zero``, NaN for NaN)."""
    return _map(_relu_vjp_serial, _relu_vjp_parallel, (x, g), (at_zero,), out)


@_public
def leaky_relu(x, slope=0.01, out=None):
    """x for x >= 0, slope * x for x < 0, element-wise; NaN stays NaN."""
    return _map(_leaky_relu_serial, _leaky_relu_parallel, (x,), (slope,), out)


@_public
def leaky_relu_derivative(x, slope=0.01, at_zero=1.0, out=None):
    """1 for x > 0, slope for x < 0, ``at_zero`` at x == 0, NaN for NaN."""
    return _map(_leaky_relu_derivative_serial, _leaky_relu_derivative_parallel,
                (x,), (slope, at_zero), out)


@_public
def leaky_relu_vjp(x, g, slope=0.01, at_zero=1.0, out=None):
    """g * leaky_relu'(x), fused."""
    return _map(_leaky_relu_vjp_serial, _leaky_relu_vjp_parallel, (x, g), (slope, at_zero), out)


@_public
def exp(x, out=None):
    """exp(x), element-wise (also its own derivative)."""
    return _map(_exp_serial, _exp_parallel, (x,), (), out)


@_public
def exp_vjp(x, g, out=None):
    """g * exp(x), fused."""
    return _map(_exp_vjp_serial, _exp_vjp_parallel, (x, g), (), out)


@_public
def log(x, out=None):
    """log(x), element-wise: NaN for x < 0, -inf at 0."""
    return _map(_log_serial, _log_parallel, (x,), (), out)


@_public
def log_derivative(x, out=None):
    """log'(x) = 1 / x."""
    return _map(_log_derivative_serial, _log_derivative_parallel, (x,), (), out)


@_public
def log_vjp(x, g, out=None):
    """g / x, fused."""
    return _map(_log_vjp_serial, _log_vjp_parallel, (x, g), (), out)


@_public
def softplus(x, out=None):
    """log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|)): no overflow, no cancellation."""
    return _map(_softplus_serial, _softplus_parallel, (x,), (), out)


@_public
def softplus_vjp(x, g, out=None):
    """g * sigma(x) (softplus' = sigmoid), fused."""
    return _map(_softplus_vjp_serial, _softplus_vjp_parallel, (x, g), (), out)


@_public
def exp_derivative(x, out=None):
    """exp'(x) = exp(x) (the same kernel as :func:`exp`)."""
    return exp(x, out=out)


@_public
def softplus_derivative(x, out=None):
    """softplus'(x) = sigmoid(x) (the same kernel as :func:`sigmoid`)."""
    return sigmoid(x, out=out)


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
    aliased = False
    for i, f in enumerate(flats):
        if np.shares_memory(f, flat_out):
            if f.ctypes.data == flat_out.ctypes.data:   # out=x: the same elements
                aliased = True
            else:                                       # partial overlap: copy, as NumPy does
                flats[i] = f.copy()
    if aliased and kernel is serial:
        _in_place_chunks(kernel, flats, typed, flat_out)
    else:
        kernel(*flats, *typed, flat_out)
    return out


#: Elements per chunk of an in-place call (out=x): 256 kB of float32, in L2.
IN_PLACE_CHUNK = 1 << 16


def _in_place_chunks(kernel, flats, typed, flat_out):
    """Run ``kernel`` with ``out`` aliasing an input, chunk by chunk through a temporary.

    LLVM vectorises ``out[i] = f(x[i])`` behind a run-time check that ``x`` and ``out``
    do not overlap; when they are the same array the check fails and the scalar loop
    runs (the serial sigmoid 11x slower on 1.7e7 float32).  Writing each chunk into a
    small temporary (cache-resident) and copying it back keeps the vectorised loop.
    (The parallel kernels are called directly: measured not to suffer.)
    """
    n = flat_out.size
    tmp = np.empty(min(n, IN_PLACE_CHUNK), dtype=flat_out.dtype)
    for start in range(0, n, IN_PLACE_CHUNK):
        stop = min(n, start + IN_PLACE_CHUNK)
        t = tmp[:stop - start]
        kernel(*[f[start:stop] for f in flats], *typed, t)
        flat_out[start:stop] = t
