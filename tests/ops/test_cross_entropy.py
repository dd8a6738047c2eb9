"""cross_entropy: values against a numpy oracle and torch, gradients against central
differences, the 1 x NC row and the per-sample BlockDiagonal, Hessians of every loss
against central differences of the gradient, reductions, dtypes, large logits, errors."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from structjac.ops import REDUCTIONS, bce, bce_with_logits, cross_entropy, mse
from structjac.structures import BlockDiagonal, BlockRow, Diagonal, ScaledIdentity


def _ce_ref(t, z):
    z = np.asarray(z, dtype=np.float64)
    m = z.max(axis=1, keepdims=True)
    logp = z - m - np.log(np.exp(z - m).sum(axis=1, keepdims=True))
    return -(np.asarray(t, dtype=np.float64) * logp).sum(axis=1)


def _data(kind, n=5, c=4, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, c)) * 2
    labels = rng.integers(0, c, size=n)
    if kind == "labels":
        return labels, z, np.eye(c)[labels]
    if kind == "onehot":
        return np.eye(c)[labels], z, np.eye(c)[labels]
    t = rng.uniform(size=(n, c))
    t /= t.sum(axis=1, keepdims=True)
    return t, z, t


KINDS = ["labels", "onehot", "probabilities"]


def _reduce(per, n, size, reduction):
    return {
        "mean": per.sum() / n,
        "sum": per.sum(),
        "elementwise_mean": per.sum() / size,
        "none": per,
    }[reduction]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_values(kind, reduction):
    y, z, t = _data(kind)
    per = _ce_ref(t, z)
    np.testing.assert_allclose(cross_entropy.per_sample(y, z), per, rtol=1e-14)
    np.testing.assert_allclose(
        cross_entropy(y, z, reduction=reduction),
        _reduce(per, z.shape[0], z.size, reduction),
        rtol=1e-14,
    )


def _fd_grad(f, z, step=1e-6):
    g = np.empty(z.size)
    for j in range(z.size):
        e = np.zeros(z.size)
        e[j] = step
        g[j] = (f(z + e.reshape(z.shape)) - f(z - e.reshape(z.shape))) / (2 * step)
    return g.reshape(z.shape)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("reduction", ["mean", "sum", "elementwise_mean"])
def test_grad_and_jacobian_vs_differences(kind, reduction):
    y, z, _ = _data(kind, seed=1)
    fd = _fd_grad(lambda v: float(cross_entropy(y, v, reduction=reduction)), z)
    g = cross_entropy.grad(y, z, reduction=reduction)
    np.testing.assert_allclose(g, fd, atol=1e-8)
    J = cross_entropy.jacobian(y, z, reduction=reduction)
    assert isinstance(J, BlockRow) and J.shape == (1, z.size)
    np.testing.assert_allclose(J.to_dense(), g.reshape(1, -1), atol=1e-15)


@pytest.mark.parametrize("kind", KINDS)
def test_grad_closed_form_and_none_jacobian(kind):
    y, z, t = _data(kind, seed=2)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(cross_entropy.grad(y, z), (p - t) / z.shape[0], atol=1e-15)
    J = cross_entropy.jacobian(y, z, reduction="none")
    assert isinstance(J, BlockDiagonal) and J.shape == (z.shape[0], z.size)
    dense = np.zeros((z.shape[0], z.size))
    for k in range(z.shape[0]):
        dense[k] = _fd_grad(lambda v, k=k: float(cross_entropy.per_sample(y, v)[k]), z).ravel()
    np.testing.assert_allclose(J.to_dense(), dense, atol=1e-8)


@pytest.mark.parametrize("kind", ["labels", "probabilities"])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_matches_torch(kind, reduction):
    torch = pytest.importorskip("torch")
    y, z, _ = _data(kind, n=6, c=5, seed=3)
    zt = torch.tensor(z, requires_grad=True)
    target = torch.tensor(y)  # int64 labels or float64 probabilities
    loss = torch.nn.functional.cross_entropy(zt, target, reduction=reduction)
    loss.backward()
    np.testing.assert_allclose(cross_entropy(y, z, reduction=reduction), loss.item(), rtol=1e-14)
    np.testing.assert_allclose(
        cross_entropy.grad(y, z, reduction=reduction), zt.grad.numpy(), atol=1e-15
    )
    none = torch.nn.functional.cross_entropy(torch.tensor(z), target, reduction="none")
    np.testing.assert_allclose(cross_entropy(y, z, reduction="none"), none.numpy(), rtol=1e-14)


@pytest.mark.parametrize("kind", KINDS)
def test_large_logits_stable(kind):
    y, z, t = _data(kind, n=3, c=3, seed=4)
    z = np.array([[1e4, 0.0, -1e4], [-1e4, 1e4, 1e4], [1e4, 1e4, 1e4]])
    for dtype in (np.float32, np.float64):
        zd = z.astype(dtype)
        yd = y if kind == "labels" else y.astype(dtype)  # mixed dtypes promote
        per = cross_entropy.per_sample(yd, zd)
        assert per.dtype == dtype and np.isfinite(per).all()
        np.testing.assert_allclose(per, _ce_ref(t, z), rtol=1e-6)
        g = cross_entropy.grad(yd, zd)
        assert g.dtype == dtype and np.isfinite(g).all()


@pytest.mark.parametrize("kind", KINDS)
def test_float32_kept(kind):
    y, z, _ = _data(kind, seed=5)
    z32 = z.astype(np.float32)
    y32 = y.astype(np.float32) if kind != "labels" else y
    assert cross_entropy(y32, z32).dtype == np.float32
    assert cross_entropy.grad(y32, z32).dtype == np.float32
    assert cross_entropy.hessian(y32, z32).dtype == np.float32
    np.testing.assert_allclose(cross_entropy.grad(y32, z32), cross_entropy.grad(y, z), atol=1e-7)


def test_nan_in_nan_out():
    z = np.array([[0.0, np.nan], [0.0, 1.0]])
    per = cross_entropy.per_sample(np.array([0, 1]), z)
    assert np.isnan(per[0]) and np.isfinite(per[1])
    assert np.isnan(cross_entropy.grad(np.array([0, 1]), z)[0]).all()


def test_bad_input():
    z = np.zeros((3, 4))
    with pytest.raises(IndexError, match="label 4 at index 1 .* C = 4"):
        cross_entropy(np.array([0, 4, 1]), z)
    with pytest.raises(IndexError, match="label -1 at index 2"):
        cross_entropy.grad(np.array([0, 1, -1]), z)
    with pytest.raises(IndexError, match="label 7"):
        cross_entropy.hessian(np.array([0, 7, 1]), z)
    with pytest.raises(ValueError, match=r"shape \(2,\) but the logits have shape \(3, 4\)"):
        cross_entropy(np.array([0, 1]), z)
    with pytest.raises(ValueError, match=r"shape \(3, 3\) but the logits have shape \(3, 4\)"):
        cross_entropy(np.zeros((3, 3)), z)
    with pytest.raises(ValueError, match=r"logits of shape \(4,\)"):
        cross_entropy(np.array([1]), np.zeros(4))
    with pytest.raises(TypeError, match="must be integers, got dtype float64"):
        cross_entropy(np.array([0.0, 1.0, 2.0]), z)
    with pytest.raises(ValueError, match="unknown reduction"):
        cross_entropy(np.array([0, 1, 2]), z, reduction="avg")


def test_inputs_not_written():
    y, z, _ = _data("probabilities", seed=6)
    y0, z0 = y.copy(), z.copy()
    cross_entropy(y, z), cross_entropy.grad(y, z), cross_entropy.hessian(y, z)
    np.testing.assert_array_equal(y, y0)
    np.testing.assert_array_equal(z, z0)


def test_empty_batch():
    z = np.zeros((0, 3))
    assert np.isnan(cross_entropy(np.zeros(0, dtype=int), z))
    assert cross_entropy(np.zeros(0, dtype=int), z, reduction="sum") == 0
    assert cross_entropy.grad(np.zeros(0, dtype=int), z).shape == (0, 3)


# ----------------------------------------------------------------------------- Hessians


def _hessian_data(name, seed=7):
    rng = np.random.default_rng(seed)
    if name == "cross_entropy":
        y, z, _ = _data("probabilities", n=3, c=4, seed=seed)
        return cross_entropy, y * 1.5, z  # unnormalised targets too
    loss = {"mse": mse, "bce": bce, "bce_with_logits": bce_with_logits}[name]
    y = rng.integers(0, 2, size=(3, 2)).astype(float)
    h = rng.uniform(0.1, 0.9, size=(3, 2)) if name == "bce" else rng.normal(size=(3, 2))
    return loss, y, h


HESSIAN_TYPES = {
    "mse": ScaledIdentity,
    "bce": Diagonal,
    "bce_with_logits": Diagonal,
    "cross_entropy": BlockDiagonal,
}


@pytest.mark.parametrize("name", sorted(HESSIAN_TYPES))
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_hessian_vs_differences_of_the_gradient(name, reduction):
    loss, y, h = _hessian_data(name)
    H = loss.hessian(y, h, reduction=reduction)
    assert type(H) is HESSIAN_TYPES[name]
    red = "sum" if reduction == "none" else reduction  # "none": the per-sample Hessians
    step = 1e-6
    cols = []
    for j in range(h.size):
        e = np.zeros(h.size)
        e[j] = step
        e = e.reshape(h.shape)
        cols.append(
            (loss.grad(y, h + e, reduction=red) - loss.grad(y, h - e, reduction=red)).ravel()
            / (2 * step)
        )
    np.testing.assert_allclose(H.to_dense(), np.stack(cols, axis=1), atol=1e-7)


def test_cross_entropy_hessian_matches_torch():
    torch = pytest.importorskip("torch")
    y, z, _ = _data("labels", n=4, c=3, seed=8)
    h = torch.autograd.functional.hessian(
        lambda v: torch.nn.functional.cross_entropy(v.reshape(4, 3), torch.tensor(y)),
        torch.tensor(z.ravel()),
    )
    H = cross_entropy.hessian(y, z)
    assert H.n_blocks == 4 and H.block_shape == (3, 3)
    np.testing.assert_allclose(H.to_dense(), h.numpy(), atol=1e-15)


@settings(deadline=None, derandomize=True, max_examples=30)
@given(
    n=st.integers(1, 4), c=st.integers(1, 5), scale=st.floats(0.1, 50.0), seed=st.integers(0, 2**16)
)
def test_property_grad_is_softmax_minus_onehot(n, c, scale, seed):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, c)) * scale
    labels = rng.integers(0, c, size=n)
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(
        cross_entropy.grad(labels, z, reduction="sum"), p - np.eye(c)[labels], atol=1e-14
    )
    np.testing.assert_allclose(
        cross_entropy.per_sample(labels, z), _ce_ref(np.eye(c)[labels], z), rtol=1e-12, atol=1e-12
    )
