"""A vectorisable ``exp`` for the kernels: :func:`vexp` (float32 and float64).

Numba lowers ``np.exp`` on a scalar to a call of libm's ``exp``; a loop that
calls a function is not vectorised, so ``exp(-|z|)`` costs 6-7x the memory
bandwidth of a fused sigmoid vjp.  :func:`vexp` is plain arithmetic that LLVM
inlines and vectorises (packed ``vfmadd...pd``/``ps`` in the kernels' loops).

Mathematics
-----------
1. Clamp ``x`` into ``[LO, HI]`` (float64 ``[-746, 710]``, float32
   ``[-104, 89]``): below ``LO`` the result rounds to +0, above ``HI`` it
   overflows to inf, and the clamp keeps the integers below in range.
   ``-inf`` gives 0, ``inf`` gives inf, NaN gives NaN (the input is returned).
2. Cody-Waite range reduction ``x = k ln2 + r`` with ``k = rint(x / ln2)``
   and ``|r| <= ln2/2 (1 + 2^-40)``.  ``k`` is rounded by the shifter trick
   ``t = x log2(e) + S``, ``S = 1.5 * 2^52`` (float32: ``1.5 * 2^23``): the
   addition rounds to an integer and the low bits of ``t`` hold ``k``, so no
   float -> int conversion is needed (AVX2 has none for 64-bit integers).
   ``r = (x - k ln2_hi) - k ln2_lo`` with ``ln2_hi`` short enough that
   ``k ln2_hi`` is exact (fdlibm's split; Cephes' for float32): ``r`` carries
   an error of about ``|k| 2^-80`` absolute, i.e. far below one ulp of the result.
3. ``e^r = 1 + r + r^2 q(r)``, Horner's scheme, with ``q`` the near-minimax
   (Chebyshev) fit of ``(e^r - 1 - r) / r^2`` on ``[-ln2/2, ln2/2]``: degree 9
   for float64 (polynomial degree 11, relative error 1.6e-17 = 0.14 ulp with the
   coefficients as rounded), degree 4 for float32 (degree 6, 9.7e-9 = 0.16 ulp).
   Regenerate with ``mpmath.chebyfit(q, [-h, h], deg + 1)``, ``h = ln2/2``.
   (Taylor polynomials need degree 13 and 7 for the same bound: 2 and 1 more
   FMAs, about 12 % slower in the sigmoid vjp.)
4. ``e^x = e^r 2^k1 2^k2`` with ``k1 = k >> 1``, ``k2 = k - k1``: both powers
   of two are normal numbers built in the exponent field, each product is
   exact except the last one, which rounds once into the subnormal range or
   overflows to inf exactly when the true result does.

Error bound: the polynomial and the reduction add about 0.15 ulp to the
rounding of Horner's last step, so the result is within 1 ulp of ``e^x``
(measured: float64 at most 1 ulp from ``np.exp`` over ``[-750, 750]``,
float32 at most 1 ulp from the correctly rounded value); a subnormal result
is within 1 ulp of the subnormal grid.

Compilation
-----------
The helpers are compiled with :data:`EXP_FASTMATH`, the kernels' flags without
``reassoc``: with ``reassoc`` LLVM may fold ``(t + S) - S`` to ``t`` and merge
the two Cody-Waite products, which breaks both tricks.  They are not inlined
by Numba (``inline="always"`` would lower them with the caller's flags) but by
LLVM, which keeps each instruction's own flags.  Numba's disk cache does not
track dependencies: after editing this file delete the ``*.nbi``/``*.nbc`` files
in ``structjac/kernels/__pycache__``.

Examples
--------
>>> import numba, numpy as np
>>> from structjac.kernels._exp import vexp
>>> f = numba.njit(lambda x: vexp(x))
>>> float(f(0.0)), float(f(-np.inf)), bool(np.isnan(f(np.nan)))
(1.0, 0.0, True)
>>> bool(f(np.float32(1.0)) == np.float32(np.e))     # computed in float32
True
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import types
from numba.core.extending import intrinsic, overload

from ._config import FASTMATH

__all__ = ["vexp", "EXP_FASTMATH"]

#: The kernels' fastmath flags without ``reassoc`` (see the module docstring).
EXP_FASTMATH = frozenset(FASTMATH - {"reassoc"})


@intrinsic
def _float_bits(typingctx, x):
    """The bits of a float32/float64 as an int32/int64 (a bit cast, no conversion)."""
    if x not in (types.float32, types.float64):
        return None
    ity = types.int32 if x == types.float32 else types.int64

    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], ir.IntType(ity.bitwidth))

    return ity(x), codegen


@intrinsic
def _bits_float(typingctx, i):
    """The float32/float64 whose bits are the int32/int64 ``i`` (a bit cast)."""
    if i not in (types.int32, types.int64):
        return None
    fty = types.float32 if i == types.int32 else types.float64

    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], context.get_value_type(fty))

    return fty(i), codegen


def vexp(x):
    """``exp(x)`` for a float32 or float64 scalar, within 1 ulp (Numba only)."""
    return np.exp(x)


def _exp_f64(x):
    lo = np.float64(-746.0)
    hi = np.float64(710.0)
    c = lo if x < lo else x  # NaN passes both tests unchanged
    c = hi if c > hi else c
    c = c if c == c else np.float64(0.0)  # keep k defined for NaN
    shifter = np.float64(6755399441055744.0)  # 1.5 * 2^52
    t = c * np.float64(1.4426950408889634) + shifter
    kf = t - shifter
    k = _float_bits(t) - _float_bits(shifter)
    r = c - kf * np.float64(6.93147180369123816490e-01)  # ln2_hi, 32 significant bits
    r = r - kf * np.float64(1.90821492927058770002e-10)  # ln2_lo
    p = np.float64(2.5100375924709717e-08)  # q(r) ~ (e^r - 1 - r) / r^2, degree 9
    p = p * r + np.float64(2.762007599981065e-07)
    p = p * r + np.float64(2.7557268480116333e-06)
    p = p * r + np.float64(2.4801521322116825e-05)
    p = p * r + np.float64(0.0001984126986304067)
    p = p * r + np.float64(0.0013888888917196881)
    p = p * r + np.float64(0.008333333333330065)
    p = p * r + np.float64(0.041666666666624164)
    p = p * r + np.float64(0.16666666666666669)
    p = p * r + np.float64(0.5000000000000001)
    p = p * r + np.float64(1.0)
    p = p * r + np.float64(1.0)
    k1 = k >> 1
    k2 = k - k1
    y = p * _bits_float((k1 + 1023) << 52) * _bits_float((k2 + 1023) << 52)
    return y if x == x else x


def _exp_f32(x):
    lo = np.float32(-104.0)
    hi = np.float32(89.0)
    c = lo if x < lo else x
    c = hi if c > hi else c
    c = c if c == c else np.float32(0.0)
    shifter = np.float32(12582912.0)  # 1.5 * 2^23
    t = c * np.float32(1.44269504) + shifter
    kf = t - shifter
    k = _float_bits(t) - _float_bits(shifter)
    r = c - kf * np.float32(0.693359375)  # ln2_hi, 9 significant bits
    r = r - kf * np.float32(-2.12194440e-4)  # ln2_lo
    p = np.float32(0.0013926175888627768)  # q(r) ~ (e^r - 1 - r) / r^2, degree 4
    p = p * r + np.float32(0.008363173343241215)
    p = p * r + np.float32(0.041666556149721146)
    p = p * r + np.float32(0.16666577756404877)
    p = p * r + np.float32(0.5)
    p = p * r + np.float32(1.0)
    p = p * r + np.float32(1.0)
    k1 = k >> 1
    k2 = k - k1
    s1 = _bits_float(np.int32((k1 + 127) << 23))
    s2 = _bits_float(np.int32((k2 + 127) << 23))
    y = p * s1 * s2
    return y if x == x else x


@overload(vexp, jit_options=dict(fastmath=set(EXP_FASTMATH), error_model="numpy"))
def _vexp_overload(x):
    if x == types.float64:
        return _exp_f64
    if x == types.float32:
        return _exp_f32
    return None
