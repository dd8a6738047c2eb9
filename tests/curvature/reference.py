"""A naive numpy reference for the curvature tests: each sample's forward pass, its output
Jacobian with respect to every parameter (flattened as vec_r(W_1), b_1, vec_r(W_2), ...),
and its loss gradient and Hessian in the output, written here from the formulas (no
structjac code).  Per-sample gradients, GGN, Kronecker factors all follow from these."""

import numpy as np

# The activations and their derivatives, written once in plain numpy for every reference.
from ..nn.test_reference import SLOPE, _dg as dg, _g as g  # noqa: F401 (SLOPE: test_compare)


def weight(reduction, N, m):
    return {"mean": 1.0 / N, "sum": 1.0, "elementwise_mean": 1.0 / (N * m)}[reduction]


def loss_grad_hess(loss, y, a):
    """dJ0/da and d2J0/da2 for one sample (a: the network's output, y: its target)."""
    if loss == "mse":
        return 2 * (a - y), 2 * np.eye(a.size)
    if loss == "bce":
        return (a - y) / (a * (1 - a)), np.diag(y / a**2 + (1 - y) / (1 - a) ** 2)
    if loss == "bce_with_logits":
        s = 1 / (1 + np.exp(-a))
        return s - y, np.diag(s * (1 - s))
    if loss == "cross_entropy":
        p = np.exp(a - a.max())
        p /= p.sum()
        t = np.eye(a.size)[int(y)] if np.ndim(y) == 0 else y
        return t.sum() * p - t, t.sum() * (np.diag(p) - np.outer(p, p))
    raise ValueError(loss)


def sample_jacobian(params, acts, x):
    """(output a_L, J = d a_L / d theta of shape (m_L, P), per-layer inputs)."""
    a = x
    saved = []
    for (W, b), act in zip(params, acts):
        z = W @ a + b
        saved.append((a, z))
        a = g(act, z)
    m = a.size
    V = np.eye(m)
    blocks = []
    for l in range(len(params) - 1, -1, -1):
        W, b = params[l]
        a_prev, z = saved[l]
        V = V * dg(acts[l], z)[None, :]
        blocks = [(V[:, :, None] * a_prev[None, None, :]).reshape(m, -1), V.copy()] + blocks
        V = V @ W
    return a, np.concatenate(blocks, axis=1), [s[0] for s in saved]


def per_sample(params, acts, loss, X, y, reduction="mean"):
    """Per-sample Jacobians J (N, m_L, P), loss gradients (N, m_L), Hessians (N, m_L, m_L),
    the weight w and the per-layer inputs (list of (N, d_l))."""
    N = X.shape[0]
    Js, gs, Hs, ins = [], [], [], []
    for k in range(N):
        a, J, inputs = sample_jacobian(params, acts, X[k])
        gr, H = loss_grad_hess(loss, y[k], a)
        Js.append(J), gs.append(gr), Hs.append(H), ins.append(inputs)
    m = Js[0].shape[0]
    layer_inputs = [np.array([ins[k][l] for k in range(N)]) for l in range(len(params))]
    return np.array(Js), np.array(gs), np.array(Hs), weight(reduction, N, m), layer_inputs


def per_sample_grads(params, acts, loss, X, y, reduction="mean"):
    """(N, P): each sample's term of the reduced loss's gradient, w grad J_0^(k)."""
    J, gr, _, w, _ = per_sample(params, acts, loss, X, y, reduction)
    return w * np.einsum("kmp,km->kp", J, gr)


def ggn(params, acts, loss, X, y, reduction="mean"):
    J, _, H, w, _ = per_sample(params, acts, loss, X, y, reduction)
    return w * np.einsum("kmp,kmn,knq->pq", J, H, J)


def split(params, v):
    """A flat vector (..., P) into [(W-shaped, b-shaped), ...] over its last axis."""
    out, i = [], 0
    for W, b in params:
        nW, nb = W.size, b.size
        out.append(
            (v[..., i : i + nW].reshape(v.shape[:-1] + W.shape), v[..., i + nW : i + nW + nb])
        )
        i += nW + nb
    return out


def flat(pairs):
    return np.concatenate([np.concatenate([np.ravel(a), np.ravel(b)]) for a, b in pairs])
