"""structjac on Dask against the same work in memory, in one run (issue targets in brackets).

1. The fused sigmoid vjp on float32 vectors of ``--n`` elements (10^8) in chunks of
   ``--chunk`` (2^22): in memory against Dask's threaded scheduler with as many threads as
   Numba has [per element within 1.2x].
2. ``nn.value_and_grad`` of the 32-64-64-1 network on ``--N`` float32 samples (4,194,304):
   in memory against a 2-worker ``LocalCluster`` (one thread each) with the batch persisted
   on the workers [within 1.5x], and each worker's peak resident memory against its share
   of the batch and one chunk [peak under 2x one chunk's share].

Run: ``OPENBLAS_NUM_THREADS=1 PYTHONPATH=. python scripts/perf_dask.py`` (``--quick`` for
small sizes). Medians of ``--repeat`` runs after a warm-up.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time

import numpy as np


def _median_time(fn, repeat):
    fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), min(times), max(times)


def _peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _start_sampler(dask_worker, period=0.002):
    """On a worker: poll this process's resident memory in a thread, keep the maximum
    (``ru_maxrss`` is no use there: a forked worker inherits its parent's)."""
    import threading

    state = {"peak": _rss_mb(), "run": True}

    def poll():
        while state["run"]:
            state["peak"] = max(state["peak"], _rss_mb())
            time.sleep(period)

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    dask_worker._perf_dask_sampler = (state, thread)  # kept on the worker between calls
    return state["peak"]


def _stop_sampler(dask_worker):
    state, thread = dask_worker._perf_dask_sampler
    state["run"] = False
    thread.join()
    return state["peak"]


def _rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def vjp_rows(n, chunk, repeat):
    import dask.array as da
    import numba

    import structjac as sj

    threads = numba.config.NUMBA_NUM_THREADS
    r = np.random.default_rng(0)
    x = r.standard_normal(n, dtype=np.float32)
    g = r.standard_normal(n, dtype=np.float32)
    dx, dg = da.from_array(x, chunks=chunk), da.from_array(g, chunks=chunk)
    mem = _median_time(lambda: sj.sigmoid.vjp(x, g), repeat)
    dsk = _median_time(
        lambda: sj.sigmoid.vjp(dx, dg).compute(scheduler="threads", num_workers=threads), repeat
    )
    out = np.empty(n, np.float32)
    stored = _median_time(
        lambda: da.store(
            sj.sigmoid.vjp(dx, dg), out, scheduler="threads", num_workers=threads, lock=False
        ),
        repeat,
    )
    kept = _median_time(
        lambda: sj.sigmoid.vjp(dx, dg).persist(scheduler="threads", num_workers=threads), repeat
    )
    print(f"fused sigmoid vjp, n = {n:,} float32, chunks of {chunk:,}, {threads} threads")
    print(f"  in memory      {mem[0] * 1e3:9.1f} ms  ({mem[0] / n * 1e9:.2f} ns/element)")
    print(f"  dask threaded  {dsk[0] * 1e3:9.1f} ms  ({dsk[0] / n * 1e9:.2f} ns/element)")
    print(f"  dask, stored   {stored[0] * 1e3:9.1f} ms  (da.store into a preallocated array)")
    print(f"  dask, kept     {kept[0] * 1e3:9.1f} ms  (persist: the result stays in its chunks)")
    print(
        f"  ratio dask / in memory: compute {dsk[0] / mem[0]:.2f}x (numpy's concatenation "
        f"of the chunks included), store {stored[0] / mem[0]:.2f}x, persist "
        f"{kept[0] / mem[0]:.2f}x   [target <= 1.2x]"
    )


def vag_rows(N, repeat, chunks):
    import dask
    import dask.array as da
    import distributed

    import structjac as sj

    net = sj.MLP([32, 64, 64, 1], ["sigmoid", "tanh", "sigmoid"], loss="bce", dtype=np.float32)
    params = net.init(np.random.default_rng(0))
    r = np.random.default_rng(1)
    X = r.standard_normal((N, 32), dtype=np.float32)
    y = (r.random(N) > 0.5).astype(np.float32)
    base = _rss_mb()
    mem = _median_time(lambda: net.value_and_grad(params, X, y), repeat)
    print(f"value_and_grad 32-64-64-1, N = {N:,} float32")
    print(
        f"  in memory        {mem[0] * 1e3:9.1f} ms  (this process: peak RSS "
        f"{_peak_rss_mb():.0f} MB, batch {X.nbytes / 2**20:.0f} MB, RSS before {base:.0f} MB)"
    )
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            env=sj.dask_worker_env(),
            dashboard_address=None,
            processes=True,
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        chunk = max(1, N // chunks)
        DX = da.from_array(X, chunks=(chunk, 32)).persist()
        Dy = da.from_array(y, chunks=chunk).persist()
        distributed.wait([DX, Dy])
        run = lambda: dask.compute(*net.value_and_grad(params, DX, Dy))  # noqa: E731
        run()  # compile on workers
        before = client.run(_start_sampler)
        clu = _median_time(run, repeat)
        peak = client.run(_stop_sampler)
        share = (X.nbytes + y.nbytes) / 2 / 2**20
        one_chunk = (chunk * 32 * 4 + chunk * 4) / 2**20
        print(f"  2-worker cluster {clu[0] * 1e3:9.1f} ms  (chunks of {chunk:,} rows)")
        print(f"  ratio cluster / in memory: {clu[0] / mem[0]:.2f}x   [target <= 1.5x]")
        for (addr, b), p in zip(sorted(before.items()), [peak[a] for a in sorted(before)]):
            print(
                f"  worker {addr}: RSS with its share persisted {b:.0f} MB, peak {p:.0f} MB "
                f"(its share of the batch {share:.0f} MB, one chunk {one_chunk:.1f} MB; "
                f"peak above the persisted state {p - b:.0f} MB)"
            )


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=lambda s: int(float(s)), default=10**8)
    p.add_argument("--chunk", type=lambda s: int(float(s)), default=2**22)
    p.add_argument("--N", type=lambda s: int(float(s)), default=4_194_304)
    p.add_argument("--chunks", type=int, default=16, help="batch chunks of the cluster job")
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--only", choices=["vjp", "vag"])
    a = p.parse_args(argv)
    if a.quick:
        a.n, a.chunk, a.N = 2**22, 2**18, 65_536
    if a.only in (None, "vjp"):
        vjp_rows(a.n, a.chunk, a.repeat)
    if a.only in (None, "vag"):
        vag_rows(a.N, a.repeat, a.chunks)


if __name__ == "__main__":
    main()
