"""Hypothesis: random compositions of the traced numpy functions, Jacobian vs finite differences.

A program is a list of steps over a growing list of values (the input first); each step
applies a unary function to one earlier value, or combines two (broadcasting a row, a
column or a scalar reduction against the batch). The Jacobian of the last value must
equal central differences, the reverse mode must give its transposed products, and the
structure must be one of the table's (never a silent fall to Sparse: the suite turns
StructureLostWarning into an error).
"""

from __future__ import annotations

import numpy as np
import scipy.special
from hypothesis import given, settings
from hypothesis import strategies as st

import structjac as sj

from .support import central_difference_jacobian

N, D = 3, 4

UNARY = [
    ("tanh", np.tanh),
    ("sin", np.sin),
    ("cos", np.cos),
    ("exp_neg_square", lambda v: np.exp(-(v**2))),
    ("log1p_square", lambda v: np.log1p(v * v)),
    ("sqrt_one_plus_square", lambda v: np.sqrt(1.0 + np.square(v))),
    ("expit", scipy.special.expit),
    ("sj_sigmoid", sj.sigmoid),
    ("scale", lambda v: -0.7 * v),
    ("shift", lambda v: v + 0.25),
    ("row_mean_broadcast", lambda v: v - 0.5 * np.mean(v, axis=-1, keepdims=True) if v.ndim else v),
    ("sum_rows_back", lambda v: np.sum(v, axis=-1, keepdims=True) * v if v.ndim else v),
    ("rows_softmax", lambda v: _softmax(v) if v.ndim == 2 else v),
]

BINARY = [
    ("add", np.add),
    ("subtract", np.subtract),
    ("multiply", np.multiply),
    ("divide_safe", lambda u, v: u / (1.5 + np.tanh(v))),
    ("sj_multiply", lambda u, v: sj.multiply(u, v) if np.shape(u) == np.shape(v) else u * v),
]

#: every composition stays in one of these (per-sample blocks at the loosest)
TIGHT = (sj.Diagonal, sj.Kronecker, sj.RowScaled, sj.BlockDiagonal, sj.Dense)

W = np.random.default_rng(0).normal(size=(D, D)) / 2


def _softmax(v):
    e = np.exp(v - np.max(v, axis=1, keepdims=True))
    return e / np.sum(e, axis=1, keepdims=True)


step = st.one_of(
    st.tuples(st.just("unary"), st.integers(0, len(UNARY) - 1), st.integers(0, 10**6)),
    st.tuples(
        st.just("binary"),
        st.integers(0, len(BINARY) - 1),
        st.integers(0, 10**6),
        st.integers(0, 10**6),
    ),
    st.tuples(st.just("layer"), st.just(0), st.integers(0, 10**6)),
)


def _run(program, x):
    values = [x]
    for kind, index, *picks in program:
        operands = [values[p % len(values)] for p in picks]
        if kind == "unary":
            values.append(UNARY[index][1](operands[0]))
        elif kind == "binary":
            values.append(BINARY[index][1](*operands))
        else:
            values.append(operands[0] @ W.T)
    return values[-1]


@settings(deadline=None, derandomize=True, max_examples=60)
@given(program=st.lists(step, min_size=1, max_size=6), seed=st.integers(0, 2**32 - 1))
def test_random_composition_jacobian_matches_finite_differences(program, seed):
    x = np.random.default_rng(seed).uniform(-1.0, 1.0, size=(N, D))
    f = lambda x: _run(program, x)  # noqa: E731
    J = sj.jacobian(f)(x)
    assert isinstance(J, TIGHT), f"{type(J).__name__} for {program}"
    fd = central_difference_jacobian(f, (x,), 0)
    np.testing.assert_allclose(J.to_dense(), fd, rtol=1e-6, atol=1e-7)
    out = np.asarray(f(x))
    w = np.random.default_rng(seed + 1).normal(size=out.shape)
    _, vjp_fn = sj.vjp(f, x)
    np.testing.assert_allclose(vjp_fn(w)[0].reshape(-1), w.reshape(-1) @ J, rtol=1e-10, atol=1e-12)
    g = sj.grad(lambda x: np.sum(f(x) * w))(x)
    np.testing.assert_allclose(g.reshape(-1), w.reshape(-1) @ J, rtol=1e-10, atol=1e-12)
