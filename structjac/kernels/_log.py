"""A vectorisable ``log`` and ``log1p`` for the kernels: :func:`vlog`, :func:`vlog1p`.

Numba lowers ``np.log``/``np.log1p`` on a scalar to a call of libm's
``log``/``log1p`` (``logf``/``log1pf``); a loop that calls a function is not
vectorised, so the softplus value and the per-sample BCE losses ran at 16-46x the
memory-bandwidth floor (``np.multiply``), the ``log`` op at 6-7x.  :func:`vlog` and :func:`vlog1p` are plain
arithmetic and bit operations, without branches (every special case is a
select), which LLVM inlines and vectorises.

Mathematics
-----------
The algorithm is fdlibm's ``e_log.c``/``s_log1p.c`` (float32: ``e_logf.c``/
``s_log1pf.c``, coefficients as in FreeBSD/musl), with the branches replaced
by selects.

1. Reduction.  Write ``x = 2^k m`` with ``m`` in ``[sqrt(2)/2, sqrt(2))``, by
   integer operations on the bits: adding ``0x3ff0... - bits(sqrt(2)/2)`` to
   the bits carries into the exponent field exactly when the mantissa is at
   least that of ``sqrt(2)``; the exponent field then gives ``k`` and the
   mantissa bits plus ``bits(sqrt(2)/2)`` give ``m``.  ``k`` is turned into a
   float by the shifter trick (``bits(1.5 * 2^52) + k`` reinterpreted, minus
   ``1.5 * 2^52``; float32 ``1.5 * 2^23``): AVX2 has no packed int64 -> double
   conversion.  A subnormal ``x`` is first scaled by ``2^54`` (float32 ``2^25``,
   exact) and ``k`` lowered by 54 (25).
2. ``f = m - 1`` is exact (Sterbenz), ``|f| <= 0.4143``, and with
   ``s = f / (2 + f)`` (``|s| <= 0.1716``)::

       log(m) = log(1 + s) - log(1 - s) = 2 atanh(s) = 2s + 2s^3/3 + ...
              = f - f^2/2 + s (f^2/2 + R(s^2)),

   ``R(z) = Lg1 z + ... + Lg7 z^7`` (float32: degree 4) the near-minimax fit
   with ``|2s + s R(s^2) - log(m)| < 2^-58.45`` (float32 ``2^-34.24``),
   evaluated as fdlibm does, ``t2 + t1`` (two interleaved Horner chains in
   ``z = s^2`` and ``w = z^2``).
3. ``log(x) = k ln2_hi + (f - (f^2/2 - (s (f^2/2 + R) + k ln2_lo)))`` with
   ``ln2 = ln2_hi + ln2_lo``, ``ln2_hi`` having trailing zero bits so that
   ``k ln2_hi`` is exact (fdlibm's split, 32 significant bits: every ``k``;
   float32 musl's, 17 bits: ``|k| < 128``, beyond which its rounding is far
   below an ulp of ``|log x| > 88``).  The
   terms are added from the smallest to the largest, and ``f^2/2`` is the
   only one that is not small relative to the result, which fdlibm's analysis
   bounds below 1 ulp.
4. ``log1p(x)``: ``u = 1 + x`` (rounded) is reduced as in 1.  The rounding of
   ``u`` is corrected by ``c / u`` with ``c = x - (u - 1)`` (``k < 2``) or
   ``c = 1 - (u - x)`` (``k >= 2``), both exact: ``log(1 + x) =
   log(u) + log(1 + c/u) ~ log(u) + c/u``, and ``c/u`` is below one ulp of
   ``u``.  (``k`` is compared as the float ``dk``.)  For ``k = 0`` (``1 + x`` in
   ``[sqrt(2)/2, sqrt(2))``) ``f = x`` and
   ``c = 0`` (no rounding at all), as in fdlibm.  For ``|x| < 2^-54``
   (float32 ``2^-25``) the result is ``x`` itself (``x^2/2`` is below half an
   ulp): this keeps ``-0.0`` and the subnormals exact.

Special values (selects at the end, also under the kernels' fastmath flags,
which have neither ``nnan`` nor ``ninf``): ``log``: NaN -> NaN, ``x < 0``
(also ``-inf``) -> NaN, ``+-0`` -> ``-inf``, ``inf`` -> ``inf``.  ``log1p``:
NaN -> NaN, ``-1`` -> ``-inf``, ``x < -1`` -> NaN, ``inf`` -> ``inf``,
``-0.0`` -> ``-0.0``.

Error bound: fdlibm's ``log``/``log1p`` are within 1 ulp; the selects change
nothing, and FMA contraction (``contract``) can only remove roundings from
the products.  Measured (``tests/kernels/test_log.py``, dense sweeps over the
whole range, subnormals and the neighbourhood of 1 and -1 included): float64
within 1 ulp of ``np.log``/``np.log1p``, float32 within 1 ulp of the
correctly rounded value.

Compilation
-----------
As :func:`~structjac.kernels._exp.vexp`: compiled with
:data:`~structjac.kernels._exp.EXP_FASTMATH` (no ``reassoc``: it would let
LLVM regroup the carefully ordered sums of 3. and 4. and fold ``x - (u - 1)``
to 0; no ``nnan``/``ninf``) through ``numba.extending.overload``, and inlined
by LLVM into the kernels (``forceinline``).  Numba's disk cache does not track
this file: after editing it delete the ``*.nbi``/``*.nbc`` files in
``structjac/kernels/__pycache__``.

Examples
--------
>>> import numba, numpy as np
>>> from structjac.kernels._log import vlog, vlog1p
>>> f = numba.njit(lambda x: vlog(x))
>>> float(f(1.0)), float(f(0.0)), float(f(np.inf)), bool(np.isnan(f(-1.0)))
(0.0, -inf, inf, True)
>>> float(f(np.e)) == 1.0, bool(f(np.float32(2.0)) == np.float32(np.log(2.0)))  # float32 in float32
(True, True)
>>> g = numba.njit(lambda x: vlog1p(x))
>>> float(g(-1.0)), bool(np.signbit(g(-0.0))), float(g(1e-300)), bool(np.isnan(g(-2.0)))
(-inf, True, 1e-300, True)
"""

from __future__ import annotations

import numba
import numpy as np
from numba import types
from numba.core.extending import overload

from ._exp import EXP_FASTMATH, _bits_float, _float_bits

__all__ = ["vlog", "vlog1p"]

_HELPER = dict(fastmath=set(EXP_FASTMATH), error_model="numpy", forceinline=True)


def vlog(x):
    """``log(x)`` for a float32 or float64 scalar, within 1 ulp (Numba only)."""
    return np.log(x)


def vlog1p(x):
    """``log1p(x) = log(1 + x)`` for a float32 or float64 scalar, within 1 ulp (Numba only)."""
    return np.log1p(x)


# --- the reduced logarithm: log(2^k (1 + f)) + c, with dk = k as a float --------------


@numba.njit(**_HELPER)
def _log_reduced_f64(f, dk, c):
    s = f / (np.float64(2.0) + f)
    z = s * s
    w = z * z
    t1 = w * (
        np.float64(3.999999999940941908e-01)  # Lg2
        + w
        * (
            np.float64(2.222219843214978396e-01)  # Lg4
            + w * np.float64(1.531383769920937332e-01)
        )
    )  # Lg6
    t2 = z * (
        np.float64(6.666666666666735130e-01)  # Lg1
        + w
        * (
            np.float64(2.857142874366239149e-01)  # Lg3
            + w
            * (
                np.float64(1.818357216161805012e-01)  # Lg5
                + w * np.float64(1.479819860511658591e-01)
            )
        )
    )  # Lg7
    r = t2 + t1
    hfsq = np.float64(0.5) * f * f
    return (
        s * (hfsq + r)
        + (dk * np.float64(1.90821492927058770002e-10) + c)  # ln2_lo
        - hfsq
        + f
        + dk * np.float64(6.93147180369123816490e-01)
    )  # ln2_hi


@numba.njit(**_HELPER)
def _log_reduced_f32(f, dk, c):
    s = f / (np.float32(2.0) + f)
    z = s * s
    w = z * z
    t1 = w * (np.float32(0.40000972152) + w * np.float32(0.24279078841))  # Lg2, Lg4
    t2 = z * (np.float32(0.66666662693) + w * np.float32(0.28498786688))  # Lg1, Lg3
    r = t2 + t1
    hfsq = np.float32(0.5) * f * f
    return (
        s * (hfsq + r)
        + (dk * np.float32(9.0580006145e-06) + c)  # ln2_lo
        - hfsq
        + f
        + dk * np.float32(6.9313812256e-01)
    )  # ln2_hi


# bits(1.0) - bits(sqrt(2)/2) in the high word; bits(sqrt(2)/2); the shifter 1.5 * 2^52
_OFF64 = np.int64((0x3FF00000 - 0x3FE6A09E) << 32)
_SQRT_HALF64 = np.int64(0x3FE6A09E << 32)
_MANT64 = np.int64(0x000FFFFFFFFFFFFF)
_SHIFT64 = np.int64(0x4338000000000000 - 1023)  # bits(1.5 * 2^52), less the bias
_OFF32 = 0x3F800000 - 0x3F3504F3
_SQRT_HALF32 = 0x3F3504F3
_SHIFT32 = 0x4B400000 - 127  # bits(1.5 * 2^23), less the bias


def _log_f64(x):
    sub = x < np.float64(2.2250738585072014e-308)  # subnormal (or <= 0: a select below)
    xs = x * np.float64(18014398509481984.0) if sub else x  # 2^54
    ix = _float_bits(xs) + _OFF64
    # dk = (ix >> 52) - 1023 (- 54) as a float, by the shifter
    dk = _bits_float((ix >> 52) + _SHIFT64) - np.float64(6755399441055744.0)
    dk = dk - np.float64(54.0) if sub else dk
    m = _bits_float((ix & _MANT64) + _SQRT_HALF64)
    y = _log_reduced_f64(m - np.float64(1.0), dk, np.float64(0.0))
    y = y if x < np.float64(np.inf) else x  # inf -> inf; NaN -> NaN
    y = -np.float64(np.inf) if x == np.float64(0.0) else y
    return np.float64(np.nan) if x < np.float64(0.0) else y


def _log_f32(x):
    sub = x < np.float32(1.17549435e-38)
    xs = x * np.float32(33554432.0) if sub else x  # 2^25
    ix = _float_bits(xs) + _OFF32
    dk = _bits_float(np.int32((ix >> 23) + _SHIFT32)) - np.float32(12582912.0)
    dk = dk - np.float32(25.0) if sub else dk
    m = _bits_float(np.int32((ix & 0x007FFFFF) + _SQRT_HALF32))
    y = _log_reduced_f32(m - np.float32(1.0), dk, np.float32(0.0))
    y = y if x < np.float32(np.inf) else x
    y = -np.float32(np.inf) if x == np.float32(0.0) else y
    return np.float32(np.nan) if x < np.float32(0.0) else y


def _log1p_f64(x):
    one = np.float64(1.0)
    u = one + x
    iu = _float_bits(u) + _OFF64
    dk = _bits_float((iu >> 52) + _SHIFT64) - np.float64(6755399441055744.0)
    # the rounding error of u, exact, relative to u (negligible from k = 54 on)
    c = (one - (u - x)) if dk >= np.float64(2.0) else (x - (u - one))
    c = c / u
    m = _bits_float((iu & _MANT64) + _SQRT_HALF64)
    f = m - one
    k0 = dk == np.float64(0.0)  # 1 + x in [sqrt(2)/2, sqrt(2))
    f = x if k0 else f
    c = np.float64(0.0) if k0 else c
    y = _log_reduced_f64(f, dk, c)
    y = y if x < np.float64(np.inf) else x  # inf -> inf; NaN -> NaN
    y = x if abs(x) < np.float64(5.551115123125783e-17) else y  # |x| < 2^-54: x (and -0.0)
    y = -np.float64(np.inf) if x == -one else y
    return np.float64(np.nan) if x < -one else y


def _log1p_f32(x):
    one = np.float32(1.0)
    u = one + x
    iu = _float_bits(u) + _OFF32
    dk = _bits_float(np.int32((iu >> 23) + _SHIFT32)) - np.float32(12582912.0)
    c = (one - (u - x)) if dk >= np.float32(2.0) else (x - (u - one))
    c = c / u
    m = _bits_float(np.int32((iu & 0x007FFFFF) + _SQRT_HALF32))
    f = m - one
    k0 = dk == np.float32(0.0)
    f = x if k0 else f
    c = np.float32(0.0) if k0 else c
    y = _log_reduced_f32(f, dk, c)
    y = y if x < np.float32(np.inf) else x
    y = x if abs(x) < np.float32(2.98023224e-08) else y  # |x| < 2^-25
    y = -np.float32(np.inf) if x == -one else y
    return np.float32(np.nan) if x < -one else y


_OVERLOAD = dict(fastmath=set(EXP_FASTMATH), error_model="numpy", forceinline=True)


@overload(vlog, jit_options=_OVERLOAD)
def _vlog_overload(x):
    if x == types.float64:
        return _log_f64
    if x == types.float32:
        return _log_f32
    return None


@overload(vlog1p, jit_options=_OVERLOAD)
def _vlog1p_overload(x):
    if x == types.float64:
        return _log1p_f64
    if x == types.float32:
        return _log1p_f32
    return None
