"""Overhead of each ``extras=`` quantity over structjac's plain ``value_and_grad``, and of
BackPACK's extension over its plain backward, in the same run (ratios), plus the absolute
times.  One thread everywhere (set OPENBLAS_NUM_THREADS=1 before running).

    OPENBLAS_NUM_THREADS=1 PYTHONPATH=. python scripts/perf_curvature.py [--sizes 1024,4096]

Networks: 784-256-128-10 ReLU with cross-entropy (mean), and the lecture's 32-64-64-1
sigmoid/tanh/sigmoid with BCE, float32.
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
EXTRAS = {"grad_norms": "BatchL2Grad", "sum_grad_squared": "SumGradSquared",
          "variance": "Variance", "clipped_grad": None, "diag_ggn_mc": "DiagGGNMC",
          "kfac": "KFAC", "kflr": "KFLR", "diag_ggn": "DiagGGNExact"}


def _once(fn, number):
    t0 = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - t0) / number


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
    args = ap.parse_args()
    rows = []
    for name, (sizes, acts, loss) in NETS.items():
        for n in map(int, args.sizes.split(",")):
            params, X, y = problem(sizes, loss, n)
            ws = nn.Workspace()

            def ours(extras=(), params=params, X=X, y=y, acts=acts, loss=loss, ws=ws):
                return nn.value_and_grad(params, X, y, acts, loss, workspace=ws, extras=extras,
                                         max_norm=1.0, seed=0)

            bp = backpack_fns(params, acts, loss, X, y)
            G = nn.ggn(params, X, y, acts, loss)
            v = np.random.default_rng(0).standard_normal(G.shape[0]).astype(np.float32)
            base, t_mv = paired(ours, lambda G=G, v=v: G.matvec(v), args.repeat)
            bp_base = best(bp, args.repeat) if bp else float("nan")
            rows.append((name, n, "plain value_and_grad", base, 1.0, bp_base, 1.0))
            rows.append((name, n, "ggn matvec", t_mv, t_mv / base, float("nan"), float("nan")))
            for extra, ext in EXTRAS.items():
                if loss == "bce" and ext in ("DiagGGNMC", "KFAC", "KFLR", "DiagGGNExact"):
                    bp_ext = None       # BackPACK's second order: no BCELoss
                else:
                    bp_ext = ext
                b, t = paired(ours, lambda e=extra: ours((e,)), args.repeat)
                if bp and bp_ext:
                    bb, tb = paired(bp, lambda e=bp_ext, bp=bp: bp(e), args.repeat)
                else:
                    bb = tb = float("nan")
                rows.append((name, n, extra, t, t / b, tb, tb / bb))
    print(f"{'network':<28} {'N':>5} {'quantity':<22} {'structjac ms':>12} {'ratio':>6} "
          f"{'BackPACK ms':>11} {'ratio':>6} {'speed-up':>8}")
    for name, n, q, t, r, tb, rb in rows:
        print(f"{name:<28} {n:>5} {q:<22} {t * 1e3:>12.2f} {r:>6.2f} {tb * 1e3:>11.2f} "
              f"{rb:>6.2f} {tb / t:>8.1f}")


if __name__ == "__main__":
    main()
