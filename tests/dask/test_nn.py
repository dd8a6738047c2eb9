"""structjac.nn.value_and_grad on dask batches against the in-memory result."""

import numpy as np
import pytest

dask = pytest.importorskip("dask")
da = pytest.importorskip("dask.array")

from structjac import nn

from .conftest import no_compute


def _problem(dtype, N=1003, sizes=(7, 16, 8, 1), loss="bce", seed=0):
    rng = np.random.default_rng(seed)
    acts = ["tanh", "relu", "sigmoid" if loss == "bce" else None]
    net = nn.MLP(list(sizes), acts, loss=loss, dtype=dtype)
    params = net.init(rng)
    X = rng.standard_normal((N, sizes[0])).astype(dtype)
    y = (rng.random(N) > 0.5).astype(dtype)
    return net, params, X, y


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("chunks", [1003, 256, 137, 1])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("loss", ["bce", "mse", "bce_with_logits"])
def test_value_and_grad_equals_in_memory(loss, reduction, chunks, dtype):
    net, params, X, y = _problem(dtype, loss=loss)
    ref = net.value_and_grad(params, X, y, reduction=reduction)
    DX = da.from_array(X, chunks=(chunks, 3))  # split features too: rechunked to rows
    Dy = da.from_array(y, chunks=chunks)
    with no_compute():
        res = nn.value_and_grad(params, DX, Dy, net.activations, net.loss, reduction=reduction)
    assert isinstance(res.loss, da.Array)
    assert all(isinstance(g, da.Array) for pair in res.grads for g in pair)
    value, grads = dask.compute(*res)
    rtol = 1e-12 if dtype == np.float64 else 2e-5
    assert np.asarray(value).dtype == dtype
    np.testing.assert_allclose(value, ref.loss, rtol=rtol)
    for (gW, gb), (rW, rb) in zip(grads, ref.grads):
        assert gW.dtype == rW.dtype == dtype and gW.shape == rW.shape and gb.shape == rb.shape
        atol = rtol * max(np.abs(rW).max(), 1e-300)
        np.testing.assert_allclose(gW, rW, rtol=rtol, atol=atol)
        np.testing.assert_allclose(gb, rb, rtol=rtol, atol=rtol * max(np.abs(rb).max(), 1e-300))


def test_targets_with_several_outputs():
    rng = np.random.default_rng(2)
    net = nn.MLP([4, 5, 3], ["tanh", None], loss="mse", dtype=np.float64)
    params = net.init(rng)
    X, y = rng.standard_normal((301, 4)), rng.standard_normal((301, 3))
    ref = net.value_and_grad(params, X, y)
    value, grads = dask.compute(
        *nn.value_and_grad(
            params,
            da.from_array(X, chunks=(50, 4)),
            da.from_array(y, chunks=(50, 1)),
            net.activations,
            net.loss,
        )
    )
    np.testing.assert_allclose(value, ref.loss, rtol=1e-12)
    for (gW, gb), (rW, rb) in zip(grads, ref.grads):
        np.testing.assert_allclose(gW, rW, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(gb, rb, rtol=1e-12, atol=1e-14)


def test_bad_input():
    net, params, X, y = _problem(np.float64, N=100)
    DX = da.from_array(X, chunks=(25, 7))
    with pytest.raises(
        ValueError,
        match=r"X has batch chunks \(25, 25, 25, 25\) but y has "
        r"\(50, 50\)",
    ):
        nn.value_and_grad(params, DX, da.from_array(y, chunks=50), net.activations, net.loss)
    unknown = DX[DX[:, 0] > 0]
    with pytest.raises(ValueError, match=r"X has unknown \(nan\) chunk sizes"):
        nn.value_and_grad(params, unknown, unknown[:, 0], net.activations, net.loss)
    with pytest.raises(TypeError, match="both X and y as dask arrays"):
        nn.value_and_grad(params, DX, y, net.activations, net.loss)
    with pytest.raises(TypeError, match="per_sample"):
        nn.value_and_grad(
            params, DX, da.from_array(y, chunks=25), net.activations, net.loss, per_sample=True
        )
    with pytest.raises(ValueError, match="reduction must be"):
        nn.value_and_grad(
            params, DX, da.from_array(y, chunks=25), net.activations, net.loss, reduction="none"
        )
    with pytest.raises(ValueError, match=r"X has shape \(100, 7\) but y has shape \(99,\)"):
        nn.value_and_grad(params, DX, da.from_array(y[:99], chunks=25), net.activations, net.loss)


def test_mlp_value_and_grad_on_dask_batches():
    """MLP.value_and_grad (which passes its workspace) takes dask batches, float32 kept."""
    net, params, X, y = _problem(np.float32, N=200)
    ref = net.value_and_grad(params, X, y)
    with no_compute():
        res = net.value_and_grad(
            params, da.from_array(X, chunks=(64, 7)), da.from_array(y, chunks=64)
        )
    value, grads = dask.compute(*res)
    assert np.asarray(value).dtype == np.float32
    np.testing.assert_allclose(value, ref.loss, rtol=2e-5)
    for (gW, gb), (rW, rb) in zip(grads, ref.grads):
        assert gW.dtype == np.float32
        np.testing.assert_allclose(gW, rW, rtol=2e-5, atol=2e-5 * np.abs(rW).max())
        np.testing.assert_allclose(gb, rb, rtol=2e-5, atol=2e-5 * np.abs(rb).max())
