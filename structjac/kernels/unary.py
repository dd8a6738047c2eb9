"""Element-wise (unary) Numba kernels: values, derivatives and fused vjps.

The kernels are generated from the table of scalar functions
:data:`structjac.kernels._scalars.ACTIVATIONS`: two loop bodies, ``_apply``
(``out[i] = f(x[i])``) and ``_apply_vjp`` (``out[i] = g[i] * f(x[i])``), each with a
``prange`` loop over flat, C-contiguous float32 or float64 arrays, are compiled per
entry and per scalar function (value, derivative, derivative from the output) by
:func:`~structjac.kernels._config.serial_and_parallel` into a serial loop and a
``parallel=True`` one.  Every entry ``name`` gets the public wrappers ``name``,
``name_derivative``, ``name_vjp`` and, when the entry has a derivative from the
output, ``name_derivative_from_output`` and ``name_vjp_from_output``; they accept
any real array, make it contiguous only when needed, allocate or check ``out`` and
call the serial or the parallel kernel according to
:data:`structjac.kernels._config.PARALLEL_THRESHOLD`.

Constants are in the array dtype, so float32 is computed in float32 from end to
end.  ``exp`` is :func:`structjac.kernels._exp.vexp` (within 1 ulp, NaN/inf/subnormals
as libm), not ``np.exp``: Numba lowers ``np.exp`` to a libm call per element, which
keeps the loop from vectorising; likewise ``log`` and ``log1p`` are
:func:`structjac.kernels._log.vlog` and ``vlog1p``.  A "vjp" kernel computes
``g * f'(x)`` in one pass, without a temporary array for ``f'(x)``.

Examples
--------
>>> import numpy as np
>>> from structjac.kernels import unary
>>> z = np.array([-1.0, 0.0, 2.0])
>>> s = 1 / (1 + np.exp(-z))
>>> bool(np.allclose(unary.sigmoid_vjp(z, np.ones(3)), s * (1 - s)))
True
>>> unary.relu_derivative(np.array([-1.0, 0.0, 1.0, np.nan]))
array([ 0.,  1.,  1., nan])
"""

from __future__ import annotations

import numba
import numpy as np

from ._config import (
    append_doc_sections,
    as_float_array,
    float_dtype,
    pick,
    prepare_out,
    serial_and_parallel,
)
from ._scalars import ACTIVATIONS, SOURCE_TAG

__all__ = []


def _f(v, p1, p2):  # placeholder: bound per scalar function
    raise NotImplementedError


def _apply(x, p1, p2, out):  # out = f(x)
    for i in numba.prange(x.size):
        out[i] = _f(x[i], p1, p2)


def _apply_vjp(x, g, p1, p2, out):  # out = g * f(x), fused
    for i in numba.prange(x.size):
        out[i] = g[i] * _f(x[i], p1, p2)


class _Kernel:
    """The serial and parallel kernels of one wrapper, and whether it is memory-bound."""

    __slots__ = ("memory_bound", "parallel", "serial")

    def __init__(self, body, variant, scalar, memory_bound):
        self.serial, self.parallel = serial_and_parallel(
            body, f"{variant}_{SOURCE_TAG}", bind={"_f": scalar}
        )
        self.memory_bound = memory_bound

    # calling it is _map(self, arrays, params, out) (set below, without an extra frame)


# --- public wrappers --------------------------------------------------------------
# Generated per table entry with their exact signatures; each docstring gives the
# mathematics (from the table) and the Parameters and Returns sections, which are the
# same for every wrapper, from the signature.

_PARAMETER_DOCS = {
    "x": "x : array_like\n    Input values (any shape, any memory layout; never written to).",
    "a": "a : array_like\n    The op's output values (any shape; never written to).",
    "g": "g : array_like\n    Cotangent, same shape as the first argument.",
    "out": (
        "out : ndarray, optional\n"
        "    Where to write the result: same shape as the input, dtype of the\n"
        "    result, C-contiguous.  Checked; a ``ValueError`` says what differs."
    ),
}

#: name -> {"value", "derivative", "vjp", ["derivative_from_output", "vjp_from_output"]}
#: -> the kernels, called as ``kernel(arrays, params, out)`` with all of the entry's
#: parameters (the ops call these).
KERNELS = {}


def _wrapper(fname, kernel, arrays, params, math):
    """The public function ``fname(*arrays, *params, out=None)`` calling ``kernel``."""
    signature = ", ".join([*arrays, *(f"{n}={d!r}" for n, d, _ in params), "out=None"])
    call = ", ".join(arrays)
    passed = "".join(f"{n}, " for n, _, _ in params)
    namespace = {"_kernel": kernel}
    exec(
        f"def {fname}({signature}):\n"  # noqa: S102 (fixed text)
        f"    return _kernel(({call},), ({passed}), out)\n",
        namespace,
    )
    wrapper = namespace[fname]
    wrapper.__module__ = __name__
    wrapper.__doc__ = math
    wrapper.__annotations__ = {
        **{n: "ArrayLike" for n in arrays},
        **{n: "float" for n, _, _ in params},
        "out": "np.ndarray | None",
        "return": "np.ndarray",
    }
    names = [*arrays, *(n for n, _, _ in params), "out"]
    pdocs = {**_PARAMETER_DOCS, **{n: doc for n, _, doc in params}}
    append_doc_sections(
        wrapper,
        "Parameters\n----------\n" + "\n".join(pdocs[n] for n in names),
        "Returns\n-------\nndarray\n"
        f"    Same shape as ``{arrays[0]}``; float32 for float32 input, float64 for\n"
        "    integer, bool and float64 input (mixed inputs: ``np.result_type``).\n",
    )
    globals()[fname] = wrapper
    __all__.append(fname)


def _define(name, entry):
    value_doc, derivative_doc, from_output_doc = entry.docs
    value_mb, derivative_mb = entry.memory_bound
    # (suffix, body, scalar, arrays, params read, memory-bound, docstring)
    kinds = [
        ("", _apply, entry.value, ("x",), entry.params[: entry.value_params], value_mb, value_doc),
        (
            "_derivative",
            _apply,
            entry.derivative,
            ("x",),
            entry.params,
            derivative_mb,
            derivative_doc,
        ),
        (
            "_vjp",
            _apply_vjp,
            entry.derivative,
            ("x", "g"),
            entry.params,
            derivative_mb,
            f"g * {name}'(x), fused (no temporary for {name}'(x)).",
        ),
    ]
    if entry.from_output is not None:
        kinds += [
            (
                "_derivative_from_output",
                _apply,
                entry.from_output,
                ("a",),
                entry.params,
                True,
                from_output_doc,
            ),
            (
                "_vjp_from_output",
                _apply_vjp,
                entry.from_output,
                ("a", "g"),
                entry.params,
                True,
                f"g * {name}'(x), fused, from the output a = {name}(x).",
            ),
        ]
    KERNELS[name] = {}
    for suffix, body, scalar, arrays, params, memory_bound, doc in kinds:
        kernel = _Kernel(body, name + suffix, scalar, memory_bound)
        KERNELS[name][suffix[1:] or "value"] = kernel
        # the compiled dispatchers, also as module globals (_sigmoid_vjp_serial, ...)
        globals()[f"_{name}{suffix}_serial"] = kernel.serial
        globals()[f"_{name}{suffix}_parallel"] = kernel.parallel
        _wrapper(name + suffix, kernel, arrays, params, doc)


for _name, _entry in ACTIVATIONS.items():
    if _entry.op is not None:
        _define(_name, _entry)
del _name, _entry


def _map(kernels, arrays, params, out):
    """Check shapes, convert, allocate and call the serial or parallel kernel.

    ``params`` are the entry's parameters (at most two), padded with zeros."""
    arrays = [np.asarray(a) for a in arrays]
    shape = arrays[0].shape
    for other in arrays[1:]:
        if other.shape != shape:
            raise ValueError(
                f"shapes do not match: input has shape {shape} but g has shape {other.shape}"
            )
    dtype = float_dtype(*arrays)
    flats = [as_float_array(a, dtype) for a in arrays]
    key = (dtype.char, params)
    try:
        typed = _TYPED.get(key)
    except TypeError:  # an unhashable parameter (a 0-d array)
        key, typed = None, None
    if typed is None:
        typed = [dtype.type(p) for p in params]
        typed += _ZEROS[dtype.char][len(typed) :]
        # kept unless a value is 0 (-0.0 == 0.0 would share an entry) or the table is full
        if key is not None and 0 not in params and len(_TYPED) < 4096:
            _TYPED[key] = typed
    out, flat_out = prepare_out(out, shape, dtype)
    serial = kernels.serial
    kernel = pick(serial, kernels.parallel, flat_out.size, memory_bound=kernels.memory_bound)
    aliased = False
    for i, f in enumerate(flats):
        if np.shares_memory(f, flat_out):
            if f.ctypes.data == flat_out.ctypes.data:  # out=x: the same elements
                aliased = True
            else:  # partial overlap: copy, as NumPy does
                flats[i] = f.copy()
    if aliased and kernel is serial:
        _in_place_chunks(kernel, flats, typed, flat_out)
    else:
        kernel(*flats, *typed, flat_out)
    return out


_Kernel.__call__ = _map

#: The unused parameters p1, p2 of a kernel call, per dtype.
_ZEROS = {"f": [np.float32(0)] * 2, "d": [np.float64(0)] * 2}

#: The padded, typed parameters of a call, per (dtype char, parameter values).
_TYPED = {}

#: Elements per chunk of an in-place call (out=x): 256 kB of float32, in L2.
IN_PLACE_CHUNK = 1 << 16


def _in_place_chunks(kernel, flats, typed, flat_out):
    """Run ``kernel`` with ``out`` aliasing an input, chunk by chunk through a temporary.

    LLVM vectorises ``out[i] = f(x[i])`` behind a run-time check that ``x`` and ``out``
    do not overlap; when they are the same array the check fails and the scalar loop
    runs (the serial sigmoid 11x slower on 1.7e7 float32).  Writing each chunk into a
    small temporary (cache-resident) and copying it back keeps the vectorised loop.
    (The parallel kernels are called directly: measured not to suffer.)
    """
    n = flat_out.size
    tmp = np.empty(min(n, IN_PLACE_CHUNK), dtype=flat_out.dtype)
    for start in range(0, n, IN_PLACE_CHUNK):
        stop = min(n, start + IN_PLACE_CHUNK)
        t = tmp[: stop - start]
        kernel(*[f[start:stop] for f in flats], *typed, t)
        flat_out[start:stop] = t
