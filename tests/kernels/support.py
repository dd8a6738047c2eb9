"""Helpers shared by the kernel tests: a fresh Python process, and ulp distances."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np


def run_python(code, env_extra=None, timeout=300):
    """Run ``code`` in a fresh interpreter (no inherited NUMBA_* settings); return stdout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_")}
    env.update(env_extra or {})
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env,
                          capture_output=True, text=True, timeout=timeout)
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
    ia = np.where(ia < 0, lowest - ia, ia)          # monotone map: -0.0 and +0.0 both -> 0
    ib = np.where(ib < 0, lowest - ib, ib)
    d = np.abs(ia - ib)
    d[np.isnan(a) & np.isnan(b)] = 0
    d[np.isnan(a) ^ np.isnan(b)] = np.iinfo(np.int64).max
    return d
