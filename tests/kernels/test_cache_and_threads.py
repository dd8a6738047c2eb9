"""Kernel infrastructure: disk cache from a read-only package, threading layers, threads,
float32 kept in float32 inside the compiled code."""

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

import structjac
from structjac import kernels as K
from .support import run_python as _run

PACKAGE = Path(structjac.__file__).resolve().parent
NOBODY = 65534


def _readonly_tree(root):
    for dirpath, dirnames, filenames in os.walk(root):
        for f in filenames:
            os.chmod(os.path.join(dirpath, f), 0o444)
        os.chmod(dirpath, 0o555)


def test_cache_falls_back_to_user_dir_when_package_is_read_only():
    """Numba's locator chain (InTreeCacheLocator, then UserWideCacheLocator) must cache a
    kernel from a read-only copy of the package into $XDG_CACHE_HOME/numba."""
    work = Path(tempfile.mkdtemp(prefix="structjac-ro-"))
    try:
        os.chmod(work, 0o755)
        shutil.copytree(
            PACKAGE,
            work / "structjac",
            ignore=shutil.ignore_patterns("__pycache__", "*.nbi", "*.nbc"),
        )
        cache_home = work / "xdg-cache"
        cache_home.mkdir()
        os.chmod(cache_home, 0o777)
        _readonly_tree(work / "structjac")
        # root ignores file permissions: drop to an unprivileged user inside the child,
        # after the interpreter, NumPy and Numba are loaded (they may live under /root)
        drop = os.geteuid() == 0
        code = f"""
            import os, sys
            import numpy as np, numba
            numba.njit(lambda a: a + 1)(1.0)             # load the compiler before dropping
            import numba.core.caching, scipy.sparse, scipy.sparse.linalg
            if {drop!r}:
                os.setgid({NOBODY}); os.setuid({NOBODY})
            assert not os.access({str(work / "structjac" / "kernels")!r}, os.W_OK)
            sys.path.insert(0, {str(work)!r})
            from structjac.kernels import unary
            x = np.linspace(-3, 3, 11)
            s = 1 / (1 + np.exp(-x))
            assert np.allclose(unary.sigmoid_vjp(x, np.ones(11)), s * (1 - s))
            print(unary._sigmoid_vjp_serial._cache._cache_path)
        """
        out = _run(code, {"XDG_CACHE_HOME": str(cache_home)})
        assert out.strip().startswith(str(cache_home / "numba")), out
        written = list((cache_home / "numba").rglob("*.nbi"))
        assert written, "no cache index was written to the user-wide cache dir"
        assert not list((work / "structjac").rglob("*.nbi"))
    finally:
        for dirpath, dirnames, filenames in os.walk(work):
            os.chmod(dirpath, 0o755)
        shutil.rmtree(work, ignore_errors=True)


def test_workqueue_threading_layer_runs_parallel_kernels():
    code = """
        import numpy as np, numba
        from structjac import kernels as K
        n = K.get_parallel_threshold() * 2
        K._config.LOAD_AWARE = False          # the parallel kernels even on a busy machine
        x = np.linspace(-5, 5, n)
        g = np.ones(n)
        s = 1 / (1 + np.exp(-x))
        assert np.allclose(K.sigmoid_vjp(x, g), s * (1 - s))
        y = np.zeros((n // 2, 2)); h = np.ones((n // 2, 2))
        assert np.allclose(K.mse_per_sample(y, h), 2.0)
        assert K.unary._sigmoid_vjp_parallel.signatures
        print(numba.threading_layer())
    """
    out = _run(code, {"NUMBA_THREADING_LAYER": "workqueue"})
    assert out.strip() == "workqueue"


def test_float32_kernels_never_promote_to_float64():
    """Compile every kernel, serial and parallel, fresh for float32 and look for
    float -> double in the IR (the parallel module includes its gufunc)."""
    code = """
        import inspect, re
        import numpy as np
        from structjac import kernels as K
        from structjac.kernels import unary, binary, losses
        x = np.linspace(0.1, 0.9, 10).astype(np.float32)
        for threshold in (1 << 62, 0):                   # serial, then parallel
            K.set_parallel_threshold(threshold)
            for name in unary.__all__:
                f = getattr(unary, name)
                args = [x] + ([x] if "g" in inspect.signature(f).parameters else [])
                f(*args)
            binary.multiply_vjp(x, x, x); binary.divide_vjp(x, x, x); binary.divide_jacobians(x, x)
            for name in ("mse", "bce", "bce_with_logits"):
                getattr(losses, name + "_grad")(x, x, 0.5)
        bad, checked = [], {"serial": 0, "parallel": 0}
        for mod in (unary, binary, losses):
            for k, disp in vars(mod).items():
                kind = k.rsplit("_", 1)[-1]
                if kind in checked and hasattr(disp, "signatures"):
                    for sig in disp.signatures:
                        if "float32" in str(sig) and "per_sample" not in k:
                            checked[kind] += 1
                            if re.search(r"fpext float", disp.inspect_llvm(sig)):
                                bad.append(k)
        print(sorted(set(bad)), checked["serial"], checked["parallel"])
    """
    with tempfile.TemporaryDirectory() as cache:
        out = _run(code, {"NUMBA_CACHE_DIR": cache})  # fresh compile, inspectable IR
    bad, serial, parallel = out.rsplit(" ", 2)
    assert bad == "[]" and int(serial) >= 25 and int(parallel) >= 25, out


def test_set_num_threads_round_trip():
    old = K.get_num_threads()
    try:
        K.set_num_threads(1)
        assert K.get_num_threads() == 1
        x = np.linspace(-1, 1, K.get_parallel_threshold() + 1)
        np.testing.assert_allclose(K.tanh_derivative(x), 1 / np.cosh(x) ** 2, rtol=1e-14)
    finally:
        K.set_num_threads(old)
    with pytest.raises(ValueError):
        K.set_num_threads(0)


def test_threads_not_set_at_import():
    code = """
        import numba
        n = numba.get_num_threads()
        import structjac.kernels
        assert numba.get_num_threads() == n == numba.config.NUMBA_NUM_THREADS
        print("ok")
    """
    assert _run(code).strip() == "ok"


def test_parallel_threshold_setter():
    old = K.set_parallel_threshold(0)
    try:
        x = np.linspace(-2, 2, 33)
        np.testing.assert_allclose(K.relu_vjp(x, x), np.where(x >= 0, x, 0.0))
        assert K.unary._relu_vjp_parallel.signatures
    finally:
        K.set_parallel_threshold(old)
    with pytest.raises(ValueError, match=">= 0"):
        K.set_parallel_threshold(-1)


def test_fastmath_flags_keep_nan():
    assert K.FASTMATH == {"nsz", "arcp", "contract", "afn", "reassoc"}
    from structjac.kernels._config import JIT

    assert JIT["fastmath"] is not True and "nnan" not in JIT["fastmath"]
    x = np.array([np.nan, 1.0])
    assert np.isnan(K.relu_derivative(x)[0]) and np.isnan(K.leaky_relu_vjp(x, x)[0])


# --- one body, two compilations, two cache indexes ---------------------------------


def _kernel_pairs():
    """Every (name, serial, parallel) dispatcher pair of the kernel modules."""
    from structjac.kernels import binary, losses, unary

    for mod in (unary, binary, losses):
        for name, serial in vars(mod).items():
            if name.endswith("_serial") and hasattr(serial, "signatures"):
                yield f"{mod.__name__}.{name[:-7]}", serial, getattr(mod, name[:-7] + "_parallel")


def test_serial_and_parallel_are_one_body_with_separate_cache_indexes():
    pairs = list(_kernel_pairs())
    from structjac.kernels._scalars import ACTIVATIONS

    unary = [e for e in ACTIVATIONS.values() if e.op is not None]
    n_unary = 3 * len(unary) + 2 * sum(e.from_output is not None for e in unary)
    assert n_unary >= 25  # 7 activations, 2 from the output
    assert len(pairs) == n_unary + 3 + 6  # + binary + losses
    index_files = set()
    for name, serial, parallel in pairs:
        assert serial.py_func.__code__.co_code == parallel.py_func.__code__.co_code, name
        assert "parallel" not in serial.targetoptions, name
        assert parallel.targetoptions["parallel"] is True, name
        for disp, suffix in ((serial, "_serial"), (parallel, "_parallel")):
            assert disp.py_func.__qualname__.endswith(suffix), name
            assert disp.targetoptions["fastmath"] == K.FASTMATH, name
            assert disp._cache._cache_file._index_path.endswith(".nbi"), name
            index_files.add(disp._cache._cache_file._index_path)
    assert len(index_files) == 2 * len(pairs)  # no two dispatchers share an index


# Run in a child with a given NUMBA_CACHE_DIR: compile (first run) or load (second
# run) the serial and then the parallel variant of a few kernels, float32 and
# float64, and report per variant: cache hits, cache misses, whether the results
# are right, and whether a parallel region has run in the process so far
# (numba.threading_layer() raises until the first parallel launch).  A serial
# dispatcher that loaded parallel machine code from a shared index would start the
# threading layer.
_ROUND_TRIP = """
    import sys
    import numba, numpy as np
    sys.path.insert(0, {probe_dir!r})
    from structjac.kernels import unary, losses
    import probe

    def threads_started():
        try:
            numba.threading_layer()
            return True
        except ValueError:
            return False

    def sig_vjp(x):
        s = 1 / (1 + np.exp(-x.astype(np.float64)))
        return s * (1 - s)

    cases = {{
        "sigmoid_vjp": (unary._sigmoid_vjp_serial, unary._sigmoid_vjp_parallel,
                        lambda x: (x, np.ones_like(x), x.dtype.type(0), x.dtype.type(0)),
                        sig_vjp),
        "relu_vjp": (unary._relu_vjp_serial, unary._relu_vjp_parallel,
                     lambda x: (x, x, x.dtype.type(1), x.dtype.type(0)),
                     lambda x: np.where(x >= 0, x, 0)),
        "mse_per_sample": (losses._mse_per_sample_serial, losses._mse_per_sample_parallel,
                           lambda x: (x.reshape(-1, 2), np.zeros_like(x).reshape(-1, 2),
                                      x.dtype.type(0)),
                           lambda x: (x.astype(np.float64).reshape(-1, 2) ** 2).sum(1)),
        "probe": (probe.ours_serial, probe.ours_parallel, lambda x: (x,), lambda x: 2 * x),
        "naive": (probe.naive_serial, probe.naive_parallel, lambda x: (x,), lambda x: 2 * x),
    }}
    names = {names!r}
    for kind in (0, 1):                                   # every serial variant first
        for name in names:
            disp, make_args, ref = cases[name][kind], cases[name][2], cases[name][3]
            ok = True
            for dt in (np.float32, np.float64):
                x = np.linspace(-3, 3, 4096).astype(dt)
                args = make_args(x)
                out = np.empty(args[0].shape[0], dt)
                disp(*args, out)
                ok &= bool(np.allclose(out, ref(x), rtol=1e-6, atol=1e-6))
            hits = sum(disp.stats.cache_hits.values())
            misses = sum(disp.stats.cache_misses.values())
            print(name, ("serial", "parallel")[kind], hits, misses, int(ok), int(threads_started()))
"""

_PROBE = """
import numba
from structjac.kernels._config import JIT, JIT_PARALLEL, serial_and_parallel


def _twice(x, out):
    for i in numba.prange(x.size):
        out[i] = x[i] + x[i]


def _twice_naive(x, out):
    for i in numba.prange(x.size):
        out[i] = x[i] + x[i]


ours_serial, ours_parallel = serial_and_parallel(_twice)
# what serial_and_parallel avoids: one function object compiled twice
naive_serial = numba.njit(**JIT)(_twice_naive)
naive_parallel = numba.njit(**JIT_PARALLEL)(_twice_naive)
"""


def _round_trip(cache, probe_dir, names):
    out = _run(
        _ROUND_TRIP.format(probe_dir=str(probe_dir), names=names), {"NUMBA_CACHE_DIR": str(cache)}
    )
    rows = {}
    for line in out.split("\n"):
        if line.strip():
            name, kind, hits, misses, ok, started = line.split()
            rows[name, kind] = (int(hits), int(misses), int(ok), int(started))
    return rows


def test_disk_cache_round_trip_keeps_serial_and_parallel_apart(tmp_path):
    """Compile serial and parallel variants into a fresh cache, then load both in a new
    process: each must load from the cache (float32 and float64), compute the right
    result, and be the variant it claims (a serial kernel starts no threads).  The
    same check on one function compiled twice (the naive way) must fail."""
    probe_dir = tmp_path / "probe"
    probe_dir.mkdir()
    (probe_dir / "probe.py").write_text(_PROBE)
    cache = tmp_path / "cache"
    ours = ["sigmoid_vjp", "relu_vjp", "mse_per_sample", "probe"]

    first = _round_trip(cache, probe_dir, ours + ["naive"])
    for name in ours:
        assert first[name, "serial"] == (0, 2, 1, 0), (name, first)  # compiled, no threads
        assert first[name, "parallel"][:3] == (0, 2, 1), (name, first)
    assert first[ours[-1], "parallel"][3] == 1  # threads started

    second = _round_trip(cache, probe_dir, ours)
    for name in ours:
        assert second[name, "serial"] == (2, 0, 1, 0), (name, second)  # loaded, still no threads
        assert second[name, "parallel"][:3] == (2, 0, 1), (name, second)
    assert second[ours[-1], "parallel"][3] == 1

    # Negative control, one function compiled twice: its "parallel" dispatcher found
    # the serial machine code in the shared index instead of compiling (2 hits in the
    # first process), and run alone in a new process it starts no threads at all.
    assert first["naive", "serial"] == (0, 2, 1, 0), first
    assert first["naive", "parallel"][:3] == (2, 0, 1), first
    naive = _round_trip(cache, probe_dir, ["naive"])
    assert naive["naive", "parallel"] == (2, 0, 1, 0), naive
