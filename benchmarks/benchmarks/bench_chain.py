"""A chain of Jacobians multiplied in the order the cost model chooses, against fixed orders.

The chain is backpropagation to the first weights of a two-layer network over a batch of
``n`` samples (sigmoid, tanh; mean squared error on ``M`` outputs):

    dJ/dW1 = [dJ/dA2] [dA2/dZ2] [dZ2/dA1] [dA1/dZ1] [dZ1/dW1]
           = BlockRow(1 x nM) Diagonal(nM) Kronecker(I_n (x) W2) Diagonal(nH) StackedKronecker(X, H)

``structured``
    ``structjac.chain.chain(*factors)``: the planner's order (reverse mode: the loss
    row first);
``left_to_right``
    ``((((f1 @ f2) @ f3) @ f4) @ f5)`` on the structures (here reverse mode too);
``right_to_left``
    ``f1 @ (f2 @ (f3 @ (f4 @ f5)))`` on the structures (forward mode: matrix-matrix
    products; the Kronecker factor has no closed form with its right neighbour, so the
    result falls to Sparse);
``dense``
    the same chain of dense arrays, left to right (reverse mode on dense matrices).
"""

from __future__ import annotations

import functools
import operator
import warnings

import numpy as np

from .common import StructuredVsDense, dense_bytes, rng, structjac_part

D, H, M = 32, 32, 8


def factors(n):
    sj = structjac_part("structjac")
    ops = structjac_part("structjac.ops")
    layers = structjac_part("structjac.layers")
    X = rng(0).standard_normal((n, D))
    W1 = rng(1).standard_normal((H, D)) / np.sqrt(D)
    W2 = rng(2).standard_normal((M, H)) / np.sqrt(H)
    L1 = layers.dense_jacobians(W1, np.zeros(H), X, "sigmoid")
    L2 = layers.dense_jacobians(W2, np.zeros(M), L1.a, "tanh")
    y = rng(3).standard_normal((n, M))
    row = ops.mse.jacobian(y, L2.a)  # 1 x nM
    assert isinstance(row, sj.Jacobian)
    return [row, L2.da_dz, L2.dz_dx, L1.da_dz, L1.dz_dW]


class Chain(StructuredVsDense):
    sizes = (16, 64, 256, 1024, 16384)
    forms = ["structured", "left_to_right", "right_to_left", "dense"]
    cheap_forms = ("structured", "left_to_right")

    def dense_cost(self, n, form):
        if form == "right_to_left":
            # f3 @ (f4 @ f5) is nM x HD with nM*HD nonzeros in Sparse (12 bytes each)
            return int(n * M * H * D * 12 * 2), float(n * M * H * H * D)
        shapes = [(1, n * M), (n * M, n * M), (n * M, n * H), (n * H, n * H), (n * H, H * D)]
        return dense_bytes(*shapes), float(2 * n * M * n * H + 2 * n * H * n * H)

    def build(self, n, form):
        fs = factors(n)
        if form == "structured":
            chain = structjac_part("structjac.chain").chain
            return lambda: chain(*fs)
        if form == "left_to_right":
            return lambda: functools.reduce(operator.matmul, fs)
        if form == "right_to_left":
            sj = structjac_part("structjac")

            def right_to_left():
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", sj.StructureLostWarning)
                    out = fs[-1]
                    for f in reversed(fs[:-1]):
                        out = f @ out
                    return out

            return right_to_left
        dense = [f.to_dense() for f in fs]
        return lambda: functools.reduce(operator.matmul, dense)

    def track_stored_bytes(self, n, form):
        out = self.fn()
        return int(out.nbytes)

    track_stored_bytes.unit = "bytes"
