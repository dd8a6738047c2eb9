"""Small input checks shared by the ops (error messages name what was wrong)."""

from __future__ import annotations

import numpy as np

from structjac.kernels._config import float_dtype


def same_shape(a, b, name_a, name_b):
    """Return ``(np.asarray(a), np.asarray(b))``; ValueError naming both shapes if they differ.

    Examples
    --------
    >>> same_shape([1.0, 2.0], [1.0], "x", "g")
    Traceback (most recent call last):
    ...
    ValueError: x has shape (2,) but g has shape (1,); they must be equal
    """
    a = np.asarray(a)
    b = np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(
            f"{name_a} has shape {a.shape} but {name_b} has shape {b.shape}; they must be equal"
        )
    return a, b


def flat_copy(a, dtype):
    """A fresh, writeable, flat C-ordered copy of ``a`` in ``dtype`` (safe to hand over).

    Examples
    --------
    >>> import numpy as np
    >>> flat_copy(np.eye(2, dtype=int), np.dtype(np.float64))
    array([1., 0., 0., 1.])
    """
    return np.array(a, dtype=dtype, order="C", copy=True).reshape(-1)


__all__ = ["same_shape", "flat_copy", "float_dtype"]


#: The reductions every loss accepts.
REDUCTIONS = ("mean", "sum", "none", "elementwise_mean")


def check_reduction(reduction):
    """Raise ``ValueError`` naming ``reduction`` unless it is one of :data:`REDUCTIONS`."""
    if reduction not in REDUCTIONS:
        raise ValueError(
            f"unknown reduction {reduction!r}; valid names are "
            + ", ".join(repr(r) for r in REDUCTIONS)
        )
