r"""User-defined element-wise ops from scalar Python functions, compiled by Numba.

``elementwise(f, df=None)`` turns a scalar function into a :class:`UnaryOp`
with the Jacobian :math:`\mathrm{diag}(f'(x_1), \dots, f'(x_n))`.

With ``df`` omitted, the derivative is the complex step

.. math::

    f'(x) \approx \frac{\operatorname{Im} f(x + i h)}{h}, \qquad h = 10^{-20},

which has no subtractive cancellation and is exact to rounding for a real
analytic ``f``.  It needs ``f`` to accept complex numbers inside Numba: write it
with NumPy functions (``np.log``, ``np.exp``, ``np.sin``, ...) or ``cmath``, not
``math`` (``math.log`` rejects complex arguments), and avoid ``abs``, ``max`` and
comparisons, which are not analytic.  float32 input is stepped in complex128
(``h = 1e-20`` is not representable in float32) and the result cast back to
float32.

Compilation: the scalar functions are ``numba.njit``-ed once per op object, and
the loop kernels (value, derivative, vjp; serial and ``prange``) are built once
per op object by a factory; Numba then compiles each once per dtype, on first
use.  These kernels are not cached on disk (a lambda has no stable identity).
"""

from __future__ import annotations

import types

import numba
import numpy as np

from structjac.kernels._config import (
    FASTMATH, as_float_array, float_dtype, pick, prepare_out,
)

from .unary import UnaryOp

__all__ = ["ElementwiseOp", "elementwise"]

#: The complex step.
COMPLEX_STEP = 1e-20


def _jit_scalar(f):
    if isinstance(f, numba.core.registry.CPUDispatcher):
        return f
    if not callable(f):
        raise TypeError(f"expected a callable scalar function, got {type(f).__name__}")
    if not isinstance(f, types.FunctionType):
        # a builtin (math.tanh) or a NumPy ufunc (np.sin): Numba compiles calls to it,
        # not the object itself, so call it from a small Python function
        inner = f

        def f(x):
            return inner(x)

    return numba.njit(error_model="numpy")(f)


def _make_complex_step(f_jit):
    h = COMPLEX_STEP

    @numba.njit(error_model="numpy")
    def dfdx(x):
        return f_jit(complex(x, h)).imag / h

    return dfdx


def _make_kernels(scalar, parallel):
    flags = set(FASTMATH)
    rng = numba.prange if parallel else range

    @numba.njit(fastmath=flags, parallel=parallel, error_model="numpy")
    def map_kernel(x, out):
        for i in rng(x.size):
            out[i] = scalar(x[i])

    @numba.njit(fastmath=flags, parallel=parallel, error_model="numpy")
    def vjp_kernel(x, g, out):
        for i in rng(x.size):
            out[i] = g[i] * scalar(x[i])

    return map_kernel, vjp_kernel


class ElementwiseOp(UnaryOp):
    r"""An element-wise op built from a scalar function (see :func:`elementwise`).

    Parameters
    ----------
    f : callable
        Scalar function ``f(x) -> float``, compilable by Numba.
    df : callable, optional
        Scalar derivative; complex step when omitted.
    name : str, optional
        Name for ``repr`` (default: ``f.__name__``).

    Examples
    --------
    >>> import numpy as np
    >>> op = ElementwiseOp(lambda x: x * x, df=lambda x: 2 * x, name="square")
    >>> op.derivative(np.array([1.0, 3.0]))
    array([2., 6.])
    >>> op
    structjac.elementwise(square)
    """

    def __init__(self, f, df=None, name=None):
        self.f = f
        self.df = df
        self.name = name if name is not None else getattr(f, "__name__", "f")
        self._f = _jit_scalar(f)
        self._df = _jit_scalar(df) if df is not None else _make_complex_step(self._f)
        self._value_k = _make_kernels(self._f, False)[0], _make_kernels(self._f, True)[0]
        ds, dp = _make_kernels(self._df, False), _make_kernels(self._df, True)
        self._deriv_k = ds[0], dp[0]
        self._vjp_k = ds[1], dp[1]

    def _run(self, kernels, arrays, out, what):
        arrays = [np.asarray(a) for a in arrays]
        dtype = float_dtype(*arrays)
        flats = [as_float_array(a, dtype) for a in arrays]
        out, flat = prepare_out(out, arrays[0].shape, dtype)
        kernel = pick(kernels[0], kernels[1], flat.size)
        try:
            kernel(*flats, flat)
        except numba.core.errors.TypingError as exc:
            hint = ""
            if what == "derivative" and self.df is None:
                hint = (" The derivative is the complex step f(x + ih).imag / h, so f must accept"
                        " complex numbers: use numpy (np.log, np.exp) or cmath functions, or pass df=.")
            raise TypeError(
                f"Numba could not compile the {what} of elementwise op {self.name!r} for dtype "
                f"{dtype}.{hint}\n{exc}"
            ) from None
        return out

    def _value(self, x, out):
        return self._run(self._value_k, (x,), out, "value")

    def _derivative(self, x, out):
        return self._run(self._deriv_k, (x,), out, "derivative")

    def _vjp(self, x, g, out):
        return self._run(self._vjp_k, (x, g), out, "derivative")

    def __repr__(self):
        return f"structjac.elementwise({self.name})"


def elementwise(f, df=None, name=None):
    r"""Make an element-wise op from a scalar function.

    The Jacobian of :math:`x \mapsto (f(x_1), \dots, f(x_n))` is
    :math:`\mathrm{diag}(f'(x_1), \dots, f'(x_n))`.  Without ``df`` the
    derivative is the complex step :math:`\operatorname{Im} f(x + ih)/h`,
    :math:`h = 10^{-20}`, exact to rounding for analytic ``f`` (write ``f``
    with ``np.`` or ``cmath`` functions so that it accepts complex numbers).

    Parameters
    ----------
    f : callable
        Scalar function of one real number, compilable by ``numba.njit``.
    df : callable, optional
        Its derivative, a scalar function; complex step when omitted.
    name : str, optional
        Name shown by ``repr``.

    Returns
    -------
    ElementwiseOp
        With ``op(x)``, ``op.derivative(x)``, ``op.jacobian(x)`` (a
        ``Diagonal``), ``op.vjp(x, g)``, ``op.value_and_jacobian(x)``.

    Examples
    --------
    The lecture's exercise, :math:`\ln x + e^x`, whose Jacobian is
    :math:`\mathrm{diag}(1/x_i + e^{x_i})`:

    >>> import numpy as np
    >>> from structjac.ops import elementwise
    >>> op = elementwise(lambda x: np.log(x) + np.exp(x), name="log_plus_exp")
    >>> x = np.array([0.5, 1.0, 2.0])
    >>> J = op.jacobian(x)
    >>> type(J).__name__
    'Diagonal'
    >>> bool(np.allclose(J.to_dense(), np.diag(1 / x + np.exp(x)), rtol=1e-14))
    True
    """
    return ElementwiseOp(f, df=df, name=name)
