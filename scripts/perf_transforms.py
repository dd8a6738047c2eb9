"""Measure the function transforms against JAX, in one process (ratios, not absolutes).

Run:  OPENBLAS_NUM_THREADS=1 /work/venv/bin/python scripts/perf_transforms.py
      [--repeat 5] [--big 10000000] [--skip-big] [--only jacobian|grad|overhead] [--cpu]

Prints, for ``f(x) = tanh(x) * exp(-x) + log1p(x**2)``:

* ``jacobian(f)`` at n = 8192 against ``jax.jit(jax.jacrev(f))`` (time and result bytes;
  target >= 1e3x faster; the Diagonal holds n numbers, the dense matrix n^2);
* ``jacobian(f)`` at n = ``--big`` (10^7): the peak traced allocation (tracemalloc)
  as a multiple of the input's bytes (O(n): a small constant);
* ``grad(mean(f))`` at n = ``--big`` against ``jax.jit(jax.grad(mean(f)))`` (target:
  within 2x), float64 and float32, with the peak traced allocation; ``eager`` is the
  same transform with no element-wise call pending (whole arrays, then the tape);
* the tracing overhead of a 10-op function at n = 1000, ``jacobian`` and ``grad``
  (target < 200 us each), and the untraced function.

Every function (structjac's Numba kernels, JAX's XLA programs) is called once before
timing; structjac and JAX are timed in alternation and each keeps its best of
``--repeat`` (the machine is shared: compare the ratios; ``--cpu`` times the process's
CPU time instead of the wall clock). XLA, BLAS and Numba run on
one thread (``--threads`` changes Numba's).
"""

import argparse
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault(
    "XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
)

import sys
import time
import tracemalloc

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))

import numba
import numpy as np

import structjac as sj


def f(x):
    """The issue's function: three element-wise terms, seven numpy calls."""
    return np.tanh(x) * np.exp(-x) + np.log1p(x**2)


def loss(x):
    return np.mean(f(x))


def ten_ops(x):
    """A 10-op function: tanh, exp, -, *, **, log1p, +, sin, *, sum."""
    y = np.tanh(x) * np.exp(-x) + np.log1p(x**2)
    return np.sum(np.sin(y) * 0.5)


CLOCK = time.perf_counter


def _once(fn, number):
    t0 = CLOCK()
    for _ in range(number):
        fn()
    return (CLOCK() - t0) / number


def _calls_for(fn, floor=0.02):
    """How many back-to-back calls of ``fn`` fill ``floor`` seconds (as timeit's autorange):
    a call of a few hundred microseconds timed alone after a 300 ms JAX call that touched
    half a gigabyte measures the cold caches and page faults it left, not the call."""
    number = 1
    while _once(fn, number) * number < floor and number < 10_000:
        number *= 2
    return number


def best(fns, repeat, number=None):
    """Best time per call of each of ``fns``, timed in alternation (after one warm call);
    each round calls each function ``number`` times back to back (default: enough calls
    to fill 20 ms, per function)."""
    for fn in fns:
        fn()
    numbers = [number or _calls_for(fn) for fn in fns]
    times = [float("inf")] * len(fns)
    for _ in range(repeat):
        for i, fn in enumerate(fns):
            times[i] = min(times[i], _once(fn, numbers[i]))
    return times


def peak_bytes(fn):
    tracemalloc.start()
    try:
        fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak


def load_jax():
    try:
        import jax
    except ImportError:
        return None, None
    jax.config.update("jax_enable_x64", True)
    jax.config.update("jax_platforms", "cpu")
    jnp = jax.numpy

    def jf(x):
        return jnp.tanh(x) * jnp.exp(-x) + jnp.log1p(x**2)

    return jax, jf


def jacobian_rows(args, jax, jf, rng):
    print("== jacobian(f), n = 8192")
    x = rng.uniform(-2, 2, 8192)
    J = sj.jacobian(f)(x)
    fns = [lambda: sj.jacobian(f)(x)]
    if jax is not None:
        jac = jax.jit(jax.jacrev(jf))
        xj = jax.numpy.asarray(x)
        fns.append(lambda: jac(xj).block_until_ready())
    times = best(fns, args.repeat)
    print(f"structjac  {times[0] * 1e6:9.1f} us   {type(J).__name__}, {J.nbytes} B")
    if jax is not None:
        nbytes = fns[1]().nbytes
        print(f"jax        {times[1] * 1e6:9.1f} us   dense, {nbytes} B")
        print(
            f"ratio      {times[1] / times[0]:9.0f}x faster, {nbytes / J.nbytes:.0f}x less memory"
        )
    if not args.skip_big:
        n = args.big
        print(f"== jacobian(f), n = {n}: peak traced allocation")
        xb = rng.uniform(-2, 2, n)
        peak = peak_bytes(lambda: sj.jacobian(f)(xb))
        print(
            f"structjac  peak {peak / 1e6:9.1f} MB = {peak / xb.nbytes:.1f}x the input "
            f"(dense: {8.0 * n * n / 1e12:.0f} TB)"
        )


def _eager(fn):
    """``fn`` with no element-wise call pending (the whole-array path, for comparison)."""
    from structjac.transforms import _lazy

    def run():
        limit, _lazy.MIN_SIZE = _lazy.MIN_SIZE, 1 << 62
        try:
            return fn()
        finally:
            _lazy.MIN_SIZE = limit

    return run


def grad_rows(args, jax, jf, rng):
    n = args.big
    xb = rng.uniform(-2, 2, n)
    g = sj.grad(loss)
    if jax is not None:
        jg = jax.jit(jax.grad(lambda x: jax.numpy.mean(jf(x))))
    for dtype in (np.float64, np.float32):
        print(f"== grad(mean(f)), n = {n}, {np.dtype(dtype).name}")
        xg = xb.astype(dtype)
        out = g(xg)
        assert out.dtype == dtype
        fns = [lambda xg=xg: g(xg), _eager(lambda xg=xg: g(xg))]
        if jax is not None:
            xj = jax.numpy.asarray(xg)
            fns.append(lambda xj=xj: jg(xj).block_until_ready())
        times = best(fns, args.repeat)
        peak = peak_bytes(fns[0])
        peak_eager = peak_bytes(fns[1])
        print(
            f"structjac  {times[0] * 1e3:9.1f} ms   peak {peak / xg.nbytes:.1f}x the input "
            "(chunked forward-and-reverse pass)"
        )
        print(
            f"  eager    {times[1] * 1e3:9.1f} ms   peak {peak_eager / xg.nbytes:.1f}x the input "
            "(nothing pending: whole arrays, then the tape)"
        )
        if jax is not None:
            ref = np.asarray(fns[2]())
            err = np.max(np.abs(ref - out)) / np.max(np.abs(out))
            print(f"jax        {times[2] * 1e3:9.1f} ms   (max rel. difference {err:.1e})")
            print(
                f"ratio      {times[0] / times[2]:9.2f}x jax's time (target <= 2; eager "
                f"{times[1] / times[2]:.2f}x)"
            )


def overhead_rows(args, rng):
    print("== tracing overhead, 10-op function, n = 1000")
    xs = rng.uniform(-2, 2, 1000)
    jac, grad = sj.jacobian(ten_ops), sj.grad(ten_ops)
    t_j, t_g, t_np = best(
        [lambda: jac(xs), lambda: grad(xs), lambda: ten_ops(xs)], args.repeat, number=200
    )
    print(f"jacobian   {t_j * 1e6:9.1f} us (target < 200)")
    print(f"grad       {t_g * 1e6:9.1f} us (target < 200)")
    print(f"numpy f    {t_np * 1e6:9.1f} us (the function itself, untraced)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--big", type=int, default=10_000_000)
    parser.add_argument("--skip-big", action="store_true", help="skip the n = --big rows")
    parser.add_argument(
        "--only", choices=("jacobian", "grad", "overhead"), help="one group of rows"
    )
    parser.add_argument(
        "--cpu",
        action="store_true",
        help="time with the process's CPU clock (less noise on a shared machine)",
    )
    parser.add_argument("--threads", type=int, default=1, help="Numba threads (XLA: one)")
    args = parser.parse_args()
    global CLOCK
    if args.cpu:
        CLOCK = time.process_time
    numba.set_num_threads(args.threads)
    jax, jf = load_jax()
    rng = np.random.default_rng(0)
    if args.only in (None, "jacobian"):
        jacobian_rows(args, jax, jf, rng)
    if args.only in (None, "grad") and not args.skip_big:
        grad_rows(args, jax, jf, rng)
    if args.only in (None, "overhead"):
        overhead_rows(args, rng)


if __name__ == "__main__":
    main()
