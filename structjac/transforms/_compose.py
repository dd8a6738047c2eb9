r"""The chain rule's two operations on structures, :math:`A B` and :math:`A + B`.

Both go through the rule table (:func:`structjac.algebra.matmul`, :func:`~structjac.algebra.add`).
One family of pairs is recognised here before the table gives up: products and sums of
*per-sample* structures over a batch of ``N`` samples, whose result is block diagonal
with one block per sample,

.. math::

    (I_N \otimes B)\,\operatorname{diag}(d)\,(I_N \otimes A)
    = \operatorname{blockdiag}\big(B \operatorname{diag}(d^{(k)}) A\big)_{k=1}^N,

the Jacobian of a batch through two dense layers. It is kept as a
:class:`~structjac.BlockDiagonal` of ``N`` blocks (``O(N m d)`` numbers) instead of the
table's exact but loose Sparse fall-back. Pairs the table has a rule for are left to
the table.
"""

from __future__ import annotations

import functools

import numpy as np

from .. import algebra
from . import _kernels
from ..structures import BlockDiagonal, Diagonal, Identity, Kronecker, RowScaled, ScaledIdentity

__all__ = ["compose", "accumulate", "per_sample_blocks", "diagonal_times", "fused_diagonal_times"]

_DIAGONALS = (Diagonal, ScaledIdentity, Identity)


def fused_diagonal_times(code, a, J):
    r""":math:`\operatorname{diag}(f'(a))\,J` for a diagonal ``J`` in one Numba pass (the
    kernel of :mod:`~structjac.transforms._kernels` with ``J``'s numbers as its ``g``),
    without the derivative's temporaries; None when the kernel does not apply (another
    ``J``, another dtype, a non-contiguous ``a``)."""
    kind = type(J)
    if kind not in _DIAGONALS or not _kernels.fusable(a, J.dtype) or a.size != J.shape[0]:
        return None
    if kind is Diagonal:
        g = J.values
        if g.dtype != a.dtype or not g.flags.c_contiguous:
            values = _kernels.elementwise_vjp(code, g, a.reshape(-1))
            return None if values is None else Diagonal._wrap(values.reshape(-1))
    else:
        g = np.full(1, J.scalar, dtype=a.dtype)
    # the checks are made: the kernel itself (one pass, a new array)
    values = np.empty(a.size, dtype=a.dtype)
    _kernels._elementwise_vjp(code, g, a.reshape(-1), values, False)
    return Diagonal._wrap(values)


def scaled_identity(n, c, dtype):
    """``ScaledIdentity(n, c, dtype=dtype)``, one object per ``(n, c, dtype)`` (structures
    are immutable; the constructor's checks are not cheap on the tracer's hot path).
    The key holds ``c``'s bits in ``dtype``, so that ``-0.0`` and ``0.0`` or two NaNs
    of other payloads are not confused."""
    dtype = np.dtype(dtype)
    bits = np.asarray(c).astype(dtype).tobytes()
    return _scaled_identity(n, bits, dtype)


@functools.lru_cache(maxsize=64)
def _scaled_identity(n, bits, dtype):
    return ScaledIdentity(n, np.frombuffer(bits, dtype=dtype)[0], dtype=dtype)


def diagonal_times(d, J, dtype):
    r""":math:`\operatorname{diag}(d)\,J` for ``J`` a :class:`Diagonal` (or a scaled identity)
    of ``d``'s size, computed on the stored numbers; None for any other ``J``.

    The element-wise chains' fast path: the same result as composing
    ``diagonal_structure(d)`` with ``J`` through the rule table (a number ``d`` keeps
    :math:`J`'s type, 1 returns ``J`` itself), without building the local structure or
    looking up the rule. ``d`` is one number or an array of ``J.shape[0]`` entries, cast
    to ``dtype`` (the call's output dtype) first, as the local structure would hold it.
    """
    kind = type(J)
    if kind not in _DIAGONALS:
        return None
    n = J.shape[0]
    out = np.result_type(dtype, J.dtype)
    if isinstance(d, (int, float)) or (isinstance(d, (np.ndarray, np.generic)) and d.ndim == 0):
        c = np.asarray(d, dtype=dtype)[()]
        if c == 1:
            return J if J.dtype == out else J.astype(out)
        if kind is Diagonal:
            return Diagonal._wrap(np.multiply(J.values, c, dtype=out))
        return scaled_identity(n, J.scalar * c, out)
    d = np.asarray(d, dtype=dtype)
    if d.size != n:
        return None
    d = d.reshape(-1)
    if kind is Identity:
        values = np.array(d, dtype=out)  # d may be a value of the trace: never wrapped itself
    elif kind is ScaledIdentity:
        values = np.multiply(d, J.scalar, dtype=out)
    else:
        values = np.multiply(d, J.values, dtype=out)
    return Diagonal._wrap(values)


def per_sample_blocks(J, n_blocks=None):
    """Return ``J`` as ``(N, p, q)`` blocks of a block diagonal, or None when it is not one.

    ``n_blocks`` fixes ``N`` (a :class:`Diagonal` is block diagonal for any ``N``
    that divides its size).
    """
    if isinstance(J, BlockDiagonal):
        blocks = J.blocks
        if n_blocks is None or blocks.shape[0] == n_blocks:
            return blocks
        return None
    if isinstance(J, Kronecker) and isinstance(J.A, ScaledIdentity):
        N = J.A.shape[0]
        if n_blocks is not None and N != n_blocks:
            return None
        B = J.B.to_dense()
        if not isinstance(J.A, Identity):
            B = J.A.scalar * B
        return np.broadcast_to(B, (N,) + B.shape)
    if isinstance(J, RowScaled):
        inner = per_sample_blocks(J.inner, n_blocks)
        if inner is None:
            return None
        N, p, _ = inner.shape
        return J.scales.reshape(N, p)[:, :, None] * inner
    if isinstance(J, Diagonal) and n_blocks:
        n = J.shape[0]
        if n % n_blocks:
            return None
        p = n // n_blocks
        values = np.asarray(J.values).reshape(n_blocks, p)
        blocks = np.zeros((n_blocks, p, p), dtype=J.dtype)
        idx = np.arange(p)
        blocks[:, idx, idx] = values
        return blocks
    return None


def _sample_count(J):
    if isinstance(J, BlockDiagonal):
        return J.blocks.shape[0]
    if isinstance(J, Kronecker) and isinstance(J.A, ScaledIdentity):
        return J.A.shape[0]
    if isinstance(J, RowScaled):
        return _sample_count(J.inner)
    return None


def _blockwise(a, b, operation):
    N = _sample_count(a) or _sample_count(b)
    if not N or N == 1:
        return None
    if operation == "matmul" and isinstance(a, Diagonal) and _sample_count(b):
        # diag(d) blockdiag(B_k) = blockdiag(diag(d^(k)) B_k), without expanding diag(d)
        B = per_sample_blocks(b, N)
        if B is None:
            return None
        return BlockDiagonal(np.asarray(a.values).reshape(N, -1, 1) * B, copy=False)
    if operation == "matmul" and isinstance(b, Diagonal) and _sample_count(a):
        A = per_sample_blocks(a, N)
        if A is None:
            return None
        return BlockDiagonal(A * np.asarray(b.values).reshape(N, 1, -1), copy=False)
    A = per_sample_blocks(a, N)
    B = per_sample_blocks(b, N)
    if A is None or B is None:
        return None
    if operation == "matmul":
        if A.shape[2] != B.shape[1]:
            return None
        return BlockDiagonal(np.matmul(A, B), copy=False)
    if A.shape != B.shape:
        return None
    return BlockDiagonal(A + B, copy=False)


def _by_table(operation, a, b):
    """The table's rule for ``(a, b)``, or NotImplemented when it has none or declines."""
    rule = algebra.rule_for(operation, type(a), type(b))
    if rule is None:
        return NotImplemented
    result = rule.function(a, b)
    if result is NotImplemented:
        return result
    dtype = np.result_type(a.dtype, b.dtype)
    return result if result.dtype == dtype else result.astype(dtype)


def compose(a, b):
    """:math:`AB`: the rule table, or a per-sample block diagonal where the table has no rule."""
    if a.shape[1] != b.shape[0]:
        return algebra.matmul(a, b)  # raises, naming both shapes
    result = _by_table("matmul", a, b)
    if result is NotImplemented:
        result = _blockwise(a, b, "matmul")
        if result is None:
            return algebra.matmul(a, b)  # the table's exact fall-back, with its warning
    return result


def accumulate(a, b):
    """:math:`A + B` (``a`` may be None: nothing yet), with the same per-sample fall-back."""
    if a is None:
        return b
    if type(a) is Diagonal and type(b) is Diagonal and a.shape == b.shape:
        return Diagonal._wrap(np.add(a.values, b.values, dtype=np.result_type(a.dtype, b.dtype)))
    if a.shape != b.shape:
        return algebra.add(a, b)  # raises, naming both shapes
    result = _by_table("add", a, b)
    if result is NotImplemented:
        result = _blockwise(a, b, "add")
        if result is None:
            return algebra.add(a, b)
    return result
