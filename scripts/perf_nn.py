"""Time value_and_grad of a 32-64-64-1 MLP (sigmoid, tanh, sigmoid; BCE; float32) against
JAX (jit) and PyTorch (eager autograd) in one run, and measure peak memory.

    python scripts/perf_nn.py [--n 262144] [--repeat 7] [--threads T]

Reports the median and min of ``--repeat`` timed calls after warm-up, the ratios from the
same run (structjac also with ``parallel_passes=True``, the element-wise passes on Numba's
threads), and the memory of one structjac call: the workspace it keeps between calls
(``MLP.workspace``: Z1, Z2, Z3 and the cotangents G0, G1, G2) plus the peak of what it
allocates during the call (tracemalloc: gradients, chunk sums, small temporaries), against
the bytes of the activations the backward pass must keep (A1, A2, A3).

``--threads 1`` also pins the process to one CPU (``os.sched_setaffinity``) before jax and
torch are imported: XLA's thread pool does not follow the thread settings and would use
every core.  Set ``OPENBLAS_NUM_THREADS=1`` too (OpenBLAS starts its threads at import).
JAX and PyTorch are optional; they are skipped when not installed.
"""

from __future__ import annotations

import argparse
import os
import time
import tracemalloc

import numpy as np


def _timeit(f, repeat):
    f()
    f()
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts)), float(np.min(ts))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=262_144)
    p.add_argument("--repeat", type=int, default=7)
    p.add_argument("--threads", type=int, default=0, help="numba and torch threads (0: default)")
    args = p.parse_args()

    from structjac.nn import MLP
    from structjac import kernels

    if args.threads:
        kernels.set_num_threads(args.threads)
        if args.threads == 1 and hasattr(os, "sched_setaffinity"):
            # one core for all three: XLA's thread pool ignores the thread settings (and
            # XLA_FLAGS=--xla_cpu_multi_thread_eigen=false did not limit it); threads made
            # from here on (Numba's, XLA's, torch's) inherit the calling thread's affinity
            os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    N = args.n
    rng = np.random.default_rng(0)
    net = MLP([32, 64, 64, 1], ["sigmoid", "tanh", "sigmoid"], loss="bce", dtype=np.float32)
    params = net.init(rng)
    X = rng.standard_normal((N, 32)).astype(np.float32)
    y = (rng.random(N) > 0.5).astype(np.float32)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(
        f"N = {N:,}, float32, 32-64-64-1 sigmoid/tanh/sigmoid, BCE (mean); "
        f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}, "
        f"numba threads {kernels.get_num_threads()}, cpus usable {cpus} of {os.cpu_count()}"
    )

    results = {}
    results["structjac"] = _timeit(lambda: net.value_and_grad(params, X, y), args.repeat)
    results["  par. passes"] = _timeit(
        lambda: net.value_and_grad(params, X, y, parallel_passes=True), args.repeat
    )

    try:
        import jax
        import jax.numpy as jnp

        def loss_fn(P, X, y):
            h = X
            for (W, b), f in zip(P, (jax.nn.sigmoid, jnp.tanh, jax.nn.sigmoid)):
                h = f(h @ W.T + b)
            h = jnp.clip(h[:, 0], 1e-7, 1 - 1e-7)
            return -jnp.mean(y * jnp.log(h) + (1 - y) * jnp.log1p(-h))

        vg = jax.jit(jax.value_and_grad(loss_fn))
        jP = [(jnp.asarray(W), jnp.asarray(b)) for W, b in params]
        jX, jy = jnp.asarray(X), jnp.asarray(y)
        results["jax.jit"] = _timeit(lambda: jax.block_until_ready(vg(jP, jX, jy)), args.repeat)
    except ImportError:
        print("jax not installed: skipped")

    try:
        import torch

        if args.threads:
            torch.set_num_threads(args.threads)
        tP = [
            (torch.tensor(W, requires_grad=True), torch.tensor(b, requires_grad=True))
            for W, b in params
        ]
        tX, ty = torch.from_numpy(X), torch.from_numpy(y)

        def torch_step():
            for W, b in tP:
                W.grad = None
                b.grad = None
            h = tX
            for (W, b), f in zip(tP, (torch.sigmoid, torch.tanh, torch.sigmoid)):
                h = f(h @ W.T + b)
            L = torch.nn.functional.binary_cross_entropy(h[:, 0], ty)
            L.backward()
            return L

        results["torch eager"] = _timeit(torch_step, args.repeat)
    except ImportError:
        print("torch not installed: skipped")

    base = results["structjac"][0]
    print(f"{'':<14} {'median':>10} {'min':>10} {'median / structjac':>20}")
    for name, (med, mn) in results.items():
        print(f"{name:<14} {med * 1e3:>8.1f} ms {mn * 1e3:>8.1f} ms {med / base:>19.2f}x")

    # memory of one structjac call vs the activations it keeps: the workspace (allocated
    # by the first call and kept) + the peak of what the call itself allocates
    net.workspace.clear()
    net.value_and_grad(params, X, y)  # fills the workspace
    tracemalloc.start()
    tracemalloc.reset_peak()
    net.value_and_grad(params, X, y)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    held = net.workspace.nbytes
    acts = N * (64 + 64 + 1) * 4
    print(
        f"memory: workspace {held / 1e6:.1f} MB + traced peak during the call "
        f"{peak / 1e6:.1f} MB = {(held + peak) / 1e6:.1f} MB; activations kept "
        f"{acts / 1e6:.1f} MB; ratio {(held + peak) / acts:.2f}x"
    )


if __name__ == "__main__":
    main()
