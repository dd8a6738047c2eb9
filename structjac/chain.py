r"""The product of a chain of Jacobians in the cheapest association order.

Backpropagation and forward-mode differentiation are the same product
:math:`J_1 J_2 \cdots J_k` associated in two different orders: with a loss row
:math:`\ell^T` on the left, :math:`((\ell^T J_1) J_2) \cdots` keeps every intermediate a row
(reverse mode); with a vector :math:`v` on the right, :math:`J_1 (\cdots (J_k v))` keeps
every intermediate a vector (forward mode). :func:`chain` does not know either name: it
runs the matrix-chain dynamic programme

.. math::

    C(i, j) = \min_{i \le s < j} \; C(i, s) + C(s + 1, j) + c\big(P(i, s), P(s + 1, j)\big)

over a cost model :math:`c` estimated from the structures alone (nothing is multiplied
to plan): each operand is described by its shape, its structural nonzeros, the numbers it
stores and its nonzero rows and columns; the product of two descriptions costs
:math:`\mathrm{nnz}(A)\,\mathrm{nnz}(B)/q` multiply-adds (each nonzero of :math:`A` meets
:math:`\mathrm{nnz}(B)/q` nonzeros of its row of :math:`B` on average; exact for diagonal,
dense and block-row operands) plus the numbers the result stores, its type taken from the
rule table (:func:`structjac.algebra.rule_for`). Products that the table has no rule for
fall to ``scipy.sparse`` and cost :data:`FALLBACK_PENALTY` times more. A rule pair can
supply its own estimate with :func:`register_cost`.

Examples
--------
>>> import numpy as np, structjac as sj
>>> from structjac.chain import chain, chain_plan
>>> rng = np.random.default_rng(0)
>>> D1, D2 = sj.Diagonal(rng.random(50)), sj.Diagonal(rng.random(40))
>>> W1, W2 = sj.Dense(rng.random((50, 40))), sj.Dense(rng.random((40, 30)))
>>> loss_row = rng.random(50)                        # dJ/da, a row on the left
>>> plan = chain_plan(loss_row, D1, W1, D2, W2)
>>> plan.order                                       # reverse mode, found by the DP
'((((u @ J1) @ J2) @ J3) @ J4)'
>>> bool(np.allclose(plan.evaluate(), loss_row @ D1.to_dense() @ W1.matrix @ D2.to_dense() @ W2.matrix))
True
>>> chain_plan(D1, W1, D2, W2, rng.random(30)).order  # a vector on the right: forward mode
'(J1 @ (J2 @ (J3 @ (J4 @ v))))'
"""

from __future__ import annotations

from collections.abc import Sequence

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from . import _registry
from .algebra import SAME_AS_LEFT, SAME_AS_RIGHT, as_jacobian, matmul, rule_for
from .structures import Dense, Jacobian, Sparse

__all__ = [
    "chain",
    "chain_plan",
    "ChainPlan",
    "Operand",
    "register_cost",
    "FALLBACK_PENALTY",
    "describe",
]

#: Cost multiplier of a product the rule table has no rule for (it goes through scipy.sparse).
FALLBACK_PENALTY = 10.0


@dataclass(frozen=True)
class Operand:
    """What the planner knows of an operand, real or an intermediate product.

    Attributes
    ----------
    shape : (int, int)
    nnz : float
        Structural nonzeros (entries that may be nonzero).
    stored : float
        Numbers stored.
    nzrows, nzcols : float
        Rows (columns) that may hold a nonzero.
    kind : type
        The structure type (the rule table's result type for an intermediate).
    """

    shape: tuple
    nnz: float
    stored: float
    nzrows: float
    nzcols: float
    kind: type


def describe(J: Jacobian) -> Operand:
    """Return the planner's :class:`Operand` for a structure (nothing is computed): the
    structure reports its nonzeros and nonzero rows and columns itself
    (:attr:`~structjac.Jacobian.nnz`, :attr:`~structjac.Jacobian.n_nonzero_rows`,
    :attr:`~structjac.Jacobian.n_nonzero_cols`).

    Examples
    --------
    >>> import numpy as np, structjac as sj
    >>> from structjac.chain import describe
    >>> describe(sj.BlockRow(1, np.ones(4), 3))
    Operand(shape=(3, 4), nnz=4.0, stored=4.0, nzrows=1.0, nzcols=4.0, kind=<class 'structjac.structures.blockrow.BlockRow'>)
    """
    return Operand(
        J.shape,
        float(J.nnz),
        J.nbytes / max(J.dtype.itemsize, 1),
        float(J.n_nonzero_rows),
        float(J.n_nonzero_cols),
        type(J),
    )


def register_cost(left: type, right: type):
    """Attach an estimator ``f(a: Operand, b: Operand) -> (flops, Operand)`` to the
    matmul rule of a pair (the rule table holds it: ``structjac.Rule.cost``).

    Raises
    ------
    KeyError
        When the table has no matmul rule for exactly ``(left, right)``.

    Examples
    --------
    >>> import structjac as sj
    >>> from structjac.chain import register_cost
    >>> rule = sj.algebra.rule_for("matmul", sj.Kronecker, sj.Kronecker)
    >>> rule.cost.__name__              # the mixed product: factors multiply, nothing expands
    '_mixed_product_cost'
    >>> register_cost(sj.Kronecker, sj.Kronecker)(rule.cost) is rule.cost   # attach (again)
    True
    """

    def register(function):
        _registry.set_cost("matmul", left, right, function)
        return function

    return register


def _result_kind(rule, a: Operand, b: Operand) -> type:
    if rule.result == SAME_AS_LEFT:
        return a.kind
    if rule.result == SAME_AS_RIGHT:
        return b.kind
    if isinstance(rule.result, tuple):
        return rule.result[-1]  # the loosest type the rule may return
    return rule.result


def estimate(a: Operand, b: Operand) -> tuple[float, float, Operand]:
    r"""Estimate ``a @ b``: ``(flops, cost, result)`` where cost adds the stored numbers.

    The rule the table applies to the pair gives the estimate when it carries one
    (``structjac.Rule.cost``); otherwise each nonzero of ``a`` meets
    :math:`\mathrm{nnz}(b)/q` nonzeros of ``b`` and the result type (the rule's) says
    what it stores. A result that is one of the operands passed on stores nothing new.

    Examples
    --------
    >>> import numpy as np, structjac as sj
    >>> from structjac.chain import describe, estimate
    >>> row, D = describe(sj.Dense(np.ones((1, 100)))), describe(sj.Diagonal(np.ones(100)))
    >>> estimate(row, D)[0]                 # 100 multiplications
    100.0
    """
    p, q = a.shape
    r = b.shape[1]
    rule = rule_for("matmul", a.kind, b.kind)
    if rule is not None and rule.cost is not None:
        flops, res = rule.cost(a, b)
        new = 0.0 if res is a or res is b else res.stored
        return float(flops), float(flops) + new, res
    flops = a.nnz * b.nnz / max(q, 1)
    nnz = min(flops, a.nzrows * b.nzcols, float(p * r))
    if rule is None:
        kind, penalty = Sparse, FALLBACK_PENALTY
    else:
        kind, penalty = _result_kind(rule, a, b), 1.0
    stored = kind._stored_estimate((p, r), nnz, a, b)
    res = Operand((p, r), nnz, stored, a.nzrows, b.nzcols, kind)
    return flops, penalty * (flops + stored), res


@dataclass
class ChainPlan:
    """A planned product: the association order the DP chose, its cost, and the others.

    Attributes
    ----------
    order : str
        The chosen product, parenthesised (``u`` a row vector on the left, ``v`` a
        vector on the right, ``J1 ... Jk`` the factors, or the names given).
    cost : float
        Estimated cost: multiply-adds plus numbers stored by the intermediates.
    flops : float
        Estimated multiply-adds of the chosen order.
    alternatives : list of (str, float)
        Every association order with its estimated cost, cheapest first (for chains of
        at most 8 factors; otherwise left-to-right and right-to-left only).
    """

    operands: list
    names: list
    split: dict
    order: str
    cost: float
    flops: float
    alternatives: list = field(default_factory=list)
    vector_left: bool = False
    vector_right: bool = False

    def explain(self) -> str:
        """A readable account of the operands, the chosen order and every alternative."""
        lines = ["operands:"]
        for name, J in zip(self.names, self.operands):
            d = describe(J)
            lines.append(
                f"  {name:>4}: {type(J).__name__:<16} {str(J.shape):>20}  nnz~{d.nnz:.3g}  stored {d.stored:.3g}"
            )
        lines.append(f"chosen: {self.order}   cost {self.cost:.4g} (flops {self.flops:.4g})")
        if self.alternatives:
            lines.append("alternatives (estimated cost, cheapest first):")
            for order, cost in self.alternatives:
                mark = "*" if order == self.order else " "
                lines.append(f"  {mark} {cost:>12.4g}  {order}")
        return "\n".join(lines)

    def evaluate(self) -> "Jacobian | np.ndarray":
        """Multiply in the planned order; vector ends give an ndarray back."""

        def run(i, j):
            if i == j:
                return self.operands[i]
            s = self.split[(i, j)]
            return matmul(run(i, s), run(s + 1, j))

        result = run(0, len(self.operands) - 1)
        if self.vector_left and self.vector_right:
            return result.to_dense()[0, 0]
        if self.vector_left:
            return (
                result.to_dense()[0]
                if not isinstance(result, Dense)
                else np.array(result.matrix[0])
            )
        if self.vector_right:
            return (
                result.to_dense()[:, 0]
                if not isinstance(result, Dense)
                else np.array(result.matrix[:, 0])
            )
        return result

    def __repr__(self):
        return f"ChainPlan(order={self.order!r}, cost={self.cost:.4g})"


def _operands(factors):
    if len(factors) == 1 and isinstance(factors[0], (list, tuple)):
        factors = list(factors[0])
    if not factors:
        raise ValueError("chain needs at least one factor")
    ops, vl, vr = [], False, False
    for k, f in enumerate(factors):
        if isinstance(f, Jacobian):
            ops.append(f)
            continue
        if sp.issparse(f):
            ops.append(as_jacobian(f))
            continue
        arr = np.asarray(f)
        if arr.ndim == 1:
            if k == 0:
                ops.append(Dense(arr[None, :]))
                vl = True
            elif k == len(factors) - 1:
                ops.append(Dense(arr[:, None]))
                vr = True
            else:
                raise ValueError(f"factor {k} is a 1-D array; vectors may only end a chain")
        elif arr.ndim == 2:
            ops.append(Dense(arr))
        else:
            ops.append(as_jacobian(f))
    for k in range(len(ops) - 1):
        if ops[k].shape[1] != ops[k + 1].shape[0]:
            raise ValueError(
                f"chain: factors {k} and {k + 1} do not fit: {type(ops[k]).__name__} of shape "
                f"{ops[k].shape} and {type(ops[k + 1]).__name__} of shape {ops[k + 1].shape}"
            )
    return ops, vl, vr


def _default_names(n, vl, vr):
    names = []
    for k in range(n):
        if k == 0 and vl:
            names.append("u")
        elif k == n - 1 and vr:
            names.append("v")
        else:
            names.append(f"J{k + (0 if vl else 1)}")
    return names


def _orders(i, j):
    """All parenthesisations of i..j as (tree) tuples."""
    if i == j:
        yield i
        return
    for s in range(i, j):
        for left in _orders(i, s):
            for right in _orders(s + 1, j):
                yield (left, right)


def _tree_cost(tree, descs):
    if isinstance(tree, int):
        return 0.0, descs[tree]
    ca, a = _tree_cost(tree[0], descs)
    cb, b = _tree_cost(tree[1], descs)
    _, c, res = estimate(a, b)
    return ca + cb + c, res


def _tree_str(tree, names):
    if isinstance(tree, int):
        return names[tree]
    return f"({_tree_str(tree[0], names)} @ {_tree_str(tree[1], names)})"


def chain_plan(
    *factors: Jacobian | np.ndarray, names: Sequence[str] | None = None, alternatives: bool = True
) -> ChainPlan:
    r"""Plan the product of ``factors`` in the cheapest association order (matrix-chain DP).

    Parameters
    ----------
    *factors : Jacobian, ndarray or scipy.sparse
        The chain, left to right. A 1-D array first is a row vector (a loss row); a 1-D
        array last is a column vector; 2-D arrays are ``Dense``.
    names : list of str, optional
        Names for :attr:`ChainPlan.order`.
    alternatives : bool, default True
        Also price every other association order (for :meth:`ChainPlan.explain`);
        :func:`chain` skips it.

    Returns
    -------
    ChainPlan
    """
    ops, vl, vr = _operands(factors)
    n = len(ops)
    names = list(names) if names is not None else _default_names(n, vl, vr)
    if len(names) != n:
        raise ValueError(f"{n} factors but {len(names)} names")
    descs = [describe(J) for J in ops]
    # ties: keep intermediates as narrow as the result (rows if p0 <= pn: left-deep)
    left_deep = ops[0].shape[0] <= ops[-1].shape[1]
    best = {(i, i): (0.0, 0.0, descs[i]) for i in range(n)}
    split = {}
    for length in range(2, n + 1):
        for i in range(0, n - length + 1):
            j = i + length - 1
            candidates = []
            for s in range(i, j):
                ca, fa, a = best[(i, s)]
                cb, fb, b = best[(s + 1, j)]
                flops, c, res = estimate(a, b)
                candidates.append((ca + cb + c, fa + fb + flops, s, res))
            lowest = min(c[0] for c in candidates)
            tied = [c for c in candidates if c[0] <= lowest * (1 + 1e-12)]
            pick = tied[-1] if left_deep else tied[0]
            best[(i, j)] = (pick[0], pick[1], pick[3])
            split[(i, j)] = pick[2]

    def tree(i, j):
        if i == j:
            return i
        s = split[(i, j)]
        return (tree(i, s), tree(s + 1, j))

    chosen = tree(0, n - 1)
    order = _tree_str(chosen, names)
    if not alternatives:
        alts = [(order, best[(0, n - 1)][0])]
    elif n <= 8:
        alts = [(_tree_str(t, names), _tree_cost(t, descs)[0]) for t in _orders(0, n - 1)]
    else:
        ld = 0
        for k in range(1, n):
            ld = (ld, k)
        rd = n - 1
        for k in range(n - 2, -1, -1):
            rd = (k, rd)
        alts = [(_tree_str(t, names), _tree_cost(t, descs)[0]) for t in (ld, rd)]
        alts.append((order, best[(0, n - 1)][0]))
    alts = sorted(dict(alts).items(), key=lambda kv: kv[1])
    cost, flops, _ = best[(0, n - 1)]
    return ChainPlan(
        operands=ops,
        names=names,
        split=split,
        order=order,
        cost=cost,
        flops=flops,
        alternatives=alts,
        vector_left=vl,
        vector_right=vr,
    )


def chain(*factors: Jacobian | np.ndarray) -> Jacobian | np.ndarray:
    r"""Return the product of a chain of Jacobians, multiplied in the cheapest order.

    Equal to the left-to-right product; see :func:`chain_plan` for the order and the
    cost model. A row vector on the left gives reverse mode, a vector on the right
    forward mode, by the cost model alone.

    Returns
    -------
    Jacobian, or ndarray when an end of the chain is a 1-D array

    Examples
    --------
    >>> import numpy as np, structjac as sj
    >>> D = sj.Diagonal(np.array([1.0, 2.0]))
    >>> from structjac.chain import chain
    >>> chain(np.array([1.0, 1.0]), D, sj.Dense(np.eye(2)))
    array([1., 2.])
    """
    return chain_plan(*factors, alternatives=False).evaluate()
