"""Binary element-wise Numba kernels: fused vjps and Jacobian diagonals.

For ``f(u, v)`` applied element-wise, both Jacobians are diagonal:

* ``u * v``: ``(diag(v), diag(u))``; the vjp is ``(g v, g u)``;
* ``u / v``: ``(diag(1/v), diag(-u/v**2))``; the vjp is ``(g/v, -(g/v) (u/v))``.

(``u + v`` and ``u - v`` need no kernel: their Jacobians are ``I`` and ``-I``.)
Each kernel writes both outputs in one pass over the inputs.

Examples
--------
>>> import numpy as np
>>> from structjac.kernels import binary
>>> gu, gv = binary.divide_vjp(np.array([1.0, 2.0]), np.array([2.0, 4.0]), np.ones(2))
>>> gu, gv
(array([0.5 , 0.25]), array([-0.25 , -0.125]))
"""

from __future__ import annotations

from numpy.typing import ArrayLike

import numba
import numpy as np

from ._config import as_float_array, float_dtype, pick, prepare_out, serial_and_parallel

__all__ = ["multiply_vjp", "divide_vjp", "divide_jacobians"]


def _multiply_vjp(u, v, g, out1, out2):
    for i in numba.prange(u.size):
        gi = g[i]
        out1[i] = gi * v[i]
        out2[i] = gi * u[i]


def _divide_vjp(u, v, g, out1, out2):
    for i in numba.prange(u.size):
        vi = v[i]
        r = g[i] / vi
        out1[i] = r
        out2[i] = -(r * (u[i] / vi))


def _divide_jacobians(u, v, out1, out2):
    one = u.dtype.type(1)
    for i in numba.prange(u.size):
        r = one / v[i]
        out1[i] = r
        out2[i] = -(u[i] * r) * r


# one body each, compiled serial and parallel (structjac.kernels._config.serial_and_parallel)
_multiply_vjp_serial, _multiply_vjp_parallel = serial_and_parallel(_multiply_vjp)
_divide_vjp_serial, _divide_vjp_parallel = serial_and_parallel(_divide_vjp)
_divide_jacobians_serial, _divide_jacobians_parallel = serial_and_parallel(_divide_jacobians)


def _pair(serial, parallel, arrays, out):
    arrays = [np.asarray(a) for a in arrays]
    names = ("u", "v", "g")
    shape = arrays[0].shape
    for name, other in zip(names[1:], arrays[1:]):
        if other.shape != shape:
            raise ValueError(
                f"shapes do not match: u has shape {shape} but {name} has shape {other.shape}"
            )
    dtype = float_dtype(*arrays)
    flats = [as_float_array(a, dtype) for a in arrays]
    if out is None:
        out = (None, None)
    if len(out) != 2:
        raise ValueError(f"out must be a pair of arrays, got {len(out)} items")
    o1, f1 = prepare_out(out[0], shape, dtype, "out[0]")
    o2, f2 = prepare_out(out[1], shape, dtype, "out[1]")
    pick(serial, parallel, f1.size, memory_bound=True)(*flats, f1, f2)
    return o1, o2


def multiply_vjp(
    u: ArrayLike, v: ArrayLike, g: ArrayLike, out: np.ndarray | None = None
) -> np.ndarray:
    """Fused vjp of ``u * v``: ``(g * v, g * u)`` in one pass.

    Parameters
    ----------
    u, v, g : array_like
        Same shape (``ValueError`` naming the shapes otherwise); never written to.
    out : pair of ndarray, optional
        Preallocated ``(g_u, g_v)``, shape of ``u``, dtype of the result.

    Returns
    -------
    g_u, g_v : ndarray
    """
    return _pair(_multiply_vjp_serial, _multiply_vjp_parallel, (u, v, g), out)


def divide_vjp(
    u: ArrayLike, v: ArrayLike, g: ArrayLike, out: np.ndarray | None = None
) -> np.ndarray:
    """Fused vjp of ``u / v``: ``(g / v, -g u / v**2)`` in one pass.

    Parameters
    ----------
    u, v, g : array_like
        Same shape; never written to.
    out : pair of ndarray, optional

    Returns
    -------
    g_u, g_v : ndarray
    """
    return _pair(_divide_vjp_serial, _divide_vjp_parallel, (u, v, g), out)


def divide_jacobians(u: ArrayLike, v: ArrayLike, out: np.ndarray | None = None) -> np.ndarray:
    """Diagonals of the Jacobians of ``u / v``: ``(1 / v, -u / v**2)``, flat.

    Parameters
    ----------
    u, v : array_like
        Same shape; never written to.
    out : pair of ndarray, optional

    Returns
    -------
    d_u, d_v : ndarray
        Same shape as ``u``.
    """
    return _pair(_divide_jacobians_serial, _divide_jacobians_parallel, (u, v), out)
