"""The abstract base of every structured Jacobian.

A :class:`Jacobian` is an immutable linear map :math:`J \\in \\mathbb{R}^{m \\times n}`
kept in the structure the mathematics gives it. Subclasses say how they store
themselves and how they apply to a block of vectors; everything that involves two
structures (``@``, ``+``) is decided by the rule table: :mod:`structjac._registry` looks
the rules up and applies them, :mod:`structjac.algebra` registers them. This module
imports neither the subclasses nor the rules.
"""

from __future__ import annotations

from numpy.typing import DTypeLike

import abc
import numbers

import numpy as np
import scipy.sparse as sp

from .. import _registry
from .._dense_limit import check_dense
from .._dtypes import as_float_dtype, result_dtype
from ._interop import InteropMixin, scipy_adjoint_aware
from ._validation import format_nbytes

__all__ = ["Jacobian"]


def _is_scalar(value) -> bool:
    if isinstance(value, np.ndarray):
        return value.ndim == 0
    return isinstance(value, (numbers.Number, np.number))


def _reciprocal(c, dtype):
    """``1 / c`` computed in the dtype of the result of ``J / c`` (a float32 ``c`` with a
    float64 ``J`` is divided in float64, not in float32)."""
    if isinstance(c, (np.generic, np.ndarray)):
        wide = np.result_type(dtype, c.dtype)
        return np.divide(wide.type(1), np.asarray(c, dtype=wide))[()]
    return 1 / c


# Every Jacobian class, filled by ``Jacobian.__init_subclass__``: ``type(x) in _JACOBIAN_TYPES``
# is an exact-type test several times faster than ``isinstance`` through ``abc.ABCMeta``,
# on the path of every ``J @ K`` and ``J + K`` (a few microseconds each).
_JACOBIAN_TYPES: set = set()


def coerce_operand(obj):
    """Operand of ``+``/``-``: a Jacobian, a 2-D ndarray or a sparse matrix; else NotImplemented."""
    if type(obj) in _JACOBIAN_TYPES or isinstance(obj, Jacobian):
        return obj
    if sp.issparse(obj) or (isinstance(obj, np.ndarray) and obj.ndim == 2):
        return _registry.as_jacobian(obj)
    return NotImplemented


class Jacobian(InteropMixin, abc.ABC):
    r"""A linear map :math:`J \in \mathbb{F}^{m \times n}` kept in its structure.

    Every structure has a ``shape`` ``(m, n)``, a ``dtype``, the number of bytes it
    stores (``nbytes``) and the number the dense matrix would take
    (``dense_nbytes``). It applies to arrays without densifying:

    * ``J @ x`` with ``x`` of shape ``(n,)`` or ``(n, k)`` gives :math:`J x`;
    * ``x @ J`` with ``x`` of shape ``(m,)`` or ``(k, m)`` gives :math:`x J`,
      the vector-Jacobian product;
    * ``J @ K`` with another structure composes them by the rule table,
      ``J + K``, ``J - K``, ``-J``, ``c * J`` and ``J / c`` likewise.

    Structures are immutable: their arrays are read-only copies.

    A subclass must give ``nbytes``, ``to_dense``, ``to_sparse``, ``diagonal``,
    ``astype``, ``_transpose``, ``_scale`` and ``_matmat`` (abstract here); it builds
    itself by calling ``Jacobian.__init__(shape, dtype)`` and then ``_set`` for its own
    slots, once.
    """

    __slots__ = ("_shape", "_dtype")
    # ndarray @ J, ndarray * J ... reach structjac through InteropMixin.__array_ufunc__.
    __array_priority__ = 1000

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        _JACOBIAN_TYPES.add(cls)

    def __init__(self, shape: tuple[int, int], dtype: DTypeLike) -> None:
        m, n = (int(shape[0]), int(shape[1]))
        object.__setattr__(self, "_shape", (m, n))
        object.__setattr__(self, "_dtype", as_float_dtype(dtype))

    def __setattr__(self, name, value):
        raise AttributeError(f"{type(self).__name__} is immutable; cannot set {name!r}")

    def __delattr__(self, name):
        raise AttributeError(f"{type(self).__name__} is immutable; cannot delete {name!r}")

    def _set(self, **attributes):
        for key, value in attributes.items():
            object.__setattr__(self, key, value)

    # ------------------------------------------------------------------ metadata
    @property
    def shape(self) -> tuple[int, int]:
        """tuple of int: ``(m, n)``, outputs by inputs."""
        return self._shape

    @property
    def dtype(self) -> np.dtype:
        """numpy.dtype: the dtype of the numbers the structure holds and returns."""
        return self._dtype

    @property
    def ndim(self) -> int:
        """int: always 2."""
        return 2

    @property
    @abc.abstractmethod
    def nbytes(self) -> int:
        """int: bytes of the numbers this structure stores."""

    @property
    def dense_nbytes(self) -> int:
        """int: bytes the dense ``m x n`` matrix would take."""
        return self._shape[0] * self._shape[1] * self._dtype.itemsize

    # ------------------------------------------- what the chain planner asks
    @property
    def nnz(self) -> int:
        """int: structural nonzeros, the entries that may be nonzero (``m n`` unless the
        structure knows better); :meth:`to_sparse` stores at most this many."""
        return self._shape[0] * self._shape[1]

    @property
    def n_nonzero_rows(self) -> int:
        """int: rows that may hold a nonzero (``m`` unless the structure knows better)."""
        return self._shape[0]

    @property
    def n_nonzero_cols(self) -> int:
        """int: columns that may hold a nonzero (``n`` unless the structure knows better)."""
        return self._shape[1]

    @classmethod
    def _stored_estimate(cls, shape, nnz, left, right) -> float:
        """Numbers a product of type ``cls`` would store, for the chain planner.

        ``left`` and ``right`` describe the factors (:class:`structjac.chain.Operand`:
        ``stored``, ``nzrows``, ``nzcols``); ``nnz`` is the product's estimated nonzeros.
        """
        return float(min(nnz, shape[0] * shape[1]))

    def __repr__(self) -> str:
        m, n = self._shape
        return (
            f"{type(self).__name__}(shape=({m}, {n}), dtype={self._dtype}, "
            f"stored={format_nbytes(self.nbytes)}, dense={format_nbytes(self.dense_nbytes)})"
        )

    # ------------------------------------------------------- what subclasses give
    #: True for a structure that already stores its dense matrix (Dense): its
    #: ``to_dense`` copies what the user gave, so the dense-size guard does not apply.
    _dense_is_stored = False

    def to_dense(self) -> np.ndarray:
        """Return the dense matrix as a new (writable) ndarray of shape ``shape``.

        Raises
        ------
        structjac.DenseLimitError
            When the dense matrix would take more bytes than the dense limit
            (2 GiB unless raised with :func:`structjac.dense_limit`); the message
            names the bytes.
        """
        if not self._dense_is_stored:
            check_dense(self._shape, self._dtype, f"{type(self).__name__}.to_dense()")
        return self._to_dense()

    @abc.abstractmethod
    def _to_dense(self) -> np.ndarray:
        """Return the dense matrix (the guard has been passed)."""

    @abc.abstractmethod
    def to_sparse(self) -> sp.csr_array:
        """Return the matrix as a new ``scipy.sparse.csr_array`` with its exact sparsity.

        Stored entries are the structural nonzeros: a one-row :class:`BlockRow` of
        length ``n`` has ``nnz == n`` even where the row holds zeros.
        """

    @abc.abstractmethod
    def diagonal(self) -> np.ndarray:
        """Return the main diagonal, ``min(m, n)`` numbers, as a new ndarray."""

    def inv(self) -> "Jacobian":
        """Return the inverse in closed form, kept structured.

        Raises
        ------
        numpy.linalg.LinAlgError
            When the matrix is singular (naming the zero that makes it so) or not square.
        NotImplementedError
            When the structure has no closed-form inverse.
        """
        raise NotImplementedError(f"{type(self).__name__} has no closed-form inverse")

    @abc.abstractmethod
    def astype(self, dtype: DTypeLike) -> "Jacobian":
        """Return the same structure with its numbers cast to ``dtype`` (self if equal)."""

    @property
    def T(self) -> "Jacobian":
        """Jacobian: the transpose, structure kept (a BlockRow becomes a BlockColumn)."""
        return self._transpose()

    @abc.abstractmethod
    def _transpose(self) -> "Jacobian":
        """Return the transpose in its structure."""

    @abc.abstractmethod
    def _scale(self, c) -> "Jacobian":
        """Return ``c * self`` in the same structure (``c`` a scalar)."""

    @abc.abstractmethod
    def _matmat(self, X: np.ndarray) -> np.ndarray:
        """Return ``self @ X`` for a 2-D ``X`` of shape ``(n, k)``."""

    def _rmatmat(self, Y: np.ndarray) -> np.ndarray:
        """Return ``Y @ self`` for a 2-D ``Y`` of shape ``(k, m)``."""
        return self._transpose()._matmat(Y.T).T

    # ------------------------------------------------------------- application
    def _operand(self, x, side: str) -> np.ndarray:
        arr = np.asarray(x)
        if arr.dtype.kind not in "fc":
            arr = arr.astype(as_float_dtype(arr.dtype))
        m, n = self._shape
        if side == "right":
            ok = arr.ndim in (1, 2) and arr.shape[0] == n
            want = f"({n},) or ({n}, k)"
        else:
            ok = arr.ndim in (1, 2) and arr.shape[-1] == m
            want = f"({m},) or (k, {m})"
        if not ok:
            expr = "J @ x" if side == "right" else "x @ J"
            hint = ""
            if arr.ndim >= 2 and arr.size == (n if side == "right" else m):
                flat = "J @ x.reshape(-1)" if side == "right" else "x.reshape(-1) @ J"
                hint = (
                    f"; a batch of shape {arr.shape} is one vector of {arr.size} values "
                    f"to a Jacobian (flattened row-major): use {flat}"
                )
            raise ValueError(
                f"{expr}: shapes do not fit: {type(self).__name__} of shape {self._shape} "
                f"and array of shape {arr.shape} (expected {want}){hint}"
            )
        return arr

    @scipy_adjoint_aware
    def matvec(self, x) -> np.ndarray:
        r"""Apply the Jacobian: :math:`J x` (the Jacobian-vector product).

        Parameters
        ----------
        x : array_like, shape (n,) or (n, k)
            One vector, or ``k`` vectors as columns.

        Returns
        -------
        ndarray, shape (m,) or (m, k)
            With dtype ``np.result_type(J.dtype, x.dtype)``.
        """
        arr = self._operand(x, "right")
        dtype = result_dtype(self._dtype, arr.dtype)
        if arr.ndim == 1:
            return self._matmat(arr[:, None]).reshape(self._shape[0]).astype(dtype, copy=False)
        return self._matmat(arr).astype(dtype, copy=False)

    @scipy_adjoint_aware
    def rmatvec(self, x) -> np.ndarray:
        r"""Apply the Jacobian from the left: :math:`x J` (the vector-Jacobian product).

        Parameters
        ----------
        x : array_like, shape (m,) or (k, m)
            One cotangent, or ``k`` of them as rows.

        Returns
        -------
        ndarray, shape (n,) or (k, n)
            With dtype ``np.result_type(J.dtype, x.dtype)``.

        Notes
        -----
        This is :math:`x J`, not scipy's adjoint: for a complex ``J`` a
        :class:`scipy.sparse.linalg.LinearOperator`'s ``rmatvec`` is
        :math:`\bar J^T v`. ``J.aslinearoperator()`` and
        ``scipy.sparse.linalg.aslinearoperator(J)`` both give an operator with
        scipy's (conjugated) adjoint.
        """
        arr = self._operand(x, "left")
        dtype = result_dtype(self._dtype, arr.dtype)
        if arr.ndim == 1:
            return self._rmatmat(arr[None, :]).reshape(self._shape[1]).astype(dtype, copy=False)
        return self._rmatmat(arr).astype(dtype, copy=False)

    def aslinearoperator(self) -> "sp.linalg.LinearOperator":
        """Return a :class:`scipy.sparse.linalg.LinearOperator` that applies this Jacobian.

        Returns
        -------
        structjac.JacobianLinearOperator
            With ``_matvec``, ``_matmat``, ``_rmatvec``, ``_rmatmat`` and ``_adjoint``,
            usable in ``scipy.sparse.linalg.cg``, ``gmres`` and ``lsqr``.
        """
        from ..linear_operator import JacobianLinearOperator

        return JacobianLinearOperator(self)

    # --------------------------------------------------------------- operators
    def __matmul__(self, other: object) -> "Jacobian | np.ndarray":
        kind = type(other)
        if kind in _JACOBIAN_TYPES:
            return _registry.matmul(self, other)
        if kind is np.ndarray:
            return self.matvec(other)
        if isinstance(other, Jacobian):
            return _registry.matmul(self, other)
        if sp.issparse(other):
            return _registry.matmul(self, _registry.as_jacobian(other))
        if _is_scalar(other):
            raise TypeError("J @ c with a scalar c: use J * c to scale a Jacobian")
        if isinstance(other, (np.ndarray, list, tuple)) or hasattr(other, "__array__"):
            return self.matvec(other)
        return self._foreign_matmul(other, "right")

    def __rmatmul__(self, other):
        if sp.issparse(other):
            return _registry.matmul(_registry.as_jacobian(other), self)
        if _is_scalar(other):
            raise TypeError("c @ J with a scalar c: use c * J to scale a Jacobian")
        if isinstance(other, (np.ndarray, list, tuple)) or hasattr(other, "__array__"):
            return self.rmatvec(other)
        return self._foreign_matmul(other, "left")

    def _combine(self, other, name: str, reflected: bool = False):
        other = coerce_operand(other)
        if other is NotImplemented:
            return NotImplemented
        function = getattr(_registry, name)
        return function(other, self) if reflected else function(self, other)

    def __add__(self, other):
        return self._combine(other, "add")

    def __radd__(self, other):
        if _is_scalar(other) and other == 0:
            return self  # sum([J, K]) starts from 0
        return self._combine(other, "add", reflected=True)

    def __sub__(self, other):
        return self._combine(other, "subtract")

    def __rsub__(self, other):
        return self._combine(other, "subtract", reflected=True)

    def __neg__(self):
        return self._scale(-1)

    def __pos__(self):
        return self

    def __mul__(self, c):
        if not _is_scalar(c):
            return NotImplemented
        return _registry.scale(self, c)

    def __rmul__(self, c):
        if not _is_scalar(c):
            return NotImplemented
        return _registry.scale(self, c)

    def __truediv__(self, c):
        if not _is_scalar(c):
            return NotImplemented
        if c == 0:
            raise ZeroDivisionError(f"{type(self).__name__} / 0")
        return _registry.scale(self, _reciprocal(c, self._dtype))
