"""Shared configuration and input handling for the structjac Numba kernels.

Nothing here imports from :mod:`structjac`; the kernels work on plain
:class:`numpy.ndarray` objects only.

Compilation flags
-----------------
Every kernel is a module-level ``numba.njit(cache=True, nogil=True,
error_model="numpy", fastmath=FASTMATH)`` function, compiled lazily once per dtype signature (float32
and float64) and cached on disk.  ``FASTMATH`` is the explicit flag set
``{"nsz", "arcp", "contract", "afn", "reassoc"}``: it leaves out ``nnan`` and
``ninf`` on purpose, because ``fastmath=True`` lets LLVM assume that no value is
NaN or infinite, which turns ``isnan`` into ``False`` and silently changes what
NaN inputs produce.  ``error_model="numpy"`` makes ``1/0`` give inf (IEEE)
instead of raising ``ZeroDivisionError``, and lets loops vectorize.

Serial and parallel
-------------------
Each kernel body is written once, as a plain Python function whose batch loop
is ``numba.prange``, and compiled twice by :func:`serial_and_parallel`: with
:data:`JIT` (``prange`` is then ``range``: a plain loop) and with
:data:`JIT_PARALLEL`.  The wrappers pick the parallel one when the number of
elements is at least :data:`PARALLEL_THRESHOLD` (measured on a 2-core machine:
below a few 1e4 elements the thread start-up costs more than it saves).

A busy machine
--------------
A parallel kernel is as slow as its slowest thread: when other processes
keep the CPUs busy, a thread waits a scheduler time slice for one, and the
call takes milliseconds instead of microseconds (measured on 2 cores beside
2 busy processes, OpenMP layer: 8 to 40 ms where the serial loop takes
0.05 to 1.4 ms).  :func:`pick` therefore calls the parallel kernel only when
Linux's instantaneous count of runnable tasks (``/proc/loadavg``) leaves an
idle CPU for each of its threads (read at most every 20 ms; see
:func:`_cpus_are_free`, :data:`LOAD_AWARE`).  Nothing is set at import and no
environment variable is read or written; a parallel threshold of 0 forces the
parallel kernels.

Concurrent callers
------------------
Numba's ``workqueue`` threading layer is not thread-safe: two Python threads
inside parallel kernels at the same time make it abort the process.  Under a
layer that is not known to be thread-safe (``workqueue``, or before Numba has
chosen one), :func:`pick` lets one thread at a time run a parallel kernel; a
thread that finds one running runs the serial twin meanwhile (same values, no
waiting).  Under ``tbb`` and ``omp`` the parallel kernel is called directly.
Parallel Numba code of your own, run from other threads at the same time, is
outside this lock: under ``workqueue`` keep such code on one thread.

The two compilations must not come from the same function object.  Numba's disk
cache (``numba.core.caching``) names a function's index file
``<module>.<__qualname__>-<first line>.py<XY>.nbi`` and keys the entries in it
by signature, target and a hash of the bytecode (and closure), not by the
compilation flags: two dispatchers of one function would share one index and
load each other's machine code (a "serial" kernel that starts threads, or the
reverse).  :func:`serial_and_parallel` therefore compiles two copies of the
function, named ``<name>_serial`` and ``<name>_parallel``, each with its own
index file.  ``tests/kernels/test_cache_and_threads.py`` checks this end to end.
"""

from __future__ import annotations

from numpy.typing import ArrayLike

import contextlib
from collections.abc import Iterator
import inspect
import os
import threading
import time
import types

import numba
import numpy as np

from ._alloc import empty

__all__ = [
    "FASTMATH",
    "JIT",
    "JIT_PARALLEL",
    "PARALLEL_THRESHOLD",
    "MEMORY_BOUND_PARALLEL_LIMIT",
    "LOAD_AWARE",
    "BCE_EPS",
    "as_float_array",
    "float_dtype",
    "prepare_out",
    "pick",
    "serial_only",
    "bce_eps",
    "serial_and_parallel",
    "append_doc_sections",
]

#: The fastmath flags used by every kernel (no ``nnan``/``ninf``: NaN and inf survive).
FASTMATH = frozenset({"nsz", "arcp", "contract", "afn", "reassoc"})

# Numba's cache index is keyed on the kernel's name, bytecode and source file, not on
# these options: after editing them, delete the ``*.nbi``/``*.nbc`` files in
# ``structjac/kernels/__pycache__`` (or touch the kernel modules).
#: Options for serial kernels.
JIT = dict(cache=True, nogil=True, error_model="numpy", fastmath=set(FASTMATH))
#: Options for parallel (``prange``) kernels.
JIT_PARALLEL = dict(JIT, parallel=True)

#: Element count at and above which the wrappers call the parallel kernel.
PARALLEL_THRESHOLD = 65536

#: Memory-bound kernels (no libm call: relu, the ``from_output`` vjps, products
#: and quotients, and the kernels whose ``exp`` is the vectorised
#: :func:`structjac.kernels._exp.vexp`: sigmoid, sigmoid'/tanh' from ``x``, their
#: vjps, the BCE-with-logits gradient) go back to the serial loop from this element
#: count on: once the arrays leave the caches one core already saturates memory
#: bandwidth (measured: the serial loop runs at the speed of ``np.multiply``,
#: the 2-thread loop 1.3-1.7x slower at 2e7 elements on the 2-core machine; the
#: vexp sigmoid vjp serially 1.0-1.2x ``np.multiply``, its 2-thread loop no faster).
MEMORY_BOUND_PARALLEL_LIMIT = 1 << 21

#: Clamping margin of binary cross-entropy on probabilities, per dtype:
#: ``y_hat`` is clamped into ``[eps, 1 - eps]``.  float32: 1e-7 (``1 - 1e-7``
#: still rounds to a number below 1); float64: 1e-12.
BCE_EPS = {np.dtype(np.float32): 1e-7, np.dtype(np.float64): 1e-12}


_FLOAT32 = np.dtype(np.float32)
_FLOAT64 = np.dtype(np.float64)


def float_dtype(*arrays):
    """Return the floating dtype the kernels compute in for ``arrays``.

    float32 and float64 are kept; integers, bools and every other real dtype
    (float16, longdouble) are computed in float64; mixed inputs follow
    :func:`numpy.result_type` of their floating versions.

    Parameters
    ----------
    *arrays : ndarray
        The inputs (already passed through :func:`numpy.asarray`).

    Returns
    -------
    numpy.dtype
        ``float32`` or ``float64``.

    Examples
    --------
    >>> import numpy as np
    >>> float_dtype(np.ones(2, np.float32))
    dtype('float32')
    >>> float_dtype(np.ones(2, np.int64), np.ones(2, np.float32))
    dtype('float64')
    """
    if arrays:  # the common case first: every input float32, or every input float64
        first = arrays[0].dtype
        if first is _FLOAT64 or first is _FLOAT32:
            for a in arrays[1:]:
                if a.dtype is not first:
                    break
            else:
                return first
    dts = []
    for a in arrays:
        dt = a.dtype
        if dt.kind == "c":
            raise TypeError(f"complex input (dtype {dt}) is not supported; pass real arrays")
        if dt.kind not in "biuf":
            raise TypeError(f"input of dtype {dt} is not a real numeric array")
        dts.append(dt if dt in (np.float32, np.float64) else np.dtype(np.float64))
    return np.result_type(*dts) if dts else np.dtype(np.float64)


def as_float_array(x: ArrayLike, dtype):
    """Return ``x`` as a flat, C-ordered, contiguous array of ``dtype``.

    A copy is made only when needed (non-contiguous, Fortran order, other
    dtype); the result may be a read-only view of the input, which the kernels
    never write to.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.asfortranarray(np.arange(6.0).reshape(2, 3))  # row-major result
    >>> as_float_array(x, np.dtype(np.float64))
    array([0., 1., 2., 3., 4., 5.])
    """
    return np.ascontiguousarray(x, dtype=dtype).reshape(-1)


def prepare_out(out: np.ndarray | None, shape, dtype, name: str | None = "out"):
    """Allocate an output, or check a given one, and return ``(out, flat)``.

    Parameters
    ----------
    out : ndarray or None
        ``None`` allocates ``structjac.kernels._alloc.empty(shape, dtype)``
        (:func:`numpy.empty`, aligned to a huge page when large).  Otherwise it must have
        exactly ``shape`` and ``dtype`` and be C-contiguous and writeable.
    shape : tuple of int
    dtype : numpy.dtype
    name : str
        Name used in error messages.

    Returns
    -------
    out : ndarray
        The array returned to the caller.
    flat : ndarray
        A flat C-ordered view of ``out`` that the kernel writes into.

    Examples
    --------
    >>> import numpy as np
    >>> o, f = prepare_out(None, (2, 2), np.dtype(np.float32))
    >>> o.shape, f.shape, f.dtype
    ((2, 2), (4,), dtype('float32'))
    >>> prepare_out(np.empty(3), (2, 2), np.dtype(np.float64))
    Traceback (most recent call last):
    ...
    ValueError: out has shape (3,) but the result has shape (2, 2)
    """
    shape = tuple(shape)
    if out is None:
        out = empty(shape, dtype)
        return out, out.reshape(-1)
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(out).__name__}")
    if out.shape != shape:
        raise ValueError(f"{name} has shape {out.shape} but the result has shape {shape}")
    if out.dtype != dtype:
        raise ValueError(f"{name} has dtype {out.dtype} but the result has dtype {np.dtype(dtype)}")
    if not out.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous (got strides {out.strides})")
    if not out.flags.writeable:
        raise ValueError(f"{name} is read-only")
    return out, out.reshape(-1)


_LOCAL = threading.local()


@contextlib.contextmanager
def serial_only() -> Iterator[None]:
    """Within the block, the calling thread runs every kernel serially.

    For element-wise passes between multi-threaded BLAS calls (as in
    :func:`structjac.nn.value_and_grad`): OpenBLAS's idle threads keep spinning
    after a call and Numba's OpenMP threads after a kernel, so parallel passes
    and BLAS calls slow each other down when they share the cores (measured on
    2 cores: a 32-64-64-1 MLP step 30 % slower than with serial passes).  Other
    threads are not affected; the blocks nest.

    Examples
    --------
    >>> from structjac.kernels import _config
    >>> old, _config.PARALLEL_THRESHOLD = _config.PARALLEL_THRESHOLD, 0
    >>> with serial_only():
    ...     pick("s", "p", 10**6)
    's'
    >>> pick("s", "p", 10**6) != "s"
    True
    >>> _config.PARALLEL_THRESHOLD = old
    """
    old = getattr(_LOCAL, "serial", False)
    _LOCAL.serial = True
    try:
        yield
    finally:
        _LOCAL.serial = old


#: Check the machine's load before a parallel call (see :func:`_cpus_are_free`).
LOAD_AWARE = True
#: Seconds a reading of the machine's load is reused.
LOAD_SAMPLE_SECONDS = 0.02
#: ``(time.monotonic() of the reading, verdict)``; the verdict is reused for
#: :data:`LOAD_SAMPLE_SECONDS` (threads may race on it: each writes a whole tuple).
_LOAD_READING = (-float("inf"), True)


def _runnable_tasks():
    """The number of tasks running or ready to run now, machine-wide, or None.

    The fourth field of Linux's ``/proc/loadavg`` (``running/total``), the
    scheduler's instantaneous count, which includes the calling thread.  None
    where there is no such file (other systems: the load is then not checked).
    """
    try:
        with open("/proc/loadavg", "rb") as f:
            return int(f.read().split()[3].split(b"/")[0])
    except (OSError, IndexError, ValueError):
        return None


def _cpus_are_free():
    """True when the machine has an idle CPU for every thread a parallel kernel uses.

    A parallel kernel ends at a barrier: it is as slow as its slowest thread, and
    a thread that has to wait for a CPU taken by another process waits for a
    scheduler time slice (milliseconds) -- measured on 2 cores beside 2 busy
    processes: a 65,536-element sigmoid 0.05 ms serially, 8 to 40 ms in
    parallel under the OpenMP layer.  So a parallel kernel runs only when the
    other runnable tasks leave ``numba.get_num_threads()`` CPUs idle
    (``runnable - 1 + threads <= os.cpu_count()``); the reading is reused for
    :data:`LOAD_SAMPLE_SECONDS`.  Without ``/proc/loadavg`` the answer is True.
    """
    global _LOAD_READING
    now = time.monotonic()
    when, verdict = _LOAD_READING
    if now - when < LOAD_SAMPLE_SECONDS:
        return verdict
    running = _runnable_tasks()
    if running is None:
        verdict = True
    else:
        verdict = running - 1 + numba.get_num_threads() <= (os.cpu_count() or 1)
    _LOAD_READING = (now, verdict)
    return verdict


#: Threading layers that may be entered by several Python threads at once.
_THREADSAFE_LAYERS = frozenset({"tbb", "omp"})
#: Held while a parallel kernel runs under a layer that is not thread-safe.
_PARALLEL_LOCK = threading.Lock()
#: Whether the threading layer in use is thread-safe; None until one is known.
_LAYER_IS_THREADSAFE = None


def _layer_is_threadsafe():
    """True once Numba's threading layer is known to be ``tbb`` or ``omp``.

    Numba chooses its layer at the first parallel call (``numba.threading_layer()``
    raises ``ValueError`` before); until then the answer is False (the safe side).
    """
    global _LAYER_IS_THREADSAFE
    if _LAYER_IS_THREADSAFE is None:
        try:
            layer = numba.threading_layer()
        except ValueError:  # not initialised: no parallel call yet
            return False
        _LAYER_IS_THREADSAFE = layer in _THREADSAFE_LAYERS
    return _LAYER_IS_THREADSAFE


def _one_at_a_time(serial, parallel):
    """``parallel`` for one thread at a time; a concurrent caller runs ``serial``.

    Numba's ``workqueue`` layer is not thread-safe: two Python threads inside
    parallel kernels at once make it abort the process ("Concurrent access has
    been detected").  The wrapper takes a process-wide lock without waiting: the
    thread that holds it runs the parallel kernel, any other thread meanwhile runs
    the serial one (same results, no waiting, never two parallel regions at once).
    """

    def run(*args):
        if _PARALLEL_LOCK.acquire(blocking=False):
            try:
                return parallel(*args)
            finally:
                _PARALLEL_LOCK.release()
        return serial(*args)

    run.__name__ = getattr(parallel, "__name__", "parallel")
    run.serial, run.parallel = serial, parallel
    return run


def pick(serial, parallel, n: int | None, memory_bound=False):
    """Return the kernel to call: ``parallel`` when ``n >= PARALLEL_THRESHOLD``, else ``serial``.

    A ``memory_bound`` kernel is parallel only for
    ``PARALLEL_THRESHOLD <= n < MEMORY_BOUND_PARALLEL_LIMIT``; within
    :func:`serial_only` every kernel is serial.

    On a busy machine the parallel kernel is not used either: with
    :data:`LOAD_AWARE` (the default) a parallel kernel runs only when there is
    an idle CPU for each of its threads (:func:`_cpus_are_free`).  A threshold
    of 0 (``structjac.kernels.set_parallel_threshold(0)``) makes every call
    parallel regardless of the load.

    Under a threading layer that is not thread-safe (``workqueue``, or while
    Numba has not chosen its layer yet), the parallel choice is wrapped so that
    only one thread at a time runs a parallel kernel; a thread that finds one
    running calls ``serial`` instead (see :func:`_one_at_a_time`).  Concurrent
    callers therefore never abort the process, whatever the layer.

    Examples
    --------
    >>> pick("s", "p", 10), pick("s", "p", 10**7, memory_bound=True)
    ('s', 's')
    >>> from structjac.kernels import _config
    >>> old, _config.PARALLEL_THRESHOLD = _config.PARALLEL_THRESHOLD, 0
    >>> chosen = pick("s", "p", 10)          # threshold 0: parallel, whatever the load
    >>> chosen == "p" or chosen.parallel == "p"
    True
    >>> _config.PARALLEL_THRESHOLD = old
    """
    if n < PARALLEL_THRESHOLD or getattr(_LOCAL, "serial", False):
        return serial
    if memory_bound and n >= MEMORY_BOUND_PARALLEL_LIMIT:
        return serial
    if LOAD_AWARE and PARALLEL_THRESHOLD > 0 and not _cpus_are_free():
        return serial
    if _layer_is_threadsafe():
        return parallel
    return _one_at_a_time(serial, parallel)


def bce_eps(dtype):
    """Return the BCE clamping margin for ``dtype`` (see :data:`BCE_EPS`).

    Examples
    --------
    >>> import numpy as np
    >>> bce_eps(np.float32), bce_eps(np.float64)
    (1e-07, 1e-12)
    """
    return BCE_EPS[np.dtype(dtype)]


def _renamed(py_func, suffix, bind=None):
    """A copy of ``py_func`` (same code, globals, defaults) named ``<name><suffix>``.

    Numba reads ``__qualname__`` from the function object (the cache file name) and
    ``__name__`` (messages); the code object is renamed too where Python allows it,
    so that tracebacks and profiles tell the two copies apart.  ``bind`` (a dict)
    replaces some of the copy's globals (a copy of the module's dict is used then).
    """
    name = py_func.__name__ + suffix
    qualname = py_func.__qualname__ + suffix
    code = py_func.__code__.replace(co_name=name)
    if hasattr(code, "co_qualname"):  # Python >= 3.11
        code = code.replace(co_qualname=qualname)
    globs = py_func.__globals__ if not bind else {**py_func.__globals__, **bind}
    func = types.FunctionType(code, globs, name, py_func.__defaults__, py_func.__closure__)
    func.__qualname__ = qualname
    func.__doc__ = py_func.__doc__
    func.__kwdefaults__ = py_func.__kwdefaults__
    return func


def serial_and_parallel(py_func, variant="", bind=None):
    """Compile one kernel body twice: a serial loop and a ``prange`` loop.

    ``py_func`` writes its batch loop with ``numba.prange``; compiled with
    :data:`JIT` (no ``parallel``) Numba treats ``prange`` as ``range``.  The two
    dispatchers compile renamed copies, ``<name>_serial`` and ``<name>_parallel``,
    so that each has its own disk-cache index (see the module docstring).

    A body that calls a scalar function by a global name (``_g(v)``) can be
    specialised: ``bind={"_g": f}`` compiles copies whose global ``_g`` is ``f``
    (Numba reads globals as compile-time constants, so the call is direct and
    LLVM inlines it), named ``<name>_<variant>_serial`` and
    ``<name>_<variant>_parallel``.  Give every binding its own ``variant``: the
    cache index is found by name and keyed by bytecode, not by globals.

    Parameters
    ----------
    py_func : function
        A module-level kernel body; it is not modified.
    variant : str, optional
        Appended to the names (required with ``bind``).
    bind : dict, optional
        Globals of the copies that replace the module's.

    Returns
    -------
    serial, parallel : numba dispatcher
        ``numba.njit(**JIT)`` and ``numba.njit(**JIT_PARALLEL)`` of the copies.

    Examples
    --------
    ``structjac/kernels/unary.py`` defines the body ``_apply(x, p1, p2, out)`` and then

    >>> from structjac.kernels.unary import _apply
    >>> serial, parallel = serial_and_parallel(_apply)
    >>> serial.__name__, parallel.__name__, parallel.targetoptions["parallel"]
    ('_apply_serial', '_apply_parallel', True)
    >>> "parallel" in serial.targetoptions
    False
    """
    if bind and not variant:
        raise ValueError("serial_and_parallel: a bind needs its own variant name")
    suffix = f"_{variant}" if variant else ""
    return (
        numba.njit(**JIT)(_renamed(py_func, suffix + "_serial", bind)),
        numba.njit(**JIT_PARALLEL)(_renamed(py_func, suffix + "_parallel", bind)),
    )


def append_doc_sections(func, *sections):
    """Append numpydoc sections (unindented text) to ``func.__doc__``; return ``func``.

    The wrappers share their Parameters and Returns sections: they are written
    once and appended at import (nothing is appended under ``python -OO``).

    Examples
    --------
    >>> def f(x):
    ...     "Twice x."
    >>> print(append_doc_sections(f, "Notes", "Exact.").__doc__)
    Twice x.
    <BLANKLINE>
    Notes
    <BLANKLINE>
    Exact.
    """
    if func.__doc__ is not None:
        func.__doc__ = "\n\n".join([inspect.cleandoc(func.__doc__), *sections])
    return func
