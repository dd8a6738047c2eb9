r"""Fused kernels of a dense layer: bias + activation forward, vjp + bias gradient backward.

A dense layer over a batch computes :math:`Z = A_{l-1} W^T` (BLAS), then
:math:`A = g(Z + \mathbf 1 b^T)`; its backward pass takes the cotangent
:math:`G = \partial J / \partial A` to :math:`G \odot g'` and then needs the bias
gradient :math:`\mathbf 1^T (G \odot g')`.  Done with NumPy these are several
passes over an :math:`N \times m` array (``Z += b``; four for a sigmoid; the vjp;
``G.sum(axis=0)``), each one reading and writing memory.  Here each is one pass:

* :func:`bias_activation` -- in place, :math:`Z_{kj} \leftarrow g(Z_{kj} + b_j)`
  (the derivative of sigmoid and tanh is then taken from the output);
* :func:`bias_activation_keep` -- :math:`Z_{kj} \leftarrow Z_{kj} + b_j` and
  :math:`A_{kj} = g(Z_{kj})` (for the activations whose derivative needs ``z``);
* :func:`activation_vjp_bias_grad` -- in place, :math:`G_{kj} \leftarrow G_{kj}\,
  g'_{kj}` and returns :math:`\mathrm{gb}_j = \sum_k G_{kj}` (after the update);
* :func:`outer_activation_vjp_bias_grad` -- the same for a cotangent that is an
  outer product :math:`G = g w^T` (the layer below a layer of one unit), which is
  then never written to memory by itself.

Activations (``activation=``), with the parameters ``p1, p2`` they read:

================  =============================================  =====================================  ===========
name              g(z)                                           g' (from)                              p1, p2
================  =============================================  =====================================  ===========
``"sigmoid"``     1/(1+e) (z >= 0), e/(1+e) (z < 0), e=exp(-|z|)  a (1 - a)  (output a)                  --
``"tanh"``        :func:`~structjac.kernels._tanh.vtanh`         (1 + a)(1 - a)  (output a)             --
``"relu"``        max(z, 0), NaN stays NaN                       1 (z>0), 0 (z<0), p1 (z=0), NaN (z)    at_zero
``"leaky_relu"``  z (z >= 0), p1 z (z < 0)                       1 (z>0), p1 (z<0), p2 (z=0), NaN (z)   slope, at_zero
``"softplus"``    max(z, 0) + log1p(exp(-|z|)) (vexp, vlog1p)    sigmoid(z)  (z)                        --
``"silu"``        z sigmoid(z)                                   s + z s (1 - s), s = sigmoid(z)  (z)   --
``"identity"``    z                                              1                                      --
================  =============================================  =====================================  ===========

These are the entries of :data:`structjac.kernels._scalars.ACTIVATIONS` with
``layer=True``, the scalar functions :mod:`structjac.kernels.unary` is generated
from too (so the values agree with ``ops.sigmoid`` etc.); the derivative is taken
from the output where the entry has that form.  Each kernel body is written once,
with a global scalar function ``_g`` (value) or ``_dg`` (derivative), and compiled
per activation by :func:`~structjac.kernels._config.serial_and_parallel` with
``bind`` (serial and parallel, each with its own cache index).  The scalar functions
are compiled with ``forceinline`` so that LLVM inlines them and vectorises the loop
over a row.

In place, one array
-------------------
A loop ``out[i] = f(x[i])`` with ``x`` and ``out`` two arguments is vectorised by
LLVM behind a run-time check that the two do not overlap; when they are the same
array the check fails and the scalar loop runs (several times slower).  The
in-place kernels here therefore take the array once (``Z``, ``G``): reading and
writing one element of one array is a dependence LLVM sees through.

Bias gradient: summation
------------------------
:math:`\mathrm{gb}_j = \sum_k G_{kj}` over :math:`N` rows.  The rows are cut into
chunks of :data:`SUM_CHUNK_ROWS`; each chunk sums its rows in the array dtype (the
loop over ``j`` is vectorised), and the chunk sums are added in float64 and rounded
once to the dtype.  The error is that of a sum of :data:`SUM_CHUNK_ROWS` terms plus
one rounding (float32: worst case ``256 u``, typically ``~16 u`` relative to
:math:`\sum_k |G_{kj}|`), not of :math:`N` terms as for NumPy's ``G.sum(axis=0)``
(which adds the rows one after the other).  The chunks do not depend on the
number of threads: serial and parallel give the same bits.

Examples
--------
>>> import numpy as np
>>> from structjac.kernels import layer
>>> Z = np.array([[0.0, 1.0], [-1.0, 2.0]])                 # X @ W.T
>>> A = np.empty_like(Z)
>>> layer.bias_activation(Z, np.array([0.5, -1.0]), "relu", out=A)
array([[0.5, 0. ],
       [0. , 1. ]])
>>> Z                                                       # z = X @ W.T + b, kept
array([[ 0.5,  0. ],
       [-0.5,  1. ]])
>>> G = np.ones((2, 2))
>>> layer.activation_vjp_bias_grad(G, Z, "relu")            # relu'(z); relu'(0) = 1
array([1., 2.])
>>> G
array([[1., 1.],
       [0., 1.]])
"""

from __future__ import annotations

import numba
import numpy as np

from ._alloc import empty
from ._config import as_float_array, float_dtype, pick, serial_and_parallel
from ._scalars import ACTIVATIONS as _TABLE
from ._scalars import SOURCE_TAG, zero

__all__ = [
    "ACTIVATIONS",
    "DEFAULT_PARAMS",
    "SUM_CHUNK_ROWS",
    "bias_activation",
    "activation_vjp_bias_grad",
    "outer_activation_vjp_bias_grad",
]

#: Rows per chunk of the bias-gradient sum (see the module docstring).
SUM_CHUNK_ROWS = 256

#: name -> (value, derivative, the derivative reads the output (True) or z (False)):
#: the entries of the scalar table with ``layer=True``; the derivative from the output
#: when the entry has one.
_SCALARS = {
    name: (e.value, e.from_output, True)
    if e.from_output is not None
    else (e.value, e.derivative, False)
    for name, e in _TABLE.items()
    if e.layer
}

#: The activation names, and whether g' is computed from the output (else from z).
ACTIVATIONS = {name: from_output for name, (_, _, from_output) in _SCALARS.items()}


# --- the kernel bodies, each written once; _g / _dg are bound per activation ---


def _g(v, p1, p2):  # placeholder: bound per activation
    raise NotImplementedError


def _dg(s, p1, p2):  # placeholder: bound per activation
    raise NotImplementedError


def _bias_act(Z, b, p1, p2, rowsq):  # Z[k, j] <- g(Z[k, j] + b[j]), one array
    # rowsq: shape (N,) for the output's row sums of squares, or (0,) for none
    squares = rowsq.size != 0
    for k in numba.prange(Z.shape[0]):
        z = Z[k]
        if squares:
            q = zero(p1)
            for j in range(z.size):
                v = _g(z[j] + b[j], p1, p2)
                z[j] = v
                q += v * v
            rowsq[k] = q
        else:
            for j in range(z.size):
                z[j] = _g(z[j] + b[j], p1, p2)


def _bias_act_keep(Z, b, p1, p2, A, rowsq):  # Z[k, j] <- Z[k, j] + b[j]; A[k, j] = g(Z[k, j])
    squares = rowsq.size != 0
    for k in numba.prange(Z.shape[0]):
        z = Z[k]
        a = A[k]
        if squares:
            q = zero(p1)
            for j in range(z.size):
                v = z[j] + b[j]
                z[j] = v
                u = _g(v, p1, p2)
                a[j] = u
                q += u * u
            rowsq[k] = q
        else:
            for j in range(z.size):
                v = z[j] + b[j]
                z[j] = v
                a[j] = _g(v, p1, p2)


def _vjp_bias_grad(G, S, p1, p2, rows, partial, rowsq):
    # G[k, j] <- G[k, j] g'(S[k, j]); partial[c, j] = sum of G[k, j] over chunk c;
    # rowsq[k] = sum of G[k, j]^2 over j when rowsq has shape (N,) (none when (0,))
    n = G.shape[0]
    squares = rowsq.size != 0
    for c in numba.prange(partial.shape[0]):
        acc = partial[c]
        for j in range(acc.size):
            acc[j] = zero(p1)
        stop = min(n, (c + 1) * rows)
        for k in range(c * rows, stop):
            g = G[k]
            s = S[k]
            if squares:
                q = zero(p1)
                for j in range(g.size):
                    v = g[j] * _dg(s[j], p1, p2)
                    g[j] = v
                    acc[j] += v
                    q += v * v
                rowsq[k] = q
            else:
                for j in range(g.size):
                    v = g[j] * _dg(s[j], p1, p2)
                    g[j] = v
                    acc[j] += v


def _outer_vjp_bias_grad(g, w, S, p1, p2, rows, partial, G, rowsq):
    # G[k, j] = (g[k] w[j]) g'(S[k, j]); partial[c, j] = sum of G[k, j] over chunk c
    n = G.shape[0]
    squares = rowsq.size != 0
    for c in numba.prange(partial.shape[0]):
        acc = partial[c]
        for j in range(acc.size):
            acc[j] = zero(p1)
        stop = min(n, (c + 1) * rows)
        for k in range(c * rows, stop):
            gk = g[k]
            out = G[k]
            s = S[k]
            if squares:
                q = zero(p1)
                for j in range(out.size):
                    v = (gk * w[j]) * _dg(s[j], p1, p2)
                    out[j] = v
                    acc[j] += v
                    q += v * v
                rowsq[k] = q
            else:
                for j in range(out.size):
                    v = (gk * w[j]) * _dg(s[j], p1, p2)
                    out[j] = v
                    acc[j] += v


_KERNELS = {}
for _name, (_value, _grad, _) in _SCALARS.items():
    _variant = f"{_name}_{SOURCE_TAG}"  # a new cache entry when a scalar function changes
    _KERNELS[_name] = (
        serial_and_parallel(_bias_act, _variant, bind={"_g": _value}),
        serial_and_parallel(_bias_act_keep, _variant, bind={"_g": _value}),
        serial_and_parallel(_vjp_bias_grad, _variant, bind={"_dg": _grad}),
        serial_and_parallel(_outer_vjp_bias_grad, _variant, bind={"_dg": _grad}),
    )
del _name, _value, _grad, _variant


# --- public wrappers --------------------------------------------------------------

#: Kernels that the wrappers run serially from MEMORY_BOUND_PARALLEL_LIMIT elements on
#: (see structjac.kernels._config.pick); set from measurements (scripts/perf_ops.py).
_MEMORY_BOUND = frozenset()


def _kernels(activation):
    try:
        return _KERNELS[activation]
    except KeyError:
        raise ValueError(
            f"unknown activation {activation!r}; valid names are {', '.join(map(repr, _KERNELS))}"
        ) from None


def _in_place_array(X, name):
    """Check that ``X`` is a writeable C-contiguous 2-D float32/float64 ndarray."""
    if not isinstance(X, np.ndarray):
        raise TypeError(
            f"{name} must be a numpy.ndarray (it is written in place), got {type(X).__name__}"
        )
    if X.ndim != 2:
        raise ValueError(f"{name} must be 2-D (N, m), got shape {X.shape}")
    if X.dtype not in (np.float32, np.float64):
        raise ValueError(
            f"{name} must be float32 or float64 (it is written in place), got {X.dtype}"
        )
    if not X.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous (got strides {X.strides})")
    if not X.flags.writeable:
        raise ValueError(f"{name} is read-only")
    return X


def _read_array(x, shape, dtype, name, other, other_name):
    """``x`` as a C-contiguous array of ``shape`` and ``dtype`` that shares no memory
    with ``other`` (copied when it would)."""
    x = np.asarray(x)
    float_dtype(x)  # rejects complex and non-numeric
    if x.shape != shape:
        raise ValueError(f"{name} has shape {x.shape} but {other_name} has shape {shape}")
    x = as_float_array(x, dtype).reshape(shape)
    if np.shares_memory(x, other):
        x = x.copy()
    return x


#: The parameters an activation reads, with their defaults (those of structjac.ops).
DEFAULT_PARAMS = {
    name: tuple(d for _, d, _ in e.params) for name, e in _TABLE.items() if e.layer and e.params
}


def _typed_params(dtype, activation, params):
    default = DEFAULT_PARAMS.get(activation, ())
    params = tuple(params)
    if len(params) > len(default):
        raise ValueError(f"{activation} takes at most {len(default)} parameters, got {len(params)}")
    p = params + default[len(params) :] + (0.0, 0.0)
    return dtype.type(p[0]), dtype.type(p[1])


#: The ``rowsq`` argument of the kernels when no row sums of squares are asked for
#: (zero-size: nothing is ever written to it).
_NO_ROWSQ = {np.dtype(np.float32): np.empty(0, np.float32), np.dtype(np.float64): np.empty(0)}


def _rowsq(rowsq, N, dtype):
    """The kernels' ``rowsq`` argument: the user's ``(N,)`` array checked, or none."""
    if rowsq is None:
        return _NO_ROWSQ[np.dtype(dtype)]
    if not (
        isinstance(rowsq, np.ndarray)
        and rowsq.shape == (N,)
        and rowsq.dtype == dtype
        and rowsq.flags.c_contiguous
        and rowsq.flags.writeable
    ):
        raise ValueError(
            f"rowsq must be a writeable C-contiguous array of shape ({N},) and dtype "
            f"{np.dtype(dtype)}, got {getattr(rowsq, 'shape', None)} "
            f"{getattr(rowsq, 'dtype', type(rowsq).__name__)}"
        )
    return rowsq


def bias_activation(Z, b, activation, params=(), out=None, rowsq=None):
    r"""Add the bias and apply the activation in one pass; ``Z`` is written in place.

    .. math::

        \text{out is None:}\quad Z_{kj} \leftarrow g(Z_{kj} + b_j); \qquad
        \text{else:}\quad Z_{kj} \leftarrow Z_{kj} + b_j,\ \ \mathrm{out}_{kj} = g(Z_{kj}).

    Parameters
    ----------
    Z : ndarray, shape (N, m)
        float32 or float64, C-contiguous, writeable: the pre-activation without the
        bias (e.g. ``X @ W.T``).  Overwritten (see above).
    b : array_like, shape (m,)
        The bias; converted to the dtype of ``Z``; never written to.
    activation : str
        A name in :data:`ACTIVATIONS` (``"sigmoid"``, ``"tanh"``, ``"relu"``, ...,
        ``"identity"``; see the module docstring).
    params : tuple of float, optional
        ``(at_zero,)`` for relu, ``(slope, at_zero)`` for leaky_relu (only ``slope``
        matters for the value); missing ones take :data:`DEFAULT_PARAMS`.
    out : ndarray, optional
        Shape and dtype of ``Z``, C-contiguous, sharing no memory with ``Z``: receives
        :math:`g(Z + b)` while ``Z`` keeps :math:`Z + b` (for a backward pass that
        needs ``z``).
    rowsq : ndarray, shape (N,), optional
        Receives each row's sum of squares of the result,
        :math:`\sum_j g(Z_{kj} + b_j)^2`, in the same pass (accumulated in the dtype;
        the squared input norms of the next layer's ghost norms).  C-contiguous, of
        the dtype of ``Z``.

    Returns
    -------
    ndarray
        ``Z`` (out None) or ``out``.

    Examples
    --------
    >>> import numpy as np
    >>> from structjac.kernels.layer import bias_activation
    >>> Z = np.zeros((2, 3), np.float32)
    >>> bias_activation(Z, [0.0, 1.0, -1.0], "tanh").dtype
    dtype('float32')
    >>> Z = np.array([[-1.0, 2.0]]); A = np.empty_like(Z)
    >>> bias_activation(Z, [0.5, 0.5], "leaky_relu", (0.1,), out=A), Z
    (array([[-0.05,  2.5 ]]), array([[-0.5,  2.5]]))
    """
    Z = _in_place_array(Z, "Z")
    N, m = Z.shape
    b = _read_array(b, (m,), Z.dtype, "b", Z, "a row of Z")
    p1, p2 = _typed_params(Z.dtype, activation, params)
    fwd, keep, _, _ = _kernels(activation)
    rowsq = _rowsq(rowsq, N, Z.dtype)
    if out is None or out is Z:
        kernel = pick(*fwd, Z.size, memory_bound=fwd[0].__name__ in _MEMORY_BOUND)
        kernel(Z, b, p1, p2, rowsq)
        return Z
    out = _in_place_array(out, "out")
    if out.shape != Z.shape or out.dtype != Z.dtype:
        raise ValueError(
            f"out has shape {out.shape} and dtype {out.dtype} but Z has shape "
            f"{Z.shape} and dtype {Z.dtype}"
        )
    if np.shares_memory(out, Z):
        raise ValueError("out shares memory with Z without being Z")
    kernel = pick(*keep, Z.size, memory_bound=keep[0].__name__ in _MEMORY_BOUND)
    kernel(Z, b, p1, p2, out, rowsq)
    return out


def activation_vjp_bias_grad(G, S, activation, params=(), rowsq=None):
    r"""The activation's vjp written over ``G``, fused with the bias gradient.

    .. math::

        G_{kj} \leftarrow G_{kj}\, g'_{kj}, \qquad
        \mathrm{gb}_j = \sum_{k=1}^{N} G_{kj} \ \text{(the updated } G),

    with :math:`g'` computed from ``S``: the output :math:`a` for sigmoid
    (:math:`a(1-a)`) and tanh (:math:`(1+a)(1-a)`), the pre-activation :math:`z`
    for the others (see the module docstring), and 1 for
    identity.  The sum is chunked (float64 across chunks; see the module docstring).

    Parameters
    ----------
    G : ndarray, shape (N, m)
        The cotangent :math:`\partial J/\partial A`, float32 or float64,
        C-contiguous, writeable; overwritten with :math:`\partial J/\partial Z`.
    S : array_like, shape (N, m)
        ``a`` or ``z`` as above (converted to the dtype of ``G``; copied if it
        shares memory with ``G``; never written to).  Ignored for identity
        (``None`` is accepted there).
    activation : str
        A name in :data:`ACTIVATIONS`.
    params : tuple of float, optional
        ``(at_zero,)`` for relu, ``(slope, at_zero)`` for leaky_relu; missing ones
        take :data:`DEFAULT_PARAMS` (at_zero 1, slope 0.01).
    rowsq : ndarray, shape (N,), optional
        Receives each row's sum of squares of the updated ``G``,
        :math:`\sum_j G_{kj}^2`, in the same pass (accumulated in the dtype; the
        squared cotangent norms of the ghost norms).  C-contiguous, dtype of ``G``.

    Returns
    -------
    ndarray, shape (m,)
        The bias gradient :math:`\mathbf 1^T G`, dtype of ``G`` (a new array).

    Examples
    --------
    >>> import numpy as np
    >>> from structjac.kernels.layer import activation_vjp_bias_grad
    >>> a = np.array([[0.5, 0.25], [0.5, 0.5]])
    >>> G = np.ones((2, 2))
    >>> activation_vjp_bias_grad(G, a, "sigmoid")          # 1^T (G * a(1-a))
    array([0.5   , 0.4375])
    >>> G
    array([[0.25  , 0.1875],
           [0.25  , 0.25  ]])
    """
    G = _in_place_array(G, "G")
    N, m = G.shape
    _, _, vjp, _ = _kernels(activation)
    if activation == "identity":
        S = G  # not read: g' = 1
    else:
        S = _read_array(S, G.shape, G.dtype, "S", G, "G")
    p1, p2 = _typed_params(G.dtype, activation, params)
    rows = SUM_CHUNK_ROWS
    partial = np.empty(((N + rows - 1) // rows, m), dtype=G.dtype)
    rowsq = _rowsq(rowsq, N, G.dtype)
    kernel = pick(*vjp, G.size, memory_bound=vjp[0].__name__ in _MEMORY_BOUND)
    kernel(G, S, p1, p2, rows, partial, rowsq)
    return partial.sum(axis=0, dtype=np.float64).astype(G.dtype)


def outer_activation_vjp_bias_grad(g, w, S, activation, params=(), out=None, rowsq=None):
    r"""The activation's vjp of an outer-product cotangent, fused with the bias gradient.

    Below a layer of one unit the cotangent is :math:`G = g\, w^T` (:math:`g` the
    layer's :math:`N \times 1` cotangent, :math:`w^T` its :math:`1 \times m` weight
    row); this writes

    .. math::

        \mathrm{out}_{kj} = (g_k w_j)\, g'_{kj}, \qquad
        \mathrm{gb}_j = \sum_{k=1}^{N} \mathrm{out}_{kj},

    in one pass, the same numbers as forming ``g * w`` first and then
    :func:`activation_vjp_bias_grad` (``g'`` and the sum as there).

    Parameters
    ----------
    g : array_like, shape (N,) or (N, 1)
    w : array_like, shape (m,) or (1, m)
    S : array_like, shape (N, m)
        The output ``a`` (sigmoid, tanh) or the pre-activation ``z`` (the others);
        ignored for identity.
    activation : str
        A name in :data:`ACTIVATIONS`.
    params : tuple of float, optional
        As in :func:`activation_vjp_bias_grad`.
    out : ndarray, optional
        Shape (N, m), dtype of the result, C-contiguous, sharing no memory with the
        inputs.  Allocated when omitted.
    rowsq : ndarray, shape (N,), optional
        Receives each row's sum of squares of ``out``, as in
        :func:`activation_vjp_bias_grad`.

    Returns
    -------
    out : ndarray, shape (N, m)
        :math:`\partial J/\partial Z`.
    gb : ndarray, shape (m,)
        The bias gradient :math:`\mathbf 1^T \mathrm{out}` (a new array).

    Examples
    --------
    >>> import numpy as np
    >>> from structjac.kernels.layer import outer_activation_vjp_bias_grad
    >>> g = np.array([1.0, 2.0]); w = np.array([1.0, -1.0, 0.5])
    >>> a = np.full((2, 3), 0.5)
    >>> G, gb = outer_activation_vjp_bias_grad(g, w, a, "sigmoid")
    >>> bool(np.array_equal(G, np.outer(g, w) * 0.25)), gb
    (True, array([ 0.75 , -0.75 ,  0.375]))
    """
    g = np.asarray(g)
    w = np.asarray(w)
    S_arr = None if activation == "identity" else np.asarray(S)
    dtype = float_dtype(g, w) if S_arr is None else float_dtype(g, w, S_arr)
    N = g.shape[0] if g.ndim else 1
    if g.size != N or g.ndim not in (1, 2):
        raise ValueError(f"g must have shape (N,) or (N, 1), got {g.shape}")
    m = w.size
    if w.ndim == 2 and w.shape[0] != 1 or w.ndim not in (1, 2):
        raise ValueError(f"w must have shape (m,) or (1, m), got {w.shape}")
    shape = (N, m)
    _, _, _, outer = _kernels(activation)
    if out is None:
        out = empty(shape, dtype)
    else:
        out = _in_place_array(out, "out")
        if out.shape != shape or out.dtype != dtype:
            raise ValueError(
                f"out has shape {out.shape} and dtype {out.dtype} but the "
                f"result has shape {shape} and dtype {np.dtype(dtype)}"
            )
    g = as_float_array(g, dtype)
    w = as_float_array(w, dtype)
    if np.shares_memory(g, out):
        g = g.copy()
    if np.shares_memory(w, out):
        w = w.copy()
    if S_arr is None:
        S = out  # not read: g' = 1
    else:
        S = _read_array(S_arr, shape, dtype, "S", out, "the result")
    p1, p2 = _typed_params(np.dtype(dtype), activation, params)
    rows = SUM_CHUNK_ROWS
    partial = np.empty(((N + rows - 1) // rows, m), dtype=dtype)
    rowsq = _rowsq(rowsq, N, dtype)
    kernel = pick(*outer, out.size, memory_bound=outer[0].__name__ in _MEMORY_BOUND)
    kernel(g, w, S, p1, p2, rows, partial, out, rowsq)
    return out, partial.sum(axis=0, dtype=np.float64).astype(dtype)
