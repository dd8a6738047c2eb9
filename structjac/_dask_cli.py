"""``python -m structjac --dask``: the network's gradient on a ``dask.distributed`` cluster.

The batch is generated on the workers in chunks (it never exists whole in this
process), each chunk's loss and gradient is computed on a worker by the same
kernels as in memory, and the chunks' results are summed; the result is checked
against the in-memory computation on a slice.
"""

from __future__ import annotations

import importlib.util
import time

import numpy as np

__all__ = ["run_on_cluster"]

#: Batch size of ``--dask`` when ``--n`` is not given: 8x the in-memory default.
DEFAULT_N = 8 * 1_048_576
#: Rows per chunk when ``--chunk`` is not given.
DEFAULT_CHUNK = 262_144


def _missing_dask() -> str | None:
    for name in ("dask", "distributed"):
        if importlib.util.find_spec(name) is None:
            return name
    return None


def _warm_up(params, activations, loss, dtype):
    """On a worker: compile the kernels a chunk runs (serial, both passes)."""
    from .kernels import serial_only
    from .nn import value_and_grad

    rng = np.random.default_rng(0)
    X = rng.standard_normal((256, params[0][0].shape[1])).astype(dtype)
    y = (rng.random(256) > 0.5).astype(dtype)
    with serial_only():
        value_and_grad(params, X, y, activations, loss, reduction="sum")


def run_on_cluster(N, workers, chunk, seed, dtype, out, address=None) -> int:
    """Run the 32-64-64-1 network's ``value_and_grad`` on a Dask cluster.

    Parameters
    ----------
    N : int
        Batch size.
    workers : int
        Worker processes of the :class:`~dask.distributed.LocalCluster` (one
        thread each, environment :func:`structjac.dask_worker_env`).
    chunk : int
        Rows per chunk of the batch.
    seed : int
        Seed of the parameters and of the batch.
    dtype : numpy.dtype
        ``float32`` or ``float64``.
    out : file
        Where the report goes (Dask's progress bar goes to standard output).
    address : str, optional
        Scheduler address of an existing cluster instead of a new LocalCluster.

    Returns
    -------
    int
        The exit status: 0, or 2 when dask is not installed.
    """
    missing = _missing_dask()
    if missing is not None:
        print(f"structjac --dask needs {missing}: pip install 'structjac[dask]'", file=out)
        return 2
    import dask.array as da
    from dask.distributed import Client, LocalCluster, progress

    from ._dask import worker_env
    from .nn import MLP, value_and_grad

    dtype = np.dtype(dtype)
    if address is None:
        dashboard = ":8787" if importlib.util.find_spec("bokeh") is not None else None
        cluster = LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            env=worker_env(),
            dashboard_address=dashboard,
        )
    else:
        cluster = dashboard = None
    try:
        with Client(address if cluster is None else cluster) as client:
            print(
                f"structjac on dask.distributed: {len(client.scheduler_info()['workers'])} "
                f"workers, scheduler {client.scheduler.address}",
                file=out,
            )
            link = client.dashboard_link if cluster is None or dashboard else None
            print(f"  dashboard: {link or 'off (install bokeh for the dashboard)'}", file=out)
            net = MLP([32, 64, 64, 1], ["sigmoid", "tanh", "sigmoid"], loss="bce", dtype=dtype)
            params = net.init(np.random.default_rng(seed))
            rng = da.random.default_rng(seed)
            X = rng.standard_normal((N, 32), chunks=(chunk, 32), dtype=dtype)
            y = (rng.random(N, chunks=chunk) > 0.5).astype(dtype)
            print(
                f"\nnetwork 32-64-64-1, BCE, N = {N:,}, {dtype}, "
                f"{X.numblocks[0]} chunks of {chunk:,} rows",
                file=out,
            )
            client.run(_warm_up, params, net.activations, net.loss, dtype)  # JIT on every worker
            result = value_and_grad(params, X, y, net.activations, net.loss)
            lazy = [result.loss] + [g for pair in result.grads for g in pair]
            t0 = time.perf_counter()
            futures = client.compute(lazy)
            if getattr(out, "isatty", lambda: False)():
                progress(futures)  # Dask's progress bar, on a terminal only
            values = client.gather(futures)
            elapsed = time.perf_counter() - t0
            print(
                f"\n  value_and_grad: loss = {float(values[0]):.6f}, {elapsed:.2f} s "
                f"({N / elapsed / 1e6:.1f} M samples/s)",
                file=out,
            )

            # the same numbers as in memory, on the first chunks
            k = min(N, 2 * chunk)
            Xk, yk = X[:k].compute(), y[:k].compute()
            ref = value_and_grad(params, Xk, yk, net.activations, net.loss)
            part = value_and_grad(params, X[:k], y[:k], net.activations, net.loss)
            got = client.gather(client.compute([part.loss] + [g for p in part.grads for g in p]))
            want = [ref.loss] + [g for p in ref.grads for g in p]
            err = max(
                float(
                    np.max(
                        np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))
                        / (np.max(np.abs(np.asarray(b, np.float64))) or 1.0)
                    )
                )
                for a, b in zip(got, want)
            )
            print(
                f"  against memory on the first {k:,} samples: max relative difference {err:.1e}",
                file=out,
            )
    finally:
        if cluster is not None:
            cluster.close()
    return 0
