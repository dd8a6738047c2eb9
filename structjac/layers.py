r"""Jacobians of a dense layer and of an artificial neuron, for one sample or a mini-batch.

A dense layer maps :math:`x \in \mathbb{F}^d` to :math:`z = Wx + b`, :math:`a = g(z)`,
with :math:`W \in \mathbb{F}^{m \times d}` (rows :math:`w_i^T`). Its Jacobians are

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

from numpy.typing import ArrayLike

from dataclasses import dataclass

import numpy as np

from . import ops as _ops
from .kernels import layer as _layer
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
    "DenseLayer",
    "LayerJacobians",
    "NeuronJacobians",
    "batch_structures",
    "dense_jacobians",
    "get_activation",
    "neuron_jacobians",
]

#: Activation names accepted wherever an activation is asked for (``None`` is the identity).
#: The ops are those of the kernels' scalar table that have fused layer kernels.
ACTIVATIONS = {
    **{
        name: getattr(_ops, name)
        for name in _ops.unary.TABLE_OPS
        if getattr(_ops, name).layer_activation is not None
    },
    "identity": None,
    "linear": None,
    "none": None,
}


def get_activation(activation: str | _ops.UnaryOp | None) -> "_Activation | None":
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
    raise TypeError(
        f"activation must be a name, a structjac.ops unary op or None, got {activation!r}"
    )


def activation_name(op) -> str:
    """Return a short name of an activation op (``"identity"`` for None)."""
    return "identity" if op is None else getattr(op, "name", repr(op))


def _derivative_diagonal(op, z, a):
    """diag(g'(z)) over z.size values; Identity when there is no activation."""
    if op is None:
        return Identity(z.size, dtype=z.dtype)
    return op.jacobian(z)


def real_array(a, name):
    """``np.asarray(a)``, refusing dtypes a real network would truncate or parse.

    Complex values would lose their imaginary part and strings would be parsed as
    numbers, so both raise a ``TypeError`` naming the argument and its dtype.
    """
    arr = np.asarray(a)
    if arr.dtype.kind not in "biuf":
        hint = (
            ": the layers and networks are real; pass the real part explicitly if that is meant"
            if arr.dtype.kind == "c"
            else ": a real numeric array is needed"
        )
        raise TypeError(f"{name} has dtype {arr.dtype}{hint}")
    return arr


def float_dtype(*dtypes) -> np.dtype:
    """The floating dtype layers and networks compute in, for inputs of ``dtypes``.

    The policy: float32 and float64 are kept (mixed: float64); float16 is promoted to
    float32 (no kernel computes in half precision, and a float16 input must not come
    back as float64); integers, booleans and anything wider than float64 compute in
    float64.

    Examples
    --------
    >>> import numpy as np
    >>> from structjac.layers import float_dtype
    >>> float_dtype(np.float16), float_dtype(np.float32, np.int64), float_dtype(np.float32)
    (dtype('float32'), dtype('float64'), dtype('float32'))
    """
    out = np.dtype(np.float32)
    for dt in dtypes:
        dt = np.dtype(dt)
        if not (dt.kind == "f" and dt.itemsize <= 4):
            return np.dtype(np.float64)
    return out


def _row_squares(A, rowsq):
    """``rowsq[k] = sum_j A[k, j]**2`` (an activation without a fused kernel); nothing
    when ``rowsq`` is None."""
    if rowsq is not None:
        np.einsum("ij,ij->i", A, A, out=rowsq)


class _Activation:
    """How a layer computes :math:`g` and :math:`g'` for one activation op.

    The op is asked once, here: whether it has a fused layer kernel
    (``op.layer_activation``) and whether its derivative comes from the output
    (sigmoid, tanh: ``a(1 - a)``, ``(1 + a)(1 - a)``) or needs the pre-activation.
    :mod:`structjac.nn` calls only these methods; a new activation needs no change there.
    """

    __slots__ = ("from_output", "fused", "op")

    def __init__(self, op):
        self.op = op
        if op is None:
            self.fused, self.from_output = ("identity", ()), True
        else:
            self.fused = op.layer_activation
            if self.fused is not None:
                self.from_output = _layer.ACTIVATIONS[self.fused[0]]
            else:
                self.from_output = isinstance(op, _ops.OutputUnaryOp)

    def forward(self, Z, b, out, rowsq=None):
        """``Z`` holds ``A_prev @ W.T``; return ``(A, kept)`` where ``kept`` is what the
        backward pass needs besides ``A`` (``Z + b``, or None).  ``out()`` gives a buffer;
        ``rowsq`` (N,), when given, receives the row sums of squares of ``A``."""
        if self.fused is not None:
            name, p = self.fused
            if self.from_output:  # in place: g'(z) from A
                return _layer.bias_activation(Z, b, name, p, rowsq=rowsq), None
            return _layer.bias_activation(Z, b, name, p, out=out(), rowsq=rowsq), Z
        Z += b
        if self.from_output:
            A, kept = self.op(Z, out=Z), None
        else:
            A, kept = self.op(Z, out=out()), Z
        _row_squares(A, rowsq)
        return A, kept

    def vjp_bias_grad(self, G, Z, A, rowsq=None):
        """``G * g'`` written over ``G`` and the bias gradient ``1^T G``, fused (and the
        row sums of squares of the new ``G`` into ``rowsq`` when given)."""
        if self.fused is not None:
            name, p = self.fused
            return G, _layer.activation_vjp_bias_grad(
                G, A if self.from_output else Z, name, p, rowsq=rowsq
            )
        if self.from_output:
            G = self.op.vjp_from_output(A, G, out=G)
        else:
            G = self.op.vjp(Z, G, out=G)
        _row_squares(G, rowsq)
        return G, G.sum(axis=0)

    def outer_vjp_bias_grad(self, g, w, Z, A, out, rowsq=None):
        """As :meth:`vjp_bias_grad` for ``G = g w`` (one unit above), the outer product
        formed inside the pass; ``out()`` gives the buffer for ``G``."""
        if self.fused is not None:
            name, p = self.fused
            return _layer.outer_activation_vjp_bias_grad(
                g, w, A if self.from_output else Z, name, p, out=out(), rowsq=rowsq
            )
        return self.vjp_bias_grad(np.multiply(g, w, out=out()), Z, A, rowsq)

    def jacobian(self, Z, A):
        """``diag(g')`` over ``A.size`` values, from the output when the op allows."""
        if self.op is None:
            return Identity(A.size, dtype=A.dtype)
        if self.from_output:
            return self.op.jacobian_from_output(A)
        return self.op.jacobian(Z)


def batch_structures(
    W: ArrayLike, X: ArrayLike, copy: bool = True
) -> tuple[StackedKronecker, Jacobian, Jacobian]:
    r"""The Jacobians of :math:`Z = X W^T + \mathbf 1_N b^T` over a batch, as structures.

    Returns ``(dz_dW, dz_db, dz_dx)``: ``StackedKronecker(X, m)``,
    ``Kronecker(Dense(ones (N, 1)), Identity(m))`` and ``Kronecker(Identity(N), Dense(W))``
    (see the module documentation).  ``copy=False`` lets the first keep ``X`` itself.

    Examples
    --------
    >>> import numpy as np
    >>> from structjac.layers import batch_structures
    >>> [J.shape for J in batch_structures(np.ones((2, 3)), np.ones((4, 3)))]
    [(8, 6), (8, 2), (8, 12)]
    """
    N = X.shape[0]
    m = W.shape[0]
    dtype = X.dtype
    return (
        StackedKronecker(X, m, copy=copy),
        Kronecker(Dense(np.ones((N, 1), dtype=dtype)), Identity(m, dtype=dtype)),
        Kronecker(Identity(N, dtype=dtype), Dense(W)),
    )


def _check_layer(W, b):
    W = real_array(W, "W")
    if W.ndim != 2:
        raise ValueError(f"W must be 2-D (m, d), got shape {W.shape}")
    m = W.shape[0]
    if b is None:
        b = np.zeros(m, dtype=float_dtype(W.dtype))
    b = real_array(b, "b")
    if b.shape != (m,):
        raise ValueError(f"b must have shape ({m},) for W of shape {W.shape}, got {b.shape}")
    dtype = float_dtype(W.dtype, b.dtype)
    return W.astype(dtype, copy=False), b.astype(dtype, copy=False)


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
        r""":math:`\partial z/\partial w_i`: a block row (row :math:`i` is :math:`x^T`).

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
        k = int(k)
        if not -N <= k < N:
            raise IndexError(f"sample {k} out of range for a batch of N = {N} samples")
        k %= N
        m = self.m
        return BlockRow(np.arange(k * m, (k + 1) * m), self.W, N * m)

    def items(self) -> list[tuple[str, Jacobian]]:
        """Return ``[(name, Jacobian), ...]`` of the layer's Jacobians (for tables)."""
        return [
            (n, getattr(self, n))
            for n in ("dz_dW", "dz_db", "dz_dx", "da_dz", "da_dW", "da_db", "da_dx")
        ]


def dense_jacobians(
    W: ArrayLike,
    b: ArrayLike | None,
    x: ArrayLike,
    activation: str | _ops.UnaryOp | None = "sigmoid",
) -> LayerJacobians:
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
    One sample through a layer with three outputs:

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
    x = real_array(x, "x")
    dtype = float_dtype(W.dtype, x.dtype)
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
        z = x @ W.T + b
        a = z.copy() if op is None else op(z)
        dz_dW, dz_db, dz_dx = batch_structures(W, x)
        batch = True
    else:
        raise ValueError(f"x must be (d,) or (N, d), got shape {x.shape}")
    da_dz = _derivative_diagonal(op, z, a)
    return LayerJacobians(
        z=z,
        a=a,
        x=x,
        W=W,
        batch=batch,
        dz_dW=dz_dW,
        dz_db=dz_db,
        dz_dx=dz_dx,
        da_dz=da_dz,
        da_dW=da_dz @ dz_dW,
        da_db=da_dz @ dz_db,
        da_dx=da_dz @ dz_dx,
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

    def __init__(
        self,
        W: ArrayLike,
        b: ArrayLike | None = None,
        activation: str | _ops.UnaryOp | None = "sigmoid",
    ) -> None:
        self.W, self.b = _check_layer(W, b)
        self.activation = get_activation(activation)

    @property
    def shape(self) -> tuple[int, int]:
        """tuple: ``(m, d)``, outputs by inputs."""
        return self.W.shape

    def forward(self, x: ArrayLike) -> np.ndarray:
        """Return :math:`g(Wx + b)` for ``x`` of shape ``(d,)`` or ``(N, d)``.

        Computed in :func:`float_dtype` of ``W`` and ``x`` (float16 becomes float32).
        """
        x = real_array(x, "x")
        if x.ndim not in (1, 2) or x.shape[-1] != self.W.shape[1]:
            raise ValueError(
                f"x of shape {x.shape} does not fit W of shape {self.W.shape}: "
                f"expected ({self.W.shape[1]},) or (N, {self.W.shape[1]})"
            )
        dtype = float_dtype(self.W.dtype, x.dtype)
        z = x.astype(dtype, copy=False) @ self.W.T.astype(dtype, copy=False) + self.b.astype(
            dtype, copy=False
        )
        return z if self.activation is None else self.activation(z)

    __call__ = forward

    def jacobians(self, x: ArrayLike) -> LayerJacobians:
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
        N = self.X.shape[0]
        k = int(k)
        if not -N <= k < N:
            raise IndexError(f"sample {k} out of range for a batch of N = {N} samples")
        return BlockRow(k % N, self.w, N)

    def da_dx(self, k: int) -> Jacobian:
        r""":math:`\partial a/\partial x^{(k)} = \operatorname{diag}(g') e_k w^T = e_k (g'_k w)^T`."""
        return self.da_dz @ self.dz_dx(k)

    def items(self) -> list[tuple[str, Jacobian]]:
        """Return ``[(name, Jacobian), ...]`` (for tables)."""
        return [
            ("dz_dw", self.dz_dw),
            ("dz_db", self.dz_db),
            ("dz_dx(0)", self.dz_dx(0)),
            ("da_dz", self.da_dz),
            ("da_dw", self.da_dw),
            ("da_db", self.da_db),
            ("da_dx(0)", self.da_dx(0)),
        ]


def neuron_jacobians(
    w: ArrayLike,
    b: float | ArrayLike,
    X: ArrayLike,
    activation: str | _ops.UnaryOp | None = "sigmoid",
) -> NeuronJacobians:
    r"""An artificial neuron (one output) over a mini-batch, with its Jacobians.

    .. math::

        z = X w + b\mathbf 1, \quad a = g(z), \qquad
        \frac{\partial z}{\partial w} = X, \quad
        \frac{\partial z}{\partial b} = \mathbf 1, \quad
        \frac{\partial z}{\partial x^{(k)}} = e_k w^T, \quad
        \frac{\partial a}{\partial z} = \operatorname{diag}(g'(z^{(k)})).

    For the sigmoid the diagonal is computed from the output,
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
    X = real_array(X, "X")
    w = real_array(w, "w")
    if X.ndim != 2 or w.ndim != 1 or X.shape[1] != w.shape[0]:
        raise ValueError(f"neuron: X must be (N, d) and w (d,); got {X.shape} and {w.shape}")
    dtype = float_dtype(X.dtype, w.dtype)
    X = X.astype(dtype, copy=False)
    w = w.astype(dtype, copy=False)
    op = get_activation(activation)
    N = X.shape[0]
    z = X @ w + dtype.type(b)
    a = z.copy() if op is None else op(z)
    da_dz = _Activation(op).jacobian(z, a)  # sigmoid: a(1 - a); tanh: (1 + a)(1 - a)
    dz_dw = Dense(X)
    dz_db = Dense(np.ones((N, 1), dtype=dtype))
    return NeuronJacobians(
        z=z,
        a=a,
        w=w,
        X=X,
        dz_dw=dz_dw,
        dz_db=dz_db,
        da_dz=da_dz,
        da_dw=da_dz @ dz_dw,
        da_db=da_dz @ dz_db,
    )
