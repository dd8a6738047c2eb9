"""Measure the function transforms against JAX, in one process (ratios, not absolutes).

Run:  OPENBLAS_NUM_THREADS=1 PYTHONPATH=. /work/venv/bin/python scripts/perf_transforms.py
      [--repeat 5] [--big 10000000] [--skip-big]

Prints, for ``f(x) = tanh(x) * exp(-x) + log1p(x**2)``:

* ``jacobian(f)`` at n = 8192 against ``jax.jit(jax.jacrev(f))`` (time and result bytes;
  targets >= 1e3x faster, >= 1e4x less memory);
* ``jacobian(f)`` at n = ``--big`` (10^7): the peak traced allocation (tracemalloc)
  as a multiple of the input's bytes (O(n): a small constant);
* ``grad(mean(f))`` at n = ``--big`` against ``jax.jit(jax.grad(mean(f)))`` (target:
  within 2x), float64 and float32;
* the tracing overhead of a 10-op function at n = 1000, ``jacobian`` and ``grad``
  (target < 200 us each).

Every function (structjac's Numba kernels, JAX's XLA programs) is called once before
timing; times are the best of ``--repeat`` runs. XLA, BLAS and Numba run on one thread
(``--threads`` changes Numba's).
"""

import argparse
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")

import sys  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))

import numba  # noqa: E402
import numpy as np  # noqa: E402

import structjac as sj  # noqa: E402


def f(x):
    """The issue's function: three element-wise terms, seven numpy calls."""
    return np.tanh(x) * np.exp(-x) + np.log1p(x ** 2)


def loss(x):
    return np.mean(f(x))


def ten_ops(x):
    """A 10-op function: tanh, exp, -, *, **, log1p, +, sin, *, sum."""
    y = np.tanh(x) * np.exp(-x) + np.log1p(x ** 2)
    return np.sum(np.sin(y) * 0.5)


def best(fn, repeat, number=1):
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        times.append((time.perf_counter() - t0) / number)
    return min(times)


def peak_bytes(fn):
    tracemalloc.start()
    tracemalloc.reset_peak()
    fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak


def load_jax():
    try:
        import jax
    except ImportError:
        return None
    jax.config.update("jax_enable_x64", True)
    jax.config.update("jax_platforms", "cpu")
    return jax


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--big", type=int, default=10_000_000)
    parser.add_argument("--skip-big", action="store_true", help="skip the n = --big rows")
    parser.add_argument("--threads", type=int, default=1, help="Numba threads (XLA: one)")
    args = parser.parse_args()
    numba.set_num_threads(args.threads)
    jax = load_jax()
    if jax is not None:
        import jax.numpy as jnp

        def jf(x):
            return jnp.tanh(x) * jnp.exp(-x) + jnp.log1p(x ** 2)

        def jloss(x):
            return jnp.mean(jf(x))
    rng = np.random.default_rng(0)

    print("== jacobian(f), n = 8192")
    x = rng.uniform(-2, 2, 8192)
    J = sj.jacobian(f)(x)
    t_sj = best(lambda: sj.jacobian(f)(x), args.repeat, number=20)
    print(f"structjac  {t_sj * 1e6:9.1f} us   {type(J).__name__}, {J.nbytes} B")
    if jax is not None:
        jac = jax.jit(jax.jacrev(jf))
        xj = jnp.asarray(x)
        run = lambda: jac(xj).block_until_ready()  # noqa: E731
        t_jax = best(run, args.repeat)
        nbytes = run().nbytes
        print(f"jax        {t_jax * 1e6:9.1f} us   dense, {nbytes} B")
        print(f"ratio      {t_jax / t_sj:9.0f}x faster, {nbytes / J.nbytes:.0f}x less memory")

    if not args.skip_big:
        n = args.big
        print(f"== jacobian(f), n = {n}: peak traced allocation")
        xb = rng.uniform(-2, 2, n)
        peak = peak_bytes(lambda: sj.jacobian(f)(xb))
        print(f"structjac  peak {peak / 1e6:9.1f} MB = {peak / xb.nbytes:.1f}x the input "
              f"(dense: {8.0 * n * n / 1e12:.0f} TB)")

        for dtype in (np.float64, np.float32):
            print(f"== grad(mean(f)), n = {n}, {np.dtype(dtype).name}")
            xg = xb.astype(dtype)
            g = sj.grad(loss)
            out = g(xg)
            assert out.dtype == dtype
            t_sj = best(lambda: g(xg), args.repeat)
            peak = peak_bytes(lambda: g(xg))
            print(f"structjac  {t_sj * 1e3:9.1f} ms   peak {peak / xg.nbytes:.1f}x the input")
            if jax is not None:
                jg = jax.jit(jax.grad(jloss))
                xj = jnp.asarray(xg)
                t_jax = best(lambda: jg(xj).block_until_ready(), args.repeat)
                err = np.max(np.abs(np.asarray(jg(xj)) - out)) / np.max(np.abs(out))
                print(f"jax        {t_jax * 1e3:9.1f} ms   (max rel. difference {err:.1e})")
                print(f"ratio      {t_sj / t_jax:9.2f}x jax's time (target <= 2)")

    print("== tracing overhead, 10-op function, n = 1000")
    xs = rng.uniform(-2, 2, 1000)
    t_j = best(lambda: sj.jacobian(ten_ops)(xs), args.repeat, number=200)
    t_g = best(lambda: sj.grad(ten_ops)(xs), args.repeat, number=200)
    t_np = best(lambda: ten_ops(xs), args.repeat, number=200)
    print(f"jacobian   {t_j * 1e6:9.1f} us (target < 200)")
    print(f"grad       {t_g * 1e6:9.1f} us (target < 200)")
    print(f"numpy f    {t_np * 1e6:9.1f} us (the function itself, untraced)")


if __name__ == "__main__":
    main()
