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
structures with :func:`structjac.layers.batch_structures` and multiplies them by the rule
table (``method="structures"``, the reference; the same products as
:func:`structjac.chain.chain` of the whole chain with the loss row on the left).  What an activation
needs (its fused kernel, whether :math:`g'` comes from the output) is asked of the op once,
in :mod:`structjac.layers`; this module has no case per activation.
The fused path makes, per layer, one BLAS call and one pass over the :math:`N \times m`
array each way (:mod:`structjac.kernels.layer`):

* forward: :math:`Z = A_{l-1} W_l^T` (BLAS, into a workspace buffer), then bias and
  activation in one pass, in place for sigmoid and tanh (their derivatives come from the
  saved output, :math:`a(1-a)` and :math:`(1+a)(1-a)`) and with no
  activation; relu, leaky_relu and softplus keep :math:`Z + b` and write :math:`A`;
* backward: :math:`G \odot g'` written over :math:`G`, fused with the bias gradient
  :math:`\mathbf 1^T G` (chunked sums, float64 across chunks); :math:`G^T A_{l-1}` and
  :math:`G W` by BLAS.  Below a layer of one unit :math:`G W = g w^T` is an outer
  product and is formed inside the next vjp pass instead.

The element-wise passes run serially by default (``parallel_passes``): between two
multi-threaded BLAS calls, parallel passes compete with BLAS's spinning threads.
No :math:`N \times N` (or :math:`Nm \times Nd`) array is ever formed.

dtypes: float32 stays float32 and float64 float64; float16 is promoted to float32 and
integers to float64 (``structjac.layers.float_dtype``); complex and string arrays are a
``TypeError`` (they would be truncated or parsed).  An :class:`MLP` casts the data and the
parameters to its own ``dtype``: a float32 network given float64 data computes and returns
float32.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, DTypeLike
from scipy.sparse.linalg import LinearOperator

from . import _curvature, _extras
from . import kernels as _kernels
from . import ops as _ops
from .layers import (
    _Activation,
    activation_name,
    batch_structures,
    float_dtype,
    get_activation,
    real_array,
)
from .structures._validation import format_nbytes

__all__ = [
    "LOSSES",
    "MLP",
    "REDUCTIONS",
    "GradResult",
    "Workspace",
    "forward",
    "gauss_newton_step",
    "get_loss",
    "ggn",
    "value_and_grad",
]

#: Loss names accepted by :class:`MLP` and :func:`value_and_grad`.
LOSSES = {
    "mse": _ops.mse,
    "bce": _ops.bce,
    "bce_with_logits": _ops.bce_with_logits,
    "cross_entropy": _ops.cross_entropy,
}


def get_loss(loss: str | _ops.Loss) -> _ops.Loss:
    """Return the loss object for a name in :data:`LOSSES` or a :class:`structjac.ops.Loss`."""
    if isinstance(loss, str):
        try:
            return LOSSES[loss]
        except KeyError:
            raise ValueError(
                f"unknown loss {loss!r}; valid names are {', '.join(map(repr, LOSSES))}"
            ) from None
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
    extras : dict
        The quantities asked for by ``extras=`` (see ``structjac._extras``), by name;
        empty when none were asked for.
    """

    loss: object
    grads: list
    jacobians: list | None = None
    per_sample: list | None = None
    info: dict = field(default_factory=dict)
    extras: dict = field(default_factory=dict)

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
                    f"{name:<26} {type(J).__name__:<17} {J.shape!s:>24} "
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

    def get(self, name: str, shape: Sequence[int], dtype: DTypeLike) -> np.ndarray:
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

    def clear(self) -> None:
        """Release every buffer."""
        self._buffers.clear()


class _Fresh:
    """The no-workspace allocator: a new array each time."""

    @staticmethod
    def get(name, shape, dtype):
        return np.empty(shape, dtype=dtype)


def _check_params(params):
    if isinstance(params, np.ndarray) or not hasattr(params, "__len__"):
        raise TypeError(f"params must be a list of (W, b) pairs, got {type(params).__name__}")
    if len(params) == 0:
        raise ValueError("params is empty: a network needs at least one (W, b) layer")
    out = []
    for l, pair in enumerate(params):
        try:
            W, b = pair
        except (TypeError, ValueError):
            raise TypeError(f"layer {l}: params[{l}] must be a pair (W, b)") from None
        W = real_array(W, f"layer {l}: W")
        b = real_array(b, f"layer {l}: b")
        out.append((W, b))
    return out


def _check(params, X, y, activations, dtype=None, labels=False):
    """Validate the network's inputs once, at the public boundary.

    ``dtype`` None: the computation dtype is ``structjac.layers.float_dtype`` of
    ``X`` (float16 becomes float32, integers float64); the parameters are cast to it.
    ``dtype`` given (:class:`MLP`): ``X``, ``y`` and the parameters are cast to it.
    """
    X = real_array(X, "X")
    if X.ndim != 2:
        raise ValueError(f"X must be (N, d), got shape {X.shape}")
    if X.shape[0] == 0:
        raise ValueError(
            f"X of shape {X.shape} is a batch of 0 samples; the loss and its "
            "gradient need at least one"
        )
    params = _check_params(params)
    dtype = float_dtype(X.dtype) if dtype is None else np.dtype(dtype)
    X = X.astype(dtype, copy=False)
    params = [(W.astype(dtype, copy=False), b.astype(dtype, copy=False)) for W, b in params]
    if len(activations) != len(params):
        raise ValueError(f"{len(params)} layers but {len(activations)} activations")
    N, d = X.shape
    for l, (W, b) in enumerate(params):
        if W.ndim != 2 or W.shape[1] != d or b.shape != (W.shape[0],):
            raise ValueError(
                f"layer {l}: W of shape {W.shape} and b of shape {b.shape} do not fit an input of width {d}"
            )
        d = W.shape[0]
    if y is not None:
        y = real_array(y, "y")
        if labels and y.shape == (N,) and y.dtype.kind in "iu":
            # integer class labels (cross-entropy): kept as integers, not cast to dtype
            return params, X, y, [_Activation(get_activation(a)) for a in activations]
        if not (y.shape == (N, d) or (d == 1 and y.shape == (N,))):
            expected = f"({N},) or ({N}, 1)" if d == 1 else f"({N}, {d})"
            raise ValueError(
                f"y of shape {y.shape} does not fit the output of shape ({N}, {d}): "
                f"expected {expected}"
            )
        y = y.astype(dtype, copy=False).reshape(N, d)
    return params, X, y, [_Activation(get_activation(a)) for a in activations]


def _forward(params, X, acts, buffers=_Fresh, row_squares=None):
    r"""Return the saved values per layer: (input A_{l-1}, pre-activation Z_l or None, output A_l).

    Per layer one BLAS call into the buffer ``Z`` and one fused pass (bias + activation):
    in place in ``Z`` when the backward pass needs only the output (sigmoid, tanh, no
    activation), else ``Z += b`` kept and the output written to a second buffer.
    ``row_squares``, a list, receives in the same passes the row sums of squares
    :math:`\|a_k\|^2` of each hidden layer's output (the inputs of layers 2 to L:
    the ghost norms' factors).
    """
    saved = []
    A = X
    L = len(params)
    for l, ((W, b), act) in enumerate(zip(params, acts)):
        Z = buffers.get(f"Z{l}", (A.shape[0], W.shape[0]), A.dtype)
        np.matmul(A, W.T, out=Z)
        rowsq = None
        if row_squares is not None and l < L - 1:
            rowsq = buffers.get(f"asq{l}", (A.shape[0],), A.dtype)
            row_squares.append(rowsq)
        out, keep_z = act.forward(
            Z, b, lambda l=l, Z=Z: buffers.get(f"A{l}", Z.shape, Z.dtype), rowsq
        )
        saved.append((A, keep_z, out))
        A = out
    return saved


def forward(
    params: Sequence[tuple[ArrayLike, ArrayLike]],
    X: ArrayLike,
    activations: Sequence[str | _ops.UnaryOp | None],
) -> np.ndarray:
    """Return the network's output :math:`A_L` for ``X`` of shape ``(N, d)``.

    Computed in ``structjac.layers.float_dtype`` of ``X``: float32 stays float32,
    float16 becomes float32, integers float64; complex or string arrays are a
    ``TypeError``.

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


#: Reductions :func:`value_and_grad` accepts: those of the losses that give a scalar.
REDUCTIONS = ("mean", "sum", "elementwise_mean")


@dataclass(frozen=True)
class _Options:
    """The keyword options of :func:`value_and_grad`, validated once."""

    reduction: str = "mean"
    method: str = "fused"
    return_jacobians: bool = False
    per_sample: bool = False
    workspace: object = None
    parallel_passes: bool = False
    # extras hook: the names asked for and their options (validated by structjac._extras)
    extras: tuple = ()
    mc_samples: int = 1
    seed: object = None
    max_norm: object = None

    def __post_init__(self):
        if self.reduction not in REDUCTIONS:
            extra = (
                "; 'none' gives a vector of losses, which has no single gradient"
                if self.reduction == "none"
                else ""
            )
            raise ValueError(
                f"reduction must be one of {', '.join(map(repr, REDUCTIONS))}, "
                f"got {self.reduction!r}{extra}"
            )
        if self.method not in ("fused", "structures"):
            raise ValueError(f"method must be 'fused' or 'structures', got {self.method!r}")
        if self.workspace is not None and not isinstance(self.workspace, Workspace):
            raise TypeError(f"workspace must be a Workspace or None, got {self.workspace!r}")

    @property
    def keeps_arrays(self) -> bool:
        """Whether the result keeps arrays of the pass (then no workspace is used)."""
        return self.return_jacobians or self.per_sample or self.method == "structures"

    def buffers(self):
        return _Fresh if self.workspace is None or self.keeps_arrays else self.workspace

    def as_keywords(self) -> dict:
        """The options as the keywords of :func:`value_and_grad` (e.g. for the dask path)."""
        return {option.name: getattr(self, option.name) for option in fields(self)}

    def per_sample_scale(self, y_hat) -> int:
        """The reduction's weight undone: per-sample gradients are those of :math:`J_0^{(k)}`."""
        return {"mean": y_hat.shape[0], "sum": 1, "elementwise_mean": y_hat.size}[self.reduction]


def value_and_grad(
    params: Sequence[tuple[ArrayLike, ArrayLike]],
    X: ArrayLike,
    y: ArrayLike,
    activations: Sequence[str | _ops.UnaryOp | None],
    loss: str | _ops.Loss = "bce",
    *,
    reduction: str = "mean",
    method: str = "fused",
    return_jacobians: bool = False,
    per_sample: bool = False,
    workspace: "Workspace | None" = None,
    parallel_passes: bool = False,
    dtype: DTypeLike | None = None,
    extras: Sequence[str] = (),
    mc_samples: int = 1,
    seed: "int | np.random.Generator | np.random.SeedSequence | None" = None,
    max_norm: float | None = None,
) -> GradResult:
    r"""The loss of an MLP on a batch and its gradient with respect to every ``W`` and ``b``.

    Parameters
    ----------
    params : list of (W, b)
        ``W_l`` of shape ``(m_l, m_{l-1})``, ``b_l`` of shape ``(m_l,)``; at least one layer.
    X : array_like, shape (N, d)
        ``N >= 1`` samples of real numbers (complex or string arrays are a ``TypeError``).
        A ``dask.array.Array`` chunked along the batch (with ``y`` chunked alike) gives a
        lazy result computed chunk by chunk, ``extras`` included (see the how-to "Beyond
        one machine: Dask").
    y : array_like, shape (N, m_L), or (N,) when m_L = 1
        Targets; any other shape is a ``ValueError``.
    activations : list of str, op or None
        One per layer: ``"sigmoid"``, ``"tanh"``, ``"relu"``, ``"leaky_relu"``,
        ``"softplus"`` or None (ops such as ``ReLU(at_zero=0.0)`` too).
    loss : {"bce", "mse", "bce_with_logits", "cross_entropy"} or Loss
        ``bce_with_logits`` and ``cross_entropy`` read the last layer's output as logits
        (use no activation); ``cross_entropy`` takes integer labels of shape ``(N,)`` or
        target rows of the output's shape.
    reduction : {"mean", "sum", "elementwise_mean"}
        As the losses define them: ``"mean"`` is
        :math:`\frac1N\sum_k J_0^{(k)}`, ``"elementwise_mean"`` divides the sum by
        :math:`N m_L` instead (the same as ``"mean"`` when :math:`m_L = 1`).
    method : {"fused", "structures"}
        ``"fused"``: the row-times-structure products done in place with the fused
        kernels; ``"structures"``: the structures built and multiplied by the rule table.
    return_jacobians : bool
        Keep each layer's structures (``result.jacobians``, ``result.explain()``).
    per_sample : bool
        Also return each sample's gradient (the rows of :math:`\partial a/\partial w`).
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
    dtype : dtype, optional
        The dtype to compute in; ``X``, ``y`` and the parameters are cast to it (what
        :class:`MLP` passes).  Default: ``structjac.layers.float_dtype`` of ``X``
        (float32 and float64 kept, float16 promoted to float32, integers to float64),
        the parameters cast to it.
    extras : sequence of str, default ()
        Per-sample statistics and curvature computed in the same backward pass, returned
        in ``result.extras`` by name: ``"grad_norms"``, ``"sum_grad_squared"``,
        ``"variance"``, ``"clipped_grad"``, ``"diag_ggn"``, ``"diag_ggn_mc"``,
        ``"kflr"``, ``"kfac"``, ``"diag_hessian"`` (see ``structjac._extras``).
    mc_samples : int, default 1
        Monte-Carlo samples of ``"diag_ggn_mc"`` and ``"kfac"``.
    seed : int, Generator or None
        Their random numbers (``numpy.random.default_rng(seed)``).
    max_norm : float, optional
        The per-sample clipping norm of ``"clipped_grad"`` (required by it).

    Returns
    -------
    GradResult
        Unpacks as ``loss, grads``; the loss and gradients are in the computation dtype.

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
    lossf = get_loss(loss)
    # extras hook: names and options validated up front, before any computation
    extras = _extras.validate(extras, lossf, activations, mc_samples=mc_samples, max_norm=max_norm)
    opts = _Options(
        reduction=reduction,
        method=method,
        return_jacobians=return_jacobians,
        per_sample=per_sample,
        workspace=workspace,
        parallel_passes=parallel_passes,
        extras=extras,
        mc_samples=mc_samples,
        seed=seed,
        max_norm=max_norm,
    )
    if type(X).__module__.startswith("dask.") or type(y).__module__.startswith("dask."):
        from . import _dask  # X, y dask arrays: chunk by chunk, lazily

        if dtype is not None:
            X, y = X.astype(dtype), y.astype(dtype)
        return _dask.nn_value_and_grad(
            params,
            X,
            y,
            activations,
            loss,
            **opts.as_keywords(),
            in_memory=value_and_grad,
            result_type=GradResult,
        )
    params, X, y, acts = _check(
        params, X, y, activations, dtype, labels=isinstance(lossf, _ops.CrossEntropy)
    )
    with contextlib.nullcontext() if opts.parallel_passes else _kernels.serial_only():
        return _value_and_grad(params, X, y, acts, lossf, opts)


def _value_and_grad(params, X, y, acts, lossf, opts):
    buffers = opts.buffers()
    # the ghost norms' row sums of squares, formed inside the fused passes
    ghost = opts.method == "fused" and bool(_extras.GHOST & set(opts.extras))
    a_sq = [] if ghost else None
    g_sq = [None] * len(params) if ghost else None
    saved = _forward(params, X, acts, buffers, a_sq)
    out = saved[-1][2]
    value = lossf(y, out, reduction=opts.reduction)
    if ghost:
        grads, jacs, Gs = _backward_fused(
            params, saved, acts, lossf, y, out, opts, buffers, row_squares=g_sq
        )
    else:
        backward = _backward_structures if opts.method == "structures" else _backward_fused
        grads, jacs, Gs = backward(params, saved, acts, lossf, y, out, opts, buffers)
    result = GradResult(loss=value, grads=grads, jacobians=jacs if opts.return_jacobians else None)
    if opts.per_sample:
        scale = opts.per_sample_scale(out)
        result.per_sample = [
            (np.einsum("ki,kj->kij", G, A_prev) * scale, G * scale)
            for G, (A_prev, _, _) in zip(Gs, saved)
        ]
    if opts.extras:
        # extras hook: per layer the input A_{l-1} and the pre-activation cotangent G_l
        # (already weighted by the reduction), with what the curvature needs to backpropagate
        record = _extras.Record(
            layers=[
                _extras.LayerRecord(A_prev, G, W, act, Z, A, gW, gb)
                for (W, _), act, G, (A_prev, Z, A), (gW, gb) in zip(params, acts, Gs, saved, grads)
            ],
            y=y,
            out=out,
            loss=lossf,
            reduction=opts.reduction,
            row_squares=(g_sq, a_sq) if ghost else None,
        )
        result.extras = _extras.compute(opts.extras, record, opts)
    return result


def _layer_structures(W, A_prev, Z, A, act):
    """The chain's factors of one layer: :mod:`structjac.layers`' batch structures
    (``act`` an activation op, or its :class:`structjac.layers._Activation`)."""
    if not isinstance(act, _Activation):
        act = _Activation(act)
    dz_dW, dz_db, dz_dx = batch_structures(W, A_prev, copy=False)
    return {"da/dz": act.jacobian(Z, A), "dz/dW": dz_dW, "dz/db": dz_db, "dz/dx": dz_dx}


def _named(l, L, S, loss_row):
    if l == L - 1:
        S = {"dJ/da (loss row)": loss_row, **S}
    return {f"layer {l + 1} {k}": v for k, v in S.items()}


def _backward_structures(params, saved, acts, lossf, y, out, opts, buffers=_Fresh):
    """Reverse mode by the rule table: a 1 x n row times each structure, left to right.

    Each product has two factors, so it has one association order and is taken with
    ``@`` (the rule table :func:`structjac.chain.chain` evaluates with); planning each
    two-factor product through ``chain`` cost 55 % more at N = 1024 (32-64-64-1).  The
    tests check that ``chain`` of each parameter's whole chain gives the same gradient.
    """
    loss_row = lossf.jacobian(y, out, reduction=opts.reduction)  # BlockRow 1 x N*m_L, once
    row = loss_row
    L = len(params)
    grads = [None] * L
    jacs = [None] * L
    Gs = [None] * L
    for l in range(L - 1, -1, -1):
        W, _ = params[l]
        A_prev, Z, A = saved[l]
        S = _layer_structures(W, A_prev, Z, A, acts[l])
        row = row @ S["da/dz"]  # BlockRow @ Diagonal -> BlockRow
        Gs[l] = np.asarray(row.to_dense()).reshape(A.shape)
        gW = row @ S["dz/dW"]  # -> vec(G^T A_prev)
        gb = row @ S["dz/db"]  # -> 1^T G
        grads[l] = (
            np.asarray(gW.to_dense()).reshape(W.shape),
            np.asarray(gb.to_dense()).reshape(W.shape[0]),
        )
        if l:
            row = row @ S["dz/dx"]  # -> vec(G W)
        jacs[l] = _named(l, L, S, loss_row)
    return grads, jacs, Gs


def _backward_fused(params, saved, acts, lossf, y, out, opts, buffers=_Fresh, row_squares=None):
    r"""The same products, in place: per layer one fused pass (vjp + bias gradient) and
    BLAS for the weight gradient and the next cotangent.  ``row_squares``, a list of
    one entry per layer, receives in the same passes the row sums of squares
    :math:`\|g_k\|^2` of each layer's pre-activation cotangent ``G``."""
    L = len(params)
    grads = [None] * L
    jacs = [None] * L if opts.return_jacobians else None
    Gs = [None] * L
    G = lossf.grad(
        y,
        out,
        reduction=opts.reduction,  # the loss row, (N, m_L)
        out=buffers.get(f"G{L - 1}", out.shape, out.dtype),
    )
    if opts.return_jacobians:  # the same row, as a structure
        loss_row = lossf.jacobian(y, out, reduction=opts.reduction)
    outer = None  # (g, W): G = g W, an outer product not yet formed
    for l in range(L - 1, -1, -1):
        W, _ = params[l]
        A_prev, Z, A = saved[l]
        if opts.return_jacobians:
            jacs[l] = _named(l, L, _layer_structures(W, A_prev, Z, A, acts[l]), loss_row)
        # row @ diag(g') written over G (G is ours: from the loss or G @ W), fused with
        # row @ (1_N (x) I) = 1^T G, the bias gradient
        rowsq = None
        if row_squares is not None:
            rowsq = row_squares[l] = buffers.get(f"gsq{l}", (A.shape[0],), A.dtype)
        if outer is not None:
            # G = g W (one unit above) formed inside the vjp pass
            G, gb = acts[l].outer_vjp_bias_grad(
                outer[0],
                outer[1],
                Z,
                A,
                lambda l=l, A=A: buffers.get(f"G{l}", A.shape, A.dtype),
                rowsq,
            )
        else:
            G, gb = acts[l].vjp_bias_grad(G, Z, A, rowsq)
        outer = None
        if opts.per_sample or opts.extras:  # extras hook: keep G_l
            Gs[l] = G
        gW = G.T @ A_prev  # row @ dZ/dW: vec(G^T A_prev)
        grads[l] = (gW, gb)
        if l:
            # row @ (I_N (x) W): G W.  With one unit, the outer product g w^T: left to
            # the next vjp pass (BLAS takes ~5x a memory pass for k = 1)
            if G.shape[1] == 1:
                outer = (G, W)
            else:
                G = np.matmul(G, W, out=buffers.get(f"G{l - 1}", A_prev.shape, G.dtype))
    return grads, jacs, Gs


def ggn(
    params: Sequence[tuple[ArrayLike, ArrayLike]],
    X: ArrayLike,
    y: ArrayLike,
    activations: Sequence[str | _ops.UnaryOp | None],
    loss: str | _ops.Loss = "bce",
    *,
    reduction: str = "mean",
    dtype: DTypeLike | None = None,
) -> "LinearOperator":
    r"""The generalised Gauss-Newton matrix :math:`\mathcal J^T H \mathcal J` as an operator.

    A ``scipy.sparse.linalg.LinearOperator`` of shape ``(P, P)`` over the parameters
    flattened as :math:`\operatorname{vec}_r W_1, b_1, \operatorname{vec}_r W_2, \dots`
    (:math:`\mathcal J` the Jacobian of the network's output, :math:`H` the Hessian of
    the reduced loss in it).  Each ``matvec`` is one Jacobian-vector product through the
    layer structures, the loss Hessian's structure, and one vector-Jacobian product
    (``structjac._curvature``); the forward pass runs once, here.  Its diagonal is
    ``value_and_grad(..., extras=("diag_ggn",))``.

    Parameters are those of :func:`value_and_grad`; ``loss`` one of ``"mse"``, ``"bce"``,
    ``"bce_with_logits"``, ``"cross_entropy"`` (a loss with a Hessian).

    Examples
    --------
    >>> import numpy as np
    >>> from structjac import nn
    >>> rng = np.random.default_rng(0)
    >>> params = nn.MLP([3, 4, 1], ["tanh", None], dtype=np.float64).init(rng)
    >>> X, y = rng.standard_normal((8, 3)), rng.standard_normal(8)
    >>> G = nn.ggn(params, X, y, ["tanh", None], "mse")
    >>> G.shape
    (21, 21)
    >>> v = rng.standard_normal(21)
    >>> bool(np.isclose(v @ G.matvec(v), G.matvec(v) @ v)) and float(v @ G.matvec(v)) >= 0
    True
    """
    lossf = get_loss(loss)
    if not _extras.has_hessian(lossf):
        raise ValueError(
            f"ggn needs the loss's Hessian, which loss {lossf!r} does not provide; "
            "supported losses: mse, bce, bce_with_logits, cross_entropy"
        )
    _Options(reduction=reduction)  # validates the reduction
    params, X, y, acts = _check(
        params, X, y, activations, dtype, labels=isinstance(lossf, _ops.CrossEntropy)
    )
    with _kernels.serial_only():
        saved = _forward(params, X, acts)
        return _curvature.GGNOperator(params, saved, acts, y, lossf, reduction)


def gauss_newton_step(
    params: Sequence[tuple[ArrayLike, ArrayLike]],
    X: ArrayLike,
    y: ArrayLike,
    activations: Sequence[str | _ops.UnaryOp | None],
    loss: str | _ops.Loss = "bce",
    *,
    damping: float = 1e-3,
    reduction: str = "mean",
    rtol: float = 1e-6,
    maxiter: int | None = None,
    dtype: DTypeLike | None = None,
) -> tuple[list[tuple[np.ndarray, np.ndarray]], dict]:
    r"""The damped Gauss-Newton (Levenberg-Marquardt) step :math:`d` of the parameters.

    Solves :math:`(\mathcal G + \lambda I)\, d = -\nabla J` by conjugate gradients on
    :func:`ggn`'s operator (``damping`` :math:`= \lambda > 0`, CG to ``rtol``, at most
    ``maxiter`` iterations).  Returns ``(step, info)``: the step as a list of ``(dW, db)``
    pairs like ``params`` (new parameters ``W + dW``, ``b + db``) and the dict
    ``{"loss", "grads", "cg_info"}`` (``cg_info`` 0: converged).

    Examples
    --------
    >>> import numpy as np
    >>> from structjac import nn
    >>> rng = np.random.default_rng(0)
    >>> acts = ["tanh", None]
    >>> params = nn.MLP([3, 8, 1], acts, dtype=np.float64).init(rng)
    >>> X = rng.standard_normal((32, 3)); y = np.sin(X.sum(axis=1))
    >>> step, info = nn.gauss_newton_step(params, X, y, acts, "mse", damping=1e-2)
    >>> new = [(W + dW, b + db) for (W, b), (dW, db) in zip(params, step)]
    >>> bool(nn.value_and_grad(new, X, y, acts, "mse").loss < info["loss"])
    True
    """
    if not (np.isfinite(damping) and damping > 0):
        raise ValueError(f"damping must be a finite number > 0, got {damping!r}")
    op = ggn(params, X, y, activations, loss, reduction=reduction, dtype=dtype)
    value, grads = value_and_grad(
        op.params, X, y, activations, loss, reduction=reduction, dtype=op.dtype
    )
    step, cg_info = _curvature.gauss_newton_solve(op, grads, damping, rtol, maxiter)
    return step, {"loss": value, "grads": grads, "cg_info": cg_info}


def _layer_size(s, k):
    if isinstance(s, (bool, np.bool_)) or not isinstance(s, (int, np.integer)):
        raise TypeError(f"sizes[{k}] = {s!r} is not an integer layer size")
    if s < 1:
        raise ValueError(f"sizes[{k}] = {s} must be at least 1")
    return int(s)


class MLP:
    r"""A multilayer perceptron described by layer sizes, activations and a loss.

    Parameters
    ----------
    sizes : sequence of int
        ``[d, m_1, ..., m_L]``.
    activations : str or sequence
        One per layer (a single name applies to every layer).
    loss : str or Loss, default "bce"
    dtype : {float32, float64}, default float32
        The network's dtype: :meth:`init` makes parameters of it, and :meth:`forward`
        and :meth:`value_and_grad` cast the data (``X``, ``y``) and the parameters to
        it, so a float32 network given float64 data computes and returns float32.

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

    def __init__(
        self,
        sizes: Sequence[int],
        activations: str | Sequence[str | _ops.UnaryOp | None] = "sigmoid",
        loss: str | _ops.Loss = "bce",
        dtype: DTypeLike = np.float32,
    ) -> None:
        self.sizes = [_layer_size(s, k) for k, s in enumerate(sizes)]
        if len(self.sizes) < 2:
            raise ValueError("an MLP needs at least an input and an output size")
        if isinstance(activations, str) or activations is None:
            activations = [activations] * (len(self.sizes) - 1)
        self.activations = [get_activation(a) for a in activations]
        if len(self.activations) != len(self.sizes) - 1:
            raise ValueError(
                f"{len(self.sizes) - 1} layers but {len(self.activations)} activations"
            )
        self.loss = get_loss(loss)
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise TypeError(f"MLP dtype must be float32 or float64, got {self.dtype}")
        #: The buffers :meth:`value_and_grad` reuses between calls (see :class:`Workspace`).
        self.workspace = Workspace()

    def init(
        self, rng: "int | np.random.Generator | None" = None
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Glorot-uniform weights, zero biases, in ``self.dtype``."""
        rng = np.random.default_rng(rng)
        params = []
        for d, m in zip(self.sizes[:-1], self.sizes[1:]):
            lim = np.sqrt(6.0 / (d + m))
            params.append(
                (rng.uniform(-lim, lim, (m, d)).astype(self.dtype), np.zeros(m, dtype=self.dtype))
            )
        return params

    def forward(self, params: Sequence[tuple[ArrayLike, ArrayLike]], X: ArrayLike) -> np.ndarray:
        """The output :math:`A_L` for ``X`` of shape ``(N, d)``, in ``self.dtype``."""
        params, X, _, acts = _check(params, X, None, self.activations, self.dtype)
        return _forward(params, X, acts)[-1][2]

    def value_and_grad(
        self,
        params: Sequence[tuple[ArrayLike, ArrayLike]],
        X: ArrayLike,
        y: ArrayLike,
        **kwargs: Any,
    ) -> GradResult:
        """:func:`value_and_grad` with this network's activations, loss, workspace and
        dtype (the data and parameters are cast to ``self.dtype``)."""
        kwargs.setdefault("workspace", self.workspace)
        kwargs.setdefault("dtype", self.dtype)
        return value_and_grad(params, X, y, self.activations, self.loss, **kwargs)

    def explain(
        self, params: Sequence[tuple[ArrayLike, ArrayLike]], X: ArrayLike, y: ArrayLike
    ) -> str:
        """The table of the structures backpropagation multiplies, for this batch."""
        return self.value_and_grad(params, X, y, return_jacobians=True).explain()

    def __repr__(self):
        acts = "/".join(activation_name(a) for a in self.activations)
        return f"MLP({'-'.join(map(str, self.sizes))}, {acts}, loss={self.loss.name}, {self.dtype})"
