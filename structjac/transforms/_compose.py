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

import numpy as np

from .. import algebra
from ..structures import BlockDiagonal, Diagonal, Identity, Kronecker, RowScaled

__all__ = ["compose", "accumulate", "per_sample_blocks"]


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
    if isinstance(J, Kronecker) and type(J.A) is Identity:
        N = J.A.shape[0]
        if n_blocks is not None and N != n_blocks:
            return None
        B = J.B.to_dense()
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
    if isinstance(J, Kronecker) and type(J.A) is Identity:
        return J.A.shape[0]
    if isinstance(J, RowScaled):
        return _sample_count(J.inner)
    return None


def _blockwise(a, b, operation):
    N = _sample_count(a) or _sample_count(b)
    if not N or N == 1:
        return None
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


def compose(a, b):
    """:math:`AB`: the rule table, or a per-sample block diagonal where the table has no rule."""
    if algebra.rule_for("matmul", type(a), type(b)) is None and a.shape[1] == b.shape[0]:
        blocks = _blockwise(a, b, "matmul")
        if blocks is not None:
            return blocks
    return algebra.matmul(a, b)


def accumulate(a, b):
    """:math:`A + B`, with the same per-sample fall-back as :func:`compose`."""
    if a is None:
        return b
    if algebra.rule_for("add", type(a), type(b)) is None and a.shape == b.shape:
        blocks = _blockwise(a, b, "add")
        if blocks is not None:
            return blocks
    return algebra.add(a, b)
