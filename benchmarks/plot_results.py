"""Plot saved asv results: time and stored bytes against size, structured against dense.

    python benchmarks/plot_results.py [--results benchmarks/results] [--machine NAME]
                                      [--commit HASH] [--out docs/_static/benchmarks]
                                      [--table]

Reads ``<results>/<machine>/<hash>-<env>.json`` with plain ``json`` (the newest file when
``--commit`` is not given) and ``<results>/benchmarks.json`` for parameter names and units
when present. Writes one PNG per benchmark family into ``--out``: a grid with one panel
per benchmark class, log-log, one line per form (``structured`` solid, baselines dashed).
Families: ``rules_matmul``, ``rules_add``, ``rules_apply``, ``ops_jacobian``, ``ops_vjp``,
``ops_binary``, ``losses``, ``layers``, ``chain``, ``network``; ``*_bytes.png`` plots the
``track_stored_bytes`` benchmarks of the same family. ``coldstart``, ``threads``,
``vjp_floor`` and ``summary`` are bar charts.

``--table`` prints, as Markdown, each family member's baseline/structured time ratio at
the largest size where both ran.
"""

from __future__ import annotations

import argparse
import ast
import glob
import itertools
import json
import math
import os
import sys

#: Pixels per inch of the PNGs: 1.5 times the 96 CSS px/in the documentation shows them
#: at, so they stay sharp on high-density screens and are never scaled up.
DPI = 144

#: Human titles of the families (the PNGs' headings).
FAMILY_TITLES = {
    "rules_matmul": "Products of the rule table against the dense product",
    "rules_matmul_bytes": "Bytes stored by each product, against the dense matrix",
    "rules_add": "Sums of the rule table against the dense sum",
    "rules_add_bytes": "Bytes stored by each sum, against the dense matrix",
    "rules_apply": "A structure applied to vectors, against the dense matrix-vector product",
    "rules_apply_bytes": "Bytes stored by the applied structure, against the dense matrix",
    "ops_jacobian": "Jacobians of the element-wise ops: Diagonal against the dense matrix",
    "ops_jacobian_bytes": "Bytes of the element-wise Jacobians: Diagonal against dense",
    "ops_vjp": "Fused vector-Jacobian products against the numpy expression",
    "ops_binary": "Binary ops: value and Jacobians",
    "losses": "Loss gradients: fused kernel, numpy and the dense chain",
    "losses_bytes": "Bytes of the loss Jacobians",
    "layers": "Dense-layer Jacobians over a mini-batch",
    "layers_bytes": "Bytes of the dense-layer Jacobians",
    "chain": "chain(): the order it picks against fixed orders and dense",
    "chain_bytes": "Bytes of the chain's result",
    "network": "value_and_grad of a 32-64-64-1 network",
    "blocks": "Block-diagonal and block structures",
    "blocks_bytes": "Bytes of the block structures",
    "coldstart": "Import and first call (empty and warm Numba cache)",
    "threads": "Parallel kernels on one and two threads",
    "vjp_floor": "Fused vjp as a multiple of the memory-bandwidth floor",
    "summary": "Structured over dense: bytes ratio and speed-up of each benchmark",
}


def _label(value) -> str:
    """A bar's label: ``bench_rules.Diagonal_at_Kronecker`` -> ``rules: Diagonal @ Kronecker``."""
    text = str(value)
    if text.startswith("bench_") and "." in text:
        module, cls = text[len("bench_") :].split(".", 1)
        return f"{module}: {_panel_title(cls)}"
    return text


def _panel_title(cls: str) -> str:
    """``Diagonal_at_BlockRow`` -> ``Diagonal @ BlockRow``; ``Vjp_sigmoid`` -> ``vjp sigmoid``."""
    text = cls.replace("_at_", " @ ").replace("_plus_", " + ")
    for prefix in ("Jacobian_", "VjpFromOutput_", "Vjp_"):
        if text.startswith(prefix):
            text = (
                prefix.rstrip("_").replace("VjpFromOutput", "vjp from output").lower()
                + " "
                + text[len(prefix) :]
            )
    return text.replace("_", " ")


DEFAULT_RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
DEFAULT_OUT = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "_static", "benchmarks"
)

STYLE = {
    "structured": dict(color="C0", ls="-", marker="o"),
    "structured_jacobian": dict(color="C9", ls="-", marker="s"),
    "structured_rules": dict(color="C9", ls="-", marker="s"),
    "left_to_right": dict(color="C2", ls="-", marker="^"),
    "dense": dict(color="C3", ls="--", marker="x"),
    "numpy": dict(color="C1", ls="--", marker="v"),
    "floor": dict(color="0.4", ls=":", marker="."),
    "right_to_left": dict(color="C4", ls="--", marker="d"),
    "torch": dict(color="C5", ls="--", marker="P"),
    "jax": dict(color="C6", ls="--", marker="*"),
}


def family_of(name):
    """The family (PNG) of a benchmark ``module.Class.method``."""
    module, cls = name.split(".")[:2]
    module = module.replace("bench_", "")
    if module == "rules":
        if "_plus_" in cls:
            return "rules_add"
        if cls.endswith(("_vector", "_matrix")):
            return "rules_apply"
        return "rules_matmul"
    if module == "ops":
        if cls.startswith("Jacobian_"):
            return "ops_jacobian"
        if cls.startswith(("Vjp_", "VjpFromOutput_")):
            return "ops_vjp"
        if cls.startswith("Binary"):
            return "ops_binary"
        if cls == "VjpFloorMultiple":
            return "vjp_floor"
    return module


def load(results_dir, machine=None, commit=None):
    """Return ``(results dict, benchmarks.json dict)`` for one run."""
    machines = [
        d for d in sorted(os.listdir(results_dir)) if os.path.isdir(os.path.join(results_dir, d))
    ]
    if machine is None:
        if not machines:
            raise SystemExit(f"no machine directory in {results_dir}")
        machine = machines[0]
    files = [
        f
        for f in glob.glob(os.path.join(results_dir, machine, "*.json"))
        if not f.endswith("machine.json")
    ]
    if commit:
        files = [f for f in files if os.path.basename(f).startswith(commit[:8])]
    if not files:
        raise SystemExit(f"no results for machine {machine!r} commit {commit!r} in {results_dir}")
    with open(max(files, key=os.path.getmtime)) as fh:
        data = json.load(fh)
    meta = {}
    bj = os.path.join(results_dir, "benchmarks.json")
    if os.path.exists(bj):
        with open(bj) as fh:
            meta = json.load(fh)
    return data, meta


def _value(text):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def rows(data, meta):
    """Yield ``(name, param_names, {param tuple: value})`` for every benchmark of the run."""
    columns = data.get("result_columns", ["result", "params"])
    ir, ip = columns.index("result"), columns.index("params")
    for name, entry in sorted(data["results"].items()):
        result, params = entry[ir], entry[ip]
        if result is None:
            continue
        params = [[_value(p) for p in ps] for ps in params]
        combos = list(itertools.product(*params)) if params else [()]
        if not isinstance(result, list):
            result = [result]
        values = {
            c: v
            for c, v in zip(combos, result)
            if v is not None and not (isinstance(v, float) and math.isnan(v))
        }
        names = meta.get(name, {}).get("param_names") or (
            ["n", "form"][: len(params)]
            if len(params) <= 2
            else [f"p{i}" for i in range(len(params))]
        )
        yield name, names, values


def _save(fig, path):
    """Save a PNG quantised to a 64-colour palette (plots are line art: a third the size)."""
    import io

    buf = io.BytesIO()
    fig.savefig(buf, dpi=DPI, format="png")
    try:
        from PIL import Image
    except ImportError:
        with open(path, "wb") as fh:
            fh.write(buf.getvalue())
        return
    buf.seek(0)
    Image.open(buf).convert("RGB").quantize(colors=64).save(path, optimize=True)


def _grid(count):
    cols = min(3, count)
    return (count + cols - 1) // cols, cols


def plot_family(plt, family, entries, ylabel, path):
    """One PNG: a panel per benchmark, x = n, a line per form."""
    from matplotlib.ticker import LogLocator, NullFormatter

    nrows, ncols = _grid(len(entries))
    size = (3.3 * ncols + 0.4, 2.4 * nrows + 0.9)
    fig, axes = plt.subplots(nrows, ncols, figsize=size, squeeze=False)
    for ax in axes.flat[len(entries) :]:
        ax.set_visible(False)
    for ax, (name, names, values) in zip(axes.flat, entries):
        i_n, i_f = names.index("n"), names.index("form")
        forms = []
        for combo in values:
            if combo[i_f] not in forms:
                forms.append(combo[i_f])
        for form in forms:
            pts = sorted((c[i_n], v) for c, v in values.items() if c[i_f] == form)
            if pts:
                xs, ys = zip(*pts)
                ax.plot(xs, ys, label=form.replace("_", " "), ms=3, lw=1.2, **STYLE.get(form, {}))
        ax.set_xscale("log")
        symlog = any(v <= 0 for v in values.values())
        ax.set_yscale("symlog" if symlog else "log")
        ax.xaxis.set_major_locator(LogLocator(base=10, numticks=5))
        ax.xaxis.set_minor_formatter(NullFormatter())
        if not symlog:
            ax.yaxis.set_major_locator(LogLocator(base=10, numticks=5))
            ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_title(_panel_title(name.split(".")[1]), fontsize=9)
        ax.tick_params(labelsize=8)
        ax.grid(True, which="major", lw=0.3)
    handles = {}
    for ax in axes.flat:
        for h, l in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(l, h)
    legend_rows = (len(handles) + 3) // 4
    top = 1.0 - (0.3 + 0.2 * legend_rows) / fig.get_figheight()
    fig.suptitle(
        FAMILY_TITLES.get(family, family.replace("_", " ")),
        fontsize=11,
        x=0.01,
        y=0.998,
        ha="left",
        va="top",
    )
    fig.legend(
        list(handles.values()),
        list(handles),
        loc="upper left",
        bbox_to_anchor=(0.01, 1.0 - 0.32 / fig.get_figheight()),
        ncol=min(4, len(handles)),
        fontsize=8,
        frameon=False,
    )
    fig.supxlabel("n (problem size)", fontsize=9)
    fig.supylabel(ylabel, fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, top))
    _save(fig, path)
    plt.close(fig)


def plot_bars(plt, family, entries, path):
    """One PNG of bar charts for benchmarks without an ``(n, form)`` grid (sorted, log x)."""
    entries = [e for e in entries if not e[0].endswith(".track_size")]
    heights = [len(v) for _, _, v in entries]
    ncols = min(2, len(entries))
    nrows = (len(entries) + ncols - 1) // ncols
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(4.6 * ncols, (0.9 + 0.17 * max(heights)) * nrows), squeeze=False
    )
    for ax in axes.flat[len(entries) :]:
        ax.set_visible(False)
    for ax, (name, names, values) in zip(axes.flat, entries):
        items = sorted(values.items(), key=lambda kv: kv[1])
        labels = [
            ", ".join(_label(v) if len(names) == 1 else f"{k}={v}" for k, v in zip(names, c))
            for c, _ in items
        ]
        ax.barh(range(len(items)), [v for _, v in items], color="C0", height=0.7)
        ax.set_yticks(range(len(items)), labels, fontsize=8)
        ax.set_ylim(-0.6, len(items) - 0.4)
        ax.set_xscale("log")
        ax.set_title(_panel_title(name.split(".", 1)[1].replace(".", ": ")), fontsize=9)
        ax.tick_params(axis="x", labelsize=8)
        ax.grid(True, axis="x", lw=0.3)
    fig.suptitle(
        FAMILY_TITLES.get(family, family.replace("_", " ")), fontsize=11, x=0.01, ha="left"
    )
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


def ratio_table(all_rows):
    """Markdown: baseline / structured time at the largest n where both ran."""
    lines = ["| benchmark | n | baseline | baseline / structured |", "|---|---|---|---|"]
    for name, names, values in all_rows:
        if not name.endswith(".time_op") or names[:2] != ["n", "form"]:
            continue
        forms = {c[1] for c in values}
        for base in [
            f
            for f in ("dense", "numpy", "floor", "left_to_right", "right_to_left", "torch", "jax")
            if f in forms
        ]:
            ns = sorted(c[0] for c in values if c[1] == base and (c[0], "structured") in values)
            if ns:
                n = ns[-1]
                r = values[(n, base)] / values[(n, "structured")]
                lines.append(f"| {name.rsplit('.', 1)[0]} | {n} | {base} | {r:.3g} |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--results", default=DEFAULT_RESULTS)
    p.add_argument("--machine", default=None)
    p.add_argument("--commit", default=None)
    p.add_argument("--out", default=DEFAULT_OUT)
    p.add_argument("--table", action="store_true", help="print the ratio table (Markdown)")
    args = p.parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data, meta = load(args.results, args.machine, args.commit)
    all_rows = list(rows(data, meta))
    if args.table:
        print(ratio_table(all_rows))
    os.makedirs(args.out, exist_ok=True)
    groups = {}
    for name, names, values in all_rows:
        if not values:
            continue
        method = name.rsplit(".", 1)[-1]
        family = family_of(name)
        grid = names[:2] == ["n", "form"]
        if method == "time_op" and grid:
            groups.setdefault((family, "time"), []).append((name, names, values))
        elif method == "track_stored_bytes" and grid:
            groups.setdefault((family + "_bytes", "bytes"), []).append((name, names, values))
        else:
            groups.setdefault(
                (
                    family
                    if family in ("coldstart", "threads", "vjp_floor", "summary")
                    else family + "_other",
                    "bars",
                ),
                [],
            ).append((name, names, values))
    written = []
    for (family, kind), entries in sorted(groups.items()):
        path = os.path.join(args.out, f"{family}.png")
        if kind == "bars":
            plot_bars(plt, family, entries, path)
        else:
            plot_family(plt, family, entries, "time (s)" if kind == "time" else "bytes", path)
        written.append(path)
    for path in written:
        print(f"{path}  {os.path.getsize(path) / 1000:.0f} kB", file=sys.stderr)
    return written


if __name__ == "__main__":
    main()
