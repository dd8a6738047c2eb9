"""Smoke test of the asv suite in benchmarks/: every rule has a benchmark, every case runs.

The timings themselves belong to asv (``benchmarks/README.md``); here each benchmark case
is built and called once at its smallest size, and the structured and dense forms are
checked to compute the same thing where they return comparable values.
"""

from __future__ import annotations

import importlib
import inspect
import json
import pathlib
import re
import sys

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
BENCH_DIR = ROOT / "benchmarks"

sys.path.insert(0, str(BENCH_DIR))
common = importlib.import_module("benchmarks.common")

MODULES = sorted(p.stem for p in (BENCH_DIR / "benchmarks").glob("bench_*.py"))


def _module(name):
    return importlib.import_module(f"benchmarks.{name}")


def _cases():
    for name in MODULES:
        mod = _module(name)
        for cls_name, cls in sorted(vars(mod).items()):
            if (
                inspect.isclass(cls)
                and issubclass(cls, common.StructuredVsDense)
                and not inspect.isabstract(cls)
                and not cls_name.startswith("_")
                and cls.__module__ == mod.__name__
            ):
                for form in cls.params[1]:
                    yield pytest.param(cls, cls.params[0][0], form, id=f"{name}.{cls_name}-{form}")


def test_asv_conf_is_json_with_comments():
    text = (BENCH_DIR / "asv.conf.json").read_text()
    conf = json.loads(re.sub(r"^\s*//.*$", "", text, flags=re.M))
    assert conf["repo"] == ".."
    assert conf["branches"] == ["HEAD"]
    assert conf["benchmark_dir"] == "benchmarks"


def test_every_rule_of_the_table_has_a_benchmark():
    sj = pytest.importorskip("structjac")
    rules = _module("bench_rules")
    table = {(r.operation, r.left.__name__, r.right.__name__) for r in sj.rules()}
    assert table - set(rules.CASES) == set()


@pytest.mark.parametrize("key", sorted(_module("bench_rules").CASES))
def test_rule_case_reaches_its_rule_and_equals_the_dense_product(key):
    from structjac.algebra import _lookup

    name, sizes, builder = _module("bench_rules").CASES[key]
    A, B = builder(16)
    rule = _lookup(key[0], type(A), type(B))
    assert (rule.operation, rule.left.__name__, rule.right.__name__) == key
    out = A @ B if key[0] == "matmul" else A + B
    ref = A.to_dense() @ B.to_dense() if key[0] == "matmul" else A.to_dense() + B.to_dense()
    np.testing.assert_allclose(out.to_dense(), ref, atol=1e-12)


@pytest.mark.parametrize("cls, n, form", list(_cases()))
def test_case_runs_at_its_smallest_size(cls, n, form):
    bench = cls()
    try:
        bench.setup(n, form)
    except NotImplementedError as exc:  # optional dependency missing, or dense too big
        pytest.skip(str(exc))
    bench.time_op(n, form)
    if hasattr(bench, "track_stored_bytes") and form == "structured" and "dense" in cls.params[1]:
        # what the structure stores is never more than the dense form of the same case
        dense = cls()
        dense.setup(n, "dense")
        stored, dense_bytes = (
            bench.track_stored_bytes(n, form),
            dense.track_stored_bytes(n, "dense"),
        )
        assert 0 <= stored <= dense_bytes, (stored, dense_bytes)


def test_numpy_backprop_matches_structjac():
    nn = pytest.importorskip("structjac.nn")
    net = _module("bench_network")
    params, X, y = net.make_problem(64, dtype=np.float64)
    loss, grads = net.numpy_value_and_grad(params, X, y)
    ref_loss, ref = nn.value_and_grad(params, X, y, net.ACTIVATIONS, "bce")
    assert np.isclose(loss, ref_loss, rtol=1e-12)
    for (gW, gb), (rW, rb) in zip(grads, ref):
        np.testing.assert_allclose(gW, rW, rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(gb, rb, rtol=1e-10, atol=1e-14)


def test_plot_results_on_a_fake_result(tmp_path):
    pytest.importorskip("matplotlib")
    plot = importlib.import_module("plot_results")
    result = {
        "commit_hash": "0" * 40,
        "params": {"machine": "m"},
        "result_columns": [
            "result",
            "params",
            "version",
            "started_at",
            "duration",
            "stats_ci_99_a",
            "stats_ci_99_b",
            "stats_q_25",
            "stats_q_75",
            "stats_number",
            "stats_repeat",
            "samples",
            "profile",
        ],
        "results": {
            "bench_rules.Diagonal_at_Diagonal.time_op": [
                [1e-6, 2e-6, 1e-3, None],
                [["256", "1024"], ["'structured'", "'dense'"]],
            ],
            "bench_rules.Diagonal_at_Diagonal.track_stored_bytes": [
                [2048, 8192, 524288, None],
                [["256", "1024"], ["'structured'", "'dense'"]],
            ],
        },
    }
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / ("0" * 8 + "-existing.json")).write_text(json.dumps(result))
    out = tmp_path / "png"
    written = plot.main(["--results", str(tmp_path), "--out", str(out)])
    assert written and all(pathlib.Path(p).stat().st_size > 0 for p in written)
