"""Warnings and the strict mode that turns them into errors.

A rule table never densifies behind the user's back. When two structures have no
closed-form rule that keeps structure, the product (or sum) is computed through
``scipy.sparse`` and a :class:`StructureLostWarning` is emitted. Inside
``with structjac.strict():`` the same event raises :class:`StructureLostError`.

The strict flag lives in a :class:`contextvars.ContextVar`, so it is local to the
thread (and asyncio task) that set it; importing structjac changes no global state.
"""

from __future__ import annotations

import contextlib
import contextvars
import warnings

__all__ = ["StructureLostWarning", "StructureLostError", "strict", "is_strict"]


class StructureLostWarning(UserWarning):
    """A result fell to a looser structure than its operands (Sparse or Dense).

    Emitted by the rule table when no closed-form rule keeps the structure.
    Turn it into an error with :func:`structjac.strict`.
    """


class StructureLostError(ValueError):
    """Raised instead of :class:`StructureLostWarning` inside :func:`structjac.strict`."""


_STRICT = contextvars.ContextVar("structjac_strict", default=False)


def is_strict() -> bool:
    """Return True inside a :func:`strict` block.

    Returns
    -------
    bool
        Whether a loss of structure raises instead of warning.
    """
    return _STRICT.get()


@contextlib.contextmanager
def strict(enabled: bool = True) -> contextlib.AbstractContextManager[None]:
    """Context manager in which a loss of structure raises.

    Parameters
    ----------
    enabled : bool, default True
        ``strict(False)`` turns strict mode off inside an enclosing strict block.

    Yields
    ------
    None

    Examples
    --------
    >>> import numpy as np, structjac as sj
    >>> K = sj.Kronecker(sj.Diagonal(np.ones(2)), sj.Dense(np.ones((3, 3))))
    >>> B = sj.BlockRow(0, np.ones(6), 6)
    >>> with sj.strict():
    ...     K + B
    Traceback (most recent call last):
        ...
    structjac._warnings.StructureLostError: add(Kronecker, BlockRow) has no structured rule; ...
    """
    token = _STRICT.set(bool(enabled))
    try:
        yield
    finally:
        _STRICT.reset(token)


def structure_lost(message: str, stacklevel: int = 4) -> None:
    """Warn (or raise in strict mode) that a result lost its structure."""
    if _STRICT.get():
        raise StructureLostError(message)
    warnings.warn(message, StructureLostWarning, stacklevel=stacklevel)
