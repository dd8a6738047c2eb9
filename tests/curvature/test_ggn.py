"""``nn.ggn`` against the dense J^T H J of the per-sample reference, and
``nn.gauss_newton_step`` against the dense damped solve; it lowers the loss."""

import numpy as np
import pytest
from scipy.sparse.linalg import LinearOperator

from structjac import nn
from structjac.ops import Loss

from . import reference as ref
from .test_extras import IDS, NETWORKS, close, close_pairs, problem


@pytest.mark.parametrize("reduction", ["mean", "sum", "elementwise_mean"])
@pytest.mark.parametrize("net", NETWORKS, ids=IDS)
def test_ggn_matvec_is_dense_JtHJ(net, reduction):
    sizes, acts, loss = net
    params, X, y = problem(sizes, acts, loss)
    G = nn.ggn(params, X, y, acts, loss, reduction=reduction)
    dense = ref.ggn(params, acts, loss, X, y, reduction)
    assert isinstance(G, LinearOperator) and G.shape == dense.shape and G.dtype == np.float64
    V = np.random.default_rng(1).standard_normal((dense.shape[0], 3))
    close(G.matvec(V[:, 0]), dense @ V[:, 0])
    close(G.matmat(V), dense @ V)
    close(G.rmatvec(V[:, 1]), dense @ V[:, 1])
    close(G @ np.eye(dense.shape[0]), dense)
    # its diagonal is the diag_ggn extra
    d = nn.value_and_grad(params, X, y, acts, loss, reduction=reduction, extras=("diag_ggn",))
    close(ref.flat(d.extras["diag_ggn"]), np.diag(dense))


def test_ggn_float32():
    sizes, acts, loss = NETWORKS[3]
    p64, X64, y64 = problem(sizes, acts, loss)
    p32, X32, y32 = problem(sizes, acts, loss, dtype=np.float32)
    G32, G64 = nn.ggn(p32, X32, y32, acts, loss), nn.ggn(p64, X64, y64, acts, loss)
    v = np.random.default_rng(0).standard_normal(G32.shape[0])
    out = G32.matvec(v.astype(np.float32))
    assert G32.dtype == np.float32 and out.dtype == np.float32
    close(out, G64.matvec(v), 1e-4)


@pytest.mark.parametrize("net", NETWORKS, ids=IDS)
def test_gauss_newton_step_is_the_damped_solve_and_lowers_the_loss(net):
    sizes, acts, loss = net
    params, X, y = problem(sizes, acts, loss, N=20)
    damping = 1e-2
    step, info = nn.gauss_newton_step(
        params, X, y, acts, loss, damping=damping, rtol=1e-12, maxiter=2000
    )
    assert info["cg_info"] == 0
    dense = ref.ggn(params, acts, loss, X, y)
    g = ref.per_sample_grads(params, acts, loss, X, y).sum(0)
    want = np.linalg.solve(dense + damping * np.eye(len(g)), -g)
    close(ref.flat(step), want, 1e-7)
    # a full step with little damping may overshoot; with damping 1 (the trust region of a
    # Levenberg-Marquardt loop after a rejected step) it is a descent step that lowers the loss
    step, info = nn.gauss_newton_step(params, X, y, acts, loss, damping=1.0)
    new = [(W + dW, b + db) for (W, b), (dW, db) in zip(params, step)]
    assert nn.value_and_grad(new, X, y, acts, loss).loss < info["loss"]


def test_levenberg_marquardt_beats_gradient_descent_in_steps():
    """The lecture's network (32-64-64-1, sigmoid / tanh / sigmoid, BCE) on a teacher's soft
    labels: 10 damped Gauss-Newton steps reach an excess loss over the teacher's that gradient
    descent, at the better of two learning rates, does not reach in 100 times the steps."""
    acts = ["sigmoid", "tanh", "sigmoid"]
    rng = np.random.default_rng(0)
    X = rng.standard_normal((256, 32))
    teacher = nn.MLP([32, 64, 64, 1], acts, dtype=np.float64).init(rng)
    teacher = [(3 * W, b) for W, b in teacher]
    y = nn.forward(teacher, X, acts).ravel()
    best = nn.value_and_grad(teacher, X, y, acts, "bce").loss
    params0 = nn.MLP([32, 64, 64, 1], acts, dtype=np.float64).init(rng)
    params, lam = params0, 1e-3
    for _ in range(10):
        step, info = nn.gauss_newton_step(params, X, y, acts, "bce", damping=lam, maxiter=50)
        new = [(W + dW, b + db) for (W, b), (dW, db) in zip(params, step)]
        if nn.value_and_grad(new, X, y, acts, "bce").loss < info["loss"]:
            params, lam = new, lam / 3
        else:
            lam *= 3
    lm_excess = nn.value_and_grad(params, X, y, acts, "bce").loss - best
    best_gd = np.inf
    for lr in (0.3, 1.0):
        p = params0
        for _ in range(1000):
            _, grads = nn.value_and_grad(p, X, y, acts, "bce")
            p = [(W - lr * gW, b - lr * gb) for (W, b), (gW, gb) in zip(p, grads)]
        best_gd = min(best_gd, nn.value_and_grad(p, X, y, acts, "bce").loss - best)
    assert 0 <= lm_excess < best_gd / 100


def test_ggn_bad_input():
    sizes, acts, loss = NETWORKS[0]
    params, X, y = problem(sizes, acts, loss)
    G = nn.ggn(params, X, y, acts, loss)
    assert G.shape == (43, 43)
    with pytest.raises(ValueError, match="dimension mismatch"):  # scipy's check of the length
        G.matvec(np.ones(42))
    with pytest.raises(ValueError, match="damping must be a finite number > 0, got 0"):
        nn.gauss_newton_step(params, X, y, acts, loss, damping=0)
    with pytest.raises(ValueError, match="reduction must be one of"):
        nn.ggn(params, X, y, acts, loss, reduction="none")
    with pytest.raises(ValueError, match="y of shape"):
        nn.ggn(params, X, y[:-1], acts, loss)

    class NoHessian(Loss):
        name = "no_hessian"

        def _per_sample(self, y, y_hat):
            return ((y - y_hat) ** 2).sum(axis=1)

        def _grad(self, y, y_hat, scale, out):
            return np.multiply(y_hat - y, 2 * scale, out=out)

    with pytest.raises(
        ValueError, match="ggn needs the loss's Hessian, which loss structjac.ops.no_hessian"
    ):
        nn.ggn(params, X, y, acts, NoHessian())


def test_ggn_does_not_write_inputs():
    sizes, acts, loss = NETWORKS[1]
    params, X, y = problem(sizes, acts, loss)
    copies = [(W.copy(), b.copy()) for W, b in params], X.copy()
    G = nn.ggn(params, X, y, acts, loss)
    G.matvec(np.ones(G.shape[0]))
    nn.gauss_newton_step(params, X, y, acts, loss)
    close_pairs(params, copies[0], 0)
    np.testing.assert_array_equal(X, copies[1])
