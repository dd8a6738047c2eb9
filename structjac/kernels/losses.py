"""Loss Numba kernels: per-sample values and fused gradients.

The arrays are viewed as ``(N, m)``: N samples (axis 0) of ``m`` entries each
(``m = 1`` for a 1-D batch).  Per sample

* MSE: :math:`J_0^{(k)} = \\sum_j (y_{kj} - \\hat y_{kj})^2`,
  :math:`\\partial J_0/\\partial \\hat y = -2 (y - \\hat y)`;
* BCE on probabilities, with :math:`c = \\mathrm{clip}(\\hat y, \\epsilon, 1 - \\epsilon)`:
  :math:`J_0 = -\\sum_j [y \\log c + (1 - y) \\log(1 - c)]` (``log1p(-c)``),
  :math:`\\partial J_0/\\partial \\hat y = (c - y) / (c (1 - c))`; ``eps`` is
  :data:`structjac.kernels._config.BCE_EPS` (float32 1e-7, float64 1e-12).  The
  gradient is the formula above evaluated at the clamped value (finite at
  ``y_hat`` in {0, 1}), not the zero gradient of the clamp;
* BCE with logits ``z``: :math:`J_0 = \\sum_j [\\max(z, 0) - z y + \\log1p(e^{-|z|})]`,
  :math:`\\partial J_0/\\partial z = \\sigma(z) - y`.  The term
  :math:`\\max(z, 0) - z y` is evaluated as :math:`z (1 - y)` (:math:`z > 0`) or
  :math:`-z y`, a zero factor giving 0: at :math:`z = \\pm\\infty` the loss is its
  limit (0 or inf, never NaN) and the gradient :math:`1 - y` or :math:`-y`.

The per-sample sums accumulate in float64 and are stored in the array dtype; each
term is computed in the array dtype, with the vectorised
:func:`~structjac.kernels._exp.vexp`, :func:`~structjac.kernels._log.vlog` and
``vlog1p`` (libm's ``log``/``log1p`` per element would keep the loops scalar).
The gradient kernels take a ``scale`` (``1/N`` for the mean over samples) and
write ``scale * dJ0/dy_hat`` in one pass.

Examples
--------
>>> import numpy as np
>>> from structjac.kernels import losses
>>> y = np.array([[0.0, 1.0], [1.0, 1.0]])
>>> y_hat = np.array([[0.5, 1.0], [0.0, 2.0]])
>>> losses.mse_per_sample(y, y_hat)
array([0.25, 2.  ])
>>> losses.mse_grad(y, y_hat, 0.5)
array([[ 0.5,  0. ],
       [-1. ,  1. ]])
"""

from __future__ import annotations

from numpy.typing import ArrayLike

import numba
import numpy as np

from ._config import (
    append_doc_sections,
    bce_eps,
    float_dtype,
    pick,
    prepare_out,
    serial_and_parallel,
)
from ._scalars import LOSSES, SOURCE_TAG

__all__ = [
    "mse_per_sample",
    "mse_grad",
    "bce_per_sample",
    "bce_grad",
    "bce_with_logits_per_sample",
    "bce_with_logits_grad",
]


# The two kernel bodies, each written once; the per-element term ``_term`` and its
# derivative ``_dterm`` (structjac.kernels._scalars.LOSSES) are bound per loss.  A
# per-sample kernel with one entry per sample (a 1-D batch) runs one flat loop over
# the samples instead of a loop of one-element sums: LLVM vectorises only the inner
# loop, which then has nothing to vectorise (the BCE losses 10x slower).  Its results
# are the same: a one-term float64 sum is the term.


def _term(y, h, p):  # placeholder: bound per loss
    raise NotImplementedError


def _dterm(y, h, p):  # placeholder: bound per loss
    raise NotImplementedError


def _per_sample_body(y2, h2, p, out):  # out[k] = sum_j term(y[k, j], h[k, j]), float64 sum
    if h2.shape[1] == 1:  # one entry per sample: a flat loop
        y1 = y2.reshape(h2.shape[0])
        h1 = h2.reshape(h2.shape[0])
        for k in numba.prange(h1.size):
            out[k] = _term(y1[k], h1[k], p)
    else:
        for k in numba.prange(h2.shape[0]):
            y = y2[k]
            h = h2[k]
            acc = 0.0
            for i in range(h.size):
                acc += _term(y[i], h[i], p)
            out[k] = acc


def _grad_body(y, h, p, scale, out):  # out = scale * dJ0/dy_hat, element-wise
    for i in numba.prange(h.size):
        out[i] = scale * _dterm(y[i], h[i], p)


# compiled per loss, serial and parallel (structjac.kernels._config.serial_and_parallel);
# the per-sample kernels run the samples (axis 0) in parallel, each sum serially
_KERNELS = {}
for _name, _loss in LOSSES.items():
    _variant = f"{_name}_{SOURCE_TAG}"  # a new cache entry when a scalar function changes
    _KERNELS[_name] = (
        serial_and_parallel(_per_sample_body, _variant, bind={"_term": _loss.term}),
        serial_and_parallel(_grad_body, _variant, bind={"_dterm": _loss.grad}),
    )
del _name, _loss, _variant

(_mse_per_sample_serial, _mse_per_sample_parallel), (_mse_grad_serial, _mse_grad_parallel) = (
    _KERNELS["mse"]
)
(_bce_per_sample_serial, _bce_per_sample_parallel), (_bce_grad_serial, _bce_grad_parallel) = (
    _KERNELS["bce"]
)
(
    (_bce_with_logits_per_sample_serial, _bce_with_logits_per_sample_parallel),
    (_bce_with_logits_grad_serial, _bce_with_logits_grad_parallel),
) = _KERNELS["bce_with_logits"]


def _prepare(y, y_hat):
    y = np.asarray(y)
    y_hat = np.asarray(y_hat)
    if y.shape != y_hat.shape:
        raise ValueError(
            f"shapes do not match: y has shape {y.shape} but y_hat has shape {y_hat.shape}"
        )
    if y_hat.ndim == 0:
        raise ValueError(
            "a loss needs a batch: y and y_hat have shape () (0-d); pass shape (N,) or (N, ...)"
        )
    dtype = float_dtype(y, y_hat)
    n = y_hat.shape[0]
    m = y_hat.size // n if n else 0
    y2 = np.ascontiguousarray(y, dtype=dtype).reshape(n, m)
    h2 = np.ascontiguousarray(y_hat, dtype=dtype).reshape(n, m)
    return y2, h2, dtype


def _per_sample(serial, parallel, y, y_hat, params, out):
    y2, h2, dtype = _prepare(y, y_hat)
    out, flat = prepare_out(out, (h2.shape[0],), dtype)
    typed = [dtype.type(p) for p in params]
    kernel = pick(serial, parallel, h2.size) if h2.shape[0] > 1 else serial
    kernel(y2, h2, *typed, flat)
    return out


def _grad(serial, parallel, y, y_hat, params, scale, out):
    y2, h2, dtype = _prepare(y, y_hat)
    shape = np.shape(y_hat)
    out, flat = prepare_out(out, shape, dtype)
    typed = [dtype.type(p) for p in params]
    pick(serial, parallel, flat.size, memory_bound=True)(
        y2.reshape(-1), h2.reshape(-1), *typed, dtype.type(scale), flat
    )
    return out


# The sections every per-sample wrapper and every gradient wrapper share.
_PER_SAMPLE_SECTIONS = (
    "Parameters\n----------\n"
    "y, y_hat : array_like\n"
    "    Targets and predictions, the same shape ``(N, ...)`` (axis 0 is the batch).\n"
    "out : ndarray, optional\n"
    "    Shape ``(N,)``, dtype of the result.",
    "Returns\n-------\nndarray\n    Shape ``(N,)``.\n",
)
_GRAD_SECTIONS = (
    "Parameters\n----------\n"
    "y, y_hat : array_like\n"
    "    The same shape; never written to.\n"
    "scale : float\n"
    "    ``1/N`` for the mean over samples.\n"
    "out : ndarray, optional\n"
    "    Shape of ``y_hat``, dtype of the result.",
    "Returns\n-------\nndarray\n    Shape of ``y_hat``.\n",
)


def mse_per_sample(y: ArrayLike, y_hat: ArrayLike, out: np.ndarray | None = None) -> np.ndarray:
    """Per-sample loss J0^(k) = sum over the non-batch axes of (y - y_hat)**2."""
    return _per_sample(_mse_per_sample_serial, _mse_per_sample_parallel, y, y_hat, (0.0,), out)


append_doc_sections(mse_per_sample, *_PER_SAMPLE_SECTIONS)


def mse_grad(
    y: ArrayLike, y_hat: ArrayLike, scale: float = 1.0, out: np.ndarray | None = None
) -> np.ndarray:
    """Fused ``scale * dJ0/dy_hat`` with dJ0/dy_hat = -2 (y - y_hat), element-wise."""
    return _grad(_mse_grad_serial, _mse_grad_parallel, y, y_hat, (0.0,), scale, out)


append_doc_sections(mse_grad, *_GRAD_SECTIONS)


def bce_per_sample(y: ArrayLike, y_hat: ArrayLike, out: np.ndarray | None = None) -> np.ndarray:
    """Per-sample loss J0^(k) = sum over the non-batch axes of -[y log c + (1 - y) log(1 - c)], c = clip(y_hat, eps, 1 - eps)."""
    return _per_sample(
        _bce_per_sample_serial,
        _bce_per_sample_parallel,
        y,
        y_hat,
        (bce_eps(_dtype_of(y, y_hat)),),
        out,
    )


append_doc_sections(bce_per_sample, *_PER_SAMPLE_SECTIONS)


def bce_grad(
    y: ArrayLike, y_hat: ArrayLike, scale: float = 1.0, out: np.ndarray | None = None
) -> np.ndarray:
    """Fused ``scale * dJ0/dy_hat`` with dJ0/dy_hat = (c - y) / (c (1 - c)), element-wise."""
    return _grad(
        _bce_grad_serial, _bce_grad_parallel, y, y_hat, (bce_eps(_dtype_of(y, y_hat)),), scale, out
    )


append_doc_sections(bce_grad, *_GRAD_SECTIONS)


def bce_with_logits_per_sample(
    y: ArrayLike, y_hat: ArrayLike, out: np.ndarray | None = None
) -> np.ndarray:
    """Per-sample loss J0^(k) = sum over the non-batch axes of max(z, 0) - z y + log1p(exp(-|z|)) with z = y_hat (logits)."""
    return _per_sample(
        _bce_with_logits_per_sample_serial,
        _bce_with_logits_per_sample_parallel,
        y,
        y_hat,
        (0.0,),
        out,
    )


append_doc_sections(bce_with_logits_per_sample, *_PER_SAMPLE_SECTIONS)


def bce_with_logits_grad(
    y: ArrayLike, y_hat: ArrayLike, scale: float = 1.0, out: np.ndarray | None = None
) -> np.ndarray:
    """Fused ``scale * dJ0/dy_hat`` with dJ0/dy_hat = sigmoid(z) - y, element-wise."""
    return _grad(
        _bce_with_logits_grad_serial, _bce_with_logits_grad_parallel, y, y_hat, (0.0,), scale, out
    )


append_doc_sections(bce_with_logits_grad, *_GRAD_SECTIONS)


def _dtype_of(y, y_hat):
    return float_dtype(np.asarray(y), np.asarray(y_hat))
