"""The vectorised tanh (``structjac.kernels._tanh.vtanh``) and the tanh value kernel:
ulp distance to ``np.tanh`` (float64) and to the correctly rounded value (float32) over
dense sweeps, the special values (+-0, +-inf, NaN, the branch point 0.625, subnormals),
and the compiled loop is vectorised (no libm call)."""

import platform

import numba
import numpy as np
import pytest

from structjac import kernels as K
from structjac.kernels._config import FASTMATH
from structjac.kernels._tanh import vtanh
from .support import vectorisation_report, ulp_distance as _ulp_distance


@numba.njit(cache=False, fastmath=set(FASTMATH), error_model="numpy")
def _vtanh_array(x):
    out = np.empty_like(x)
    for i in range(x.size):
        out[i] = vtanh(x[i])
    return out


def _sweep(dtype):
    rng = np.random.default_rng(11)
    branch = np.array([0.625, -0.625], dtype)
    special = np.array(
        [
            0.0,
            -0.0,
            np.inf,
            -np.inf,
            np.nan,
            -np.nan,
            1.0,
            -1.0,
            9.0,
            9.1,
            19.0,
            19.1,
            44.0,
            45.0,
            400.0,
            1e30,
            np.finfo(dtype).tiny,
            -np.finfo(dtype).tiny,
            np.finfo(dtype).smallest_subnormal,
            np.finfo(dtype).max,
        ],
        dtype,
    )
    parts = [
        special,
        branch,
        np.nextafter(branch, np.array([0.0, 0.0], dtype)),
        np.nextafter(branch, np.array([1.0, -1.0], dtype) * np.inf),
        np.linspace(-25.0, 25.0, 2_000_001).astype(dtype),
        rng.uniform(-1.0, 1.0, 500_000).astype(dtype),
        rng.uniform(0.55, 0.7, 200_000).astype(dtype),  # around the branch point
        np.ldexp(
            rng.uniform(-1.0, 1.0, 100_000),  # tiny, down to subnormals
            rng.integers(-1070 if dtype == np.float64 else -148, 0, 100_000),
        ).astype(dtype),
    ]
    return np.concatenate(parts)


def test_vtanh_float64_within_two_ulp_of_numpy():
    x = _sweep(np.float64)
    got = _vtanh_array(x)
    ref = np.tanh(x)
    d = _ulp_distance(got, ref)
    assert d.max() <= 2, (x[np.argmax(d)], got[np.argmax(d)], ref[np.argmax(d)])
    assert np.mean(d == 0) > 0.75


def test_vtanh_float32_within_two_ulp_of_correct_rounding():
    x = _sweep(np.float32)
    got = _vtanh_array(x)
    assert got.dtype == np.float32
    ref = np.tanh(x.astype(np.float64)).astype(np.float32)  # correctly rounded (nearly always)
    d = _ulp_distance(got, ref)
    assert d.max() <= 2, (x[np.argmax(d)], got[np.argmax(d)], ref[np.argmax(d)])
    assert _ulp_distance(np.tanh(x), ref).max() <= 2  # numpy's own float32 tanh, for scale


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_vtanh_special_values(dtype):
    x = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-30, -1e-30, 100.0, -100.0], dtype)
    got = _vtanh_array(x)
    assert got[0] == 0.0 and not np.signbit(got[0])
    assert got[1] == 0.0 and np.signbit(got[1])  # -0.0 -> -0.0
    assert got[2] == 1.0 and got[3] == -1.0
    assert np.isnan(got[4])
    assert got[5] == x[5] and got[6] == x[6]  # tanh(x) = x for tiny x
    assert got[7] == 1.0 and got[8] == -1.0
    np.testing.assert_array_equal(-_vtanh_array(-x[:4]), got[:4])  # odd


@pytest.mark.parametrize("parallel", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_tanh_value_kernel_uses_vtanh(dtype, parallel):
    x = _sweep(dtype)[::5].copy()
    before = x.copy()
    old = K.set_parallel_threshold(0 if parallel else 1 << 62)
    try:
        got = K.tanh(x)
    finally:
        K.set_parallel_threshold(old)
    np.testing.assert_array_equal(x, before)  # input not written
    np.testing.assert_array_equal(got, _vtanh_array(x))
    assert got.dtype == dtype


@pytest.mark.skipif(
    platform.machine().lower() not in ("x86_64", "amd64"), reason="checks x86 packed instructions"
)
def test_tanh_kernels_vectorise():
    """Fresh compile (no cache): packed arithmetic, no libm tanh or exp, in the tanh value
    kernel and the fused tanh layer kernels."""
    rows = vectorisation_report(
        """
        import numpy as np
        from structjac.kernels import unary, layer

        def kernels_for(dt):
            x = np.linspace(-3, 3, 64).astype(dt)
            Z = x.reshape(4, 16).copy()
            b = np.zeros(16, dt)
            fwd, keep, vjp, outer = layer._KERNELS["tanh"]
            return [(unary._tanh_serial, (x, dt(0), dt(0), x.copy())),
                    (unary._tanh_parallel, (x, dt(0), dt(0), x.copy())),
                    (fwd[0], (Z, b, dt(0), dt(0), np.empty(4, dt))),
                    (keep[0], (Z, b, dt(0), dt(0), Z.copy(), np.empty(4, dt)))]
    """,
        r"@(?:__)?(?:tanh|exp)f?\(|llvm\.exp\.|call\s+[^\n]*\b(?:tanh|exp)f?\b",
    )
    assert len(rows) == 8, rows
    for name, dt, packed, libm in rows:
        assert int(packed) >= 4 and libm == "0", (name, dt, packed, libm, rows)
