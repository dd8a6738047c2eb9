"""The networks against an independent reference: forward, loss and backward written here
in plain numpy from the lecture's formulas (no structjac forward, loss or kernel), value and
gradients at 1e-12 in float64, and the reference's own central differences."""

import itertools

import numpy as np
import pytest

from structjac import nn

SLOPE = 0.01  # leaky_relu's default slope


def _g(name, z):
    if name == "sigmoid":
        return 1.0 / (1.0 + np.exp(-z))
    if name == "tanh":
        return np.tanh(z)
    if name == "relu":
        return np.maximum(z, 0.0)
    if name == "leaky_relu":
        return np.where(z > 0, z, SLOPE * z)
    if name == "softplus":
        return np.log1p(np.exp(z))
    if name == "exp":  # an op without a fused layer kernel
        return np.exp(z)
    return z  # None: identity


def _dg(name, z):
    if name == "sigmoid":
        s = 1.0 / (1.0 + np.exp(-z))
        return s * (1.0 - s)
    if name == "tanh":
        return 1.0 - np.tanh(z) ** 2
    if name == "relu":
        return (z > 0).astype(float)
    if name == "leaky_relu":
        return np.where(z > 0, 1.0, SLOPE)
    if name == "softplus":
        return 1.0 / (1.0 + np.exp(-z))
    if name == "exp":
        return np.exp(z)
    return np.ones_like(z)


def _per_sample_loss(loss, y, a):
    """J_0^(k), summed over the outputs of sample k, and dJ_0^(k)/da."""
    if loss == "mse":
        return ((y - a) ** 2).sum(axis=1), -2.0 * (y - a)
    if loss == "bce":
        return (-(y * np.log(a) + (1 - y) * np.log(1 - a))).sum(axis=1), -(
            y / a - (1 - y) / (1 - a)
        )
    # bce_with_logits: a are logits; J_0 = log(1 + e^a) - y a
    return (np.log1p(np.exp(a)) - y * a).sum(axis=1), 1.0 / (1.0 + np.exp(-a)) - y


def _weight(reduction, y):
    return {"mean": 1.0 / y.shape[0], "sum": 1.0, "elementwise_mean": 1.0 / y.size}[reduction]


def reference(params, X, y, acts, loss, reduction):
    """(loss, [(dW, db)], per-sample [(dW^(k), db^(k))]) by hand-written backpropagation."""
    A, saved = X, []
    for (W, b), act in zip(params, acts):
        Z = A @ W.T + b
        saved.append((A, Z))
        A = _g(act, Z)
    per, dJ0 = _per_sample_loss(loss, y, A)
    w = _weight(reduction, y)
    value = w * per.sum()
    G = w * dJ0  # dJ/dA_L, (N, m_L)
    grads, per_sample = [], []
    for l in range(len(params) - 1, -1, -1):
        W, _ = params[l]
        A_prev, Z = saved[l]
        G = G * _dg(acts[l], Z)  # dJ/dZ_l
        grads.append((G.T @ A_prev, G.sum(axis=0)))
        per_sample.append((np.stack([np.outer(g, a) for g, a in zip(G, A_prev)]) / w, G / w))
        G = G @ W  # dJ/dA_{l-1}
    return value, grads[::-1], per_sample[::-1]


def _reference_loss(params, X, y, acts, loss, reduction):
    A = X
    for (W, b), act in zip(params, acts):
        A = _g(act, A @ W.T + b)
    return _weight(reduction, y) * _per_sample_loss(loss, y, A)[0].sum()


CASES = [
    ([3, 4, 2], ["sigmoid", "sigmoid"], "bce"),
    ([3, 5, 4, 1], ["tanh", "relu", "sigmoid"], "bce"),
    ([4, 6, 3], ["leaky_relu", None], "mse"),
    ([2, 3, 3, 2], ["softplus", "tanh", None], "bce_with_logits"),
    ([3, 1, 4, 2], ["tanh", "sigmoid", "sigmoid"], "mse"),  # one unit inside
    ([5, 1], [None], "mse"),  # linear regression
]


def _problem(sizes, seed, N=9):
    rng = np.random.default_rng(seed)
    params = [
        (rng.standard_normal((m, d)) / np.sqrt(d), 0.3 * rng.standard_normal(m))
        for d, m in itertools.pairwise(sizes)
    ]
    X = rng.standard_normal((N, sizes[0]))
    y = (rng.random((N, sizes[-1])) > 0.5).astype(float)
    return params, X, y


def _ids(case):
    sizes, acts, loss = case
    return "-".join(map(str, sizes)) + ":" + "/".join(a or "id" for a in acts) + ":" + loss


@pytest.mark.parametrize("reduction", ["mean", "sum", "elementwise_mean"])
@pytest.mark.parametrize("method", ["fused", "structures"])
@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_value_and_grads_equal_the_numpy_reference(case, method, reduction):
    sizes, acts, loss = case
    params, X, y = _problem(sizes, seed=len(sizes) + sizes[1])
    ref_value, ref_grads, ref_per = reference(params, X, y, acts, loss, reduction)
    res = nn.value_and_grad(
        params, X, y, acts, loss, reduction=reduction, method=method, per_sample=True
    )
    assert res.loss == pytest.approx(ref_value, rel=1e-12)
    for (gW, gb), (rW, rb) in zip(res.grads, ref_grads):
        scale = max(np.abs(rW).max(), np.abs(rb).max())
        np.testing.assert_allclose(gW, rW, rtol=1e-12, atol=1e-14 * scale)
        np.testing.assert_allclose(gb, rb, rtol=1e-12, atol=1e-14 * scale)
    for (pW, pb), (rW, rb) in zip(res.per_sample, ref_per):
        scale = max(np.abs(rW).max(), np.abs(rb).max())
        np.testing.assert_allclose(pW, rW, rtol=1e-12, atol=1e-14 * scale)
        np.testing.assert_allclose(pb, rb, rtol=1e-12, atol=1e-14 * scale)


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_grads_against_central_differences_of_the_reference_loss(case):
    sizes, acts, loss = case
    params, X, y = _problem(sizes, seed=11 + sizes[0])
    _, grads = nn.value_and_grad(params, X, y, acts, loss)
    h = 1e-6
    for l, (W, b) in enumerate(params):
        for which, P in ((0, W), (1, b)):
            fd = np.empty(P.shape)
            for idx in np.ndindex(P.shape):

                def f(t, l=l, which=which, idx=idx):
                    Q = [(W_.copy(), b_.copy()) for W_, b_ in params]
                    Q[l][which][idx] = t
                    return _reference_loss(Q, X, y, acts, loss, "mean")

                fd[idx] = (f(P[idx] + h) - f(P[idx] - h)) / (2 * h)
            np.testing.assert_allclose(grads[l][which], fd, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_float32_network_against_the_float64_reference(case):
    sizes, acts, loss = case
    params, X, y = _problem(sizes, seed=5)
    net = nn.MLP(sizes, acts, loss=loss, dtype=np.float32)
    p32 = [(W.astype(np.float32), b.astype(np.float32)) for W, b in params]
    value, grads = net.value_and_grad(p32, X.astype(np.float32), y.astype(np.float32))
    ref_value, ref_grads, _ = reference(
        [(W.astype(np.float64), b.astype(np.float64)) for W, b in p32],
        X.astype(np.float32).astype(np.float64),
        y,
        acts,
        loss,
        "mean",
    )
    assert np.asarray(value).dtype == np.float32
    assert value == pytest.approx(ref_value, rel=2e-5)
    for (gW, gb), (rW, rb) in zip(grads, ref_grads):
        assert gW.dtype == gb.dtype == np.float32
        scale = max(np.abs(rW).max(), np.abs(rb).max())
        np.testing.assert_allclose(gW, rW, rtol=1e-4, atol=1e-5 * scale)
        np.testing.assert_allclose(gb, rb, rtol=1e-4, atol=1e-5 * scale)


@pytest.mark.parametrize("case", CASES[:5], ids=_ids)
def test_chain_of_each_whole_chain_gives_the_gradients(case):
    """dJ/dW_l = chain(loss row, da/dz_L, dz/dx_L, ..., da/dz_l, dz/dW_l), planned by chain."""
    from structjac.chain import chain

    sizes, acts, loss = case
    params, X, y = _problem(sizes, seed=21)
    res = nn.value_and_grad(params, X, y, acts, loss, return_jacobians=True)
    L = len(params)
    S = [{k.split(" ", 2)[2]: v for k, v in res.jacobians[l].items()} for l in range(L)]
    prefix = [S[L - 1]["dJ/da (loss row)"]]
    for l in range(L - 1, -1, -1):
        prefix.append(S[l]["da/dz"])
        gW = np.asarray(chain(*prefix, S[l]["dz/dW"]).to_dense()).reshape(params[l][0].shape)
        gb = np.asarray(chain(*prefix, S[l]["dz/db"]).to_dense()).reshape(params[l][1].shape)
        np.testing.assert_allclose(gW, res.grads[l][0], rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(gb, res.grads[l][1], rtol=1e-12, atol=1e-15)
        prefix.append(S[l]["dz/dx"])
