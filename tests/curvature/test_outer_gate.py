"""The columns below a one-unit layer formed inside the next layer's gating pass
(:func:`structjac.kernels.curvature.outer_gate`): against numpy, and the GGN diagonal and
Kronecker factors of networks with one-unit hidden layers over every kind of gate
against the naive reference."""

from __future__ import annotations

import numpy as np
import pytest

from structjac import nn, ops
from structjac.kernels.curvature import outer_gate

from . import reference as ref
from .test_extras import close, close_pairs, problem


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", ["sigmoid", "tanh", "derivative", None])
@pytest.mark.parametrize("square", [True, False])
def test_outer_gate_against_numpy(dtype, kind, square):
    rng = np.random.default_rng(3)
    K, N, d = 3, 7, 5
    v = rng.standard_normal((K, N)).astype(dtype)
    w = rng.standard_normal(d).astype(dtype)
    gate = None
    g = np.ones((N, d), dtype)
    if kind in ("sigmoid", "tanh"):
        op = {"sigmoid": ops.sigmoid, "tanh": ops.tanh}[kind]
        gate = op(rng.standard_normal((N, d))).astype(dtype)
        g = op.derivative_from_output(gate)
    elif kind == "derivative":
        gate = g = rng.standard_normal((N, d)).astype(dtype)
    copies = [x.copy() for x in (v, w, g)]
    expect = v[:, :, None] * w[None, None, :] * g[None]
    out = np.full((K, N, d), np.nan, dtype)
    b = np.full(d, np.nan, dtype)
    V, Q = outer_gate(v, w, gate, kind, square=square, out=out, colsum=b if square else None)
    tol = 1e-6 if dtype == np.float32 else 1e-14
    assert V is out and V.dtype == dtype
    np.testing.assert_allclose(V, expect, rtol=tol)
    if square:
        assert Q.shape == (N, d) and Q.dtype == dtype
        np.testing.assert_allclose(Q, (expect * expect).sum(axis=0), rtol=tol)
        np.testing.assert_allclose(b, Q.sum(axis=0), rtol=tol)
    else:
        assert Q is None
    for x, c in zip((v, w, g), copies):  # inputs not written
        np.testing.assert_array_equal(x, c)


def test_outer_gate_bad_input():
    v, w, A = np.ones((2, 3)), np.ones(4), np.full((3, 4), 0.5)
    with pytest.raises(ValueError, match="kind must be one of"):
        outer_gate(v, w, A, "relu")
    with pytest.raises(
        ValueError, match=r"gate has shape \(4, 3\); v \(2, 3\) and w \(4,\) need \(3, 4\)"
    ):
        outer_gate(v, w, A.T.copy(), "tanh")
    with pytest.raises(ValueError, match="w must be a 1-D float64 array, got \\(4,\\) float32"):
        outer_gate(v, w.astype(np.float32), A, "tanh")
    with pytest.raises(ValueError, match="disagree"):
        outer_gate(v, w, None, "tanh")
    with pytest.raises(ValueError, match=r"out must be .* shape \(2, 3, 4\)"):
        outer_gate(v, w, A, "sigmoid", out=np.empty((2, 3, 3)))


# one-unit hidden layers over a from-output gate, a derivative gate and no gate
ONE_UNIT = [
    ([3, 4, 1, 2], ["sigmoid", "tanh", None], "mse"),
    ([3, 4, 1, 1], ["relu", "softplus", "sigmoid"], "bce"),
    ([3, 4, 1, 3], [None, "leaky_relu", None], "cross_entropy"),
]


@pytest.mark.parametrize("net", ONE_UNIT, ids=["from-output", "derivative", "no-gate"])
def test_one_unit_layers_against_reference(net):
    sizes, acts, loss = net
    params, X, y = problem(sizes, acts, loss)
    res = nn.value_and_grad(
        params, X, y, acts, loss, workspace=nn.Workspace(), extras=("diag_ggn", "kflr")
    )
    close_pairs(
        res.extras["diag_ggn"], ref.split(params, np.diag(ref.ggn(params, acts, loss, X, y)))
    )
    J, _, H, w, inputs = ref.per_sample(params, acts, loss, X, y)
    start = 0
    for l, (W, b) in enumerate(params):
        m, d = W.shape
        Jb = J[:, :, start + m * d : start + m * d + m]
        Gf = w * np.einsum("kci,kcd,kdj->ij", Jb, H, Jb)
        KW, Kb = res.extras["kflr"][l]
        close(Kb.to_dense(), Gf)
        close(KW.to_dense(), np.kron(Gf, inputs[l].T @ inputs[l] / X.shape[0]))
        start += m * d + m
    # the sampled pass too: many samples converge to the exact diagonal
    mc = nn.value_and_grad(
        params, X, y, acts, loss, extras=("diag_ggn_mc",), mc_samples=20000, seed=1
    ).extras["diag_ggn_mc"]
    exact = ref.flat(res.extras["diag_ggn"])
    assert np.abs(ref.flat(mc) - exact).max() <= 0.05 * np.abs(exact).max()
