"""The command line: ``python -m structjac`` walks the lecture on a large batch.

``python -m structjac [--n N] [--seed S] [--dtype float32|float64]`` prints, for every
Jacobian the lecture derives, its structure, shape, stored bytes and the bytes of the dense
matrix; then times a network's value_and_grad on the batch and checks its gradient
against a dense computation on a small slice.

``python -m structjac bench [--sizes ...] [--plot FILE.png]`` sweeps sizes, structured
against dense (dense skipped above ``--dense-limit`` bytes), with a progress bar on stderr.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

__all__ = ["main"]


def _fmt(n):
    from .structures._validation import format_nbytes

    return format_nbytes(n)


def _table(rows, out):
    head = ("Jacobian", "structure", "shape", "stored", "dense", "ratio")
    body = []
    for name, J in rows:
        ratio = J.dense_nbytes / J.nbytes if J.nbytes else float("inf")
        body.append((name, type(J).__name__, f"{J.shape[0]:,} x {J.shape[1]:,}", _fmt(J.nbytes),
                     _fmt(J.dense_nbytes), "inf" if ratio == float("inf") else f"{ratio:,.0f}x"))
    widths = [max(len(str(r[i])) for r in [head] + body) for i in range(len(head))]
    line = "  ".join(h.ljust(w) if i < 2 else h.rjust(w) for i, (h, w) in enumerate(zip(head, widths)))
    print(line, file=out)
    print("-" * len(line), file=out)
    for r in body:
        print("  ".join(str(c).ljust(w) if i < 2 else str(c).rjust(w)
                        for i, (c, w) in enumerate(zip(r, widths))), file=out)


def _walk(args, out) -> int:
    from . import ops
    from .layers import dense_jacobians, neuron_jacobians
    from .nn import MLP
    from .structures import Identity

    rng = np.random.default_rng(args.seed)
    dtype = np.dtype(args.dtype)
    N, d, m = args.n, 32, 64
    print(f"structjac: the lecture's Jacobians on a batch of N = {N:,} ({dtype})\n", file=out)
    x = rng.standard_normal(N).astype(dtype)
    y = rng.standard_normal(N).astype(dtype)
    rows = [
        ("f(x) = x  (identity)", Identity(N, dtype=dtype)),
        ("ln(x) + e^x  (exercise)", ops.elementwise(lambda t: np.log(t) + np.exp(t)).jacobian(np.abs(x) + 1)),
        ("sigmoid: a(1-a)", ops.sigmoid.jacobian(x)),
        ("tanh: (1+a)(1-a)", ops.tanh.jacobian(x)),
        ("ReLU (1 at z >= 0)", ops.relu.jacobian(x)),
    ]
    Ju, Jv = ops.add.jacobians(x, y)
    rows += [("d(u+v)/du", Ju), ("d(u+v)/dv", Jv)]
    Ju, Jv = ops.subtract.jacobians(x, y)
    rows += [("d(u-v)/dv", Jv)]
    Ju, Jv = ops.multiply.jacobians(x, y)
    rows += [("d(u*v)/du = diag(v)", Ju), ("d(u*v)/dv = diag(u)", Jv)]
    W = (rng.standard_normal((m, d)) / np.sqrt(d)).astype(dtype)
    b = np.zeros(m, dtype)
    one = dense_jacobians(W, b, rng.standard_normal(d).astype(dtype), "sigmoid")
    rows += [("layer, 1 sample: dz/dw_2", one.dz_dw(1)), ("  da/dw_2", one.da_dw(1)),
             ("  dz/dW", one.dz_dW), ("  da/dW", one.da_dW), ("  dz/db", one.dz_db),
             ("  da/db", one.da_db), ("  dz/dx = W", one.dz_dx), ("  da/dx", one.da_dx)]
    Nl = max(1, N // m)          # the batch layer sees N/64 samples of 32 inputs
    X = rng.standard_normal((Nl, d)).astype(dtype)
    batch = dense_jacobians(W, b, X, "sigmoid")
    rows += [(f"layer, batch X {Nl:,}x{d}: dZ/dW", batch.dz_dW), ("  dA/dW", batch.da_dW),
             ("  dZ/db = 1 (x) I", batch.dz_db), ("  dA/db", batch.da_db),
             ("  dZ/dX = I (x) W", batch.dz_dx), ("  dA/dX", batch.da_dx),
             ("  dA/dZ", batch.da_dz), ("  dZ/dx^(0)", batch.dz_dx_sample(0))]
    Xn = rng.standard_normal((N, 8)).astype(dtype)
    nj = neuron_jacobians(rng.standard_normal(8).astype(dtype), 0.1, Xn)
    rows += [(f"neuron, batch {N:,}x8: dz/dw = X", nj.dz_dw), ("  dz/db = 1", nj.dz_db),
             ("  dz/dx^(0)", nj.dz_dx(0)), ("  da/dz = diag(a(1-a))", nj.da_dz),
             ("  da/dw", nj.da_dw)]
    t = (rng.random(N) > 0.5).astype(dtype)
    p = (1 / (1 + np.exp(-x))).astype(dtype)
    rows += [("MSE: dJ/dy_hat (1 x N)", ops.mse.jacobian(y, x)),
             ("BCE: dJ/dy_hat (1 x N)", ops.bce.jacobian(t, p))]
    _table(rows, out)

    print(f"\nnetwork 32-64-64-1 (sigmoid, tanh, sigmoid), BCE, N = {N:,}, {dtype}", file=out)
    net = MLP([d, 64, 64, 1], ["sigmoid", "tanh", "sigmoid"], loss="bce", dtype=dtype)
    params = net.init(rng)
    Xb = rng.standard_normal((N, d)).astype(dtype)
    yb = (rng.random(N) > 0.5).astype(dtype)
    warm = min(N, 70_000)                                       # compile serial and parallel kernels
    net.value_and_grad(params, Xb[:warm], yb[:warm])
    net.value_and_grad(params, Xb[:1024], yb[:1024])
    t0 = time.perf_counter()
    loss, grads = net.value_and_grad(params, Xb, yb)
    first = time.perf_counter() - t0                            # pays first-touch page faults
    t0 = time.perf_counter()
    loss, grads = net.value_and_grad(params, Xb, yb)
    elapsed = time.perf_counter() - t0
    print(f"  value_and_grad: loss = {float(loss):.6f}, {elapsed * 1e3:.1f} ms "
          f"(first call at this size {first * 1e3:.1f} ms)", file=out)
    # check on a slice against the dense chain (every Jacobian as a dense matrix)
    k = min(N, 64)
    err = _dense_check(params, Xb[:k], yb[:k], net)
    print(f"  gradient vs the dense Jacobian product on {k} samples: max relative error {err:.2e}",
          file=out)
    print("\n  the chain backpropagation multiplied (a row times each factor):", file=out)
    print(net.explain(params, Xb, yb), file=out)
    return 0


def _dense_check(params, X, y, net):
    """Max relative error of value_and_grad (float64) against dense Jacobian products."""
    from .nn import value_and_grad

    X = X.astype(np.float64)
    y = y.astype(np.float64)
    P = [(W.astype(np.float64), b.astype(np.float64)) for W, b in params]
    res = value_and_grad(P, X, y, net.activations, net.loss, return_jacobians=True,
                         method="structures")
    _, grads = value_and_grad(P, X, y, net.activations, net.loss)
    worst = 0.0
    # dense reverse chain from the structures' to_dense
    jac = res.jacobians
    row = jac[-1][f"layer {len(P)} dJ/da (loss row)"].to_dense()
    for l in range(len(P) - 1, -1, -1):
        S = {k.split(" ", 2)[2]: v for k, v in jac[l].items()}
        row = row @ S["da/dz"].to_dense()
        gW = (row @ S["dz/dW"].to_dense()).reshape(P[l][0].shape)
        gb = (row @ S["dz/db"].to_dense()).reshape(-1)
        for got, ref in ((grads[l][0], gW), (grads[l][1], gb)):
            worst = max(worst, float(np.max(np.abs(got - ref)) / max(np.max(np.abs(ref)), 1e-300)))
        if l:
            row = row @ S["dz/dx"].to_dense()
    return worst


def _bar(i, n, label, stream):
    width = 30
    done = int(width * i / max(n, 1))
    stream.write(f"\r[{'#' * done}{'.' * (width - done)}] {i}/{n} {label:<24}")
    stream.flush()
    if i == n:
        stream.write("\n")


def _bench(args, out) -> int:
    from . import ops

    sizes = args.sizes or [1_000, 10_000, 100_000, 1_000_000]
    rows = []
    kinds = ["sigmoid diag", "dense layer dZ/dW"]
    total = len(sizes) * len(kinds)
    step = 0
    rng = np.random.default_rng(0)
    for n in sizes:
        for kind in kinds:
            _bar(step, total, f"{kind} n={n}", sys.stderr)
            x = rng.standard_normal(n)
            if kind == "sigmoid diag":
                t0 = time.perf_counter()
                J = ops.sigmoid.jacobian(x)
                r = x @ J
                ts = time.perf_counter() - t0
                dense_bytes = n * n * 8
                td = None
                if dense_bytes <= args.dense_limit:
                    t0 = time.perf_counter()
                    D = np.diag(ops.sigmoid.derivative(x))
                    _ = x @ D
                    td = time.perf_counter() - t0
            else:
                from .layers import dense_jacobians

                Nl = max(1, n // 32)
                W = rng.standard_normal((16, 32))
                X = rng.standard_normal((Nl, 32))
                t0 = time.perf_counter()
                J = dense_jacobians(W, None, X, "sigmoid").da_dW
                g = rng.standard_normal(Nl * 16)
                _ = g @ J
                ts = time.perf_counter() - t0
                dense_bytes = J.dense_nbytes
                td = None
                if dense_bytes <= args.dense_limit:
                    t0 = time.perf_counter()
                    Dm = J.to_dense()
                    _ = g @ Dm
                    td = time.perf_counter() - t0
            rows.append((kind, n, ts, td, J.nbytes, dense_bytes))
            step += 1
    _bar(total, total, "done", sys.stderr)
    head = f"{'Jacobian':<20} {'n':>10} {'structured':>12} {'dense':>12} {'stored':>10} {'dense bytes':>12}"
    print(head, file=out)
    print("-" * len(head), file=out)
    for kind, n, ts, td, nb, db in rows:
        tds = "skipped" if td is None else f"{td * 1e3:.2f} ms"
        print(f"{kind:<20} {n:>10,} {ts * 1e3:>9.2f} ms {tds:>12} {_fmt(nb):>10} {_fmt(db):>12}", file=out)
    if args.plot:
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            print("structjac bench: --plot needs matplotlib (pip install matplotlib)", file=sys.stderr)
            return 1
        fig, ax = plt.subplots(figsize=(6, 4))
        for kind in kinds:
            pts = [(n, ts, td) for k, n, ts, td, _, _ in rows if k == kind]
            ax.loglog([p[0] for p in pts], [p[1] for p in pts], "o-", label=f"{kind} (structured)")
            dense = [(p[0], p[2]) for p in pts if p[2] is not None]
            if dense:
                ax.loglog(*zip(*dense), "x--", label=f"{kind} (dense)")
        ax.set_xlabel("n (values in the batch)")
        ax.set_ylabel("seconds (Jacobian + vjp)")
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(args.plot)
        print(f"plot written to {args.plot}", file=out)
    return 0


def _parser():
    p = argparse.ArgumentParser(prog="structjac", description="Walk the lecture's Jacobians on a large batch, "
                                "or benchmark structured against dense (bench).")
    p.add_argument("--n", type=int, default=None,
                   help="batch size (default 1,000,000; 8,388,608 with --dask)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    d = p.add_argument_group("dask", "the network's gradient on a dask.distributed cluster "
                             "(needs structjac[dask])")
    d.add_argument("--dask", action="store_true",
                   help="run value_and_grad chunk by chunk on a LocalCluster")
    d.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    d.add_argument("--chunk", type=int, default=None, help="rows per chunk (default 262,144)")
    d.add_argument("--scheduler", metavar="ADDRESS",
                   help="use the running cluster at ADDRESS instead of a LocalCluster")
    sub = p.add_subparsers(dest="command")
    b = sub.add_parser("bench", help="sweep sizes, structured against dense")
    b.add_argument("--sizes", type=int, nargs="+", help="sizes to sweep (default 1e3 1e4 1e5 1e6)")
    b.add_argument("--dense-limit", type=float, default=2e9, help="skip dense above this many bytes")
    b.add_argument("--plot", metavar="FILE.png", help="draw the table (needs matplotlib)")
    return p


def main(argv=None) -> int:
    """Entry point of ``python -m structjac`` and the ``structjac`` console script."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.n is not None and args.n < 1:
        parser.error("--n must be positive")
    if args.dask:                                   # the dask job: structjac/_dask_cli.py
        from ._dask_cli import DEFAULT_CHUNK, DEFAULT_N, run_on_cluster

        if args.command is not None:
            parser.error("--dask runs the network job; it does not combine with bench")
        if args.workers < 1:
            parser.error(f"--workers must be positive, got {args.workers}")
        if args.chunk is not None and args.chunk < 1:
            parser.error(f"--chunk must be positive, got {args.chunk}")
        n = DEFAULT_N if args.n is None else args.n
        chunk = min(n, DEFAULT_CHUNK if args.chunk is None else args.chunk)
        return run_on_cluster(n, args.workers, chunk, args.seed, args.dtype, sys.stdout,
                              address=args.scheduler)
    if args.n is None:
        args.n = 1_000_000
    if args.command == "bench":
        if args.sizes and min(args.sizes) < 1:
            parser.error("--sizes must be positive")
        return _bench(args, sys.stdout)
    return _walk(args, sys.stdout)


if __name__ == "__main__":
    sys.exit(main())
