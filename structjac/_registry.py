r"""The rule registry: lookup, dtype of the result, and application.

This module sits below the structures: it imports none of them, and every structure
(and :mod:`structjac.algebra`, which only *registers* rules) imports it. A rule is keyed
by ``(operation, left type, right type)``. A pair of operands is looked up along both
method resolution orders, so a rule written for a base class serves its subclasses,
and a rule written for a tighter type overrides it. Among the rules that match, the
one whose types are closest to the operands' (the smallest sum of MRO distances) wins;
ties go to the rule of higher ``priority``, then to the closer left type.

A rule may decline (return ``NotImplemented``) when a condition on shapes fails. When no
rule applies, the result is computed exactly through ``scipy.sparse`` and a
:class:`~structjac.StructureLostWarning` says so (``structjac.strict()`` raises
instead): nothing is densified behind the user's back.

Why a registry below the classes: the structures need the table at call time (``J @ K``)
and the table needs the classes as keys. Registering the rules *after* the classes are
defined, into a table that knows no class, keeps the import graph acyclic.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import scipy.sparse as sp

from ._dense_limit import check_dense, dense_limit
from ._dtypes import result_dtype
from ._warnings import structure_lost

__all__ = [
    "Rule",
    "SAME_AS_LEFT",
    "SAME_AS_RIGHT",
    "register",
    "set_cost",
    "rules",
    "rule_for",
    "lookup",
    "apply",
    "matmul",
    "add",
    "subtract",
    "scale",
    "as_jacobian",
    "set_wrapper",
]

#: Result marker: the result has the type of the left operand.
SAME_AS_LEFT = "same as left"
#: Result marker: the result has the type of the right operand.
SAME_AS_RIGHT = "same as right"

OPERATIONS = ("matmul", "add")


class Rule(NamedTuple):
    """One row of the rule table."""

    operation: str
    """``"matmul"`` or ``"add"``."""
    left: type
    """The left operand's type (subclasses match too)."""
    right: type
    """The right operand's type (subclasses match too)."""
    result: object
    """The result's type, a tuple of the types it may have, or ``"same as left"`` / ``"same as right"``."""
    math: str
    """The rule's one line of mathematics."""
    condition: str
    """When the rule applies (empty: always); otherwise it declines."""
    function: Callable
    """The rule itself, ``function(left, right) -> Jacobian``."""
    priority: int
    """Tie-break among equally close matches; higher wins."""
    cost: "Callable | None" = None
    r"""The planner's estimate of a product (matmul rules), ``cost(a, b) -> (flops,
    result)`` on :class:`structjac.chain.Operand` descriptions; None: the generic
    estimate :math:`\mathrm{nnz}(A)\,\mathrm{nnz}(B)/q` (see :mod:`structjac.chain`)."""


_RULES: dict[tuple[str, type, type], Rule] = {}
_CACHE: dict[tuple[str, type, type], "Rule | None"] = {}
#: ``apply``'s view of ``_CACHE``: key -> (rule or None, whether the rule's result stores
#: a dense matrix); one dict lookup per product on the hot path.  Cleared with ``_CACHE``.
_APPLY: dict[tuple[str, type, type], tuple] = {}


def register(operation, left, right, result, *, condition="", priority=0, cost=None):
    """Decorator: register ``function(a, b)`` as the rule for ``left <operation> right``.

    The first line of the function's docstring is the rule's mathematics; ``cost`` is
    the rule's estimate for the chain planner (see ``Rule.cost``).
    """
    if operation not in OPERATIONS:
        raise ValueError(f"operation must be one of {OPERATIONS}, got {operation!r}")

    def decorate(function):
        math = (function.__doc__ or "").strip().splitlines()[0]
        _RULES[(operation, left, right)] = Rule(
            operation, left, right, result, math, condition, function, priority, cost
        )
        _CACHE.clear()
        _APPLY.clear()
        return function

    return decorate


def set_cost(operation: str, left: type, right: type, cost: Callable) -> None:
    """Attach the planner's estimate ``cost(a, b) -> (flops, result)`` to a registered rule.

    Raises
    ------
    KeyError
        When no rule is registered for exactly ``(operation, left, right)``.
    """
    key = (operation, left, right)
    if key not in _RULES:
        raise KeyError(
            f"no {operation} rule is registered for ({left.__name__}, {right.__name__}); "
            "a cost estimate belongs to a rule of the table"
        )
    _RULES[key] = _RULES[key]._replace(cost=cost)
    _CACHE.clear()
    _APPLY.clear()


def rules() -> list[Rule]:
    """Return the rule table, one :class:`Rule` per registered rule.

    Returns
    -------
    list of Rule
        Named tuples ``(operation, left, right, result, math, condition, function,
        priority, cost)``, sorted by operation and type names.

    Examples
    --------
    >>> import structjac as sj
    >>> row = [r for r in sj.rules() if r.operation == "matmul"
    ...        and r.left is sj.Diagonal and r.right is sj.BlockRow][0]
    >>> row.result.__name__, row.math
    ('BlockRow', 'diag(d) sum_j e_{i_j} r_j^T = sum_j e_{i_j} (d_{i_j} r_j)^T')
    """
    return sorted(_RULES.values(), key=lambda r: (r.operation, r.left.__name__, r.right.__name__))


def lookup(operation: str, left: type, right: type) -> "Rule | None":
    """Return the closest registered rule for the pair of types (cached), or None."""
    key = (operation, left, right)
    try:
        return _CACHE[key]
    except KeyError:
        found = _CACHE[key] = _search(operation, left, right)
        return found


def _search(operation: str, left: type, right: type) -> "Rule | None":
    best = None
    for i, L in enumerate(left.__mro__):
        for j, R in enumerate(right.__mro__):
            found = _RULES.get((operation, L, R))
            if found is not None:
                key = (i + j, -found.priority, i)
                if best is None or key < best[0]:
                    best = (key, found)
    return None if best is None else best[1]


def rule_for(operation: str, left: type, right: type) -> "Rule | None":
    """Return the rule the table applies to ``left <operation> right``, or None.

    Parameters
    ----------
    operation : {"matmul", "add"}
    left, right : type
        Subclasses of :class:`~structjac.Jacobian`.

    Returns
    -------
    Rule or None
        None when no rule matches: the operands then fall to Sparse with a
        :class:`~structjac.StructureLostWarning`. A rule with a ``condition`` may
        still decline for particular shapes.

    Examples
    --------
    >>> import structjac as sj
    >>> sj.algebra.rule_for("matmul", sj.Identity, sj.Dense).math
    'I J = J (the same object, no copy)'
    """
    if operation not in OPERATIONS:
        raise ValueError(f"operation must be 'matmul' or 'add', got {operation!r}")
    return lookup(operation, left, right)


# ------------------------------------------------------------------ wrapping
_WRAPPER: list[Callable] = []


def set_wrapper(function: Callable) -> None:
    """Install ``as_jacobian`` (the structures do, once the classes exist)."""
    _WRAPPER[:] = [function]


def as_jacobian(obj, n: int | None = None):
    """Wrap ``obj`` as a Jacobian (see :func:`structjac.as_jacobian`)."""
    return _WRAPPER[0](obj, n)


# --------------------------------------------------------------- application
def _fallback(operation: str, a, b):
    structure_lost(
        f"{operation}({type(a).__name__}, {type(b).__name__}) has no structured rule; "
        f"the result is computed exactly as Sparse",
        stacklevel=5,
    )
    left, right = a.to_sparse(), b.to_sparse()
    product = left @ right if operation == "matmul" else left + right
    return as_jacobian(sp.csr_array(product))


def pair_dtype(a, b):
    """The dtype of a result computed from Jacobians ``a`` and ``b`` (:func:`result_dtype`).

    Their dtypes are computing dtypes already (``Jacobian.__init__``), so equal ones are it.
    """
    return a._dtype if a._dtype == b._dtype else result_dtype(a._dtype, b._dtype)


def _apply_entry(key):
    found = lookup(*key)
    stores_dense = found is not None and bool(getattr(found.result, "_dense_is_stored", False))
    entry = _APPLY[key] = (found, stores_dense)
    return entry


def apply(operation: str, a, b):
    """Apply the rule for ``a <operation> b`` (or the exact Sparse fallback), in the result dtype."""
    key = (operation, type(a), type(b))
    entry = _APPLY.get(key)
    found, stores_dense = _apply_entry(key) if entry is None else entry
    da, db = a._dtype, b._dtype
    dtype = da if da is db or da == db else result_dtype(da, db)
    if stores_dense:
        # The rule forms a new dense matrix (e.g. a block column times a block row).
        m = a._shape[0]
        n = b._shape[1] if operation == "matmul" else a._shape[1]
        limit = dense_limit.current()
        if limit is not None and m * n * dtype.itemsize > limit:  # raises, naming it
            check_dense((m, n), dtype, f"{operation}({type(a).__name__}, {type(b).__name__})")
    result = NotImplemented if found is None else found.function(a, b)
    if result is NotImplemented:
        result = _fallback(operation, a, b)
    rd = result._dtype
    if rd is not dtype and rd != dtype:
        result = result.astype(dtype)
    return result


def matmul(a, b):
    r"""Compose two Jacobians, :math:`AB`, by the rule table.

    Parameters
    ----------
    a, b : Jacobian
        With ``a.shape[1] == b.shape[0]``.

    Returns
    -------
    Jacobian
        The tightest structure the table knows for the product.

    Raises
    ------
    ValueError
        When the inner dimensions differ; the message names both shapes.
    """
    if a._shape[1] != b._shape[0]:
        raise ValueError(
            f"A @ B: shapes do not fit: {type(a).__name__} of shape {a.shape} and "
            f"{type(b).__name__} of shape {b.shape} (inner dimensions {a.shape[1]} != {b.shape[0]})"
        )
    return apply("matmul", a, b)


def add(a, b):
    r"""Add two Jacobians of the same shape, :math:`A + B`, by the rule table.

    Raises
    ------
    ValueError
        When the shapes differ; the message names both.
    """
    if a.shape != b.shape:
        raise ValueError(
            f"A + B: shapes do not fit: {type(a).__name__} of shape {a.shape} and "
            f"{type(b).__name__} of shape {b.shape}"
        )
    return apply("add", a, b)


def subtract(a, b):
    r""":math:`A - B = A + (-1)B`: negation keeps every structure, then :func:`add`."""
    if a.shape != b.shape:
        raise ValueError(
            f"A - B: shapes do not fit: {type(a).__name__} of shape {a.shape} and "
            f"{type(b).__name__} of shape {b.shape}"
        )
    return apply("add", a, b._scale(-1))


def scale(a, c):
    r""":math:`cA`, in the structure of :math:`A` (every structure scales in closed form)."""
    return a._scale(c)
