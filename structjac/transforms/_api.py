r"""The function transforms: ``jacobian``, ``jvp``, ``vjp``, ``grad``, ``value_and_grad``.

Named and called as in JAX. The function ``f`` is plain numpy code; its array
arguments are replaced by traced values (:class:`~structjac.transforms.Traced`) and
the numpy calls it makes are differentiated by the rule table of
:mod:`structjac.transforms._numpy_rules`.

Conventions
-----------
* Inputs and outputs are flattened row-major: the Jacobian of ``f`` at ``x`` of shape
  ``s_in`` with output shape ``s_out`` has shape ``(prod(s_out), prod(s_in))``.
* Differentiated arguments must be real floating-point arrays (float32 stays float32);
  integers and booleans raise ``TypeError`` naming the dtype, as JAX does.
* Arguments not in ``argnums`` are passed to ``f`` as they are (constants).
* Inputs are never written to.
"""

from __future__ import annotations

import functools
import numbers
import operator
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from ..structures import Identity, Jacobian, Zero
from ._tracer import Trace, Traced

__all__ = ["jacobian", "jvp", "vjp", "grad", "value_and_grad"]


def _argnums(argnums, n_args, transform):
    single = not isinstance(argnums, (tuple, list))
    nums = (argnums,) if single else tuple(argnums)
    checked = []
    for a in nums:
        try:
            a = operator.index(a)
        except TypeError:
            raise TypeError(
                f"{transform}: argnums must be an int or a tuple of ints, got {a!r}"
            ) from None
        if not -n_args <= a < n_args:
            raise ValueError(
                f"{transform}: argnums {a} is out of range for a function called with "
                f"{n_args} positional argument{'s' if n_args != 1 else ''}"
            )
        checked.append(a % n_args)
    if len(set(checked)) != len(checked):
        raise ValueError(f"{transform}: argnums {nums} repeats an argument")
    return single, tuple(checked)


def _primal(x, position, transform):
    if type(x) is Traced:
        raise TypeError(
            f"{transform}: argument {position} is already traced; nested transforms are not supported"
        )
    arr = np.asarray(x)
    if arr.dtype.kind != "f":
        what = {"i": "integer", "u": "integer", "b": "boolean", "c": "complex"}.get(
            arr.dtype.kind, "not a number"
        )
        raise TypeError(
            f"{transform}: argument {position} has dtype {arr.dtype} ({what}); differentiated "
            "arguments must be real floating-point arrays (float32 or float64): "
            "pass x.astype(np.float64)"
        )
    if arr.dtype.itemsize < 4:
        raise TypeError(
            f"{transform}: argument {position} has dtype {arr.dtype}; the kernels compute in "
            "float32 or float64: pass x.astype(np.float32)"
        )
    return arr


def _prepare(args, argnums, transform):
    if not args:
        raise TypeError(
            f"{transform}: the function was called without arguments; nothing to differentiate"
        )
    single, nums = _argnums(argnums, len(args), transform)
    primals = [_primal(args[a], a, transform) for a in nums]
    return single, nums, primals


def _call(f, args, nums, traced):
    call_args = list(args)
    for a, t in zip(nums, traced):
        call_args[a] = t
    return f(*call_args)


def _output(out, trace, transform):
    if type(out) is Traced:
        if out._trace is not trace:
            raise TypeError(f"{transform}: f returned a value traced by another transform")
        out.value  # a pending element-wise result is evaluated (and recorded) now
        return out
    if isinstance(out, (tuple, list, dict)):
        raise TypeError(
            f"{transform}: f returned a {type(out).__name__}; the transforms take functions "
            "that return one array (stack or concatenate the outputs)"
        )
    return None


def _plain_value(value):
    value = np.asarray(value)
    return value[()] if value.ndim == 0 else np.array(value)


@functools.lru_cache(maxsize=32)
def _identity(n, dtype):
    """The input's Jacobian :math:`I_n` (structures are immutable: one per size and dtype)."""
    return Identity(n, dtype=dtype)


def jacobian(
    f: Callable[..., Any], argnums: int | Sequence[int] = 0
) -> Callable[..., "Jacobian | tuple[Jacobian, ...]"]:
    r"""Return a function that computes the structured Jacobian of ``f``.

    Parameters
    ----------
    f : callable
        A function of arrays written with numpy (see the guide "Your own function"
        for the numpy functions that are traced), returning one array.
    argnums : int or tuple of int, default 0
        The positional argument(s) to differentiate with respect to.

    Returns
    -------
    callable
        ``jacobian(f, argnums)(*args)`` returns a :class:`~structjac.Jacobian` of shape
        ``(out.size, args[argnums].size)`` (a tuple of them for a tuple ``argnums``),
        inputs and output flattened row-major: :math:`J_{ij} = \partial\,
        \mathrm{vec}(f)_i / \partial\, \mathrm{vec}(x)_j`.

    Notes
    -----
    Forward mode: each traced value carries its Jacobian with respect to every input as a
    structure, and every numpy call applies :math:`J_y = \sum_u (\partial y/\partial u)
    J_u` through the rule table, so the result is as tight as the table allows: an
    element-wise chain is a :class:`~structjac.Diagonal`, ``W @ x`` a
    :class:`~structjac.Dense`, a sum a row. An output that does not depend on the input
    gives :class:`~structjac.Zero`.

    Raises
    ------
    TypeError
        For a numpy function without a rule (named in the message), integer or boolean
        inputs (the dtype named), or a function that returns a tuple.
    ValueError
        When ``argnums`` is out of range.

    Examples
    --------
    >>> import numpy as np, structjac as sj
    >>> def f(x):
    ...     return np.tanh(x) * np.exp(-x) + np.log1p(x ** 2)
    >>> J = sj.jacobian(f)(np.linspace(0.0, 1.0, 4))
    >>> J
    Diagonal(shape=(4, 4), dtype=float64, stored=32 B, dense=128 B)
    """

    def jacobian_of_f(*args):
        single, nums, primals = _prepare(args, argnums, "jacobian")
        trace = Trace("jacobian", len(nums))
        traced = [
            trace.new_input(x, k, jacobian=_identity(x.size, x.dtype))
            for k, x in enumerate(primals)
        ]
        out = _call(f, args, nums, traced)
        result = _output(out, trace, "jacobian")
        if result is None:
            value = np.asarray(out)
            dtype = np.result_type(
                value.dtype if value.dtype.kind in "fc" else np.float64, *[x.dtype for x in primals]
            )
            jacs = tuple(Zero((value.size, x.size), dtype=dtype) for x in primals)
        else:
            jacs = tuple(
                J if J is not None else Zero((result.size, x.size), dtype=result.dtype)
                for J, x in zip(result._payload, primals)
            )
        return jacs[0] if single else jacs

    jacobian_of_f.__name__ = f"jacobian({getattr(f, '__name__', 'f')})"
    jacobian_of_f.__doc__ = f"The structured Jacobian of {getattr(f, '__name__', 'f')}."
    return jacobian_of_f


def jvp(
    f: Callable[..., Any], primals: Sequence[ArrayLike], tangents: Sequence[ArrayLike]
) -> tuple[np.ndarray, np.ndarray]:
    r"""Evaluate ``f`` and its Jacobian-vector product, :math:`(f(x), J_f(x)\,\dot x)`.

    Parameters
    ----------
    f : callable
        A numpy function of the ``primals``.
    primals, tangents : tuple of array_like
        The point and the direction, one tangent of the same shape per primal.

    Returns
    -------
    value : ndarray
        ``f(*primals)``.
    tangent_out : ndarray
        :math:`\sum_i J_{f,i}\,\dot x_i`, of the shape of the value.

    Notes
    -----
    Each traced value carries its tangent; every numpy call applies its local structure
    to it (``O(size of the values)`` memory, no Jacobian of ``f`` is formed).

    Examples
    --------
    >>> import numpy as np, structjac as sj
    >>> sj.jvp(np.sin, (np.zeros(2),), (np.array([1.0, 2.0]),))
    (array([0., 0.]), array([1., 2.]))
    """
    primals, tangents = tuple(primals), tuple(tangents)
    if len(primals) != len(tangents):
        raise ValueError(f"jvp: {len(primals)} primals but {len(tangents)} tangents")
    _, nums, xs = _prepare(primals, tuple(range(len(primals))), "jvp")
    ts = []
    for i, (x, t) in enumerate(zip(xs, tangents)):
        t = np.asarray(t)
        if t.shape != x.shape:
            raise ValueError(
                f"jvp: tangent {i} has shape {t.shape} but primal {i} has shape {x.shape}"
            )
        ts.append(t.astype(np.result_type(x.dtype, t.dtype), copy=False))
    trace = Trace("tangent", len(xs))
    traced = [trace.new_input(x, k, tangent=t) for k, (x, t) in enumerate(zip(xs, ts))]
    out = _call(f, primals, nums, traced)
    result = _output(out, trace, "jvp")
    if result is None:
        value = np.asarray(out)
        return _plain_value(value), np.zeros(value.shape, dtype=np.result_type(value.dtype, *xs))
    tangent = result._payload
    if tangent is None:
        tangent = np.zeros(result.shape, dtype=result.dtype)
    return _plain_value(result.value), _plain_value(tangent)


def _owned(c, g):
    """True when the vjp's result ``c`` is a new array the backward pass may add into:
    it owns its memory and is neither the incoming cotangent ``g`` nor a view of it (a
    vjp may pass ``g`` on as it is: ``x + b``, reshape), nor a value of the trace."""
    return (
        type(c) is np.ndarray
        and c is not g
        and c.flags.owndata
        and c.flags.writeable
        and not (isinstance(g, np.ndarray) and np.may_share_memory(c, g))
    )


def _backward(trace, out_node, cotangent, keep):
    r"""Walk the tape from ``out_node`` back to the inputs; return their cotangents.

    The cotangent of a node with several consumers is accumulated in place, into an
    array the backward pass made itself (never the user's cotangent, a value of the
    forward pass or an array a vjp passed on unchanged); element-wise rules with a
    fused kernel add :math:`\bar y \odot f'` to it in the same pass (``Local.vjp_acc``).
    """
    tape = trace.tape
    pending = {out_node: cotangent}
    owned = set()
    inputs = set(trace.input_nodes)
    grads = {}
    for node in range(out_node, -1, -1):
        g = pending.pop(node, None)
        if g is None:
            continue
        owned.discard(node)
        if node in inputs:
            grads[node] = g
            continue
        for parent, local in tape[node]:
            previous = pending.get(parent)
            if previous is None:
                contribution = local.vjp(g)
                pending[parent] = contribution
                if _owned(contribution, g):
                    owned.add(parent)
                continue
            if (
                parent in owned
                and local.vjp_acc is not None
                and local.vjp_acc(g, previous) is not None
            ):
                continue
            contribution = local.vjp(g)
            if (
                parent in owned
                and isinstance(contribution, np.ndarray)
                and contribution.shape == previous.shape
                and np.result_type(previous.dtype, contribution.dtype) == previous.dtype
            ):
                np.add(previous, contribution, out=previous)
            else:
                total = previous + contribution
                pending[parent] = total
                if type(total) is np.ndarray:
                    owned.add(parent)
        if not keep:
            tape[node] = ()
    return [grads.get(node) for node in trace.input_nodes]


def _reverse(f, args, nums, primals, transform, once=False):
    trace = Trace("reverse", len(nums), once=once)
    traced = [trace.new_input(x, k) for k, x in enumerate(primals)]
    out = _call(f, args, nums, traced)
    return trace, out, _output(out, trace, transform)


def _finish(g, x):
    if g is None:
        return np.zeros(x.shape, dtype=x.dtype)
    g = np.asarray(g)
    if g.dtype != x.dtype:
        g = g.astype(x.dtype)  # the gradient has the dtype of its argument (float32 stays)
    g = np.reshape(g, x.shape)
    if not g.flags.writeable or not g.flags.c_contiguous:
        g = np.array(g, order="C")
    return g


def vjp(f: Callable[..., Any], *primals: ArrayLike) -> tuple[np.ndarray, Callable[..., Any]]:
    r"""Evaluate ``f`` and return its vector-Jacobian product as a function.

    Parameters
    ----------
    f : callable
        A numpy function of the ``primals``.
    *primals : array_like
        The point.

    Returns
    -------
    value : ndarray
        ``f(*primals)``.
    vjp_fn : callable
        ``vjp_fn(cotangent)`` with a cotangent of the value's shape returns the tuple
        :math:`(\bar y^T J_{f,1}, \dots)`, one array per primal, each of its shape. It may
        be called many times.

    Notes
    -----
    Reverse mode over the recorded trace: each numpy call keeps its fused vjp, and the
    tape is walked backwards; memory is ``O(size of the values)``, never a Jacobian.

    Examples
    --------
    >>> import numpy as np, structjac as sj
    >>> value, vjp_fn = sj.vjp(lambda x: x ** 2, np.array([1.0, 3.0]))
    >>> vjp_fn(np.ones(2))
    (array([2., 6.]),)
    """
    _, nums, xs = _prepare(primals, tuple(range(len(primals))), "vjp")
    trace, out, result = _reverse(f, primals, nums, xs, "vjp")
    if result is None:
        value = np.asarray(out)

        def vjp_zero(cotangent):
            return tuple(np.zeros(x.shape, dtype=x.dtype) for x in xs)

        return _plain_value(value), vjp_zero
    out_node, shape, dtype = result._payload, result.shape, result.dtype

    def vjp_fn(cotangent):
        ct = np.asarray(cotangent)
        if ct.shape != shape:
            raise ValueError(
                f"vjp_fn: the cotangent has shape {ct.shape} but the value has shape {shape}"
            )
        ct = ct.astype(
            np.result_type(ct.dtype, dtype) if ct.dtype.kind in "fc" else dtype, copy=False
        )
        grads = _backward(trace, out_node, ct, keep=True)
        return tuple(_finish(g, x) for g, x in zip(grads, xs))

    return _plain_value(result.value), vjp_fn


def _scalar_output(result, out, transform):
    value = result.value if result is not None else np.asarray(out)
    if np.ndim(value) != 0:
        raise TypeError(
            f"{transform}: f must return a scalar (shape ()), but it returned an array of shape "
            f"{np.shape(value)}; use structjac.jacobian or structjac.vjp for non-scalar outputs"
        )
    if not (np.asarray(value).dtype.kind in "f" or isinstance(value, numbers.Real)):
        raise TypeError(
            f"{transform}: f must return a real floating-point scalar, got dtype {np.asarray(value).dtype}"
        )


def value_and_grad(
    f: Callable[..., Any], argnums: int | Sequence[int] = 0
) -> Callable[..., tuple[Any, Any]]:
    r"""Return a function that evaluates the scalar ``f`` and its gradient.

    Parameters
    ----------
    f : callable
        A numpy function returning a real scalar (shape ``()``).
    argnums : int or tuple of int, default 0

    Returns
    -------
    callable
        ``value_and_grad(f)(*args)`` returns ``(f(*args), gradient)``, the gradient of
        the shape and dtype of ``args[argnums]`` (a tuple for a tuple ``argnums``).

    Notes
    -----
    Reverse mode (see :func:`vjp`): memory ``O(size of the values)``. This is the
    transform of any numpy function; the backward pass of the built-in network is
    :func:`structjac.nn.value_and_grad`.

    Raises
    ------
    TypeError
        When ``f`` returns a non-scalar (its shape named), or as :func:`jacobian`.

    Examples
    --------
    >>> import numpy as np, structjac as sj
    >>> sj.value_and_grad(lambda x: np.sum(x ** 2))(np.array([1.0, 2.0]))
    (np.float64(5.0), array([2., 4.]))
    """

    def value_and_grad_of_f(*args):
        single, nums, primals = _prepare(args, argnums, "grad")
        trace, out, result = _reverse(f, args, nums, primals, "grad", once=True)
        _scalar_output(result, out, "grad")
        if result is None:
            grads = [None] * len(primals)
            value = np.asarray(out)
        else:
            value = result.value
            grads = _backward(trace, result._payload, np.ones((), dtype=value.dtype), keep=False)
        grads = tuple(_finish(g, x) for g, x in zip(grads, primals))
        return _plain_value(value), (grads[0] if single else grads)

    value_and_grad_of_f.__name__ = f"value_and_grad({getattr(f, '__name__', 'f')})"
    return value_and_grad_of_f


def grad(f: Callable[..., Any], argnums: int | Sequence[int] = 0) -> Callable[..., Any]:
    r"""Return a function that computes the gradient of the scalar ``f``.

    Parameters
    ----------
    f : callable
        A numpy function returning a real scalar (shape ``()``).
    argnums : int or tuple of int, default 0

    Returns
    -------
    callable
        ``grad(f)(*args)`` returns :math:`\nabla f`, of the shape and dtype of
        ``args[argnums]`` (a tuple for a tuple ``argnums``).

    Examples
    --------
    >>> import numpy as np, structjac as sj
    >>> sj.grad(lambda x: np.mean(np.tanh(x)))(np.zeros(4))
    array([0.25, 0.25, 0.25, 0.25])
    """
    both = value_and_grad(f, argnums)

    def grad_of_f(*args):
        return both(*args)[1]

    grad_of_f.__name__ = f"grad({getattr(f, '__name__', 'f')})"
    return grad_of_f
