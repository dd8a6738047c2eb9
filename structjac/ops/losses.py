r"""Losses over a mini-batch: value, per-sample values, fused gradient, structured Jacobian.

Argument order is the lecture's ``loss(y, y_hat)``: targets first, predictions
second.  (PyTorch's ``loss(input, target)`` is the other way round.)  For
``bce_with_logits`` the second argument holds the logits :math:`z`.

Axis 0 is the batch: for ``y_hat`` of shape ``(N, ...)`` the per-sample loss
:math:`J_0^{(k)}` sums over all the other axes, and the lecture's cost is

.. math::

    J = \frac{1}{N} \sum_{k=1}^N J_0^{(k)}, \qquad
    \frac{\partial J}{\partial \hat y}
      = \frac{\partial J}{\partial J_0} \frac{\partial J_0}{\partial \hat y}
      = \tfrac{1}{N} \mathbf{1}^T \,
        \mathrm{diag}\!\left(\frac{\partial J_0^{(k)}}{\partial \hat y^{(k)}}\right).

Reductions (``reduction=``):

``"mean"``
    the lecture's :math:`\frac1N \sum_k J_0^{(k)}` (mean over samples, sum over
    the other axes);
``"sum"``
    :math:`\sum_k J_0^{(k)}`;
``"none"``
    the vector :math:`(J_0^{(1)}, \dots, J_0^{(N)})`;
``"elementwise_mean"``
    PyTorch's default: the mean over all ``y_hat.size`` entries (equal to
    ``"mean"`` only when each sample is a single number).

The value of a 0-sample batch is NaN for the means and 0 for ``"sum"``.
"""

from __future__ import annotations

import numpy as np

from structjac import kernels as _k
from structjac.structures import BlockRow, Diagonal

from ._dispatch import dispatched
from ._checks import float_dtype, same_shape

__all__ = ["Loss", "MSE", "BCE", "BCEWithLogits", "mse", "bce", "bce_with_logits",
           "REDUCTIONS"]

#: The valid ``reduction=`` names.
REDUCTIONS = ("mean", "sum", "none", "elementwise_mean")


def _check_reduction(reduction):
    if reduction not in REDUCTIONS:
        raise ValueError(
            f"unknown reduction {reduction!r}; valid names are "
            + ", ".join(repr(r) for r in REDUCTIONS)
        )


class Loss:
    """Base class of the losses (see the module documentation).

    Examples
    --------
    >>> from structjac.ops import mse
    >>> isinstance(mse, Loss)
    True
    """

    name = "loss"

    def _prepare(self, y, y_hat):
        y, y_hat = same_shape(y, y_hat, "y", "y_hat")
        if y_hat.ndim == 0:
            raise ValueError(
                "y and y_hat have shape () (0-d); a loss needs a batch axis: shape (N,) or (N, ...)"
            )
        return y, y_hat, float_dtype(y, y_hat)

    @dispatched
    def per_sample(self, y, y_hat):
        """Return the per-sample losses :math:`J_0^{(k)}`, shape ``(N,)``."""
        y, y_hat, _ = self._prepare(y, y_hat)
        return self._per_sample(y, y_hat)

    @dispatched
    def __call__(self, y, y_hat, reduction="mean"):
        """Return the loss, reduced as ``reduction`` says (a scalar of the input dtype, or ``(N,)``)."""
        _check_reduction(reduction)
        y, y_hat, dtype = self._prepare(y, y_hat)
        per = self._per_sample(y, y_hat)
        if reduction == "none":
            return per
        total = per.sum(dtype=np.float64)
        if reduction == "sum":
            return dtype.type(total)
        count = y_hat.shape[0] if reduction == "mean" else y_hat.size
        return dtype.type(total / count) if count else dtype.type(np.nan)

    def _scale(self, y_hat, reduction):
        if reduction == "mean" and y_hat.shape[0]:
            return 1.0 / y_hat.shape[0]
        if reduction == "elementwise_mean" and y_hat.size:
            return 1.0 / y_hat.size
        return 1.0

    @dispatched
    def grad(self, y, y_hat, reduction="mean", out=None):
        r"""Gradient of the reduced loss with respect to ``y_hat``, fused, shape of ``y_hat``.

        ``"mean"`` gives :math:`\frac1N \partial J_0/\partial\hat y`, ``"sum"``
        :math:`\partial J_0/\partial\hat y`, ``"elementwise_mean"`` divides by
        ``y_hat.size``; ``"none"`` returns the element-wise partials
        :math:`\partial J_0^{(k)}/\partial \hat y^{(k)}_j` (the vjp of the
        per-sample vector with a cotangent of ones).
        """
        _check_reduction(reduction)
        y, y_hat, _ = self._prepare(y, y_hat)
        return self._grad(y, y_hat, self._scale(y_hat, reduction), out)

    @dispatched
    def jacobian(self, y, y_hat, reduction="mean"):
        r"""The Jacobian of the reduced loss with respect to ``y_hat`` (flattened row-major).

        Built as the lecture writes it, ``BlockRow(0, w, 1) @ Diagonal(dJ0/dy_hat)``
        with :math:`w = \frac1N \mathbf 1` (``"mean"``), :math:`\mathbf 1`
        (``"sum"``) or :math:`\frac{1}{N d}\mathbf 1` (``"elementwise_mean"``):
        a ``1 x y_hat.size`` structure holding O(``y_hat.size``) numbers.  With
        ``"none"`` the per-sample Jacobian :math:`\partial J_0/\partial \hat y`
        is returned, a ``Diagonal``, when each sample is one number (1-D
        ``y_hat``); for samples of several numbers it is block diagonal and a
        ``ValueError`` points to :meth:`grad` instead.
        """
        _check_reduction(reduction)
        y, y_hat, dtype = self._prepare(y, y_hat)
        d = self._grad(y, y_hat, 1.0, None).reshape(-1)
        if reduction == "none":
            if y_hat.ndim != 1:
                raise ValueError(
                    f"reduction='none' with y_hat of shape {y_hat.shape}: the per-sample Jacobian "
                    "is block diagonal, not Diagonal; use grad(y, y_hat, reduction='none') for "
                    "the element-wise partials"
                )
            return Diagonal(d, copy=False)
        w = np.full(d.size, self._scale(y_hat, reduction), dtype=dtype)
        return BlockRow(0, w, 1, copy=False) @ Diagonal(d, copy=False)

    def __repr__(self):
        return f"structjac.ops.{self.name}"


class MSE(Loss):
    r"""Squared error :math:`J_0^{(k)} = \sum_j (y^{(k)}_j - \hat y^{(k)}_j)^2`.

    .. math:: \frac{\partial J}{\partial \hat y} = -\frac{2}{N}(y - \hat y)

    Examples
    --------
    >>> import numpy as np
    >>> from structjac.ops import mse
    >>> y, y_hat = np.array([1.0, 0.0, 2.0]), np.array([0.5, 0.0, 1.0])
    >>> float(mse(y, y_hat))                     # (0.25 + 0 + 1) / 3
    0.4166666666666667
    >>> bool(np.allclose(mse.grad(y, y_hat), -2 / 3 * (y - y_hat)))
    True
    >>> J = mse.jacobian(y, y_hat)
    >>> J.shape, bool(np.allclose(J.to_dense(), mse.grad(y, y_hat)[None, :]))
    ((1, 3), True)
    """

    name = "mse"

    def _per_sample(self, y, y_hat):
        return _k.mse_per_sample(y, y_hat)

    def _grad(self, y, y_hat, scale, out):
        return _k.mse_grad(y, y_hat, scale, out=out)


class BCE(Loss):
    r"""Binary cross-entropy on probabilities.

    .. math::

        J_0^{(k)} = -\sum_j \left[y \log c + (1 - y)\log(1 - c)\right], \quad
        c = \mathrm{clip}(\hat y, \epsilon, 1 - \epsilon), \qquad
        \frac{\partial J}{\partial \hat y} = \frac{1}{N}\frac{c - y}{c(1 - c)}.

    :math:`\epsilon` is ``1e-7`` for float32 and ``1e-12`` for float64
    (``structjac.kernels.BCE_EPS``), so the loss and its gradient are finite
    at :math:`\hat y \in \{0, 1\}`.  The gradient is the lecture's formula at
    the clamped value (not the zero derivative of the clamp).  Prefer
    :data:`bce_with_logits` when the logits are at hand.

    Examples
    --------
    >>> import numpy as np
    >>> from structjac.ops import bce
    >>> y, p = np.array([1.0, 0.0]), np.array([0.8, 0.4])
    >>> bool(np.isclose(bce(y, p), -(np.log(0.8) + np.log(0.6)) / 2))
    True
    >>> bool(np.allclose(bce.grad(y, p), (p - y) / (p * (1 - p)) / 2))
    True
    >>> bool(np.isfinite(bce(y, np.array([0.0, 1.0]))))
    True
    """

    name = "bce"

    def _per_sample(self, y, y_hat):
        return _k.bce_per_sample(y, y_hat)

    def _grad(self, y, y_hat, scale, out):
        return _k.bce_grad(y, y_hat, scale, out=out)


class BCEWithLogits(Loss):
    r"""Binary cross-entropy on logits :math:`z` (the second argument), stable form.

    .. math::

        J_0^{(k)} = \sum_j \max(z, 0) - z y + \mathrm{log1p}(e^{-|z|}), \qquad
        \frac{\partial J}{\partial z} = \frac{1}{N}(\sigma(z) - y).

    Equal to ``bce(y, sigmoid(z))`` without its overflow or clamping.  The
    argument order is ``(y, z)`` like the lecture, unlike PyTorch's
    ``binary_cross_entropy_with_logits(input, target)``.

    Examples
    --------
    >>> import numpy as np
    >>> from structjac.ops import bce_with_logits
    >>> y, z = np.array([1.0, 0.0]), np.array([2.0, -1.0])
    >>> p = 1 / (1 + np.exp(-z))
    >>> bool(np.isclose(bce_with_logits(y, z), -(np.log(p[0]) + np.log(1 - p[1])) / 2))
    True
    >>> bool(np.allclose(bce_with_logits.grad(y, z), (p - y) / 2))
    True
    >>> float(bce_with_logits(np.array([1.0]), np.array([1000.0])))
    0.0
    """

    name = "bce_with_logits"

    def _per_sample(self, y, y_hat):
        return _k.bce_with_logits_per_sample(y, y_hat)

    def _grad(self, y, y_hat, scale, out):
        return _k.bce_with_logits_grad(y, y_hat, scale, out=out)


#: Squared error (see :class:`MSE`).
mse = MSE()
#: Binary cross-entropy on probabilities (see :class:`BCE`).
bce = BCE()
#: Binary cross-entropy on logits (see :class:`BCEWithLogits`).
bce_with_logits = BCEWithLogits()
