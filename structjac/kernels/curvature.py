r"""Numba kernels of the curvature extras: the gated sum of squares of backpropagated columns.

The exact and Monte-Carlo diagonals of the generalised Gauss-Newton matrix backpropagate
:math:`K` cotangent columns :math:`V_c \in \mathbb{F}^{N \times m}` (stored as one
``(K, N, m)`` array) through each layer, and need per layer

.. math::

    V_c \leftarrow V_c \odot g', \qquad Q = \sum_{c=1}^{K} V_c^{\odot 2},

the gating by the activation's derivative :math:`g'` (an ``(N, m)`` array) and the sum
of the squared columns.  :func:`gate_square_sum` does both in one pass over ``V``
(written in place) instead of a product, a square and a reduction (three passes and two
temporaries of ``V``'s size), with the column sums :math:`\mathbf 1^T Q` (the bias
diagonal) in the same pass.  The sums over ``c`` accumulate in the array dtype (``K`` is
the number of classes or Monte-Carlo samples, a handful of terms); the sums over the
``N`` samples in float64.

The first-order extras need per layer, from the pre-activation cotangent ``G`` (N, m) and
the layer input ``A`` (N, d), one pass each:

* :func:`square_colsum`: :math:`G^{\odot 2}` and :math:`\mathbf 1^T G^{\odot 2}`
  (``sum_grad_squared``);
* :func:`ghost_norms`: :math:`\big(\sum_l \|g_k\|^2 (\|a_k\|^2 + 1)\big)^{1/2}` over all
  layers in one call (``grad_norms``);
* :func:`scale_rows_colsum`: :math:`cG` and :math:`\mathbf 1^T (cG)` (``clipped_grad``).

A layer of one unit (``m = 1``, a regression or binary head) sends its columns down as
outer products :math:`V_c = v_c w^T` (``(N, 1) @ (1, d)``, a GEMM BLAS runs at a
fraction of its speed); :func:`outer_gate` forms them inside the next layer's gating
pass, so that the product, the gating and the sum of squares are one pass over ``V``.

Cross-entropy's top layer (logits, no activation) needs no product with ``W``
(``(K N, C) @ (C, d)``, a GEMM of inner dimension ``C``): its columns below are rows of
``W`` combined per sample, one pass over the ``(K, N, d)`` output
(:func:`cross_entropy_exact_columns`, :func:`cross_entropy_sampled_columns`).

(``numpy``'s ``sum(axis=0)`` of an ``(N, m)`` array with small ``m`` runs at a tenth of
memory bandwidth; these kernels stay at it, and accumulate the ``N``-term sums in float64.)

Examples
--------
>>> import numpy as np
>>> from structjac.kernels.curvature import gate_square_sum
>>> V = np.arange(12.0).reshape(2, 3, 2)
>>> gp = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 2.0]])
>>> gate_square_sum(V, gp)
array([[ 36.,   0.],
       [ 68.,  90.],
       [  0., 584.]])
>>> V[0]
array([[ 0.,  0.],
       [ 2.,  3.],
       [ 0., 10.]])
"""

from __future__ import annotations

import numba
import numpy as np

from ._config import JIT

__all__ = [
    "cross_entropy_exact_columns",
    "cross_entropy_sampled_columns",
    "gate_from_output",
    "gate_square_sum",
    "ghost_norms",
    "ghost_norms_from_row_squares",
    "outer_gate",
    "scale_rows_colsum",
    "square_colsum",
]

#: The activations whose derivative :func:`gate_from_output` forms from the output ``a``
#: inside the pass: sigmoid :math:`a(1 - a)`, tanh :math:`(1 + a)(1 - a)`.
FROM_OUTPUT = {"sigmoid": 0, "tanh": 1}


@numba.njit(**JIT)
def _gate_square_sum(V, gp, out, colsum):
    K, N, m = V.shape
    zero = out.dtype.type(0)
    acc = np.zeros(m, np.float64)
    for k in range(N):
        o = out[k]
        g = gp[k]
        for i in range(m):
            o[i] = zero
        for c in range(K):
            v = V[c, k]
            for i in range(m):
                x = v[i] * g[i]
                v[i] = x
                o[i] += x * x
        for i in range(m):
            acc[i] += o[i]
    for i in range(m):
        colsum[i] = acc[i]


@numba.njit(**JIT)
def _gate_from_output(V, A, kind, square, out, colsum):
    K, N, m = V.shape
    one = V.dtype.type(1)
    zero = V.dtype.type(0)
    acc = np.zeros(m, np.float64)
    g = np.empty(m, dtype=V.dtype)
    for k in range(N):
        a = A[k]
        if kind == 0:
            for i in range(m):
                g[i] = a[i] * (one - a[i])
        else:
            for i in range(m):
                g[i] = (one + a[i]) * (one - a[i])
        if square:
            o = out[k]
            for i in range(m):
                o[i] = zero
            for c in range(K):
                v = V[c, k]
                for i in range(m):
                    x = v[i] * g[i]
                    v[i] = x
                    o[i] += x * x
            for i in range(m):
                acc[i] += o[i]
        else:
            for c in range(K):
                v = V[c, k]
                for i in range(m):
                    v[i] *= g[i]
    if square:
        for i in range(m):
            colsum[i] = acc[i]


@numba.njit(**JIT)
def _outer_gate(v, w, G, kind, square, V, out, colsum):
    # V[c, k, i] = v[c, k] w[i] g_ki with g from the output G (kind 0: sigmoid, 1: tanh),
    # the derivative G itself (2) or 1 (3); with square: out = sum_c V_c^2, colsum = 1^T out
    K, N = v.shape
    d = w.size
    one = V.dtype.type(1)
    zero = V.dtype.type(0)
    acc = np.zeros(d, np.float64)
    g = np.empty(d, dtype=V.dtype)
    for k in range(N):
        if kind == 0:
            a = G[k]
            for i in range(d):
                g[i] = w[i] * (a[i] * (one - a[i]))
        elif kind == 1:
            a = G[k]
            for i in range(d):
                g[i] = w[i] * ((one + a[i]) * (one - a[i]))
        elif kind == 2:
            a = G[k]
            for i in range(d):
                g[i] = w[i] * a[i]
        else:
            for i in range(d):
                g[i] = w[i]
        if square:
            o = out[k]
            for i in range(d):
                o[i] = zero
            for c in range(K):
                x0 = v[c, k]
                vc = V[c, k]
                for i in range(d):
                    x = x0 * g[i]
                    vc[i] = x
                    o[i] += x * x
            for i in range(d):
                acc[i] += o[i]
        else:
            for c in range(K):
                x0 = v[c, k]
                vc = V[c, k]
                for i in range(d):
                    vc[i] = x0 * g[i]
    if square:
        for i in range(d):
            colsum[i] = acc[i]


@numba.njit(**JIT)
def _square_sum(V, out, colsum):
    K, N, m = V.shape
    zero = out.dtype.type(0)
    acc = np.zeros(m, np.float64)
    for k in range(N):
        o = out[k]
        for i in range(m):
            o[i] = zero
        for c in range(K):
            v = V[c, k]
            for i in range(m):
                o[i] += v[i] * v[i]
        for i in range(m):
            acc[i] += o[i]
    for i in range(m):
        colsum[i] = acc[i]


@numba.njit(**JIT)
def _square_colsum(G, sq, colsum):
    N, m = G.shape
    acc = np.zeros(m, np.float64)
    for k in range(N):
        g = G[k]
        s = sq[k]
        for i in range(m):
            x = g[i] * g[i]
            s[i] = x
            acc[i] += x
    for i in range(m):
        colsum[i] = acc[i]


@numba.njit(**JIT)
def _scale_rows_colsum(G, c, out, colsum):
    N, m = G.shape
    acc = np.zeros(m, np.float64)
    for k in range(N):
        g = G[k]
        o = out[k]
        ck = c[k]
        for i in range(m):
            x = g[i] * ck
            o[i] = x
            acc[i] += x
    for i in range(m):
        colsum[i] = acc[i]


@numba.njit(**JIT)
def _ghost_norms(Gs, As, total):
    zero = Gs[0].dtype.type(0)
    for k in range(total.shape[0]):
        t = 0.0
        for l in range(len(Gs)):
            g = Gs[l][k]
            a = As[l][k]
            sg = zero  # a row's sum in the array dtype: it vectorises (reassoc)
            for i in range(g.size):
                sg += g[i] * g[i]
            sa = zero
            for j in range(a.size):
                sa += a[j] * a[j]
            t += np.float64(sg) * (np.float64(sa) + 1.0)
        total[k] = np.sqrt(t)


@numba.njit(**JIT)
def _ghost_from_squares(X, g_sq, a_sq, out):
    # a_sq[0] receives the row sums of squares of X; then out[k] = sqrt of
    # sum_l g_sq[l][k] (a_sq[l][k] + 1), the sum over the layers in float64
    zero = X.dtype.type(0)
    a0 = a_sq[0]
    for k in range(out.shape[0]):
        x = X[k]
        s = zero
        for j in range(x.size):
            s += x[j] * x[j]
        a0[k] = s
    for k in range(out.shape[0]):
        t = 0.0
        for l in range(len(g_sq)):
            t += np.float64(g_sq[l][k]) * (np.float64(a_sq[l][k]) + 1.0)
        out[k] = np.sqrt(t)


@numba.njit(**JIT)
def _ce_exact_columns(q, v, j, a, b, W, R, out):
    K, N, d = out.shape
    for k in range(N):
        r = R[k]
        for c in range(K):
            col = c + 1 if c >= j[k] else c
            x = a[k] * q[k, col]
            y = b[k] * v[k, col]
            w = W[col]
            o = out[c, k]
            for i in range(d):
                o[i] = x * w[i] - y * r[i]


@numba.njit(**JIT)
def _ce_sampled_columns(PW, cls, scale, W, out):
    K, N, d = out.shape
    for s in range(K):
        for k in range(N):
            w = W[cls[s, k]]
            pw = PW[k]
            sc = scale[k]
            o = out[s, k]
            for i in range(d):
                o[i] = sc * (pw[i] - w[i])


def cross_entropy_exact_columns(q, v, j, a, b, W, out=None):
    r"""The ``C - 1`` Householder columns of cross-entropy's Hessian factor times ``W``.

    Sample ``k``'s factor columns are
    :math:`s_{kc} = a_k\, q_k \odot (e_{i_c} - \beta_k v_{k,i_c} v_k)` for the indices
    :math:`i_c \ne j_k` (``c = 0..C-2``), :math:`b_k = a_k \beta_k`; their products with
    ``W`` (C, d) are :math:`a_k q_{k,i_c} W_{i_c} - b_k v_{k,i_c} R_k`,
    :math:`R = (q \odot v) W` (one ``(N, C) @ (C, d)`` product shared by the columns).

    Parameters
    ----------
    q, v : ndarray, shape (N, C)
        :math:`\sqrt p` and :math:`q - e_j`.
    j : ndarray of int, shape (N,)
        The index left out per sample.
    a, b : ndarray, shape (N,)
        The scale and the scale times :math:`\beta = 2 / v^T v`.
    W : ndarray, shape (C, d)
    out : ndarray, shape (C - 1, N, d), optional
        Where to write the result (C-contiguous, ``W``'s dtype); new by default.

    Returns
    -------
    ndarray, shape (C - 1, N, d), in ``W``'s dtype.

    Examples
    --------
    >>> import numpy as np
    >>> p = np.array([[0.5, 0.3, 0.2]]); q = np.sqrt(p); j = np.array([2])
    >>> v = q.copy(); v[0, 2] -= 1; beta = 2 / (v ** 2).sum(1)
    >>> W = np.arange(6.0).reshape(3, 2)
    >>> V = cross_entropy_exact_columns(q, v, j, np.ones(1), beta, W)
    >>> S = q[0][:, None] * (np.eye(3) - beta[0] * np.outer(v[0], v[0]))[:, :2]
    >>> bool(np.allclose(V[:, 0], S.T @ W)), bool(np.allclose(S @ S.T, np.diag(p[0]) - np.outer(p[0], p[0])))
    (True, True)
    """
    W = _check2("W", W)
    dt = W.dtype
    N, C = q.shape
    if (
        v.shape != (N, C)
        or W.shape[0] != C
        or j.shape != (N,)
        or a.shape != (N,)
        or b.shape != (N,)
    ):
        raise ValueError(
            f"q {q.shape}, v {v.shape}, j {j.shape}, a {a.shape}, b {b.shape} and "
            f"W {W.shape} do not fit: need (N, C), (N, C), (N,), (N,), (N,), (C, d)"
        )
    q = np.ascontiguousarray(q, dtype=dt)
    v = np.ascontiguousarray(v, dtype=dt)
    R = (q * v) @ W
    out = _out(out, (max(C - 1, 0), N, W.shape[1]), dt)
    _ce_exact_columns(
        q,
        v,
        np.ascontiguousarray(j, dtype=np.int64),
        np.ascontiguousarray(a, dtype=dt),
        np.ascontiguousarray(b, dtype=dt),
        W,
        R,
        out,
    )
    return out


def cross_entropy_sampled_columns(PW, cls, scale, W, out=None):
    r"""Sampled cross-entropy columns times ``W``: ``scale_k (PW_k - W[cls[s, k]])``.

    The sampled column of sample ``k`` is :math:`\text{scale}_k (p_k - e_{\hat c})`; its
    product with ``W`` (C, d) is :math:`\text{scale}_k (p_k W - W_{\hat c})`, with
    ``PW = p @ W`` (N, d) shared by the samples.  ``cls`` (K, N) are the sampled classes;
    the result, shape (K, N, d), is written to ``out`` when given.

    Examples
    --------
    >>> import numpy as np
    >>> W = np.arange(6.0).reshape(3, 2); p = np.array([[0.5, 0.3, 0.2]])
    >>> cross_entropy_sampled_columns(p @ W, np.array([[1]]), np.array([2.0]), W)
    array([[[-1.2, -1.2]]])
    """
    W = _check2("W", W)
    PW = _check2("PW", PW, W.dtype)
    K, N = cls.shape
    if PW.shape != (N, W.shape[1]) or scale.shape != (N,):
        raise ValueError(
            f"PW {PW.shape}, cls {cls.shape}, scale {scale.shape} and W {W.shape} "
            "do not fit: need (N, d), (K, N), (N,), (C, d)"
        )
    if cls.size and (cls.min() < 0 or cls.max() >= W.shape[0]):
        raise ValueError(
            f"cls must index the {W.shape[0]} rows of W, got values in [{cls.min()}, {cls.max()}]"
        )
    out = _out(out, (K, N, W.shape[1]), W.dtype)
    _ce_sampled_columns(
        PW,
        np.ascontiguousarray(cls, dtype=np.int64),
        np.ascontiguousarray(scale, dtype=W.dtype),
        W,
        out,
    )
    return out


def _out(out, shape, dtype):
    if out is None:
        return np.empty(shape, dtype=dtype)
    if not (
        isinstance(out, np.ndarray)
        and out.shape == tuple(shape)
        and out.dtype == dtype
        and out.flags.c_contiguous
        and out.flags.writeable
    ):
        raise ValueError(
            f"out must be a writeable C-contiguous array of shape {tuple(shape)} and "
            f"dtype {np.dtype(dtype)}, got {getattr(out, 'shape', None)} "
            f"{getattr(out, 'dtype', type(out).__name__)}"
        )
    return out


def _check2(name, x, dtype=None):
    if not (
        isinstance(x, np.ndarray)
        and x.ndim == 2
        and x.dtype in (np.float32, np.float64)
        and (dtype is None or x.dtype == dtype)
    ):
        raise ValueError(
            f"{name} must be a 2-D float32/float64 array"
            + ("" if dtype is None else f" of dtype {dtype}")
            + ", got "
            f"{getattr(x, 'shape', None)} {getattr(x, 'dtype', type(x).__name__)}"
        )
    return np.ascontiguousarray(x)


def square_colsum(G, out=None):
    r""":math:`G^{\odot 2}` and its column sums :math:`\mathbf 1^T G^{\odot 2}`, one pass.

    Parameters
    ----------
    G : ndarray, shape (N, m), float32 or float64
    out : ndarray, shape (N, m), optional
        Where to write the squares (C-contiguous, ``G``'s dtype); new by default.

    Returns
    -------
    sq : ndarray, shape (N, m)
    colsum : ndarray, shape (m,)
        Accumulated in float64, stored in ``G``'s dtype.

    Examples
    --------
    >>> import numpy as np
    >>> sq, s = square_colsum(np.array([[1.0, -2.0], [3.0, 0.5]]))
    >>> sq
    array([[1.  , 4.  ],
           [9.  , 0.25]])
    >>> s
    array([10.  ,  4.25])
    """
    G = _check2("G", G)
    sq = _out(out, G.shape, G.dtype)
    colsum = np.empty(G.shape[1], dtype=G.dtype)
    _square_colsum(G, sq, colsum)
    return sq, colsum


def scale_rows_colsum(G, c, out=None):
    r"""Each row of ``G`` times ``c`` (shape (N,)), and the column sums of the result.

    Returns ``(c[:, None] * G, 1^T (c[:, None] * G))`` in ``G``'s dtype (the sums
    accumulated in float64), the first written to ``out`` when given; ``ValueError``
    when ``c`` is not of shape ``(N,)``.

    Examples
    --------
    >>> import numpy as np
    >>> out, s = scale_rows_colsum(np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([2.0, 0.5]))
    >>> out
    array([[2. , 4. ],
           [1.5, 2. ]])
    >>> s
    array([3.5, 6. ])
    """
    G = _check2("G", G)
    c = np.ascontiguousarray(c, dtype=G.dtype)
    if c.shape != (G.shape[0],):
        raise ValueError(f"c has shape {c.shape}; G of shape {G.shape} needs ({G.shape[0]},)")
    out = _out(out, G.shape, G.dtype)
    colsum = np.empty(G.shape[1], dtype=G.dtype)
    _scale_rows_colsum(G, c, out, colsum)
    return out, colsum


def ghost_norms(Gs, As):
    r"""Per-sample gradient norms of a stack of dense layers from their ghost factors.

    Sample :math:`k`'s gradient of a layer :math:`z = W a + b` is :math:`(g_k a_k^T, g_k)`,
    with :math:`g_k` row ``k`` of the pre-activation cotangent ``G`` (N, m) and :math:`a_k`
    row ``k`` of the layer input ``A`` (N, d); its squared norm is
    :math:`\|g_k a_k^T\|_F^2 + \|g_k\|^2 = \|g_k\|^2 (\|a_k\|^2 + 1)`, so that

    .. math::

        n_k = \Big(\sum_l \|g^{(l)}_k\|^2 \big(\|a^{(l)}_k\|^2 + 1\big)\Big)^{1/2},

    one pass over every ``G`` and ``A`` in one kernel call.  Each row's sum of squares
    accumulates in the array dtype (so that it vectorises; float32 rows of up to a few
    thousand entries lose no more than the float32 result keeps), the sum over the
    layers in float64.

    Parameters
    ----------
    Gs, As : sequence of ndarray
        Per layer ``G`` (N, m_l) and ``A`` (N, d_l), all of one dtype (float32 or
        float64) and with ``N`` rows.

    Returns
    -------
    ndarray, shape (N,)
        In the arrays' dtype.

    Raises
    ------
    ValueError
        When the sequences are empty or of different lengths, or an array is not 2-D
        float32/float64 of the common dtype with ``N`` rows (the message names the
        layer and both shapes).

    Examples
    --------
    >>> import numpy as np
    >>> ghost_norms([np.array([[1.0, 2.0], [0.0, 1.0]])], [np.array([[1.0], [3.0]])])
    array([3.16227766, 3.16227766])
    """
    Gs = tuple(Gs)
    As = tuple(As)
    arrays = Gs + As
    if not (Gs and len(Gs) == len(As) and _plain_rows(arrays)):
        Gs, As = _ghost_checked(Gs, As)
        arrays = Gs + As
    if not all(x.flags.writeable for x in arrays):
        # one Numba type for the tuple's items: read-only views of all when one is read-only
        arrays = [x.view() for x in arrays]
        for x in arrays:
            x.flags.writeable = False
        Gs, As = tuple(arrays[: len(Gs)]), tuple(arrays[len(Gs) :])
    out = np.empty(Gs[0].shape[0], dtype=Gs[0].dtype)
    _ghost_norms(Gs, As, out)  # stores the float64 square roots in the arrays' dtype
    return out


def ghost_norms_from_row_squares(X, g_sq, a_sq):
    r""":func:`ghost_norms` from row sums of squares formed elsewhere (in the fused
    forward and backward passes of :func:`structjac.nn.value_and_grad`).

    .. math::

        n_k = \Big(\sum_{l=1}^{L} \|g^{(l)}_k\|^2 \big(\|a^{(l-1)}_k\|^2 + 1\big)\Big)^{1/2},
        \qquad a^{(0)}_k = x_k,

    with ``g_sq[l - 1][k]`` :math:`= \|g^{(l)}_k\|^2` and ``a_sq[l - 2][k]``
    :math:`= \|a^{(l-1)}_k\|^2` for the hidden layers; :math:`\|x_k\|^2` is summed
    here, in the same call.

    Parameters
    ----------
    X : ndarray, shape (N, d)
        The network's input, float32 or float64.
    g_sq : sequence of L ndarrays, shape (N,)
        Per layer the squared norms of the rows of its pre-activation cotangent.
    a_sq : sequence of L - 1 ndarrays, shape (N,)
        Per hidden layer the squared norms of the rows of its output.

    Returns
    -------
    ndarray, shape (N,)
        In ``X``'s dtype.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[1.0], [3.0]])
    >>> ghost_norms_from_row_squares(X, [np.array([5.0, 1.0])], [])
    array([3.16227766, 3.16227766])
    """
    X = _check2("X", X)
    N, dtype = X.shape[0], X.dtype
    g_sq, a_sq = tuple(g_sq), tuple(a_sq)
    if len(g_sq) != len(a_sq) + 1:
        raise ValueError(
            f"{len(g_sq)} layers (g_sq) need {len(g_sq) - 1} hidden-layer row squares "
            f"(a_sq), got {len(a_sq)}"
        )
    for name, seq in (("g_sq", g_sq), ("a_sq", a_sq)):
        for l, v in enumerate(seq):
            if not (
                isinstance(v, np.ndarray)
                and v.shape == (N,)
                and v.dtype == dtype
                and v.flags.c_contiguous
            ):
                raise ValueError(
                    f"{name}[{l}] must be a C-contiguous array of shape ({N},) and dtype "
                    f"{dtype} (X has shape {X.shape}), got {getattr(v, 'shape', None)} "
                    f"{getattr(v, 'dtype', type(v).__name__)}"
                )
    # one Numba type for the tuples' items: a read-only row-square vector is copied
    # (N numbers), since the first item of the a_sq tuple is written
    a_sq = tuple(v if v.flags.writeable else v.copy() for v in a_sq)
    g_sq = tuple(v if v.flags.writeable else v.copy() for v in g_sq)
    out = np.empty(N, dtype)
    _ghost_from_squares(X, g_sq, (np.empty(N, dtype),) + a_sq, out)
    return out


def _plain_rows(arrays):
    """Whether ``arrays`` are C-contiguous 2-D float32/float64 arrays of one dtype and
    one number of rows (the fast path of :func:`ghost_norms`: no copies, no messages)."""
    x0 = arrays[0]
    if not isinstance(x0, np.ndarray) or x0.dtype not in (np.float32, np.float64):
        return False
    dtype, N = x0.dtype, x0.shape[0] if x0.ndim else -1
    for x in arrays:
        if not (
            isinstance(x, np.ndarray)
            and x.ndim == 2
            and x.dtype == dtype
            and x.shape[0] == N
            and x.flags.c_contiguous
        ):
            return False
    return True


def _ghost_checked(Gs, As):
    """:func:`ghost_norms`' inputs checked one by one (a message naming the layer) and
    made C-contiguous."""
    if not Gs or len(Gs) != len(As):
        raise ValueError(
            f"ghost_norms needs one A per G and at least one layer, got {len(Gs)} G and {len(As)} A"
        )
    G0 = _check2("G[0]", Gs[0])
    N, dtype = G0.shape[0], G0.dtype
    Gc, Ac = [], []
    for l, (G, A) in enumerate(zip(Gs, As)):
        G = _check2(f"G[{l}]", G, dtype)
        A = _check2(f"A[{l}]", A, dtype)
        if G.shape[0] != N or A.shape[0] != N:
            raise ValueError(
                f"layer {l}: G {G.shape} and A {A.shape} must both have N = {N} rows "
                "(the rows of G[0])"
            )
        Gc.append(G)
        Ac.append(A)
    return tuple(Gc), tuple(Ac)


def gate_from_output(V, A, activation, square=True, out=None, colsum=None):
    r"""Gate the columns ``V`` (K, N, m) in place by the derivative of ``activation``
    formed from its output ``A`` (N, m) in the same pass, and, with ``square``, return
    :math:`\sum_c V_c^{\odot 2}` (in ``out``) and its column sums (in ``colsum``) as
    :func:`gate_square_sum` does; without ``square`` return None.

    ``activation``: ``"sigmoid"`` (:math:`g' = a(1 - a)`) or ``"tanh"``
    (:math:`g' = (1 + a)(1 - a)`), the formulas of the activations' ``from_output``
    derivatives; no derivative array is written.

    Examples
    --------
    >>> import numpy as np
    >>> V = np.ones((2, 1, 2)); A = np.array([[0.5, 0.25]])
    >>> gate_from_output(V, A, "sigmoid")
    array([[0.125   , 0.0703125]])
    >>> V[0]
    array([[0.25  , 0.1875]])
    """
    if activation not in FROM_OUTPUT:
        raise ValueError(f"activation must be one of {sorted(FROM_OUTPUT)}, got {activation!r}")
    if not (
        isinstance(V, np.ndarray)
        and V.ndim == 3
        and V.dtype in (np.float32, np.float64)
        and V.flags.c_contiguous
    ):
        raise ValueError(
            f"V must be a C-contiguous 3-D float32/float64 array, got "
            f"{getattr(V, 'shape', None)} {getattr(V, 'dtype', type(V).__name__)}"
        )
    shape = V.shape[1:]
    A = _check2("A", A, V.dtype)
    if A.shape != shape:
        raise ValueError(f"A has shape {A.shape}; V {V.shape} needs {shape}")
    if square:
        out = _out(out, shape, V.dtype)
        colsum = _out(colsum, shape[1:], V.dtype)
    else:
        out, colsum = np.empty((0, 0), V.dtype), np.empty(0, V.dtype)
    _gate_from_output(V, A, FROM_OUTPUT[activation], bool(square), out, colsum)
    return out if square else None


def gate_square_sum(V, gp=None, out=None, colsum=None):
    r"""Gate the columns ``V`` by ``gp`` in place and return :math:`\sum_c V_c^{\odot 2}`.

    Parameters
    ----------
    V : ndarray, shape (K, N, m), float32 or float64, C-contiguous
        The columns; overwritten by ``V * gp`` when ``gp`` is given.
    gp : ndarray, shape (N, m), optional
        The activation's derivative (same dtype); None: no gating, ``V`` is not written.
    out : ndarray, shape (N, m), optional
        Where to write the sum (same dtype); a new array by default.
    colsum : ndarray, shape (m,), optional
        Where to write the column sums of the result (same dtype), accumulated in float64.

    Returns
    -------
    ndarray, shape (N, m)
        :math:`Q_{ki} = \sum_c V_{cki}^2` after the gating.

    Raises
    ------
    ValueError
        ``V`` not a C-contiguous 3-D float32/float64 array, or ``gp`` / ``out`` /
        ``colsum`` of another shape or dtype (both shapes named).
    """
    if not (
        isinstance(V, np.ndarray)
        and V.ndim == 3
        and V.dtype in (np.float32, np.float64)
        and V.flags.c_contiguous
    ):
        raise ValueError(
            f"V must be a C-contiguous 3-D float32/float64 array, got "
            f"{getattr(V, 'shape', None)} {getattr(V, 'dtype', type(V).__name__)}"
        )
    shape = V.shape[1:]
    if out is None:
        out = np.empty(shape, dtype=V.dtype)
    elif out.shape != shape or out.dtype != V.dtype or not out.flags.c_contiguous:
        raise ValueError(
            f"out has shape {out.shape} and dtype {out.dtype}; V {V.shape} "
            f"{V.dtype} needs a C-contiguous {shape} {V.dtype}"
        )
    if colsum is None:
        colsum = np.empty(shape[1], dtype=V.dtype)
    elif colsum.shape != shape[1:] or colsum.dtype != V.dtype:
        raise ValueError(
            f"colsum has shape {colsum.shape} and dtype {colsum.dtype}; V "
            f"{V.shape} {V.dtype} needs {shape[1:]} {V.dtype}"
        )
    if gp is None:
        _square_sum(V, out, colsum)
        return out
    if gp.shape != shape or gp.dtype != V.dtype:
        raise ValueError(
            f"gp has shape {gp.shape} and dtype {gp.dtype}; V {V.shape} "
            f"{V.dtype} needs {shape} {V.dtype}"
        )
    _gate_square_sum(V, np.ascontiguousarray(gp), out, colsum)
    return out


#: :func:`outer_gate`'s gates: from the output (``FROM_OUTPUT``), a derivative array, none.
_OUTER_KINDS = {**FROM_OUTPUT, "derivative": 2, None: 3}


def outer_gate(v, w, gate=None, kind=None, square=True, out=None, sq_out=None, colsum=None):
    r"""Form the outer-product columns :math:`V_c = (v_c w^T) \odot g'` and, with
    ``square``, :math:`\sum_c V_c^{\odot 2}` and its column sums, in one pass.

    The columns below a layer of one unit are :math:`v_c w^T` (``v`` of shape (K, N),
    ``w`` the layer's weight row of shape (d,)); the layer below gates them by its
    derivative :math:`g'` (N, d).  This writes the gated columns without forming the
    outer product first (the product, the gating and the squares in one pass).

    Parameters
    ----------
    v : ndarray, shape (K, N), float32 or float64
    w : ndarray, shape (d,), same dtype
    gate : ndarray, shape (N, d), optional
        The activation's output (``kind`` ``"sigmoid"`` or ``"tanh"``: :math:`g'` formed
        from it as :func:`gate_from_output` does) or its derivative (``kind``
        ``"derivative"``); None with ``kind`` None: no gating.
    kind : {"sigmoid", "tanh", "derivative", None}
    square : bool, default True
    out : ndarray, shape (K, N, d), optional
        Where to write the columns (C-contiguous, same dtype); new by default.
    sq_out, colsum : ndarray, shapes (N, d) and (d,), optional
        Where to write :math:`\sum_c V_c^{\odot 2}` and its column sums (float64 sums).

    Returns
    -------
    V : ndarray, shape (K, N, d)
    Q : ndarray, shape (N, d), or None without ``square``

    Examples
    --------
    >>> import numpy as np
    >>> v = np.array([[1.0, 2.0]]); w = np.array([1.0, -1.0])
    >>> A = np.array([[0.5, 0.5], [0.0, 0.5]])
    >>> V, Q = outer_gate(v, w, A, "tanh")
    >>> V
    array([[[ 0.75, -0.75],
            [ 2.  , -1.5 ]]])
    >>> Q
    array([[0.5625, 0.5625],
           [4.    , 2.25  ]])
    """
    if kind not in _OUTER_KINDS:
        raise ValueError(
            f"kind must be one of 'sigmoid', 'tanh', 'derivative' or None, got {kind!r}"
        )
    v = _check2("v", v)
    dt = v.dtype
    if not (isinstance(w, np.ndarray) and w.ndim == 1 and w.dtype == dt):
        raise ValueError(
            f"w must be a 1-D {dt} array, got {getattr(w, 'shape', None)} "
            f"{getattr(w, 'dtype', type(w).__name__)}"
        )
    w = np.ascontiguousarray(w)
    (K, N), d = v.shape, w.shape[0]
    if (gate is None) != (kind is None):
        raise ValueError(f"kind {kind!r} and gate {'None' if gate is None else 'given'} disagree")
    if gate is None:
        gate = np.empty((0, 0), dt)
    else:
        gate = _check2("gate", gate, dt)
        if gate.shape != (N, d):
            raise ValueError(
                f"gate has shape {gate.shape}; v {v.shape} and w {w.shape} need {(N, d)}"
            )
    V = _out(out, (K, N, d), dt)
    if square:
        Q = _out(sq_out, (N, d), dt)
        colsum = _out(colsum, (d,), dt)
    else:
        Q, colsum = np.empty((0, 0), dt), np.empty(0, dt)
    _outer_gate(v, w, gate, _OUTER_KINDS[kind], bool(square), V, Q, colsum)
    return V, (Q if square else None)
