r"""The forward transform's short path for element-wise calls on diagonal Jacobians.

Under :func:`structjac.jacobian`, an element-wise call :math:`y = f(u, v)` without
broadcasting whose traced arguments carry diagonal Jacobians (:class:`~structjac.Diagonal`,
:class:`~structjac.ScaledIdentity`, :class:`~structjac.Identity`) gives

.. math::

    J_y = \operatorname{diag}(\partial y/\partial u)\, J_u
        + \operatorname{diag}(\partial y/\partial v)\, J_v,

again diagonal: one multiplication of stored numbers per argument (a fused Numba pass
when the rule has a derivative code, :func:`~structjac.transforms._compose.fused_diagonal_times`),
and one addition. The general path (:func:`~structjac.transforms._tracer.record`) computes
the same products with the same functions, after building the call's
:class:`~structjac.transforms._local.Local`; this path skips that bookkeeping, which is
most of the tracer's cost per call on small arrays.

Correctness never depends on it: :func:`diagonal_jacobians` returns None for any other
case (a Jacobian of another type or size, broadcasting, a derivative that is not one
number or an array of the output's shape), and the general path runs. Setting
:data:`ENABLED` to False runs the general path always (the tests compare the two).
"""

from __future__ import annotations


from ..structures import Diagonal, Identity, ScaledIdentity
from ._compose import accumulate, diagonal_times, fused_diagonal_times

__all__ = ["ENABLED", "DIAGONALS", "diagonal_jacobians"]

#: False: every call takes the general path (for the tests' comparison).
ENABLED = True

#: The Jacobian types this path composes (exact types, not subclasses).
DIAGONALS = frozenset((Diagonal, ScaledIdentity, Identity))


def _checked(payload, n):
    """True when every Jacobian of ``payload`` is None or a diagonal type of size ``n``."""
    for J in payload:
        if J is not None and (type(J) not in DIAGONALS or J._shape[0] != n):
            return False
    return True


def diagonal_jacobians(terms, dtype, n):
    r"""The Jacobians :math:`\sum_u \operatorname{diag}(d_u)\, J_u`, per input of the trace.

    Parameters
    ----------
    terms : list of (payload, fused, derivative)
        Per traced argument ``u``: its Jacobians (a tuple, one per input, None where it
        does not depend on that input); ``(code, a)`` of the fused kernel or None; and
        ``derivative``, a callable () -> :math:`d_u`, one number or an array of ``n``
        entries, computed only when the kernel does not apply.
    dtype : numpy.dtype
        The call's output dtype.
    n : int
        The output's size (= every argument's: nothing is broadcast).

    Returns
    -------
    tuple or None
        One Jacobian (or None) per input; None when a Jacobian is not diagonal or not of
        size ``n``, or when a derivative does not fit: the caller takes the general path.
    """
    for payload, _, _ in terms:
        if not _checked(payload, n):
            return None
    jacs = None
    for payload, fused, derivative in terms:
        if jacs is None:
            jacs = [None] * len(payload)
        d = None
        for k, J in enumerate(payload):
            if J is None:
                continue
            product = None
            if fused is not None:
                product = fused_diagonal_times(fused[0], fused[1], J)
            if product is None:
                if d is None:
                    d = derivative()
                product = diagonal_times(d, J, dtype)
                if product is None:
                    return None
            previous = jacs[k]
            jacs[k] = product if previous is None else accumulate(previous, product)
    return tuple(jacs)
