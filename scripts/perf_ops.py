"""Measure the fused vjp kernels against the bandwidth floor and against NumPy.

Run:  OPENBLAS_NUM_THREADS=1 /work/venv/bin/python scripts/perf_ops.py [--n 20000000]

Prints, from one run: for the fused vjps of sigmoid (from z and from the output),
tanh (from x and from the output) and relu, for the sigmoid vjp written with
``np.exp`` (a libm call per element, the kernels before ``structjac.kernels._exp``),
and for the log-based kernels (softplus value, log value, the per-sample BCE losses;
softplus also written with libm's ``np.log1p``, the kernel before
``structjac.kernels._log``), the time against the bandwidth floor
``np.multiply(a, g, out=o)`` on the same arrays (target <= 1.25x) and against the
equivalent NumPy expression (target >= 2.5x faster); float32 against float64; the
serial/parallel crossover; and the first call after import with a warm disk cache
(fresh subprocess).  Every kernel is called once before timing; times are the best
of ``--repeat`` runs.
"""

import argparse
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))

import numba  # noqa: E402
import numpy as np  # noqa: E402

from structjac import kernels as K  # noqa: E402
from structjac.kernels import losses, unary  # noqa: E402
from structjac.kernels._config import JIT_PARALLEL  # noqa: E402


@numba.njit(**dict(JIT_PARALLEL, cache=False))
def _sigmoid_vjp_libm(x, g, out):
    """The sigmoid vjp with libm's exp (what the wrappers ran at this size before vexp)."""
    one = x.dtype.type(1)
    for i in numba.prange(x.size):
        e = np.exp(-abs(x[i]))
        d = one + e
        out[i] = g[i] * (e / (d * d))


@numba.njit(**dict(JIT_PARALLEL, cache=False))
def _softplus_libm(x, out):
    """softplus with libm's log1p (what the wrappers ran before ``structjac.kernels._log``)."""
    zero = x.dtype.type(0)
    for i in numba.prange(x.size):
        v = x[i]
        m = v if v > zero else zero
        out[i] = m + np.log1p(np.exp(-abs(v)))


_softplus_libm_serial = numba.njit(**dict(JIT_PARALLEL, cache=False, parallel=False))(
    _softplus_libm.py_func
)


def best(fn, repeat):
    fn()
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return min(ts)


def cases(x, g, o):
    one = x.dtype.type(1)
    a = K.sigmoid(x)
    t = K.tanh(x)

    def np_sigmoid_z():
        e = np.exp(-np.abs(x))
        return g * e / (one + e) ** 2

    def np_tanh_x():
        e = np.exp(-np.abs(x + x))
        return g * (4 * e) / (one + e) ** 2

    def np_softplus():
        return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))

    def np_bce_logits(y, z):
        return np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))

    def np_bce(y, h):
        return -(y * np.log(h) + (one - y) * np.log1p(-h))

    # per-sample losses: a 1-D batch (N samples of one entry, the lecture's case) and
    # rows of 64 entries; targets a = sigmoid(x), probabilities s = clip(sigmoid(x/2))
    eps = x.dtype.type(K.BCE_EPS[x.dtype])
    s = np.clip(K.sigmoid(x * x.dtype.type(0.5)), eps, one - eps)
    o1 = np.empty(x.size, x.dtype)
    a2, x2, s2 = a.reshape(-1, 1), x.reshape(-1, 1), s.reshape(-1, 1)
    a64, x64 = a[: x.size // 64 * 64].reshape(-1, 64), x[: x.size // 64 * 64].reshape(-1, 64)
    o64 = np.empty(a64.shape[0], x.dtype)
    return a, [
        ("sigmoid vjp (from z)", lambda: K.sigmoid_vjp(x, g, out=o), np_sigmoid_z),
        ("  same, libm np.exp", lambda: _sigmoid_vjp_libm(x, g, o), np_sigmoid_z),
        ("tanh vjp (from x)", lambda: K.tanh_vjp(x, g, out=o), np_tanh_x),
        (
            "sigmoid vjp (from a)",
            lambda: K.sigmoid_vjp_from_output(a, g, out=o),
            lambda: g * a * (one - a),
        ),
        (
            "tanh vjp (from a)",
            lambda: K.tanh_vjp_from_output(t, g, out=o),
            lambda: g * (one + t) * (one - t),
        ),
        ("relu vjp", lambda: K.relu_vjp(x, g, out=o), lambda: np.where(x >= 0, g, 0)),
        ("softplus (value)", lambda: K.softplus(x, out=o), np_softplus),
        (
            "  serial kernel",
            lambda: unary._softplus_serial(x, x.dtype.type(0), x.dtype.type(0), o),
            np_softplus,
        ),
        ("  same, libm, 2 threads", lambda: _softplus_libm(x, o), np_softplus),
        ("  same, libm, serial", lambda: _softplus_libm_serial(x, o), np_softplus),
        ("log (value)", lambda: K.log(a, out=o), lambda: np.log(a)),
        (
            "  serial kernel",
            lambda: unary._log_serial(a, a.dtype.type(0), a.dtype.type(0), o),
            lambda: np.log(a),
        ),
        (
            "bce_logits per-sample",
            lambda: K.bce_with_logits_per_sample(a, x, out=o1),
            lambda: np_bce_logits(a, x),
        ),
        (
            "  serial kernel",
            lambda: losses._bce_with_logits_per_sample_serial(a2, x2, x2.dtype.type(0), o1),
            lambda: np_bce_logits(a, x),
        ),
        (
            "  rows of 64",
            lambda: K.bce_with_logits_per_sample(a64, x64, out=o64),
            lambda: np_bce_logits(a64, x64).sum(axis=1),
        ),
        ("bce per-sample", lambda: K.bce_per_sample(a, s, out=o1), lambda: np_bce(a, s)),
        (
            "  serial kernel",
            lambda: losses._bce_per_sample_serial(a2, s2, eps, o1),
            lambda: np_bce(a, s),
        ),
    ]


def first_call_warm_cache():
    code = (
        "import time, numpy as np\n"
        "t0 = time.perf_counter()\n"
        "from structjac import kernels as K\n"
        "t1 = time.perf_counter()\n"
        "x = np.linspace(-1, 1, 1000); g = np.ones(1000)\n"
        "K.sigmoid_vjp(x, g); K.tanh_vjp_from_output(x, g); K.relu_vjp(x, g)\n"
        "t2 = time.perf_counter()\n"
        "print(t1 - t0, t2 - t1)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)  # warm
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout.split()
    return float(out[0]), float(out[1])


def crossover(repeat):
    rows = []
    for n in (1_000, 4_000, 16_000, 32_000, 64_000, 128_000, 256_000, 1_000_000):
        x = np.random.default_rng(0).normal(size=n)
        g = np.ones(n)
        o = np.empty(n)
        ts = best(lambda: unary._sigmoid_vjp_serial(x, g, 0.0, 0.0, o), repeat * 20)
        tp = best(lambda: unary._sigmoid_vjp_parallel(x, g, 0.0, 0.0, o), repeat * 20)
        ts2 = best(lambda: unary._relu_vjp_serial(x, g, 1.0, 0.0, o), repeat * 20)
        tp2 = best(lambda: unary._relu_vjp_parallel(x, g, 1.0, 0.0, o), repeat * 20)
        rows.append((n, ts, tp, ts2, tp2))
    return rows


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=float, default=2e7)
    p.add_argument("--repeat", type=int, default=5)
    args = p.parse_args()
    n = int(args.n)
    print(
        f"numba {numba.__version__}, numpy {np.__version__}, threads {numba.get_num_threads()}, "
        f"layer {numba.config.THREADING_LAYER}, OPENBLAS_NUM_THREADS="
        f"{os.environ.get('OPENBLAS_NUM_THREADS')}, N = {n:.3g}, best of {args.repeat}"
    )
    results = {}
    for dtype in (np.float64, np.float32):
        rng = np.random.default_rng(1)
        x = rng.normal(scale=3, size=n).astype(dtype)
        g = rng.normal(size=n).astype(dtype)
        o = np.empty(n, dtype)
        a, rows = cases(x, g, o)
        floor = best(lambda: np.multiply(a, g, out=o), args.repeat)
        print(
            f"\n{np.dtype(dtype).name}: floor np.multiply(a, g, out=o) = {floor * 1e3:7.2f} ms "
            f"({3 * x.nbytes / floor / 1e9:5.1f} GB/s)"
        )
        print(f"  {'kernel':24s} {'ms':>8s} {'/floor':>7s} {'numpy ms':>9s} {'numpy/fused':>11s}")
        for name, fused, npy in rows:
            tf = best(fused, args.repeat)
            tn = best(npy, max(2, args.repeat // 2))
            results[(name, np.dtype(dtype).name)] = tf
            print(f"  {name:24s} {tf * 1e3:8.2f} {tf / floor:7.2f} {tn * 1e3:9.2f} {tn / tf:11.2f}")
    print("\nfloat32 / float64 time:")
    for name in (
        "sigmoid vjp (from z)",
        "  same, libm np.exp",
        "tanh vjp (from x)",
        "sigmoid vjp (from a)",
        "tanh vjp (from a)",
        "relu vjp",
        "softplus (value)",
        "log (value)",
        "bce_logits per-sample",
        "bce per-sample",
    ):
        print(f"  {name:24s} {results[(name, 'float32')] / results[(name, 'float64')]:.2f}")
    print("\nserial vs parallel (float64, us): n, sigmoid serial, parallel, relu serial, parallel")
    for n_, ts, tp, ts2, tp2 in crossover(args.repeat):
        print(f"  {n_:>9d} {ts * 1e6:9.1f} {tp * 1e6:9.1f} {ts2 * 1e6:9.1f} {tp2 * 1e6:9.1f}")
    print(f"  PARALLEL_THRESHOLD = {K.get_parallel_threshold()}")
    imp, first = first_call_warm_cache()
    print(
        f"\nwarm cache, fresh process: import structjac.kernels {imp * 1e3:.0f} ms; "
        f"first calls (3 kernels) after import {first * 1e3:.0f} ms"
    )


if __name__ == "__main__":
    main()
