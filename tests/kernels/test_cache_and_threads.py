"""Kernel infrastructure: disk cache from a read-only package, threading layers, threads,
float32 kept in float32 inside the compiled code."""

import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np
import pytest

import structjac
from structjac import kernels as K

PACKAGE = Path(structjac.__file__).resolve().parent
NOBODY = 65534


def _run(code, env_extra=None, timeout=240):
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_")}
    env.update(env_extra or {})
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


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
        shutil.copytree(PACKAGE, work / "structjac",
                        ignore=shutil.ignore_patterns("__pycache__", "*.nbi", "*.nbc"))
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
    """Compile every kernel fresh for float32 and look for float -> double in the IR."""
    code = """
        import inspect, re
        import numpy as np
        from structjac.kernels import unary, binary, losses
        x = np.linspace(0.1, 0.9, 10).astype(np.float32)
        for name in unary.__all__:
            f = getattr(unary, name)
            args = [x] + ([x] if "g" in inspect.signature(f).parameters else [])
            f(*args)
        binary.multiply_vjp(x, x, x); binary.divide_vjp(x, x, x); binary.divide_jacobians(x, x)
        for name in ("mse", "bce", "bce_with_logits"):
            getattr(losses, name + "_grad")(x, x, 0.5)
        bad, checked = [], 0
        for mod in (unary, binary, losses):
            for k, disp in vars(mod).items():
                if k.endswith("_serial") and hasattr(disp, "signatures"):
                    for sig in disp.signatures:
                        if "float32" in str(sig) and "per_sample" not in k:
                            checked += 1
                            if re.search(r"fpext float", disp.inspect_llvm(sig)):
                                bad.append(k)
        print(sorted(set(bad)), checked)
    """
    with tempfile.TemporaryDirectory() as cache:
        out = _run(code, {"NUMBA_CACHE_DIR": cache})       # fresh compile, inspectable IR
    bad, checked = out.rsplit(" ", 1)
    assert bad == "[]" and int(checked) >= 25, out


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
