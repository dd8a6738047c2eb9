r"""Softmax and log-softmax over an axis: value, block-diagonal Jacobian, fused vjp.

For one row :math:`x \in \mathbb{R}^k` and :math:`p = \operatorname{softmax}(x)`,

.. math::

    p_i = \frac{e^{x_i - m}}{\sum_j e^{x_j - m}}, \quad m = \max_j x_j, \qquad
    \frac{\partial p}{\partial x} = \operatorname{diag}(p) - p p^T, \qquad
    \frac{\partial \log p}{\partial x} = I - \mathbf 1 p^T .

Over a batch ``x`` of shape ``(..., k)`` (the default ``axis=-1``) each row is
independent, so with ``x`` flattened row-major the Jacobian is a
:class:`~structjac.structures.BlockDiagonal` of one ``k x k`` block per row:
:math:`N k^2` numbers instead of :math:`(N k)^2`.  The vjps are fused and form no
block:

.. math::

    g^T \frac{\partial p}{\partial x} = p \odot (g - g^T p), \qquad
    g^T \frac{\partial \log p}{\partial x} = g - p \textstyle\sum_j g_j .

Any ``axis`` works for the value and the vjp.  The Jacobian of a softmax over an axis
other than the last is block diagonal only after that axis is moved last, so
``jacobian`` asks for the last axis (``np.moveaxis(x, axis, -1)``) instead of
returning a permuted matrix.

float32 stays float32; integers and bools are computed in float64.  A row holding NaN
gives NaN in the whole row.  Inputs are never written to.
"""

from __future__ import annotations

from numpy.typing import ArrayLike
from structjac.structures import Jacobian

import numpy as np

from structjac import kernels as _k
from structjac.kernels import softmax as _ks
from structjac.structures import BlockDiagonal

from ._dispatch import dispatched
from ._checks import same_shape

__all__ = ["Softmax", "LogSoftmax", "softmax", "log_softmax"]


def _axis(x, axis):
    if x.ndim == 0:
        raise ValueError("softmax needs at least one axis; x has shape () (0-d)")
    return _normalize(axis, x.ndim)


def _normalize(axis, ndim):
    if isinstance(axis, (bool, np.bool_)) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"axis must be an integer, got {type(axis).__name__}")
    a = int(axis)
    if not -ndim <= a < ndim:
        raise np.exceptions.AxisError(f"axis {a} is out of bounds for an array of dimension {ndim}")
    return a % ndim


def _as_rows(a, ax):
    """``a`` with axis ``ax`` moved last, as C-contiguous 2-D rows ``(N, k)``."""
    moved = np.moveaxis(a, ax, -1)
    k = moved.shape[-1]
    n = int(np.prod(moved.shape[:-1], dtype=np.int64))
    return np.ascontiguousarray(moved).reshape(n, k)


class _RowOp:
    """Shared plumbing of :class:`Softmax` and :class:`LogSoftmax`."""

    name = "rowop"
    _op_kind = "rowwise"  # how foreign-array handlers (structjac._dask) tell the ops apart
    _value_kernel = None
    _vjp_kernel = None
    _vjp_from_output_kernel = None

    def _apply(self, kernel, arrays, axis, out):
        x = arrays[0]
        ax = _axis(x, axis)
        dtype = _k._config.float_dtype(*arrays)
        if out is not None:
            _k._config.prepare_out(out, x.shape, dtype)  # checks shape, dtype, layout
        rows = [_as_rows(a, ax) for a in arrays]
        last = ax == x.ndim - 1
        if out is not None and last and not any(np.shares_memory(out, a) for a in arrays):
            kernel(*rows, out=out.reshape(rows[0].shape))
            return out
        moved_shape = np.moveaxis(x, ax, -1).shape
        result = np.moveaxis(kernel(*rows).reshape(moved_shape), -1, ax)
        if out is None:
            return result if last else np.ascontiguousarray(result)
        np.copyto(out, result)
        return out

    @dispatched
    def __call__(self, x: ArrayLike, axis: int = -1, out: np.ndarray | None = None) -> np.ndarray:
        """Return the value over ``axis`` (shape of ``x``)."""
        x = np.asarray(x)
        return self._apply(type(self)._value_kernel, (x,), axis, out)

    @dispatched
    def vjp(
        self, x: ArrayLike, g: ArrayLike, axis: int = -1, out: np.ndarray | None = None
    ) -> np.ndarray:
        """Return :math:`g^T \\partial f / \\partial x` in one fused pass per row (shape of ``x``)."""
        x, g = same_shape(x, g, "x", "g")
        return self._apply(type(self)._vjp_kernel, (x, g), axis, out)

    @dispatched
    def vjp_from_output(
        self, a: ArrayLike, g: ArrayLike, axis: int = -1, out: np.ndarray | None = None
    ) -> np.ndarray:
        """The fused vjp computed from the output ``a = f(x)`` (no exponential of ``x``)."""
        a, g = same_shape(a, g, "a", "g")
        return self._apply(type(self)._vjp_from_output_kernel, (a, g), axis, out)

    def _blocks_input(self, x, axis):
        x = np.asarray(x)
        ax = _axis(x, axis)
        if ax != x.ndim - 1:
            raise ValueError(
                f"the Jacobian of {self.name} over axis {axis} of an array of shape {x.shape} is "
                "block diagonal only with that axis last; pass np.moveaxis(x, "
                f"{axis}, -1) and axis=-1"
            )
        k = x.shape[-1]
        n = x.size // k if k else int(np.prod(x.shape[:-1], dtype=np.int64))
        return x.reshape(n, k)

    @dispatched
    def value_and_jacobian(self, x: ArrayLike, axis: int = -1) -> tuple[np.ndarray, "Jacobian"]:
        """Return ``(f(x), jacobian(x))``."""
        return self(x, axis=axis), self.jacobian(x, axis=axis)

    def __repr__(self):
        return f"structjac.ops.{self.name}"


class Softmax(_RowOp):
    r"""Softmax over an axis, :math:`p = e^{x - m} / \sum_j e^{x_j - m}` (stable).

    .. math::

        \frac{\partial p}{\partial x} = \operatorname{diag}(p) - p p^T, \qquad
        g^T \frac{\partial p}{\partial x} = p \odot (g - g^T p).

    Examples
    --------
    >>> import numpy as np
    >>> from structjac.ops import softmax
    >>> x = np.array([[0.0, np.log(3.0)], [1e4, 1e4]])     # large logits stay finite
    >>> softmax(x)
    array([[0.25, 0.75],
           [0.5 , 0.5 ]])
    >>> J = softmax.jacobian(x)
    >>> J
    BlockDiagonal(shape=(4, 4), dtype=float64, stored=64 B, dense=128 B)
    >>> J.blocks[0]
    array([[ 0.1875, -0.1875],
           [-0.1875,  0.1875]])
    >>> g = np.array([[1.0, 0.0], [0.0, 2.0]])
    >>> bool(np.allclose(softmax.vjp(x, g).ravel(), g.ravel() @ J.to_dense()))
    True
    """

    name = "softmax"
    _value_kernel = staticmethod(_ks.softmax_rows)
    _vjp_kernel = staticmethod(_ks.softmax_vjp_rows)
    _vjp_from_output_kernel = staticmethod(_ks.softmax_vjp_from_output_rows)

    @dispatched
    def jacobian(self, x: ArrayLike, axis: int = -1) -> "Jacobian":
        """``BlockDiagonal`` of the per-row blocks :math:`\\operatorname{diag}(p) - p p^T`
        (``axis`` must be the last axis)."""
        rows = self._blocks_input(x, axis)
        return BlockDiagonal(_ks.softmax_jacobian_blocks(rows), copy=False)

    @dispatched
    def jacobian_from_output(self, p: ArrayLike, axis: int = -1) -> "Jacobian":
        """``BlockDiagonal`` of :math:`\\operatorname{diag}(p) - p p^T` from the output ``p``."""
        rows = self._blocks_input(p, axis)
        dtype = _k._config.float_dtype(rows)
        p2 = np.asarray(rows, dtype=dtype)
        blocks = -p2[:, :, None] * p2[:, None, :]
        idx = np.arange(p2.shape[1])
        blocks[:, idx, idx] += p2
        return BlockDiagonal(blocks, copy=False)


class LogSoftmax(_RowOp):
    r"""Log-softmax over an axis, :math:`x - m - \log \sum_j e^{x_j - m}` (stable).

    .. math::

        \frac{\partial \log p}{\partial x} = I - \mathbf 1 p^T, \qquad
        g^T \frac{\partial \log p}{\partial x} = g - p \textstyle\sum_j g_j .

    Examples
    --------
    >>> import numpy as np
    >>> from structjac.ops import log_softmax
    >>> x = np.array([[0.0, np.log(3.0)]])
    >>> np.exp(log_softmax(x))
    array([[0.25, 0.75]])
    >>> log_softmax.jacobian(x).blocks[0]
    array([[ 0.75, -0.75],
           [-0.25,  0.25]])
    >>> log_softmax.vjp(x, np.array([[1.0, 1.0]]))
    array([[ 0.5, -0.5]])
    """

    name = "log_softmax"
    _value_kernel = staticmethod(_ks.log_softmax_rows)
    _vjp_kernel = staticmethod(_ks.log_softmax_vjp_rows)
    _vjp_from_output_kernel = staticmethod(_ks.log_softmax_vjp_from_output_rows)

    @dispatched
    def jacobian(self, x: ArrayLike, axis: int = -1) -> "Jacobian":
        """``BlockDiagonal`` of the per-row blocks :math:`I - \\mathbf 1 p^T`
        (``axis`` must be the last axis)."""
        rows = self._blocks_input(x, axis)
        return BlockDiagonal(_ks.log_softmax_jacobian_blocks(rows), copy=False)

    @dispatched
    def jacobian_from_output(self, a: ArrayLike, axis: int = -1) -> "Jacobian":
        """``BlockDiagonal`` of :math:`I - \\mathbf 1 p^T`, :math:`p = e^a`, from the output ``a``."""
        rows = self._blocks_input(a, axis)
        dtype = _k._config.float_dtype(rows)
        p2 = np.exp(np.asarray(rows, dtype=dtype))
        k = p2.shape[1]
        blocks = np.broadcast_to(-p2[:, None, :], (p2.shape[0], k, k)).copy()
        idx = np.arange(k)
        blocks[:, idx, idx] += 1
        return BlockDiagonal(blocks, copy=False)


#: Softmax over an axis (see :class:`Softmax`).
softmax = Softmax()
#: Log-softmax over an axis (see :class:`LogSoftmax`).
log_softmax = LogSoftmax()
