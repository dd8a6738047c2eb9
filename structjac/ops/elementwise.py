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

Checks on first use
-------------------
Two mistakes give silently wrong numbers, so the op checks ``f`` once, at a
few fixed points (:data:`PROBE_POINTS`; points where ``f`` is not finite are
left out), and raises ``ValueError`` naming the problem:

* ``f`` must act element-wise.  A function of the whole array
  (``np.exp(x) / np.sum(np.exp(x))``, ``x - np.mean(x)``) is compiled for one
  number at a time, where it means something else (``1`` and ``0``).  When ``f``
  can be called on an array in Python, ``f(x)`` must agree with ``f`` applied
  to each element, also on a permuted and on a shorter array.  Functions that
  cannot be called on an array (``math.exp``, ``if`` on the value) are not
  checked this way.
* Without ``df``, the complex step must agree with the central difference
  :math:`(f(x + \delta) - f(x - \delta)) / 2\delta`, :math:`\delta = 2^{-17}
  \max(1, |x|)`, to a relative ``1e-5``.  It does not for a function that is not
  analytic (``np.abs``, ``np.real``, ``np.conj``): ``np.abs(x + ih)`` is real, so
  its complex step is ``0``.  Pass ``df=`` for those.

The element-wise check runs on the first call of any method, the derivative
check on the first derivative, Jacobian or vjp; a given ``df`` is trusted.

Compilation: the scalar functions are ``numba.njit``-ed once per op object, and
the loop kernels (value, derivative, vjp; serial and ``prange``) are built once
per op object by a factory; Numba then compiles each once per dtype, on first
use.  These kernels are not cached on disk (a lambda has no stable identity).
"""

from __future__ import annotations

from numpy.typing import ArrayLike
from collections.abc import Callable
from typing import Any

import types

import numba
import numpy as np

from structjac.kernels._config import (
    FASTMATH,
    as_float_array,
    float_dtype,
    pick,
    prepare_out,
)

from .unary import UnaryOp

__all__ = ["ElementwiseOp", "elementwise"]

#: The complex step.
COMPLEX_STEP = 1e-20

#: Where :class:`ElementwiseOp` checks ``f`` on first use: away from 0 and the
#: integers (where kinks usually sit), both signs, spread over a few scales.
PROBE_POINTS = np.array([0.37, 0.71, 1.29, 2.3, 0.13, -0.53, -1.7, 3.1, -0.29])

#: Relative tolerance of the checks (the central difference is good to about 1e-10).
PROBE_RTOL = 1e-5


def _close(a, b, scale=0.0):
    """Entry-wise ``|a - b| <= PROBE_RTOL * max(1, |a|, |b|, scale)``."""
    bound = PROBE_RTOL * np.maximum(np.maximum(1.0, np.abs(a)), np.maximum(np.abs(b), scale))
    return np.abs(a - b) <= bound


def _points(xs):
    return ", ".join(f"{v:g}" for v in xs)


def _jit_scalar(f):
    if isinstance(f, numba.core.registry.CPUDispatcher):
        return f
    if not callable(f):
        raise TypeError(f"expected a callable scalar function, got {type(f).__name__}")
    if not isinstance(f, types.FunctionType):
        # a builtin (math.tanh) or a NumPy ufunc (np.sin): Numba compiles calls to it,
        # not the object itself, so call it from a small Python function
        inner = f

        def f(x: ArrayLike):
            return inner(x)

    return numba.njit(error_model="numpy")(f)


def _make_complex_step(f_jit):
    h = COMPLEX_STEP

    @numba.njit(error_model="numpy")
    def dfdx(x: ArrayLike):
        return f_jit(complex(x, h)).imag / h

    return dfdx


def _make_kernels(scalar, parallel):
    flags = set(FASTMATH)
    rng = numba.prange if parallel else range

    @numba.njit(fastmath=flags, parallel=parallel, error_model="numpy")
    def map_kernel(x: ArrayLike, out: np.ndarray | None):
        for i in rng(x.size):
            out[i] = scalar(x[i])

    @numba.njit(fastmath=flags, parallel=parallel, error_model="numpy")
    def vjp_kernel(x: ArrayLike, g: ArrayLike, out: np.ndarray | None):
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

    def __init__(
        self, f: Callable[..., Any], df: Callable[..., Any] | None = None, name: str | None = None
    ) -> None:
        self.f = f
        self.df = df
        self.name = name if name is not None else getattr(f, "__name__", "f")
        self._f = _jit_scalar(f)
        self._df = _jit_scalar(df) if df is not None else _make_complex_step(self._f)
        self._value_k = _make_kernels(self._f, False)[0], _make_kernels(self._f, True)[0]
        ds, dp = _make_kernels(self._df, False), _make_kernels(self._df, True)
        self._deriv_k = ds[0], dp[0]
        self._vjp_k = ds[1], dp[1]
        self._checked_map = False
        self._checked_step = df is not None

    def _check_elementwise(self):
        """Raise ValueError unless ``f`` on an array agrees with ``f`` element by element."""
        xs = PROBE_POINTS
        try:
            mapped = np.array([self._f(float(v)) for v in xs], dtype=np.float64)
        except numba.core.errors.TypingError:
            return  # reported, with its hint, by the kernel call
        try:
            with np.errstate(all="ignore"):
                whole = [
                    np.asarray(self.f(a.copy()), dtype=np.float64) for a in (xs, xs[::-1], xs[:4])
                ]
        except Exception:  # noqa: BLE001 - f is for scalars only: no verdict
            self._checked_map = True
            return
        for a, expect, what in zip(
            (xs, xs[::-1], xs[:4]),
            (mapped, mapped[::-1], mapped[:4]),
            ("an array", "the reversed array", "its first 4 entries"),
        ):
            got = whole.pop(0)
            if got.ndim == 0:  # a constant: broadcast like numpy would
                got = np.broadcast_to(got, a.shape)
            if got.shape != a.shape:
                raise ValueError(
                    f"elementwise op {self.name!r}: f is not element-wise: f of an array of "
                    f"shape {a.shape} has shape {got.shape}. elementwise(f) applies f to one "
                    "number at a time; write array functions (softmax, normalisation) with "
                    "structjac ops or the transforms (sj.jacobian) instead"
                )
            finite = np.isfinite(expect) & np.isfinite(got)
            bad = finite & ~_close(got, expect)
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise ValueError(
                    f"elementwise op {self.name!r}: f is not element-wise: on {what} "
                    f"[{_points(a)}] it gives {got[i]:.17g} at x = {a[i]:g}, but f of that "
                    f"number alone is {expect[i]:.17g} (does f use np.sum, np.mean, np.max or "
                    "another function of the whole array?). elementwise(f) applies f to one "
                    "number at a time; write array functions with structjac ops or the "
                    "transforms (sj.jacobian) instead"
                )
        self._checked_map = True

    def _check_complex_step(self):
        """Raise ValueError unless the complex step agrees with a central difference."""
        try:
            steps = np.array([self._df(float(v)) for v in PROBE_POINTS], dtype=np.float64)
        except numba.core.errors.TypingError:
            return  # reported, with its hint, by the kernel call
        xs = PROBE_POINTS
        delta = 2.0**-17 * np.maximum(1.0, np.abs(xs))
        f = self._f
        with np.errstate(all="ignore"):
            value = np.array([f(float(v)) for v in xs], dtype=np.float64)
            central = np.array(
                [(f(float(v + d)) - f(float(v - d))) / (2 * d) for v, d in zip(xs, delta)],
                dtype=np.float64,
            )
        finite = np.isfinite(steps) & np.isfinite(central) & np.isfinite(value)
        scale = 1e-4 * np.abs(np.where(np.isfinite(value), value, 0.0))
        bad = finite & ~_close(steps, central, scale)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"elementwise op {self.name!r}: the complex-step derivative of f at x = "
                f"{xs[i]:g} is {steps[i]:.17g} but a central difference gives "
                f"{central[i]:.17g}: f is not analytic (np.abs, np.real, np.conj, max/min and "
                "comparisons are not), so the complex step Im f(x + ih)/h is wrong for it. "
                "Pass its derivative as df="
            )
        self._checked_step = True

    def _run(self, kernels, arrays, out, what):
        if not self._checked_map:
            self._check_elementwise()
        if what == "derivative" and not self._checked_step:
            self._check_complex_step()
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
                hint = (
                    " The derivative is the complex step f(x + ih).imag / h, so f must accept"
                    " complex numbers: use numpy (np.log, np.exp) or cmath functions, or pass df=."
                )
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


def elementwise(
    f: Callable[..., Any], df: Callable[..., Any] | None = None, name: str | None = None
) -> "ElementwiseOp":
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

    Raises
    ------
    ValueError
        On first use, when ``f`` is not element-wise (it uses the whole array,
        as ``x - np.mean(x)`` does), or, without ``df``, when the complex step
        disagrees with a central difference (``f`` not analytic, as ``np.abs``);
        see the module notes.
    TypeError
        When Numba cannot compile ``f`` (or, for the complex step, ``f`` of a
        complex number).

    Examples
    --------
    The function :math:`\ln x + e^x`, whose Jacobian is
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

    A function that is not analytic needs its derivative:

    >>> elementwise(np.abs).derivative(x)
    Traceback (most recent call last):
    ...
    ValueError: elementwise op 'absolute': the complex-step derivative of f at x = 0.37 is 0 ...
    >>> elementwise(np.abs, df=np.sign).derivative(np.array([-2.0, 3.0]))
    array([-1.,  1.])
    """
    return ElementwiseOp(f, df=df, name=name)
