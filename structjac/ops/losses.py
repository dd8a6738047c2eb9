r"""Losses over a mini-batch: value, per-sample values, fused gradient, structured Jacobian.

Argument order is ``loss(y, y_hat)``: targets first, predictions
second.  (PyTorch's ``loss(input, target)`` is the other way round.)  For
``bce_with_logits`` the second argument holds the logits :math:`z`.

Axis 0 is the batch: for ``y_hat`` of shape ``(N, ...)`` the per-sample loss
:math:`J_0^{(k)}` sums over all the other axes, and the cost is

.. math::

    J = \frac{1}{N} \sum_{k=1}^N J_0^{(k)}, \qquad
    \frac{\partial J}{\partial \hat y}
      = \frac{\partial J}{\partial J_0} \frac{\partial J_0}{\partial \hat y}
      = \tfrac{1}{N} \mathbf{1}^T \,
        \mathrm{diag}\!\left(\frac{\partial J_0^{(k)}}{\partial \hat y^{(k)}}\right).

Reductions (``reduction=``):

``"mean"``
    :math:`\frac1N \sum_k J_0^{(k)}` (mean over samples, sum over
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

from numpy.typing import ArrayLike
from structjac.structures import Jacobian

import numpy as np

from structjac import kernels as _k
from structjac.kernels import softmax as _ks
from structjac.structures import BlockDiagonal, BlockRow, Diagonal, ScaledIdentity

from ._dispatch import dispatched
from ._checks import REDUCTIONS, check_reduction as _check_reduction, float_dtype, same_shape

__all__ = [
    "Loss",
    "MSE",
    "BCE",
    "BCEWithLogits",
    "CrossEntropy",
    "mse",
    "bce",
    "bce_with_logits",
    "cross_entropy",
    "REDUCTIONS",
]

#: The valid ``reduction=`` names.


class Loss:
    """Base class of the losses (see the module documentation).

    Examples
    --------
    >>> from structjac.ops import mse
    >>> isinstance(mse, Loss)
    True
    """

    _op_kind = "loss"  # how foreign-array handlers (structjac._dask) tell the ops apart

    name = "loss"

    def _prepare(self, y, y_hat):
        y, y_hat = same_shape(y, y_hat, "y", "y_hat")
        if y_hat.ndim == 0:
            raise ValueError(
                "y and y_hat have shape () (0-d); a loss needs a batch axis: shape (N,) or (N, ...)"
            )
        return y, y_hat, float_dtype(y, y_hat)

    @dispatched
    def per_sample(self, y: ArrayLike, y_hat: ArrayLike) -> np.ndarray:
        """Return the per-sample losses :math:`J_0^{(k)}`, shape ``(N,)``."""
        y, y_hat, _ = self._prepare(y, y_hat)
        return self._per_sample(y, y_hat)

    @dispatched
    def __call__(
        self, y: ArrayLike, y_hat: ArrayLike, reduction: str = "mean"
    ) -> "np.floating | np.ndarray":
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
    def grad(
        self, y: ArrayLike, y_hat: ArrayLike, reduction: str = "mean", out: np.ndarray | None = None
    ) -> np.ndarray:
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
    def jacobian(self, y: ArrayLike, y_hat: ArrayLike, reduction: str = "mean") -> "Jacobian":
        r"""The Jacobian of the reduced loss with respect to ``y_hat`` (flattened row-major).

        Built as the chain rule writes it, ``BlockRow(0, w, 1) @ Diagonal(dJ0/dy_hat)``
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

    @dispatched
    def hessian(self, y: ArrayLike, y_hat: ArrayLike, reduction: str = "mean") -> "Jacobian":
        r"""The Hessian of the reduced loss with respect to ``y_hat`` (flattened row-major).

        Each per-sample loss depends on its own sample only, so the Hessian is block
        diagonal with the per-sample Hessians
        :math:`\partial^2 J_0^{(k)} / \partial (\hat y^{(k)})^2` times the
        reduction's weight (:math:`1/N` for ``"mean"``, 1 for ``"sum"``,
        :math:`1/\text{y\_hat.size}` for ``"elementwise_mean"``).  ``"none"`` returns
        the per-sample Hessians unweighted, placed block-diagonally (the Hessian of
        ``"sum"``).  The structure is the tightest one: ``ScaledIdentity`` for the squared
        error, ``Diagonal`` for the binary cross-entropies, ``BlockDiagonal`` of one
        ``C x C`` block per sample for :data:`cross_entropy`.
        """
        _check_reduction(reduction)
        y, y_hat, dtype = self._prepare(y, y_hat)
        return self._hessian(y, y_hat, dtype, self._scale(y_hat, reduction))

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

    def _hessian(self, y, y_hat, dtype, scale):  # d2/dy_hat2 (y - y_hat)^2 = 2
        return ScaledIdentity(y_hat.size, 2.0 * scale, dtype=dtype)


class BCE(Loss):
    r"""Binary cross-entropy on probabilities.

    .. math::

        J_0^{(k)} = -\sum_j \left[y \log c + (1 - y)\log(1 - c)\right], \quad
        c = \mathrm{clip}(\hat y, \epsilon, 1 - \epsilon), \qquad
        \frac{\partial J}{\partial \hat y} = \frac{1}{N}\frac{c - y}{c(1 - c)}.

    :math:`\epsilon` is ``1e-7`` for float32 and ``1e-12`` for float64
    (``structjac.kernels.BCE_EPS``), so the loss and its gradient are finite
    at :math:`\hat y \in \{0, 1\}`.  The gradient is the formula above at
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

    def _hessian(self, y, y_hat, dtype, scale):
        # d/dc of (c - y) / (c (1 - c)) = y / c^2 + (1 - y) / (1 - c)^2, at the clamped c
        return Diagonal._wrap(_k.bce_hessian(y, y_hat, scale).reshape(-1))


class BCEWithLogits(Loss):
    r"""Binary cross-entropy on logits :math:`z` (the second argument), stable form.

    .. math::

        J_0^{(k)} = \sum_j \max(z, 0) - z y + \mathrm{log1p}(e^{-|z|}), \qquad
        \frac{\partial J}{\partial z} = \frac{1}{N}(\sigma(z) - y).

    Equal to ``bce(y, sigmoid(z))`` without its overflow or clamping.  The
    argument order is ``(y, z)`` like the other losses, unlike PyTorch's
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

    def _hessian(self, y, y_hat, dtype, scale):  # d/dz (sigma(z) - y) = sigma'(z)
        return Diagonal._wrap(_k.bce_with_logits_hessian(y, y_hat, scale).reshape(-1))


class CrossEntropy(Loss):
    r"""Softmax cross-entropy of logits :math:`z` (rows of ``(N, C)``) against classes.

    The targets (first argument) are integer class labels :math:`c_k`, shape ``(N,)``,
    or target rows :math:`t^{(k)}` (one-hot or probabilities), shape ``(N, C)``:

    .. math::

        J_0^{(k)} = -\sum_j t^{(k)}_j \log \operatorname{softmax}(z^{(k)})_j
                 = \Big(\sum_j t^{(k)}_j\Big)\operatorname{lse}(z^{(k)}) - t^{(k)T} z^{(k)},
        \qquad
        \frac{\partial J_0^{(k)}}{\partial z^{(k)}}
                 = \Big(\sum_j t^{(k)}_j\Big) p^{(k)} - t^{(k)},

    with :math:`p = \operatorname{softmax}(z)` and
    :math:`\operatorname{lse}(z) = m + \log\sum_j e^{z_j - m}`, :math:`m = \max_j z_j`
    (finite at logits of any size).  For a label :math:`t^{(k)} = e_{c_k}`: the loss is
    :math:`\operatorname{lse}(z^{(k)}) - z^{(k)}_{c_k}` and the gradient of the mean is
    :math:`\frac1N(p^{(k)} - e_{c_k})`.  The Hessian of each per-sample loss is
    :math:`(\sum_j t_j)(\operatorname{diag}(p) - p p^T)`.

    Reductions as for every loss: ``"mean"`` divides by :math:`N` (PyTorch's default
    ``reduction="mean"`` for ``cross_entropy`` is this one), ``"sum"``, ``"none"``, and
    ``"elementwise_mean"``, which divides by ``logits.size`` :math:`= NC` as it divides
    by ``y_hat.size`` for the other losses.  The argument order is ``(labels, logits)``
    like the other losses, the reverse of PyTorch's ``cross_entropy(input, target)``.
    A label outside ``[0, C)`` raises ``IndexError``.

    Examples
    --------
    >>> import numpy as np
    >>> from structjac.ops import cross_entropy, softmax
    >>> z = np.array([[2.0, 0.0, -1.0], [0.0, 0.0, 1e4]])
    >>> labels = np.array([0, 2])
    >>> cross_entropy.per_sample(labels, z).round(6)
    array([0.169846, 0.      ])
    >>> g = cross_entropy.grad(labels, z)
    >>> bool(np.allclose(g, (softmax(z) - np.eye(3)[labels]) / 2))
    True
    >>> bool(np.isclose(cross_entropy(np.eye(3)[labels], z), cross_entropy(labels, z)))
    True
    >>> cross_entropy.hessian(labels, z)
    BlockDiagonal(shape=(6, 6), dtype=float64, stored=144 B, dense=288 B)
    """

    name = "cross_entropy"

    def _prepare(self, y, y_hat):
        y = np.asarray(y)
        z = np.asarray(y_hat)
        if z.ndim != 2:
            raise ValueError(
                f"cross_entropy needs logits of shape (N, C); got logits of shape {z.shape} "
                f"(labels/targets of shape {y.shape})"
            )
        if y.shape == z.shape:
            return y, z, float_dtype(y, z)
        if y.ndim == 1 and y.shape[0] == z.shape[0]:
            if y.dtype.kind not in "iu":
                raise TypeError(
                    f"class labels of shape {y.shape} must be integers, got dtype {y.dtype}; "
                    f"pass integer labels or targets of the logits' shape {z.shape}"
                )
            return y, z, float_dtype(z)
        raise ValueError(
            f"labels/targets have shape {y.shape} but the logits have shape {z.shape}; pass "
            f"integer labels of shape ({z.shape[0]},) or targets of shape {z.shape}"
        )

    @staticmethod
    def _labelled(y, y_hat):
        return y.ndim == 1 and y_hat.ndim == 2

    def _per_sample(self, y, y_hat):
        if self._labelled(y, y_hat):
            return _ks.cross_entropy_labels_per_sample(y, y_hat)
        return _ks.cross_entropy_targets_per_sample(y, y_hat)

    def _grad(self, y, y_hat, scale, out):
        if self._labelled(y, y_hat):
            return _ks.cross_entropy_labels_grad(y, y_hat, scale, out=out)
        return _ks.cross_entropy_targets_grad(y, y_hat, scale, out=out)

    @dispatched
    def jacobian(self, y: ArrayLike, y_hat: ArrayLike, reduction: str = "mean") -> "Jacobian":
        r"""The Jacobian of the reduced loss with respect to the logits (flattened row-major).

        ``"mean"``, ``"sum"``, ``"elementwise_mean"``: the ``1 x NC`` row
        ``BlockRow(0, w, 1) @ Diagonal(dJ0/dz)`` as for every loss.  ``"none"``: the
        ``N x NC`` Jacobian of the per-sample vector, a ``BlockDiagonal`` of ``N``
        blocks ``1 x C`` (block :math:`k` is :math:`\partial J_0^{(k)}/\partial z^{(k)}`).
        """
        if reduction != "none":
            return Loss.jacobian.__wrapped__(self, y, y_hat, reduction)
        y, y_hat, _ = self._prepare(y, y_hat)
        d = self._grad(y, y_hat, 1.0, None)
        return BlockDiagonal(d.reshape(d.shape[0], 1, d.shape[1]), copy=False)

    def _hessian(self, y, y_hat, dtype, scale):
        z = np.asarray(y_hat, dtype=dtype)
        if self._labelled(y, y_hat):
            # validates the labels (IndexError) as the loss does; the Hessian does not use them
            _ks._labels(y, z)
            return BlockDiagonal(_ks.softmax_hessian_blocks(z, scale), copy=False)
        blocks = _ks.softmax_hessian_blocks(z, scale)
        weight = np.asarray(y, dtype=dtype).sum(axis=1, dtype=np.float64).astype(dtype)
        blocks *= weight[:, None, None]
        return BlockDiagonal(blocks, copy=False)


#: Squared error (see :class:`MSE`).
mse = MSE()
#: Binary cross-entropy on probabilities (see :class:`BCE`).
bce = BCE()
#: Binary cross-entropy on logits (see :class:`BCEWithLogits`).
bce_with_logits = BCEWithLogits()
#: Softmax cross-entropy of logits against integer labels or target rows (see :class:`CrossEntropy`).
cross_entropy = CrossEntropy()
