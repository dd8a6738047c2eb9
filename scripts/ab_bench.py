"""Time the asv suite's own benchmark classes in-process, for an alternating A/B of two trees.

asv times each commit in its own timing window and process.  On a noisy shared machine
that carries a bias of tens of percent between the two sides of ``asv continuous``, even on
rows that time only numpy.  This script runs the same classes (``benchmarks/benchmarks``)
against one source tree in one process, so two trees can be timed alternately, several
rounds each, and compared by the minimum per row::

    # one round: tree A, then tree B, then A, then B ... (fresh process each time)
    OPENBLAS_NUM_THREADS=1 python scripts/ab_bench.py run /path/to/old old1.json -b 'Sum|Kron'
    OPENBLAS_NUM_THREADS=1 python scripts/ab_bench.py run /path/to/new new1.json -b 'Sum|Kron'
    python scripts/ab_bench.py compare old1.json,old2.json new1.json,new2.json

``run TREE OUT`` imports ``structjac`` and the benchmark modules from ``TREE`` (whatever
``structjac`` is installed is shadowed), runs every ``time_*`` method of every class whose
``Class.method(params)`` name matches ``-b`` (a Python regex, searched), and writes
``{name: best seconds per call}``.  ``compare OLD NEW`` takes comma-separated lists of such
files, keeps the minimum over each list per row, and prints the ratio new/old per row, the
rows whose ratio is above ``--factor``, and the same spread *within* each side (the first
file of a list against the others), which is the noise floor the ratios should be read
against.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import itertools
import json
import os
import re
import sys
import time
import timeit


def _iter_cases(tree, pattern):
    """Yield ``(name, instance, method, params)`` for every matching benchmark case."""
    bench_dir = os.path.join(tree, "benchmarks")
    sys.path[:0] = [tree, bench_dir]
    package = importlib.import_module("benchmarks")
    regex = re.compile(pattern)
    for module_file in sorted(os.listdir(os.path.join(bench_dir, "benchmarks"))):
        if not module_file.startswith("bench_") or not module_file.endswith(".py"):
            continue
        module = importlib.import_module(f"{package.__name__}.{module_file[:-3]}")
        for class_name, cls in sorted(vars(module).items()):
            if (
                class_name.startswith("_")  # asv skips these too (abstract bases)
                or not inspect.isclass(cls)
                or cls.__module__ != module.__name__
            ):
                continue
            methods = [m for m in sorted(dir(cls)) if m.startswith("time_")]
            if not methods:
                continue
            params = getattr(cls, "params", [])
            if params and not isinstance(params[0], (list, tuple)):
                params = [params]
            combos = list(itertools.product(*params)) if params else [()]
            for combo, method in itertools.product(combos, methods):
                label = ", ".join(repr(p) for p in combo)
                name = f"{module_file[:-3]}.{class_name}.{method}({label})"
                if regex.search(name):
                    yield name, cls, method, combo


def _time_case(cls, method, combo, budget):
    """Best seconds per call of one case, or ``None`` when its setup skips it."""
    instance = cls()
    try:
        if hasattr(instance, "setup"):
            instance.setup(*combo)
    except NotImplementedError:
        return None
    func = getattr(instance, method)
    call = lambda: func(*combo)  # noqa: E731
    call()
    timer = timeit.Timer(call)
    number, elapsed = 1, 0.0
    while True:  # calls per repeat so that one repeat takes about 2 ms
        elapsed = timer.timeit(number)
        if elapsed > 2e-3 or number >= 1 << 20:
            break
        number *= 4
    repeats = max(3, min(50, int(budget / max(elapsed, 1e-9))))
    best = min(timer.repeat(repeat=repeats, number=number)) / number
    if hasattr(instance, "teardown"):
        instance.teardown(*combo)
    return best


def run(args):
    results = {}
    start = time.perf_counter()
    for name, cls, method, combo in _iter_cases(os.path.abspath(args.tree), args.bench):
        best = _time_case(cls, method, combo, args.budget)
        if best is not None:
            results[name] = best
    with open(args.out, "w") as handle:
        json.dump(results, handle, indent=0, sort_keys=True)
    print(f"{len(results)} rows in {time.perf_counter() - start:.0f} s -> {args.out}")


def _load_min(paths):
    runs = []
    for path in paths.split(","):
        with open(path) as handle:
            runs.append(json.load(handle))
    common = set.intersection(*(set(r) for r in runs))
    return {k: min(r[k] for r in runs) for k in common}, runs


def _summary(label, ratios, factor):
    values = sorted(ratios.values())
    if not values:
        return
    median = values[len(values) // 2]
    above = sum(v > factor for v in values)
    below = sum(v < 1 / factor for v in values)
    print(
        f"{label}: {len(values)} rows, median {median:.3f}, "
        f"{above} above {factor}, {below} below {1 / factor:.3f}"
    )


def compare(args):
    old, old_runs = _load_min(args.old)
    new, new_runs = _load_min(args.new)
    rows = sorted(set(old) & set(new))
    ratios = {k: new[k] / old[k] for k in rows}
    reference = re.compile(args.reference)
    for kind, keep in (("structured", False), ("reference", True)):
        part = {k: v for k, v in ratios.items() if bool(reference.search(k)) == keep}
        _summary(f"new/old {kind}", part, args.factor)
    for label, runs in (("old/old", old_runs), ("new/new", new_runs)):
        if len(runs) < 2:
            continue
        first, rest = runs[0], {k: min(r[k] for r in runs[1:]) for k in runs[1]}
        spread = {k: first[k] / rest[k] for k in set(first) & set(rest)}
        _summary(f"spread {label} (first run / best of the others)", spread, args.factor)
    print(f"\nrows with new/old > {args.factor} (old µs, new µs, ratio):")
    for k in sorted(rows, key=lambda k: -ratios[k]):
        if ratios[k] > args.factor:
            print(f"  {k}: {old[k] * 1e6:.2f} {new[k] * 1e6:.2f} {ratios[k]:.2f}")
    if args.all:
        print("\nall rows:")
        for k in rows:
            print(f"  {k}: {old[k] * 1e6:.2f} {new[k] * 1e6:.2f} {ratios[k]:.2f}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser("run", help="time one tree")
    p_run.add_argument("tree", help="a checkout of structjac (its root)")
    p_run.add_argument("out", help="JSON file to write")
    p_run.add_argument("-b", "--bench", default="", help="regex of benchmark names")
    p_run.add_argument("--budget", type=float, default=0.05, help="seconds of repeats per row")
    p_cmp = sub.add_parser("compare", help="compare runs of two trees")
    p_cmp.add_argument("old", help="comma-separated JSON files of the old tree")
    p_cmp.add_argument("new", help="comma-separated JSON files of the new tree")
    p_cmp.add_argument("--factor", type=float, default=1.1)
    p_cmp.add_argument(
        "--reference",
        default=r"'(dense|numpy|floor|torch|jax|scipy)'",
        help="regex of rows that time only other libraries (reported apart)",
    )
    p_cmp.add_argument("--all", action="store_true", help="print every row")
    args = parser.parse_args(argv)
    run(args) if args.command == "run" else compare(args)


if __name__ == "__main__":
    main()
