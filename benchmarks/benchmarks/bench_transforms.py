"""The function transforms on the user's own numpy code, against JAX in the same run.

The function is the issue's ``f(x) = tanh(x) * exp(-x) + log1p(x**2)``.

``Jacobian.time_op`` / ``Jacobian.peakmem_op``
    ``structured``: ``structjac.jacobian(f)(x)``, a Diagonal of ``n`` numbers;
    ``jax``: ``jax.jit(jax.jacrev(f))(x)``, the dense ``n x n`` matrix (targets at
    n = 8192: >= 1e3x the time). The result is exactly ``n`` times smaller
    (``track_result_bytes``: ``n`` numbers against ``n^2``), 8192x at n = 8192; a ratio
    of 1e4 needs n >= 1e4 (a non-constant diagonal cannot be stored in fewer than n).
``JacobianLarge.peakmem_op``
    ``structjac.jacobian(f)`` at n = 10^7: completes in O(n) memory (a dense Jacobian
    would be 800 TB); ``track_peak_per_input`` is the peak traced allocation
    (tracemalloc) as a multiple of the input's bytes.
``GradMean.time_op`` / ``GradMean.peakmem_op`` (float64), ``GradMean32`` (float32)
    ``structjac.grad(mean(f))`` against ``jax.jit(jax.grad(mean(f)))`` (target: within
    2x at n = 10^7). ``structured`` is the default path: the element-wise calls are
    pending and the mean runs one chunked forward-and-reverse pass; ``eager`` is the same
    transform with nothing pending (every call evaluated on whole arrays, the tape walked
    backwards), the path before the chunked pass.
``TracingOverhead.time_op``
    a 10-op function at n = 1000 under ``jacobian`` and ``grad`` (target < 200 us),
    ``numpy``: the untraced function, the floor.

JAX rows are skipped (``NotImplementedError`` in ``setup``) when JAX is not installed.
XLA runs on one thread, as BLAS and Numba do (``common.limit_threads``).
"""

from __future__ import annotations

import os
import tracemalloc

import numpy as np

from .common import StructuredVsDense, optional_import, rng, structjac_part


def f(x):
    return np.tanh(x) * np.exp(-x) + np.log1p(x**2)


def mean_f(x):
    return np.mean(f(x))


def ten_ops(x):
    """tanh, exp, negative, multiply, power, log1p, add, sin, multiply, sum."""
    y = np.tanh(x) * np.exp(-x) + np.log1p(x**2)
    return np.sum(np.sin(y) * 0.5)


def _jax():
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_cpu_multi_thread_eigen" not in flags:
        os.environ["XLA_FLAGS"] = (
            flags + " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
        ).strip()
    jax = optional_import("jax")
    jax.config.update("jax_enable_x64", True)
    return jax, optional_import("jax.numpy")


def _jax_f(jnp):
    def jf(x):
        return jnp.tanh(x) * jnp.exp(-x) + jnp.log1p(x**2)

    return jf


def _input(n, dtype=np.float64):
    return rng(0).uniform(-2.0, 2.0, n).astype(dtype)


class _Transform(StructuredVsDense):
    forms = ["structured", "jax"]
    cheap_forms = ("structured", "jax")

    def peakmem_op(self, n, form):
        self.fn()


class Jacobian(_Transform):
    sizes = (1024, 8192)

    def build(self, n, form):
        x = _input(n)
        if form == "structured":
            sj = structjac_part("structjac")
            jac = sj.jacobian(f)
            return lambda: jac(x)
        jax, jnp = _jax()
        jac = jax.jit(jax.jacrev(_jax_f(jnp)))
        xj = jnp.asarray(x)
        return lambda: jac(xj).block_until_ready()

    def track_result_bytes(self, n, form):
        """Bytes of the Jacobian returned: the Diagonal's ``nbytes``, or the dense matrix's."""
        return int(self.fn().nbytes)

    track_result_bytes.unit = "bytes"


class JacobianLarge(_Transform):
    sizes = (65536, 10_000_000)
    forms = ["structured"]
    cheap_forms = ("structured",)

    def build(self, n, form):
        sj = structjac_part("structjac")
        x = _input(n)
        jac = sj.jacobian(f)
        self.x = x
        return lambda: jac(x)

    def track_peak_per_input(self, n, form):
        """The peak traced allocation of one call over the input's bytes (O(n): a constant)."""
        tracemalloc.start()
        try:
            self.fn()
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        return peak / self.x.nbytes

    track_peak_per_input.unit = "x input"


class GradMean(_Transform):
    sizes = (65536, 10_000_000)
    forms = ["structured", "eager", "jax"]
    cheap_forms = ("structured", "eager", "jax")
    dtype = np.float64

    def build(self, n, form):
        x = _input(n, self.dtype)
        if form in ("structured", "eager"):
            sj = structjac_part("structjac")
            g = sj.grad(mean_f)
            if form == "structured":
                return lambda: g(x)
            from structjac.transforms import _lazy

            def eager():
                limit, _lazy.MIN_SIZE = _lazy.MIN_SIZE, 1 << 62
                try:
                    return g(x)
                finally:
                    _lazy.MIN_SIZE = limit

            return eager
        jax, jnp = _jax()
        jf = _jax_f(jnp)
        g = jax.jit(jax.grad(lambda x: jnp.mean(jf(x))))
        xj = jnp.asarray(x)
        return lambda: g(xj).block_until_ready()


class GradMean32(GradMean):
    dtype = np.float32


class TracingOverhead(StructuredVsDense):
    sizes = (1000,)
    forms = ["jacobian", "grad", "numpy"]
    cheap_forms = tuple(forms)

    def build(self, n, form):
        x = _input(n)
        if form == "numpy":
            return lambda: ten_ops(x)
        sj = structjac_part("structjac")
        transform = sj.jacobian(ten_ops) if form == "jacobian" else sj.grad(ten_ops)
        return lambda: transform(x)
