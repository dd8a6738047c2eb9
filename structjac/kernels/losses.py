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
from ._scalars import ACTIVATIONS, LOSSES, SOURCE_TAG, one, zero

__all__ = [
    "mse_per_sample",
    "mse_grad",
    "bce_per_sample",
    "bce_grad",
    "bce_with_logits_per_sample",
    "bce_with_logits_grad",
    "mse_hessian",
    "bce_hessian",
    "bce_with_logits_hessian",
    "hessian_factor",
    "bernoulli_logit_factor",
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


def _d2term(y, h, p):  # placeholder: bound per loss
    raise NotImplementedError


def _hessian_body(y, h, p, scale, out):  # out = scale * d2J0/dy_hat2, element-wise
    for i in numba.prange(h.size):
        out[i] = scale * _d2term(y[i], h[i], p)


def _factor_body(y2, h2, p, scale, out):  # out[j, k, j] = sqrt(scale d2J0/dy_hat_kj2); out zeroed
    for k in numba.prange(h2.shape[0]):
        for j in range(h2.shape[1]):
            out[j, k, j] = np.sqrt(scale * _d2term(y2[k, j], h2[k, j], p))


def _signed_factor_body(y2, h2, p, scale, signs, out):  # out[r, k, j] = +-sqrt(scale d2J0)
    for k in numba.prange(h2.shape[0]):
        for j in range(h2.shape[1]):
            v = np.sqrt(scale * _d2term(y2[k, j], h2[k, j], p))
            for r in range(signs.shape[0]):
                out[r, k, j] = v if signs[r, k, j] else -v


# compiled per loss, serial and parallel (structjac.kernels._config.serial_and_parallel);
# the per-sample kernels run the samples (axis 0) in parallel, each sum serially
_KERNELS = {}
_CURVATURE_KERNELS = {}  # name -> (hessian, factor, signed factor), each (serial, parallel)
for _name, _loss in LOSSES.items():
    _variant = f"{_name}_{SOURCE_TAG}"  # a new cache entry when a scalar function changes
    _KERNELS[_name] = (
        serial_and_parallel(_per_sample_body, _variant, bind={"_term": _loss.term}),
        serial_and_parallel(_grad_body, _variant, bind={"_dterm": _loss.grad}),
    )
    _CURVATURE_KERNELS[_name] = tuple(
        serial_and_parallel(body, _variant, bind={"_d2term": _loss.hessian})
        for body in (_hessian_body, _factor_body, _signed_factor_body)
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


# --- second derivatives and curvature factors -------------------------------------


def _loss_param(name, dtype):
    """The scalar functions' parameter ``p`` of a loss (BCE's clip, else 0)."""
    return dtype.type(bce_eps(dtype) if name == "bce" else 0.0)


def _hessian(name, y, y_hat, scale, out):  # the gradient wrapper, with the d2J0 kernel
    param = _loss_param(name, _dtype_of(y, y_hat))
    return _grad(*_CURVATURE_KERNELS[name][0], y, y_hat, (param,), scale, out)


_HESSIAN_SECTIONS = (
    "Parameters\n----------\n"
    "y, y_hat : array_like\n"
    "    The same shape; never written to.\n"
    "scale : float\n"
    "    The reduction's weight (``1/N`` for the mean over samples).\n"
    "out : ndarray, optional\n"
    "    Shape of ``y_hat``, dtype of the result.",
    "Returns\n-------\nndarray\n"
    "    Shape of ``y_hat``: the diagonal of the (diagonal) per-sample Hessians.\n",
)


def mse_hessian(
    y: ArrayLike, y_hat: ArrayLike, scale: float = 1.0, out: np.ndarray | None = None
) -> np.ndarray:
    """Fused ``scale * d2J0/dy_hat2`` of the squared error: ``2 scale`` everywhere."""
    return _hessian("mse", y, y_hat, scale, out)


append_doc_sections(mse_hessian, *_HESSIAN_SECTIONS)


def bce_hessian(
    y: ArrayLike, y_hat: ArrayLike, scale: float = 1.0, out: np.ndarray | None = None
) -> np.ndarray:
    """Fused ``scale * d2J0/dy_hat2`` with d2J0/dy_hat2 = y / c**2 + (1 - y) / (1 - c)**2 at c = clip(y_hat, eps, 1 - eps), element-wise."""
    return _hessian("bce", y, y_hat, scale, out)


append_doc_sections(bce_hessian, *_HESSIAN_SECTIONS)


def bce_with_logits_hessian(
    y: ArrayLike, y_hat: ArrayLike, scale: float = 1.0, out: np.ndarray | None = None
) -> np.ndarray:
    """Fused ``scale * d2J0/dz2`` with d2J0/dz2 = sigmoid'(z) (z = y_hat, logits), element-wise."""
    return _hessian("bce_with_logits", y, y_hat, scale, out)


append_doc_sections(bce_with_logits_hessian, *_HESSIAN_SECTIONS)


def _loss_name(loss):
    if loss not in _CURVATURE_KERNELS:
        raise ValueError(f"unknown loss {loss!r}; expected one of {sorted(_CURVATURE_KERNELS)}")
    return loss


def hessian_factor(
    loss: str, y: ArrayLike, y_hat: ArrayLike, scale: float = 1.0, signs: ArrayLike | None = None
) -> np.ndarray:
    r"""Columns :math:`S` of the weighted per-sample Hessians of a loss, in one pass.

    Each of these losses has a diagonal per-sample Hessian
    :math:`H_k = \operatorname{diag}(h_k)`, :math:`h_{kj} = \partial^2 J_0 / \partial
    \hat y_{kj}^2` (:func:`mse_hessian`, :func:`bce_hessian`,
    :func:`bce_with_logits_hessian`).  With ``signs`` None the factor is exact,

    .. math:: S_{j, k, :} = \sqrt{\mathrm{scale}\, h_{kj}}\, e_j, \qquad
              \sum_j S_{j,k} S_{j,k}^T = \mathrm{scale}\, H_k,

    of shape ``(m, N, m)``.  With Rademacher ``signs`` of shape ``(R, N, m)`` (booleans:
    True is +1) it is :math:`S_{r,k,j} = \pm\sqrt{\mathrm{scale}\, h_{kj}}`, shape
    ``(R, N, m)``, and :math:`\mathbb E \sum_r S_{r,k} S_{r,k}^T = R\, \mathrm{scale}\,
    H_k` (pass ``scale = w / R`` for an unbiased estimate of :math:`w H_k`).

    Parameters
    ----------
    loss : {"mse", "bce", "bce_with_logits"}
        The loss (its second derivative from :data:`structjac.kernels._scalars.LOSSES`).
    y, y_hat : array_like
        Targets and predictions of the same shape ``(N, ...)``, seen as ``(N, m)``;
        never written to.
    scale : float
        The weight of every per-sample Hessian (the reduction's, divided by ``R``).
    signs : array_like of bool, optional
        Shape ``(R, N, m)``.

    Returns
    -------
    ndarray
        Shape ``(m, N, m)`` or ``(R, N, m)``, in the dtype of ``y_hat``.

    Examples
    --------
    >>> import numpy as np
    >>> from structjac.kernels import losses
    >>> losses.hessian_factor("mse", np.zeros((2, 1)), np.ones((2, 1)), 0.5)[:, :, 0]
    array([[1., 1.]])
    """
    name = _loss_name(loss)
    y2, h2, dtype = _prepare(y, y_hat)
    N, m = h2.shape
    p, scale = _loss_param(name, dtype), dtype.type(scale)
    _, factor, signed = _CURVATURE_KERNELS[name]
    if signs is None:
        out = np.zeros((m, N, m), dtype=dtype)
        pick(*factor, h2.size)(y2, h2, p, scale, out)
        return out
    signs = np.asarray(signs)
    if signs.dtype != np.bool_ or signs.ndim != 3 or signs.shape[1:] != (N, m):
        raise ValueError(
            f"signs must be booleans of shape (R, {N}, {m}), "
            f"got dtype {signs.dtype} and shape {signs.shape}"
        )
    out = np.empty(signs.shape, dtype=dtype)
    pick(*signed, out.size)(y2, h2, p, scale, np.ascontiguousarray(signs), out)
    return out


_sigmoid = ACTIVATIONS["sigmoid"].value


def _bernoulli_logit_body(z2, u, scale, out):  # out[r] = scale (sigma(z) - [u_r < sigma(z)])
    for k in numba.prange(z2.shape[0]):
        for j in range(z2.shape[1]):
            s = _sigmoid(z2[k, j], scale, scale)
            for r in range(u.shape[0]):
                out[r, k, j] = scale * (s - (one(s) if u[r, k, j] < s else zero(s)))


_bernoulli_logit = serial_and_parallel(_bernoulli_logit_body, f"sigmoid_{SOURCE_TAG}", bind={})


def bernoulli_logit_factor(z: ArrayLike, u: ArrayLike, scale: float = 1.0) -> np.ndarray:
    r"""Sampled columns of the Fisher of BCE with logits: ``scale (sigma(z) - yhat_r)``.

    With :math:`p = \sigma(z)` and labels :math:`\hat y_r = [u_r < p]` drawn from the
    model (``u`` uniform on [0, 1)), :math:`\mathbb E (p - \hat y)(p - \hat y)^T =
    \operatorname{diag}(p(1 - p))`, the per-sample Hessian of the loss in the logits.

    Parameters
    ----------
    z : array_like
        Logits, shape ``(N, ...)``, seen as ``(N, m)``; never written to.
    u : array_like
        Uniform draws of shape ``(R, N, m)``, in the dtype of ``z``.
    scale : float
        The weight of each column (:math:`\sqrt{w / R}` for the mean of ``R`` draws).

    Returns
    -------
    ndarray
        Shape ``(R, N, m)``.

    Examples
    --------
    >>> import numpy as np
    >>> from structjac.kernels import losses
    >>> losses.bernoulli_logit_factor(np.zeros((1, 1)), np.array([[[0.25]], [[0.75]]]))[:, 0, 0]
    array([-0.5,  0.5])
    """
    z2, _, dtype = _prepare(z, z)
    u = np.ascontiguousarray(u, dtype=dtype)
    if u.ndim != 3 or u.shape[1:] != z2.shape:
        raise ValueError(f"u must have shape (R, {z2.shape[0]}, {z2.shape[1]}), got {u.shape}")
    out = np.empty(u.shape, dtype=dtype)
    pick(*_bernoulli_logit, out.size)(z2, u, dtype.type(scale), out)
    return out
