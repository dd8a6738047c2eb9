r"""structjac's own ops on traced values: the op supplies its value, Jacobian and vjp.

The ops' public methods hand a traced argument here (``Traced.__structjac_op__``,
through :func:`structjac.ops._dispatch.dispatched`). Each op already knows its
structured Jacobian and its fused vjp, so the rule is the op itself:

=======================================  ================================  ===========================
op call                                  local Jacobian                    vjp
=======================================  ================================  ===========================
``sj.sigmoid(x)``, ``sj.relu(x)`` ...    ``op.jacobian(x)`` (Diagonal)     ``op.vjp(x, g)`` (fused)
``sj.add(u, v)`` ... (binary ops)        ``op.jacobians(u, v)``            ``op.vjp(u, v, g)``
``loss(y, y_hat, reduction)``            ``loss.jacobian(y, y_hat, ...)``  ``g * loss.grad(y, y_hat)``
any other op ``op(x, **kw)`` with        ``op.jacobian(x, **kw)``          ``op.vjp(x, g, **kw)``
``jacobian`` and ``vjp`` (softmax ...)
=======================================  ================================  ===========================

Only calling an op is traced; ``op.jacobian(x)`` or ``op.vjp(x, g)`` of a traced ``x``
raise ``TypeError`` (differentiate the function that calls the op instead). A loss is
differentiated with respect to its prediction ``y_hat``; traced targets ``y`` raise.
"""

from __future__ import annotations

import numpy as np

from ..ops.binary import BinaryOp
from ..ops.losses import Loss
from ..structures import BlockDiagonal
from ._local import Local
from ._tracer import Traced, record

__all__ = ["call_op"]


def _value(a):
    return a.value if type(a) is Traced else a


def _trace(args):
    from ._numpy_rules import _trace_of

    return _trace_of(args)


def _unary_op(op, x, kwargs):
    xv = x.value
    y = np.asarray(op(xv, **kwargs))

    def jacobian():
        return op.jacobian(xv, **kwargs)

    def vjp(g):
        return op.vjp(xv, np.asarray(g, dtype=y.dtype).reshape(y.shape), **kwargs)

    return record(x._trace, y, [(x, Local(jacobian, vjp))])


def _binary_op(op, u, v):
    trace = _trace((u, v))
    uv, vv = _value(u), _value(v)
    y = np.asarray(op(uv, vv))
    pairs = []
    for position, arg in enumerate((u, v)):
        if type(arg) is not Traced:
            continue

        def jacobian(position=position):
            return op.jacobians(uv, vv)[position]

        def vjp(g, position=position):
            return op.vjp(uv, vv, np.reshape(g, y.shape))[position]

        pairs.append((arg, Local(jacobian, vjp)))
    return record(trace, y, pairs)


def _loss(op, method, y, y_hat, reduction):
    if type(y) is Traced:
        raise TypeError(
            f"{op!r}: the targets y are traced; a loss is differentiated with respect to its "
            "prediction y_hat only (pass y as a constant)"
        )
    if type(y_hat) is not Traced:
        return NotImplemented
    pv = y_hat.value
    if method == "per_sample":
        reduction = "none"
    value = np.asarray(op(y, pv, reduction=reduction))

    def jacobian():
        if reduction == "none" and pv.ndim > 1:
            # row k depends on sample k only: N blocks of 1 x (entries per sample)
            partials = op.grad(y, pv, reduction="none")
            N = pv.shape[0]
            return BlockDiagonal(np.ascontiguousarray(partials).reshape(N, 1, -1))
        return op.jacobian(y, pv, reduction=reduction)

    def vjp(g):
        partials = op.grad(y, pv, reduction=reduction)
        g = np.asarray(g)
        if reduction == "none":
            g = g.reshape((pv.shape[0],) + (1,) * (pv.ndim - 1))
        return partials * g

    return record(y_hat._trace, value, [(y_hat, Local(jacobian, vjp))])


def call_op(op, method, args, kwargs):
    """Trace the call ``op.method(*args, **kwargs)`` where an argument is traced."""
    if method not in ("__call__", "per_sample"):
        raise TypeError(
            f"{op!r}.{method} of a traced value: only calling the op is traced; "
            "differentiate the function that calls it (structjac.jacobian, structjac.grad)"
        )
    if isinstance(op, Loss):
        y, y_hat = (list(args) + [None, None])[:2]
        reduction = kwargs.get("reduction", args[2] if len(args) > 2 else "mean")
        return _loss(op, method, y, y_hat, reduction)
    if isinstance(op, BinaryOp):
        if kwargs.get("out") is not None:
            raise TypeError(f"{op!r}(..., out=...) with a traced value: out= is not traced")
        return _binary_op(op, args[0], args[1])
    if kwargs.get("out") is not None:
        raise TypeError(f"{op!r}(..., out=...) with a traced value: out= is not traced")
    kwargs = {k: v for k, v in kwargs.items() if k != "out"}
    traced = [a for a in args if type(a) is Traced]
    if len(args) == 1 and traced and hasattr(op, "jacobian") and hasattr(op, "vjp"):
        return _unary_op(op, args[0], kwargs)
    raise TypeError(
        f"{op!r} with traced arguments has no rule (an op of one array argument needs "
        "jacobian(x) and vjp(x, g))"
    )
