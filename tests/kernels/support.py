"""Helpers shared by the kernel tests: a fresh Python process, ulp distances, and a scan of
compiled kernels for packed SIMD arithmetic and libm calls."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import textwrap

import numpy as np


def run_python(code, env_extra=None, timeout=300):
    """Run ``code`` in a fresh interpreter (no inherited NUMBA_* settings); return stdout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_")}
    env.update(env_extra or {})
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def ulp_distance(a, b):
    """Number of representable floats between a and b (0 when both are NaN)."""
    a = np.asarray(a)
    b = np.asarray(b)
    assert a.dtype == b.dtype
    ity = np.int64 if a.dtype == np.float64 else np.int32
    lowest = np.int64(np.iinfo(ity).min)
    ia = a.view(ity).astype(np.int64)
    ib = b.view(ity).astype(np.int64)
    ia = np.where(ia < 0, lowest - ia, ia)  # monotone map: -0.0 and +0.0 both -> 0
    ib = np.where(ib < 0, lowest - ib, ib)
    d = np.abs(ia - ib)
    d[np.isnan(a) & np.isnan(b)] = 0
    d[np.isnan(a) ^ np.isnan(b)] = np.iinfo(np.int64).max
    return d


#: Run in the fresh process after the caller's code, which defines ``kernels_for(dt)``
#: returning ``[(dispatcher, args), ...]``: compile each kernel by calling it, then count
#: packed multiply/FMA instructions in its assembly and look for libm calls in its IR.
_SCAN = r"""
import re
import numpy as np
res = []
for dt in (np.float32, np.float64):
    for k, args in kernels_for(dt):
        k(*args)
        sig = k.signatures[-1]
        asm = k.inspect_asm(sig)
        llvm = k.inspect_llvm(sig)
        suffix = "ps" if dt == np.float32 else "pd"
        packed = len(re.findall(r"\b(?:" + PACKED + ")" + suffix + r"\s+[^\n]*%[xyz]mm", asm))
        libm = bool(re.search(LIBM, llvm))
        res.append(f"{k.__name__}:{np.dtype(dt).name}:{packed}:{int(libm)}")
print(" ".join(res))
"""


def vectorisation_report(kernels_code, libm, packed=r"v?mul|vfn?madd\w*"):
    """Compile kernels fresh (empty cache, so the code is inspectable) in a new process.

    Returns rows ``[name, dtype, packed instruction count, "1" if a libm call matched]``.
    """
    code = "\n".join(
        [textwrap.dedent(kernels_code), f"PACKED = {packed!r}", f"LIBM = {libm!r}", _SCAN]
    )
    with tempfile.TemporaryDirectory() as cache:
        out = run_python(code, {"NUMBA_CACHE_DIR": cache})
    return [row.split(":") for row in out.split()]
