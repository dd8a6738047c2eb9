"""The one base class of the suite, and the helpers every benchmark module shares.

A benchmark family subclasses :class:`StructuredVsDense` and only says how to build its
operands: :meth:`StructuredVsDense.build` returns, for one size ``n`` and one ``form``,
a zero-argument callable that computes the thing being timed.  The base class turns the
family's ``sizes`` and ``forms`` into asv ``params`` (``param_names = ["n", "form"]``)
so that ``asv run`` prints the structured form and its dense twin side by side, skips
dense cases that would need more than :data:`MAX_DENSE_BYTES` (or more than
:data:`MAX_DENSE_FLOPS`) by raising ``NotImplementedError`` in ``setup``, and calls the
callable once in ``setup`` so that Numba compilation never leaks into a timing.

:class:`MatmulVsDense` is the special case of the rule table: a subclass builds two
structures ``A`` and ``B``; the dense twin is ``A.to_dense()`` and ``B.to_dense()``, and
the timed operation is ``A @ B`` in both forms.

Environment
-----------
``STRUCTJAC_BENCH_QUICK=1``
    Keep only the smallest sizes of every family (the smoke run of ``.ci/run``).
``OPENBLAS_NUM_THREADS=1``
    Export it for benchmark runs (README); ``setup`` also limits BLAS to one thread
    through ``threadpoolctl`` when that is installed, and Numba to one thread
    (``numba.set_num_threads``; ``STRUCTJAC_BENCH_THREADS`` changes that).  Nothing is
    changed at import.

Missing optional dependencies (structjac parts that have not landed, PyTorch, JAX) skip
the benchmark with ``NotImplementedError`` in ``setup``; they never fail it.
"""

from __future__ import annotations

import abc
import importlib
import os

import numpy as np

#: Dense twins that would hold more than this many bytes are skipped, not run.
MAX_DENSE_BYTES = 2e9
#: Dense twins that would take more than this many floating-point operations are skipped
#: (about 1 s on one core); the structured form still runs at that size.
MAX_DENSE_FLOPS = 4e10

#: ``STRUCTJAC_BENCH_QUICK=1`` limits every family to its smallest sizes.
QUICK = os.environ.get("STRUCTJAC_BENCH_QUICK", "").strip() not in ("", "0", "false", "no")

FORMS = ["structured", "dense"]


def pick_sizes(full, quick_count=2):
    """The sizes of a family: all of ``full``, or its first ``quick_count`` in quick mode."""
    full = list(full)
    return full[:quick_count] if QUICK else full


def optional_import(name):
    """Import ``name`` or raise ``NotImplementedError`` (asv: skipped, not failed)."""
    try:
        return importlib.import_module(name)
    except Exception as exc:  # ImportError, or a broken optional install
        raise NotImplementedError(f"{name} is not available: {exc}") from None


def structjac_part(name):
    """Import a part of structjac (``"structjac.nn"``), skipping when it has not landed."""
    return optional_import(name)


_BLAS_LIMIT = None

#: Threads for every benchmark (BLAS, Numba, PyTorch, XLA): one, so that structured and
#: dense forms compare algorithms, not thread pools. ``STRUCTJAC_BENCH_THREADS`` overrides
#: the Numba part; ``bench_threads.py`` measures the parallel kernels on purpose.
NUM_THREADS = int(os.environ.get("STRUCTJAC_BENCH_THREADS", "1"))


def limit_blas_threads():
    """Limit BLAS to one thread with threadpoolctl when it is installed (idempotent).

    Called from ``setup`` only, in the process that runs the benchmark, so importing the
    benchmark modules changes no global state. Without threadpoolctl the limit comes
    from ``OPENBLAS_NUM_THREADS=1`` in the environment (README).
    """
    global _BLAS_LIMIT
    if _BLAS_LIMIT is not None:
        return
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        _BLAS_LIMIT = False
        return
    _BLAS_LIMIT = threadpool_limits(limits=1, user_api="blas")


def limit_threads(numba_threads=None):
    """One BLAS thread and ``numba_threads`` (default :data:`NUM_THREADS`) Numba threads."""
    limit_blas_threads()
    import numba

    n = NUM_THREADS if numba_threads is None else numba_threads
    numba.set_num_threads(max(1, min(n, numba.config.NUMBA_NUM_THREADS)))


def rng(seed=0):
    return np.random.default_rng(seed)


def dense_bytes(*shapes, itemsize=8):
    """Bytes of dense float arrays of the given shapes."""
    return int(sum(int(np.prod(s, dtype=np.int64)) for s in shapes) * itemsize)


class StructuredVsDense(abc.ABC):
    """Base class: one operation timed in its structured form and in its dense twin.

        Subclasses set ``sizes`` (the values of ``n``) and implement :meth:`build` (the base
    classes are abstract, so asv does not collect them); they may
        set ``forms`` (default ``["structured", "dense"]``; the first one is the structured
        form, the others are baselines) and override :meth:`dense_cost` so that oversized
        dense cases are skipped before anything is allocated.
    """

    sizes = (256, 1024)
    forms = FORMS
    param_names = ["n", "form"]
    params = [list(sizes), list(forms)]
    #: Forms that are never skipped for size (the structured one and O(n) baselines).
    cheap_forms = ("structured",)
    # asv timing attributes: a few samples are enough for differences of 10x-1000x, and
    # they keep the full run inside 30 minutes on two cores.
    rounds = 1
    repeat = (1, 5, 3.0)
    warmup_time = 0.05
    timeout = 180

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "params" not in cls.__dict__:
            cls.params = [pick_sizes(cls.sizes, getattr(cls, "quick_count", 2)), list(cls.forms)]

    # -- what a subclass provides ------------------------------------------------------
    @abc.abstractmethod
    def build(self, n, form):
        """Return a zero-argument callable computing the operation for ``n`` in ``form``."""
        raise NotImplementedError

    def dense_cost(self, n, form):
        """Return ``(bytes, flops)`` the dense ``form`` would need at size ``n``."""
        return 0, 0

    def too_big(self, n, form):
        """Why ``form`` is not run at size ``n`` (a message), or None when it runs."""
        if form in self.cheap_forms:
            return None
        nbytes, flops = self.dense_cost(n, form)
        if nbytes > MAX_DENSE_BYTES:
            return f"{form} n={n} needs {nbytes / 1e9:.1f} GB"
        if flops > MAX_DENSE_FLOPS:
            return f"{form} n={n} needs {flops:.2e} flops"
        return None

    # -- what asv calls ----------------------------------------------------------------
    def setup(self, n, form):
        limit_threads()
        reason = self.too_big(n, form)
        if reason is not None:
            raise NotImplementedError(reason)
        self.fn = self.build(n, form)
        self.fn()  # compile the Numba kernels, fill caches: never inside a timing

    def time_op(self, n, form):
        self.fn()


class RuleVsDense(StructuredVsDense):
    """A rule of the table: ``A @ B`` (or ``A + B``) on structures against the same
    operation on their dense twins ``A.to_dense()`` and ``B.to_dense()``.

    Subclasses implement :meth:`operands` returning the two structures (the right one may
    be an ndarray, e.g. a Kronecker product applied to a vector) and set ``operation``.
    """

    sizes = (256, 1024, 2048, 8192, 65536)
    operation = "matmul"

    @abc.abstractmethod
    def operands(self, n):
        """Return the operands ``(A, B)`` at size ``n``."""

    def dense_cost(self, n, form):
        A, B = self.operands(n)
        m, k = A.shape
        if self.operation == "add":
            return dense_bytes(A.shape, B.shape, A.shape), float(m * k)
        p = B.shape[1] if np.ndim(B) == 2 else 1
        return dense_bytes(A.shape, np.shape(B), (m, p)), 2.0 * m * k * p

    def build(self, n, form):
        A, B = self.operands(n)
        if form == "dense":
            A = A.to_dense()
            B = B.to_dense() if hasattr(B, "to_dense") else np.asarray(B)
        if self.operation == "add":
            return lambda: A + B
        return lambda: A @ B

    def track_stored_bytes(self, n, form):
        """Bytes the result holds: the structure's ``nbytes``, or the dense array's."""
        return int(self.fn().nbytes)

    track_stored_bytes.unit = "bytes"
