"""Losses: values against numpy formulas, gradients against finite differences,
the structured Jacobian (1/N) 1^T diag(dJ0/dy_hat), reductions, dtypes, edge inputs."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from structjac import kernels as K
from structjac.ops import REDUCTIONS, bce, bce_with_logits, mse
from structjac.structures import BlockRow, Diagonal


def _per_sample_ref(name, y, h):
    y = np.asarray(y, dtype=np.float64)
    h = np.asarray(h, dtype=np.float64)
    if name == "mse":
        e = (y - h) ** 2
    elif name == "bce":
        e = -(y * np.log(h) + (1 - y) * np.log(1 - h))
    else:
        p = 1 / (1 + np.exp(-h))
        e = -(y * np.log(p) + (1 - y) * np.log(1 - p))
    return e.reshape(len(e), -1).sum(axis=1)


LOSSES = {"mse": mse, "bce": bce, "bce_with_logits": bce_with_logits}
NAMES = sorted(LOSSES)


def _data(name, shape=(5, 3), seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    y = (
        rng.integers(0, 2, size=shape).astype(dtype)
        if name != "mse"
        else rng.normal(size=shape).astype(dtype)
    )
    if name == "bce":
        h = rng.uniform(0.05, 0.95, size=shape).astype(dtype)
    else:
        h = rng.normal(size=shape).astype(dtype)
    return y, h


def _reduce_ref(per, n, size, reduction):
    return {
        "mean": per.sum() / n,
        "sum": per.sum(),
        "elementwise_mean": per.sum() / size,
        "none": per,
    }[reduction]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("shape", [(7,), (5, 3), (2, 3, 2)])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_values(name, shape, reduction):
    loss = LOSSES[name]
    y, h = _data(name, shape)
    per = _per_sample_ref(name, y, h)
    np.testing.assert_allclose(loss.per_sample(y, h), per, rtol=1e-13)
    np.testing.assert_allclose(
        loss(y, h, reduction=reduction), _reduce_ref(per, shape[0], y.size, reduction), rtol=1e-13
    )


def _fd_grad(loss, y, h, reduction, step=1e-6):
    g = np.empty(h.size)
    for j in range(h.size):
        e = np.zeros(h.size)
        e[j] = step
        e = e.reshape(h.shape)
        g[j] = (loss(y, h + e, reduction) - loss(y, h - e, reduction)) / (2 * step)
    return g.reshape(h.shape)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("shape", [(6,), (4, 3)])
@pytest.mark.parametrize("reduction", ["mean", "sum", "elementwise_mean"])
def test_grad_against_finite_differences(name, shape, reduction):
    loss = LOSSES[name]
    y, h = _data(name, shape, seed=1)
    grad = loss.grad(y, h, reduction=reduction)
    assert grad.shape == h.shape
    np.testing.assert_allclose(grad, _fd_grad(loss, y, h, reduction), rtol=1e-6, atol=1e-9)


def test_lecture_gradient_formulas():
    y, h = _data("bce", (8,), seed=2)
    n = 8
    np.testing.assert_allclose(mse.grad(y, h), -2 / n * (y - h), rtol=1e-14)
    np.testing.assert_allclose(bce.grad(y, h), (h - y) / (h * (1 - h)) / n, rtol=1e-14)
    np.testing.assert_allclose(
        bce_with_logits.grad(y, h), (1 / (1 + np.exp(-h)) - y) / n, rtol=1e-14
    )


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "elementwise_mean"])
def test_jacobian_is_blockrow_with_row_grad(name, reduction):
    loss = LOSSES[name]
    y, h = _data(name, (5, 3), seed=3)
    J = loss.jacobian(y, h, reduction=reduction)
    assert isinstance(J, BlockRow)
    assert J.shape == (1, 15)
    assert J.nbytes <= 15 * 8 + 64  # O(N) numbers, not (N x N)
    np.testing.assert_allclose(
        J.to_dense(), _fd_grad(loss, y, h, reduction).reshape(1, -1), rtol=1e-6, atol=1e-9
    )
    # the lecture's composition, built independently
    d = loss.grad(y, h, reduction="none").ravel()
    w = {"mean": 1 / 5, "sum": 1.0, "elementwise_mean": 1 / 15}[reduction]
    np.testing.assert_allclose(J.to_dense(), (np.full((1, 15), w) @ np.diag(d)), rtol=1e-14)


def test_jacobian_none_reduction():
    y, h = _data("mse", (6,))
    J = mse.jacobian(y, h, reduction="none")
    assert isinstance(J, Diagonal)
    np.testing.assert_allclose(J.diagonal(), -2 * (y - h), rtol=1e-14)
    with pytest.raises(ValueError, match="block diagonal"):
        mse.jacobian(*_data("mse", (3, 2)), reduction="none")


@pytest.mark.parametrize("name", NAMES)
def test_float32_stays_float32(name):
    loss = LOSSES[name]
    y, h = _data(name, (6, 2), dtype=np.float32)
    for r in REDUCTIONS:
        assert np.asarray(loss(y, h, reduction=r)).dtype == np.float32
        assert loss.grad(y, h, reduction=r).dtype == np.float32
    assert loss.per_sample(y, h).dtype == np.float32
    assert loss.jacobian(y, h).dtype == np.float32
    y64, h64 = y.astype(np.float64), h.astype(np.float64)
    np.testing.assert_allclose(loss(y, h), loss(y64, h64), rtol=1e-5)
    np.testing.assert_allclose(loss.grad(y, h), loss.grad(y64, h64), rtol=1e-4, atol=1e-6)
    assert loss(y, h64).dtype == np.float64  # mixed: result_type


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bce_clamps_at_zero_and_one(dtype):
    y = np.array([0.0, 1.0, 1.0, 0.0], dtype=dtype)
    h = np.array([0.0, 0.0, 1.0, 1.0], dtype=dtype)
    val = bce(y, h)
    grad = bce.grad(y, h)
    assert np.isfinite(val) and np.all(np.isfinite(grad))
    eps = K.BCE_EPS[np.dtype(dtype)]
    # the confidently wrong entries cost about -log(eps) each
    per = bce.per_sample(y, h)
    assert per[1] == pytest.approx(-np.log(eps), rel=1e-3)
    assert per[0] == pytest.approx(0.0, abs=1e-5)
    assert np.all(np.isfinite(bce.jacobian(y, h).to_dense()))


def test_bce_with_logits_is_stable():
    y = np.array([1.0, 0.0, 1.0, 0.0])
    z = np.array([1000.0, -1000.0, -1000.0, 1000.0])
    per = bce_with_logits.per_sample(y, z)
    np.testing.assert_allclose(per, [0.0, 0.0, 1000.0, 1000.0])
    np.testing.assert_allclose(bce_with_logits.grad(y, z, "sum"), [0.0, 0.0, -1.0, 1.0])


@settings(deadline=None, max_examples=30)
@given(st.integers(1, 6), st.integers(1, 4), st.sampled_from(NAMES), st.integers(0, 10**6))
def test_mean_is_sum_over_n(n, d, name, seed):
    loss = LOSSES[name]
    y, h = _data(name, (n, d), seed=seed)
    np.testing.assert_allclose(loss(y, h) * n, loss(y, h, "sum"), rtol=1e-12)
    np.testing.assert_allclose(loss.grad(y, h) * n, loss.grad(y, h, "sum"), rtol=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_bad_inputs(name):
    loss = LOSSES[name]
    with pytest.raises(ValueError, match=r"y has shape \(3,\) but y_hat has shape \(3, 1\)"):
        loss(np.ones(3), np.ones((3, 1)))
    with pytest.raises(ValueError, match=r"y has shape \(2,\) but y_hat has shape \(3,\)"):
        loss.grad(np.ones(2), np.ones(3))
    with pytest.raises(ValueError, match="'mean', 'sum', 'none', 'elementwise_mean'"):
        loss(np.ones(3), np.ones(3), reduction="avg")
    with pytest.raises(ValueError, match="0-d"):
        loss(np.array(1.0), np.array(0.5))


@pytest.mark.parametrize("name", NAMES)
def test_layouts_ints_no_writes(name):
    loss = LOSSES[name]
    y, h = _data(name, (8, 6), seed=5)
    y.setflags(write=False)
    hc = h.copy()
    ref = loss.grad(np.ascontiguousarray(y[::2, ::2]), np.ascontiguousarray(h[::2, ::2]))
    np.testing.assert_allclose(loss.grad(y[::2, ::2], h[::2, ::2]), ref, rtol=1e-15)
    np.testing.assert_allclose(
        loss(np.asfortranarray(y), np.asfortranarray(h)), loss(y, h), rtol=1e-14
    )
    np.testing.assert_array_equal(h, hc)
    yi = np.array([0, 1, 1])
    assert loss(yi, np.array([0.2, 0.7, 0.9])).dtype == np.float64
    assert loss.grad(yi, yi).dtype == np.float64


@pytest.mark.parametrize("name", NAMES)
def test_empty_batch(name):
    loss = LOSSES[name]
    e = np.empty((0, 3))
    assert np.isnan(loss(e, e)) and loss(e, e, "sum") == 0.0
    assert loss.per_sample(e, e).shape == (0,)
    assert loss.grad(e, e).shape == (0, 3)
    assert loss.jacobian(e, e).shape == (1, 0)


@pytest.mark.parametrize("name", NAMES)
def test_nan_propagates(name):
    loss = LOSSES[name]
    y, h = _data(name, (4,))
    h[1] = np.nan
    assert np.isnan(loss(y, h))
    assert np.isnan(loss.grad(y, h)[1]) and np.all(np.isfinite(np.delete(loss.grad(y, h), 1)))


@pytest.mark.parametrize("name", NAMES)
def test_parallel_path_agrees(name):
    loss = LOSSES[name]
    n = K.get_parallel_threshold() // 2 + 5
    y, h = _data(name, (n, 2), seed=11)  # n*2 elements >= threshold
    np.testing.assert_allclose(loss.per_sample(y, h), _per_sample_ref(name, y, h), rtol=1e-12)
    np.testing.assert_allclose(
        loss.grad(y, h),
        loss.grad(y[:5], h[:5])
        if False
        else np.concatenate(
            [loss.grad(y[i : i + 1000], h[i : i + 1000], "sum") for i in range(0, n, 1000)]
        )
        / n,
        rtol=1e-14,
    )
