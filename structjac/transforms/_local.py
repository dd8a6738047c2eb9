r"""Local linear maps: what one traced numpy call contributes to the chain rule.

A traced call :math:`y = f(u, v, \dots)` contributes, for each traced argument
:math:`u`, the linear map :math:`\partial y / \partial u`. The forward transforms need
it as a structure, :math:`J_y = \sum_u (\partial y/\partial u)\, J_u`; the reverse
transforms need only its transpose applied to a cotangent,
:math:`\bar u = \bar y\, (\partial y/\partial u)`. A :class:`Local` holds both, lazily,
so that each transform computes only what it uses.

Everything is flattened row-major: an array of shape ``s`` is the vector of its
``prod(s)`` entries in C order, as the library's batch convention is.

Broadcasting is itself a linear map. An input of shape ``(d,)`` broadcast over a batch
to ``(N, d)`` is :math:`\mathbf 1_N \otimes I_d`; a scalar broadcast to ``n`` entries
is the column :math:`\mathbf 1_n`; in general every axis contributes :math:`I_s` (kept)
or :math:`\mathbf 1_s` (broadcast) to a Kronecker product, see
:func:`broadcast_jacobian`.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp

from ..structures import (
    BlockRow,
    Dense,
    Diagonal,
    Identity,
    Kronecker,
    ScaledIdentity,
    Sparse,
)
from . import _kernels

__all__ = [
    "Local",
    "broadcast_jacobian",
    "unbroadcast",
    "elementwise_local",
    "identity_local",
    "kron_chain",
    "selection_jacobian",
]


class Local:
    """The local linear map :math:`\\partial y/\\partial u` of one traced call.

    Parameters
    ----------
    jacobian : callable () -> Jacobian
        Builds the structure, shape ``(y.size, u.size)``.
    vjp : callable (g) -> ndarray
        Maps a cotangent ``g`` of the shape of ``y`` to one of the shape of ``u``.
    passthrough : bool, default False
        The map is the identity on the flattened values.
    vjp_acc : callable (g, acc) -> ndarray or None, optional
        Adds ``vjp(g)`` to ``acc`` in place (an array of ``u``'s shape and dtype that the
        backward pass owns) and returns ``acc``, or returns None when it cannot (the
        backward pass then adds ``vjp(g)`` itself).
    diagonal : callable () -> scalar or ndarray, optional
        The map is :math:`\\operatorname{diag}(d)`; returns ``d``.
    times : callable (J) -> Jacobian or None, optional
        The product of this map with ``J``, computed without building the map, for the
        ``J`` it knows (None otherwise: the rule table then composes them).
    """

    __slots__ = ("jacobian", "vjp", "passthrough", "vjp_acc", "diagonal", "times", "fused")

    def __init__(
        self, jacobian, vjp, passthrough=False, vjp_acc=None, diagonal=None, times=None, fused=None
    ):
        self.jacobian = jacobian
        self.vjp = vjp
        #: True when the map is the identity on the flattened values (reshape,
        #: ravel): the forward transforms then reuse the input's Jacobian as it is.
        self.passthrough = passthrough
        self.vjp_acc = vjp_acc
        #: For an element-wise map without broadcasting: () -> d, the diagonal (one
        #: number or an array of the output's shape), so that the forward transform
        #: multiplies the numbers of a diagonal Jacobian without building structures.
        self.diagonal = diagonal
        #: Optional (J) -> (this map) @ J computed directly for the J it knows, or None.
        self.times = times
        #: Optional (code, a): the diagonal as a kernel code of
        #: :mod:`~structjac.transforms._kernels` and the array it is computed from.
        self.fused = fused


def identity_local(in_shape):
    """The identity on the flattened values (reshape, ravel, a copy)."""
    n = math.prod(in_shape)

    def jacobian():
        return Identity(n)

    def vjp(g):
        return np.reshape(g, in_shape)

    return Local(jacobian, vjp, passthrough=True)


def kron_chain(factors):
    """Fold ``[F_1, ..., F_k]`` into :math:`F_1 \\otimes \\dots \\otimes F_k` (one factor: itself)."""
    result = factors[-1]
    for factor in reversed(factors[:-1]):
        result = Kronecker(factor, result)
    return result


def _axis_runs(in_shape, out_shape, kind_of):
    """Group the axes of ``out_shape`` into runs of one kind; return ``[(kind, size)]``."""
    pad = (1,) * (len(out_shape) - len(in_shape)) + tuple(in_shape)
    runs = []
    for a_in, a_out in zip(pad, out_shape):
        if a_out == 1:
            continue
        kind = kind_of(a_in, a_out)
        if runs and runs[-1][0] == kind:
            runs[-1][1] *= a_out
        else:
            runs.append([kind, a_out])
    return runs


def broadcast_jacobian(in_shape, out_shape, dtype):
    r"""The Jacobian of ``np.broadcast_to(u, out_shape)`` with respect to ``u``.

    Row-major, each output axis contributes a Kronecker factor: :math:`I_s` where the
    input has the axis, the column :math:`\mathbf 1_s` where it is broadcast;
    consecutive axes of one kind are merged. So a row :math:`b` broadcast over a
    batch of ``N`` is :math:`\mathbf 1_N \otimes I_d`, a column ``(N, 1)`` over ``d``
    outputs :math:`I_N \otimes \mathbf 1_d`, a scalar the column :math:`\mathbf 1_n`.

    Returns
    -------
    Jacobian
        :class:`Identity` when nothing is broadcast, else a :class:`Dense` column or a
        :class:`Kronecker` of identities and columns of ones.
    """
    dtype = np.dtype(dtype)
    n_out = math.prod(out_shape)
    runs = _axis_runs(in_shape, out_shape, lambda a, b: "keep" if a == b else "bcast")
    if not any(kind == "bcast" for kind, _ in runs):
        return Identity(n_out, dtype=dtype)
    factors = [
        Identity(size, dtype=dtype)
        if kind == "keep"
        else Dense(np.ones((size, 1), dtype=dtype), copy=False)
        for kind, size in runs
    ]
    return kron_chain(factors)


def unbroadcast(g, in_shape):
    """Sum the cotangent ``g`` over the axes that broadcasting added (the vjp of a broadcast)."""
    g = np.asarray(g)
    if g.shape == tuple(in_shape):
        return g
    extra = g.ndim - len(in_shape)
    if extra:
        g = g.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, (a, b) in enumerate(zip(in_shape, g.shape)) if a == 1 and b != 1)
    if axes:
        g = g.sum(axis=axes, keepdims=True)
    return g.reshape(in_shape)


def _is_constant(d):
    if isinstance(d, (np.ndarray, np.generic)):
        return d.ndim == 0
    return isinstance(d, (int, float)) or np.ndim(d) == 0


def diagonal_structure(d, out_shape, dtype):
    r"""``diag(d)`` over ``out_shape``: :class:`ScaledIdentity` (:class:`Identity` for 1)
    when ``d`` is one number, else :class:`Diagonal` of ``d`` broadcast to ``out_shape``."""
    n = math.prod(out_shape)
    if _is_constant(d):
        c = np.asarray(d)[()]
        if c == 1:
            return Identity(n, dtype=dtype)
        return ScaledIdentity(n, c, dtype=dtype)
    values = np.asarray(d, dtype=dtype)
    if values.shape != tuple(out_shape):
        values = np.broadcast_to(values, out_shape)
    return Diagonal._wrap(np.array(values, dtype=dtype, order="C").reshape(-1))


def elementwise_local(in_shape, out_shape, dtype, derivative, vjp=None, fused=None):
    r"""The local map of an element-wise function, :math:`\operatorname{diag}(f') B`.

    Parameters
    ----------
    in_shape, out_shape : tuple of int
        The argument's shape and the (broadcast) output's shape.
    dtype : numpy.dtype
        The output's dtype.
    derivative : callable () -> array_like or scalar
        :math:`\partial y_i/\partial u_i`, broadcastable to ``out_shape``; a plain
        number keeps the map a scaled identity.
    vjp : callable (g) -> ndarray, optional
        A fused :math:`g \odot f'` over the output's shape (e.g. a Numba kernel);
        by default ``g * derivative()``.
    fused : tuple (code, a), optional
        The derivative as a code of :mod:`structjac.transforms._kernels` and the stored
        array ``a`` it is computed from; used (one pass, no temporary, accumulation in
        place) when nothing is broadcast and ``a`` is a C-contiguous array of ``dtype``.

    Notes
    -----
    :math:`B` is :func:`broadcast_jacobian`, the identity when ``in_shape ==
    out_shape``; the vjp sums the broadcast axes back (:func:`unbroadcast`).
    """
    in_shape = tuple(in_shape)
    out_shape = tuple(out_shape)

    def jacobian():
        d = derivative()
        D = diagonal_structure(d, out_shape, dtype)
        if in_shape == out_shape:
            return D
        B = broadcast_jacobian(in_shape, out_shape, dtype)
        if isinstance(D, Identity):
            return B
        return D @ B

    def vjp_default(g):
        d = derivative()
        if _is_constant(d):
            c = np.asarray(d)[()]
            if c == 1:
                return unbroadcast(g, in_shape)  # +-1: no multiplication (g is not written)
            if c == -1:
                return unbroadcast(np.negative(g), in_shape)
        return unbroadcast(g * d, in_shape)

    vjp_acc = None
    if fused is not None and in_shape == out_shape:
        # checked when the reverse pass first runs: the forward transforms never pay for it
        code, a = fused

        def usable():
            return _kernels.fusable(a, dtype) and a.shape == out_shape

        fallback = vjp_default if vjp is None else vjp

        def vjp_fused(g):
            result = _kernels.elementwise_vjp(code, g, a) if usable() else None
            return fallback(g) if result is None else result

        def vjp_acc(g, acc):
            return _kernels.elementwise_vjp(code, g, a, out=acc) if usable() else None

        vjp_fn = vjp_fused
    elif vjp is None:
        vjp_fn = vjp_default
        if in_shape == out_shape:

            def vjp_acc(g, acc):
                # a derivative of +-1 adds or subtracts the cotangent in place: one pass
                d = derivative()
                if not _is_constant(d) or (np.asarray(d)[()] not in (1, -1)):
                    return None
                g = np.asarray(g)
                if g.shape != acc.shape or np.result_type(acc.dtype, g.dtype) != acc.dtype:
                    return None
                add = np.add if np.asarray(d)[()] == 1 else np.subtract
                return add(acc, g, out=acc)
    elif in_shape == out_shape:
        vjp_fn = vjp
    else:

        def vjp_fn(g):
            return unbroadcast(vjp(g), in_shape)

    same = in_shape == out_shape
    return Local(
        jacobian,
        vjp_fn,
        vjp_acc=vjp_acc,
        diagonal=derivative if same else None,
        fused=fused if same else None,
    )


def selection_jacobian(rows, cols, shape, dtype):
    r"""The 0/1 matrix :math:`S` with :math:`S_{r_k c_k} = 1` of a selection, a
    permutation or an embedding.

    Kept as :class:`Sparse`, one stored number per selected entry (tighter than a
    :class:`BlockRow`, which would store every row in full); :class:`Identity` when it
    selects every entry in order.
    """
    m, n = shape
    rows = np.asarray(rows, dtype=np.int64).reshape(-1)
    cols = np.asarray(cols, dtype=np.int64).reshape(-1)
    if (
        m == n
        and rows.size == n
        and np.array_equal(rows, cols)
        and np.array_equal(rows, np.arange(n))
    ):
        return Identity(n, dtype=dtype)
    data = np.ones(rows.size, dtype=dtype)
    S = sp.csr_array((data, (rows, cols)), shape=(m, n))
    return Sparse(S, copy=False)


def reduction_jacobian(in_shape, axes, scale, dtype):
    r"""The Jacobian of ``scale * u.sum(axis=axes)`` (keepdims or not: same flat order).

    Row-major, each axis contributes :math:`I_s` (kept) or the row
    :math:`\mathbf 1_s^T` (summed): a sum of everything is the one row
    :math:`c\,\mathbf 1^T` (a :class:`BlockRow`), a sum over the last axis of a batch
    :math:`I_N \otimes \mathbf 1_d^T`, over the batch axis :math:`\mathbf 1_N^T
    \otimes I_d`.
    """
    in_shape = tuple(in_shape)
    n = math.prod(in_shape)
    axes = set(axes)
    marks = tuple(1 if i in axes else s for i, s in enumerate(in_shape))
    runs = _axis_runs(marks, in_shape, lambda a, b: "keep" if a == b else "sum")
    if not any(kind == "sum" for kind, _ in runs):
        J = Identity(n, dtype=dtype)
        return J if scale == 1 else J * scale
    if len(runs) == 1:
        return BlockRow(0, np.full(n, scale, dtype=dtype), 1, copy=False)
    factors = []
    for kind, size in runs:
        if kind == "keep":
            factors.append(Identity(size, dtype=dtype))
        else:
            factors.append(Dense(np.ones((1, size), dtype=dtype), copy=False))
    J = kron_chain(factors)
    return J if scale == 1 else J * scale
