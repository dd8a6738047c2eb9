"""Wrap arrays, sparse matrices and scalars as structures.

Installed into :mod:`structjac._registry` once the classes exist, so that the base
class (which cannot import its subclasses) and the registry's exact Sparse fallback
build structures through this one function.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .. import _registry
from .base import Jacobian
from .dense import Dense
from .scaled_identity import ScaledIdentity
from .sparse import Sparse

__all__ = ["as_jacobian"]


def as_jacobian(obj: object, n: int | None = None) -> Jacobian:
    """Wrap ``obj`` as a :class:`Jacobian`.

    Parameters
    ----------
    obj : Jacobian, ndarray (2-D), scipy.sparse matrix or array, or scalar
        A Jacobian is returned as it is; a 2-D array becomes :class:`Dense`, a sparse
        matrix :class:`Sparse`, a scalar ``c`` the :class:`ScaledIdentity` ``c I_n``.
    n : int, optional
        The size of the scaled identity for a scalar (default 1).

    Returns
    -------
    Jacobian

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp, structjac as sj
    >>> sj.as_jacobian(np.eye(2))
    Dense(shape=(2, 2), dtype=float64, stored=32 B, dense=32 B)
    >>> sj.as_jacobian(sp.eye_array(2))
    Sparse(shape=(2, 2), dtype=float64, stored=36 B, dense=32 B)
    >>> sj.as_jacobian(0.5, n=3)
    ScaledIdentity(shape=(3, 3), dtype=float64, stored=8 B, dense=72 B)
    """
    if isinstance(obj, Jacobian):
        return obj
    if sp.issparse(obj):
        return Sparse(obj)
    if np.ndim(obj) == 0 and not isinstance(obj, (str, bytes)):
        return ScaledIdentity(1 if n is None else n, np.asarray(obj)[()])
    arr = np.asarray(obj)
    if arr.ndim == 2:
        return Dense(arr)
    raise ValueError(
        f"as_jacobian: cannot wrap an array of shape {arr.shape}; a Jacobian is 2-D "
        "(use Diagonal(d) for a diagonal, Dense(v[None, :]) for a row)"
    )


# The registry knows no class; it builds through this function.
_registry.set_wrapper(as_jacobian)
