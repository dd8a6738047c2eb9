"""Input checks shared by the structures: dtypes, arrays, shapes, indices.

Every structure copies what it is given (unless told ``copy=False``) and marks its
arrays read-only, so neither the caller nor the library can change a structure after
it is built.
"""

from __future__ import annotations

import numbers
import operator

import numpy as np

from .._dtypes import as_float_dtype

__all__ = [
    "as_float_dtype",
    "frozen_array",
    "check_size",
    "check_scalar",
    "format_nbytes",
]


def frozen_array(values, *, ndim: int, name: str, owner: str, copy: bool = True) -> np.ndarray:
    """Return ``values`` as a C-contiguous read-only float array of ``ndim`` dimensions.

    With ``copy=True`` (the default) the result never shares memory with the input,
    so a caller who changes their array afterwards does not change the structure.
    With ``copy=False`` the memory is shared when it already has a float dtype and C
    order: the structure holds a read-only view, and the caller promises not to change
    the array afterwards (used for arrays the library has just made).
    """
    arr = np.asarray(values)
    if arr.ndim != ndim:
        raise ValueError(
            f"{owner} expects a {ndim}-D array for {name}, got an array of shape {arr.shape}"
        )
    dtype = as_float_dtype(arr.dtype)
    if copy:
        arr = np.array(arr, dtype=dtype, order="C", copy=True)
    else:
        # A view, so that marking it read-only leaves the caller's own array as it was.
        arr = np.ascontiguousarray(arr, dtype=dtype).view()
    arr.flags.writeable = False
    return arr


def check_size(n, name: str, owner: str) -> int:
    """Return ``n`` as a non-negative Python int or raise naming ``name``."""
    try:
        value = operator.index(n)
    except TypeError:
        raise TypeError(f"{owner}: {name} must be an integer, got {n!r}") from None
    if value < 0:
        raise ValueError(f"{owner}: {name} must be non-negative, got {value}")
    return value


def check_scalar(c, owner: str):
    """Return ``c`` if it is a real or complex scalar, else raise TypeError."""
    if isinstance(c, np.ndarray) and c.ndim == 0:
        c = c[()]
    if isinstance(c, (numbers.Number, np.number)) and not isinstance(c, (bool, np.bool_)):
        return c
    if isinstance(c, (bool, np.bool_)):
        return int(c)
    raise TypeError(f"{owner} expects a scalar, got {type(c).__name__}")


def format_nbytes(n: int) -> str:
    """Format a byte count with decimal units (``65.5 kB``, ``536.9 MB``)."""
    n = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")
