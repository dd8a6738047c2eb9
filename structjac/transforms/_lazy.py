r"""Pending element-wise calls and the chunked pass over them.

Under :func:`structjac.grad`, :func:`structjac.vjp` and :func:`structjac.jacobian`, an
element-wise call on arrays of at least :data:`MIN_SIZE` entries (``np.tanh(x)``,
``x * y``, ``-x``, ``x ** 2`` ...) is recorded without being evaluated: its traced value
is *pending*. Three things can happen to it.

* Reverse mode, ``np.sum`` or ``np.mean`` over all its axes consumes it:
  :func:`fused_reduction` evaluates the element-wise graph and its reverse pass
  together, chunk by chunk (``CHUNK_BYTES`` per intermediate, so that every
  intermediate of a chunk stays in the cache), and records one tape entry whose vjp is
  :math:`\bar s\, G_u` with

  .. math::

      G_u = \frac{\partial s}{\partial u} = c \sum_{\text{paths } u \to s} \prod f'

  for each traced array ``u`` the graph reads (``c = 1`` for a sum, ``1/n`` for a mean).
* Forward mode (``jacobian``), anything reads its value: an element-wise graph maps
  entry ``i`` to entry ``i``, so its Jacobian with respect to each array ``u`` it reads
  is :math:`\operatorname{diag}(g_u)`, :math:`g_u` the same chunked reverse pass with
  the cotangent :math:`\mathbf 1` (:func:`fused_diagonal`); it is composed with
  :math:`J_u` by the rule table, and the values are kept.
* Otherwise (reverse mode, a matmul, indexing, a reshape or the output of ``f`` reads
  it): the pending calls it depends on are evaluated in the order they were made by
  the ordinary rules (:meth:`Pending.force`), exactly as if they had never been pending.

In a chunk, the forward values go through numpy's own ufuncs with ``out=`` buffers (the
same numbers as the whole-array calls); the reverse pass is one Numba call running the
list of products :math:`\bar u \mathrel{+}= \bar y\, f'(a)` built once per pass (the
derivative formulas of :mod:`~structjac.transforms._kernels`, or a derivative computed
by the rule's own numpy expression into a buffer). A cotangent that is one number (the
sum's, passed through ``+``, ``-`` and products with numbers) stays one number. The
memory is ``O(chunk)`` besides the results; no array of the input's size is made for
an intermediate.

Correctness never depends on this module: a call is pending only when its arguments
are arrays of one shape and dtype (or numbers; broadcasting is evaluated at once), and
every other use of a pending value evaluates it by the ordinary rules. ``jvp`` never
makes pending values. Floating-point warnings of the forward values are reported once
per kind and function, as numpy's ``errstate`` asks (``raise`` raises
``FloatingPointError``; a ``call`` or ``log`` handler makes the ordinary rules run).
"""

from __future__ import annotations

import warnings

import numba
import numpy as np

from ..kernels._config import JIT
from ..structures import Diagonal, Identity
from . import _compose, _local
from . import _kernels as _fk
from ._tracer import Traced

__all__ = ["MIN_SIZE", "CHUNK_BYTES", "Pending", "pending_call", "fused_reduction"]

#: Element-wise calls on fewer entries are evaluated at once (the chunked pass pays
#: per chunk and per call; below this size the whole arrays are in the cache anyway).
MIN_SIZE = 1 << 16
#: Bytes of one chunk of one intermediate.
CHUNK_BYTES = 1 << 17

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
#: The reverse program's "derivative 1" code, besides the codes of ``_kernels``.
ONE = 100
# How an argument enters the reverse pass: (kind, data)
_SCALE, _KERNEL, _GENERIC = 0, 1, 2


class Pending:
    """An element-wise call recorded and not evaluated yet.

    Attributes
    ----------
    ufunc : numpy.ufunc
    eager : callable () -> Traced
        The ordinary rule of the call (evaluates it, records its tape entry).
    args : tuple
        The call's arguments: traced values (pending or not), numbers, constant arrays.
    shape, dtype, size
        The output's.
    serial : int
        Its position in the order the calls were made (the graph's topological order).
    back : tuple
        Per argument: None for a constant, else ``(kind, data)``: ``(_SCALE, c)`` for
        the derivative ``c``; ``(_KERNEL, (code, k))`` for the formula ``code`` of
        ``_kernels`` applied to argument ``k`` (``-1``: the output); ``(_GENERIC, d)``
        for ``d(u, v, y)``, the rule's own derivative of the chunk's values.
    """

    __slots__ = ("ufunc", "eager", "args", "shape", "dtype", "size", "serial", "back")

    def __init__(self, ufunc, eager, args, shape, dtype, size, serial, back):
        self.ufunc = ufunc
        self.eager = eager
        self.args = args
        self.shape = shape
        self.dtype = dtype
        self.size = size
        self.serial = serial
        self.back = back

    def force(self, node):
        """Evaluate ``node`` (this call); return its value.

        Forward mode (``jacobian``): one chunked pass gives its values and the diagonals
        of its Jacobians (:func:`fused_diagonal`), composed with the Jacobians of the
        arrays it reads. Otherwise, and when that pass declines, the pending calls it
        reads are evaluated in their order by the ordinary rules.
        """
        if node._trace.mode == "jacobian":
            fused = fused_diagonal(node)
            if fused is not None:
                values, grads = fused
                values.flags.writeable = False
                node._payload = _jacobians(node._trace, grads, node.dtype, node.size)
                node._value, node._pending = values, None
                return values
        for p in _graph(node):
            result = p._pending.eager()
            p._value, p._payload, p._source = result._value, result._payload, result._source
            p._pending = None
        return node._value


def _jacobians(trace, grads, dtype, n):
    r""":math:`J_x = \sum_u \operatorname{diag}(g_u)\, J_u`, per input of the trace."""
    jacs = [None] * trace.n_inputs
    for leaf, g in grads:
        if g is None:
            continue
        owned = isinstance(g, np.ndarray)  # made by the pass: the first product may keep it
        for k, J in enumerate(leaf._payload):
            if J is None:
                continue
            if owned and type(J) is Identity and J.dtype == dtype:
                product, owned = Diagonal._wrap(g), False
            else:
                product = _compose.diagonal_times(g, J, dtype)
            if product is None:
                product = _compose.compose(_local.diagonal_structure(g, (n,), dtype), J)
            jacs[k] = _compose.accumulate(jacs[k], product)
    return tuple(jacs)


def _graph(root):
    """The pending nodes ``root`` depends on (itself included), in the order they were made."""
    seen = {id(root): root}
    stack = [root]
    while stack:
        node = stack.pop()
        for a in node._pending.args:
            if type(a) is Traced and a._value is None and id(a) not in seen:
                seen[id(a)] = a
                stack.append(a)
    return sorted(seen.values(), key=lambda t: t._pending.serial)


def _number(a):
    """``a`` as a numpy/Python real number, or None when it is not one."""
    if isinstance(a, (bool, int, float, np.integer, np.floating)):
        return a
    if isinstance(a, np.ndarray) and a.ndim == 0 and a.dtype.kind in "biuf":
        return a[()]
    return None


def pending_call(ufunc, eager, inputs, trace, derivatives):
    """Record the element-wise call ``ufunc(*inputs)`` as pending, or return None.

    Parameters
    ----------
    ufunc : numpy.ufunc
    eager : callable () -> Traced
        The ordinary rule (run when the value is read).
    inputs : tuple
        The call's arguments.
    trace : Trace
        A reverse-mode trace.
    derivatives : callable (numbers) -> tuple
        Given, per argument, its number (or None for an array), returns per argument
        its ``back`` entry (see :class:`Pending`), or None to decline.

    Returns
    -------
    Traced or None
        The pending value; None when the call is evaluated now: an argument of another
        shape (broadcasting) or dtype, fewer than :data:`MIN_SIZE` entries, a complex or
        integer output.
    """
    for a in inputs:
        if type(a) is Traced:
            if a.size < MIN_SIZE:
                return None  # the common case of small arrays: decided at once
            break
    shape = None
    dtype = None
    numbers = []
    result_args = []
    for a in inputs:
        if type(a) is Traced:
            if a._trace is not trace:
                return None  # the ordinary rule names the mix of transforms
            s, d = a.shape, a.dtype
            if shape is None:
                shape, dtype = s, d
            elif s != shape or d != dtype:
                return None
            numbers.append(None)
            result_args.append(d)
            continue
        c = _number(a)
        if c is not None:
            numbers.append(c)
            result_args.append(c)
            continue
        if isinstance(a, np.ndarray) and a.dtype.kind in "biuf":
            numbers.append(None)
            result_args.append(a.dtype)
            continue
        return None
    if dtype is None or dtype not in _FLOATS:
        return None
    size = 1
    for s in shape:
        size *= s
    if size < MIN_SIZE:
        return None
    for a in inputs:
        if isinstance(a, np.ndarray) and a.ndim and a.shape != shape:
            return None
    if np.result_type(*result_args) != dtype:
        return None
    back = derivatives(numbers)
    if back is None:
        return None
    trace.pending += 1
    p = Pending(ufunc, eager, tuple(inputs), shape, dtype, size, trace.pending, back)
    return Traced._make_pending(trace, p)


# ============================================================  the reverse program
def _loops(code):
    """The two loops of one derivative formula, ``out (+)= s * g * f'(a)`` and
    ``out (+)= s * f'(a)``, compiled apart (the formula a constant, the arrays separate
    arguments) so that each vectorises."""
    if code == ONE:

        @numba.njit(**JIT)
        def with_g(out, g, a, s, m, acc):
            if acc:
                for i in range(m):
                    out[i] += s * g[i]
            else:
                for i in range(m):
                    out[i] = s * g[i]

        @numba.njit(**JIT)
        def without_g(out, a, s, m, acc):
            if acc:
                for i in range(m):
                    out[i] += s
            else:
                for i in range(m):
                    out[i] = s

        return with_g, without_g

    @numba.njit(**JIT)
    def with_g(out, g, a, s, m, acc):
        if acc:
            for i in range(m):
                out[i] += s * g[i] * _fk._derivative(code, a[i])
        else:
            for i in range(m):
                out[i] = s * g[i] * _fk._derivative(code, a[i])

    @numba.njit(**JIT)
    def without_g(out, a, s, m, acc):
        if acc:
            for i in range(m):
                out[i] += s * _fk._derivative(code, a[i])
        else:
            for i in range(m):
                out[i] = s * _fk._derivative(code, a[i])

    return with_g, without_g


_G0, _S0 = _loops(_fk.TIMES)
_G1, _S1 = _loops(_fk.TANH_Y)
_G2, _S2 = _loops(_fk.SIGMOID_Y)
_G3, _S3 = _loops(_fk.OVER_1PA)
_G4, _S4 = _loops(_fk.OVER)
_G5, _S5 = _loops(_fk.TIMES_2A)
_G6, _S6 = _loops(_fk.HALF_OVER)
_G7, _S7 = _loops(_fk.TIMES_AP1)
_G100, _S100 = _loops(ONE)


@numba.njit(**JIT)
def _run_program(program, scalars, rows, m):
    """Run the reverse program on the first ``m`` entries of the chunk's ``rows``.

    Instruction ``k`` is ``(code, dst, g, a, acc)``: ``rows[dst] (+)= s * rows[g] *
    f'_code(rows[a])`` with ``s = scalars[k]`` (of the rows' dtype: float32 stays
    float32); ``g < 0`` reads 1, ``code == ONE`` is the derivative 1 (``a`` unused).
    """
    for k in range(program.shape[0]):
        code = program[k, 0]
        out = rows[program[k, 1]]
        gi = program[k, 2]
        a = rows[max(program[k, 3], 0)]
        acc = program[k, 4] != 0
        s = scalars[k]
        if gi >= 0:
            g = rows[gi]
            if code == 0:
                _G0(out, g, a, s, m, acc)
            elif code == 1:
                _G1(out, g, a, s, m, acc)
            elif code == 2:
                _G2(out, g, a, s, m, acc)
            elif code == 3:
                _G3(out, g, a, s, m, acc)
            elif code == 4:
                _G4(out, g, a, s, m, acc)
            elif code == 5:
                _G5(out, g, a, s, m, acc)
            elif code == 6:
                _G6(out, g, a, s, m, acc)
            elif code == 7:
                _G7(out, g, a, s, m, acc)
            else:
                _G100(out, g, a, s, m, acc)
        elif code == 0:
            _S0(out, a, s, m, acc)
        elif code == 1:
            _S1(out, a, s, m, acc)
        elif code == 2:
            _S2(out, a, s, m, acc)
        elif code == 3:
            _S3(out, a, s, m, acc)
        elif code == 4:
            _S4(out, a, s, m, acc)
        elif code == 5:
            _S5(out, a, s, m, acc)
        elif code == 6:
            _S6(out, a, s, m, acc)
        elif code == 7:
            _S7(out, a, s, m, acc)
        else:
            _S100(out, a, s, m, acc)


class _Plan:
    """The rows and the two programs of one fused reduction."""

    def __init__(self, nodes, dtype, seed):
        self.dtype = dtype
        self._position = {id(n): i for i, n in enumerate(nodes)}
        self.n_rows = 0
        self.row_of = {}  # id(node) -> value row
        self.external = []  # (row, flat array): leaves and constants the kernels read
        self.external_row = {}
        self.leaves = []  # traced arrays (not pending) the graph reads
        self.leaf_index = {}
        self.forward = []  # (ufunc, [arg specs], row, [(generic d, arg specs, d row)])
        for node in nodes:
            self.row_of[id(node)] = self._row()
        for node in nodes:
            p = node._pending
            specs = [self._spec(a) for a in p.args]
            generic = []
            for k, entry in enumerate(p.back):
                if entry is not None and entry[0] == _GENERIC:
                    generic.append((entry[1], self._row(), k))
            ufunc = p.ufunc
            if ufunc is np.power and specs[1] == ("number", 2):
                ufunc, specs = np.square, specs[:1]  # the same numbers, without pow's loop
            self.forward.append((ufunc, specs, self.row_of[id(node)], generic, p.ufunc.__name__))
        self._reverse(nodes, seed)

    def _row(self):
        self.n_rows += 1
        return self.n_rows - 1

    def _spec(self, a):
        if type(a) is Traced:
            if a._value is None:
                return ("row", self.row_of[id(a)])
            if id(a) not in self.leaf_index:
                self.leaf_index[id(a)] = len(self.leaves)
                self.leaves.append(a)
            return ("flat", np.reshape(a._value, -1), id(a))
        c = _number(a)
        if c is not None:
            return ("number", c)
        return ("flat", np.reshape(a, -1), id(a))

    def _operand_row(self, spec, node_row):
        """The row a kernel reads for an argument spec (``None``: the output)."""
        if spec is None:
            return node_row
        if spec[0] == "row":
            return spec[1]
        key = spec[2]
        if key not in self.external_row:
            row = self._row()
            self.external_row[key] = row
            self.external.append((row, spec[1]))
        return self.external_row[key]

    def _reverse(self, nodes, seed):
        program, scalars = [], []
        cot = {id(nodes[-1]): ("number", seed)}  # id -> ("number", c) or ("row", r)
        self.leaf_cot = {}

        def emit(code, dst, g, a, acc, s):
            program.append((code, dst, g, a, 1 if acc else 0))
            scalars.append(float(s))

        def add_to(target, key, contribution):
            """contribution: ("number", c) or (code, g_row, a_row, s)."""
            have = cot.get(key)
            if contribution[0] == "number":
                if have is None:
                    cot[key] = contribution
                elif have[0] == "number":
                    cot[key] = ("number", have[1] + contribution[1])
                else:
                    emit(ONE, have[1], -1, -1, True, contribution[1])
                return
            code, g, a, s = contribution
            if have is None or have[0] == "number":
                row = self._row()
                emit(code, row, g, a, False, s)
                if have is not None and have[1] != 0:
                    emit(ONE, row, -1, -1, True, have[1])
                cot[key] = ("row", row)
            else:
                emit(code, have[1], g, a, True, s)

        for node in reversed(nodes):
            c = cot.get(id(node))
            if c is None:
                continue
            p = node._pending
            node_row = self.row_of[id(node)]
            specs = self.forward_specs(node)
            generic_rows = {k: row for _, row, k in self.forward_of(node)[3]}
            for k, (a, entry) in enumerate(zip(p.args, p.back)):
                if entry is None or type(a) is not Traced:
                    continue
                kind, data = entry
                if kind == _SCALE:
                    data = float(data)  # a float32 number must not round the products
                g_row, g_s = (-1, c[1]) if c[0] == "number" else (c[1], 1.0)
                if kind == _SCALE:
                    if g_row < 0:
                        contribution = ("number", g_s * data)
                    else:
                        contribution = (ONE, g_row, -1, data)
                elif kind == _KERNEL:
                    code, which = data
                    a_row = self._operand_row(None if which < 0 else specs[which], node_row)
                    contribution = (code, g_row, a_row, g_s)
                else:
                    contribution = (_fk.TIMES, g_row, generic_rows[k], g_s)
                add_to(a, id(a), contribution)
        self.program = np.array(program, dtype=np.int64).reshape(-1, 5)
        self.scalars = np.array(scalars, dtype=self.dtype)
        self.leaf_cot = [cot.get(id(leaf)) for leaf in self.leaves]

    def forward_of(self, node):
        return self.forward[self._position[id(node)]]

    def forward_specs(self, node):
        return self.forward_of(node)[1]


_ERRORS = {
    "divide by zero": "divide",
    "overflow": "over",
    "underflow": "under",
    "invalid": "invalid",
}


def _report(flagged, modes):
    """Report the floating-point errors of the forward values as numpy would, once each."""
    for kind, name in flagged:
        if modes[_ERRORS.get(kind, "invalid")] == "raise":
            raise FloatingPointError(f"{kind} encountered in {name}")
    for kind, name in flagged:
        if modes[_ERRORS.get(kind, "invalid")] == "warn":
            warnings.warn(f"{kind} encountered in {name}", RuntimeWarning, stacklevel=2)


def fused_reduction(x, mean):
    r"""The chunked sum (or mean) of the pending value ``x`` and its gradient.

    Parameters
    ----------
    x : Traced
        A pending value.
    mean : bool
        The mean (scale :math:`1/n`) instead of the sum.

    Returns
    -------
    total : float
        The sum or mean of ``x``'s entries (as a Python float).
    grads : list of (Traced, ndarray or float)
        Each traced array ``u`` the graph reads with :math:`\partial s/\partial u`,
        flat (an array of ``u.size`` entries of ``u``'s dtype), or one number when every
        entry is the same; ``None`` when ``s`` does not depend on ``u``.
    None
        When the fused pass cannot honour the caller's ``np.errstate`` (``call`` or
        ``print``, or ``log``): the caller evaluates ``x`` by the ordinary rules.
    """
    result = _fused_pass(x, 1.0 / x.size if mean else 1.0, keep=False)
    if result is None:
        return None
    total, _, grads = result
    return (total / x.size if mean else total), grads


def fused_diagonal(x):
    r"""The values of the pending ``x`` and the diagonals of its Jacobians, chunk by chunk.

    An element-wise graph maps entry ``i`` of the arrays it reads to entry ``i`` of
    ``x``, so :math:`\partial x/\partial u = \operatorname{diag}(g_u)` for each traced
    array ``u`` it reads, and :math:`g_u` is the reverse pass with the cotangent
    :math:`\mathbf 1`: the same chunked pass as :func:`fused_reduction`, keeping the
    values of ``x``.

    Returns
    -------
    values : ndarray
        ``x``'s values, of its shape.
    grads : list of (Traced, ndarray or float or None)
        As :func:`fused_reduction`: :math:`g_u` flat, one number, or None.
    None
        As :func:`fused_reduction`.
    """
    result = _fused_pass(x, 1.0, keep=True)
    if result is None:
        return None
    _, values, grads = result
    return values.reshape(x.shape), grads


def _fused_pass(x, seed, keep):
    """The chunked forward-and-reverse pass from ``x`` with the cotangent ``seed`` on
    every entry: ``(sum of x, x's values if keep else None, [(leaf, gradient)])``."""
    modes = np.geterr()
    if any(m not in ("ignore", "warn", "raise") for m in modes.values()):
        return None
    nodes = _graph(x)
    n = x.size
    dtype = x.dtype
    plan = _Plan(nodes, dtype, seed)
    chunk = max(1, CHUNK_BYTES // dtype.itemsize)
    rows = np.empty((plan.n_rows, min(chunk, n)), dtype=dtype)
    grads = []
    for leaf, c in zip(plan.leaves, plan.leaf_cot):
        if c is None:
            grads.append(None)
        elif c[0] == "number":
            grads.append(c[1])
        else:
            grads.append(np.empty(n, dtype=dtype))
    leaf_rows = [(c[1], g) for c, g in zip(plan.leaf_cot, grads) if c is not None and c[0] == "row"]
    root = plan.row_of[id(nodes[-1])]
    values = np.empty(n, dtype=dtype) if keep else None
    program, scalars = plan.program, plan.scalars
    flagged = []
    current = [None]

    def on_error(kind, flag):
        entry = (kind, current[0])
        if entry not in flagged and modes[_ERRORS.get(kind, "invalid")] != "ignore":
            flagged.append(entry)

    quiet = all(m == "ignore" for m in modes.values())
    total = 0.0

    def steps(m):
        """The forward calls over the first ``m`` entries of the rows: per call the
        ufunc, its argument list (the rows' views and numbers in place; the slots of
        the flat arrays filled per chunk), its output row and its generic derivatives."""
        view = [rows[r, :m] for r in range(plan.n_rows)]
        out = []
        for ufunc, specs, row, generic, name in plan.forward:
            args = [
                view[s[1]] if s[0] == "row" else s[1] if s[0] == "number" else None for s in specs
            ]
            flats = [(k, s[1]) for k, s in enumerate(specs) if s[0] == "flat"]
            derivatives = [(d, view[d_row]) for d, d_row, _ in generic]
            out.append((ufunc, args, flats, view[row], derivatives, name))
        external = [(view[row], flat) for row, flat in plan.external]
        return view, out, external

    full = steps(min(chunk, n))
    with np.errstate(all="ignore") if quiet else np.errstate(all="call", call=on_error):
        for i0 in range(0, n, chunk):
            i1 = min(i0 + chunk, n)
            m = i1 - i0
            view, forward, external = full if m == chunk or i0 == 0 else steps(m)
            for target, flat in external:
                np.copyto(target, flat[i0:i1], casting="unsafe")
            for ufunc, args, flats, target, derivatives, name in forward:
                for k, flat in flats:
                    args[k] = flat[i0:i1]
                current[0] = name
                ufunc(*args, out=target)
                if derivatives:
                    with np.errstate(all="ignore"):
                        for d, d_target in derivatives:
                            np.copyto(d_target, d(*args, target), casting="unsafe")
            if keep:
                values[i0:i1] = view[root]
            else:
                total += float(np.add.reduce(view[root]))
            _run_program(program, scalars, rows, m)  # Numba: no floating-point flags
            for row, g in leaf_rows:
                g[i0:i1] = view[row]
    _report(flagged, modes)
    return total, values, list(zip(plan.leaves, grads))
