"""The pieces behind the extras' speed: the fused gated sum of squares, the C - 1 column
factor of cross-entropy's Hessian, and what one call shares between extras."""

from __future__ import annotations

import numpy as np
import pytest

from structjac import _extras, nn
from structjac.kernels.curvature import gate_from_output, gate_square_sum


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("gated", [False, True])
def test_gate_square_sum_against_numpy(dtype, gated):
    rng = np.random.default_rng(0)
    V = rng.standard_normal((4, 7, 5)).astype(dtype)
    gp = rng.standard_normal((7, 5)).astype(dtype) if gated else None
    V0 = V.copy()
    Vg = V0 * gp if gated else V0
    Q = gate_square_sum(V, gp)
    assert Q.dtype == dtype and Q.shape == (7, 5)
    np.testing.assert_allclose(
        Q, (Vg * Vg).sum(axis=0), rtol=1e-6 if dtype == np.float32 else 1e-14
    )
    np.testing.assert_array_equal(V, Vg)  # gated in place; untouched without gp
    out = np.full((7, 5), np.nan, dtype)
    assert gate_square_sum(V0.copy(), gp, out=out) is out
    np.testing.assert_allclose(out, Q, rtol=1e-6)


def test_gate_square_sum_bad_input():
    V = np.ones((2, 3, 4))
    with pytest.raises(ValueError, match=r"C-contiguous 3-D"):
        gate_square_sum(V[:, :, ::2])
    with pytest.raises(ValueError, match=r"C-contiguous 3-D"):
        gate_square_sum(V.astype(np.int64))
    with pytest.raises(ValueError, match=r"gp has shape \(4, 3\).*needs \(3, 4\)"):
        gate_square_sum(V, np.ones((4, 3)))
    with pytest.raises(ValueError, match=r"gp has shape \(3, 4\) and dtype float32"):
        gate_square_sum(V, np.ones((3, 4), np.float32))
    with pytest.raises(ValueError, match=r"out has shape \(3, 3\)"):
        gate_square_sum(V, out=np.empty((3, 3)))


@pytest.mark.parametrize("C", [1, 2, 3, 10])
def test_cross_entropy_factor_is_a_symmetric_factor_with_C_minus_1_columns(C):
    rng = np.random.default_rng(C)
    N = 6
    z = rng.standard_normal((N, C)) * 3
    z[0] = 0.0  # uniform p
    if C > 1:
        z[1, 0] = 40.0  # p one-hot up to rounding
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    scale = rng.random(N) + 0.5
    S = _extras._cross_entropy_factor(p, scale)
    assert S.shape == (max(C - 1, 1), N, C)
    for k in range(N):
        H = scale[k] ** 2 * (np.diag(p[k]) - np.outer(p[k], p[k]))
        np.testing.assert_allclose(S[:, k].T @ S[:, k], H, rtol=0, atol=1e-15)


def _net(n=40, seed=0):
    rng = np.random.default_rng(seed)
    net = nn.MLP([5, 8, 6, 4], ["relu", "tanh", None], loss="cross_entropy", dtype=np.float64)
    params = net.init(rng)
    X = rng.standard_normal((n, 5))
    y = rng.integers(0, 4, n)
    return params, X, y, ["relu", "tanh", None]


def test_extras_asked_together_equal_extras_asked_alone():
    params, X, y, acts = _net()
    together = nn.value_and_grad(
        params,
        X,
        y,
        acts,
        "cross_entropy",
        seed=3,
        extras=("kfac", "diag_ggn_mc", "kflr", "diag_ggn", "variance", "sum_grad_squared"),
    ).extras
    for name, value in together.items():
        alone = nn.value_and_grad(
            params, X, y, acts, "cross_entropy", seed=3, extras=(name,)
        ).extras[name]
        for a, b in zip(alone, value):
            if name in ("kfac", "kflr"):
                np.testing.assert_allclose(a[0].to_dense(), b[0].to_dense(), rtol=1e-13)
                np.testing.assert_allclose(a[1].to_dense(), b[1].to_dense(), rtol=1e-13)
            else:
                np.testing.assert_allclose(a[0], b[0], rtol=1e-13)
                np.testing.assert_allclose(a[1], b[1], rtol=1e-13)


def test_variance_from_the_recorded_gradient_equals_the_recomputed_one(monkeypatch):
    params, X, y, acts = _net()
    res = nn.value_and_grad(params, X, y, acts, "cross_entropy", extras=("variance",))
    rec = nn.value_and_grad(
        params, X, y, acts, "cross_entropy", method="structures", extras=("variance",)
    )
    for (a, b), (c, d) in zip(res.extras["variance"], rec.extras["variance"]):
        np.testing.assert_allclose(a, c, rtol=1e-10, atol=1e-16)
        np.testing.assert_allclose(b, d, rtol=1e-10, atol=1e-16)
    # without recorded gradients (gW = gb = None) the layer gradient is recomputed
    layers = [
        _extras.LayerRecord(r.A_prev, r.G, r.W, r.act, r.Z, r.A)
        for r in _record(monkeypatch, params, X, y, acts).layers
    ]
    sgs = _extras.sum_grad_squared(layers)
    for (a, b), (c, d) in zip(_extras.variance(layers, sgs), res.extras["variance"]):
        np.testing.assert_allclose(a, c, rtol=1e-12, atol=1e-16)
        np.testing.assert_allclose(b, d, rtol=1e-12, atol=1e-16)


def _record(monkeypatch, params, X, y, acts):
    """The record the extras hook builds, captured from one call."""
    seen = {}
    compute = _extras.compute

    def spy(names, record, options):
        seen["record"] = record
        return compute(names, record, options)

    monkeypatch.setattr(_extras, "compute", spy)
    nn.value_and_grad(params, X, y, acts, "cross_entropy", extras=("grad_norms",))
    return seen["record"]


def _generic(record, mc_samples=None, seed=None):
    """The curvature pass without the cross-entropy closed form: the loss factor
    backpropagated through every layer."""
    rng = None if mc_samples is None else np.random.default_rng(seed)
    S = _extras.loss_factor(record, mc_samples=mc_samples, rng=rng)
    return _extras._backpropagate(
        record.layers, S, _extras._Shared(record.layers), diag=True, kron=True
    )


@pytest.mark.parametrize("sizes", [[5, 4], [5, 8, 6, 4]])
@pytest.mark.parametrize("targets", ["labels", "rows"])
@pytest.mark.parametrize("mc_samples", [None, 3])
def test_cross_entropy_top_layer_closed_form_equals_the_generic_pass(
    monkeypatch, sizes, targets, mc_samples
):
    rng = np.random.default_rng(1)
    acts = ["tanh"] * (len(sizes) - 2) + [None]
    params = nn.MLP(sizes, acts, loss="cross_entropy", dtype=np.float64).init(rng)
    X = rng.standard_normal((30, sizes[0]))
    if targets == "labels":
        y = rng.integers(0, sizes[-1], 30)
    else:
        y = rng.random((30, sizes[-1])) * 2  # target rows of mass != 1
    seen = {}
    compute = _extras.compute

    def spy(names, record, options):
        seen["record"] = record
        return compute(names, record, options)

    monkeypatch.setattr(_extras, "compute", spy)
    names = ("diag_ggn", "kflr") if mc_samples is None else ("diag_ggn_mc", "kfac")
    res = nn.value_and_grad(
        params,
        X,
        y,
        acts,
        "cross_entropy",
        reduction="sum",
        extras=names,
        mc_samples=mc_samples or 1,
        seed=7,
    ).extras
    diag, kfs = _generic(seen["record"], mc_samples, seed=7)
    for (a, b), (c, d) in zip(res[names[0]], diag):
        np.testing.assert_allclose(a, c, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(b, d, rtol=1e-12, atol=1e-15)
    for (kw, kb), (gw, gb) in zip(res[names[1]], kfs):
        np.testing.assert_allclose(kw.to_dense(), gw.to_dense(), rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(kb.to_dense(), gb.to_dense(), rtol=1e-12, atol=1e-15)


def test_results_share_no_memory_with_the_workspace():
    params, X, y, acts = _net()
    ws = nn.Workspace()
    names = (
        "grad_norms",
        "sum_grad_squared",
        "variance",
        "clipped_grad",
        "diag_ggn",
        "diag_ggn_mc",
        "kflr",
        "kfac",
    )
    first = nn.value_and_grad(
        params, X, y, acts, "cross_entropy", workspace=ws, extras=names, max_norm=0.1, seed=0
    ).extras
    assert any(k.startswith("extras.") for k in ws._buffers)
    arrays = []
    for name in names:
        value = first[name]
        if name == "grad_norms":
            arrays.append(value)
            continue
        for a, b in value:
            arrays += [a.to_dense(), b.to_dense()] if name in ("kflr", "kfac") else [a, b]
    snapshot = [a.copy() for a in arrays]
    for a in arrays:
        assert not any(np.shares_memory(a, buf) for buf in ws._buffers.values())
    # a second call with other inputs leaves the first results as they were
    nn.value_and_grad(
        params,
        X[::-1].copy() * 2,
        y[::-1].copy(),
        acts,
        "cross_entropy",
        workspace=ws,
        extras=names,
        max_norm=0.1,
        seed=1,
    )
    for a, s in zip(arrays, snapshot):
        np.testing.assert_array_equal(a, s)
    fresh = nn.value_and_grad(
        params, X, y, acts, "cross_entropy", extras=names, max_norm=0.1, seed=0
    ).extras
    for name in names:
        if name == "grad_norms":
            np.testing.assert_array_equal(first[name], fresh[name])
            continue
        for (a, b), (c, d) in zip(first[name], fresh[name]):
            if name in ("kflr", "kfac"):
                a, b, c, d = a.to_dense(), b.to_dense(), c.to_dense(), d.to_dense()
            np.testing.assert_array_equal(a, c)
            np.testing.assert_array_equal(b, d)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("activation", ["sigmoid", "tanh"])
@pytest.mark.parametrize("square", [True, False])
def test_gate_from_output_against_the_derivative_op(dtype, activation, square):
    from structjac import ops

    rng = np.random.default_rng(2)
    op = {"sigmoid": ops.sigmoid, "tanh": ops.tanh}[activation]
    A = op(rng.standard_normal((7, 5))).astype(dtype)
    V = rng.standard_normal((3, 7, 5)).astype(dtype)
    Vg = V * op.derivative_from_output(A)
    A0 = A.copy()
    b = np.empty(5, dtype)
    Q = gate_from_output(V, A, activation, square=square, colsum=b)
    tol = 1e-6 if dtype == np.float32 else 1e-14
    np.testing.assert_allclose(V, Vg, rtol=tol)
    np.testing.assert_array_equal(A, A0)
    if square:
        assert Q.dtype == dtype
        np.testing.assert_allclose(Q, (Vg * Vg).sum(axis=0), rtol=tol)
        np.testing.assert_allclose(b, Q.sum(axis=0), rtol=tol)
    else:
        assert Q is None


def test_gate_from_output_bad_input():
    V = np.ones((2, 3, 4))
    with pytest.raises(ValueError, match="activation must be one of"):
        gate_from_output(V, np.ones((3, 4)), "relu")
    with pytest.raises(ValueError, match=r"A has shape \(4, 3\); V \(2, 3, 4\) needs \(3, 4\)"):
        gate_from_output(V, np.ones((4, 3)), "tanh")
    with pytest.raises(ValueError, match="A must be a 2-D float32/float64 array of dtype float64"):
        gate_from_output(V, np.ones((3, 4), np.float32), "tanh")
