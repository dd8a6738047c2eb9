r"""The ops, losses and gradients on dask arrays, chunk by chunk, lazily.

Imported only when a ``dask.array.Array`` reaches an op (the core never imports
dask).  Every call builds a dask graph whose tasks run the same Numba kernels as
the in-memory ops on one chunk each; nothing is computed until the caller asks
(``.compute()``, ``dask.compute``, ``client.compute``).

Element-wise ops (``sigmoid``, ``tanh``, ..., :func:`structjac.ops.elementwise`)
and the binary ops map over the chunks with :func:`dask.array.map_blocks`: the
result has the chunks of the first argument and the dtype the in-memory op gives.
The losses need whole samples: the non-batch axes are rechunked to one chunk
(lazily; a sample is small), ``y`` is aligned to the batch chunks of ``y_hat``.
A reduced loss is a 0-d dask array: each chunk's partial sum
:math:`\sum_{k \in c} J_0^{(k)}` (in float64), summed by a tree reduction, then
the mean's :math:`1/N` applied once.

Each chunk's kernels run serially in the calling thread
(``structjac.kernels.serial_only``): Dask's workers are the parallelism, and
Numba's own thread pool must not be entered by several Dask threads at once.
"""

from __future__ import annotations

import functools

import numpy as np

__all__ = ["DaskDiagonal", "apply_op", "nn_value_and_grad", "worker_env"]  # noqa: F822


def worker_env() -> dict:
    """Environment variables for Dask worker processes that run structjac's kernels.

    Each task already runs its kernels serially in its own thread
    (``structjac.kernels.serial_only``), so a worker never enters Numba's
    thread pool from several Dask threads at once (the ``workqueue`` threading
    layer aborts the process when that happens).  These variables make the rest of
    a worker's stack agree: one Numba thread, one BLAS thread and one OpenMP thread
    per worker process, so ``K`` workers with one thread each use ``K`` cores and
    do not oversubscribe them.  They take effect only in a fresh process (Numba and
    OpenBLAS read them when first imported), which is how ``dask.distributed``
    starts its workers (the ``spawn`` start method by default).

    Returns
    -------
    dict of str to str
        A new dict each call; pass it as ``env=`` to
        :class:`dask.distributed.LocalCluster` (or to ``dask worker`` as environment).

    Examples
    --------
    >>> import structjac as sj
    >>> sj.dask_worker_env()["NUMBA_NUM_THREADS"]
    '1'
    """
    return {
        "NUMBA_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }


def _da():
    import dask.array as da

    return da


def _is_dask(x):
    return type(x).__module__.startswith("dask.") and hasattr(x, "dask")


def _check_known(x, name):
    if any(np.isnan(c) for axis in x.chunks for c in axis):
        raise ValueError(
            f"{name} has unknown (nan) chunk sizes {x.chunks}; call {name}.compute_chunk_sizes() "
            "(or build it with known sizes) first"
        )


def _as_dask(x, like, name):
    da = _da()
    if _is_dask(x):
        _check_known(x, name)
        return x
    x = np.asarray(x)
    if like is not None and x.shape == like.shape:
        return da.from_array(x, chunks=like.chunks)
    return da.from_array(x)


def _meta_dtype(op, method, arrays, kwargs):
    """The dtype the in-memory op gives for these input dtypes (run on 1-element inputs)."""
    samples = [np.ones((1,) * max(a.ndim, 1), dtype=a.dtype) for a in arrays]
    res = getattr(op, method)(*samples, **kwargs)
    return res


def _no_out(op, method, kwargs):
    if kwargs.get("out") is not None:
        raise TypeError(
            f"{op!r}.{method}: out= is not supported with dask arrays (the result is a new "
            "lazy dask array)"
        )
    kwargs.pop("out", None)


def _serial(function, *leading):
    """A picklable task: ``function(*leading, *blocks)`` with the kernels run serially."""
    return functools.partial(_run_serially, function, *leading)


def _run_serially(function, *args):
    from structjac.kernels import serial_only

    with serial_only():
        return function(*args)


def _call_method(op, method, kwargs, index, *blocks):
    res = getattr(op, method)(*blocks, **kwargs)
    return res if index is None else res[index]


def _binary_jacobian(op, index, u, v):
    return op.jacobians(u, v)[index].values.reshape(u.shape)


def _loss_per_chunk(op, yb, zb):
    yb, zb, _ = op._prepare(yb, zb)
    return op._per_sample(yb, zb)


def _loss_partial_sum(op, yb, zb):
    return np.atleast_1d(_loss_per_chunk(op, yb, zb).sum(dtype=np.float64))


def _loss_grad_chunk(op, scale, yb, zb):
    yb, zb, _ = op._prepare(yb, zb)
    return op._grad(yb, zb, scale, None)


def _same_shapes(arrays, names):
    first = arrays[0]
    for a, name in zip(arrays[1:], names[1:]):
        if a.shape != first.shape:
            raise ValueError(
                f"{names[0]} has shape {first.shape} but {name} has shape {a.shape}; "
                "they must be equal"
            )


# ----------------------------------------------------------------- structures
def _diagonal_class():
    from structjac.structures import Diagonal

    class DaskDiagonal(Diagonal):
        r"""A :class:`~structjac.structures.Diagonal` whose entries are a 1-D dask array.

        ``D @ x`` and ``x @ D`` with a dask (or NumPy) vector are the lazy products
        :math:`d \odot x`; ``diagonal()`` and ``values`` are the dask array itself;
        ``to_dense()`` computes only within the dense limit (:class:`structjac.dense_limit`,
        2 GiB by default) and raises :class:`structjac.DenseLimitError` past it, before
        anything is computed.
        """

        __slots__ = ()

        def __init__(self, d):
            if not _is_dask(d) or d.ndim != 1:
                raise TypeError(f"DaskDiagonal needs a 1-D dask array, got {type(d).__name__}")
            from structjac.structures.base import Jacobian

            Jacobian.__init__(self, (d.shape[0], d.shape[0]), d.dtype)
            self._set(_values=d)

        @property
        def nbytes(self):
            return self._values.nbytes

        def diagonal(self):
            return self._values

        def to_dense(self):
            from structjac._dense_limit import check_dense

            check_dense(self.shape, self.dtype, f"{type(self).__name__}.to_dense()")
            return np.diag(np.asarray(self._values.compute())).astype(self.dtype, copy=False)

        def to_sparse(self):
            import scipy.sparse as sp

            n = self.shape[0]
            return sp.csr_array(
                (np.asarray(self._values.compute()), np.arange(n), np.arange(n + 1)),
                shape=self.shape,
            )

        def _apply(self, x, side):
            n = self.shape[0]
            x = _as_dask(x, None, "x")
            ok = x.ndim in (1, 2) and (x.shape[0] if side == "right" else x.shape[-1]) == n
            if not ok:
                expr = "D @ x" if side == "right" else "x @ D"
                raise ValueError(
                    f"{expr}: shapes do not fit: {type(self).__name__} of shape {self.shape} "
                    f"and array of shape {x.shape}"
                )
            d = self._values
            if x.ndim == 1:
                return d * x
            return d[:, None] * x if side == "right" else x * d[None, :]

        def matvec(self, x):
            return self._apply(x, "right")

        def rmatvec(self, x):
            return self._apply(x, "left")

        def __matmul__(self, other):
            if _is_dask(other) or isinstance(other, np.ndarray):
                return self.matvec(other)
            raise TypeError(
                f"{type(self).__name__} @ {type(other).__name__}: a structure holding a dask "
                "array multiplies dask or NumPy arrays only"
            )

        def __rmatmul__(self, other):
            if _is_dask(other) or isinstance(other, np.ndarray):
                return self.rmatvec(other)
            return NotImplemented

        def __reduce__(self):
            return (DaskDiagonal, (self._values,))

    DaskDiagonal.__module__ = __name__
    DaskDiagonal.__qualname__ = "DaskDiagonal"
    return DaskDiagonal


_CLASSES = {}


def __getattr__(name):
    if name == "DaskDiagonal":
        if name not in _CLASSES:
            _CLASSES[name] = _diagonal_class()
        return _CLASSES[name]
    raise AttributeError(name)


def _diagonal(d):
    return __getattr__("DaskDiagonal")(d.reshape(-1))


# ------------------------------------------------------------------- the ops
def apply_op(op, method, args, kwargs):
    """Map ``op.<method>`` over the chunks of the dask arrays in ``args`` (lazily)."""
    # The op classes say their kind (``_op_kind``): this module imports no op module,
    # since the ops' dispatch imports it (no import cycle).
    kwargs = dict(kwargs)
    kind = getattr(type(op), "_op_kind", None)
    if kind == "unary":
        return _unary(op, method, args, kwargs)
    if kind == "binary":
        return _binary(op, method, args, kwargs)
    if kind == "loss":
        return _loss(op, method, args, kwargs)
    if kind == "rowwise":
        return _rowwise(op, method, args, kwargs)
    raise TypeError(
        f"{op!r}.{method}: dask arrays are not supported for this op; call .compute() first"
    )


def _elementwise(op, method, arrays, names, kwargs):
    """``op.<method>`` mapped over aligned chunks: same shape, the first array's chunks."""
    da = _da()
    _no_out(op, method, kwargs)
    arrays = [_as_dask(a, None, n) if i == 0 else a for i, (a, n) in enumerate(zip(arrays, names))]
    arrays = [arrays[0]] + [_as_dask(a, arrays[0], n) for a, n in zip(arrays[1:], names[1:])]
    _same_shapes(arrays, names)
    arrays = [arrays[0]] + [a.rechunk(arrays[0].chunks) for a in arrays[1:]]
    meta = _meta_dtype(op, method, arrays, kwargs)
    if isinstance(meta, tuple):
        return tuple(
            da.map_blocks(_serial(_call_method, op, method, kwargs, i), *arrays, dtype=m.dtype)
            for i, m in enumerate(meta)
        )
    return da.map_blocks(
        _serial(_call_method, op, method, kwargs, None), *arrays, dtype=np.asarray(meta).dtype
    )


def _unary(op, method, args, kwargs):
    if method in ("__call__", "derivative", "derivative_from_output"):
        return _elementwise(op, method, args[:1], ["x"], kwargs)
    if method in ("vjp", "vjp_from_output"):
        first = "a" if method == "vjp_from_output" else "x"
        return _elementwise(op, method, args[:2], [first, "g"], kwargs)
    if method == "jacobian":
        return _diagonal(_elementwise(op, "derivative", args[:1], ["x"], kwargs))
    if method == "jacobian_from_output":
        return _diagonal(_elementwise(op, "derivative_from_output", args[:1], ["a"], kwargs))
    if method == "value_and_jacobian":
        return (
            _elementwise(op, "__call__", args[:1], ["x"], dict(kwargs)),
            _diagonal(_elementwise(op, "derivative", args[:1], ["x"], kwargs)),
        )
    raise TypeError(f"{op!r}.{method}: not supported with dask arrays")


def _rowwise(op, method, args, kwargs):
    """Softmax and log-softmax over ``axis``: each chunk holds whole rows along the axis
    (rechunked to one chunk there, lazily), then the op is mapped over the chunks."""
    if method not in ("__call__", "vjp", "vjp_from_output"):
        raise TypeError(
            f"{op!r}.{method} with dask arrays: the Jacobian is a BlockDiagonal of in-memory "
            "blocks; use the lazy vjp(x, g, axis=...) instead, or compute x first"
        )
    names = {"__call__": ["x"], "vjp": ["x", "g"], "vjp_from_output": ["a", "g"]}[method]
    arrays = list(args[: len(names)])
    rest = list(args[len(names) :])
    axis = rest.pop(0) if rest else kwargs.pop("axis", -1)
    if rest:
        kwargs["out"] = rest.pop(0)
    _no_out(op, method, kwargs)
    first = _as_dask(arrays[0], None, names[0])
    if first.ndim == 0:
        raise ValueError(f"{op.name} needs at least one axis; {names[0]} has shape () (0-d)")
    if isinstance(axis, (bool, np.bool_)) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"axis must be an integer, got {type(axis).__name__}")
    if not -first.ndim <= int(axis) < first.ndim:
        raise np.exceptions.AxisError(
            f"axis {int(axis)} is out of bounds for an array of dimension {first.ndim}"
        )
    ax = int(axis) % first.ndim
    first = first.rechunk({ax: -1})
    arrays = [first] + [_as_dask(a, first, n) for a, n in zip(arrays[1:], names[1:])]
    _same_shapes(arrays, names)
    arrays = [first] + [a.rechunk(first.chunks) for a in arrays[1:]]
    kwargs = {"axis": ax}
    meta = _meta_dtype(op, method, arrays, kwargs)
    return _da().map_blocks(
        _serial(_call_method, op, method, kwargs, None), *arrays, dtype=np.asarray(meta).dtype
    )


def _binary(op, method, args, kwargs):
    if method == "__call__":
        return _elementwise(op, method, args[:2], ["u", "v"], kwargs)
    if method == "vjp":
        return _elementwise(op, method, args[:3], ["u", "v", "g"], kwargs)
    if method == "jacobians":
        u = _as_dask(args[0], None, "u")
        v = _as_dask(args[1], u, "v")
        _same_shapes([u, v], ["u", "v"])
        samples = [np.ones((1,) * max(a.ndim, 1), dtype=a.dtype) for a in (u, v)]
        kinds = op.jacobians(*samples)
        v = v.rechunk(u.chunks)
        out = []
        for i, J in enumerate(kinds):
            if type(J).__name__ == "Diagonal":
                values = _da().map_blocks(_serial(_binary_jacobian, op, i), u, v, dtype=J.dtype)
                out.append(_diagonal(values))
            else:  # Identity, ScaledIdentity: no numbers to map
                from structjac.structures import ScaledIdentity

                if isinstance(J, ScaledIdentity) and type(J).__name__ == "ScaledIdentity":
                    out.append(ScaledIdentity(u.size, J.scalar, dtype=J.dtype))
                else:
                    out.append(type(J)(u.size, dtype=J.dtype))
        return tuple(out)
    raise TypeError(f"{op!r}.{method}: not supported with dask arrays")


def _loss_inputs(y, y_hat):
    """Dask ``y``, ``y_hat``: whole samples per chunk, ``y`` on the batch chunks of ``y_hat``."""
    y_hat = _as_dask(y_hat, None, "y_hat")
    y = _as_dask(y, y_hat, "y")
    if y_hat.ndim == 0 or y.ndim == 0 or y.shape[0] != y_hat.shape[0]:
        raise ValueError(
            f"y has shape {y.shape} but y_hat has shape {y_hat.shape}; they need the same "
            "batch axis 0"
        )
    batch = y_hat.chunks[0]
    y_hat = y_hat.rechunk({i: -1 for i in range(1, y_hat.ndim)})
    y = y.rechunk({0: batch, **{i: -1 for i in range(1, y.ndim)}})
    return y, y_hat


def _index(ndim):
    return "i" + "jklmn"[: ndim - 1]


def _loss(op, method, args, kwargs):
    da = _da()
    from structjac.ops._checks import check_reduction as _check_reduction

    if method not in ("per_sample", "__call__", "grad", "jacobian"):
        raise TypeError(
            f"{op!r}.{method}: not supported with dask arrays; use grad() for the gradient"
        )
    reduction = args[2] if len(args) > 2 else kwargs.pop("reduction", "mean")
    if method != "per_sample":
        _check_reduction(reduction)
    _no_out(op, method, kwargs)
    y, y_hat = _loss_inputs(args[0], args[1])
    # validate shapes/dtypes as the in-memory loss does, on one-sample inputs
    y1 = np.zeros((1,) + y.shape[1:], dtype=y.dtype)
    z1 = np.zeros((1,) + y_hat.shape[1:], dtype=y_hat.dtype)
    _, _, dtype = op._prepare(y1, z1)
    yi, zi = _index(y.ndim), _index(y_hat.ndim)

    if method == "per_sample" or (method == "__call__" and reduction == "none"):
        per_dtype = op.per_sample(y1, z1).dtype
        return da.blockwise(
            _serial(_loss_per_chunk, op), "i", y, yi, y_hat, zi, dtype=per_dtype, concatenate=True
        )
    N, size = y_hat.shape[0], y_hat.size
    if method == "__call__":
        partial = da.blockwise(
            _serial(_loss_partial_sum, op),
            "i",
            y,
            yi,
            y_hat,
            zi,
            dtype=np.float64,
            concatenate=True,
            adjust_chunks={"i": 1},
        )
        total = partial.sum(dtype=np.float64, split_every=8)
        if reduction == "sum":
            return total.astype(dtype)
        count = N if reduction == "mean" else size
        return (total / count).astype(dtype) if count else da.full((), np.nan, dtype=dtype)
    scale = 1.0
    if reduction == "mean" and N:
        scale = 1.0 / N
    elif reduction == "elementwise_mean" and size:
        scale = 1.0 / size
    if method == "jacobian":
        if reduction != "none" or y_hat.ndim != 1:
            raise TypeError(
                f"{op!r}.jacobian with dask arrays: only reduction='none' on 1-D y_hat (a "
                "Diagonal); for the reduced loss use grad(y, y_hat, reduction=...), the same "
                "numbers as the 1 x n row, lazily"
            )
        scale = 1.0

    g = da.blockwise(
        _serial(_loss_grad_chunk, op, scale), zi, y, yi, y_hat, zi, dtype=dtype, concatenate=True
    )
    return _diagonal(g) if method == "jacobian" else g


# -------------------------------------------------------------- value_and_grad
def nn_value_and_grad(
    params,
    X,
    y,
    activations,
    loss="bce",
    *,
    reduction="mean",
    method="fused",
    return_jacobians=False,
    per_sample=False,
    workspace=None,
    parallel_passes=False,
    extras=(),
    mc_samples=1,
    seed=None,
    max_norm=None,
    in_memory,
    result_type,
):
    r""":func:`structjac.nn.value_and_grad` on dask ``X``, ``y`` chunked along the batch.

    Each batch chunk :math:`c` gives, in one task, the sum-reduced loss
    :math:`\sum_{k\in c} J_0^{(k)}` and its gradient; the chunks' results are
    summed by a tree reduction and the mean's :math:`1/N` is applied once:

    .. math::

        J = \frac1N \sum_c \sum_{k \in c} J_0^{(k)}, \qquad
        \nabla J = \frac1N \sum_c \nabla \sum_{k \in c} J_0^{(k)}.

    Returns a :class:`structjac.nn.GradResult` whose loss (0-d) and gradients are
    lazy dask arrays of one graph: ``loss, grads = dask.compute(*result)``.

    ``X`` chunked across its feature axis is rechunked to whole rows (lazily; a
    row is small).  ``X`` and ``y`` must have the same batch chunks (else
    ``ValueError`` naming both) and known chunk sizes.

    ``extras`` (already validated by the caller) are computed on each chunk with the
    sum reduction and combined exactly: sums over samples (``sum_grad_squared``,
    ``clipped_grad``, ``diag_ggn``, ``diag_ggn_mc``, ``diag_hessian``, the factors of
    ``kflr``/``kfac``) are added over chunks and weighted once (:math:`w = 1/N` for
    the mean, squared for ``sum_grad_squared``); ``grad_norms`` are concatenated and
    weighted; ``variance`` follows from the totals,
    :math:`\frac1N \mathrm{sgs} - (\frac1N \mathrm{grad})^{\odot 2}`.  Array-valued
    extras are lazy dask arrays; ``kflr``/``kfac`` are per layer a ``dask.delayed``
    of ``(Kronecker, Dense)``.  The Monte-Carlo extras draw per chunk from
    ``numpy.random.SeedSequence(seed).spawn(n_chunks)``: the same distribution as in
    memory and reproducible for a seed, but not the same draws.

    ``in_memory`` is :func:`structjac.nn.value_and_grad` (run on each chunk) and
    ``result_type`` its :class:`~structjac.nn.GradResult`: the caller passes them, so
    this module never imports :mod:`structjac.nn` back (no import cycle).
    """
    from dask import delayed

    # a workspace (MLP passes its own) is a buffer cache of one process: each chunk's
    # task allocates its own buffers on its worker instead
    if return_jacobians or per_sample:
        raise TypeError(
            "value_and_grad on dask arrays: return_jacobians and per_sample are not "
            "supported (the structures and per-sample rows would fill memory)"
        )
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
    if not (_is_dask(X) and _is_dask(y)):
        raise TypeError(
            f"value_and_grad on dask arrays needs both X and y as dask arrays; got X: "
            f"{type(X).__name__}, y: {type(y).__name__} (use dask.array.from_array)"
        )
    _check_known(X, "X")
    _check_known(y, "y")
    if X.ndim != 2:
        raise ValueError(f"X must have shape (N, d); got shape {X.shape}")
    if y.ndim not in (1, 2) or y.shape[0] != X.shape[0]:
        raise ValueError(f"X has shape {X.shape} but y has shape {y.shape}; they need N rows")
    if y.chunks[0] != X.chunks[0]:
        raise ValueError(
            f"X and y must be chunked alike along the batch axis: X has batch chunks "
            f"{X.chunks[0]} but y has {y.chunks[0]}; rechunk y with "
            f"y.rechunk({{0: X.chunks[0]}})"
        )
    X = X.rechunk({1: -1})
    if y.ndim == 2:
        y = y.rechunk({1: -1})
    N = X.shape[0]
    dtype = np.float32 if X.dtype == np.float32 else np.float64

    extras = tuple(extras)
    # per chunk: the sums the extras are made of (variance comes from sum_grad_squared)
    asked = tuple(dict.fromkeys("sum_grad_squared" if n == "variance" else n for n in extras))
    chunks = list(zip(X.to_delayed().ravel(), y.to_delayed().ravel()))
    seeds = [None] * len(chunks)
    if {"diag_ggn_mc", "kfac"} & set(asked):
        seeds = np.random.SeedSequence(seed).spawn(len(chunks))
    options = dict(extras=asked, mc_samples=mc_samples, max_norm=max_norm) if asked else {}
    p = delayed(params, pure=True)
    parts = [
        delayed(_nn_chunk, pure=True)(
            in_memory, p, xb, yb, activations, loss, method, parallel_passes, options, chunk_seed
        )
        for (xb, yb), chunk_seed in zip(chunks, seeds)
    ]
    while len(parts) > 1:
        parts = [
            delayed(_nn_add, pure=True)(*parts[i : i + 2]) if i + 1 < len(parts) else parts[i]
            for i in range(0, len(parts), 2)
        ]
    total = delayed(_nn_finish, pure=True)(parts[0], N, reduction, dtype, extras)
    da = _da()
    value = da.from_delayed(total[0], shape=(), dtype=dtype)

    def like_params(lazy):
        return [
            (
                da.from_delayed(lazy[i][0], shape=np.shape(W), dtype=dtype),
                da.from_delayed(lazy[i][1], shape=np.shape(b), dtype=dtype),
            )
            for i, (W, b) in enumerate(params)
        ]

    grads = like_params(total[1])
    lazy_extras = {}
    for name in extras:
        if name == "grad_norms":
            lazy_extras[name] = da.from_delayed(total[2][name], shape=(N,), dtype=dtype)
        elif name in ("kflr", "kfac"):
            lazy_extras[name] = [total[2][name][i] for i in range(len(params))]
        else:
            lazy_extras[name] = like_params(total[2][name])
    return result_type(loss=value, grads=grads, extras=lazy_extras)


def _nn_chunk(in_memory, params, Xb, yb, activations, loss, method, parallel_passes, options, seed):
    """One batch chunk: the sum-reduced loss (float64), its gradients and the extras' sums."""
    from structjac.kernels import serial_only

    with serial_only():
        res = in_memory(
            params,
            Xb,
            yb,
            activations,
            loss,
            reduction="sum",
            method=method,
            parallel_passes=parallel_passes,
            seed=seed,
            **options,
        )
    sums = {}
    for name, value in res.extras.items():
        if name == "grad_norms":
            sums[name] = np.asarray(value)
        elif name in ("kflr", "kfac"):
            n = Xb.shape[0]  # the input factor is A^T A / n: keep A^T A
            sums[name] = [
                (K.A.to_dense(), K.B.to_dense() * K.B.dtype.type(n), Gb.to_dense())
                for K, Gb in value
            ]
        else:
            sums[name] = [(np.asarray(vW), np.asarray(vb)) for vW, vb in value]
    return (np.float64(res.loss), [(np.asarray(gW), np.asarray(gb)) for gW, gb in res.grads], sums)


def _nn_add(a, b):
    extras = {}
    for name, va in a[2].items():
        vb = b[2][name]
        if name == "grad_norms":
            extras[name] = np.concatenate([va, vb])
        else:
            extras[name] = [tuple(x + y for x, y in zip(la, lb)) for la, lb in zip(va, vb)]
    return (a[0] + b[0], [(wa + wb, ba + bb) for (wa, ba), (wb, bb) in zip(a[1], b[1])], extras)


def _nn_finish(total, N, reduction, dtype, names=()):
    """The mean's 1/N, applied once to the summed loss, gradients and extras."""
    from structjac.structures import Dense, Kronecker

    value, grads, sums = total
    w = (1.0 / N if N else np.nan) if reduction == "mean" else 1.0
    if reduction == "mean":
        value = value * w
        grads = [(gW * dtype(w), gb * dtype(w)) for gW, gb in grads]
    extras = {}
    for name in names:
        if name == "grad_norms":
            extras[name] = sums[name] * dtype(w)
        elif name in ("kflr", "kfac"):
            n = dtype(N) if N else dtype(np.nan)
            extras[name] = [
                (
                    Kronecker(Dense(G * dtype(w), copy=False), Dense(AtA / n, copy=False)),
                    Dense(Gb * dtype(w), copy=False),
                )
                for G, AtA, Gb in sums[name]
            ]
        elif name == "sum_grad_squared":
            extras[name] = [(sW * dtype(w * w), sb * dtype(w * w)) for sW, sb in sums[name]]
        elif name == "variance":
            n = dtype(N) if N else dtype(np.nan)
            extras[name] = [
                (sW * dtype(w * w) / n - (gW / n) ** 2, sb * dtype(w * w) / n - (gb / n) ** 2)
                for (sW, sb), (gW, gb) in zip(sums["sum_grad_squared"], grads)
            ]
        else:
            extras[name] = [(vW * dtype(w), vb * dtype(w)) for vW, vb in sums[name]]
    return dtype(value), grads, extras
