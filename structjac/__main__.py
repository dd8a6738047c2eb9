"""The command line: ``python -m structjac`` shows structured Jacobians on a large batch.

``python -m structjac [--n N] [--seed S] [--dtype float32|float64]`` prints, for every
Jacobian of the user guide, its structure, shape, stored bytes and the bytes of the dense
matrix; then times a network's value_and_grad on the batch and checks its gradient
against a dense computation on a small slice.

``python -m structjac bench [--sizes ...] [--repeats R] [--plot FILE.png]`` sweeps sizes,
structured against dense (dense skipped above ``--dense-limit`` bytes): each case is warmed
up once (Numba compilation and first-touch page faults), then timed ``--repeats`` times;
the table shows the median, the interquartile range and the dense / structured ratios.

Every argument is checked before any work starts. Progress goes to stderr through tqdm
(a small pure-Python dependency with no dependencies of its own, which falls back to plain
lines when stderr is not a terminal); ``--no-progress`` turns it off. The tables fit 88
columns.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
from pathlib import Path
from typing import Callable, Sequence, TextIO

import numpy as np

__all__ = ["main"]

WIDTH = 88  # every line of output fits this many columns
_PLOT_FORMATS = {".png", ".pdf", ".svg"}


# -- formatting ----------------------------------------------------------------------


def _fmt_bytes(n: float) -> str:
    """Decimal byte units up to PB (``65.5 kB``, ``536.9 MB``, ``16.4 PB``)."""
    n = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if n < 1000 or unit == "PB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def _fmt_count(n: int) -> str:
    """An integer in at most 7 characters: ``20,000``, ``313k``, ``1.28M``."""
    if n < 100_000:
        return f"{n:,}"
    for div, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if n >= div:
            return f"{n / div:.3g}{suffix}"
    raise AssertionError("unreachable")


def _fmt_ratio(r: float) -> str:
    if r == float("inf"):
        return "inf"
    if r >= 1e5:
        return f"{r:.1e}x".replace("e+0", "e").replace("e+", "e")
    return f"{r:,.0f}x" if r >= 10 else f"{r:.1f}x"


def _fmt_time(s: float) -> str:
    for div, unit in ((1.0, "s"), (1e-3, "ms"), (1e-6, "us")):
        if s >= div:
            return f"{s / div:.3g} {unit}"
    return f"{s / 1e-9:.3g} ns"


def _table(rows: Sequence, out: TextIO, first: str = "Jacobian") -> None:
    """Rows of ``(name, J)``; a row ``(title, None)`` starts a section."""
    head = (first, "structure", "shape", "stored", "dense", "ratio")
    body = []
    for name, J in rows:
        if J is None:
            body.append((name,))
            continue
        ratio = J.dense_nbytes / J.nbytes if J.nbytes else float("inf")
        body.append(
            (
                name,
                type(J).__name__,
                f"{_fmt_count(J.shape[0])} x {_fmt_count(J.shape[1])}",
                _fmt_bytes(J.nbytes),
                _fmt_bytes(J.dense_nbytes),
                _fmt_ratio(ratio),
            )
        )
    cells = [head] + [r for r in body if len(r) > 1]
    widths = [max(len(r[i]) for r in cells) for i in range(len(head))]

    def line(r):
        return "  ".join(
            c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))
        ).rstrip()

    print(line(head), file=out)
    print("-" * len(line(head)), file=out)
    for r in body:
        print(r[0] if len(r) == 1 else line(r), file=out)


class _Progress:
    """Named stages on stderr (tqdm), or nothing."""

    def __init__(self, total: int, enabled: bool | None, desc: str):
        from tqdm import tqdm

        # enabled None: shown when stderr is a terminal (tqdm's disable=None)
        self._bar = tqdm(
            total=total,
            desc=desc,
            file=sys.stderr,
            ncols=WIDTH,
            leave=False,
            disable=None if enabled is None else not enabled,
            bar_format="{desc}: {bar} {n_fmt}/{total_fmt} {postfix}",
        )

    def stage(self, label: str) -> None:
        self._bar.set_postfix_str(label, refresh=True)

    def done(self) -> None:
        self._bar.update(1)

    def close(self) -> None:
        self._bar.close()


# -- the main job --------------------------------------------------------------------


def _walk(args: argparse.Namespace, out: TextIO) -> int:
    from . import ops
    from .layers import dense_jacobians, neuron_jacobians
    from .nn import MLP
    from .structures import Identity

    progress = _Progress(6, args.progress, "structjac")
    rng = np.random.default_rng(args.seed)
    dtype = np.dtype(args.dtype)
    N, d, m = args.n, 32, 64
    print(f"structjac: the user guide's Jacobians on a batch of N = {N:,} ({dtype})\n", file=out)
    progress.stage("element-wise and binary ops")
    x = rng.standard_normal(N).astype(dtype)
    y = rng.standard_normal(N).astype(dtype)
    rows = [
        (f"element-wise ops on x of {N:,} values", None),
        ("  f(x) = x", Identity(N, dtype=dtype)),
        ("  ln(x) + e^x", ops.elementwise(lambda t: np.log(t) + np.exp(t)).jacobian(np.abs(x) + 1)),
        ("  sigmoid: a(1-a)", ops.sigmoid.jacobian(x)),
        ("  tanh: (1+a)(1-a)", ops.tanh.jacobian(x)),
        ("  ReLU: 1 at z >= 0", ops.relu.jacobian(x)),
        ("binary ops", None),
    ]
    Ju, Jv = ops.add.jacobians(x, y)
    rows += [("  d(u+v)/du", Ju), ("  d(u+v)/dv", Jv)]
    Ju, Jv = ops.subtract.jacobians(x, y)
    rows += [("  d(u-v)/dv", Jv)]
    Ju, Jv = ops.multiply.jacobians(x, y)
    rows += [("  d(u*v)/du = diag(v)", Ju), ("  d(u*v)/dv = diag(u)", Jv)]
    progress.done()
    progress.stage("dense layer and neuron")
    W = (rng.standard_normal((m, d)) / np.sqrt(d)).astype(dtype)
    b = np.zeros(m, dtype)
    one = dense_jacobians(W, b, rng.standard_normal(d).astype(dtype), "sigmoid")
    rows += [
        (f"dense layer W {m}x{d}, one sample", None),
        ("  dz/dw_2", one.dz_dw(1)),
        ("  da/dw_2", one.da_dw(1)),
        ("  dz/dW", one.dz_dW),
        ("  da/dW", one.da_dW),
        ("  dz/db", one.dz_db),
        ("  da/db", one.da_db),
        ("  dz/dx = W", one.dz_dx),
        ("  da/dx", one.da_dx),
    ]
    Nl = max(1, N // m)  # the batch layer sees N/64 samples of 32 inputs
    X = rng.standard_normal((Nl, d)).astype(dtype)
    batch = dense_jacobians(W, b, X, "sigmoid")
    rows += [
        (f"dense layer, batch X {Nl:,} x {d}", None),
        ("  dZ/dW", batch.dz_dW),
        ("  dA/dW", batch.da_dW),
        ("  dZ/db = 1 (x) I", batch.dz_db),
        ("  dA/db", batch.da_db),
        ("  dZ/dX = I (x) W", batch.dz_dx),
        ("  dA/dX", batch.da_dx),
        ("  dA/dZ", batch.da_dz),
        ("  dZ/dx^(0)", batch.dz_dx_sample(0)),
    ]
    Xn = rng.standard_normal((N, 8)).astype(dtype)
    nj = neuron_jacobians(rng.standard_normal(8).astype(dtype), 0.1, Xn)
    rows += [
        (f"neuron, batch X {N:,} x 8", None),
        ("  dz/dw = X", nj.dz_dw),
        ("  dz/db = 1", nj.dz_db),
        ("  dz/dx^(0)", nj.dz_dx(0)),
        ("  da/dz = diag(a(1-a))", nj.da_dz),
        ("  da/dw", nj.da_dw),
    ]
    t = (rng.random(N) > 0.5).astype(dtype)
    p = (1 / (1 + np.exp(-x))).astype(dtype)
    rows += [
        (f"losses over {N:,} samples", None),
        ("  MSE: dJ/dy_hat", ops.mse.jacobian(y, x)),
        ("  BCE: dJ/dy_hat", ops.bce.jacobian(t, p)),
    ]
    progress.done()
    _table(rows, out)

    print(f"\nnetwork 32-64-64-1 (sigmoid, tanh, sigmoid), BCE, N = {N:,}, {dtype}", file=out)
    net = MLP([d, 64, 64, 1], ["sigmoid", "tanh", "sigmoid"], loss="bce", dtype=dtype)
    params = net.init(rng)
    Xb = rng.standard_normal((N, d)).astype(dtype)
    yb = (rng.random(N) > 0.5).astype(dtype)
    progress.stage("compiling the kernels")
    warm = min(N, 70_000)  # compile serial and parallel kernels
    net.value_and_grad(params, Xb[:warm], yb[:warm])
    net.value_and_grad(params, Xb[:1024], yb[:1024])
    progress.done()
    progress.stage("value_and_grad, first call")
    t0 = time.perf_counter()
    loss, grads = net.value_and_grad(params, Xb, yb)
    first = time.perf_counter() - t0  # pays first-touch page faults
    progress.done()
    progress.stage("value_and_grad, timed call")
    t0 = time.perf_counter()
    loss, grads = net.value_and_grad(params, Xb, yb)
    elapsed = time.perf_counter() - t0
    progress.done()
    print(
        f"  value_and_grad: loss = {float(loss):.6f}, {_fmt_time(elapsed)} "
        f"(first call at this size {_fmt_time(first)})",
        file=out,
    )
    progress.stage("dense check and chain")
    k = min(N, 64)
    err = _dense_check(params, Xb[:k], yb[:k], net)
    print(
        f"  gradient vs the dense Jacobian product on {k} samples: max relative error {err:.2e}",
        file=out,
    )
    res = net.value_and_grad(params, Xb, yb, return_jacobians=True)
    progress.done()
    progress.close()
    print("\nthe chain backpropagation multiplies (a row times each factor):\n", file=out)
    _table([(name, J) for entry in res.jacobians for name, J in entry.items()], out, first="factor")
    return 0


def _dense_check(params, X, y, net) -> float:
    """Max relative error of value_and_grad (float64) against dense Jacobian products."""
    from .nn import value_and_grad

    X = X.astype(np.float64)
    y = y.astype(np.float64)
    P = [(W.astype(np.float64), b.astype(np.float64)) for W, b in params]
    res = value_and_grad(
        P, X, y, net.activations, net.loss, return_jacobians=True, method="structures"
    )
    _, grads = value_and_grad(P, X, y, net.activations, net.loss)
    worst = 0.0
    # dense reverse chain from the structures' to_dense
    jac = res.jacobians
    row = jac[-1][f"layer {len(P)} dJ/da (loss row)"].to_dense()
    for layer in range(len(P) - 1, -1, -1):
        S = {k.split(" ", 2)[2]: v for k, v in jac[layer].items()}
        row = row @ S["da/dz"].to_dense()
        gW = (row @ S["dz/dW"].to_dense()).reshape(P[layer][0].shape)
        gb = (row @ S["dz/db"].to_dense()).reshape(-1)
        for got, ref in ((grads[layer][0], gW), (grads[layer][1], gb)):
            worst = max(worst, float(np.max(np.abs(got - ref)) / max(np.max(np.abs(ref)), 1e-300)))
        if layer:
            row = row @ S["dz/dx"].to_dense()
    return worst


# -- bench ---------------------------------------------------------------------------

_KINDS = ("sigmoid diag", "layer dA/dW")


def _bench_case(kind: str, n: int, dtype: np.dtype, rng, dense_limit: float):
    """Return (structured callable, dense callable or None, stored bytes, dense bytes)."""
    from . import ops
    from .layers import dense_jacobians

    if kind == "sigmoid diag":
        x = rng.standard_normal(n).astype(dtype)

        def structured():
            return x @ ops.sigmoid.jacobian(x)

        dense_bytes = n * n * dtype.itemsize
        stored = ops.sigmoid.jacobian(x).nbytes

        def dense():
            return x @ np.diag(ops.sigmoid.derivative(x))
    else:
        Nl = max(1, n // 32)
        W = rng.standard_normal((16, 32)).astype(dtype)
        X = rng.standard_normal((Nl, 32)).astype(dtype)
        g = rng.standard_normal(Nl * 16).astype(dtype)

        def structured():
            return g @ dense_jacobians(W, None, X, "sigmoid").da_dW

        J = dense_jacobians(W, None, X, "sigmoid").da_dW
        stored, dense_bytes = J.nbytes, J.dense_nbytes

        def dense():
            return g @ J.to_dense()

    return structured, (dense if dense_bytes <= dense_limit else None), stored, dense_bytes


def _timings(f: Callable, repeats: int) -> np.ndarray:
    f()  # warm-up: compilation and first-touch page faults
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        f()
        times.append(time.perf_counter() - t0)
    return np.array(times)


def _bench(args: argparse.Namespace, out: TextIO) -> int:
    from ._dense_limit import dense_limit

    dtype = np.dtype(args.dtype)
    sizes = args.sizes or [1_000, 10_000, 100_000, 1_000_000]
    rng = np.random.default_rng(args.seed)
    total = len(sizes) * len(_KINDS)
    progress = _Progress(total, args.progress, "bench")
    rows = []
    with dense_limit(int(args.dense_limit)):
        for n in sizes:
            for kind in _KINDS:
                progress.stage(f"{kind}, n = {n:,}")
                structured, dense, stored, dense_bytes = _bench_case(
                    kind, n, dtype, rng, args.dense_limit
                )
                ts = _timings(structured, args.repeats)
                td = None if dense is None else _timings(dense, args.repeats)
                rows.append((kind, n, ts, td, stored, dense_bytes))
                progress.done()
    progress.close()

    print(
        f"structured against dense: x @ J, {dtype}; median of {args.repeats} runs after a warm-up",
        file=out,
    )
    print(
        "(IQR: interquartile range as a percentage of the median; dense skipped above "
        f"{_fmt_bytes(args.dense_limit)})\n",
        file=out,
    )
    cols = (
        (12, "<"),
        (7, ">"),
        (8, ">"),
        (5, ">"),
        (8, ">"),
        (5, ">"),
        (8, ">"),
        (9, ">"),
        (9, ">"),
        (7, ">"),
    )

    def line(*cells):
        return " ".join(f"{c:{a}{w}}" for c, (w, a) in zip(cells, cols)).rstrip()

    print(line("", "", "structured", "", "    dense", "", "", "", "bytes", ""), file=out)
    head = line(
        "Jacobian", "n", "median", "IQR", "median", "IQR", "speed-up", "stored", "dense", "ratio"
    )
    print(head, file=out)
    print("-" * len(head), file=out)

    def iqr(t):
        q25, q75 = np.percentile(t, [25, 75])
        return f"{100 * (q75 - q25) / np.median(t):.0f}%"

    for kind, n, ts, td, nb, db in rows:
        ms = float(np.median(ts))
        if td is None:
            dense_cols = ("skipped", "", "")
        else:
            md = float(np.median(td))
            dense_cols = (_fmt_time(md), iqr(td), _fmt_ratio(md / ms))
        print(
            line(
                kind,
                _fmt_count(n),
                _fmt_time(ms),
                iqr(ts),
                *dense_cols,
                _fmt_bytes(nb),
                _fmt_bytes(db),
                _fmt_ratio(db / nb),
            ),
            file=out,
        )
    print("\nspeed-up = dense time / structured time; ratio = dense bytes / stored bytes", file=out)
    if args.plot:
        _plot(rows, args, out)
    return 0


def _plot(rows, args: argparse.Namespace, out: TextIO) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(10, 7), sharex=True)
    (ax_t, ax_m), (ax_tr, ax_mr) = axes
    for kind, color in zip(_KINDS, ("C0", "C1")):
        pts = [r for r in rows if r[0] == kind]
        n = np.array([r[1] for r in pts])
        med = np.array([np.median(r[2]) for r in pts])
        lo = med - np.array([np.percentile(r[2], 25) for r in pts])
        hi = np.array([np.percentile(r[2], 75) for r in pts]) - med
        ax_t.errorbar(
            n, med, yerr=[lo, hi], fmt="o-", color=color, capsize=3, label=f"{kind}, structured"
        )
        dense = [(r[1], np.median(r[3]), np.median(r[2])) for r in pts if r[3] is not None]
        if dense:
            dn, dt, st = map(np.array, zip(*dense))
            ax_t.plot(dn, dt, "x--", color=color, label=f"{kind}, dense")
            ax_tr.plot(dn, dt / st, "o-", color=color, label=kind)
        ax_m.plot(n, [r[4] for r in pts], "o-", color=color, label=f"{kind}, stored")
        ax_m.plot(n, [r[5] for r in pts], "x--", color=color, label=f"{kind}, dense")
        ax_mr.plot(n, [r[5] / r[4] for r in pts], "o-", color=color, label=kind)
    titles = (
        ("Time of x @ J (median and IQR)", "seconds"),
        ("Memory of J", "bytes"),
        ("Time: dense / structured", "speed-up"),
        ("Memory: dense / structured", "bytes ratio"),
    )
    for ax, (title, ylabel) in zip(axes.flat, titles):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(title)
        ax.set_ylabel(ylabel)
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=8)
    for ax in axes[1]:
        ax.set_xlabel("n (values in the batch)")
        ax.axhline(1.0, color="0.5", lw=0.8)
    fig.suptitle(
        f"structjac: structured against dense Jacobians ({args.dtype}, "
        f"median of {args.repeats} runs after a warm-up)"
    )
    fig.tight_layout()
    fig.savefig(args.plot, dpi=120)
    plt.close(fig)
    print(f"plot written to {args.plot}", file=out)


# -- arguments -----------------------------------------------------------------------


def _count(text: str) -> int:
    """A positive integer, also written as ``1e3`` or ``1_000``."""
    try:
        value = float(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if not np.isfinite(value) or not value.is_integer() or value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return int(value)


def _nbytes(text: str) -> float:
    """A non-negative number of bytes (``2e9``)."""
    try:
        value = float(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of bytes, got {text!r}") from None
    if not np.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative number of bytes, got {text!r}")
    return value


def _common(p: argparse.ArgumentParser, suppress: bool) -> None:
    """Options accepted before and after the subcommand."""

    def default(value):
        return argparse.SUPPRESS if suppress else value

    p.add_argument("--seed", type=int, default=default(0), help="random seed (default 0)")
    p.add_argument(
        "--dtype",
        choices=["float32", "float64"],
        default=default("float32"),
        help="dtype of the arrays (default float32)",
    )
    p.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=default(None),
        help="progress on stderr (default: when stderr is a terminal)",
    )
    # Further options shared by every job (e.g. --dask) are added here.


def _parser() -> argparse.ArgumentParser:
    from . import __version__

    p = argparse.ArgumentParser(
        prog="structjac",
        description="Show the structured Jacobians of the user guide on a large batch, "
        "or benchmark structured against dense (bench).",
    )
    p.add_argument("--version", action="version", version=f"structjac {__version__}")
    p.add_argument(
        "--n",
        type=_count,
        default=None,
        help="batch size, e.g. 1e6 (default 1,000,000; 8,388,608 with --dask)",
    )
    _common(p, suppress=False)
    d = p.add_argument_group(
        "dask", "the network's gradient on a dask.distributed cluster (needs structjac[dask])"
    )
    d.add_argument(
        "--dask", action="store_true", help="run value_and_grad chunk by chunk on a LocalCluster"
    )
    d.add_argument("--workers", type=_count, default=2, help="worker processes (default 2)")
    d.add_argument("--chunk", type=_count, default=None, help="rows per chunk (default 262,144)")
    d.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="use the running cluster at ADDRESS instead of a LocalCluster",
    )
    sub = p.add_subparsers(dest="command", metavar="{bench}")
    b = sub.add_parser(
        "bench",
        help="sweep sizes, structured against dense",
        description="Sweep sizes, structured against dense: a warm-up, then "
        "the median and interquartile range of --repeats runs.",
    )
    b.add_argument(
        "--sizes",
        type=_count,
        nargs="+",
        help="sizes to sweep, e.g. 1e3 1e4 (default 1e3 1e4 1e5 1e6)",
    )
    b.add_argument("--repeats", type=_count, default=5, help="timed runs per case (default 5)")
    b.add_argument(
        "--dense-limit",
        type=_nbytes,
        default=2e9,
        help="skip dense above this many bytes (default 2e9)",
    )
    b.add_argument(
        "--plot",
        metavar="FILE.png",
        help="draw time and memory with both ratios (.png, .pdf or .svg; needs matplotlib)",
    )
    _common(b, suppress=True)
    return p


def _check_plot(parser: argparse.ArgumentParser, path: str) -> None:
    target = Path(path)
    if target.suffix.lower() not in _PLOT_FORMATS:
        parser.error(
            f"--plot {path}: the file must end in one of {', '.join(sorted(_PLOT_FORMATS))}"
        )
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        parser.error(f"--plot {path}: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK) or (target.exists() and not os.access(target, os.W_OK)):
        parser.error(f"--plot {path}: not writable")
    if target.is_dir():
        parser.error(f"--plot {path}: is a folder")
    if importlib.util.find_spec("matplotlib") is None:
        parser.error(
            "--plot needs matplotlib: python -m pip install matplotlib (or the .[plot] extra)"
        )


def _run(argv: Sequence[str] | None, out: TextIO) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    # every argument is checked here, before any work starts
    if args.dask:  # the dask job: structjac/_dask_cli.py
        from ._dask_cli import DEFAULT_CHUNK, DEFAULT_N, run_on_cluster

        if args.command is not None:
            parser.error("--dask runs the network job; it does not combine with bench")
        n = DEFAULT_N if args.n is None else args.n
        chunk = min(n, DEFAULT_CHUNK if args.chunk is None else args.chunk)
        return run_on_cluster(
            n, args.workers, chunk, args.seed, args.dtype, out, address=args.scheduler
        )
    if args.n is None:
        args.n = 1_000_000
    if args.command == "bench":
        if args.plot:
            _check_plot(parser, args.plot)
        return _bench(args, out)
    return _walk(args, out)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m structjac`` and the ``structjac`` console script.

    Returns the exit status: 0 on success, 2 for bad arguments (from argparse), and 141
    (128 + SIGPIPE, as a shell reports it) when the reader of stdout went away, e.g.
    ``python -m structjac | head -1``.
    """
    try:
        code = _run(argv, sys.stdout)
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        # The reader closed the pipe: stop quietly, and keep Python's exit-time flush of
        # stdout from raising again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
