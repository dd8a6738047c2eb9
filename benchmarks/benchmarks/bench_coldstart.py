"""Cold start: ``import structjac`` and the first calls, in a fresh interpreter.

``timeraw_`` benchmarks run their code in a new Python process per sample, so nothing is
imported or compiled beforehand. ``numba_cache``:

``fresh``
    ``NUMBA_CACHE_DIR`` is a new empty directory for every sample: the first call pays
    the Numba compilation of its kernels;
``warm``
    ``NUMBA_CACHE_DIR`` was filled by one run in ``setup``: the kernels load from disk.

(``NUMBA_CACHE_DIR`` takes precedence over the in-tree ``__pycache__`` cache.)
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile

IMPORT = "import structjac"

FIRST_CALL = """
import numpy as np
import structjac
from structjac.ops import sigmoid, mse
x = np.linspace(-2.0, 2.0, 1000)
sigmoid.jacobian(x)
sigmoid.vjp(x, x)
mse.grad(x, sigmoid(x))
"""


class ColdStart:
    params = [["fresh", "warm"]]
    param_names = ["numba_cache"]
    number = 1
    repeat = (1, 3, 60.0)
    rounds = 1
    warmup_time = 0.0
    timeout = 600

    def setup(self, numba_cache):
        try:
            import structjac
        except ImportError as exc:
            raise NotImplementedError(f"structjac is not importable: {exc}") from None
        # The child interpreter must time the same structjac this process imported
        # (asv passes no PYTHONPATH to it when the package is not installed).
        self.root = os.path.dirname(os.path.dirname(os.path.abspath(structjac.__file__)))
        self.parent = tempfile.mkdtemp(prefix="structjac-bench-numba-")
        self.warm_dir = os.path.join(self.parent, "warm")
        os.mkdir(self.warm_dir)
        if numba_cache == "warm":
            path = os.pathsep.join([self.root] + [p for p in [os.environ.get("PYTHONPATH")] if p])
            env = dict(os.environ, NUMBA_CACHE_DIR=self.warm_dir, PYTHONPATH=path)
            subprocess.run([sys.executable, "-c", FIRST_CALL], env=env, check=True)

    def teardown(self, numba_cache):
        parent = getattr(self, "parent", None)  # asv tears down after a skipped setup too
        if parent is not None:
            shutil.rmtree(parent, ignore_errors=True)

    def _env_setup(self, numba_cache):
        if numba_cache == "warm":
            target = repr(self.warm_dir)
        else:
            target = f"tempfile.mkdtemp(dir={self.parent!r})"
        return (
            "import os, sys, tempfile\n"
            f"sys.path.insert(0, {self.root!r})\n"
            f"os.environ['NUMBA_CACHE_DIR'] = {target}\n"
        )

    def timeraw_import(self, numba_cache):
        return IMPORT, self._env_setup(numba_cache)

    def timeraw_import_and_first_call(self, numba_cache):
        return FIRST_CALL, self._env_setup(numba_cache)
