"""Serial against parallel kernels on an idle and on a busy machine (issue 13).

Run:  OPENBLAS_NUM_THREADS=1 PYTHONPATH=. python scripts/perf_parallel_load.py [--hogs 0 2]
      [--reps 200]   (prefix NUMBA_THREADING_LAYER=workqueue to time that layer)

For each number of CPU hogs (``python -c "while 1: pass"`` processes started beside the
timing and killed after it) and n = 2^16, 2^18, 2^20 float64 elements, prints the median
and 90th percentile of one call of

* the serial and the parallel sigmoid kernels (``structjac.kernels.unary``), called
  directly, and
* the public ``structjac.ops.sigmoid``, whose wrapper chooses between them, with the
  load check of ``structjac.kernels._config.pick`` off (the old rule: parallel from
  ``PARALLEL_THRESHOLD`` elements on) and on (parallel only with an idle CPU per thread),

and the scheduler's count of runnable tasks (``/proc/loadavg``) at the time.  Each kernel is
called once before timing.  The machine may be shared: compare within one run.
"""

import argparse
import subprocess
import sys
import time

import numba
import numpy as np

from structjac import ops
from structjac.kernels import _config, unary


def _median_p90(f, args, reps):
    f(*args)
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        f(*args)
        times.append(time.perf_counter() - t)
    times.sort()
    return times[len(times) // 2] * 1e3, times[int(len(times) * 0.9)] * 1e3


def _runnable():
    try:
        with open("/proc/loadavg") as f:
            return f.read().split()[3]
    except OSError:
        return "?"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hogs", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--reps", type=int, default=200)
    args = parser.parse_args(argv)
    for hogs in args.hogs:
        procs = [subprocess.Popen([sys.executable, "-c", "while 1: pass"]) for _ in range(hogs)]
        try:
            time.sleep(0.5 if hogs else 0.0)
            for n in (1 << 16, 1 << 18, 1 << 20):
                x = np.linspace(-3, 3, n)
                out = np.empty(n)
                rows = {
                    "serial kernel": _median_p90(unary._sigmoid_serial, (x, out), args.reps),
                    "parallel kernel": _median_p90(unary._sigmoid_parallel, (x, out), args.reps),
                }
                old = _config.LOAD_AWARE
                try:
                    for aware in (False, True):
                        _config.LOAD_AWARE = aware
                        rows[f"ops.sigmoid load check {'on' if aware else 'off'}"] = _median_p90(
                            ops.sigmoid, (x, out), args.reps
                        )
                finally:
                    _config.LOAD_AWARE = old
                print(f"layer={numba.threading_layer()} hogs={hogs} runnable={_runnable()} n={n}")
                for name, (med, p90) in rows.items():
                    print(f"    {name:<28} median {med:8.3f} ms   p90 {p90:8.3f} ms")
        finally:
            for p in procs:
                p.kill()
                p.wait()


if __name__ == "__main__":
    main()
