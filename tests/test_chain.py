"""chain / chain_plan: the DP finds reverse and forward mode, and equals the plain product."""

import warnings

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import structjac as sj
from structjac import ops
from structjac.chain import chain, chain_plan
from structjac.nn import _layer_structures


def _network_chain(rng, N=50):
    X = rng.standard_normal((N, 5))
    W1, W2 = rng.standard_normal((4, 5)), rng.standard_normal((3, 4))
    A1 = ops.sigmoid(X @ W1.T)
    A2 = ops.tanh(A1 @ W2.T)
    S1 = _layer_structures(W1, X, None, A1, ops.sigmoid)
    S2 = _layer_structures(W2, A1, None, A2, ops.tanh)
    L = ops.mse.jacobian(np.zeros(N * 3), A2.ravel())
    return [L, S2["da/dz"], S2["dz/dx"], S1["da/dz"], S1["dz/dW"]]


def _dense_product(factors):
    mats = []
    for f in factors:
        if isinstance(f, sj.Jacobian):
            mats.append(f.to_dense())
        else:
            mats.append(np.asarray(f))
    out = mats[0]
    for M in mats[1:]:
        out = out @ M
    return out


def test_loss_row_on_the_left_gives_reverse_mode():
    factors = _network_chain(np.random.default_rng(0))
    plan = chain_plan(*factors, names=["L", "D2", "K2", "D1", "S1"])
    assert plan.order == "((((L @ D2) @ K2) @ D1) @ S1)"
    assert plan.cost == min(c for _, c in plan.alternatives)
    assert len(plan.alternatives) == 14
    text = plan.explain()
    assert "chosen" in text and "alternatives" in text
    np.testing.assert_allclose(
        plan.evaluate().to_dense(), _dense_product(factors), rtol=1e-12, atol=1e-14
    )


def test_vector_on_the_right_gives_forward_mode():
    rng = np.random.default_rng(1)
    factors = _network_chain(rng)[1:]
    v = rng.standard_normal(factors[-1].shape[1])
    plan = chain_plan(*factors, v)
    assert plan.order == "(J1 @ (J2 @ (J3 @ (J4 @ v))))"
    out = chain(*factors, v)
    assert out.ndim == 1
    np.testing.assert_allclose(out, _dense_product(factors) @ v, rtol=1e-12, atol=1e-14)


def test_row_vector_left_returns_a_vector():
    rng = np.random.default_rng(2)
    u = rng.standard_normal(6)
    D = sj.Diagonal(rng.standard_normal(6))
    M = sj.Dense(rng.standard_normal((6, 3)))
    plan = chain_plan(u, D, M)
    assert plan.order == "((u @ J1) @ J2)"
    np.testing.assert_allclose(chain(u, D, M), u @ D.to_dense() @ M.matrix)


def test_dense_chain_follows_the_classic_matrix_chain():
    rng = np.random.default_rng(3)
    A, B, C = (sj.Dense(rng.standard_normal(s)) for s in [(10, 100), (100, 5), (5, 50)])
    assert chain_plan(A, B, C).order == "((J1 @ J2) @ J3)"  # 5000 + 2500 vs 25000 + 50000
    A, B, C = (sj.Dense(rng.standard_normal(s)) for s in [(50, 5), (5, 100), (100, 10)])
    assert chain_plan(A, B, C).order == "(J1 @ (J2 @ J3))"


def test_shapes_that_do_not_fit():
    with pytest.raises(ValueError, match="do not fit"):
        chain(sj.Identity(2), sj.Identity(3))
    with pytest.raises(ValueError):
        chain(sj.Identity(2), np.ones(2), sj.Identity(2))


def _structure(kind, n, m, draw_values):
    vals = np.asarray(draw_values, dtype=float)
    if kind == "diag":
        return sj.Diagonal(vals[:n])
    if kind == "identity":
        return sj.Identity(n)
    if kind == "scaled":
        return sj.ScaledIdentity(n, float(vals[0]))
    return sj.Dense(vals[: n * m].reshape(n, m))


@settings(deadline=None, max_examples=40)
@given(
    dims=st.lists(st.integers(1, 5), min_size=3, max_size=6),
    kinds=st.lists(
        st.sampled_from(["diag", "identity", "scaled", "dense"]), min_size=5, max_size=5
    ),
    seed=st.integers(0, 2**16),
    left_vector=st.booleans(),
    right_vector=st.booleans(),
)
def test_chain_equals_left_to_right_product(dims, kinds, seed, left_vector, right_vector):
    rng = np.random.default_rng(seed)
    factors = []
    for k in range(len(dims) - 1):
        n, m = dims[k], dims[k + 1]
        kind = kinds[k % len(kinds)]
        if kind != "dense" and n != m:
            kind = "dense"
        factors.append(_structure(kind, n, m, rng.standard_normal(max(n * m, n, 1))))
    if left_vector:
        factors.insert(0, rng.standard_normal(dims[0]))
    if right_vector:
        factors.append(rng.standard_normal(dims[-1]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sj.StructureLostWarning)
        got = chain(*factors)
    ref = _dense_product(
        [
            f[None, :]
            if (i == 0 and left_vector)
            else (f[:, None] if (i == len(factors) - 1 and right_vector and np.ndim(f) == 1) else f)
            for i, f in enumerate(factors)
        ]
    )
    got = got.to_dense() if isinstance(got, sj.Jacobian) else np.asarray(got)
    np.testing.assert_allclose(np.reshape(got, -1), np.reshape(ref, -1), rtol=1e-10, atol=1e-10)


def test_the_planner_asks_the_rule_table_for_costs():
    """Costs live on the rules (no second pair registry in chain.py)."""
    import importlib

    ch = importlib.import_module("structjac.chain")

    assert not hasattr(ch, "_COSTS")
    rule = sj.algebra.rule_for("matmul", sj.Kronecker, sj.Kronecker)
    assert rule.cost is not None
    rng = np.random.default_rng(0)
    K1 = sj.Kronecker(sj.Dense(rng.random((3, 4))), sj.Dense(rng.random((5, 6))))
    K2 = sj.Kronecker(sj.Dense(rng.random((4, 2))), sj.Dense(rng.random((6, 3))))
    a, b = ch.describe(K1), ch.describe(K2)
    flops, cost, res = ch.estimate(a, b)
    want_flops, want = rule.cost(a, b)
    assert flops == want_flops == a.stored + b.stored
    assert res == want and res.kind is sj.Kronecker and res.shape == (15, 6)
    # identity products pass the operand on: no flops, nothing new stored
    I = ch.describe(sj.Identity(15))
    assert ch.estimate(I, a)[:2] == (0.0, 0.0)
    with pytest.raises(KeyError, match=r"no matmul rule is registered for \(Zero, Kronecker\)"):
        ch.register_cost(sj.Zero, sj.Kronecker)(lambda a, b: (0.0, a))


def test_describe_takes_the_counts_from_the_structure():
    import importlib

    ch = importlib.import_module("structjac.chain")

    S = sj.Sparse(
        __import__("scipy.sparse", fromlist=["csr_array"]).csr_array(
            np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 0.0], [2.0, 0.0, 0.0]])
        )
    )
    d = ch.describe(S)
    assert (d.nnz, d.nzrows, d.nzcols) == (2.0, 2.0, 2.0)
    d = ch.describe(sj.Kronecker(sj.BlockRow(0, np.ones(3), 2), sj.Identity(4)))
    assert (d.nnz, d.nzrows, d.nzcols) == (12.0, 4.0, 12.0)
    assert ch.describe(sj.Zero((3, 4))).nnz == 0.0
