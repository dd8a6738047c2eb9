"""Element-wise ops: the Jacobian as a Diagonal against materialising it, and the fused vjp.

``Jacobian_<op>.time_op``
    ``structured``: ``op.jacobian(x)``, a Diagonal of ``n`` numbers;
    ``dense``: what ``jax.jacrev`` / ``torch.autograd.functional.jacobian`` return,
    the ``n x n`` matrix, here at its cheapest: ``np.diag`` of the derivative (computed
    with numpy).
``Vjp_<op>.time_op``
    ``structured``: ``op.vjp(x, g, out=o)``, the fused one-pass kernel;
    ``numpy``: the same expression in numpy (temporaries and all);
    ``floor``: ``np.multiply(a, g, out=o)``, two arrays read and one written, the
    bandwidth floor of any vjp that reads ``x`` and ``g`` (see ``track_floor_multiple``);
    ``dense``: ``g @ J`` with the dense Jacobian already built (the build is not timed).
``VjpFloorMultiple.track_floor_multiple``
    the fused vjp's time as a multiple of the floor's, per op and size.

Everything runs on one thread (``common.limit_threads``); ``bench_threads.py`` measures
the parallel (``prange``) kernels against the same floor.
"""

from __future__ import annotations

import timeit

import numpy as np

from .common import (
    StructuredVsDense,
    dense_bytes,
    limit_threads,
    pick_sizes,
    rng,
    structjac_part,
)

JACOBIAN_SIZES = (1024, 8192, 65536, 1_048_576)
VJP_SIZES = (1024, 65536, 1_048_576, 8_388_608)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _positive(n):
    return rng(0).uniform(0.1, 2.0, n)


def _normal(n):
    return rng(0).standard_normal(n)


# name: (structjac.ops attribute or factory, numpy derivative, input)
OPS = {
    "sigmoid": ("sigmoid", lambda x: _sigmoid(x) * (1.0 - _sigmoid(x)), _normal),
    "tanh": ("tanh", lambda x: (1.0 + np.tanh(x)) * (1.0 - np.tanh(x)), _normal),
    "relu": ("relu", lambda x: (x >= 0).astype(x.dtype), _normal),
    "leaky_relu": ("leaky_relu", lambda x: np.where(x >= 0, 1.0, 0.01), _normal),
    "exp": ("exp", np.exp, _normal),
    "log": ("log", lambda x: 1.0 / x, _positive),
    "softplus": ("softplus", _sigmoid, _normal),
    "silu": ("silu", lambda x: _sigmoid(x) * (1.0 + x * (1.0 - _sigmoid(x))), _normal),
    # the lecture's exercise ln(x) + e^x, through elementwise() and the complex step
    "log_plus_exp": (None, lambda x: 1.0 / x + np.exp(x), _positive),
}

_LECTURE_OP = None


def get_op(name):
    ops = structjac_part("structjac.ops")
    attr = OPS[name][0]
    if attr is not None:
        return getattr(ops, attr)
    global _LECTURE_OP
    if _LECTURE_OP is None:
        _LECTURE_OP = ops.elementwise(lambda x: np.log(x) + np.exp(x), name="log_plus_exp")
    return _LECTURE_OP


class _JacobianBase(StructuredVsDense):
    sizes = JACOBIAN_SIZES
    op_name = None

    def dense_cost(self, n, form):
        return dense_bytes((n, n)), float(n)

    def build(self, n, form):
        x = OPS[self.op_name][2](n)
        if form == "structured":
            op = get_op(self.op_name)
            return lambda: op.jacobian(x)
        deriv = OPS[self.op_name][1]
        return lambda: np.diag(deriv(x))

    def track_stored_bytes(self, n, form):
        return int(self.fn().nbytes)

    track_stored_bytes.unit = "bytes"


class _VjpBase(StructuredVsDense):
    sizes = VJP_SIZES
    forms = ["structured", "numpy", "floor", "dense"]
    cheap_forms = ("structured", "numpy", "floor")
    op_name = None

    def dense_cost(self, n, form):
        return dense_bytes((n, n)), 2.0 * n * n

    def build(self, n, form):
        x = OPS[self.op_name][2](n)
        g = rng(1).standard_normal(n)
        out = np.empty(n)
        deriv = OPS[self.op_name][1]
        if form == "structured":
            op = get_op(self.op_name)
            return lambda: op.vjp(x, g, out=out)
        if form == "numpy":
            return lambda: g * deriv(x)
        if form == "floor":
            a = deriv(x)
            return lambda: np.multiply(a, g, out=out)
        J = np.diag(deriv(x))
        return lambda: g @ J


class VjpFromOutput_sigmoid(StructuredVsDense):
    """The lecture's route through the output: ``sigmoid.vjp_from_output(a, g)`` = g a (1 - a)."""

    sizes = VJP_SIZES
    forms = ["structured", "numpy", "floor"]
    cheap_forms = tuple(forms)

    def build(self, n, form):
        a = _sigmoid(_normal(n))
        g = rng(1).standard_normal(n)
        out = np.empty(n)
        if form == "structured":
            op = get_op("sigmoid")
            return lambda: op.vjp_from_output(a, g, out=out)
        if form == "numpy":
            return lambda: g * a * (1.0 - a)
        return lambda: np.multiply(a, g, out=out)


class VjpFromOutput_tanh(StructuredVsDense):
    """``tanh.vjp_from_output(a, g)`` = g (1 + a)(1 - a)."""

    sizes = VJP_SIZES
    forms = ["structured", "numpy", "floor"]
    cheap_forms = tuple(forms)

    def build(self, n, form):
        a = np.tanh(_normal(n))
        g = rng(1).standard_normal(n)
        out = np.empty(n)
        if form == "structured":
            op = get_op("tanh")
            return lambda: op.vjp_from_output(a, g, out=out)
        if form == "numpy":
            return lambda: g * (1.0 + a) * (1.0 - a)
        return lambda: np.multiply(a, g, out=out)


class BinaryJacobians_multiply(StructuredVsDense):
    """``multiply.jacobians(u, v)`` (two Diagonals) against ``np.diag(v), np.diag(u)``."""

    sizes = JACOBIAN_SIZES

    def dense_cost(self, n, form):
        return dense_bytes((n, n), (n, n)), float(n)

    def build(self, n, form):
        u, v = _normal(n), rng(1).standard_normal(n)
        if form == "structured":
            op = structjac_part("structjac.ops").multiply
            return lambda: op.jacobians(u, v)
        return lambda: (np.diag(v), np.diag(u))


class BinaryVjp_divide(StructuredVsDense):
    """``divide.vjp(u, v, g)`` (fused) against numpy ``(g / v, -g u / v^2)``."""

    sizes = VJP_SIZES
    forms = ["structured", "numpy"]
    cheap_forms = tuple(forms)

    def build(self, n, form):
        u, v, g = _normal(n), _positive(n), rng(2).standard_normal(n)
        if form == "structured":
            op = structjac_part("structjac.ops").divide
            return lambda: op.vjp(u, v, g)
        return lambda: (g / v, -g * u / (v * v))


class VjpFloorMultiple:
    """The fused vjp's time as a multiple of the bandwidth floor ``np.multiply(a, g, out=o)``.

    Both measured in the same process, min of 7 repeats each; 1.0 means the fused kernel
    runs as fast as reading two arrays and writing one.
    """

    params = [list(OPS), list(pick_sizes(VJP_SIZES))]
    param_names = ["op", "n"]
    unit = "x floor"
    timeout = 180

    def setup(self, op_name, n):
        limit_threads()
        self.x = OPS[op_name][2](n)
        self.g = rng(1).standard_normal(n)
        self.out = np.empty(n)
        self.a = OPS[op_name][1](self.x)
        self.op = get_op(op_name)
        self.op.vjp(self.x, self.g, out=self.out)  # compile

    def track_floor_multiple(self, op_name, n):
        x, g, out, a, op = self.x, self.g, self.out, self.a, self.op
        number = max(1, int(2e7 // n))
        fused = min(timeit.repeat(lambda: op.vjp(x, g, out=out), number=number, repeat=7))
        floor = min(timeit.repeat(lambda: np.multiply(a, g, out=out), number=number, repeat=7))
        return fused / floor

    track_floor_multiple.unit = "x floor"


class VjpAllocatedFloorMultiple:
    """The fused vjp with an allocated output, ``op.vjp(x, g)``, as a multiple of
    ``np.multiply(a, g)`` allocating its output too (both pay for fresh memory).

    Same process, min of 7 repeats each, float32 and float64.  ``track_out_multiple``
    is the same pair with ``out=`` on both sides (no allocation): the difference
    between the two rows is the allocation's part; ``track_page_faults`` gives the
    minor page faults per call of each side (the kernels align outputs of 32 MiB and
    more to a 2 MiB huge page, ``structjac.kernels._alloc``: 21 faults where numpy's
    block takes 568 at 10^7 float32).
    """

    params = [
        ["sigmoid", "relu"],
        ["float32", "float64"],
        list(pick_sizes((100_000, 1_000_000, 10_000_000))),
    ]
    param_names = ["op", "dtype", "n"]
    unit = "x floor"
    timeout = 180

    def setup(self, op_name, dtype, n):
        limit_threads()
        self.x = OPS[op_name][2](n).astype(dtype)
        self.g = rng(1).standard_normal(n).astype(dtype)
        self.a = OPS[op_name][1](self.x).astype(dtype)
        self.out = np.empty(n, dtype)
        self.op = get_op(op_name)
        self.op.vjp(self.x, self.g)  # compile

    def track_floor_multiple(self, op_name, dtype, n):
        x, g, a, op = self.x, self.g, self.a, self.op
        number = max(1, int(2e7 // n))
        fused = min(timeit.repeat(lambda: op.vjp(x, g), number=number, repeat=7))
        floor = min(timeit.repeat(lambda: np.multiply(a, g), number=number, repeat=7))
        return fused / floor

    track_floor_multiple.unit = "x floor"

    def track_out_multiple(self, op_name, dtype, n):
        x, g, a, op, out = self.x, self.g, self.a, self.op, self.out
        number = max(1, int(2e7 // n))
        fused = min(timeit.repeat(lambda: op.vjp(x, g, out=out), number=number, repeat=7))
        floor = min(timeit.repeat(lambda: np.multiply(a, g, out=out), number=number, repeat=7))
        return fused / floor

    track_out_multiple.unit = "x floor"

    def track_page_faults(self, op_name, dtype, n):
        """Minor page faults per call: the fused vjp's, minus np.multiply's."""
        x, g, a, op = self.x, self.g, self.a, self.op
        return _faults(lambda: op.vjp(x, g)) - _faults(lambda: np.multiply(a, g))

    track_page_faults.unit = "faults"


def _faults(f, number=5):
    """Minor page faults per call of ``f`` (``resource.getrusage``)."""
    import resource

    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(number):
        f()
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / number


for _name in OPS:
    globals()[f"Jacobian_{_name}"] = type(
        f"Jacobian_{_name}",
        (_JacobianBase,),
        {
            "op_name": _name,
            "__module__": __name__,
            "__doc__": f"{_name}.jacobian(x) (Diagonal) against np.diag of its derivative.",
        },
    )
    globals()[f"Vjp_{_name}"] = type(
        f"Vjp_{_name}",
        (_VjpBase,),
        {
            "op_name": _name,
            "__module__": __name__,
            "__doc__": f"{_name}.vjp(x, g) fused, against numpy, the bandwidth floor and dense g @ J.",
        },
    )
