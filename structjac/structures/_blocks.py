"""Index checks shared by BlockRow and BlockColumn."""

from __future__ import annotations

import operator

import numpy as np

from ._validation import check_size, frozen_array


def block_parts(index, block, length, owner: str, axis_name: str, copy: bool):
    """Validate ``(index, block, length)`` and return ``(indices, rows, scalar, length)``.

    ``indices`` is a read-only int64 array of ``r`` distinct positions in ``[0, length)``
    (negative positions count from the end, as in numpy), ``rows`` a read-only
    ``(r, k)`` float array, ``scalar`` whether ``index`` was a single integer.
    """
    length = check_size(length, axis_name, owner)
    if np.ndim(index) == 0:
        try:
            position = operator.index(index)
        except TypeError:
            raise TypeError(f"{owner}: index must be an integer or an array of integers, got {index!r}") from None
        indices = np.array([position], dtype=np.int64)
        rows = frozen_array(block, ndim=1, name="the block (one index)", owner=owner, copy=copy)[None, :]
        scalar = True
    else:
        raw = np.asarray(index)
        if raw.ndim != 1 or (raw.size and raw.dtype.kind not in "iu"):
            raise TypeError(
                f"{owner}: index must be an integer or a 1-D array of integers, "
                f"got an array of shape {raw.shape} and dtype {raw.dtype}"
            )
        indices = raw.astype(np.int64, copy=True)
        rows = frozen_array(block, ndim=2, name="the block (an index array)", owner=owner, copy=copy)
        if rows.shape[0] != indices.shape[0]:
            raise ValueError(
                f"{owner}: {indices.shape[0]} indices but the block has shape {rows.shape}; "
                f"it needs one row per index"
            )
        scalar = False
    bad = (indices < -length) | (indices >= length)
    if bad.any():
        position = int(np.flatnonzero(bad)[0])
        raise IndexError(
            f"{owner}: index {int(indices[position])} is out of range for {axis_name} = {length}"
        )
    indices = np.where(indices < 0, indices + length, indices)
    if np.unique(indices).size != indices.size:
        values, counts = np.unique(indices, return_counts=True)
        raise ValueError(f"{owner}: index {int(values[counts > 1][0])} appears more than once")
    indices.flags.writeable = False
    return indices, rows, scalar, length
