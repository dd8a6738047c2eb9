r"""Overhead of each ``extras=`` quantity over structjac's plain ``value_and_grad``, and of
BackPACK's extension over its plain backward, in the same run (ratios), plus the absolute
times.  One thread everywhere (set OPENBLAS_NUM_THREADS=1 before running).

    OPENBLAS_NUM_THREADS=1 PYTHONPATH=. python scripts/perf_curvature.py [--sizes 1024,4096]

Networks: 784-256-128-10 ReLU with cross-entropy (mean), and the lecture's 32-64-64-1
sigmoid/tanh/sigmoid with BCE, float32.

The ``floor`` column is the ratio the matrix products alone impose: 1 + (multiply-adds of
the extra's GEMMs) / (multiply-adds of the plain pass's GEMMs), both at the same BLAS
speed, element-wise passes counted as free.  With layers :math:`(d_l, m_l)`,
:math:`\Sigma = \sum_l m_l d_l` and :math:`\Sigma' = \sum_{l \ge 2} m_l d_l`, the plain pass
costs :math:`N(2\Sigma + \Sigma')` (forward, weight gradients, cotangents down);
``sum_grad_squared``, ``variance`` and ``clipped_grad`` add :math:`N\Sigma` (one GEMM per
layer of the weight gradient's size), the GGN diagonals :math:`N\Sigma + K N\Sigma'`
(:math:`K` backpropagated columns: ``mc_samples`` or, exact, :math:`C - 1` for
cross-entropy, :math:`m_L` otherwise), the Kronecker factors
:math:`N\sum_l d_l^2/2 + K N \sum_l m_l^2 / 2 + K N \Sigma'` (symmetric products), a
``ggn`` matvec :math:`N(2\Sigma + 2\Sigma')` (its forward pass is done once, beforehand)
over :math:`N(2\Sigma + \Sigma')`.  Since :math:`\Sigma' < \Sigma`, the first-order floor is
at least 4/3 for every MLP.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from structjac import nn

NETS = {
    "784-256-128-10 relu/ce": ([784, 256, 128, 10], ["relu", "relu", None], "cross_entropy"),
    "32-64-64-1 sig/tanh/sig bce": ([32, 64, 64, 1], ["sigmoid", "tanh", "sigmoid"], "bce"),
}
# structjac extra -> BackPACK extension (None: BackPACK has no counterpart)
EXTRAS = {
    "grad_norms": "BatchL2Grad",
    "sum_grad_squared": "SumGradSquared",
    "variance": "Variance",
    "clipped_grad": None,
    "diag_ggn_mc": "DiagGGNMC",
    "kfac": "KFAC",
    "kflr": "KFLR",
    "diag_ggn": "DiagGGNExact",
    "diag_hessian": "DiagHessian",
}


def floor(sizes, loss, quantity, mc_samples=1):
    """The ratio the GEMMs alone impose (module docstring), or nan when not a GEMM bound."""
    pairs = list(zip(sizes[:-1], sizes[1:]))  # (d_l, m_l)
    total = sum(d * m for d, m in pairs)
    below = sum(d * m for d, m in pairs[1:])
    plain = 2 * total + below
    K = sizes[-1] - 1 if loss == "cross_entropy" else sizes[-1]
    if quantity.endswith("_mc") or quantity == "kfac":
        K = mc_samples
    extra = {
        "grad_norms": 0,
        "sum_grad_squared": total,
        "variance": total,
        "clipped_grad": total,
        "diag_ggn": total + K * below,
        "diag_ggn_mc": total + K * below,
        "diag_hessian": total + K * below,
        "kfac": sum(d * d for d, _ in pairs) / 2 + K * sum(m * m for _, m in pairs) / 2 + K * below,
        "kflr": sum(d * d for d, _ in pairs) / 2 + K * sum(m * m for _, m in pairs) / 2 + K * below,
        "ggn matvec": below,  # 2 total + 2 below - plain
    }.get(quantity)
    return float("nan") if extra is None else 1 + extra / plain


#: The clock of the timings: wall time, or (``--clock cpu``) this thread's CPU time,
#: which a loaded shared machine does not inflate by descheduling (every computation
#: here runs on the calling thread: one BLAS thread, serial Numba kernels, one torch thread).
CLOCK = time.perf_counter


def _once(fn, number):
    t0 = CLOCK()
    for _ in range(number):
        fn()
    return (CLOCK() - t0) / number


def best(fn, repeat=7, number=3):
    """The best mean time of ``number`` calls over ``repeat`` rounds (after one warm call)."""
    fn()
    return min(_once(fn, number) for _ in range(repeat))


def paired(base, fn, repeat=7, number=3):
    """Best times of ``base`` and ``fn`` measured in alternating rounds, so that a change
    of load on shared cores affects both."""
    base(), fn()
    tb, tf = [], []
    for _ in range(repeat):
        tb.append(_once(base, number))
        tf.append(_once(fn, number))
    return min(tb), min(tf)


def problem(sizes, loss, n, seed=0):
    rng = np.random.default_rng(seed)
    net = nn.MLP(sizes, "relu", loss=loss, dtype=np.float32)
    params = net.init(rng)
    X = rng.standard_normal((n, sizes[0])).astype(np.float32)
    if loss == "cross_entropy":
        y = rng.integers(0, sizes[-1], n)
    else:
        y = (rng.random(n) > 0.5).astype(np.float32)
    return params, X, y


def backpack_fns(params, acts, loss, X, y):
    try:
        import torch
        from backpack import backpack, extend, extensions
    except ImportError:
        return None
    torch.set_num_threads(1)
    act = {"relu": torch.nn.ReLU, "sigmoid": torch.nn.Sigmoid, "tanh": torch.nn.Tanh}
    layers = []
    for (W, b), a in zip(params, acts):
        lin = torch.nn.Linear(W.shape[1], W.shape[0])
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(W)), lin.bias.copy_(torch.from_numpy(b))
        layers += [lin] + ([act[a]()] if a else [])
    model = extend(torch.nn.Sequential(*layers))
    lossf = extend(torch.nn.CrossEntropyLoss() if loss == "cross_entropy" else torch.nn.BCELoss())
    tX = torch.from_numpy(X)
    ty = torch.from_numpy(y) if loss == "cross_entropy" else torch.from_numpy(y).reshape(-1, 1)

    def run(ext=None):
        model.zero_grad()
        L = lossf(model(tX), ty)
        if ext is None:
            L.backward()
        else:
            with backpack(getattr(extensions, ext)()):
                L.backward()

    return run


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1024,4096")
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--nets", default="all", help="'mnist', 'lecture' or 'all'")
    ap.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="wall time, or the calling thread's CPU time (for a loaded machine)",
    )
    args = ap.parse_args()
    global CLOCK
    CLOCK = time.thread_time if args.clock == "cpu" else time.perf_counter
    rows = []
    nets = {
        k: v
        for k, v in NETS.items()
        if args.nets == "all" or (args.nets == "mnist") == k.startswith("784")
    }
    for name, (sizes, acts, loss) in nets.items():
        for n in map(int, args.sizes.split(",")):
            params, X, y = problem(sizes, loss, n)
            ws = nn.Workspace()

            def ours(extras=(), params=params, X=X, y=y, acts=acts, loss=loss, ws=ws):
                return nn.value_and_grad(
                    params, X, y, acts, loss, workspace=ws, extras=extras, max_norm=1.0, seed=0
                )

            bp = backpack_fns(params, acts, loss, X, y)
            G = nn.ggn(params, X, y, acts, loss)
            v = np.random.default_rng(0).standard_normal(G.shape[0]).astype(np.float32)
            base, t_mv = paired(ours, lambda G=G, v=v: G.matvec(v), args.repeat)
            bp_base = best(bp, args.repeat) if bp else float("nan")
            rows.append((name, n, "plain value_and_grad", base, 1.0, 1.0, bp_base, 1.0))
            rows.append(
                (
                    name,
                    n,
                    "ggn matvec",
                    t_mv,
                    t_mv / base,
                    floor(sizes, loss, "ggn matvec"),
                    float("nan"),
                    float("nan"),
                )
            )
            for extra, ext in EXTRAS.items():
                if extra == "diag_hessian" and any(a not in ("relu", None) for a in acts):
                    continue  # not exact there (a ValueError)
                if loss == "bce" and ext in ("DiagGGNMC", "KFAC", "KFLR", "DiagGGNExact"):
                    bp_ext = None  # BackPACK's second order: no BCELoss
                else:
                    bp_ext = ext
                b, t = paired(ours, lambda e=extra: ours((e,)), args.repeat)
                if bp and bp_ext:
                    bb, tb = paired(bp, lambda e=bp_ext, bp=bp: bp(e), args.repeat)
                else:
                    bb = tb = float("nan")
                rows.append((name, n, extra, t, t / b, floor(sizes, loss, extra), tb, tb / bb))
    print(
        f"{'network':<28} {'N':>5} {'quantity':<22} {'structjac ms':>12} {'ratio':>6} "
        f"{'floor':>6} {'BackPACK ms':>11} {'ratio':>6} {'speed-up':>8}"
    )
    for name, n, q, t, r, fl, tb, rb in rows:
        print(
            f"{name:<28} {n:>5} {q:<22} {t * 1e3:>12.2f} {r:>6.2f} {fl:>6.2f} {tb * 1e3:>11.2f} "
            f"{rb:>6.2f} {tb / t:>8.1f}"
        )


if __name__ == "__main__":
    main()
