"""The extras of ``nn.value_and_grad`` on dask batches against the in-memory extras.

Every test name holds "dask" so that ``.ci/run`` runs them without skips.
"""

import numpy as np
import pytest

dask = pytest.importorskip("dask")
da = pytest.importorskip("dask.array")

import structjac as sj
from structjac import nn

from ..dask.conftest import no_compute
from .test_extras import IDS, NETWORKS, close, close_pairs, problem

EXACT = ("grad_norms", "sum_grad_squared", "variance", "clipped_grad", "diag_ggn", "kflr")


def _dask_batch(X, y, chunks):
    return da.from_array(X, chunks=(chunks, -1)), da.from_array(y, chunks=chunks)


def _close_kron(actual, desired, rtol):
    for (KW, Kb), (RW, Rb) in zip(actual, desired):
        assert isinstance(KW, sj.Kronecker) and isinstance(Kb, sj.Dense)
        close(KW.A.to_dense(), RW.A.to_dense(), rtol)
        close(KW.B.to_dense(), RW.B.to_dense(), rtol)
        close(Kb.to_dense(), Rb.to_dense(), rtol)


@pytest.mark.parametrize("chunks", [20, 7, 3, 1])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("net", NETWORKS, ids=IDS)
def test_dask_exact_extras_equal_in_memory(net, reduction, chunks):
    sizes, acts, loss = net
    params, X, y = problem(sizes, acts, loss, N=20)
    names = EXACT + (
        ("diag_hessian",) if all(a in ("relu", "leaky_relu", None) for a in acts) else ()
    )
    ref = nn.value_and_grad(
        params, X, y, acts, loss, reduction=reduction, extras=names, max_norm=0.3
    )
    DX, Dy = _dask_batch(X, y, chunks)
    with no_compute():
        res = nn.value_and_grad(
            params, DX, Dy, acts, loss, reduction=reduction, extras=names, max_norm=0.3
        )
    assert isinstance(res.extras["grad_norms"], da.Array)
    assert isinstance(res.extras["diag_ggn"][0][0], da.Array)
    (extras,) = dask.compute(res.extras)
    assert list(extras) == list(names)
    close(extras["grad_norms"], ref.extras["grad_norms"])
    for name in names:
        if name == "kflr":
            _close_kron(extras[name], ref.extras[name], 1e-12)
        elif name != "grad_norms":
            close_pairs(extras[name], ref.extras[name])


def test_dask_extras_float32_stay_float32():
    sizes, acts, loss = NETWORKS[1]
    params, X, y = problem(sizes, acts, loss, N=30, dtype=np.float32)
    ref = nn.value_and_grad(params, X, y, acts, loss, extras=EXACT, max_norm=0.5)
    res = nn.value_and_grad(params, *_dask_batch(X, y, 8), acts, loss, extras=EXACT, max_norm=0.5)
    (extras,) = dask.compute(res.extras)
    assert extras["grad_norms"].dtype == np.float32
    close(extras["grad_norms"], ref.extras["grad_norms"], 2e-5)
    for name in ("sum_grad_squared", "variance", "clipped_grad", "diag_ggn"):
        for (aW, ab), (rW, rb) in zip(extras[name], ref.extras[name]):
            assert aW.dtype == ab.dtype == np.float32
            close(aW, rW, 1e-4), close(ab, rb, 1e-4)
    KW, Kb = extras["kflr"][0]
    assert KW.dtype == Kb.dtype == np.float32


@pytest.mark.parametrize("net", [NETWORKS[0], NETWORKS[3]], ids=[IDS[0], IDS[3]])
def test_dask_monte_carlo_extras_draw_per_chunk_from_spawned_seeds(net):
    """The MC extras are the weighted sum of each chunk's in-memory draw, the chunk's
    generator spawned from the seed; reproducible for a seed."""
    sizes, acts, loss = net
    params, X, y = problem(sizes, acts, loss, N=20)
    names = ("diag_ggn_mc", "kfac")
    DX, Dy = _dask_batch(X, y, 6)
    (a,) = dask.compute(
        nn.value_and_grad(params, DX, Dy, acts, loss, extras=names, mc_samples=3, seed=11).extras
    )
    (b,) = dask.compute(
        nn.value_and_grad(params, DX, Dy, acts, loss, extras=names, mc_samples=3, seed=11).extras
    )
    close_pairs(a["diag_ggn_mc"], b["diag_ggn_mc"], 0)
    seeds = np.random.SeedSequence(11).spawn(4)
    bounds = [(0, 6), (6, 12), (12, 18), (18, 20)]
    parts = [
        nn.value_and_grad(
            params, X[i:j], y[i:j], acts, loss, reduction="sum", extras=names, mc_samples=3, seed=s
        ).extras
        for (i, j), s in zip(bounds, seeds)
    ]
    N = X.shape[0]
    want = [
        (
            sum(p["diag_ggn_mc"][l][0] for p in parts) / N,
            sum(p["diag_ggn_mc"][l][1] for p in parts) / N,
        )
        for l in range(len(params))
    ]
    close_pairs(a["diag_ggn_mc"], want)
    for l, (KW, Kb) in enumerate(a["kfac"]):
        G = sum(p["kfac"][l][0].A.to_dense() for p in parts) / N
        AtA = sum(p["kfac"][l][0].B.to_dense() * (j - i) for p, (i, j) in zip(parts, bounds)) / N
        close(KW.A.to_dense(), G), close(KW.B.to_dense(), AtA), close(Kb.to_dense(), G)
    # the mean over many seeds approaches the exact diagonal, on dask as in memory
    exact = nn.value_and_grad(params, X, y, acts, loss, extras=("diag_ggn",)).extras["diag_ggn"]
    (mc,) = dask.compute(
        nn.value_and_grad(
            params, DX, Dy, acts, loss, extras=("diag_ggn_mc",), mc_samples=4000, seed=3
        ).extras["diag_ggn_mc"]
    )
    for (mW, mb), (eW, eb) in zip(mc, exact):
        np.testing.assert_allclose(mW, eW, rtol=0.15, atol=0.05 * np.abs(eW).max())


def test_dask_extras_bad_input_is_refused_before_any_work():
    sizes, acts, loss = NETWORKS[0]
    params, X, y = problem(sizes, acts, loss, N=20)
    DX, Dy = _dask_batch(X, y, 5)
    with pytest.raises(ValueError, match="unknown"):
        nn.value_and_grad(params, DX, Dy, acts, loss, extras=("gradnorms",))
    with pytest.raises(ValueError, match="max_norm"):
        nn.value_and_grad(params, DX, Dy, acts, loss, extras=("clipped_grad",))
    with pytest.raises(ValueError, match="diag_hessian"):
        nn.value_and_grad(params, DX, Dy, acts, loss, extras=("diag_hessian",))
