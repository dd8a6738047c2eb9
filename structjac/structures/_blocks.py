"""What BlockRow and BlockColumn share: index checks and the storage of a few rows."""

from __future__ import annotations

from numpy.typing import ArrayLike, DTypeLike

import operator

import numpy as np

from ._validation import check_size, frozen_array
from .base import Jacobian


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
            raise TypeError(
                f"{owner}: index must be an integer or an array of integers, got {index!r}"
            ) from None
        indices = np.array([position], dtype=np.int64)
        rows = frozen_array(block, ndim=1, name="the block (one index)", owner=owner, copy=copy)[
            None, :
        ]
        scalar = True
    else:
        raw = np.asarray(index)
        if raw.ndim != 1 or (raw.size and raw.dtype.kind not in "iu"):
            raise TypeError(
                f"{owner}: index must be an integer or a 1-D array of integers, "
                f"got an array of shape {raw.shape} and dtype {raw.dtype}"
            )
        indices = raw.astype(np.int64, copy=True)
        rows = frozen_array(
            block, ndim=2, name="the block (an index array)", owner=owner, copy=copy
        )
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
    if indices.size > 1 and np.unique(indices).size != indices.size:  # one index cannot repeat
        values, counts = np.unique(indices, return_counts=True)
        raise ValueError(f"{owner}: index {int(values[counts > 1][0])} appears more than once")
    indices.flags.writeable = False
    return indices, rows, scalar, length


class Blocks(Jacobian):
    """Base of :class:`BlockRow` and :class:`BlockColumn`: ``r`` distinct positions
    ``indices`` along one axis and an ``(r, k)`` block of the vectors that stand there.

    A subclass names its axis (``_axis``, for messages) and says how the block and the
    length of that axis make its shape (``_shape_of``).
    """

    __slots__ = ("_indices", "_block", "_scalar_index")
    _axis = ""

    def __init__(self, index: int, block: ArrayLike, length: int, copy: bool = True) -> None:
        owner = type(self).__name__
        indices, block, scalar, length = block_parts(index, block, length, owner, self._axis, copy)
        super().__init__(self._shape_of(block, length), block.dtype)
        self._set(_indices=indices, _block=block, _scalar_index=scalar)

    @staticmethod
    def _shape_of(block, length):
        raise NotImplementedError

    @classmethod
    def _from_parts(cls, indices, block, length, scalar_index=False):
        if scalar_index and block.shape[0] == 1:
            return cls(int(indices[0]), block[0], length, copy=False)
        return cls(indices, block, length, copy=False)

    def _rebuild(self, block):
        """The same positions with another block (scaled, cast ...)."""
        length = self.shape[0] if self._axis == "n_rows" else self.shape[1]
        return type(self)._from_parts(self._indices, block, length, self._scalar_index)

    @property
    def index(self):
        """int or ndarray: the nonzero position (an int, as given) or positions."""
        return int(self._indices[0]) if self._scalar_index else self._indices

    @property
    def indices(self) -> np.ndarray:
        """ndarray of int64, shape (r,): the nonzero positions (always an array)."""
        return self._indices

    @property
    def nbytes(self) -> int:
        return self._block.nbytes + (0 if self._scalar_index else self._indices.nbytes)

    def astype(self, dtype: DTypeLike):
        if np.dtype(dtype) == self.dtype:
            return self
        return self._rebuild(self._block.astype(dtype))

    def _scale(self, c):
        return self._rebuild(self._block * c)
