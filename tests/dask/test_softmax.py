"""softmax, log_softmax and cross_entropy on dask arrays against the in-memory ops."""

import numpy as np
import pytest

dask = pytest.importorskip("dask")
da = pytest.importorskip("dask.array")

import structjac as sj

from .conftest import no_compute

OPS = [sj.softmax, sj.log_softmax]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("chunks", [(64, 5), (17, 3), (1, 10)])
@pytest.mark.parametrize("axis", [-1, 0, 1])
@pytest.mark.parametrize("op", OPS, ids=["softmax", "log_softmax"])
def test_rowwise_ops_equal_in_memory(op, axis, chunks, dtype):
    rng = np.random.default_rng(0)
    x = (3 * rng.standard_normal((64, 10))).astype(dtype)
    g = rng.standard_normal((64, 10)).astype(dtype)
    dx = da.from_array(x, chunks=chunks)  # split along the softmax axis: rechunked lazily
    dg = da.from_array(g, chunks=(chunks[1], chunks[0]))  # other chunks: aligned to dx
    a = op(x, axis=axis)
    with no_compute():
        value = op(dx, axis=axis)
        vjp = op.vjp(dx, dg, axis=axis)
        vjp_out = op.vjp_from_output(op(dx, axis=axis), dg, axis=axis)
    assert all(isinstance(r, da.Array) for r in (value, vjp, vjp_out))
    assert value.dtype == vjp.dtype == dtype
    rtol = 1e-12 if dtype == np.float64 else 1e-5
    got_value, got_vjp, got_out = dask.compute(value, vjp, vjp_out)
    assert got_value.dtype == dtype
    np.testing.assert_allclose(got_value, a, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(got_vjp, op.vjp(x, g, axis=axis), rtol=rtol, atol=rtol)
    np.testing.assert_allclose(
        got_out, op.vjp_from_output(a, g, axis=axis), rtol=rtol, atol=10 * rtol
    )


def test_rowwise_ops_positional_axis_and_bad_input():
    x = np.arange(12.0).reshape(3, 4)
    dx = da.from_array(x, chunks=2)
    np.testing.assert_allclose(sj.softmax(dx, 0).compute(), sj.softmax(x, 0))
    with pytest.raises(TypeError, match="BlockDiagonal"):
        sj.softmax.jacobian(dx)
    with pytest.raises(TypeError, match="out="):
        sj.softmax(dx, out=np.empty_like(x))
    with pytest.raises(np.exceptions.AxisError, match="out of bounds"):
        sj.softmax(dx, axis=2)
    with pytest.raises(ValueError, match="0-d"):
        sj.softmax(da.from_array(np.float64(1.0)))
    with pytest.raises(ValueError, match=r"\(3, 4\).*\(3, 3\)"):
        sj.softmax.vjp(dx, da.ones((3, 3), chunks=2))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_on_dask_equals_in_memory(reduction):
    rng = np.random.default_rng(1)
    z = rng.standard_normal((50, 4))
    y = rng.integers(0, 4, 50)
    dz, dy = da.from_array(z, chunks=(13, 2)), da.from_array(y, chunks=13)
    with no_compute():
        value = sj.cross_entropy(dy, dz, reduction=reduction)
        grad = sj.cross_entropy.grad(dy, dz, reduction=reduction)
    np.testing.assert_allclose(
        value.compute(), sj.cross_entropy(y, z, reduction=reduction), rtol=1e-12
    )
    np.testing.assert_allclose(
        grad.compute(), sj.cross_entropy.grad(y, z, reduction=reduction), rtol=1e-12, atol=1e-15
    )
