r"""Row-wise softmax, log-softmax and cross-entropy Numba kernels.

The arrays are viewed as ``(N, k)``: N rows of ``k`` entries, each row
independent (the rows run in parallel from
:data:`~structjac.kernels._config.PARALLEL_THRESHOLD` elements on).  Per row
:math:`x \in \mathbb{R}^k`, with :math:`m = \max_j x_j` subtracted first so that
no exponential overflows,

.. math::

    p_i = \operatorname{softmax}(x)_i = \frac{e^{x_i - m}}{\sum_j e^{x_j - m}},
    \qquad
    \operatorname{log\_softmax}(x)_i = x_i - m - \log \sum_j e^{x_j - m}.

Their Jacobians are :math:`\operatorname{diag}(p) - p p^T` and
:math:`I - \mathbf 1 p^T`, and the fused vjps never form them:

.. math::

    g^T \frac{\partial p}{\partial x} = p \odot (g - g^T p), \qquad
    g^T \frac{\partial \operatorname{log\_softmax}}{\partial x} = g - p \sum_j g_j.

Cross-entropy of logits :math:`z` (one row per sample) against a target row
:math:`t` (a one-hot row for an integer label :math:`c`, or probabilities):

.. math::

    J_0 = -\sum_j t_j \operatorname{log\_softmax}(z)_j
        = \Big(\sum_j t_j\Big) \operatorname{lse}(z) - t^T z, \qquad
    \frac{\partial J_0}{\partial z} = \Big(\sum_j t_j\Big) p - t,

with :math:`\operatorname{lse}(z) = m + \log\sum_j e^{z_j - m}`; for a label it is
:math:`\operatorname{lse}(z) - z_c` and :math:`p - e_c`.

Row sums accumulate in float64; every result is stored in the array dtype.  ``exp``
and ``log`` are the vectorised :func:`~structjac.kernels._exp.vexp` and
:func:`~structjac.kernels._log.vlog`.  A row holding NaN gives NaN in the whole row
(its sums are NaN); so does a row whose maximum is infinite.

Examples
--------
>>> import numpy as np
>>> from structjac.kernels import softmax
>>> p = softmax.softmax_rows(np.array([[0.0, np.log(3.0)]]))
>>> p
array([[0.25, 0.75]])
>>> softmax.softmax_vjp_rows(np.array([[0.0, np.log(3.0)]]), np.array([[1.0, 0.0]]))
array([[ 0.1875, -0.1875]])
"""

from __future__ import annotations

from numpy.typing import ArrayLike

import numba
import numpy as np

from ._config import append_doc_sections, float_dtype, pick, prepare_out, serial_and_parallel
from ._exp import vexp
from ._log import vlog

__all__ = [
    "softmax_rows",
    "log_softmax_rows",
    "softmax_vjp_rows",
    "softmax_vjp_from_output_rows",
    "log_softmax_vjp_rows",
    "log_softmax_vjp_from_output_rows",
    "softmax_jacobian_blocks",
    "log_softmax_jacobian_blocks",
    "cross_entropy_labels_per_sample",
    "cross_entropy_labels_grad",
    "cross_entropy_targets_per_sample",
    "cross_entropy_targets_grad",
    "softmax_hessian_blocks",
]


# --------------------------------------------------------------------------- bodies
# Each body loops over the rows with numba.prange (parallel copy) and over a row with
# range (vectorised by LLVM).  ``_row_max`` skips NaN (a NaN then propagates through
# exp(x - m) into the row's sum).


@numba.njit(cache=True, nogil=True, error_model="numpy", inline="never")
def _row_max(x):
    m = -np.inf
    for i in range(x.size):
        v = x[i]
        m = v if v > m else m
    return m


def _softmax(x2, out2):
    for r in numba.prange(x2.shape[0]):
        x = x2[r]
        o = out2[r]
        m = x.dtype.type(_row_max(x))
        acc = 0.0
        for i in range(x.size):
            e = vexp(x[i] - m)
            o[i] = e
            acc += e
        inv = o.dtype.type(1.0 / acc)
        for i in range(x.size):
            o[i] = o[i] * inv


def _log_softmax(x2, out2):
    for r in numba.prange(x2.shape[0]):
        x = x2[r]
        o = out2[r]
        m = x.dtype.type(_row_max(x))
        acc = 0.0
        for i in range(x.size):
            acc += vexp(x[i] - m)
        shift = m + x.dtype.type(vlog(acc))
        for i in range(x.size):
            o[i] = x[i] - shift


def _softmax_vjp(x2, g2, out2):  # p * (g - g.p), p written to out first
    for r in numba.prange(x2.shape[0]):
        x = x2[r]
        g = g2[r]
        o = out2[r]
        m = x.dtype.type(_row_max(x))
        acc = 0.0
        for i in range(x.size):
            e = vexp(x[i] - m)
            o[i] = e
            acc += e
        inv = o.dtype.type(1.0 / acc)
        gp = 0.0
        for i in range(x.size):
            p = o[i] * inv
            o[i] = p
            gp += g[i] * p
        s = o.dtype.type(gp)
        for i in range(x.size):
            o[i] = o[i] * (g[i] - s)


def _softmax_vjp_from_output(p2, g2, out2):  # p * (g - g.p) from p = softmax(x)
    for r in numba.prange(p2.shape[0]):
        p = p2[r]
        g = g2[r]
        o = out2[r]
        gp = 0.0
        for i in range(p.size):
            gp += g[i] * p[i]
        s = o.dtype.type(gp)
        for i in range(p.size):
            o[i] = p[i] * (g[i] - s)


def _log_softmax_vjp(x2, g2, out2):  # g - p sum(g), p = exp(x - lse)
    for r in numba.prange(x2.shape[0]):
        x = x2[r]
        g = g2[r]
        o = out2[r]
        m = x.dtype.type(_row_max(x))
        acc = 0.0
        gs = 0.0
        for i in range(x.size):
            acc += vexp(x[i] - m)
            gs += g[i]
        shift = m + x.dtype.type(vlog(acc))
        sg = o.dtype.type(gs)
        for i in range(x.size):
            o[i] = g[i] - vexp(x[i] - shift) * sg


def _log_softmax_vjp_from_output(a2, g2, out2):  # g - exp(a) sum(g), a = log_softmax(x)
    for r in numba.prange(a2.shape[0]):
        a = a2[r]
        g = g2[r]
        o = out2[r]
        gs = 0.0
        for i in range(a.size):
            gs += g[i]
        sg = o.dtype.type(gs)
        for i in range(a.size):
            o[i] = g[i] - vexp(a[i]) * sg


def _softmax_jacobian_blocks(x2, scale, out3):  # scale * (diag(p) - p p^T) per row
    k = x2.shape[1]
    for r in numba.prange(x2.shape[0]):
        x = x2[r]
        b = out3[r]
        m = x.dtype.type(_row_max(x))
        acc = 0.0
        for i in range(k):
            e = vexp(x[i] - m)
            b[0, i] = e  # p kept in the first row until the end
            acc += e
        inv = b.dtype.type(1.0 / acc)
        for i in range(k):
            b[0, i] = b[0, i] * inv
        for i in range(k - 1, -1, -1):  # row 0 last: it holds p
            pi = b[0, i] * scale
            for j in range(k):
                b[i, j] = -pi * b[0, j]
            b[i, i] += pi


def _log_softmax_jacobian_blocks(x2, out3):  # I - 1 p^T per row
    k = x2.shape[1]
    one = x2.dtype.type(1)
    for r in numba.prange(x2.shape[0]):
        x = x2[r]
        b = out3[r]
        m = x.dtype.type(_row_max(x))
        acc = 0.0
        for i in range(k):
            e = vexp(x[i] - m)
            b[0, i] = e
            acc += e
        inv = b.dtype.type(1.0 / acc)
        for j in range(k):
            b[0, j] = -b[0, j] * inv
        for i in range(1, k):
            for j in range(k):
                b[i, j] = b[0, j]
        for i in range(k):
            b[i, i] += one


def _ce_labels_per_sample(labels, z2, out):  # lse(z) - z[label]
    for r in numba.prange(z2.shape[0]):
        z = z2[r]
        m = z.dtype.type(_row_max(z))
        acc = 0.0
        for i in range(z.size):
            acc += vexp(z[i] - m)
        out[r] = (m + z.dtype.type(vlog(acc))) - z[labels[r]]


def _ce_labels_grad(labels, z2, scale, out2):  # scale * (p - e_label)
    for r in numba.prange(z2.shape[0]):
        z = z2[r]
        o = out2[r]
        m = z.dtype.type(_row_max(z))
        acc = 0.0
        for i in range(z.size):
            e = vexp(z[i] - m)
            o[i] = e
            acc += e
        inv = o.dtype.type(scale / acc)
        for i in range(z.size):
            o[i] = o[i] * inv
        o[labels[r]] -= scale


def _ce_targets_per_sample(t2, z2, out):  # sum(t) lse(z) - t.z
    for r in numba.prange(z2.shape[0]):
        z = z2[r]
        t = t2[r]
        m = z.dtype.type(_row_max(z))
        acc = 0.0
        ts = 0.0
        tz = 0.0
        for i in range(z.size):
            acc += vexp(z[i] - m)
            ts += t[i]
            tz += t[i] * (z[i] - m)  # shifted: no cancellation at large logits
        out[r] = ts * vlog(acc) - tz


def _ce_targets_grad(t2, z2, scale, out2):  # scale * (sum(t) p - t)
    for r in numba.prange(z2.shape[0]):
        z = z2[r]
        t = t2[r]
        o = out2[r]
        m = z.dtype.type(_row_max(z))
        acc = 0.0
        ts = 0.0
        for i in range(z.size):
            e = vexp(z[i] - m)
            o[i] = e
            acc += e
            ts += t[i]
        c = o.dtype.type(scale * ts / acc)
        for i in range(z.size):
            o[i] = o[i] * c - scale * t[i]


_softmax_serial, _softmax_parallel = serial_and_parallel(_softmax)
_log_softmax_serial, _log_softmax_parallel = serial_and_parallel(_log_softmax)
_softmax_vjp_serial, _softmax_vjp_parallel = serial_and_parallel(_softmax_vjp)
_softmax_vjp_from_output_serial, _softmax_vjp_from_output_parallel = serial_and_parallel(
    _softmax_vjp_from_output
)
_log_softmax_vjp_serial, _log_softmax_vjp_parallel = serial_and_parallel(_log_softmax_vjp)
_log_softmax_vjp_from_output_serial, _log_softmax_vjp_from_output_parallel = serial_and_parallel(
    _log_softmax_vjp_from_output
)
_softmax_jacobian_blocks_serial, _softmax_jacobian_blocks_parallel = serial_and_parallel(
    _softmax_jacobian_blocks
)
_log_softmax_jacobian_blocks_serial, _log_softmax_jacobian_blocks_parallel = serial_and_parallel(
    _log_softmax_jacobian_blocks
)
_ce_labels_per_sample_serial, _ce_labels_per_sample_parallel = serial_and_parallel(
    _ce_labels_per_sample
)
_ce_labels_grad_serial, _ce_labels_grad_parallel = serial_and_parallel(_ce_labels_grad)
_ce_targets_per_sample_serial, _ce_targets_per_sample_parallel = serial_and_parallel(
    _ce_targets_per_sample
)
_ce_targets_grad_serial, _ce_targets_grad_parallel = serial_and_parallel(_ce_targets_grad)


# --------------------------------------------------------------------------- wrappers


def _rows(x, dtype, name):
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"{name} must be 2-D (N, k), got shape {x.shape}")
    return np.ascontiguousarray(x, dtype=dtype)


def _pick_rows(serial, parallel, shape):
    return pick(serial, parallel, shape[0] * shape[1]) if shape[0] > 1 else serial


def _unary_rows(serial, parallel, x, out):
    x = np.asarray(x)
    dtype = float_dtype(x)
    x2 = _rows(x, dtype, "x")
    out, _ = prepare_out(out, x2.shape, dtype)
    _pick_rows(serial, parallel, x2.shape)(x2, out)
    return out


def _binary_rows(serial, parallel, x, g, out, names=("x", "g")):
    x = np.asarray(x)
    g = np.asarray(g)
    if x.shape != g.shape:
        raise ValueError(
            f"{names[0]} has shape {x.shape} but {names[1]} has shape {g.shape}; they must be equal"
        )
    dtype = float_dtype(x, g)
    x2 = _rows(x, dtype, names[0])
    g2 = _rows(g, dtype, names[1])
    out, _ = prepare_out(out, x2.shape, dtype)
    _pick_rows(serial, parallel, x2.shape)(x2, g2, out)
    return out


_ROWS = (
    "Parameters\n----------\n"
    "x : array_like, shape (N, k)\n    Never written to.\n"
    "out : ndarray, optional\n    Shape ``(N, k)``, dtype of the result.",
    "Returns\n-------\nndarray\n    Shape ``(N, k)``, float32 for float32 input, else float64.\n",
)
_VJP_ROWS = (
    "Parameters\n----------\n"
    "x, g : array_like, shape (N, k)\n    Input (or output) rows and cotangent rows.\n"
    "out : ndarray, optional\n    Shape ``(N, k)``, dtype of the result.",
    "Returns\n-------\nndarray\n    Shape ``(N, k)``.\n",
)


def softmax_rows(x: ArrayLike, out: np.ndarray | None = None) -> np.ndarray:
    """Row-wise softmax ``exp(x - max) / sum(exp(x - max))`` of a 2-D array."""
    return _unary_rows(_softmax_serial, _softmax_parallel, x, out)


def log_softmax_rows(x: ArrayLike, out: np.ndarray | None = None) -> np.ndarray:
    """Row-wise log-softmax ``x - max - log(sum(exp(x - max)))`` of a 2-D array."""
    return _unary_rows(_log_softmax_serial, _log_softmax_parallel, x, out)


def softmax_vjp_rows(x: ArrayLike, g: ArrayLike, out: np.ndarray | None = None) -> np.ndarray:
    """Fused row-wise softmax vjp ``p * (g - sum(g * p))``, ``p = softmax(x)``."""
    return _binary_rows(_softmax_vjp_serial, _softmax_vjp_parallel, x, g, out)


def softmax_vjp_from_output_rows(
    p: ArrayLike, g: ArrayLike, out: np.ndarray | None = None
) -> np.ndarray:
    """Fused row-wise softmax vjp ``p * (g - sum(g * p))`` from the output ``p``."""
    return _binary_rows(
        _softmax_vjp_from_output_serial, _softmax_vjp_from_output_parallel, p, g, out, ("p", "g")
    )


def log_softmax_vjp_rows(x: ArrayLike, g: ArrayLike, out: np.ndarray | None = None) -> np.ndarray:
    """Fused row-wise log-softmax vjp ``g - softmax(x) * sum(g)``."""
    return _binary_rows(_log_softmax_vjp_serial, _log_softmax_vjp_parallel, x, g, out)


def log_softmax_vjp_from_output_rows(
    a: ArrayLike, g: ArrayLike, out: np.ndarray | None = None
) -> np.ndarray:
    """Fused row-wise log-softmax vjp ``g - exp(a) * sum(g)`` from the output ``a``."""
    return _binary_rows(
        _log_softmax_vjp_from_output_serial,
        _log_softmax_vjp_from_output_parallel,
        a,
        g,
        out,
        ("a", "g"),
    )


for _f in (softmax_rows, log_softmax_rows):
    append_doc_sections(_f, *_ROWS)
for _f in (
    softmax_vjp_rows,
    softmax_vjp_from_output_rows,
    log_softmax_vjp_rows,
    log_softmax_vjp_from_output_rows,
):
    append_doc_sections(_f, *_VJP_ROWS)
del _f


def softmax_jacobian_blocks(x: ArrayLike, scale: float = 1.0) -> np.ndarray:
    """The blocks ``scale * (diag(p) - p p^T)``, shape ``(N, k, k)``, of the rows of ``x``.

    Parameters
    ----------
    x : array_like, shape (N, k)
    scale : float, optional
        Multiplies every block (``1/N`` for the Hessian of a mean cross-entropy).

    Returns
    -------
    ndarray, shape (N, k, k)
    """
    x = np.asarray(x)
    dtype = float_dtype(x)
    x2 = _rows(x, dtype, "x")
    out = np.empty((x2.shape[0], x2.shape[1], x2.shape[1]), dtype=dtype)
    _pick_rows(
        _softmax_jacobian_blocks_serial,
        _softmax_jacobian_blocks_parallel,
        out.shape[:1] + (out.shape[1] * out.shape[2],),
    )(x2, dtype.type(scale), out)
    return out


softmax_hessian_blocks = softmax_jacobian_blocks


def log_softmax_jacobian_blocks(x: ArrayLike) -> np.ndarray:
    """The blocks ``I - 1 p^T``, shape ``(N, k, k)``, of the rows of ``x``.

    Parameters
    ----------
    x : array_like, shape (N, k)

    Returns
    -------
    ndarray, shape (N, k, k)
    """
    x = np.asarray(x)
    dtype = float_dtype(x)
    x2 = _rows(x, dtype, "x")
    out = np.empty((x2.shape[0], x2.shape[1], x2.shape[1]), dtype=dtype)
    _pick_rows(
        _log_softmax_jacobian_blocks_serial,
        _log_softmax_jacobian_blocks_parallel,
        out.shape[:1] + (out.shape[1] * out.shape[2],),
    )(x2, out)
    return out


def _labels(labels, z):
    labels = np.asarray(labels)
    if labels.dtype.kind not in "iu":
        raise TypeError(f"labels must be integers, got dtype {labels.dtype}")
    n, c = z.shape
    if labels.shape != (n,):
        raise ValueError(
            f"labels have shape {labels.shape} but the logits have shape {z.shape}; "
            f"labels need shape ({n},)"
        )
    if n:
        bad = np.flatnonzero((labels < 0) | (labels >= c))
        if bad.size:
            i = int(bad[0])
            raise IndexError(
                f"label {int(labels[i])} at index {i} is out of range for "
                f"C = {c} classes (valid: 0 to {c - 1})"
            )
    return np.ascontiguousarray(labels, dtype=np.intp)


def cross_entropy_labels_per_sample(labels, z, out: np.ndarray | None = None) -> np.ndarray:
    """Per-sample cross-entropy ``lse(z_k) - z_k[labels_k]`` of logits ``z`` (N, C).

    Parameters
    ----------
    labels : array_like of int, shape (N,)
        Class indices in ``[0, C)``; IndexError otherwise.
    z : array_like, shape (N, C)
    out : ndarray, optional

    Returns
    -------
    ndarray, shape (N,)
    """
    z = np.asarray(z)
    dtype = float_dtype(z)
    z2 = _rows(z, dtype, "logits")
    lab = _labels(labels, z2)
    out, _ = prepare_out(out, (z2.shape[0],), dtype)
    _pick_rows(_ce_labels_per_sample_serial, _ce_labels_per_sample_parallel, z2.shape)(lab, z2, out)
    return out


def cross_entropy_labels_grad(
    labels, z, scale: float = 1.0, out: np.ndarray | None = None
) -> np.ndarray:
    """Fused ``scale * (softmax(z_k) - e_{labels_k})`` for logits ``z`` (N, C).

    Parameters
    ----------
    labels : array_like of int, shape (N,)
    z : array_like, shape (N, C)
    scale : float
    out : ndarray, optional

    Returns
    -------
    ndarray, shape (N, C)
    """
    z = np.asarray(z)
    dtype = float_dtype(z)
    z2 = _rows(z, dtype, "logits")
    lab = _labels(labels, z2)
    out, _ = prepare_out(out, z2.shape, dtype)
    _pick_rows(_ce_labels_grad_serial, _ce_labels_grad_parallel, z2.shape)(
        lab, z2, dtype.type(scale), out
    )
    return out


def _targets(t, z):
    t = np.asarray(t)
    z = np.asarray(z)
    if t.shape != z.shape:
        raise ValueError(
            f"targets have shape {t.shape} but the logits have shape {z.shape}; they must be equal"
        )
    dtype = float_dtype(t, z)
    return _rows(t, dtype, "targets"), _rows(z, dtype, "logits"), dtype


def cross_entropy_targets_per_sample(t, z, out: np.ndarray | None = None) -> np.ndarray:
    """Per-sample cross-entropy ``sum(t_k) lse(z_k) - t_k . z_k`` against target rows ``t``.

    Parameters
    ----------
    t, z : array_like, shape (N, C)
        Targets (one-hot or probabilities) and logits.
    out : ndarray, optional

    Returns
    -------
    ndarray, shape (N,)
    """
    t2, z2, dtype = _targets(t, z)
    out, _ = prepare_out(out, (z2.shape[0],), dtype)
    _pick_rows(_ce_targets_per_sample_serial, _ce_targets_per_sample_parallel, z2.shape)(
        t2, z2, out
    )
    return out


def cross_entropy_targets_grad(
    t, z, scale: float = 1.0, out: np.ndarray | None = None
) -> np.ndarray:
    """Fused ``scale * (sum(t_k) softmax(z_k) - t_k)`` against target rows ``t``.

    Parameters
    ----------
    t, z : array_like, shape (N, C)
    scale : float
    out : ndarray, optional

    Returns
    -------
    ndarray, shape (N, C)
    """
    t2, z2, dtype = _targets(t, z)
    out, _ = prepare_out(out, z2.shape, dtype)
    _pick_rows(_ce_targets_grad_serial, _ce_targets_grad_parallel, z2.shape)(
        t2, z2, dtype.type(scale), out
    )
    return out
