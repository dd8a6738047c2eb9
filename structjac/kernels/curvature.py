r"""Numba kernels of the curvature extras: the gated sum of squares of backpropagated columns.

The exact and Monte-Carlo diagonals of the generalised Gauss-Newton matrix backpropagate
:math:`K` cotangent columns :math:`V_c \in \mathbb{F}^{N \times m}` (stored as one
``(K, N, m)`` array) through each layer, and need per layer

.. math::

    V_c \leftarrow V_c \odot g', \qquad Q = \sum_{c=1}^{K} V_c^{\odot 2},

the gating by the activation's derivative :math:`g'` (an ``(N, m)`` array) and the sum
of the squared columns.  :func:`gate_square_sum` does both in one pass over ``V``
(written in place) instead of a product, a square and a reduction (three passes and two
temporaries of ``V``'s size).  The sums accumulate in the array dtype: ``K`` is the
number of classes or Monte-Carlo samples, a handful of terms.

Examples
--------
>>> import numpy as np
>>> from structjac.kernels.curvature import gate_square_sum
>>> V = np.arange(12.0).reshape(2, 3, 2)
>>> gp = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 2.0]])
>>> gate_square_sum(V, gp)
array([[ 36.,   0.],
       [ 68.,  90.],
       [  0., 584.]])
>>> V[0]
array([[ 0.,  0.],
       [ 2.,  3.],
       [ 0., 10.]])
"""

from __future__ import annotations

import numba
import numpy as np

from ._config import JIT

__all__ = ["gate_square_sum"]


@numba.njit(**JIT)
def _gate_square_sum(V, gp, out):
    K, N, m = V.shape
    zero = out.dtype.type(0)
    for k in range(N):
        o = out[k]
        g = gp[k]
        for i in range(m):
            o[i] = zero
        for c in range(K):
            v = V[c, k]
            for i in range(m):
                x = v[i] * g[i]
                v[i] = x
                o[i] += x * x


@numba.njit(**JIT)
def _square_sum(V, out):
    K, N, m = V.shape
    zero = out.dtype.type(0)
    for k in range(N):
        o = out[k]
        for i in range(m):
            o[i] = zero
        for c in range(K):
            v = V[c, k]
            for i in range(m):
                o[i] += v[i] * v[i]


def gate_square_sum(V, gp=None, out=None):
    r"""Gate the columns ``V`` by ``gp`` in place and return :math:`\sum_c V_c^{\odot 2}`.

    Parameters
    ----------
    V : ndarray, shape (K, N, m), float32 or float64, C-contiguous
        The columns; overwritten by ``V * gp`` when ``gp`` is given.
    gp : ndarray, shape (N, m), optional
        The activation's derivative (same dtype); None: no gating, ``V`` is not written.
    out : ndarray, shape (N, m), optional
        Where to write the sum (same dtype); a new array by default.

    Returns
    -------
    ndarray, shape (N, m)
        :math:`Q_{ki} = \sum_c V_{cki}^2` after the gating.

    Raises
    ------
    ValueError
        ``V`` not a C-contiguous 3-D float32/float64 array, or ``gp`` / ``out`` of another
        shape or dtype (both shapes named).
    """
    if not (isinstance(V, np.ndarray) and V.ndim == 3 and V.dtype in (np.float32, np.float64)
            and V.flags.c_contiguous):
        raise ValueError(f"V must be a C-contiguous 3-D float32/float64 array, got "
                         f"{getattr(V, 'shape', None)} {getattr(V, 'dtype', type(V).__name__)}")
    shape = V.shape[1:]
    if out is None:
        out = np.empty(shape, dtype=V.dtype)
    elif out.shape != shape or out.dtype != V.dtype:
        raise ValueError(f"out has shape {out.shape} and dtype {out.dtype}; V {V.shape} "
                         f"{V.dtype} needs {shape} {V.dtype}")
    if gp is None:
        _square_sum(V, out)
        return out
    if gp.shape != shape or gp.dtype != V.dtype:
        raise ValueError(f"gp has shape {gp.shape} and dtype {gp.dtype}; V {V.shape} "
                         f"{V.dtype} needs {shape} {V.dtype}")
    _gate_square_sum(V, np.ascontiguousarray(gp), out)
    return out
