"""A network's loss and gradient: structjac against numpy, PyTorch and JAX.

The network of ``scripts/perf_nn.py``: 32-64-64-1, sigmoid / tanh / sigmoid, binary
cross-entropy (mean over the batch), float32, batch of ``n`` samples. Every form returns
the loss and the gradient of every ``W`` and ``b``; all run on one thread (BLAS, Numba,
``torch.set_num_threads(1)``, XLA without its multi-threaded Eigen pool).

``structured``
    ``structjac.nn.value_and_grad(..., method="fused")``;
``structured_rules``
    ``method="structures"``: the structures built and multiplied by the rule table;
``numpy``
    a plain numpy forward and backward pass written here (:func:`numpy_value_and_grad`,
    with the usual simplification ``dJ/dZ3 = (A3 - y) / N``);
``torch``
    PyTorch eager autograd (``torch.autograd.grad``), skipped when not installed;
``jax``
    ``jax.jit(jax.value_and_grad(loss))``, skipped when not installed.
"""

from __future__ import annotations

import os

import numpy as np

from .common import StructuredVsDense, optional_import, rng, structjac_part

SIZES_NET = [32, 64, 64, 1]
ACTIVATIONS = ["sigmoid", "tanh", "sigmoid"]
EPS32 = 1e-7


def make_problem(n, dtype=np.float32):
    r = rng(0)
    params = []
    for d, m in zip(SIZES_NET[:-1], SIZES_NET[1:]):
        lim = np.sqrt(6.0 / (d + m))
        params.append((r.uniform(-lim, lim, (m, d)).astype(dtype), np.zeros(m, dtype=dtype)))
    X = r.standard_normal((n, SIZES_NET[0])).astype(dtype)
    y = (r.random(n) > 0.5).astype(dtype)
    return params, X, y


def numpy_value_and_grad(params, X, y):
    """Plain numpy backprop for the benchmark network; returns ``(loss, [(gW, gb), ...])``."""
    (W1, b1), (W2, b2), (W3, b3) = params
    N = X.shape[0]
    A1 = 1.0 / (1.0 + np.exp(-(X @ W1.T + b1)))
    A2 = np.tanh(A1 @ W2.T + b2)
    A3 = 1.0 / (1.0 + np.exp(-(A2 @ W3.T + b3)))
    Y = y.reshape(N, 1)
    P = np.clip(A3, EPS32, 1.0 - EPS32)
    loss = -np.mean(Y * np.log(P) + (1.0 - Y) * np.log(1.0 - P))
    G3 = (A3 - Y) / N
    G2 = (G3 @ W3) * (1.0 - A2 * A2)
    G1 = (G2 @ W2) * (A1 * (1.0 - A1))
    return loss, [(G1.T @ X, G1.sum(0)), (G2.T @ A1, G2.sum(0)), (G3.T @ A2, G3.sum(0))]


def _torch_fn(params, X, y):
    torch = optional_import("torch")
    torch.set_num_threads(1)
    tp = [
        (torch.from_numpy(W).requires_grad_(), torch.from_numpy(b).requires_grad_())
        for W, b in params
    ]
    flat = [t for pair in tp for t in pair]
    tX, ty = torch.from_numpy(X), torch.from_numpy(y).reshape(-1, 1)

    def run():
        A = tX
        for (W, b), act in zip(tp, (torch.sigmoid, torch.tanh, torch.sigmoid)):
            A = act(torch.nn.functional.linear(A, W, b))
        loss = torch.nn.functional.binary_cross_entropy(A, ty)
        grads = torch.autograd.grad(loss, flat)
        return loss.item(), grads

    return run


def _jax_fn(params, X, y):
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_cpu_multi_thread_eigen" not in flags:
        os.environ["XLA_FLAGS"] = (
            flags + " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
        ).strip()
    jax = optional_import("jax")
    jnp = optional_import("jax.numpy")

    def loss_fn(p, X, y):
        A = X
        for (W, b), act in zip(p, (jax.nn.sigmoid, jnp.tanh, jax.nn.sigmoid)):
            A = act(A @ W.T + b)
        P = jnp.clip(A[:, 0], EPS32, 1.0 - EPS32)
        return -jnp.mean(y * jnp.log(P) + (1.0 - y) * jnp.log(1.0 - P))

    f = jax.jit(jax.value_and_grad(loss_fn))
    jp = [(jnp.asarray(W), jnp.asarray(b)) for W, b in params]
    jX, jy = jnp.asarray(X), jnp.asarray(y)

    def run():
        value, grads = f(jp, jX, jy)
        return jax.block_until_ready((value, grads))

    return run


class ValueAndGrad(StructuredVsDense):
    sizes = (1024, 16384, 262144)
    forms = ["structured", "structured_rules", "numpy", "torch", "jax"]
    cheap_forms = tuple(forms)

    def build(self, n, form):
        params, X, y = make_problem(n)
        if form in ("structured", "structured_rules"):
            nn = structjac_part("structjac.nn")
            method = "fused" if form == "structured" else "structures"
            return lambda: nn.value_and_grad(params, X, y, ACTIVATIONS, "bce", method=method)
        if form == "numpy":
            return lambda: numpy_value_and_grad(params, X, y)
        if form == "torch":
            return _torch_fn(params, X, y)
        return _jax_fn(params, X, y)
