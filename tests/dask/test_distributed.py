"""structjac on a real ``dask.distributed`` LocalCluster: two worker processes, and a
worker killed in the middle of a computation."""

import os
import signal
import time

import numpy as np
import pytest

dask = pytest.importorskip("dask")
da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

import structjac as sj
from structjac import nn, ops

from .test_nn import _problem


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        env=sj.dask_worker_env(),
        dashboard_address=None,
    )
    with distributed.Client(cluster) as c:
        c.wait_for_workers(2, timeout=120)  # a loaded machine starts them slowly
        yield c
    cluster.close()


def _submit(client, res):
    """Futures of a lazy GradResult's loss and gradients, computed on the cluster."""
    return client.compute([res.loss] + [g for pair in res.grads for g in pair])


def _gather(client, futures, timeout=None):
    values = client.gather(futures) if timeout is None else [f.result(timeout) for f in futures]
    return values[0], list(zip(values[1::2], values[2::2]))


def _workers(client):
    return set(client.scheduler_info()["workers"])


def test_workers_get_the_environment(client):
    env = client.run(lambda: {k: os.environ.get(k) for k in sj.dask_worker_env()})
    assert len(env) == 2
    assert all(e == sj.dask_worker_env() for e in env.values())
    threads = client.run(lambda: __import__("numba").config.NUMBA_NUM_THREADS)
    assert set(threads.values()) == {1}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_value_and_grad_on_two_workers_equals_in_memory(client, dtype):
    net, params, X, y = _problem(dtype, N=4000)
    ref = net.value_and_grad(params, X, y)
    res = nn.value_and_grad(
        params,
        da.from_array(X, chunks=(250, 7)),
        da.from_array(y, chunks=250),
        net.activations,
        net.loss,
    )
    with distributed.get_task_stream(client) as stream:
        value, grads = _gather(client, _submit(client, res))
    assert len({t["worker"] for t in stream.data}) == 2  # both processes worked
    rtol = 1e-12 if dtype == np.float64 else 2e-5
    assert np.asarray(value).dtype == dtype
    np.testing.assert_allclose(value, ref.loss, rtol=rtol)
    for (gW, gb), (rW, rb) in zip(grads, ref.grads):
        assert gW.dtype == dtype and gb.dtype == dtype
        np.testing.assert_allclose(gW, rW, rtol=rtol, atol=rtol * 1e-2)
        np.testing.assert_allclose(gb, rb, rtol=rtol, atol=rtol * 1e-2)


def test_fused_vjp_and_loss_on_two_workers(client):
    rng = np.random.default_rng(3)
    x = rng.standard_normal(100_003)
    g = rng.standard_normal(100_003)
    dx, dg = da.from_array(x, chunks=10_000), da.from_array(g, chunks=10_000)
    got = client.compute(ops.sigmoid.vjp(dx, dg)).result()
    np.testing.assert_array_equal(got, ops.sigmoid.vjp(x, g))
    t = (rng.random(100_003) > 0.5).astype(float)
    p = 1 / (1 + np.exp(-x))
    loss = client.compute(
        ops.bce(da.from_array(t, chunks=10_000), dx.map_blocks(lambda b: 1 / (1 + np.exp(-b))))
    ).result()
    np.testing.assert_allclose(loss, ops.bce(t, p), rtol=1e-12)


def test_worker_killed_mid_run_is_retried(client):
    net, params, X, y = _problem(np.float64, N=6000)
    ref = net.value_and_grad(params, X, y)
    # every chunk takes a while, so the run is still going when a worker dies
    DX = da.from_array(X, chunks=(150, 7)).map_blocks(
        lambda b: (time.sleep(0.05), b)[1], dtype=X.dtype
    )
    res = nn.value_and_grad(params, DX, da.from_array(y, chunks=150), net.activations, net.loss)
    client.wait_for_workers(2, timeout=120)  # both workers registered before one is chosen
    before = _workers(client)
    assert len(before) == 2, before
    victim = sorted(before)[0]
    pid = client.run(os.getpid, workers=[victim])[victim]
    futures = _submit(client, res)
    deadline = time.monotonic() + 60
    while not client.processing() or not any(client.processing().values()):
        assert time.monotonic() < deadline, "the computation never started"
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)  # the process dies, tasks lost
    value, grads = _gather(client, futures, timeout=120)
    assert victim not in _workers(client)  # it really died
    np.testing.assert_allclose(value, ref.loss, rtol=1e-12)
    for (gW, gb), (rW, rb) in zip(grads, ref.grads):
        np.testing.assert_allclose(gW, rW, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(gb, rb, rtol=1e-12, atol=1e-14)
    client.wait_for_workers(2, timeout=60)  # the nanny restarted it
