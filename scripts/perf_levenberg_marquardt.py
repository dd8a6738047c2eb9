r"""Steps and seconds to train the lecture's network: Levenberg-Marquardt against gradient
descent, in the same run (the problem and both loops are those of the asv benchmark
``bench_training.TrainToLoss``, whose docstring says what is measured).

    OPENBLAS_NUM_THREADS=1 PYTHONPATH=. python scripts/perf_levenberg_marquardt.py \
        [--targets 1e-1,3e-2,1e-2,1e-3] [--n 1024]

Each row is one method (gradient descent at each learning rate of ``GD_RATES``) run from the
same start until its excess loss is at most the target; the clock is the calling thread's
CPU time (one BLAS thread, serial kernels). ``speed-up`` is the best gradient descent's
seconds over Levenberg-Marquardt's at that target.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

# The asv suite's package (benchmarks/benchmarks), ahead of any installed "benchmarks".
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from benchmarks import bench_training as bt  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--targets", default="1e-1,3e-2,1e-2,1e-3")
    parser.add_argument("--n", type=int, default=bt.N)
    args = parser.parse_args(argv)
    targets = [float(t) for t in args.targets.split(",")]
    problem = bt.teacher_student(args.n)
    runs = [("levenberg_marquardt", None)] + [("gradient_descent", lr) for lr in bt.GD_RATES]
    for method, lr in runs:  # compile every kernel before the first timing
        bt.steps_to_target(method, problem, target=np.inf, lr=lr or bt.GD_RATE)
    print(f"N = {args.n}, excess loss J - J* (J* = {problem[3]:.4f}), CPU seconds")
    print(f"{'target':>8} {'method':<28} {'steps':>6} {'seconds':>8} {'excess':>9} {'speed-up':>8}")
    for target in targets:
        rows = []
        for method, lr in runs:
            t0 = time.process_time()
            steps, excess = bt.steps_to_target(method, problem, target, lr=lr or bt.GD_RATE)
            seconds = time.process_time() - t0
            reached = excess <= target
            rows.append((method if lr is None else f"{method} lr={lr:g}", steps, seconds, reached))
            mark = "" if reached else " (not reached)"
            print(f"{target:8.0e} {rows[-1][0]:<28} {steps:6d} {seconds:8.2f} {excess:9.2e}{mark}")
        lm_seconds = rows[0][2] if rows[0][3] else np.nan
        gd = [s for _, _, s, ok in rows[1:] if ok]
        best_gd = min(gd) if gd else np.inf
        print(
            f"{'':8} {'speed-up in seconds':<28} {'':6} {'':8} {'':9} {best_gd / lm_seconds:8.1f}"
        )


if __name__ == "__main__":
    main()
