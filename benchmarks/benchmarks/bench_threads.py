"""The parallel (``prange``) kernels: the fused sigmoid vjp on 1 and 2 Numba threads.

Every other benchmark runs on one thread. Here ``threads`` sets ``numba.set_num_threads``
for the structured kernel; ``track_floor_multiple`` divides its time by the one-thread
numpy floor ``np.multiply(a, g, out=o)`` at the same size (below 1.0: faster than one
core can stream the arrays).
"""

from __future__ import annotations

import timeit

import numpy as np

from .common import limit_threads, pick_sizes, rng, structjac_part

SIZES = (65536, 1_048_576, 8_388_608)


class ParallelVjp:
    params = [pick_sizes(SIZES), [1, 2]]
    param_names = ["n", "threads"]
    rounds = 1
    repeat = (1, 5, 3.0)
    warmup_time = 0.05

    def setup(self, n, threads):
        import numba

        if threads > numba.config.NUMBA_NUM_THREADS:
            raise NotImplementedError(f"{threads} threads > NUMBA_NUM_THREADS")
        limit_threads(threads)
        self.op = structjac_part("structjac.ops").sigmoid
        self.x = rng(0).standard_normal(n)
        self.g = rng(1).standard_normal(n)
        self.out = np.empty(n)
        self.a = self.op.derivative(self.x)
        self.op.vjp(self.x, self.g, out=self.out)  # compile

    def time_sigmoid_vjp(self, n, threads):
        self.op.vjp(self.x, self.g, out=self.out)

    def track_floor_multiple(self, n, threads):
        x, g, out, a, op = self.x, self.g, self.out, self.a, self.op
        number = max(1, int(2e7 // n))
        fused = min(timeit.repeat(lambda: op.vjp(x, g, out=out), number=number, repeat=7))
        floor = min(timeit.repeat(lambda: np.multiply(a, g, out=out), number=number, repeat=7))
        return fused / floor

    track_floor_multiple.unit = "x floor"
