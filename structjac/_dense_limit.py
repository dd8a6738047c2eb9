r"""The dense-size guard: no dense array above a limit is formed on the user's behalf.

A structured Jacobian of a large model can stand for a matrix far larger than memory
(a :math:`10^6 \times 10^6` float64 Jacobian is 7.3 TiB dense). Every place structjac
forms a dense array the user did not hand it -- ``to_dense()``, a rule whose result is
:class:`~structjac.Dense` -- first asks :func:`check_dense`, which raises
:class:`DenseLimitError` naming the bytes when they exceed the limit.

The limit is :data:`DEFAULT_DENSE_LIMIT` (2 GiB) unless raised (or lowered) with the
:class:`dense_limit` context manager. It lives in a :class:`contextvars.ContextVar`, so
it holds for the thread (and asyncio task) that set it; importing structjac changes no
global state.
"""

from __future__ import annotations

import contextvars
import operator

__all__ = ["DEFAULT_DENSE_LIMIT", "DenseLimitError", "dense_limit", "check_dense"]

#: The default limit in bytes: 2 GiB.
DEFAULT_DENSE_LIMIT = 2 * 1024**3

_LIMIT: contextvars.ContextVar = contextvars.ContextVar("structjac_dense_limit", default=None)


class DenseLimitError(MemoryError):
    """A dense array above the dense limit (:class:`structjac.dense_limit`) was asked for."""

    __module__ = "structjac"  # its public name, as in tracebacks


class dense_limit:
    """Context manager: within it, dense arrays up to ``nbytes`` bytes may be formed.

    Parameters
    ----------
    nbytes : int or None
        The largest dense array, in bytes, that structjac forms on your behalf
        (``to_dense()``, rules whose result is Dense). ``None`` removes the limit.

    Examples
    --------
    >>> import numpy as np, structjac as sj
    >>> I = sj.Identity(100_000)
    >>> I.to_dense()
    Traceback (most recent call last):
    ...
    structjac.DenseLimitError: Identity.to_dense(): the dense 100000 x 100000 float64 matrix would take 80000000000 bytes (74.5 GiB), above the dense limit of 2147483648 bytes (2 GiB); raise it with `with structjac.dense_limit(nbytes):` or keep the structure
    >>> with sj.dense_limit(10**11):
    ...     sj.dense_limit.current()
    100000000000
    >>> sj.dense_limit.current() == sj.DEFAULT_DENSE_LIMIT
    True
    """

    __slots__ = ("_nbytes", "_tokens")

    def __init__(self, nbytes: int | float | None) -> None:
        if nbytes is not None:
            try:
                nbytes = operator.index(nbytes)
            except TypeError:
                raise TypeError(
                    f"dense_limit: nbytes must be an int or None, got {type(nbytes).__name__}"
                ) from None
            if nbytes < 0:
                raise ValueError(f"dense_limit: nbytes must be >= 0, got {nbytes}")
        self._nbytes = nbytes
        self._tokens = []

    def __enter__(self):
        self._tokens.append(_LIMIT.set(("set", self._nbytes)))
        return self

    def __exit__(self, *exc):
        _LIMIT.reset(self._tokens.pop())
        return False

    @staticmethod
    def current() -> int | float:
        """Return the limit in force here, in bytes (None: no limit)."""
        value = _LIMIT.get()
        return DEFAULT_DENSE_LIMIT if value is None else value[1]


def _gib(nbytes: int) -> str:
    return f"{nbytes / 1024**3:.3g} GiB"


def check_dense(shape, dtype, what: str) -> None:
    """Raise :class:`DenseLimitError` if a dense ``shape`` array of ``dtype`` exceeds the limit.

    Parameters
    ----------
    shape : tuple of int
    dtype : numpy.dtype
    what : str
        What forms the array (named in the message), e.g. ``"Kronecker.to_dense()"``.
    """
    limit = dense_limit.current()
    if limit is None:
        return
    nbytes = dtype.itemsize
    for extent in shape:
        nbytes *= extent
    if nbytes > limit:
        dims = " x ".join(str(e) for e in shape)
        raise DenseLimitError(
            f"{what}: the dense {dims} {dtype} matrix would take {nbytes} bytes ({_gib(nbytes)}), "
            f"above the dense limit of {limit} bytes ({_gib(limit)}); raise it with "
            "`with structjac.dense_limit(nbytes):` or keep the structure"
        )
