"""The functions the transform tests differentiate: one row per function.

Each function is written against a namespace ``m`` (see ``support.py``), its arguments
come from a seeded maker, and the row names the structure structjac must return.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np

import structjac as sj


class Case(NamedTuple):
    id: str
    f: Callable  # f(m, *args)
    make: Callable  # make(rng) -> tuple of args
    argnums: object  # int or tuple
    expected: object  # type, or tuple of types (one per argnum)
    analytic: bool = True  # complex step applies (no abs, max, where, expit ...)


def vec(n, positive=False, lo=-1.5, hi=1.5):
    def make(rng):
        x = rng.uniform(0.2, 2.0, n) if positive else rng.uniform(lo, hi, n)
        return (x,)

    return make


def batch(N=4, d=3):
    def make(rng):
        return (rng.normal(size=(N, d)),)

    return make


def _layer(rng, N=4, d=3, m=5):
    return rng.normal(size=(N, d)), rng.normal(size=(m, d)), rng.normal(size=m)


def _softmax(m, X):
    e = m.exp(X - m.max(X, axis=1, keepdims=True))
    return e / m.sum(e, axis=1, keepdims=True)


def _log_softmax(m, X):
    shifted = X - m.max(X, axis=1, keepdims=True)
    return shifted - m.log(m.sum(m.exp(shifted), axis=1, keepdims=True))


RNG_W = np.random.default_rng(123)
W = RNG_W.normal(size=(5, 3))
W2 = RNG_W.normal(size=(2, 5))
B1 = RNG_W.normal(size=5)
B2 = RNG_W.normal(size=2)
ROW = RNG_W.normal(size=3)
ONE_HOT = np.eye(3)[[0, 2, 1, 2]]
LABELS = np.array([0, 2, 1, 2])
TARGETS = RNG_W.uniform(size=6)

D, SI, I, BR = sj.Diagonal, sj.ScaledIdentity, sj.Identity, sj.BlockRow
K, SK, RS, DN, SP = sj.Kronecker, sj.StackedKronecker, sj.RowScaled, sj.Dense, sj.Sparse
BD = sj.BlockDiagonal

CASES = [
    # ---- element-wise chains: Diagonal; scalars: ScaledIdentity; identity: Identity
    Case("issue_example", lambda m, x: m.tanh(x) * m.exp(-x) + m.log1p(x**2), vec(6), 0, D),
    Case("exp", lambda m, x: m.exp(x), vec(5), 0, D),
    Case("log", lambda m, x: m.log(x), vec(5, positive=True), 0, D),
    Case("expm1_log1p", lambda m, x: m.expm1(x) + m.log1p(x * x), vec(5), 0, D),
    Case("sqrt", lambda m, x: m.sqrt(x), vec(5, positive=True), 0, D),
    Case("square", lambda m, x: m.square(x), vec(5), 0, D),
    Case("abs", lambda m, x: m.abs(x), vec(5), 0, D, False),
    Case("sin_cos", lambda m, x: m.sin(x) * m.cos(2 * x), vec(5), 0, D),
    Case("expit", lambda m, x: m.expit(x), vec(5), 0, D, False),
    Case("scalar_multiple", lambda m, x: 3.0 * x, vec(5), 0, SI),
    Case("affine_scalars", lambda m, x: x / 4.0 - 2.0, vec(5), 0, SI),
    Case("negative", lambda m, x: -x, vec(5), 0, SI),
    Case("identity", lambda m, x: x, vec(5), 0, I),
    Case("plus_constant", lambda m, x: x + 1.0, vec(5), 0, I),
    Case("cube", lambda m, x: x**3, vec(5), 0, D),
    Case("constant_base_power", lambda m, x: 2.0**x, vec(5), 0, D),
    Case("self_power", lambda m, x: x**x, vec(5, positive=True), 0, D),
    Case("relu_maximum", lambda m, x: m.maximum(x, 0.0), vec(6), 0, D, False),
    Case("minimum", lambda m, x: m.minimum(x, 0.5) * x, vec(6), 0, D, False),
    Case("where_leaky", lambda m, x: m.where(x > 0, x, 0.1 * x), vec(6), 0, D, False),
    Case("reciprocal", lambda m, x: 1.0 / (1.0 + x**2), vec(5), 0, D),
    Case("sj_sigmoid_tanh", lambda m, x: m.sigmoid(m.sj_tanh(x)), vec(5), 0, D, False),
    Case("sj_relu", lambda m, x: m.relu(x) * x, vec(6), 0, D, False),
    # ---- broadcasting
    Case("row_broadcast_constant", lambda m, X: X * ROW + ROW, batch(), 0, D),
    Case("column_broadcast", lambda m, X: X * m.sum(X, axis=1, keepdims=True), batch(), 0, BD),
    # ---- reductions
    Case("sum_all", lambda m, x: m.sum(m.tanh(x)), vec(6), 0, BR),
    Case("mean_all", lambda m, x: m.mean(x**2), vec(6), 0, BR),
    Case("sum_rows", lambda m, X: m.sum(X, axis=1), batch(), 0, K),
    Case("sum_batch", lambda m, X: m.sum(X, axis=0), batch(), 0, K),
    Case("mean_rows_keepdims", lambda m, X: m.mean(X, axis=1, keepdims=True), batch(), 0, K),
    Case("sum_rows_of_tanh", lambda m, X: m.sum(m.tanh(X), axis=1), batch(), 0, BD),
    Case("max_rows", lambda m, X: m.max(X, axis=1), batch(), 0, BD, False),
    Case("min_batch_axis", lambda m, X: m.min(X, axis=0), batch(), 0, SP, False),
    Case("max_all", lambda m, x: m.max(m.sin(x)), vec(6), 0, SP, False),
    # ---- dense layers and networks
    Case("W_at_x", lambda m, x: W @ x, vec(3), 0, DN),
    Case("expit_layer", lambda m, x: m.expit(W @ x + B1), vec(3), 0, DN, False),
    Case("sj_sigmoid_layer", lambda m, x: m.sigmoid(W @ x + B1), vec(3), 0, DN, False),
    Case("np_dot", lambda m, x: m.dot(W, x), vec(3), 0, DN),
    Case("row_vector_at_matrix", lambda m, x: x @ W.T, vec(3), 0, DN),
    Case("two_layers_one_sample", lambda m, x: W2 @ m.tanh(W @ x + B1) + B2, vec(3), 0, DN),
    Case("batch_layer_dX", lambda m, X: X @ W.T + B1, batch(), 0, K),
    Case("batch_layer_dW", lambda m, X, Wt, b: X @ Wt.T + b, _layer, 1, SK),
    Case("batch_layer_db", lambda m, X, Wt, b: X @ Wt.T + b, _layer, 2, K),
    Case("batch_tanh_layer_dW", lambda m, X, Wt, b: m.tanh(X @ Wt.T + b), _layer, 1, RS),
    Case("batch_two_layers_dX", lambda m, X: m.tanh(X @ W.T + B1) @ W2.T + B2, batch(), 0, BD),
    Case(
        "batch_three_layers_dX",
        lambda m, X: m.tanh(m.tanh(X @ W.T + B1) @ W2.T) @ W2,
        batch(),
        0,
        BD,
    ),
    # ---- softmax and cross-entropy written in numpy
    Case("softmax_rows", _softmax, batch(), 0, BD, False),
    Case("log_softmax_rows", _log_softmax, batch(), 0, BD, False),
    Case(
        "cross_entropy_numpy",
        lambda m, X: -m.mean(m.sum(ONE_HOT * _log_softmax(m, X), axis=1)),
        batch(d=3),
        0,
        BR,
        False,
    ),
    # ---- indexing
    Case("slice", lambda m, x: x[1:4], vec(6), 0, SP),
    Case("integer_array_with_repeats", lambda m, x: x[np.array([3, 0, 3])], vec(6), 0, SP),
    Case("column_of_batch", lambda m, X: X[:, 0], batch(), 0, SP),
    Case("strided_tanh", lambda m, x: m.tanh(x)[::2], vec(6), 0, SP),
    Case("row_of_batch", lambda m, X: m.sin(X)[1], batch(), 0, SP),
    Case("scalar_element", lambda m, x: x[2] * x, vec(5), 0, DN),
    # ---- shapes
    Case("reshape", lambda m, x: m.reshape(x, (2, 3)), vec(6), 0, I),
    Case("ravel_batch", lambda m, X: m.ravel(m.tanh(X)), batch(), 0, D),
    Case("transpose_T", lambda m, X: X.T, batch(), 0, SP),
    Case("np_transpose", lambda m, X: m.transpose(m.exp(X)), batch(), 0, SP),
    # ---- joining
    Case("concatenate", lambda m, x: m.concatenate([m.sin(x), x**2]), vec(4), 0, SP),
    Case("concatenate_constant", lambda m, x: m.concatenate([x, m.ones(2)]), vec(4), 0, SP),
    Case("stack_axis1", lambda m, x: m.stack([x, 2 * x], axis=1), vec(4), 0, SP),
    # ---- two arguments
    Case(
        "product_two_args",
        lambda m, x, y: x * y + m.sin(y),
        lambda rng: (rng.normal(size=5), rng.normal(size=5)),
        (0, 1),
        (D, D),
    ),
    Case(
        "traced_scalar",
        lambda m, x, s: x * s,
        lambda rng: (rng.normal(size=5), np.array(rng.normal())),
        (0, 1),
        (SI, DN),
    ),
    Case(
        "matrix_product_both",
        lambda m, A, B: A @ B,
        lambda rng: (rng.normal(size=(3, 4)), rng.normal(size=(4, 2))),
        (0, 1),
        (K, K),
    ),
    Case("inner_product_self", lambda m, x: x @ x, vec(4), 0, DN),
    # ---- losses (ops) on traced predictions
    Case("sj_mse", lambda m, x: m.mse_(TARGETS, m.tanh(x)), vec(6), 0, BR, False),
    Case(
        "sj_bce_with_logits",
        lambda m, x: m.bcel_(TARGETS[:5], W2.T @ x + 0.1),
        vec(2),
        0,
        BR,
        False,
    ),
    # ---- structjac's softmax ops and cross-entropy on traced logits
    Case("sj_softmax_rows", lambda m, X: m.softmax_(X), batch(), 0, BD, False),
    Case("sj_log_softmax_rows", lambda m, X: m.log_softmax_(X), batch(), 0, BD, False),
    Case("sj_softmax_of_a_layer", lambda m, X: m.softmax_(X @ W.T + B1), batch(), 0, BD, False),
    Case("sj_softmax_large_logits", lambda m, X: m.softmax_(800.0 * X), batch(), 0, BD, False),
    Case("sj_cross_entropy_labels", lambda m, X: m.ce_(LABELS, X), batch(), 0, BR, False),
    Case("sj_cross_entropy_one_hot", lambda m, X: m.ce_(ONE_HOT, X), batch(), 0, BR, False),
    Case(
        "sj_cross_entropy_large_logits",
        lambda m, X: m.ce_(LABELS, 900.0 * X),
        batch(),
        0,
        BR,
        False,
    ),
    Case(
        "sj_cross_entropy_per_sample",
        lambda m, X: m.ce_(LABELS, X @ W[:3].T, reduction="none"),
        batch(),
        0,
        BD,
        False,
    ),
]


def _jax_mse(jnp):
    return lambda y, y_hat: jnp.mean(
        jnp.sum(jnp.reshape((y - y_hat) ** 2, (y_hat.shape[0], -1)), axis=1)
    )


def _jax_bcel(jnp):
    def loss(y, z):
        per = jnp.maximum(z, 0) - z * y + jnp.log1p(jnp.exp(-jnp.abs(z)))
        return jnp.mean(per)

    return loss


def _jax_cross_entropy(jax, jnp):
    def loss(targets, logits, reduction="mean"):
        log_p = jax.nn.log_softmax(logits, axis=1)
        targets = np.asarray(targets)
        if targets.ndim == 1:
            targets = np.eye(logits.shape[1])[targets]
        per = -jnp.sum(targets * log_p, axis=1)
        return per if reduction == "none" else jnp.mean(per)

    return loss


def add_losses(NP, JM):
    """The loss names of the cases: structjac's ops for numpy, their formulas for JAX."""
    NP.mse_ = sj.mse
    NP.bcel_ = sj.bce_with_logits
    NP.softmax_ = lambda X: sj.softmax(X, axis=1)
    NP.log_softmax_ = lambda X: sj.log_softmax(X, axis=1)
    NP.ce_ = sj.cross_entropy
    if JM is not None:
        import jax
        import jax.numpy as jnp

        JM.mse_ = _jax_mse(jnp)
        JM.bcel_ = _jax_bcel(jnp)
        JM.softmax_ = lambda X: jax.nn.softmax(X, axis=1)
        JM.log_softmax_ = lambda X: jax.nn.log_softmax(X, axis=1)
        JM.ce_ = _jax_cross_entropy(jax, jnp)
