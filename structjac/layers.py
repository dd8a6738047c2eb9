r"""Jacobians of a dense layer and of an artificial neuron, for one sample or a mini-batch.

A dense layer maps :math:`x \in \mathbb{F}^d` to :math:`z = Wx + b`, :math:`a = g(z)`,
with :math:`W \in \mathbb{F}^{m \times d}` (rows :math:`w_i^T`). The lecture derives

.. math::

    \frac{\partial z}{\partial w_i} = e_i x^T \ (\texttt{BlockRow}), \quad
    \frac{\partial z}{\partial \operatorname{vec}_r W} = I_m \otimes x^T \ (\texttt{Kronecker}), \quad
    \frac{\partial z}{\partial b} = I_m \ (\texttt{Identity}), \quad
    \frac{\partial z}{\partial x} = W \ (\texttt{Dense}),

and then :math:`\partial a/\partial(\cdot) = \operatorname{diag}(g'(z))\,\partial z/\partial(\cdot)`,
which the rule table keeps structured: :math:`\partial a/\partial w_i = e_i (g'_i x)^T` stays a
``BlockRow``, :math:`\partial a/\partial W = \operatorname{diag}(g') \otimes x^T` a ``Kronecker``,
:math:`\partial a/\partial x` is :math:`W` with row :math:`i` scaled by :math:`g'_i`.

Over a mini-batch :math:`X \in \mathbb{F}^{N \times d}` (batch axis first),
:math:`Z = X W^T + \mathbf 1_N b^T`, flattened row-major so that entry :math:`(k, i)` is
:math:`z^{(k)}_i`:

.. math::

    \frac{\partial Z}{\partial \operatorname{vec}_r W}
       = \begin{pmatrix} I_m \otimes x^{(1)T} \\ \vdots \\ I_m \otimes x^{(N)T}\end{pmatrix}
       = K_{m,N}(I_m \otimes X), \qquad
    \frac{\partial Z}{\partial b} = \mathbf 1_N \otimes I_m, \qquad
    \frac{\partial Z}{\partial \operatorname{vec}_r X} = I_N \otimes W,

held as a :class:`~structjac.structures.StackedKronecker` (stores :math:`X`), a
``Kronecker(Dense(ones (N, 1)), Identity(m))`` (stores :math:`N` numbers) and a
``Kronecker(Identity(N), Dense(W))`` (stores :math:`W`): :math:`O(Nd + md)` numbers where
the dense matrices take :math:`Nm \cdot md`, :math:`Nm \cdot m` and :math:`Nm \cdot Nd`.
Why a stack and not a Kronecker product: :math:`\partial Z/\partial W` has entries
:math:`\delta_{ii'} X_{kj}` at row :math:`(k, i)`, column :math:`(i', j)`; it is a Kronecker
product only after a row permutation (the commutation matrix :math:`K_{m,N}`) or a column
permutation (:math:`(X \otimes I_m) K_{m,d}`), and the stack applies in one reshape and
one matrix product (:math:`J\operatorname{vec}_r V = \operatorname{vec}_r(X V^T)`,
:math:`\operatorname{vec}_r(G)^T J = \operatorname{vec}_r(G^T X)^T`) with no permutation stored.
The activation's batch ``Diagonal`` composed onto these gives ``RowScaled`` structures (the
diagonal kept beside the factor), never an :math:`Nm \times Nd` array: the rule table maps
``Diagonal @ StackedKronecker`` to a ``RowScaled``, and ``Diagonal @ Kronecker`` for
:math:`I_N \otimes W` and :math:`\mathbf 1_N \otimes I_m` (Kronecker products with no
one-row factor) too.

The artificial neuron (:math:`m = 1`) over a batch: :math:`z^{(k)} = w \cdot x^{(k)} + b`,
:math:`\partial z/\partial w = X` (``Dense``), :math:`\partial z/\partial b = \mathbf 1`
(a ``Dense`` column), :math:`\partial z/\partial x^{(k)} = e_k w^T` (``BlockRow(k, w, N)``),
:math:`\partial a/\partial z = \operatorname{diag}(a^{(k)}(1 - a^{(k)}))` for the sigmoid.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import ops as _ops
from .structures import (
    BlockRow,
    Dense,
    Identity,
    Jacobian,
    Kronecker,
    StackedKronecker,
)

__all__ = [
    "ACTIVATIONS",
    "get_activation",
    "DenseLayer",
    "LayerJacobians",
    "dense_jacobians",
    "NeuronJacobians",
    "neuron_jacobians",
]

#: Activation names accepted wherever an activation is asked for (``None`` is the identity).
ACTIVATIONS = {
    "sigmoid": _ops.sigmoid,
    "tanh": _ops.tanh,
    "relu": _ops.relu,
    "leaky_relu": _ops.leaky_relu,
    "softplus": _ops.softplus,
    "identity": None,
    "linear": None,
    "none": None,
}


def get_activation(activation):
    """Return the op for ``activation``: a name from :data:`ACTIVATIONS`, an op, or None.

    Examples
    --------
    >>> from structjac.layers import get_activation
    >>> get_activation("tanh")
    structjac.ops.tanh
    >>> get_activation(None) is None
    True
    """
    if activation is None:
        return None
    if isinstance(activation, str):
        try:
            return ACTIVATIONS[activation.lower()]
        except KeyError:
            raise ValueError(
                f"unknown activation {activation!r}; valid names are "
                + ", ".join(repr(k) for k in ACTIVATIONS)
            ) from None
    if isinstance(activation, _ops.UnaryOp):
        return activation
    raise TypeError(f"activation must be a name, a structjac.ops unary op or None, got {activation!r}")


def activation_name(op) -> str:
    """Return a short name of an activation op (``"identity"`` for None)."""
    return "identity" if op is None else getattr(op, "name", repr(op))


def _derivative_diagonal(op, z, a):
    """diag(g'(z)) over z.size values; Identity when there is no activation."""
    if op is None:
        return Identity(z.size, dtype=z.dtype)
    return op.jacobian(z)


def _check_layer(W, b):
    W = np.asarray(W)
    if W.ndim != 2:
        raise ValueError(f"W must be 2-D (m, d), got shape {W.shape}")
    if W.dtype.kind not in "f":
        W = W.astype(np.float64)
    m = W.shape[0]
    if b is None:
        b = np.zeros(m, dtype=W.dtype)
    b = np.asarray(b)
    if b.shape != (m,):
        raise ValueError(f"b must have shape ({m},) for W of shape {W.shape}, got {b.shape}")
    return W, b


@dataclass(frozen=True)
class LayerJacobians:
    r"""The Jacobians of one dense layer :math:`z = Wx + b`, :math:`a = g(z)`.

    For one sample (``batch`` is False) ``z`` and ``a`` have shape ``(m,)``; for a batch
    they have shape ``(N, m)`` and every Jacobian is over ``vec_r(Z)`` (length ``N*m``).
    Columns: ``dz_dW`` over :math:`\operatorname{vec}_r W` (``m*d``), ``dz_db`` over
    :math:`b`, ``dz_dx`` over :math:`x` (``d``) or :math:`\operatorname{vec}_r X` (``N*d``).
    ``da_*`` are ``da_dz @ dz_*`` through the rule table.
    """

    z: np.ndarray
    a: np.ndarray
    x: np.ndarray
    W: np.ndarray
    batch: bool
    dz_dW: Jacobian
    dz_db: Jacobian
    dz_dx: Jacobian
    da_dz: Jacobian
    da_dW: Jacobian
    da_db: Jacobian
    da_dx: Jacobian

    @property
    def m(self) -> int:
        """int: outputs of the layer."""
        return self.W.shape[0]

    def dz_dw(self, i: int) -> BlockRow:
        r""":math:`\partial z/\partial w_i`: the lecture's block row (row :math:`i` is :math:`x^T`).

        Over a batch, rows :math:`(k, i)` for every sample :math:`k` hold :math:`x^{(k)T}`.
        """
        m = self.m
        i = int(i)
        if not -m <= i < m:
            raise IndexError(f"weight row {i} out of range for m = {m}")
        i %= m
        if not self.batch:
            return BlockRow(i, self.x, m)
        N = self.x.shape[0]
        return BlockRow(np.arange(N) * m + i, self.x, N * m)

    def da_dw(self, i: int) -> Jacobian:
        r""":math:`\partial a/\partial w_i = \operatorname{diag}(g') \partial z/\partial w_i`: row :math:`i` is :math:`g'_i x^T`."""
        return self.da_dz @ self.dz_dw(i)

    def dz_dx_sample(self, k: int) -> BlockRow:
        r"""Over a batch, :math:`\partial \operatorname{vec}_r Z/\partial x^{(k)}`: rows :math:`(k, \cdot)` hold :math:`W`."""
        if not self.batch:
            raise ValueError("dz_dx_sample is for a batch; for one sample use dz_dx")
        N = self.x.shape[0]
        k = int(k) % N
        m = self.m
        return BlockRow(np.arange(k * m, (k + 1) * m), self.W, N * m)

    def items(self):
        """Return ``[(name, Jacobian), ...]`` of the layer's Jacobians (for tables)."""
        return [(n, getattr(self, n)) for n in
                ("dz_dW", "dz_db", "dz_dx", "da_dz", "da_dW", "da_db", "da_dx")]


def dense_jacobians(W, b, x, activation="sigmoid") -> LayerJacobians:
    r"""Forward a dense layer and return its Jacobians as structures.

    Parameters
    ----------
    W : array_like, shape (m, d)
    b : array_like, shape (m,), or None (zeros)
    x : array_like, shape (d,) for one sample or (N, d) for a mini-batch
    activation : str, structjac op or None
        ``"sigmoid"``, ``"tanh"``, ``"relu"``, ``"leaky_relu"``, ``"softplus"``, an op, or
        None (no activation: ``a = z`` and ``da_dz`` is the identity).

    Returns
    -------
    LayerJacobians

    Examples
    --------
    One sample, the lecture's layer with three outputs:

    >>> import numpy as np, structjac as sj
    >>> from structjac.layers import dense_jacobians
    >>> W = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]); b = np.zeros(3)
    >>> J = dense_jacobians(W, b, np.array([1.0, 2.0]), "sigmoid")
    >>> J.dz_dw(1).to_dense()
    array([[0., 0.],
           [1., 2.],
           [0., 0.]])
    >>> type(J.da_dw(1)).__name__, type(J.dz_dW).__name__, type(J.da_dW).__name__
    ('BlockRow', 'Kronecker', 'Kronecker')
    >>> g = J.a * (1 - J.a)                         # sigmoid' = a (1 - a)
    >>> bool(np.allclose(J.da_dx.to_dense(), g[:, None] * W))
    True

    A batch of N = 4 samples: nothing of size N*m x m*d is built.

    >>> X = np.arange(8.0).reshape(4, 2) / 8
    >>> JB = dense_jacobians(W, b, X, "tanh")
    >>> JB.dz_dW
    StackedKronecker(shape=(12, 6), dtype=float64, stored=64 B, dense=576 B)
    >>> type(JB.da_dW).__name__, type(JB.dz_dx).__name__
    ('RowScaled', 'Kronecker')
    """
    W, b = _check_layer(W, b)
    op = get_activation(activation)
    x = np.asarray(x)
    if x.dtype.kind not in "f":
        x = x.astype(np.float64)
    dtype = np.result_type(W.dtype, b.dtype, x.dtype)
    W = W.astype(dtype, copy=False)
    b = b.astype(dtype, copy=False)
    x = x.astype(dtype, copy=False)
    m, d = W.shape
    if x.ndim == 1:
        if x.shape[0] != d:
            raise ValueError(f"x of shape {x.shape} does not fit W of shape {W.shape}")
        z = W @ x + b
        a = z.copy() if op is None else op(z)
        dz_dW = Kronecker(Identity(m, dtype=dtype), Dense(x[None, :]))
        dz_db = Identity(m, dtype=dtype)
        dz_dx = Dense(W)
        batch = False
    elif x.ndim == 2:
        if x.shape[1] != d:
            raise ValueError(f"X of shape {x.shape} does not fit W of shape {W.shape}")
        N = x.shape[0]
        z = x @ W.T + b
        a = z.copy() if op is None else op(z)
        dz_dW = StackedKronecker(x, m)
        dz_db = Kronecker(Dense(np.ones((N, 1), dtype=dtype)), Identity(m, dtype=dtype))
        dz_dx = Kronecker(Identity(N, dtype=dtype), Dense(W))
        batch = True
    else:
        raise ValueError(f"x must be (d,) or (N, d), got shape {x.shape}")
    da_dz = _derivative_diagonal(op, z, a)
    return LayerJacobians(
        z=z, a=a, x=x, W=W, batch=batch,
        dz_dW=dz_dW, dz_db=dz_db, dz_dx=dz_dx, da_dz=da_dz,
        da_dW=da_dz @ dz_dW, da_db=da_dz @ dz_db, da_dx=da_dz @ dz_dx,
    )


class DenseLayer:
    r"""A dense layer :math:`a = g(Wx + b)` with structured Jacobians.

    Parameters
    ----------
    W : array_like, shape (m, d)
    b : array_like, shape (m,), or None
    activation : str, op or None, default "sigmoid"

    Examples
    --------
    >>> import numpy as np
    >>> from structjac.layers import DenseLayer
    >>> layer = DenseLayer(np.ones((2, 3)), np.zeros(2), activation="relu")
    >>> layer.forward(np.array([[1.0, -2.0, 0.5]]))
    array([[0., 0.]])
    >>> layer.jacobians(np.ones((5, 3))).dz_dW.shape
    (10, 6)
    """

    def __init__(self, W, b=None, activation="sigmoid"):
        self.W, self.b = _check_layer(W, b)
        self.activation = get_activation(activation)

    @property
    def shape(self):
        """tuple: ``(m, d)``, outputs by inputs."""
        return self.W.shape

    def forward(self, x):
        """Return :math:`g(Wx + b)` for ``x`` of shape ``(d,)`` or ``(N, d)``."""
        x = np.asarray(x)
        z = x @ self.W.T + self.b
        return z if self.activation is None else self.activation(z)

    __call__ = forward

    def jacobians(self, x) -> LayerJacobians:
        """Return :func:`dense_jacobians` of this layer at ``x``."""
        return dense_jacobians(self.W, self.b, x, self.activation)

    def __repr__(self):
        m, d = self.W.shape
        return f"DenseLayer({d} -> {m}, activation={activation_name(self.activation)}, dtype={self.W.dtype})"


@dataclass(frozen=True)
class NeuronJacobians:
    r"""The Jacobians of one neuron :math:`z^{(k)} = w\cdot x^{(k)} + b` over a batch of N samples."""

    z: np.ndarray
    a: np.ndarray
    w: np.ndarray
    X: np.ndarray
    dz_dw: Jacobian
    dz_db: Jacobian
    da_dz: Jacobian
    da_dw: Jacobian
    da_db: Jacobian

    def dz_dx(self, k: int) -> BlockRow:
        r""":math:`\partial z/\partial x^{(k)} = e_k w^T`: only row :math:`k` is nonzero."""
        return BlockRow(int(k), self.w, self.X.shape[0])

    def da_dx(self, k: int) -> Jacobian:
        r""":math:`\partial a/\partial x^{(k)} = \operatorname{diag}(g') e_k w^T = e_k (g'_k w)^T`."""
        return self.da_dz @ self.dz_dx(k)

    def items(self):
        """Return ``[(name, Jacobian), ...]`` (for tables)."""
        return [("dz_dw", self.dz_dw), ("dz_db", self.dz_db), ("dz_dx(0)", self.dz_dx(0)),
                ("da_dz", self.da_dz), ("da_dw", self.da_dw), ("da_db", self.da_db),
                ("da_dx(0)", self.da_dx(0))]


def neuron_jacobians(w, b, X, activation="sigmoid") -> NeuronJacobians:
    r"""The lecture's artificial neuron over a mini-batch, with its Jacobians.

    .. math::

        z = X w + b\mathbf 1, \quad a = g(z), \qquad
        \frac{\partial z}{\partial w} = X, \quad
        \frac{\partial z}{\partial b} = \mathbf 1, \quad
        \frac{\partial z}{\partial x^{(k)}} = e_k w^T, \quad
        \frac{\partial a}{\partial z} = \operatorname{diag}(g'(z^{(k)})).

    For the sigmoid the diagonal is computed from the output as the lecture writes it,
    :math:`a^{(k)}(1 - a^{(k)})`. Row :math:`k` of ``da_dw`` is the gradient of
    :math:`a^{(k)}` with respect to :math:`w` (a per-sample gradient).

    Parameters
    ----------
    w : array_like, shape (d,)
    b : float
    X : array_like, shape (N, d)
    activation : str, op or None, default "sigmoid"

    Examples
    --------
    >>> import numpy as np
    >>> from structjac.layers import neuron_jacobians
    >>> X = np.array([[1.0, 2.0], [0.0, -1.0], [3.0, 0.5]])
    >>> J = neuron_jacobians(np.array([0.5, -0.25]), 0.1, X)
    >>> type(J.dz_dw).__name__, type(J.da_dz).__name__, type(J.dz_dx(1)).__name__
    ('Dense', 'Diagonal', 'BlockRow')
    >>> bool(np.allclose(J.da_dz.diagonal(), J.a * (1 - J.a)))
    True
    >>> bool(np.allclose(J.da_dw.to_dense(), (J.a * (1 - J.a))[:, None] * X))
    True
    """
    X = np.asarray(X)
    w = np.asarray(w)
    if X.ndim != 2 or w.ndim != 1 or X.shape[1] != w.shape[0]:
        raise ValueError(f"neuron: X must be (N, d) and w (d,); got {X.shape} and {w.shape}")
    dtype = np.result_type(X.dtype, w.dtype, np.float32 if X.dtype == np.float32 else np.float64)
    X = X.astype(dtype, copy=False)
    w = w.astype(dtype, copy=False)
    op = get_activation(activation)
    N = X.shape[0]
    z = X @ w + dtype.type(b)
    a = z.copy() if op is None else op(z)
    if op is None:
        da_dz = Identity(N, dtype=dtype)
    elif isinstance(op, _ops.OutputUnaryOp):
        da_dz = op.jacobian_from_output(a)          # sigmoid: a(1 - a); tanh: (1 + a)(1 - a)
    else:
        da_dz = op.jacobian(z)
    dz_dw = Dense(X)
    dz_db = Dense(np.ones((N, 1), dtype=dtype))
    return NeuronJacobians(z=z, a=a, w=w, X=X, dz_dw=dz_dw, dz_db=dz_db, da_dz=da_dz,
                           da_dw=da_dz @ dz_dw, da_db=da_dz @ dz_db)
