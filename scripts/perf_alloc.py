"""The fused vjp with an allocated output against ``np.multiply(a, g)`` allocating.

Run from the repository root::

    OPENBLAS_NUM_THREADS=1 PYTHONPATH=. python scripts/perf_alloc.py [--sizes 1e5,1e6,1e7] [-k 7]

Every variant is timed interleaved with the others (round robin, ``k`` rounds, best
round kept), so that the ratios printed come from the same run and the same load.
Ratios are to ``np.multiply(a, g)`` allocating its output ("mul_alloc").

Variants
--------
mul_alloc        ``np.multiply(a, g)``: numpy allocates the result (the reference)
mul_out          ``np.multiply(a, g, out=buf)``: the bandwidth floor, memory already mapped
op_alloc         ``sj.ops.<op>.vjp(x, g)``: the public op, allocating
op_out           ``sj.ops.<op>.vjp(x, g, out=buf)``
kern_alloc       ``kernels.<op>_vjp(x, g)``: the kernel wrapper, allocating
mul_aligned      ``np.multiply(a, g, out=_alloc.empty(...))``: numpy into the kernels' allocation
serial_alloc     the serial kernel into a fresh ``_alloc.empty`` (what the wrappers do)
serial_empty     the serial kernel into a fresh ``np.empty`` (no wrapper)
serial_out       the serial kernel into ``buf``
parallel_alloc   the parallel (prange) kernel into a fresh ``_alloc.empty``
parallel_out     the parallel kernel into ``buf``
nrt_alloc        a Numba kernel that allocates its output itself (NRT, not numpy)

The page faults of each variant (``resource.getrusage`` minor faults per call) are
printed beside the times: a fresh large numpy array is mmap'ed and every page faults
on its first write (4 KiB pages, or 2 MiB ones where numpy's ``madvise(MADV_HUGEPAGE)``
is honoured by the kernel's transparent huge pages).
"""

from __future__ import annotations

import argparse
import os
import resource
import time

import numba
import numpy as np

import structjac as sj
from structjac.kernels import _alloc, unary


@numba.njit(cache=False, nogil=True, error_model="numpy")
def _nrt_times(a, g):
    out = np.empty_like(a)
    for i in range(a.size):
        out[i] = a[i] * g[i]
    return out


def _variants(op_name, x, g, a, buf):
    op = getattr(sj.ops, op_name)
    kern = unary.KERNELS[op_name]["vjp"]
    wrapper = getattr(unary, f"{op_name}_vjp")
    ser, par = kern.serial, kern.parallel
    zero = x.dtype.type(0)
    return {
        "mul_alloc": lambda: np.multiply(a, g),
        "mul_out": lambda: np.multiply(a, g, out=buf),
        "mul_aligned": lambda: np.multiply(a, g, out=_alloc.empty(x.shape, x.dtype)),
        "op_alloc": lambda: op.vjp(x, g),
        "op_out": lambda: op.vjp(x, g, out=buf),
        "kern_alloc": lambda: wrapper(x, g),
        "serial_alloc": lambda: ser(x, g, zero, zero, _alloc.empty(x.shape, x.dtype)),
        "serial_empty": lambda: ser(x, g, zero, zero, np.empty(x.shape, x.dtype)),
        "serial_out": lambda: ser(x, g, zero, zero, buf),
        "parallel_alloc": lambda: par(x, g, zero, zero, _alloc.empty(x.shape, x.dtype)),
        "parallel_out": lambda: par(x, g, zero, zero, buf),
        "nrt_alloc": lambda: _nrt_times(a, g),
    }


_CLOCK = time.perf_counter


def _time(f, number):
    r0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    t0 = _CLOCK()
    for _ in range(number):
        f()
    t = (_CLOCK() - t0) / number
    faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - r0) / number
    return t, faults


def measure(op_name, dtype, n, k):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(n).astype(dtype)
    g = rng.standard_normal(n).astype(dtype)
    a = (x * 0.25).astype(dtype)
    buf = np.empty(n, dtype)
    variants = _variants(op_name, x, g, a, buf)
    for f in variants.values():  # compile / warm
        f()
    number = max(1, int(2e7 // n))
    best = {name: (float("inf"), 0.0) for name in variants}
    for _ in range(k):
        for name, f in variants.items():
            t, faults = _time(f, number)
            if t < best[name][0]:
                best[name] = (t, faults)
    return best


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="1e5,1e6,1e7")
    p.add_argument("--ops", default="sigmoid,relu")
    p.add_argument("--dtypes", default="float32,float64")
    p.add_argument("-k", type=int, default=7)
    p.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="cpu: the thread's CPU time (user + system, page faults included; "
        "the time spent waiting for a CPU on a loaded machine left out; the calling "
        "thread only, so the parallel variants are undercounted)",
    )
    args = p.parse_args()
    global _CLOCK
    _CLOCK = time.thread_time if args.clock == "cpu" else time.perf_counter
    with open("/proc/loadavg") as f:
        print(
            "clock:",
            args.clock,
            "| loadavg:",
            f.read().strip(),
            "| numba threads:",
            numba.get_num_threads(),
            "| OPENBLAS_NUM_THREADS:",
            os.environ.get("OPENBLAS_NUM_THREADS"),
        )
    for op_name in args.ops.split(","):
        for dtype in args.dtypes.split(","):
            for n in (int(float(s)) for s in args.sizes.split(",")):
                best = measure(op_name, np.dtype(dtype), n, args.k)
                ref = best["mul_alloc"][0]
                print(f"\n{op_name} {dtype} n={n:.0e}  mul_alloc {ref * 1e3:.3f} ms")
                for name, (t, faults) in best.items():
                    print(
                        f"  {name:15s} {t * 1e3:8.3f} ms  {t / ref:5.2f}x  {faults:8.1f} faults/call"
                    )
    with open("/proc/loadavg") as f:
        print("\nloadavg:", f.read().strip())


if __name__ == "__main__":
    main()
