"""Network gradients against finite differences, the structures path, PyTorch and JAX."""

import numpy as np
import pytest

from structjac import nn, ops

CASES = [
    (["sigmoid", "tanh", "sigmoid"], "bce"),
    (["tanh", "softplus", None], "mse"),
    (["leaky_relu", "relu", None], "bce_with_logits"),
    (["relu", "sigmoid"], "mse"),
]


def _problem(acts, loss, seed=0, N=7, dtype=np.float64):
    rng = np.random.default_rng(seed)
    sizes = [3] + [4] * (len(acts) - 1) + [2]
    net = nn.MLP(sizes, acts, loss=loss, dtype=dtype)
    params = net.init(rng)
    params = [(W, (0.1 * rng.standard_normal(b.shape)).astype(dtype)) for W, b in params]
    X = rng.standard_normal((N, 3)).astype(dtype)
    y = (rng.random((N, 2)) > 0.5).astype(dtype)
    return net, params, X, y


def _flat_loss(net, params, X, y):
    def f(theta):
        P, k = [], 0
        for W, b in params:
            Wn = theta[k : k + W.size].reshape(W.shape)
            k += W.size
            bn = theta[k : k + b.size]
            k += b.size
            P.append((Wn, bn))
        return float(net.loss(y, net.forward(P, X)))

    theta = np.concatenate([np.concatenate([W.ravel(), b]) for W, b in params])
    return f, theta


@pytest.mark.parametrize("acts,loss", CASES)
def test_gradient_against_central_differences(acts, loss):
    net, params, X, y = _problem(acts, loss)
    value, grads = net.value_and_grad(params, X, y)
    f, theta = _flat_loss(net, params, X, y)
    assert value == pytest.approx(f(theta), rel=1e-14)
    h = 1e-6
    fd = np.array([(f(theta + h * e) - f(theta - h * e)) / (2 * h) for e in np.eye(theta.size)])
    got = np.concatenate([np.concatenate([gW.ravel(), gb]) for gW, gb in grads])
    np.testing.assert_allclose(got, fd, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("acts,loss", CASES)
def test_fused_equals_structures_path(acts, loss):
    net, params, X, y = _problem(acts, loss, seed=3)
    res = net.value_and_grad(params, X, y, return_jacobians=True, per_sample=True)
    ref = net.value_and_grad(params, X, y, method="structures")
    for (a, b), (c, d) in zip(res.grads, ref.grads):
        np.testing.assert_allclose(a, c, rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(b, d, rtol=1e-13, atol=1e-15)
    assert "StackedKronecker" in res.explain()
    for layer in res.jacobians:
        for name, J in layer.items():
            assert type(J).__name__ not in ("Dense", "Sparse"), name
    # per-sample gradients average to the gradient (mean reduction)
    for (pW, pb), (gW, gb) in zip(res.per_sample, res.grads):
        assert pW.shape == (X.shape[0],) + gW.shape
        np.testing.assert_allclose(pW.mean(axis=0), gW, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(pb.mean(axis=0), gb, rtol=1e-12, atol=1e-15)


def test_per_sample_rows_are_the_lectures_neuron_rows():
    rng = np.random.default_rng(4)
    X = rng.standard_normal((5, 3))
    w, b = rng.standard_normal(3), 0.2
    y = rng.standard_normal(5)
    res = nn.value_and_grad(
        [(w[None, :], np.array([b]))], X, y, ["sigmoid"], "mse", per_sample=True
    )
    a = ops.sigmoid(X @ w + b)
    rows = (-2 * (y - a) * a * (1 - a))[:, None] * X  # dJ0^(k)/dw: row k of da/dw times dJ0/da
    np.testing.assert_allclose(res.per_sample[0][0][:, 0, :], rows, rtol=1e-12)


def test_float32_stays_float32():
    net, params, X, y = _problem(["sigmoid", "tanh", "sigmoid"], "bce", dtype=np.float32)
    value, grads = net.value_and_grad(params, X, y)
    assert np.asarray(value).dtype == np.float32
    assert all(gW.dtype == np.float32 and gb.dtype == np.float32 for gW, gb in grads)
    v64, g64 = net.value_and_grad(
        [(W.astype(np.float64), b.astype(np.float64)) for W, b in params],
        X.astype(np.float64),
        y.astype(np.float64),
    )
    for (a, _), (c, _) in zip(grads, g64):
        np.testing.assert_allclose(a, c, rtol=1e-4, atol=1e-6)


def test_bad_arguments():
    net, params, X, y = _problem(["tanh", None], "mse")
    with pytest.raises(ValueError):
        net.value_and_grad(params, X[:, :2], y)
    with pytest.raises(ValueError):
        net.value_and_grad(params, X, y, method="magic")
    with pytest.raises(ValueError):
        nn.MLP([3, 2], ["tanh"], loss="hinge")


# ------------------------------------------------------------ PyTorch and JAX
TORCH_CASES = [
    (["sigmoid", "tanh", "sigmoid"], "bce"),
    (["tanh", "softplus", None], "mse"),
    (["leaky_relu", "relu", None], "bce_with_logits"),
]


def _zero_at_zero(acts):
    # torch and JAX take ReLU'(0) = 0; the lecture (our default) takes 1
    return [
        ops.ReLU(at_zero=0.0)
        if a == "relu"
        else (ops.LeakyReLU(at_zero=0.0) if a == "leaky_relu" else a)
        for a in acts
    ]


@pytest.mark.parametrize("acts,loss", TORCH_CASES)
def test_against_pytorch(acts, loss):
    torch = pytest.importorskip("torch")
    net, params, X, y = _problem(acts, loss, seed=5, N=11)
    value, grads = nn.value_and_grad(params, X, y, _zero_at_zero(acts), loss)
    tp = [
        (torch.tensor(W, requires_grad=True), torch.tensor(b, requires_grad=True))
        for W, b in params
    ]
    h = torch.tensor(X)
    fns = {
        "sigmoid": torch.sigmoid,
        "tanh": torch.tanh,
        "relu": torch.relu,
        "leaky_relu": lambda t: torch.nn.functional.leaky_relu(t, 0.01),
        "softplus": torch.nn.functional.softplus,
        None: lambda t: t,
    }
    for (W, b), a in zip(tp, acts):
        h = fns[a](h @ W.T + b)
    yt = torch.tensor(y)
    N = X.shape[0]
    if loss == "bce":
        L = torch.nn.functional.binary_cross_entropy(h, yt, reduction="sum") / N
    elif loss == "mse":
        L = ((yt - h) ** 2).sum() / N
    else:
        L = torch.nn.functional.binary_cross_entropy_with_logits(h, yt, reduction="sum") / N
    L.backward()
    assert float(value) == pytest.approx(L.item(), rel=1e-12)
    for (gW, gb), (W, b) in zip(grads, tp):
        np.testing.assert_allclose(gW, W.grad.numpy(), rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(gb, b.grad.numpy(), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("acts,loss", TORCH_CASES)
def test_against_jax(acts, loss):
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    jnp = jax.numpy
    net, params, X, y = _problem(acts, loss, seed=6, N=9)
    value, grads = nn.value_and_grad(params, X, y, _zero_at_zero(acts), loss)
    fns = {
        "sigmoid": jax.nn.sigmoid,
        "tanh": jnp.tanh,
        "relu": jax.nn.relu,
        "leaky_relu": lambda t: jax.nn.leaky_relu(t, 0.01),
        "softplus": jax.nn.softplus,
        None: lambda t: t,
    }

    def f(P):
        h = jnp.asarray(X)
        for (W, b), a in zip(P, acts):
            h = fns[a](h @ W.T + b)
        N = X.shape[0]
        if loss == "bce":
            return -jnp.sum(y * jnp.log(h) + (1 - y) * jnp.log1p(-h)) / N
        if loss == "mse":
            return jnp.sum((y - h) ** 2) / N
        return jnp.sum(jnp.maximum(h, 0) - h * y + jnp.log1p(jnp.exp(-jnp.abs(h)))) / N

    v, g = jax.value_and_grad(f)([(jnp.asarray(W), jnp.asarray(b)) for W, b in params])
    assert float(value) == pytest.approx(float(v), rel=1e-12)
    for (gW, gb), (jW, jb) in zip(grads, g):
        np.testing.assert_allclose(gW, np.asarray(jW), rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(gb, np.asarray(jb), rtol=1e-12, atol=1e-15)


def test_workspace_reuses_buffers_and_gives_the_same_result():
    from structjac.nn import MLP, Workspace

    rng = np.random.default_rng(3)
    net = MLP([5, 7, 6, 1], ["sigmoid", "relu", "sigmoid"], loss="bce", dtype=np.float64)
    params = net.init(rng)
    X = rng.standard_normal((40, 5))
    y = (rng.random(40) > 0.5).astype(float)
    fresh_loss, fresh = net.value_and_grad(params, X, y, workspace=None)
    ws = Workspace()
    first = net.value_and_grad(params, X, y, workspace=ws)
    held = {name: buf for name, buf in ws._buffers.items()}
    assert held and ws.nbytes > 0
    second = net.value_and_grad(params, X, y, workspace=ws)
    assert all(ws._buffers[name] is buf for name, buf in held.items())  # nothing reallocated
    for result in (first, second):
        assert result.loss == fresh_loss
        for (gW, gb), (fW, fb) in zip(result.grads, fresh):
            np.testing.assert_array_equal(gW, fW)
            np.testing.assert_array_equal(gb, fb)
            assert not any(
                np.shares_memory(gW, buf) or np.shares_memory(gb, buf) for buf in held.values()
            )
    # MLP keeps its own workspace and uses it by default
    net.value_and_grad(params, X, y)
    assert net.workspace.nbytes == ws.nbytes


# ------------------------------------------------------------ the fused layer passes
BELOW_ONE_UNIT = ["sigmoid", "tanh", "relu", "leaky_relu", "softplus", None, "exp"]


@pytest.mark.parametrize("below", BELOW_ONE_UNIT)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_one_unit_output_outer_product_path_equals_structures(below, dtype):
    """A last layer of one unit: G W is the outer product g w^T, formed inside the next
    vjp pass (or by a broadcast product for an op without a fused kernel, here exp)."""
    rng = np.random.default_rng(8)
    acts = ["tanh", ops.exp if below == "exp" else below, "sigmoid"]
    params = [
        (
            (0.5 * rng.standard_normal((m, d))).astype(dtype),
            (0.1 * rng.standard_normal(m)).astype(dtype),
        )
        for d, m in ((3, 5), (5, 4), (4, 1))
    ]
    X = rng.standard_normal((300, 3)).astype(dtype)
    y = (rng.random(300) > 0.5).astype(dtype)
    res = nn.value_and_grad(params, X, y, acts, "bce", per_sample=True)
    ref = nn.value_and_grad(params, X, y, acts, "bce", method="structures")
    tol = dict(rtol=1e-13, atol=1e-15) if dtype == np.float64 else dict(rtol=2e-5, atol=1e-7)
    for (a, b), (c, d) in zip(res.grads, ref.grads):
        assert a.dtype == dtype and b.dtype == dtype
        np.testing.assert_allclose(a, c, **tol)
        np.testing.assert_allclose(b, d, **tol)
    ws = nn.Workspace()
    for _ in range(2):  # fresh buffers, then reused ones
        v, grads = nn.value_and_grad(params, X, y, acts, "bce", workspace=ws)
        for (a, b), (c, d) in zip(grads, res.grads):
            np.testing.assert_array_equal(a, c)
            np.testing.assert_array_equal(b, d)


def test_parallel_passes_give_the_same_result():
    from structjac import kernels

    net, params, X, y = _problem(["sigmoid", "tanh", "sigmoid"], "bce", N=70_000)
    old = kernels.set_parallel_threshold(0)
    try:
        v1, g1 = net.value_and_grad(params, X, y)
        v2, g2 = net.value_and_grad(params, X, y, parallel_passes=True)
    finally:
        kernels.set_parallel_threshold(old)
    assert v1 == pytest.approx(v2, rel=1e-14)
    for (a, b), (c, d) in zip(g1, g2):
        np.testing.assert_allclose(a, c, rtol=1e-13)
        np.testing.assert_array_equal(b, d)  # chunked sums: the same bits


def test_subclassed_activation_takes_its_own_kernels():
    class Doubled(ops.Tanh):  # not the fused kernel's tanh
        def _value(self, x, out):
            return np.multiply(2.0, ops.tanh(x), out=out)

        def _vjp_from_output(self, a, g, out):
            return np.multiply(g, 2.0 * (1 + a / 2) * (1 - a / 2), out=out)

        def _derivative_from_output(self, a, out):
            return np.multiply(2.0, (1 + a / 2) * (1 - a / 2), out=out)

    rng = np.random.default_rng(9)
    params = [
        (rng.standard_normal((3, 2)), rng.standard_normal(3)),
        (rng.standard_normal((1, 3)), rng.standard_normal(1)),
    ]
    X = rng.standard_normal((6, 2))
    y = rng.standard_normal(6)
    res = nn.value_and_grad(params, X, y, [Doubled(), None], "mse")
    h = 2 * np.tanh(X @ params[0][0].T + params[0][1])
    out = h @ params[1][0].T + params[1][1]
    assert float(res.loss) == pytest.approx(np.mean((y - out[:, 0]) ** 2), rel=1e-14)
    ref = nn.value_and_grad(params, X, y, [Doubled(), None], "mse", method="structures")
    for (a, b), (c, d) in zip(res.grads, ref.grads):
        np.testing.assert_allclose(a, c, rtol=1e-13)
        np.testing.assert_allclose(b, d, rtol=1e-13)
