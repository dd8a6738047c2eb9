r"""Per-sample statistics and curvature of an MLP from the layer structures, in one backward pass.

:func:`structjac.nn.value_and_grad` records, per layer :math:`l`, the layer's input
:math:`A_{l-1} \in \mathbb{F}^{N \times d}` and the pre-activation cotangent
:math:`G_l \in \mathbb{F}^{N \times m}` (the loss row times the chain down to
:math:`Z_l`, already weighted by the reduction :math:`w`: :math:`1/N` for ``"mean"``,
1 for ``"sum"``, :math:`1/(N m_L)` for ``"elementwise_mean"``).  The weight gradient is
:math:`G_l^T A_{l-1}`, the product of the row with the stacked Kronecker
:math:`\partial Z/\partial W = [I \otimes a_k^T]_k`, and each sample's term of that
product is the rank-one matrix :math:`g_k a_k^T`.  Everything here is computed from
these two arrays and never forms the :math:`N` per-sample gradients.

Convention (BackPACK's): a *per-sample gradient* is sample :math:`k`'s term of the
gradient of the loss as reduced, :math:`\nabla_\theta (w J_0^{(k)})` (so they sum to
``grads``); for ``"mean"`` it is :math:`\frac1N` times the gradient of :math:`J_0^{(k)}`
that ``per_sample=True`` returns.  The clipping of ``"clipped_grad"`` is applied to the
gradients of :math:`J_0^{(k)}` (as Opacus does), see below.

Quantities (``extras=`` names)
------------------------------
``"grad_norms"``, shape ``(N,)``
    :math:`\|\nabla_\theta w J_0^{(k)}\|` over all parameters, by the ghost norm
    :math:`\|g_k a_k^T\|_F^2 + \|g_k\|^2 = \|g_k\|^2(\|a_k\|^2 + 1)`, summed over layers.
``"sum_grad_squared"``, like ``grads``
    :math:`\sum_k (g_k a_k^T)^{\odot 2} = (G^{\odot 2})^T A^{\odot 2}` and
    :math:`\mathbf 1^T G^{\odot 2}` (BackPACK's ``SumGradSquared``).
``"variance"``, like ``grads``
    :math:`\frac1N \sum_k (\text{per-sample})^{\odot 2} - (\frac1N \text{grad})^{\odot 2}`
    (BackPACK's ``Variance``).
``"clipped_grad"``, like ``grads`` (needs ``max_norm``)
    :math:`w \sum_k c_k \nabla J_0^{(k)}` with
    :math:`c_k = \min(1, C/\|\nabla J_0^{(k)}\|)`: the reduced gradient with each
    sample's loss gradient clipped to norm :math:`C` = ``max_norm``; from the ghost norms
    as :math:`(c \odot G)^T A` (Opacus' ``loss_reduction="mean"`` result for ``"mean"``).
``"diag_ggn"``, like ``grads``
    The diagonal of the generalised Gauss-Newton matrix
    :math:`\sum_k J_k^T (w H_k) J_k`, :math:`J_k = \partial a_L^{(k)}/\partial\theta`,
    :math:`H_k` the Hessian of :math:`J_0^{(k)}` in the network's output.  With a
    symmetric factor :math:`w H_k = S_k S_k^T` (columns :math:`s_{kc}`), each column is
    backpropagated as a cotangent, :math:`V \leftarrow V \odot g'_l` then
    :math:`V \leftarrow V W_l`, and the diagonal is
    :math:`(\sum_c V_c^{\odot 2})^T A_{l-1}^{\odot 2}` (bias: :math:`\mathbf 1^T\sum_c V_c^{\odot 2}`).
    Factors: MSE :math:`S = \sqrt{2w}\, I`; BCE and BCE-with-logits
    :math:`S = \operatorname{diag}(\sqrt{w h})` with :math:`h` the diagonal Hessian;
    cross-entropy :math:`S = \sqrt{w}(\operatorname{diag}(\sqrt p) - p \sqrt p^T)`, since
    :math:`(\operatorname{diag}\sqrt p - p\sqrt p^T)(\cdot)^T = \operatorname{diag}(p) - pp^T`.
``"diag_ggn_mc"``, like ``grads`` (``mc_samples``, ``seed``)
    The same with :math:`S` replaced by ``mc_samples`` random columns whose outer
    products have expectation :math:`wH_k`: MSE :math:`\sqrt{2w}\,\varepsilon`,
    :math:`\varepsilon \sim \mathcal N(0, I)`; BCE-with-logits
    :math:`\sqrt w (p - \hat y)`, :math:`\hat y \sim \mathrm{Bernoulli}(p)`; cross-entropy
    :math:`\sqrt w (p - e_{\hat c})`, :math:`\hat c \sim \mathrm{Cat}(p)` (BackPACK's
    sampling); BCE on probabilities :math:`\sqrt{wh}\odot\varepsilon`, Rademacher
    :math:`\varepsilon` (its Hessian depends on the target, so it is not a Fisher).
    Each column is divided by :math:`\sqrt{\text{mc\_samples}}`.
``"kflr"`` and ``"kfac"``, per layer ``(Kronecker, Dense)``
    The Kronecker factors of the GGN's diagonal block of layer :math:`l`, normalised as
    BackPACK's ``KFLR`` (exact factor) and ``KFAC`` (Monte-Carlo factor) define them:
    output-gradient factor :math:`\mathcal G = \sum_{c,k} v_{kc} v_{kc}^T` (the
    backpropagated columns, reduction weight included) and input factor
    :math:`\mathcal A = \frac1N A_{l-1}^T A_{l-1}`; the weight block is
    ``Kronecker(Dense(G), Dense(A))`` over :math:`\operatorname{vec}_r W` and the bias
    block ``Dense(G)``.
``"diag_hessian"``, like ``grads``
    The diagonal of the Hessian of the loss, for networks whose activations are all
    piecewise linear (``relu``, ``leaky_relu``, none).  There each parameter enters the
    output piecewise linearly, so :math:`\partial^2 a_L/\partial\theta_i^2 = 0` (almost
    everywhere) and the Hessian's diagonal is the GGN's: exact.  Other networks raise
    a ``ValueError``.

Cost
----
With layers :math:`(d_l, m_l)`, :math:`\Sigma = \sum_l m_l d_l` and
:math:`\Sigma' = \sum_{l \ge 2} m_l d_l`, the plain pass's matrix products cost
:math:`N(2\Sigma + \Sigma')` multiply-adds.  On top of it, in matrix products:
``grad_norms`` none (one pass over each ``G`` and ``A``); ``sum_grad_squared``,
``variance``, ``clipped_grad`` one GEMM per layer of the weight gradient's size,
:math:`N\Sigma` (``variance`` reuses the pass's gradient); the GGN diagonals
:math:`N\Sigma + K N \Sigma'` with :math:`K` backpropagated columns (``mc_samples``;
exact: :math:`C - 1` for cross-entropy, from a Householder factor, :math:`m_L` otherwise);
the Kronecker factors :math:`N \sum_l d_l^2 / 2 + K N \sum_l m_l^2 / 2 + K N \Sigma'`
(symmetric rank-k products; ``kfac`` alone forms no diagonal).  Cross-entropy's top
layer is in closed form (no product of inner dimension :math:`C`).  Everything else is
one fused pass per array (:mod:`structjac.kernels.curvature`), in the workspace's
buffers when there is one.  So the overhead ratio of ``sum_grad_squared`` is at least
:math:`1 + \Sigma / (2\Sigma + \Sigma') \ge 4/3` for every MLP (1.47 for
784-256-128-10), and ``scripts/perf_curvature.py`` prints this bound beside each
measured ratio.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import ops as _ops
from .kernels import curvature as _kcurv
from .kernels import losses as _kloss
from .layers import get_activation
from .structures import Dense, Kronecker

__all__ = ["EXTRAS", "LayerRecord", "Record", "compute", "has_hessian", "validate"]

#: The ``extras=`` names.
EXTRAS = (
    "grad_norms",
    "sum_grad_squared",
    "variance",
    "clipped_grad",
    "diag_ggn",
    "diag_ggn_mc",
    "kflr",
    "kfac",
    "diag_hessian",
)

#: Extras that need the loss's Hessian in the output (a loss this module knows).
_CURVATURE = frozenset({"diag_ggn", "diag_ggn_mc", "kflr", "kfac", "diag_hessian"})
#: The extras that need the per-sample gradient norms (the ghost norms)
GHOST = frozenset({"grad_norms", "clipped_grad"})
_LOSSES = (_ops.MSE, _ops.BCE, _ops.BCEWithLogits, _ops.CrossEntropy)
_PIECEWISE_LINEAR = (_ops.unary.ReLU, _ops.unary.LeakyReLU)
#: Activations (exact types) whose from-output derivative the curvature kernels form inline.
_FUSED_FROM_OUTPUT = {_ops.unary.Sigmoid: "sigmoid", _ops.unary.Tanh: "tanh"}


@dataclass(frozen=True)
class LayerRecord:
    """What the backward pass keeps of layer ``l``: its input ``A_prev`` (N, d), the
    pre-activation cotangent ``G`` (N, m), ``W``, the activation (an
    ``structjac.layers._Activation``), the kept pre-activation ``Z`` (or None), ``A``,
    and the layer's gradient ``gW = G^T A_prev``, ``gb = 1^T G`` when the pass has it
    (None: recomputed where needed)."""

    A_prev: np.ndarray
    G: np.ndarray
    W: np.ndarray
    act: object
    Z: object
    A: np.ndarray
    gW: object = None
    gb: object = None


@dataclass(frozen=True)
class Record:
    """The layers' records (input to output), the targets, the output, loss and reduction."""

    layers: list
    y: np.ndarray
    out: np.ndarray
    loss: object
    reduction: str
    #: ``(g_sq, a_sq)`` when the passes formed the ghost norms' factors: per layer the
    #: row sums of squares of ``G`` and per hidden layer those of its output (None:
    #: :func:`grad_norms` forms them from ``G`` and ``A_prev``)
    row_squares: object = None


def has_hessian(loss) -> bool:
    """Whether this module (and :func:`structjac.nn.ggn`) knows the loss's Hessian factor."""
    return isinstance(loss, _LOSSES)


def validate(extras, loss, activations, *, mc_samples=1, max_norm=None):
    """Check the ``extras=`` names and options; return them as a tuple.

    Raises ``ValueError`` naming an unknown extra, ``mc_samples < 1``, ``max_norm <= 0``
    (or missing for ``"clipped_grad"``), an extra the loss does not support, and
    ``"diag_hessian"`` on a network where it is not exact.
    """
    if isinstance(extras, str):
        extras = (extras,)
    extras = tuple(extras)
    for name in extras:
        if name not in EXTRAS:
            raise ValueError(
                f"unknown extra {name!r}; valid names are {', '.join(map(repr, EXTRAS))}"
            )
    if len(set(extras)) != len(extras):
        raise ValueError(f"extras {extras!r} names one quantity twice")
    if isinstance(mc_samples, (bool, np.bool_)) or not isinstance(mc_samples, (int, np.integer)):
        raise TypeError(f"mc_samples must be an integer, got {mc_samples!r}")
    if mc_samples < 1:
        raise ValueError(f"mc_samples must be at least 1, got {mc_samples}")
    if max_norm is not None and not (np.isfinite(max_norm) and max_norm > 0):
        raise ValueError(f"max_norm must be a finite number > 0, got {max_norm!r}")
    if "clipped_grad" in extras and max_norm is None:
        raise ValueError("extra 'clipped_grad' needs max_norm= (the per-sample clipping norm)")
    needs_hessian = [n for n in extras if n in _CURVATURE]
    if needs_hessian and not isinstance(loss, _LOSSES):
        raise ValueError(
            f"extras {needs_hessian!r} need the loss's Hessian, which loss {loss!r} "
            "does not provide; supported losses: mse, bce, bce_with_logits, cross_entropy"
        )
    if "diag_hessian" in extras:
        for l, a in enumerate(activations):
            op = get_activation(a)
            if op is not None and not isinstance(op, _PIECEWISE_LINEAR):
                raise ValueError(
                    f"extra 'diag_hessian' is exact only for piecewise linear activations "
                    f"(relu, leaky_relu, none); layer {l} has {op!r} (use 'diag_ggn')"
                )
    return extras


def compute(names, record, options):
    r"""The extras ``names`` from a backward pass's ``record`` (``options``: ``mc_samples``,
    ``seed``, ``max_norm``); a dict by name.

    What two extras share is computed once per call (:class:`_Shared`): the squared
    layer inputs :math:`A_{l-1}^{\odot 2}` (``sum_grad_squared``, ``variance``, the GGN
    diagonals) and the input factors :math:`\frac1N A_{l-1}^T A_{l-1}` (``kflr``, ``kfac``).
    A backpropagation computes only what is asked of it: ``kfac`` alone forms no diagonal.
    """
    out = {}
    layers = record.layers
    buffers = options.buffers() if hasattr(options, "buffers") else None
    shared = _Shared(layers, buffers)
    if {"grad_norms", "clipped_grad"} & set(names):
        norms = grad_norms(layers, record.row_squares)
        if "grad_norms" in names:
            out["grad_norms"] = norms
        if "clipped_grad" in names:
            out["clipped_grad"] = clipped_grad(
                layers, norms, _weight(record), options.max_norm, shared
            )
    if "sum_grad_squared" in names or "variance" in names:
        sgs = sum_grad_squared(layers, shared)
        if "sum_grad_squared" in names:
            out["sum_grad_squared"] = sgs
        if "variance" in names:
            out["variance"] = variance(layers, sgs)
    exact = [n for n in ("diag_ggn", "kflr", "diag_hessian") if n in names]
    if exact:
        diag, kfs = _curvature_pass(record, shared, diag=exact != ["kflr"], kron="kflr" in names)
        for n in exact:
            out[n] = kfs if n == "kflr" else diag
    sampled = [n for n in ("diag_ggn_mc", "kfac") if n in names]
    if sampled:
        rng = np.random.default_rng(options.seed)
        diag, kfs = _curvature_pass(
            record,
            shared,
            diag="diag_ggn_mc" in names,
            kron="kfac" in names,
            mc_samples=options.mc_samples,
            rng=rng,
        )
        for n in sampled:
            out[n] = kfs if n == "kfac" else diag
    return {n: out[n] for n in names}


class _Fresh:
    """The allocator without a workspace: a new array each time."""

    @staticmethod
    def get(name, shape, dtype):
        return np.empty(shape, dtype=dtype)


class _Shared:
    """Per-layer arrays two extras of one call both need, computed on first use, and the
    scratch arrays of one call (:meth:`scratch`).

    With a :class:`structjac.nn.Workspace` the scratch arrays (squares, gated columns,
    their sums of squares) are its buffers, named ``"extras.*"``, reused from call to
    call: allocating and touching fresh pages can cost more than the element-wise passes
    on them (measured on a loaded 2-core virtual machine: with glibc's heap trimming
    turned off, which keeps the freed pages mapped, the extra time of the 32-64-64-1
    exact GGN diagonal fell from 2.9 to 0.9 ms).  The results never share memory with
    the workspace (they are fresh GEMM outputs and sums).
    """

    def __init__(self, layers, buffers=None):
        self._layers = layers
        self._buffers = _Fresh if buffers is None else buffers
        self._squares = {}
        self._covariances = {}
        self.tag = ""  # names the scratch of the sampled pass apart from the exact one's

    def scratch(self, name, shape, dtype):
        """An uninitialised scratch array (the workspace's ``"extras." + tag + name``)."""
        return self._buffers.get("extras." + self.tag + name, shape, dtype)

    def square(self, l):
        r""":math:`A_{l-1}^{\odot 2}`, shape (N, d)."""
        A2 = self._squares.get(l)
        if A2 is None:
            A = self._layers[l].A_prev
            A2 = self._squares[l] = np.multiply(A, A, out=self.scratch(f"A2_{l}", A.shape, A.dtype))
        return A2

    def covariance(self, l):
        r""":math:`\frac1N A_{l-1}^T A_{l-1}` (BLAS's symmetric rank-k update), shape (d, d)."""
        Af = self._covariances.get(l)
        if Af is None:
            A = np.ascontiguousarray(self._layers[l].A_prev)
            Af = A.T @ A  # numpy calls syrk for a.T @ a: half the flops
            Af /= A.dtype.type(A.shape[0])
            self._covariances[l] = Af
        return Af


def _weight(record):
    """The reduction's weight :math:`w` of each per-sample loss."""
    N = record.out.shape[0]
    return {"mean": 1.0 / N, "sum": 1.0, "elementwise_mean": 1.0 / record.out.size}[
        record.reduction
    ]


def grad_norms(layers, row_squares=None):
    r"""Per-sample gradient norms :math:`\sqrt{\sum_l \|g_k\|^2 (\|a_k\|^2 + 1)}`, shape (N,).

    From the row sums of squares the fused passes formed (``row_squares``, see
    :class:`Record`) and one pass over the input ``X``; else one kernel call over every
    layer's ``G`` and ``A_prev``."""
    if row_squares is not None:
        g_sq, a_sq = row_squares
        return _kcurv.ghost_norms_from_row_squares(layers[0].A_prev, g_sq, a_sq)
    return _kcurv.ghost_norms([r.G for r in layers], [r.A_prev for r in layers])


def clipped_grad(layers, norms, weight, max_norm, shared=None):
    r"""Per layer ``((c G)^T A, 1^T (c G))``, :math:`c_k = \min(1, C / \|\nabla J_0^{(k)}\|)`."""
    dtype = layers[0].G.dtype
    n0 = norms / dtype.type(weight)  # norms of the gradients of J_0^(k)
    c = np.ones_like(n0)
    big = n0 > max_norm
    c[big] = dtype.type(max_norm) / n0[big]
    shared = _Shared(layers) if shared is None else shared
    out = []
    for l, r in enumerate(layers):
        cG, cb = _kcurv.scale_rows_colsum(r.G, c, out=shared.scratch(f"G_{l}", r.G.shape, dtype))
        out.append((cG.T @ r.A_prev, cb))
    return out


def sum_grad_squared(layers, shared=None):
    r"""Per layer :math:`((G^{\odot 2})^T A^{\odot 2}, \mathbf 1^T G^{\odot 2})`: two
    element-wise squares and one GEMM (the squared inputs from ``shared`` when given)."""
    shared = _Shared(layers) if shared is None else shared
    out = []
    for l, r in enumerate(layers):
        G2, b2 = _kcurv.square_colsum(r.G, out=shared.scratch(f"G_{l}", r.G.shape, r.G.dtype))
        out.append((G2.T @ shared.square(l), b2))
    return out


def variance(layers, sgs):
    r"""Per layer :math:`\frac1N \mathrm{sgs} - (\frac1N \mathrm{grad})^{\odot 2}` (BackPACK's);
    the gradient is the backward pass's (``LayerRecord.gW``/``gb``) when recorded."""
    out = []
    for r, (sW, sb) in zip(layers, sgs):
        N = r.G.shape[0]
        dt = r.G.dtype.type
        gW = r.G.T @ r.A_prev if r.gW is None else r.gW
        gb = r.G.sum(axis=0) if r.gb is None else r.gb
        mW = gW / dt(N)
        mb = gb / dt(N)
        vW = sW / dt(N)
        vW -= np.multiply(mW, mW, out=mW)
        vb = sb / dt(N)
        vb -= np.multiply(mb, mb, out=mb)
        out.append((vW, vb))
    return out


def loss_factor(record, mc_samples=None, rng=None):
    r"""Columns :math:`S` of shape ``(K, N, m_L)`` with :math:`\sum_c s_{kc} s_{kc}^T = w H_k`
    (``mc_samples`` None), or ``mc_samples`` random columns with that expectation.

    The diagonal-Hessian losses (MSE, BCE, BCE with logits) take one Numba pass
    (:func:`structjac.kernels.losses.hessian_factor`): exact, :math:`\sqrt{w h_{kj}}
    e_j`; sampled, Rademacher signs times :math:`\sqrt{w h_{kj} / R}` (MSE: Gaussian
    :math:`\sqrt{2w/R}\,\epsilon`), and for BCE with logits labels drawn from the model,
    :math:`\sqrt{w/R}\,(\sigma(z) - \hat y)` (the Fisher's Monte-Carlo columns).
    """
    loss, y, z = record.loss, record.y, record.out
    dtype = z.dtype
    w = _weight(record)
    N, m = z.shape
    if isinstance(loss, _ops.CrossEntropy):
        dt = dtype.type
        if mc_samples is None:
            return _cross_entropy_factor(
                _ops.softmax(z, axis=1), np.sqrt(_target_mass(y, z) * dt(w))
            )
        mc = int(mc_samples)
        p = _ops.softmax(z, axis=1)  # c ~ Cat(p)
        return _sampled_columns(
            p, _sample_classes(p, rng, mc), np.sqrt(_target_mass(y, z) * dt(w / mc))
        )
    name = loss.name
    if mc_samples is None:
        return _kloss.hessian_factor(name, y, z, w)
    mc = int(mc_samples)
    if name == "mse":
        eps = rng.standard_normal((mc, N, m), dtype=dtype)
        eps *= dtype.type(np.sqrt(2.0 * w / mc))
        return eps
    if name == "bce_with_logits":
        return _kloss.bernoulli_logit_factor(
            z, rng.random((mc, N, m), dtype=dtype), np.sqrt(w / mc)
        )
    return _kloss.hessian_factor(
        name, y, z, w / mc, signs=rng.integers(0, 2, (mc, N, m), dtype=np.bool_)
    )


def _cross_entropy_factor(p, scale):
    r"""A symmetric factor with :math:`C - 1` columns of cross-entropy's Hessian.

    Per sample, with :math:`q = \sqrt p` (:math:`\|q\| = 1`),
    :math:`\operatorname{diag}(p) - pp^T = D (I - qq^T) D`, :math:`D = \operatorname{diag}(q)`,
    and :math:`I - qq^T` (rank :math:`C - 1`) is :math:`UU^T` for the columns :math:`U` of
    the Householder reflection :math:`P = I - 2vv^T/v^Tv`, :math:`v = q - e_j`, other
    than its column :math:`j` (:math:`P e_j = q`; :math:`P` is symmetric and orthogonal,
    so :math:`UU^T + qq^T = I`).  Taking :math:`j = \arg\min_i p_i` keeps
    :math:`v^Tv = 2(1 - q_j) \ge 2(1 - C^{-1/2})` away from 0.  The factor is
    ``scale`` :math:`\cdot DU`: one backpropagated column fewer than the :math:`C` columns
    of :math:`\operatorname{diag}(\sqrt p) - p\sqrt p^T`.

    Returns ``S`` of shape ``(C - 1, N, C)`` (one zero column when :math:`C = 1`: the
    Hessian is 0), ``S[c, k]`` the column ``c`` of sample ``k``'s factor.
    """
    N, m = p.shape
    if m == 1:
        return np.zeros((1, N, 1), dtype=p.dtype)
    rows = np.arange(N)
    q = np.sqrt(p)
    j = np.argmin(p, axis=1)
    v = q.copy()
    v[rows, j] -= p.dtype.type(1)
    beta = p.dtype.type(2) / np.einsum("ki,ki->k", v, v)  # 2 / v^T v
    c = np.arange(m - 1)[None, :]
    cols = c + (c >= j[:, None])  # (N, C-1): all but j
    vc = np.take_along_axis(v, cols, axis=1)  # v at the kept columns
    # S[c, k, i] = scale_k q_ki (delta(i, cols_kc) - beta_k v_ki v_k,cols_kc)
    S = (vc * (-(scale * beta))[:, None]).T[:, :, None] * (q * v)[None]
    S[np.arange(m - 1)[:, None], rows[None, :], cols.T] += (
        np.take_along_axis(q, cols, axis=1) * scale[:, None]
    ).T
    return S


def _target_mass(y, z):
    """:math:`\\sum_j t_j` per sample (1 for integer labels)."""
    if y.ndim == 1:
        return np.ones(z.shape[0], dtype=z.dtype)
    return y.sum(axis=1, dtype=np.float64).astype(z.dtype)


def activation_derivative(act, Z, A, out=None):
    """:math:`g'` of a layer, shape of ``A``, from the output when the op allows."""
    if act.op is None:
        return None
    if act.from_output:
        return act.op.derivative_from_output(A, out=out)
    return act.op.derivative(Z, out=out)


def _curvature_pass(record, shared, *, diag, kron, mc_samples=None, rng=None):
    r"""The GGN diagonal and/or Kronecker factors per layer (exact, or ``mc_samples``
    sampled columns): the loss factor backpropagated through the layers.

    Cross-entropy on logits (no activation on the top layer, :math:`C \ge 2` classes)
    takes the closed form of :func:`_cross_entropy_top` for the top layer.
    """
    layers = record.layers
    L = len(layers)
    top = layers[-1]
    shared.tag = "" if mc_samples is None else "mc."
    if not (
        isinstance(record.loss, _ops.CrossEntropy)
        and top.act.op is None
        and record.out.shape[1] > 1
    ):
        S = loss_factor(record, mc_samples=mc_samples, rng=rng)
        return _backpropagate(layers, S, shared, diag=diag, kron=kron)
    diags = [None] * L if diag else None
    kfs = [None] * L if kron else None
    V = _cross_entropy_top(record, shared, diags, kfs, mc_samples, rng, below=L > 1)
    if L > 1:
        _backpropagate(layers, V, shared, diag=diag, kron=kron, top=L - 2, diags=diags, kfs=kfs)
    return diags, kfs


def _kron_block(Gf, Af):
    """``(Kronecker(Dense(Gf), Dense(Af)), Dense(Gf))``: one (immutable) ``Dense(Gf)`` in both.

    ``Gf`` and ``Af`` are products this module has just formed (``Af`` may be shared by
    the Kronecker factors of several extras of one call): they are wrapped without a
    second validation and marked read-only (``Dense._wrap``, ``Kronecker._wrap``).
    """
    G = Dense._wrap(Gf)
    return (Kronecker._wrap(G, Dense._wrap(Af)), G)


def _cross_entropy_top(record, shared, diags, kfs, mc_samples, rng, below):
    r"""Cross-entropy's top layer (logits :math:`z = a_{L-1} W^T + b`) in closed form.

    Exact (``mc_samples`` None), with :math:`s_k^2 = w t_k` (:math:`t_k` the target
    mass): the diagonal of the factor's square is
    :math:`Q_k = s_k^2 (p_k - p_k^{\odot 2})`, the output factor
    :math:`\operatorname{diag}(\sum_k s_k^2 p_k) - (s \odot P)^T (s \odot P)`, and the
    :math:`C - 1` Householder columns of :func:`_cross_entropy_factor` times ``W`` are
    combinations of rows of ``W`` (:func:`structjac.kernels.curvature.cross_entropy_exact_columns`).
    Sampled: the columns :math:`s_k (p_k - e_{\hat c})` (:func:`loss_factor`'s, from the
    same random numbers) and their products :math:`s_k (p_k W - W_{\hat c})`.

    Fills ``diags[-1]`` / ``kfs[-1]`` (when not None) and returns the columns below the
    top layer, shape ``(K, N, d)`` (None unless ``below``).
    """
    z, y = record.out, record.y
    dt = z.dtype.type
    N, C = z.shape
    l = len(record.layers) - 1
    W = np.ascontiguousarray(record.layers[l].W)
    w = _weight(record)
    p = _ops.softmax(z, axis=1)
    t = _target_mass(y, z)
    if mc_samples is None:
        s2 = t * dt(w)
        scale = np.sqrt(s2)
        if diags is not None:
            Q = s2[:, None] * (p - p * p)
            diags[l] = (Q.T @ shared.square(l), np.ones(N, dtype=Q.dtype) @ Q)
        if kfs is not None:
            Ps = p * scale[:, None]
            Gf = np.diag(s2 @ p) - Ps.T @ Ps
            kfs[l] = _kron_block(Gf, shared.covariance(l))
        if not below:
            return None
        q = np.sqrt(p)
        j = np.argmin(p, axis=1)
        v = q.copy()
        v[np.arange(N), j] -= dt(1)
        beta = dt(2) / np.einsum("ki,ki->k", v, v)
        return _kcurv.cross_entropy_exact_columns(
            q,
            v,
            j,
            scale,
            scale * beta,
            W,
            out=shared.scratch(f"V_{l - 1}", (C - 1, N, W.shape[1]), W.dtype),
        )
    mc = int(mc_samples)
    cls = _sample_classes(p, rng, mc)
    scale = np.sqrt(t * dt(w / mc))
    if diags is not None or kfs is not None:
        S = _sampled_columns(p, cls, scale)
        if diags is not None:
            b = np.empty(C, dtype=S.dtype)
            Q = _kcurv.gate_square_sum(S, None, colsum=b)
            diags[l] = (Q.T @ shared.square(l), b)
        if kfs is not None:
            S2 = S.reshape(mc * N, C)
            kfs[l] = _kron_block(S2.T @ S2, shared.covariance(l))
    if not below:
        return None
    return _kcurv.cross_entropy_sampled_columns(
        p @ W, cls, scale, W, out=shared.scratch(f"V_{l - 1}", (mc, N, W.shape[1]), W.dtype)
    )


def _sample_classes(p, rng, mc):
    r""":math:`\hat c \sim \mathrm{Cat}(p_k)`, shape ``(mc, N)``, by inverting the CDF."""
    u = rng.random((mc, p.shape[0], 1))
    cls = (np.cumsum(p, axis=1, dtype=np.float64)[None] < u).sum(axis=2)
    return np.minimum(cls, p.shape[1] - 1)


def _sampled_columns(p, cls, scale):
    r"""The sampled cross-entropy columns :math:`s_k (p_k - e_{\hat c})`, shape (mc, N, C)."""
    mc, N = cls.shape
    S = np.broadcast_to(p, (mc, N, p.shape[1])).copy()
    S[np.arange(mc)[:, None], np.arange(N)[None, :], cls] -= p.dtype.type(1)
    S *= scale[None, :, None]
    return S


def _backpropagate(layers, S, shared, *, diag=True, kron=False, top=None, diags=None, kfs=None):
    r"""Backpropagate the columns ``S`` (K, N, m) from the output of layer ``top``
    (default: the last) down through the layers.

    Per layer (top down) the columns are gated by :math:`g'` and, for ``diag``, squared
    and summed over :math:`c` in one pass (:func:`structjac.kernels.curvature.gate_square_sum`),
    then one GEMM :math:`Q^T A^{\odot 2}` gives the weight diagonal; for ``kron`` the
    output-gradient factor is one symmetric product :math:`V^T V` of the ``(K N, m)``
    stacked columns, and the input factor comes from ``shared``.  The columns go down
    as one ``(K N, m) @ (m, d)`` GEMM per layer.  ``S`` is overwritten.

    Returns ``(diagonal per layer or None, Kronecker factors per layer or None)``
    (``diags``/``kfs`` filled in place when given).
    """
    V = np.ascontiguousarray(S)
    L = len(layers)
    top = L - 1 if top is None else top
    if diag and diags is None:
        diags = [None] * L
    if kron and kfs is None:
        kfs = [None] * L
    pending = None  # (v (K, N), w (d,)): the columns v w^T below a one-unit layer, not formed
    for l in range(top, -1, -1):
        r = layers[l]
        fused = _FUSED_FROM_OUTPUT.get(type(r.act.op)) if r.act.from_output else None
        gp = None
        if fused is None and r.act.op is not None:
            gp = activation_derivative(
                r.act, r.Z, r.A, out=shared.scratch(f"gp_{l}", r.A.shape, r.A.dtype)
            )
            gp = gp.astype(r.A.dtype, copy=False)
        if pending is not None:  # the outer product, the gating and the squares: one pass
            v, w = pending
            K, N = v.shape
            m = w.shape[0]
            b = np.empty(m, dtype=v.dtype) if diag else None
            V, Q = _kcurv.outer_gate(
                v,
                w,
                r.A if fused else gp,
                fused or (None if gp is None else "derivative"),
                square=diag,
                out=shared.scratch(f"V_{l}", (K, N, m), v.dtype),
                sq_out=shared.scratch(f"Q_{l}", (N, m), v.dtype) if diag else None,
                colsum=b,
            )
            if diag:
                diags[l] = (Q.T @ shared.square(l), b)
        else:
            K, N, m = V.shape
            if fused is not None:  # g' formed from A inside the pass
                if diag:
                    b = np.empty(m, dtype=V.dtype)
                    Q = _kcurv.gate_from_output(
                        V, r.A, fused, out=shared.scratch(f"Q_{l}", (N, m), V.dtype), colsum=b
                    )
                    diags[l] = (Q.T @ shared.square(l), b)
                else:
                    _kcurv.gate_from_output(V, r.A, fused, square=False)
            elif diag:
                b = np.empty(m, dtype=V.dtype)
                Q = _kcurv.gate_square_sum(
                    V, gp, out=shared.scratch(f"Q_{l}", (N, m), V.dtype), colsum=b
                )  # gates V, sum_c V_c^2
                diags[l] = (Q.T @ shared.square(l), b)
            elif gp is not None:
                np.multiply(V, gp, out=V)
        pending = None
        V2 = V.reshape(K * N, m)
        if kron:
            kfs[l] = _kron_block(V2.T @ V2, shared.covariance(l))  # V^T V: syrk
        if l:
            if m == 1:
                # (K N, 1) @ (1, d) is an outer product (BLAS takes ~4x a memory pass):
                # formed inside the next layer's gating pass
                pending = (V2.reshape(K, N), r.W[0])
            else:
                d = r.W.shape[1]
                buf = shared.scratch(f"V_{l - 1}", (K * N, d), V.dtype)
                V = np.matmul(V2, r.W, out=buf).reshape(K, N, d)
    return diags if diag else None, kfs if kron else None
