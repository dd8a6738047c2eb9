"""Per-sample statistics and curvature from ``value_and_grad(..., extras=...)`` against the
naive per-sample reference (float64 at 1e-12), float32 kept, and bad input."""

import itertools

import numpy as np
import pytest

from structjac import nn, ops
from structjac.ops import Loss

from . import reference as ref

# (sizes, activations, loss): every loss, every activation, a one-unit hidden layer
NETWORKS = [
    ([4, 5, 3], ["tanh", None], "mse"),
    ([4, 5, 1], ["relu", "sigmoid"], "bce"),
    ([4, 5, 2], ["softplus", None], "bce_with_logits"),
    ([4, 6, 5, 3], ["sigmoid", "leaky_relu", None], "cross_entropy"),
    ([3, 1, 4, 2], ["tanh", "tanh", None], "mse"),
]
IDS = ["mse-tanh", "bce-relu-sigmoid", "logits-softplus", "ce-3layer", "mse-one-unit"]


def problem(sizes, acts, loss, N=7, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    params = [
        (rng.standard_normal((m, d)) / np.sqrt(d), 0.1 * rng.standard_normal(m))
        for d, m in itertools.pairwise(sizes)
    ]
    X = rng.standard_normal((N, sizes[0]))
    m = sizes[-1]
    if loss == "cross_entropy":
        y = rng.integers(0, m, N)
    elif loss in ("bce", "bce_with_logits"):
        y = (rng.random((N, m)) > 0.5).astype(float)
    else:
        y = rng.standard_normal((N, m))
    params = [(W.astype(dtype), b.astype(dtype)) for W, b in params]
    return params, X.astype(dtype), y if loss == "cross_entropy" else y.astype(dtype)


def close(actual, desired, rtol=1e-12):
    actual, desired = np.asarray(actual), np.asarray(desired)
    scale = max(np.abs(desired).max(), np.finfo(float).tiny)
    np.testing.assert_allclose(actual, desired, rtol=rtol, atol=rtol * scale)


def close_pairs(actual, desired, rtol=1e-12):
    assert len(actual) == len(desired)
    for (aW, ab), (dW, db) in zip(actual, desired):
        assert aW.shape == dW.shape and ab.shape == db.shape
        close(aW, dW, rtol), close(ab, db, rtol)


@pytest.mark.parametrize("method", ["fused", "structures"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "elementwise_mean"])
@pytest.mark.parametrize("net", NETWORKS, ids=IDS)
def test_first_order_against_reference(net, reduction, method):
    sizes, acts, loss = net
    params, X, y = problem(sizes, acts, loss)
    N = X.shape[0]
    res = nn.value_and_grad(
        params,
        X,
        y,
        acts,
        loss,
        reduction=reduction,
        method=method,
        extras=("grad_norms", "sum_grad_squared", "variance"),
    )
    g = ref.per_sample_grads(params, acts, loss, X, y, reduction)  # (N, P)
    close(res.extras["grad_norms"], np.linalg.norm(g, axis=1))
    close_pairs(res.extras["sum_grad_squared"], ref.split(params, (g**2).sum(0)))
    var = (g**2).sum(0) / N - (g.sum(0) / N) ** 2
    close_pairs(res.extras["variance"], ref.split(params, var))
    # and the gradient itself is unchanged by asking for extras
    close_pairs(res.grads, ref.split(params, g.sum(0)))


@pytest.mark.parametrize("max_norm", [1e-3, 0.3, 1e6])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("net", NETWORKS, ids=IDS)
def test_clipped_grad_against_reference(net, reduction, max_norm):
    sizes, acts, loss = net
    params, X, y = problem(sizes, acts, loss)
    res = nn.value_and_grad(
        params, X, y, acts, loss, reduction=reduction, extras=("clipped_grad",), max_norm=max_norm
    )
    g = ref.per_sample_grads(params, acts, loss, X, y, reduction)
    w = ref.weight(reduction, X.shape[0], sizes[-1])
    g0 = g / w  # gradients of J_0^(k)
    c = np.minimum(1.0, max_norm / np.linalg.norm(g0, axis=1))
    close_pairs(res.extras["clipped_grad"], ref.split(params, w * (c[:, None] * g0).sum(0)))
    if max_norm == 1e6:  # nothing clipped: the gradient
        close_pairs(res.extras["clipped_grad"], res.grads)


@pytest.mark.parametrize("reduction", ["mean", "sum", "elementwise_mean"])
@pytest.mark.parametrize("net", NETWORKS, ids=IDS)
def test_diag_ggn_and_kflr_against_reference(net, reduction):
    sizes, acts, loss = net
    params, X, y = problem(sizes, acts, loss)
    N = X.shape[0]
    res = nn.value_and_grad(
        params, X, y, acts, loss, reduction=reduction, extras=("diag_ggn", "kflr")
    )
    G = ref.ggn(params, acts, loss, X, y, reduction)
    close_pairs(res.extras["diag_ggn"], ref.split(params, np.diag(G)))
    # KFLR: output-gradient factor sum_k J_zk^T (w H_k) J_zk per layer, input factor A^T A / N
    J, _, H, w, inputs = ref.per_sample(params, acts, loss, X, y, reduction)
    start = 0
    for l, (W, b) in enumerate(params):
        m, d = W.shape
        Jb = J[:, :, start + m * d : start + m * d + m]  # d a_L / d b_l = d a_L / d z_l
        Gf = w * np.einsum("kci,kcd,kdj->ij", Jb, H, Jb)
        Af = inputs[l].T @ inputs[l] / N
        KW, Kb = res.extras["kflr"][l]
        close(KW.to_dense(), np.kron(Gf, Af))
        close(Kb.to_dense(), Gf)
        # the weight block of the GGN is the Kronecker product when the input factor is
        # exact (one sample): checked on the diagonal blocks' sizes here
        assert KW.shape == (m * d, m * d)
        start += m * d + m


def test_diag_hessian_equals_the_torch_hessian_for_piecewise_linear_networks():
    torch = pytest.importorskip("torch")
    sizes, acts = [3, 4, 4, 2], ["relu", "leaky_relu", None]
    params, X, y = problem(sizes, acts, "mse", N=5)
    res = nn.value_and_grad(params, X, y, acts, "mse", extras=("diag_hessian", "diag_ggn"))
    shapes = [(W.shape, b.shape) for W, b in params]
    theta0 = torch.tensor(ref.flat(params), dtype=torch.float64)
    Xt, yt = torch.tensor(X), torch.tensor(y)

    def f(theta):
        a, i = Xt, 0
        for l, ((sW, sb), act) in enumerate(zip(shapes, acts)):
            W = theta[i : i + sW[0] * sW[1]].reshape(sW)
            i += sW[0] * sW[1]
            b = theta[i : i + sb[0]]
            i += sb[0]
            z = a @ W.T + b
            a = {
                "relu": torch.relu,
                "leaky_relu": lambda t: torch.nn.functional.leaky_relu(t, ref.SLOPE),
                None: lambda t: t,
            }[act](z)
        return ((a - yt) ** 2).sum() / Xt.shape[0]

    H = torch.autograd.functional.hessian(f, theta0).numpy()
    close_pairs(res.extras["diag_hessian"], ref.split(params, np.diag(H)))
    close_pairs(res.extras["diag_hessian"], res.extras["diag_ggn"])


@pytest.mark.parametrize("net", NETWORKS, ids=IDS)
def test_monte_carlo_converges_to_exact(net):
    sizes, acts, loss = net
    params, X, y = problem(sizes, acts, loss, N=4)
    exact = nn.value_and_grad(params, X, y, acts, loss, extras=("diag_ggn", "kflr")).extras
    # many samples in one call and the mean over seeds: both unbiased, both -> exact
    big = nn.value_and_grad(
        params, X, y, acts, loss, extras=("diag_ggn_mc", "kfac"), mc_samples=20000, seed=1
    ).extras
    flat_exact = ref.flat(exact["diag_ggn"])
    err = np.abs(ref.flat(big["diag_ggn_mc"]) - flat_exact).max() / np.abs(flat_exact).max()
    assert err < 0.05
    for (KW, Kb), (EW, Eb) in zip(big["kfac"], exact["kflr"]):
        e = EW.to_dense()
        assert np.abs(KW.to_dense() - e).max() < 0.05 * np.abs(e).max()
    runs = [
        ref.flat(
            nn.value_and_grad(params, X, y, acts, loss, extras=("diag_ggn_mc",), seed=s).extras[
                "diag_ggn_mc"
            ]
        )
        for s in range(400)
    ]
    err = np.abs(np.mean(runs, axis=0) - flat_exact).max() / np.abs(flat_exact).max()
    assert err < 0.15
    # a single estimate is not the exact value (the test could fail if MC were exact),
    # except BCE with one output: a Rademacher sign squared is 1, the estimate is exact
    if loss == "bce" and sizes[-1] == 1:
        np.testing.assert_allclose(runs[0], flat_exact, rtol=1e-12)
    else:
        assert not np.allclose(runs[0], flat_exact)


def test_monte_carlo_is_seeded():
    sizes, acts, loss = NETWORKS[3]
    params, X, y = problem(sizes, acts, loss)
    a, b, c = (
        nn.value_and_grad(
            params, X, y, acts, loss, extras=("diag_ggn_mc",), seed=s, mc_samples=3
        ).extras["diag_ggn_mc"]
        for s in (5, 5, 6)
    )
    close_pairs(a, b, rtol=0)
    assert not np.allclose(ref.flat(a), ref.flat(c))


ALL = (
    "grad_norms",
    "sum_grad_squared",
    "variance",
    "clipped_grad",
    "diag_ggn",
    "diag_ggn_mc",
    "kflr",
    "kfac",
)


@pytest.mark.parametrize("net", NETWORKS, ids=IDS)
def test_float32_stays_float32_and_agrees(net):
    sizes, acts, loss = net
    p64, X64, y64 = problem(sizes, acts, loss)
    p32, X32, y32 = problem(sizes, acts, loss, dtype=np.float32)
    r32 = nn.value_and_grad(p32, X32, y32, acts, loss, extras=ALL, max_norm=0.5, seed=0)
    r64 = nn.value_and_grad(p64, X64, y64, acts, loss, extras=ALL, max_norm=0.5, seed=0)
    assert r32.extras["grad_norms"].dtype == np.float32
    close(r32.extras["grad_norms"], r64.extras["grad_norms"], 1e-4)
    for name in ALL[1:]:
        for got, want in zip(r32.extras[name], r64.extras[name]):
            for a, b in zip(got, want):
                a = a.to_dense() if hasattr(a, "to_dense") else a
                b = b.to_dense() if hasattr(b, "to_dense") else b
                assert a.dtype == np.float32, name
                if name not in ("diag_ggn_mc", "kfac"):
                    close(a, b, 2e-4)


def test_mlp_method_and_workspace_reuse():
    sizes, acts, loss = NETWORKS[3]
    params, X, y = problem(sizes, acts, loss)
    net = nn.MLP(sizes, acts, loss=loss, dtype=np.float64)
    first = net.value_and_grad(params, X, y, extras=("grad_norms", "diag_ggn"))
    again = net.value_and_grad(params, X, y, extras=("grad_norms", "diag_ggn"))
    close(first.extras["grad_norms"], again.extras["grad_norms"], 0)
    close_pairs(first.extras["diag_ggn"], again.extras["diag_ggn"], 0)
    assert net.value_and_grad(params, X, y).extras == {}
    g = ref.per_sample_grads(params, acts, loss, X, y)
    close(first.extras["grad_norms"], np.linalg.norm(g, axis=1))


def test_inputs_are_not_written():
    sizes, acts, loss = NETWORKS[0]
    params, X, y = problem(sizes, acts, loss)
    copies = [(W.copy(), b.copy()) for W, b in params], X.copy(), y.copy()
    nn.value_and_grad(params, X, y, acts, loss, extras=ALL, max_norm=0.1)
    close_pairs(params, copies[0], 0)
    np.testing.assert_array_equal(X, copies[1]), np.testing.assert_array_equal(y, copies[2])


def test_bad_input():
    sizes, acts, loss = NETWORKS[0]
    params, X, y = problem(sizes, acts, loss)

    def call(loss=loss, **kw):
        return nn.value_and_grad(params, X, y, acts, loss, **kw)

    with pytest.raises(ValueError, match="unknown extra 'grad_norm'"):
        call(extras=("grad_norm",))
    with pytest.raises(ValueError, match="mc_samples must be at least 1, got 0"):
        call(extras=("diag_ggn_mc",), mc_samples=0)
    with pytest.raises(TypeError, match="mc_samples must be an integer"):
        call(extras=("diag_ggn_mc",), mc_samples=2.5)
    with pytest.raises(ValueError, match=r"max_norm must be a finite number > 0, got -1"):
        call(extras=("clipped_grad",), max_norm=-1)
    with pytest.raises(ValueError, match="max_norm must be"):
        call(extras=("clipped_grad",), max_norm=0.0)
    with pytest.raises(ValueError, match="'clipped_grad' needs max_norm"):
        call(extras=("clipped_grad",))
    with pytest.raises(ValueError, match="names one quantity twice"):
        call(extras=("grad_norms", "grad_norms"))
    with pytest.raises(
        ValueError, match="'diag_hessian' is exact only .* layer 0 has structjac.ops.tanh"
    ):
        call(extras=("diag_hessian",))

    class HalfSquares(Loss):  # a user's loss: value and gradient, no Hessian
        name = "half_squares"

        def _per_sample(self, y, y_hat):
            return 0.5 * ((y - y_hat) ** 2).reshape(len(y), -1).sum(axis=1)

        def _grad(self, y, y_hat, scale, out):
            return np.multiply(y_hat - y, scale, out=out)

    with pytest.raises(ValueError, match=r"\['diag_ggn', 'kfac'\] need the loss's Hessian"):
        call(extras=("grad_norms", "diag_ggn", "kfac"), loss=HalfSquares())
    # the first-order extras work for any loss: half the squared error's
    got = call(extras="grad_norms", loss=HalfSquares()).extras["grad_norms"]
    close(got, 0.5 * call(extras="grad_norms").extras["grad_norms"])


def test_cross_entropy_network_matches_torch():
    torch = pytest.importorskip("torch")
    sizes, acts, loss = NETWORKS[3]
    params, X, y = problem(sizes, acts, loss)
    value, grads = nn.value_and_grad(params, X, y, acts, "cross_entropy")
    tp = [
        (torch.tensor(W, requires_grad=True), torch.tensor(b, requires_grad=True))
        for W, b in params
    ]
    a = torch.tensor(X)
    for (W, b), act in zip(tp, acts):
        z = a @ W.T + b
        a = {
            "sigmoid": torch.sigmoid,
            "leaky_relu": lambda t: torch.nn.functional.leaky_relu(t, ref.SLOPE),
            None: lambda t: t,
        }[act](z)
    L = torch.nn.functional.cross_entropy(a, torch.tensor(y))
    L.backward()
    close(value, L.item())
    close_pairs(grads, [(W.grad.numpy(), b.grad.numpy()) for W, b in tp])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("acts", [[ops.exp, None], [ops.exp, ops.exp]], ids=["exp-none", "exp-exp"])
def test_ghost_norms_of_an_activation_without_a_fused_kernel(acts, dtype):
    """The fused passes form the ghost norms' row squares inside the layer kernels; an
    op without one (``exp``) forms them beside its own pass: the same norms."""
    sizes = [4, 5, 3]
    params, X, y = problem(sizes, acts, "mse", N=9, dtype=dtype)
    res = nn.value_and_grad(
        params, X, y, acts, "mse", extras=("grad_norms", "clipped_grad"), max_norm=0.1
    )
    p64, X64, y64 = problem(sizes, acts, "mse", N=9)
    names = ["exp" if a is ops.exp else a for a in acts]
    g = ref.per_sample_grads(p64, names, "mse", X64, y64, "mean")
    assert res.extras["grad_norms"].dtype == dtype
    close(
        res.extras["grad_norms"], np.linalg.norm(g, axis=1), 1e-12 if dtype == np.float64 else 1e-5
    )
    other = nn.value_and_grad(
        params, X, y, acts, "mse", method="structures", extras=("grad_norms",)
    )
    close(
        res.extras["grad_norms"], other.extras["grad_norms"], 1e-12 if dtype == np.float64 else 1e-5
    )
