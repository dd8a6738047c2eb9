r"""The identity :math:`I`: no number stored.

The Jacobian of the identity map, of :math:`z = Wx + b` with respect to :math:`b`, and of
:math:`u + v` with respect to either argument.
"""

from __future__ import annotations

from numpy.typing import DTypeLike

import numpy as np

from ._validation import check_size
from .scaled_identity import ScaledIdentity

__all__ = ["Identity"]


class Identity(ScaledIdentity):
    r"""The identity :math:`I_n`.

    :math:`MI = IM = M`: composing with it returns the other operand itself, no copy.

    Parameters
    ----------
    n : int
        The size.
    dtype : dtype, default float64
        The dtype it reports; it takes part in :func:`numpy.result_type` like any
        other operand.

    Examples
    --------
    >>> import numpy as np, structjac as sj
    >>> I = sj.Identity(4, dtype=np.float32)
    >>> I
    Identity(shape=(4, 4), dtype=float32, stored=0 B, dense=64 B)
    >>> D = sj.Diagonal(np.arange(4, dtype=np.float32))
    >>> (I @ D) is D
    True
    """

    __slots__ = ()

    def __init__(self, n: int, dtype: DTypeLike = np.float64) -> None:
        n = check_size(n, "n", "Identity")
        super().__init__(n, 1, dtype=dtype)

    @property
    def nbytes(self) -> int:
        return 0

    def inv(self) -> "Identity":
        return self

    def astype(self, dtype: DTypeLike) -> "Identity":
        if np.dtype(dtype) == self.dtype:
            return self
        return Identity(self.shape[0], dtype=dtype)

    def _matmat(self, X: np.ndarray) -> np.ndarray:
        return X.astype(np.result_type(self.dtype, X.dtype), copy=True)

    def _rmatmat(self, Y: np.ndarray) -> np.ndarray:
        return Y.astype(np.result_type(self.dtype, Y.dtype), copy=True)
