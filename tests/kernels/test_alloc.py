"""The allocation of the kernels' outputs (``structjac.kernels._alloc.empty``).

Large outputs are views of a byte buffer aligned to a huge page; the tests lower the
threshold (``ALIGN_MIN_BYTES``) so that small arrays take the aligned path too, and
check what a caller sees: shape, dtype, C-contiguity, writeability, values against
the numpy expression, and inputs left unwritten.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import structjac as sj
from structjac.kernels import _alloc, unary
from structjac.transforms import _kernels as tk

DTYPES = [np.float32, np.float64]


@pytest.fixture
def aligned_always(monkeypatch):
    """Every output takes the aligned path."""
    monkeypatch.setattr(_alloc, "ALIGN_MIN_BYTES", 0)


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


@given(
    shape=st.lists(st.integers(0, 7), min_size=0, max_size=3).map(tuple),
    dtype=st.sampled_from([np.float32, np.float64, np.int8, np.complex128]),
    threshold=st.sampled_from([0, 1, 64, 1 << 30]),
)
def test_empty_shape_dtype_layout(shape, dtype, threshold):
    old = _alloc.ALIGN_MIN_BYTES
    _alloc.ALIGN_MIN_BYTES = threshold
    try:
        a = _alloc.empty(shape, dtype)
    finally:
        _alloc.ALIGN_MIN_BYTES = old
    assert a.shape == shape
    assert a.dtype == np.dtype(dtype)
    assert a.flags.c_contiguous and a.flags.writeable and a.flags.aligned
    nbytes = a.size * a.itemsize
    if nbytes >= threshold and nbytes:
        assert a.ctypes.data % _alloc.HUGE_PAGE == 0
        assert not a.flags.owndata
        # the buffer covers the array's last huge page wholly (it can be a huge page)
        assert a.base.nbytes >= nbytes + _alloc.HUGE_PAGE
    else:
        assert a.flags.owndata
    a[...] = 1  # every element writeable, nothing outside the array
    assert np.all(a == 1)


def test_empty_int_shape_and_threshold_boundary():
    n = _alloc.ALIGN_MIN_BYTES // 8
    big = _alloc.empty(n, np.float64)
    assert big.shape == (n,) and big.ctypes.data % _alloc.HUGE_PAGE == 0
    small = _alloc.empty(n - 1, np.float64)
    assert small.shape == (n - 1,) and small.flags.owndata


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1000,), (25, 40), (3, 0)])
def test_vjp_wrappers_allocate_aligned_and_leave_inputs(aligned_always, dtype, shape):
    rng = np.random.default_rng(3)
    x = rng.standard_normal(shape).astype(dtype)
    g = rng.standard_normal(shape).astype(dtype)
    x0, g0 = x.copy(), g.copy()
    s = _sigmoid(x.astype(np.float64))
    cases = {
        "kernels.sigmoid_vjp": (unary.sigmoid_vjp(x, g), g0 * s * (1 - s)),
        "kernels.relu_vjp": (unary.relu_vjp(x, g), g0 * (x0 >= 0)),
        "ops.sigmoid.vjp": (sj.ops.sigmoid.vjp(x, g), g0 * s * (1 - s)),
        "transforms elementwise_vjp": (
            tk.elementwise_vjp(tk.SIGMOID_Y, g, s.astype(dtype)),
            g0 * s * (1 - s),
        ),
    }
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for name, (got, want) in cases.items():
        assert got.shape == shape, name
        assert got.dtype == dtype, name
        assert got.flags.c_contiguous and got.flags.writeable, name
        if got.size:
            assert got.ctypes.data % _alloc.HUGE_PAGE == 0, name
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol, err_msg=name)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(g, g0)


def test_given_out_is_used_not_reallocated(aligned_always):
    x = np.linspace(-3, 3, 101)
    g = np.ones_like(x)
    out = np.empty_like(x)
    assert unary.sigmoid_vjp(x, g, out=out) is out
    s = _sigmoid(x)
    np.testing.assert_allclose(out, s * (1 - s), rtol=1e-12)


def test_outputs_are_independent(aligned_always):
    """Two allocations never share memory (each is a view of its own buffer)."""
    x = np.linspace(-1, 1, 64, dtype=np.float32)
    a = unary.sigmoid_vjp(x, x)
    b = unary.sigmoid_vjp(x, x)
    assert not np.shares_memory(a, b)
    b0 = b.copy()
    a[:] = 0
    np.testing.assert_array_equal(b, b0)
