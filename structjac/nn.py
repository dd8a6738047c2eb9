r"""Backpropagation through a multilayer perceptron, from the structured Jacobians.

A network of dense layers :math:`A_l = g_l(A_{l-1} W_l^T + \mathbf 1 b_l^T)`,
:math:`A_0 = X \in \mathbb{F}^{N \times d}`, and a loss :math:`J(y, A_L)`. The gradient is
the product of the chain of Jacobians with the loss row on the left (reverse mode), and
each factor of the chain has a structure (see :mod:`structjac.layers`):

.. math::

    \frac{\partial J}{\partial A_L} = \tfrac1N \mathbf 1^T \operatorname{diag}(\ell')
      \ (\text{1 x } Nm_L), \quad
    \frac{\partial A_l}{\partial Z_l} = \operatorname{diag}(g_l'), \quad
    \frac{\partial Z_l}{\partial W_l} = [I \otimes a^{(k)T}_{l-1}]_k, \quad
    \frac{\partial Z_l}{\partial b_l} = \mathbf 1_N \otimes I, \quad
    \frac{\partial Z_l}{\partial A_{l-1}} = I_N \otimes W_l.

A row times each factor stays a row of :math:`O(Nm)` numbers, and is one fused pass or one
matrix product:

.. math::

    g^T \operatorname{diag}(g') = g \odot g' \ (\text{fused vjp kernel}), \quad
    \operatorname{vec}_r(G)^T \frac{\partial Z}{\partial W} = \operatorname{vec}_r(G^T A_{l-1}), \quad
    \operatorname{vec}_r(G)^T (\mathbf 1_N \otimes I) = \mathbf 1^T G, \quad
    \operatorname{vec}_r(G)^T (I_N \otimes W) = \operatorname{vec}_r(G W).

:func:`value_and_grad` runs exactly these products (``method="fused"``) or builds the
structures and multiplies them by the rule table (``method="structures"``, the reference).
The fused path makes, per layer, one BLAS call and one pass over the :math:`N \times m`
array each way (:mod:`structjac.kernels.layer`):

* forward: :math:`Z = A_{l-1} W_l^T` (BLAS, into a workspace buffer), then bias and
  activation in one pass, in place for sigmoid and tanh (their derivatives come from the
  saved output, the lecture's :math:`a(1-a)` and :math:`(1+a)(1-a)`) and with no
  activation; relu, leaky_relu and softplus keep :math:`Z + b` and write :math:`A`;
* backward: :math:`G \odot g'` written over :math:`G`, fused with the bias gradient
  :math:`\mathbf 1^T G` (chunked sums, float64 across chunks); :math:`G^T A_{l-1}` and
  :math:`G W` by BLAS.  Below a layer of one unit :math:`G W = g w^T` is an outer
  product and is formed inside the next vjp pass instead.

The element-wise passes run serially by default (``parallel_passes``): between two
multi-threaded BLAS calls, parallel passes compete with BLAS's spinning threads.
No :math:`N \times N` (or :math:`Nm \times Nd`) array is ever formed. float32 stays
float32.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import numpy as np

from . import ops as _ops
from . import kernels as _kernels
from .kernels import layer as _layer
from .layers import activation_name, get_activation
from .structures import (
    Dense,
    Identity,
    Kronecker,
    StackedKronecker,
)
from .structures._validation import format_nbytes

__all__ = ["LOSSES", "MLP", "GradResult", "Workspace", "value_and_grad", "forward", "get_loss"]

#: Loss names accepted by :class:`MLP` and :func:`value_and_grad`.
LOSSES = {"mse": _ops.mse, "bce": _ops.bce, "bce_with_logits": _ops.bce_with_logits}


def get_loss(loss):
    """Return the loss object for a name in :data:`LOSSES` or a :class:`structjac.ops.Loss`."""
    if isinstance(loss, str):
        try:
            return LOSSES[loss]
        except KeyError:
            raise ValueError(f"unknown loss {loss!r}; valid names are {', '.join(map(repr, LOSSES))}") from None
    if isinstance(loss, _ops.Loss):
        return loss
    raise TypeError(f"loss must be a name or a structjac.ops.Loss, got {loss!r}")


@dataclass
class GradResult:
    """What :func:`value_and_grad` returns: ``(loss, grads)`` unpacks like JAX's result.

    Attributes
    ----------
    loss : float
        The reduced loss (a scalar of the input dtype).
    grads : list of (ndarray, ndarray)
        ``(dJ/dW_l, dJ/db_l)`` per layer, shapes of ``W_l`` and ``b_l``.
    jacobians : list of dict, optional
        Per layer, the structures of the chain (``return_jacobians=True``), plus
        ``"loss"``: the loss row.
    per_sample : list of (ndarray, ndarray), optional
        Per layer, ``(N, m, d)`` and ``(N, m)``: gradients of each sample's loss
        :math:`J_0^{(k)}` (``per_sample=True``); their mean is ``grads`` for ``"mean"``.
    """

    loss: object
    grads: list
    jacobians: list | None = None
    per_sample: list | None = None
    info: dict = field(default_factory=dict)

    def __iter__(self):
        yield self.loss
        yield self.grads

    def explain(self) -> str:
        """A table of the chain's structures, their stored bytes and their dense size."""
        if self.jacobians is None:
            return "call value_and_grad(..., return_jacobians=True) to keep the structures"
        lines = [f"{'factor':<26} {'structure':<17} {'shape':>24} {'stored':>10} {'dense':>10}"]
        for entry in self.jacobians:
            for name, J in entry.items():
                lines.append(
                    f"{name:<26} {type(J).__name__:<17} {str(J.shape):>24} "
                    f"{format_nbytes(J.nbytes):>10} {format_nbytes(J.dense_nbytes):>10}"
                )
        return "\n".join(lines)


class Workspace:
    """Buffers that :func:`value_and_grad` reuses from one call to the next.

    A training loop calls ``value_and_grad`` on batches of one shape many times; every
    call needs the same large arrays (each layer's activations and the cotangents of the
    backward pass, :math:`O(N m)` numbers each). Allocating them afresh costs a page
    fault per 4 kB page on first touch, which on large batches is as slow as the
    arithmetic. A workspace keeps them: the second call with the same shapes allocates
    no large array.

    :class:`MLP` keeps one per network. A result computed in a workspace shares no memory
    with it (the gradients are fresh arrays), except what ``return_jacobians=True`` and
    ``per_sample=True`` keep, which therefore never use the workspace. A workspace is not
    thread-safe: give each thread its own (or pass ``workspace=None``).

    Examples
    --------
    >>> import numpy as np
    >>> from structjac.nn import Workspace
    >>> ws = Workspace()
    >>> a = ws.get("Z1", (4, 3), np.float32)
    >>> a is ws.get("Z1", (4, 3), np.float32)
    True
    >>> ws.nbytes
    48
    """

    def __init__(self):
        self._buffers = {}

    def get(self, name, shape, dtype) -> np.ndarray:
        """An uninitialised array for ``name``, reused when shape and dtype are unchanged."""
        shape, dtype = tuple(shape), np.dtype(dtype)
        buffer = self._buffers.get(name)
        if buffer is None or buffer.shape != shape or buffer.dtype != dtype:
            buffer = self._buffers[name] = np.empty(shape, dtype=dtype)
        return buffer

    @property
    def nbytes(self) -> int:
        """Bytes held."""
        return sum(b.nbytes for b in self._buffers.values())

    def clear(self):
        """Release every buffer."""
        self._buffers.clear()


class _Fresh:
    """The no-workspace allocator: a new array each time."""

    @staticmethod
    def get(name, shape, dtype):
        return np.empty(shape, dtype=dtype)


def _check(params, X, y, activations):
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"X must be (N, d), got shape {X.shape}")
    if X.dtype not in (np.float32, np.float64):
        X = X.astype(np.float64)
    dtype = X.dtype
    params = [(np.asarray(W, dtype=dtype), np.asarray(b, dtype=dtype)) for W, b in params]
    if len(activations) != len(params):
        raise ValueError(f"{len(params)} layers but {len(activations)} activations")
    d = X.shape[1]
    for l, (W, b) in enumerate(params):
        if W.ndim != 2 or W.shape[1] != d or b.shape != (W.shape[0],):
            raise ValueError(
                f"layer {l}: W of shape {W.shape} and b of shape {b.shape} do not fit an input of width {d}"
            )
        d = W.shape[0]
    if y is not None:
        y = np.asarray(y, dtype=dtype)
        if y.size != X.shape[0] * d:
            raise ValueError(f"y of shape {y.shape} does not fit the output ({X.shape[0]}, {d})")
        y = y.reshape(X.shape[0], d)
    return params, X, y, [get_activation(a) for a in activations]


def _fused_activation(op):
    """``(name, params)`` of the fused layer kernel for ``op`` (None: the identity), or
    None when ``op`` has none (then the op's own kernels are used)."""
    if op is None:
        return "identity", ()
    return op.layer_activation


def _forward(params, X, acts, buffers=_Fresh):
    """Return the saved values per layer: (input A_{l-1}, pre-activation Z_l or None, output A_l).

    Per layer one BLAS call into the buffer ``Z`` and one fused pass (bias + activation):
    in place in ``Z`` when the backward pass needs only the output (sigmoid, tanh, no
    activation), else ``Z += b`` kept and the output written to a second buffer.
    """
    saved = []
    A = X
    for l, ((W, b), op) in enumerate(zip(params, acts)):
        Z = buffers.get(f"Z{l}", (A.shape[0], W.shape[0]), A.dtype)
        np.matmul(A, W.T, out=Z)
        fused = _fused_activation(op)
        if fused is None:                                  # an op without a fused kernel
            Z += b
            if isinstance(op, _ops.OutputUnaryOp):
                out, keep_z = op(Z, out=Z), None           # derivative from the output
            else:
                out, keep_z = op(Z, out=buffers.get(f"A{l}", Z.shape, Z.dtype)), Z
        else:
            name, p = fused
            if name == "identity" or _layer.ACTIVATIONS[name]:
                out, keep_z = _layer.bias_activation(Z, b, name, p), None
            else:                                          # g' needs z: keep Z + b
                out = _layer.bias_activation(Z, b, name, p,
                                             out=buffers.get(f"A{l}", Z.shape, Z.dtype))
                keep_z = Z
        saved.append((A, keep_z, out))
        A = out
    return saved


def forward(params, X, activations):
    """Return the network's output :math:`A_L` for ``X`` of shape ``(N, d)``.

    Examples
    --------
    >>> import numpy as np
    >>> from structjac import nn
    >>> params = [(np.eye(2), np.zeros(2))]
    >>> nn.forward(params, np.array([[0.0, 1.0]]), ["relu"])
    array([[0., 1.]])
    """
    params, X, _, acts = _check(params, X, None, activations)
    return _forward(params, X, acts)[-1][2]


def _activation_vjp_bias_grad(op, Z, A, G):
    """G * g'(Z) written over G, and the bias gradient 1^T G, in one fused pass; g' from
    the output A for sigmoid and tanh (the lecture's forms)."""
    fused = _fused_activation(op)
    if fused is not None:
        name, p = fused
        S = A if _layer.ACTIVATIONS[name] else Z
        return G, _layer.activation_vjp_bias_grad(G, S, name, p)
    if isinstance(op, _ops.OutputUnaryOp):
        G = op.vjp_from_output(A, G, out=G)
    else:
        G = op.vjp(Z, G, out=G)
    return G, G.sum(axis=0)


def value_and_grad(params, X, y, activations, loss="bce", *, reduction="mean", method="fused",
                   return_jacobians=False, per_sample=False, workspace=None,
                   parallel_passes=False) -> GradResult:
    r"""The loss of an MLP on a batch and its gradient with respect to every ``W`` and ``b``.

    Parameters
    ----------
    params : list of (W, b)
        ``W_l`` of shape ``(m_l, m_{l-1})``, ``b_l`` of shape ``(m_l,)``.
    X : array_like, shape (N, d)
        float32 stays float32; anything else but float64 becomes float64.
    y : array_like, shape (N,) or (N, m_L)
        Targets.
    activations : list of str, op or None
        One per layer: ``"sigmoid"``, ``"tanh"``, ``"relu"``, ``"leaky_relu"``,
        ``"softplus"`` or None (ops such as ``ReLU(at_zero=0.0)`` too).
    loss : {"bce", "mse", "bce_with_logits"} or Loss
        ``bce_with_logits`` reads the last layer's output as logits (use no activation).
    reduction : {"mean", "sum"}
        ``"mean"`` is the lecture's :math:`\frac1N\sum_k J_0^{(k)}`.
    method : {"fused", "structures"}
        ``"fused"``: the row-times-structure products done in place with the fused
        kernels; ``"structures"``: the structures built and multiplied by the rule table.
    return_jacobians : bool
        Keep each layer's structures (``result.jacobians``, ``result.explain()``).
    per_sample : bool
        Also return each sample's gradient (the lecture's rows of :math:`\partial a/\partial w`).
    workspace : Workspace, optional
        Reuse its buffers for the activations and cotangents (``MLP`` passes its own).
        Not used with ``return_jacobians``, ``per_sample`` or ``method="structures"``,
        whose results keep those arrays.
    parallel_passes : bool, default False
        Run the element-wise passes (bias + activation, loss, vjp + bias gradient) on
        Numba's threads.  Off by default: they sit between multi-threaded BLAS calls,
        and OpenBLAS's idle threads spin after each call as Numba's OpenMP threads do
        after each kernel, so on shared cores the two slow each other down (measured
        on 2 cores: the 32-64-64-1 step 30 % slower with parallel passes).  Worth
        turning on with a single-threaded BLAS or a non-spinning threading layer.

    Returns
    -------
    GradResult
        Unpacks as ``loss, grads``.

    Examples
    --------
    >>> import numpy as np
    >>> from structjac import nn
    >>> rng = np.random.default_rng(0)
    >>> net = nn.MLP([3, 4, 1], ["tanh", "sigmoid"], loss="bce")
    >>> params = net.init(rng)
    >>> X = rng.standard_normal((8, 3)); y = (rng.random(8) > 0.5).astype(float)
    >>> loss, grads = net.value_and_grad(params, X, y)
    >>> [g[0].shape for g in grads]
    [(4, 3), (1, 4)]
    >>> _, ref = net.value_and_grad(params, X, y, method="structures")
    >>> bool(all(np.allclose(g[0], r[0]) and np.allclose(g[1], r[1]) for g, r in zip(grads, ref)))
    True
    """
    if type(X).__module__.startswith("dask.") or type(y).__module__.startswith("dask."):
        from . import _dask  # X, y dask arrays: chunk by chunk, lazily
        return _dask.nn_value_and_grad(**{k: v for k, v in locals().items() if k != "_dask"})
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
    if method not in ("fused", "structures"):
        raise ValueError(f"method must be 'fused' or 'structures', got {method!r}")
    params, X, y, acts = _check(params, X, y, activations)
    lossf = get_loss(loss)
    keeps_arrays = return_jacobians or per_sample or method == "structures"
    buffers = _Fresh if workspace is None or keeps_arrays else workspace
    with contextlib.nullcontext() if parallel_passes else _kernels.serial_only():
        return _value_and_grad(params, X, y, acts, lossf, reduction, method,
                               return_jacobians, per_sample, buffers)


def _value_and_grad(params, X, y, acts, lossf, reduction, method, return_jacobians,
                    per_sample, buffers):
    saved = _forward(params, X, acts, buffers)
    out = saved[-1][2]
    value = lossf(y, out, reduction=reduction)
    N = X.shape[0]
    if method == "structures":
        grads, jacs, Gs = _backward_structures(params, saved, acts, lossf, y, out, reduction)
    else:
        grads, jacs, Gs = _backward_fused(params, saved, acts, lossf, y, out, reduction,
                                          return_jacobians, per_sample, buffers)
    result = GradResult(loss=value, grads=grads, jacobians=jacs if return_jacobians else None)
    if per_sample:
        scale = N if reduction == "mean" else 1
        result.per_sample = [
            (np.einsum("ki,kj->kij", G, A_prev) * scale, G * scale)
            for G, (A_prev, _, _) in zip(Gs, saved)
        ]
    return result


def _layer_structures(W, A_prev, Z, A, op):
    N, d = A_prev.shape
    m = W.shape[0]
    dtype = A_prev.dtype
    if op is None:
        da_dz = Identity(N * m, dtype=dtype)
    elif isinstance(op, _ops.OutputUnaryOp):
        da_dz = op.jacobian_from_output(A)
    else:
        da_dz = op.jacobian(Z)
    return {
        "da/dz": da_dz,
        "dz/dW": StackedKronecker(A_prev, m, copy=False),
        "dz/db": Kronecker(Dense(np.ones((N, 1), dtype=dtype)), Identity(m, dtype=dtype)),
        "dz/dx": Kronecker(Identity(N, dtype=dtype), Dense(W)),
    }


def _backward_structures(params, saved, acts, lossf, y, out, reduction):
    """Reverse mode by the rule table: a 1 x n row times each structure, left to right."""
    row = lossf.jacobian(y, out, reduction=reduction)          # BlockRow 1 x N*m_L
    L = len(params)
    grads = [None] * L
    jacs = [None] * L
    Gs = [None] * L
    for l in range(L - 1, -1, -1):
        W, _ = params[l]
        A_prev, Z, A = saved[l]
        S = _layer_structures(W, A_prev, Z, A, acts[l])
        row = row @ S["da/dz"]                                 # BlockRow @ Diagonal -> BlockRow
        Gs[l] = np.asarray(row.to_dense()).reshape(A.shape)
        gW = row @ S["dz/dW"]                                  # -> vec(G^T A_prev)
        gb = row @ S["dz/db"]                                  # -> 1^T G
        grads[l] = (gW.to_dense().reshape(W.shape), gb.to_dense().reshape(W.shape[0]))
        if l:
            row = row @ S["dz/dx"]                             # -> vec(G W)
        if l == L - 1:
            S = {"dJ/da (loss row)": lossf.jacobian(y, out, reduction=reduction), **S}
        jacs[l] = {f"layer {l + 1} {k}": v for k, v in S.items()}
    return grads, jacs, Gs


def _backward_fused(params, saved, acts, lossf, y, out, reduction, keep_jacobians, keep_G,
                    buffers=_Fresh):
    """The same products, in place: per layer one fused pass (vjp + bias gradient) and
    BLAS for the weight gradient and the next cotangent."""
    L = len(params)
    grads = [None] * L
    jacs = [None] * L if keep_jacobians else None
    Gs = [None] * L
    G = lossf.grad(y, out, reduction=reduction,                # the loss row, (N, m_L)
                   out=buffers.get(f"G{L - 1}", out.shape, out.dtype))
    outer = None           # (g, W): G = g W, an outer product not yet formed
    for l in range(L - 1, -1, -1):
        W, _ = params[l]
        A_prev, Z, A = saved[l]
        if keep_jacobians:
            S = _layer_structures(W, A_prev, Z, A, acts[l])
            if l == L - 1:
                S = {"dJ/da (loss row)": lossf.jacobian(y, out, reduction=reduction), **S}
            jacs[l] = {f"layer {l + 1} {k}": v for k, v in S.items()}
        # row @ diag(g') written over G (G is ours: from the loss or G @ W), fused with
        # row @ (1_N (x) I) = 1^T G, the bias gradient
        fused = _fused_activation(acts[l])
        if outer is not None and fused is not None:
            # G = g W (one unit above) formed inside the vjp pass
            name, p = fused
            G, gb = _layer.outer_activation_vjp_bias_grad(
                outer[0], outer[1], A if _layer.ACTIVATIONS[name] else Z, name, p,
                out=buffers.get(f"G{l}", A.shape, A.dtype))
        else:
            if outer is not None:
                G = np.multiply(outer[0], outer[1], out=buffers.get(f"G{l}", A.shape, A.dtype))
            G, gb = _activation_vjp_bias_grad(acts[l], Z, A, G)
        outer = None
        if keep_G:
            Gs[l] = G
        gW = G.T @ A_prev                                      # row @ dZ/dW: vec(G^T A_prev)
        grads[l] = (gW, gb)
        if l:
            # row @ (I_N (x) W): G W.  With one unit, the outer product g w^T: left to
            # the next vjp pass (BLAS takes ~5x a memory pass for k = 1)
            if G.shape[1] == 1:
                outer = (G, W)
            else:
                G = np.matmul(G, W, out=buffers.get(f"G{l - 1}", A_prev.shape, G.dtype))
    return grads, jacs, Gs


class MLP:
    r"""A multilayer perceptron described by layer sizes, activations and a loss.

    Parameters
    ----------
    sizes : sequence of int
        ``[d, m_1, ..., m_L]``.
    activations : str or sequence
        One per layer (a single name applies to every layer).
    loss : str or Loss, default "bce"
    dtype : dtype, default float32

    Examples
    --------
    >>> import numpy as np
    >>> from structjac.nn import MLP
    >>> net = MLP([32, 64, 64, 1], ["sigmoid", "tanh", "sigmoid"], loss="bce")
    >>> net
    MLP(32-64-64-1, sigmoid/tanh/sigmoid, loss=bce, float32)
    >>> params = net.init(np.random.default_rng(0))
    >>> params[0][0].shape, params[0][0].dtype
    ((64, 32), dtype('float32'))
    """

    def __init__(self, sizes, activations="sigmoid", loss="bce", dtype=np.float32):
        self.sizes = [int(s) for s in sizes]
        if len(self.sizes) < 2:
            raise ValueError("an MLP needs at least an input and an output size")
        if isinstance(activations, str) or activations is None:
            activations = [activations] * (len(self.sizes) - 1)
        self.activations = [get_activation(a) for a in activations]
        if len(self.activations) != len(self.sizes) - 1:
            raise ValueError(f"{len(self.sizes) - 1} layers but {len(self.activations)} activations")
        self.loss = get_loss(loss)
        self.dtype = np.dtype(dtype)
        #: The buffers :meth:`value_and_grad` reuses between calls (see :class:`Workspace`).
        self.workspace = Workspace()

    def init(self, rng=None):
        """Glorot-uniform weights, zero biases, in ``self.dtype``."""
        rng = np.random.default_rng(rng)
        params = []
        for d, m in zip(self.sizes[:-1], self.sizes[1:]):
            lim = np.sqrt(6.0 / (d + m))
            params.append((rng.uniform(-lim, lim, (m, d)).astype(self.dtype),
                           np.zeros(m, dtype=self.dtype)))
        return params

    def forward(self, params, X):
        """The output :math:`A_L` for ``X`` of shape ``(N, d)``."""
        return forward(params, X, self.activations)

    def value_and_grad(self, params, X, y, **kwargs) -> GradResult:
        """:func:`value_and_grad` with this network's activations, loss and workspace."""
        kwargs.setdefault("workspace", self.workspace)
        return value_and_grad(params, X, y, self.activations, self.loss, **kwargs)

    def explain(self, params, X, y) -> str:
        """The table of the structures backpropagation multiplies, for this batch."""
        return self.value_and_grad(params, X, y, return_jacobians=True).explain()

    def __repr__(self):
        acts = "/".join(activation_name(a) for a in self.activations)
        return (f"MLP({'-'.join(map(str, self.sizes))}, {acts}, loss={self.loss.name}, "
                f"{self.dtype})")
