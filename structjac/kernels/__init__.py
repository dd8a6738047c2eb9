"""Numba kernels behind :mod:`structjac.ops` (plain ndarrays in, ndarrays out).

This subpackage imports nothing from :mod:`structjac`.  Every kernel is a
module-level ``numba.njit`` function, compiled lazily once per dtype (float32,
float64) and cached on disk (``cache=True``).  Each body is written once and
compiled twice, as a serial loop and as a ``prange`` loop, by
:func:`structjac.kernels._config.serial_and_parallel` (each with its own cache
index); the public wrappers choose the parallel one from
:data:`PARALLEL_THRESHOLD` elements on.

Caching
-------
Numba writes its cache next to the source (``__pycache__``) when that folder is
writable.  When it is not (a read-only site-packages, a container image) and
``NUMBA_CACHE_DIR`` is unset, Numba's own locator chain
(``numba.core.caching._CacheImpl._locator_classes``: ``InTreeCacheLocator``
then ``UserWideCacheLocator``) falls back to the user-wide cache directory
(``$XDG_CACHE_HOME/numba`` or ``~/.cache/numba``); set ``NUMBA_CACHE_DIR`` to
choose another place.  ``tests/kernels/test_cache_and_threads.py`` runs a kernel from a
read-only copy of the package to check this.

Threads
-------
Nothing is set at import.  :func:`set_num_threads` calls
:func:`numba.set_num_threads` at run time (at most ``NUMBA_NUM_THREADS``, which
defaults to the number of CPUs).

Fork safety
-----------
Under the OpenMP threading layer (``NUMBA_THREADING_LAYER=omp``), a child made
by ``os.fork()`` (``multiprocessing`` with the ``fork`` start method) after
the parent has run a parallel kernel can die or hang when it runs a parallel
kernel itself: GNU OpenMP is not fork-safe.  Use the ``spawn`` or
``forkserver`` start method, or select the ``workqueue`` (or ``tbb``) layer
with ``NUMBA_THREADING_LAYER=workqueue`` before the first parallel call; the
test-suite runs the kernels under ``workqueue`` in a subprocess.

Examples
--------
>>> import numpy as np
>>> from structjac import kernels
>>> kernels.tanh_vjp_from_output(np.array([0.0, 0.5]), np.array([2.0, 2.0]))
array([2. , 1.5])
"""

from __future__ import annotations

import numba

from . import _config, binary, layer, losses, unary
from ._config import BCE_EPS, FASTMATH, serial_only
from .binary import *  # noqa: F401,F403
from .losses import *  # noqa: F401,F403
from .unary import *  # noqa: F401,F403


def set_num_threads(n: int | None) -> None:
    """Set the number of threads used by the parallel kernels.

    Parameters
    ----------
    n : int
        Between 1 and ``numba.config.NUMBA_NUM_THREADS``.

    Returns
    -------
    None

    Examples
    --------
    >>> from structjac import kernels
    >>> old = kernels.get_num_threads()
    >>> kernels.set_num_threads(1)
    >>> kernels.get_num_threads()
    1
    >>> kernels.set_num_threads(old)
    """
    numba.set_num_threads(int(n))


def get_num_threads() -> int:
    """Return the number of threads the parallel kernels use.

    Returns
    -------
    int

    Examples
    --------
    >>> from structjac import kernels
    >>> kernels.get_num_threads() >= 1
    True
    """
    return numba.get_num_threads()


def get_parallel_threshold() -> int:
    """Return the element count from which the parallel kernels are used.

    Returns
    -------
    int

    Examples
    --------
    >>> from structjac import kernels
    >>> kernels.get_parallel_threshold() > 0
    True
    """
    return _config.PARALLEL_THRESHOLD


def set_parallel_threshold(n: int | None) -> None:
    """Set the element count from which the parallel kernels are used.

    Parameters
    ----------
    n : int
        Non-negative; 0 makes every call parallel.

    Returns
    -------
    int
        The previous threshold.

    Examples
    --------
    >>> from structjac import kernels
    >>> old = kernels.set_parallel_threshold(10)
    >>> kernels.get_parallel_threshold()
    10
    >>> _ = kernels.set_parallel_threshold(old)
    """
    n = int(n)
    if n < 0:
        raise ValueError(f"the parallel threshold must be >= 0, got {n}")
    old = _config.PARALLEL_THRESHOLD
    _config.PARALLEL_THRESHOLD = n
    return old


__all__ = (
    [
        "set_num_threads",
        "get_num_threads",
        "get_parallel_threshold",
        "set_parallel_threshold",
        "serial_only",
        "BCE_EPS",
        "FASTMATH",
    ]
    + unary.__all__
    + binary.__all__
    + losses.__all__
)
