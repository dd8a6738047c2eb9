"""structjac on dask arrays against the same work in memory, in the same run.

``FusedSigmoidVjp.time_op``
    the fused sigmoid vjp ``g * s(x) * (1 - s(x))`` on float32 vectors of 10^8 elements
    (quick run: 2^20) in chunks of 2^22 (quick: 2^18): ``in_memory`` is the kernel on the
    whole arrays, ``dask_threaded`` the same kernel chunk by chunk on Dask's threaded
    scheduler with as many threads as Numba has (target: within 1.2x per element);
    ``dask_threaded`` ends in ``compute()`` (numpy concatenates the chunks into one new
    array), ``dask_threaded_store`` writes them into a preallocated array (``da.store``).
``ValueAndGradCluster.time_op``
    ``structjac.nn.value_and_grad`` of the 32-64-64-1 network on N = 4,194,304 float32
    samples (quick: 65,536): ``in_memory`` on one process, ``local_cluster`` on a
    2-worker ``LocalCluster`` (one thread each, :func:`structjac.dask_worker_env`) with
    the batch already on the workers (target: within 1.5x).

Both skip (``NotImplementedError`` in ``setup``) when dask or distributed is absent.
"""

from __future__ import annotations

import numpy as np

from .common import QUICK, limit_threads, optional_import, rng


class FusedSigmoidVjp:
    params = ([2**20] if QUICK else [10**8], ["in_memory", "dask_threaded", "dask_threaded_store"])
    param_names = ["n", "form"]
    timeout = 600

    def setup(self, n, form):
        import structjac as sj

        import numba

        self.threads = numba.config.NUMBA_NUM_THREADS
        limit_threads(numba_threads=self.threads)  # every core, as many as Dask's threads
        r = rng()
        self.x = r.standard_normal(n, dtype=np.float32)
        self.g = r.standard_normal(n, dtype=np.float32)
        self.vjp = sj.ops.sigmoid.vjp
        if form.startswith("dask_threaded"):
            da = optional_import("dask.array")
            self.da = da
            self.out = np.empty(n, dtype=np.float32)
            chunk = 2**18 if QUICK else 2**22
            self.dx = da.from_array(self.x, chunks=chunk)
            self.dg = da.from_array(self.g, chunks=chunk)
        self.time_op(n, form)  # compile, fault the pages in

    def time_op(self, n, form):
        if form == "in_memory":
            self.vjp(self.x, self.g)
        elif form == "dask_threaded":  # ends in numpy's concatenation of the chunks
            self.vjp(self.dx, self.dg).compute(scheduler="threads", num_workers=self.threads)
        else:  # the chunks written into a preallocated array: no concatenation
            self.da.store(
                self.vjp(self.dx, self.dg),
                self.out,
                scheduler="threads",
                num_workers=self.threads,
                lock=False,
            )


class ValueAndGradCluster:
    params = ([65_536] if QUICK else [4_194_304], ["in_memory", "local_cluster"])
    param_names = ["N", "form"]
    timeout = 900
    number = 1
    repeat = 3

    def setup(self, N, form):
        import structjac as sj

        self.client = self.cluster = None
        net = sj.MLP([32, 64, 64, 1], ["sigmoid", "tanh", "sigmoid"], loss="bce", dtype=np.float32)
        self.net, self.params = net, net.init(rng())
        r = rng(1)
        X = r.standard_normal((N, 32), dtype=np.float32)
        y = (r.random(N) > 0.5).astype(np.float32)
        if form == "in_memory":
            import numba

            limit_threads(numba_threads=numba.config.NUMBA_NUM_THREADS)
            self.X, self.y = X, y
        else:
            da = optional_import("dask.array")
            distributed = optional_import("distributed")
            self.cluster = distributed.LocalCluster(
                n_workers=2, threads_per_worker=1, env=sj.dask_worker_env(), dashboard_address=None
            )
            self.client = distributed.Client(self.cluster)
            chunk = max(1, N // 16)
            self.X = da.from_array(X, chunks=(chunk, 32)).persist()
            self.y = da.from_array(y, chunks=chunk).persist()
            distributed.wait([self.X, self.y])
        self.time_op(N, form)  # compile on every worker

    def teardown(self, N, form):
        if self.client is not None:
            self.client.close()
            self.cluster.close()

    def time_op(self, N, form):
        import structjac as sj

        res = sj.nn.value_and_grad(self.params, self.X, self.y, self.net.activations, self.net.loss)
        if form == "local_cluster":
            import dask

            dask.compute(*res)
