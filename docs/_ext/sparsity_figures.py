"""Sparsity pictures of the lecture's Jacobians, made at documentation build time.

Each figure has two panels: on the left the pattern of the dense matrix that a
general-purpose autodiff system would return (``matplotlib``'s ``spy`` of
``J.to_dense()``), on the right the numbers structjac actually stores for the
same Jacobian, drawn at the same scale. Sizes are small so that the pattern is
visible; the byte counts in the titles are those of the drawn sizes.

Run directly (``python docs/_ext/sparsity_figures.py OUTDIR``) or through the
``structjac_docs`` Sphinx extension, which writes into ``docs/_generated/figures``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import structjac as sj  # noqa: E402
from structjac import ops  # noqa: E402

CMAP = "viridis"


def _stored(J, label=""):
    """List of (label, 2-D array or None) for what ``J`` stores."""
    name = type(J).__name__
    pre = f"{label}: " if label else ""
    if name == "Identity":
        return [(f"{pre}Identity({J.shape[0]}): nothing stored", None)]
    if name == "Zero":
        return [(f"{pre}Zero{J.shape}: nothing stored", None)]
    if name == "ScaledIdentity":
        return [(f"{pre}c = {float(np.real(J.scalar)):g}", np.array([[J.scalar]]))]
    if name == "Diagonal":
        return [(f"{pre}diagonal d, {J.shape[0]} numbers", np.asarray(J.values)[None, :])]
    if name in ("BlockRow", "BlockColumn"):
        rows = np.asarray(J.rows)
        idx = ", ".join(str(int(i)) for i in np.asarray(J.indices))
        what = "row" if name == "BlockRow" else "column"
        return [(f"{pre}{what} {idx}: {rows.size} numbers", rows)]
    if name == "Kronecker":
        return _stored(J.A, f"{pre}A") + _stored(J.B, f"{pre}B")
    if name == "Dense":
        M = np.asarray(J.to_dense())
        return [(f"{pre}dense {M.shape[0]}x{M.shape[1]}", M)]
    S = J.to_sparse()
    return [(f"{pre}{name}: {S.nnz} stored entries", np.asarray(S.data)[None, :])]


def _fmt(n):
    from structjac.structures._validation import format_nbytes

    return format_nbytes(n)


def figure(J, title, path: Path):
    """Write the two-panel picture of ``J`` to ``path``."""
    dense = np.asarray(J.to_dense())
    parts = _stored(J)
    m, n = dense.shape
    heights = [max(p[1].shape[0], 1) if p[1] is not None else 1 for p in parts]
    fig = plt.figure(figsize=(8.0, 3.6), dpi=90)
    gs = fig.add_gridspec(
        len(parts),
        2,
        width_ratios=[1.0, 1.0],
        height_ratios=heights,
        hspace=0.9,
        wspace=0.25,
        top=0.74,
    )
    ax = fig.add_subplot(gs[:, 0])
    wide = 4 * m < n
    ax.spy(
        dense,
        markersize=max(2.0, (160.0 if wide else 90.0) / max(m, n)),
        color="C0",
        aspect="auto" if wide else "equal",
    )
    ax.set_title(
        f"dense {m}x{n}: {np.count_nonzero(dense)} nonzeros\n"
        f"{m * n} numbers, {_fmt(J.dense_nbytes)}",
        fontsize=9,
    )
    ax.tick_params(labelsize=7)
    if m <= 12:
        ax.set_yticks(range(m))
    for k, (label, arr) in enumerate(parts):
        axk = fig.add_subplot(gs[k, 1])
        if arr is None:
            axk.text(0.5, 0.5, label, ha="center", va="center", fontsize=9)
            axk.set_axis_off()
            continue
        arr = np.real(np.asarray(arr, dtype=float))
        axk.imshow(arr, cmap=CMAP, aspect="equal", interpolation="nearest")
        axk.set_title(label, fontsize=8)
        axk.set_xticks([])
        axk.set_yticks([])
    fig.suptitle(
        f"{title}    structjac: {type(J).__name__}, stores {_fmt(J.nbytes)}", fontsize=10, y=0.98
    )
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)


def lecture_jacobians():
    """(file stem, title, Jacobian) for each picture of the guide."""
    rng = np.random.default_rng(0)
    n, l_in, N, d = 8, 10, 12, 5
    a = ops.sigmoid(rng.standard_normal(n))
    x = rng.uniform(0.5, 2.0, l_in)
    W = rng.standard_normal((n, l_in))
    X = rng.standard_normal((N, d))
    w = rng.standard_normal(d)
    a_batch = ops.sigmoid(X @ w)
    g = ops.sigmoid.jacobian_from_output(a)
    u = rng.uniform(0.5, 2.0, n)
    v = rng.uniform(0.5, 2.0, n)
    xs = rng.uniform(0.5, 2.0, n)
    out = [
        ("diagonal", "diag(a) diag(b)", sj.Diagonal(u) @ sj.Diagonal(v)),
        ("identity", "I", sj.Identity(n)),
        (
            "exercise",
            "d/dx [ln x + e^x]",
            ops.elementwise(lambda t: np.log(t) + np.exp(t)).jacobian(xs),
        ),
        ("sigmoid", "da/dz (sigmoid)", g),
        ("dz_dwi", "dz/dw_3", sj.BlockRow(2, x, n)),
        ("dz_dW", "dz/dW = I (x) x^T", sj.Kronecker(sj.Identity(4), sj.Dense(x[None, :5]))),
        ("dz_dx", "dz/dx = W", sj.Dense(W)),
        ("da_dwi", "da/dw_3 = diag(g') dz/dw_3", g @ sj.BlockRow(2, x, n)),
        ("da_dx", "da/dx = diag(g') W", g @ sj.Dense(W)),
        ("neuron_dz_dw", "neuron: dz/dw = X", sj.Dense(X)),
        ("neuron_dz_dxk", "neuron: dz/dx^(4)", sj.BlockRow(3, w, N)),
        ("neuron_da_dz", "neuron: da/dz over the batch", ops.sigmoid.jacobian_from_output(a_batch)),
        ("binary_sub", "d(u - v)/dv = -I", ops.subtract.jacobians(u, v)[1]),
        ("binary_mul", "d(u * v)/du = diag(v)", ops.multiply.jacobians(u, v)[0]),
    ]
    y = rng.uniform(0, 1, N)
    y_hat = rng.uniform(0, 1, N)
    out.append(("loss_mse", "dJ/dy_hat (MSE, mean over N)", ops.mse.jacobian(y, y_hat)))
    return out


def make_all(outdir) -> int:
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    items = lecture_jacobians()
    for stem, title, J in items:
        figure(J, title, outdir / f"{stem}.png")
    return len(items)


if __name__ == "__main__":
    print(make_all(sys.argv[1] if len(sys.argv) > 1 else "figures"), "figures")
