"""A vectorisable ``tanh`` for the kernels: :func:`vtanh` (float32 and float64).

Numba lowers ``np.tanh`` on a scalar to a call of libm's ``tanh``/``tanhf``; a loop
that calls a function is not vectorised, and ``tanhf`` over 1.7e7 float32 values
is about 40x slower than NumPy's SIMD ``np.tanh``.  :func:`vtanh` is arithmetic
and :func:`~structjac.kernels._exp.vexp` only, and both of its branches are
computed for every element and one is chosen by a select, so a loop of
:func:`vtanh` is vectorised.

Mathematics
-----------
``tanh`` is odd: compute ``t = tanh(|x|)`` and give it the sign bit of ``x``
(``copysign``, by bit operations: -0.0 gives -0.0, NaN stays NaN).  With
``u = |x|`` (Cephes ``tanh.c``/``tanhf.c``, S. Moshier):

* ``u >= 0.625``: ``t = 1 - 2 / (exp(2u) + 1)``.  Here ``tanh u >= 0.55``, so
  the subtraction loses no digits: an error of ``r`` ulp in ``exp`` becomes at
  most ``0.8 r`` ulp of ``2/(exp(2u)+1) <= 0.45``, below one ulp of ``t``.  For
  ``2u`` above the overflow threshold ``exp`` gives inf and ``t = 1`` exactly
  (``tanh u`` rounds to 1 from ``u = 9.01`` in float32 and ``u = 19.06`` in
  float64), and ``u = inf`` gives 1.
* ``u < 0.625``: ``t = u + u s R(s)``, ``s = u^2``, with ``R`` Cephes' fit of
  ``(tanh(u) - u) / u^3``: float32 the degree-4 polynomial of ``tanhf.c``, float64
  the rational function ``P(s)/Q(s)`` of degrees 2/3 of ``tanh.c``.  ``u s R(s)``
  is at most 0.11 ``u`` in size, so its relative error adds at most 0.11 of its
  ulp count to the result.

Measured against ``np.tanh`` over dense sweeps (``tests/kernels/test_tanh.py``):
float64 within 2 ulp of ``np.tanh``, float32 within 2 ulp of the correctly
rounded value.

Compilation
-----------
As :func:`~structjac.kernels._exp.vexp`: compiled with
:data:`~structjac.kernels._exp.EXP_FASTMATH` (no ``reassoc``, no ``nnan``/``ninf``)
through ``numba.extending.overload`` and inlined by LLVM into the kernels.  The
disk cache does not track this file: after editing it delete the ``*.nbi``/``*.nbc``
files in ``structjac/kernels/__pycache__``.

Examples
--------
>>> import numba, numpy as np
>>> from structjac.kernels._tanh import vtanh
>>> f = numba.njit(lambda x: vtanh(x))
>>> float(f(0.5)) == float(np.tanh(0.5)), float(f(np.inf)), float(f(-np.inf))
(True, 1.0, -1.0)
>>> bool(np.signbit(f(-0.0))), bool(np.isnan(f(np.nan)))
(True, True)
>>> bool(f(np.float32(0.25)) == np.tanh(np.float32(0.25)))     # computed in float32
True
"""

from __future__ import annotations

import numpy as np
from numba import types
from numba.core.extending import overload

from ._exp import EXP_FASTMATH, _bits_float, _float_bits, vexp

__all__ = ["vtanh"]


def vtanh(x):
    """``tanh(x)`` for a float32 or float64 scalar, within 2 ulp (Numba only)."""
    return np.tanh(x)


def _tanh_f64(x):
    bits = _float_bits(x)
    u = _bits_float(bits & np.int64(0x7FFFFFFFFFFFFFFF))  # |x| (NaN stays NaN)
    one = np.float64(1.0)
    two = np.float64(2.0)
    # u >= 0.625: 1 - 2 / (e^{2u} + 1); inf for 2u > 709.8 gives 1
    large = one - two / (vexp(u + u) + one)
    # u < 0.625: u + u s P(s)/Q(s), s = u^2 (Cephes tanh.c)
    s = u * u
    p = np.float64(-9.64399179425052238628e-1)
    p = p * s + np.float64(-9.92877231001918586564e1)
    p = p * s + np.float64(-1.61468768441708447952e3)
    q = s + np.float64(1.12811678491632931402e2)
    q = q * s + np.float64(2.23548839060100448583e3)
    q = q * s + np.float64(4.84406305325125486048e3)
    small = u + u * (s * (p / q))
    t = large if u >= np.float64(0.625) else small  # NaN: small, which is NaN
    return _bits_float(
        (_float_bits(t) & np.int64(0x7FFFFFFFFFFFFFFF)) | (bits & np.int64(-0x8000000000000000))
    )


def _tanh_f32(x):
    bits = _float_bits(x)
    u = _bits_float(np.int32(bits & 0x7FFFFFFF))
    one = np.float32(1.0)
    two = np.float32(2.0)
    large = one - two / (vexp(u + u) + one)
    # u < 0.625: u + u s P(s), s = u^2 (Cephes tanhf.c)
    s = u * u
    p = np.float32(-5.70498872745e-3)
    p = p * s + np.float32(2.06390887954e-2)
    p = p * s + np.float32(-5.37397155531e-2)
    p = p * s + np.float32(1.33314422036e-1)
    p = p * s + np.float32(-3.33332819422e-1)
    small = u + u * (s * p)
    t = large if u >= np.float32(0.625) else small
    return _bits_float(np.int32((_float_bits(t) & 0x7FFFFFFF) | (bits & -0x80000000)))


@overload(
    vtanh, jit_options=dict(fastmath=set(EXP_FASTMATH), error_model="numpy", forceinline=True)
)
def _vtanh_overload(x):
    if x == types.float64:
        return _tanh_f64
    if x == types.float32:
        return _tanh_f32
    return None
