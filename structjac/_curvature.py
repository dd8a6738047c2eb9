r"""The generalised Gauss-Newton matrix of an MLP as an operator, and a damped Gauss-Newton step.

For the loss :math:`J(\theta) = \sum_k w\, J_0^{(k)}(a_L^{(k)}(\theta))` the GGN is

.. math::

    \mathcal G = \mathcal J^T H \mathcal J, \qquad
    \mathcal J = \frac{\partial \operatorname{vec}_r A_L}{\partial \theta}, \quad
    H = \frac{\partial^2 J}{\partial (\operatorname{vec}_r A_L)^2}
      \ (\text{block diagonal: } w H_k \text{ per sample}),

and :math:`\mathcal G v` is one Jacobian-vector product (forward through the layer
structures: :math:`\dot Z_l = \dot A_{l-1} W_l^T + A_{l-1} \dot W_l^T + \mathbf 1 \dot b_l^T`,
:math:`\dot A_l = g'_l \odot \dot Z_l`), the loss Hessian's structure (``ScaledIdentity``,
``Diagonal`` or ``BlockDiagonal``) applied once, and one vector-Jacobian product (the
backward pass of the gradient with that cotangent).  No :math:`P \times P` matrix and no
per-parameter loop.  :mod:`structjac.nn` validates the inputs and runs the forward pass;
this module gets the saved values.
"""

from __future__ import annotations

import numpy as np
from scipy.sparse.linalg import LinearOperator, cg

from ._extras import activation_derivative

__all__ = ["GGNOperator", "flatten", "gauss_newton_solve", "unflatten"]


def flatten(pairs, dtype):
    """``[(W_1, b_1), ...]`` as one vector ``vec_r(W_1), b_1, vec_r(W_2), ...``."""
    return np.concatenate([np.concatenate([np.ravel(W), np.ravel(b)]) for W, b in pairs]).astype(
        dtype, copy=False
    )


def unflatten(v, params):
    """The inverse of :func:`flatten`, shapes from ``params`` (views of ``v``)."""
    out, i = [], 0
    for W, b in params:
        out.append((v[i : i + W.size].reshape(W.shape), v[i + W.size : i + W.size + b.size]))
        i += W.size + b.size
    return out


class GGNOperator(LinearOperator):
    r"""The GGN :math:`\mathcal J^T H \mathcal J` over the flattened parameters.

    Built by :func:`structjac.nn.ggn` from the forward pass's saved values; symmetric
    positive semi-definite for the convex losses (``rmatvec`` is ``matvec``).
    """

    def __init__(self, params, saved, acts, y, loss, reduction):
        self.params = params
        self.inputs = [A_prev for A_prev, _, _ in saved]
        self.derivs = [activation_derivative(act, Z, A) for act, (_, Z, A) in zip(acts, saved)]
        out = saved[-1][2]
        self.out_shape = out.shape
        self.loss_hessian = loss.hessian(y, out, reduction=reduction)
        n = sum(W.size + b.size for W, b in params)
        super().__init__(dtype=out.dtype, shape=(n, n))

    def _jvp(self, v):
        dA = None
        for (W, _), (dW, db), A_prev, gp in zip(
            self.params, unflatten(v, self.params), self.inputs, self.derivs
        ):
            dZ = A_prev @ dW.T
            dZ += db
            if dA is not None:
                dZ += dA @ W.T
            dA = dZ if gp is None else np.multiply(dZ, gp, out=dZ)
        return dA

    def _vjp(self, G):
        out = [None] * len(self.params)
        for l in range(len(self.params) - 1, -1, -1):
            gp = self.derivs[l]
            if gp is not None:
                G = G * gp
            out[l] = (G.T @ self.inputs[l], G.sum(axis=0))
            if l:
                G = G @ self.params[l][0]
        return flatten(out, self.dtype)

    def _matvec(self, v):
        # LinearOperator.matvec has checked the length
        v = np.asarray(v).reshape(-1).astype(self.dtype, copy=False)
        u = self._jvp(v)
        Hu = np.asarray(self.loss_hessian @ u.reshape(-1)).reshape(self.out_shape)
        return self._vjp(Hu.astype(self.dtype, copy=False))

    def _rmatvec(self, v):
        return self._matvec(v)

    def _adjoint(self):
        return self


def gauss_newton_solve(op, grads, damping, rtol, maxiter):
    r"""Solve :math:`(\mathcal G + \lambda I) d = -g` by CG; return ``(d as pairs, info)``."""
    g = flatten(grads, op.dtype)
    n = op.shape[0]
    damped = LinearOperator(
        (n, n), dtype=op.dtype, matvec=lambda v: op.matvec(v) + op.dtype.type(damping) * np.ravel(v)
    )
    d, info = cg(damped, -g, rtol=rtol, maxiter=maxiter)
    return unflatten(d.astype(op.dtype, copy=False), op.params), info
