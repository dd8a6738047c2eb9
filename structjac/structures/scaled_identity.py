r"""Scaled identities :math:`cI`: one number for an ``n x n`` matrix.

They are the Jacobians of :math:`u - v` with respect to :math:`v` (:math:`-I`) and the
:math:`1/N` factors of a mean over a mini-batch.
"""

from __future__ import annotations

from numpy.typing import DTypeLike

import numpy as np

from ._validation import as_float_dtype, check_scalar, check_size
from .diagonal import Diagonal
from .base import Jacobian

__all__ = ["ScaledIdentity"]


class ScaledIdentity(Diagonal):
    r"""The scaled identity :math:`cI_n`.

    A :class:`Diagonal` whose entries are all ``c``; it stores one number. Every rule
    written for :class:`Diagonal` applies to it, and tighter rules override:
    :math:`(cI)J = cJ` keeps the type of :math:`J`.

    Parameters
    ----------
    n : int
        The size.
    c : scalar
        The scale.
    dtype : dtype, optional
        Default: the dtype of ``c`` if it is a numpy scalar, else float64
        (complex128 for a complex ``c``).

    Examples
    --------
    >>> import numpy as np, structjac as sj
    >>> minus_I = sj.ScaledIdentity(3, -1.0)
    >>> minus_I
    ScaledIdentity(shape=(3, 3), dtype=float64, stored=8 B, dense=72 B)
    >>> minus_I @ np.array([1.0, 2.0, 3.0])
    array([-1., -2., -3.])
    """

    __slots__ = ("_scalar",)

    def __init__(self, n: int, c: complex = 1.0, dtype: DTypeLike | None = None) -> None:
        n = check_size(n, "n", type(self).__name__)
        c = check_scalar(c, type(self).__name__)
        if dtype is None:
            dtype = (
                np.asarray(c).dtype if isinstance(c, np.generic) else np.result_type(np.float64, c)
            )
        dtype = as_float_dtype(dtype)
        Jacobian.__init__(self, (n, n), dtype)
        self._set(_scalar=np.asarray(c).astype(dtype)[()])

    @classmethod
    def _wrap(cls, n: int, scalar: np.generic) -> "ScaledIdentity":
        """Build :math:`cI_n` from a size and a numpy float scalar already checked.

        For the rule table's hot path: ``n`` is a valid size taken from an operand and
        ``scalar`` a numpy scalar of the result's dtype (float32, float64 or complex).
        No validation; the public constructor is the checked way.
        """
        self = object.__new__(ScaledIdentity)
        _setattr = object.__setattr__
        _setattr(self, "_shape", (n, n))
        _setattr(self, "_dtype", scalar.dtype)
        _setattr(self, "_scalar", scalar)
        return self

    def __getattr__(self, name):
        # The Diagonal's ``_values`` (a read-only broadcast of ``c``, stride 0) is built
        # on first use and kept in its slot: most scaled identities (the -I of a
        # difference, the 1/N of a mean) are only ever multiplied by their scalar, and
        # ``np.broadcast_to`` costs more than the rest of the constructor together.
        if name == "_values":
            values = np.broadcast_to(self._scalar, (self._shape[0],))
            object.__setattr__(self, "_values", values)
            return values
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    @property
    def scalar(self) -> np.generic:
        """numpy scalar: ``c``."""
        return self._scalar

    @property
    def nbytes(self) -> int:
        return self.dtype.itemsize

    def inv(self) -> "ScaledIdentity":
        if self._scalar == 0:
            from numpy.linalg import LinAlgError

            raise LinAlgError(
                f"{type(self).__name__} with c = 0 is singular: diagonal entry 0 is zero "
                f"(all {self.shape[0]} are)"
            )
        return ScaledIdentity(self.shape[0], 1 / self._scalar, dtype=self.dtype)

    def astype(self, dtype: DTypeLike) -> "ScaledIdentity":
        if np.dtype(dtype) == self.dtype:
            return self
        return ScaledIdentity(self.shape[0], self._scalar, dtype=dtype)

    def _scale(self, c) -> "ScaledIdentity":
        scalar = self._scalar * c
        dtype = np.result_type(self.dtype, c)
        if isinstance(scalar, np.generic) and scalar.dtype == dtype:
            return ScaledIdentity._wrap(self._shape[0], scalar)
        return ScaledIdentity(self._shape[0], scalar, dtype=dtype)

    def _matmat(self, X: np.ndarray) -> np.ndarray:
        return self._scalar * X

    def _rmatmat(self, Y: np.ndarray) -> np.ndarray:
        return Y * self._scalar
