"""Dense-layer and neuron Jacobians over a mini-batch: structures against the dense matrices.

``LayerJacobians.time_op``: a layer ``Z = X W^T + b``, ``A = sigmoid(Z)`` with ``W`` of
shape ``(M, D)`` over a batch of ``n`` samples.

``structured``
    ``structjac.layers.dense_jacobians(W, b, X)``: forward pass and every Jacobian
    (``dZ/dW``, ``dZ/db``, ``dZ/dX`` and their ``dA/d(.)``) as structures,
    O(nD + MD) numbers;
``dense``
    what ``jax.jacrev`` / ``torch.autograd.functional.jacobian`` of ``A(W, b, X)``
    return: ``dA/dW`` (nM x MD), ``dA/db`` (nM x M) and ``dA/dX`` (nM x nD) as
    arrays, built in numpy at their cheapest (scaled rows of the block patterns).

``NeuronJacobians.time_op``: the lecture's neuron ``z = X w + b``, ``a = sigmoid(z)``.

``structured``
    ``structjac.layers.neuron_jacobians(w, b, X)`` (``da/dz`` Diagonal, ``da/dw`` Dense
    ``N x D``, ``da/dx^(k)`` a BlockRow on demand);
``dense``
    ``da/dz`` (N x N), ``da/dw`` (N x D) and ``da/dX`` (N x ND) as arrays.
"""

from __future__ import annotations

import numpy as np

from .common import StructuredVsDense, dense_bytes, rng, structjac_part

M = 32  # outputs of the layer
D = 32  # inputs of the layer / of the neuron


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _stored(obj):
    """Bytes held by a structure, an ndarray, or a tuple / attribute bag of them."""
    if isinstance(obj, (tuple, list)):
        return sum(_stored(o) for o in obj)
    if isinstance(obj, np.ndarray):
        return obj.nbytes
    items = getattr(obj, "items", None)
    if callable(items):
        return sum(J.nbytes for _, J in items())
    return int(obj.nbytes)


class LayerJacobians(StructuredVsDense):
    sizes = (16, 64, 256, 1024, 8192)

    def dense_cost(self, n, form):
        return dense_bytes((n * M, M * D), (n * M, M), (n * M, n * D)) * 2, float(n * M * n * D)

    def build(self, n, form):
        W = rng(0).standard_normal((M, D)) / np.sqrt(D)
        b = rng(1).standard_normal(M)
        X = rng(2).standard_normal((n, D))
        if form == "structured":
            layers = structjac_part("structjac.layers")
            return lambda: layers.dense_jacobians(W, b, X, "sigmoid")

        def dense():
            Z = X @ W.T + b
            A = _sigmoid(Z)
            g = (A * (1.0 - A)).reshape(-1)  # row (k, i) of every Jacobian is scaled by g'_(k,i)
            dW = np.zeros((n, M, M, D))
            idx = np.arange(M)
            dW[:, idx, idx, :] = X[:, None, :]  # dZ_(k,i) / dW_(i,j) = X_kj
            dW = dW.reshape(n * M, M * D) * g[:, None]
            db = np.tile(np.eye(M), (n, 1)) * g[:, None]
            dX = np.zeros((n, M, n, D))
            dX[np.arange(n), :, np.arange(n), :] = W  # dZ_(k,i) / dX_(k,j) = W_ij
            dX = dX.reshape(n * M, n * D) * g[:, None]
            return A, dW, db, dX

        return dense

    def track_stored_bytes(self, n, form):
        return int(_stored(self.fn()))

    track_stored_bytes.unit = "bytes"


class NeuronJacobians(StructuredVsDense):
    sizes = (64, 512, 4096, 32768, 262144)

    def dense_cost(self, n, form):
        return dense_bytes((n, n), (n, D), (n, n * D)) * 2, float(n * n * D)

    def build(self, n, form):
        w = rng(0).standard_normal(D) / np.sqrt(D)
        X = rng(2).standard_normal((n, D))
        if form == "structured":
            layers = structjac_part("structjac.layers")
            return lambda: layers.neuron_jacobians(w, 0.1, X, "sigmoid")

        def dense():
            a = _sigmoid(X @ w + 0.1)
            g = a * (1.0 - a)
            da_dz = np.diag(g)
            da_dw = g[:, None] * X
            da_dX = np.zeros((n, n, D))
            da_dX[np.arange(n), np.arange(n), :] = g[:, None] * w  # row k: g'_k w^T at block k
            return a, da_dz, da_dw, da_dX.reshape(n, n * D)

        return dense

    def track_stored_bytes(self, n, form):
        return int(_stored(self.fn()))

    track_stored_bytes.unit = "bytes"
