"""The vectorised exp (``structjac.kernels._exp.vexp``) and the kernels built on it:
ulp distance to NumPy's libm-based ``np.exp`` over the whole float64 range (subnormal
results, underflow to 0, overflow to inf, -0.0, +-inf, NaN), float32 against the
correctly rounded value, and the compiled loops are vectorised (no libm call)."""

import platform

import numba
import numpy as np
import pytest

from structjac import kernels as K
from structjac.kernels._exp import vexp
from .support import vectorisation_report, ulp_distance as _ulp_distance


@numba.njit(cache=False)
def _vexp_array(x):
    out = np.empty_like(x)
    for i in range(x.size):
        out[i] = vexp(x[i])
    return out


SPECIAL64 = np.array(
    [
        0.0,
        -0.0,
        np.inf,
        -np.inf,
        np.nan,
        -np.nan,
        1.0,
        -1.0,
        5e-324,
        -5e-324,
        1e-300,
        -1e-300,
        -708.3964185322641,  # exp = smallest normal
        -708.40,
        -720.0,
        -740.0,  # subnormal results
        -744.4400719213812,  # exp = 2 * smallest subnormal
        -745.1332191019411,  # exp = smallest subnormal (rounds up)
        -745.1332191019412,  # exp rounds to 0
        -745.2,
        -746.0,
        -750.0,
        -1e5,
        -1.7976931348623157e308,
        709.782712893384,  # largest finite exp
        709.7827128933841,  # overflows
        710.0,
        750.0,
        1e5,
        1.7976931348623157e308,
        0.5 * np.log(2.0),
        -0.5 * np.log(2.0),  # ends of the reduced interval
    ]
)


def _grid64():
    rng = np.random.default_rng(20240611)
    return np.concatenate(
        [
            SPECIAL64,
            np.linspace(-750.0, 750.0, 600_001),
            rng.uniform(-750.0, 750.0, 400_000),
            rng.uniform(-746.0, -708.0, 200_000),  # the subnormal range
            rng.uniform(-1.0, 1.0, 100_000),
            np.ldexp(rng.uniform(-1.0, 1.0, 50_000), rng.integers(-1074, 0, 50_000)),  # tiny
            np.arange(-1076, 1025) * np.log(2.0),  # near every exponent step
        ]
    )


def test_vexp_float64_within_one_ulp_of_numpy_everywhere():
    x = _grid64()
    got = _vexp_array(x)
    with np.errstate(all="ignore"):
        ref = np.exp(x)
    d = _ulp_distance(got, ref)
    assert d.max() <= 1, (x[np.argmax(d)], got[np.argmax(d)], ref[np.argmax(d)])
    # the special values exactly
    n = SPECIAL64.size
    np.testing.assert_array_equal(got[:n], ref[:n])
    assert got[2] == np.inf and got[3] == 0.0 and np.isnan(got[4]) and np.isnan(got[5])
    assert got[0] == 1.0 and got[1] == 1.0


def test_vexp_float32_within_one_ulp_of_correct_rounding():
    rng = np.random.default_rng(7)
    special = np.array(
        [
            0.0,
            -0.0,
            np.inf,
            -np.inf,
            np.nan,
            -87.33654,
            -87.4,
            -100.0,
            -103.27893,
            -103.97208,
            -104.0,
            -110.0,
            88.72283,
            88.72284,
            89.0,
        ],
        np.float32,
    )
    x = np.concatenate(
        [
            special,
            np.linspace(-110.0, 95.0, 400_001, dtype=np.float32),
            rng.uniform(-110.0, 95.0, 400_000).astype(np.float32),
            rng.uniform(-104.0, -87.0, 200_000).astype(np.float32),
        ]
    )
    got = _vexp_array(x)
    assert got.dtype == np.float32
    with np.errstate(all="ignore"):
        ref = np.exp(x.astype(np.float64)).astype(np.float32)  # correctly rounded (nearly always)
    d = _ulp_distance(got, ref)
    assert d.max() <= 1, (x[np.argmax(d)], got[np.argmax(d)], ref[np.argmax(d)])
    assert got[2] == np.inf and got[3] == 0.0 and np.isnan(got[4]) and got[0] == got[1] == 1.0


def _sig_d(z):
    e = np.exp(-np.abs(z))
    return e / (1 + e) ** 2


def _sigmoid(z):
    e = np.exp(-np.abs(z))
    s = 1 / (1 + e)
    return np.where(z >= 0, s, e * s)


def _tanh_d(x):
    e = np.exp(-np.abs(2 * x))
    return 4 * e / (1 + e) ** 2


# kernel -> (np.exp-based float64 reference, max ulp distance)
KERNELS = {
    "sigmoid": (_sigmoid, 3),
    "sigmoid_derivative": (_sig_d, 4),
    "tanh_derivative": (_tanh_d, 4),
    "exp": (np.exp, 1),
    "softplus": (lambda z: np.maximum(z, 0) + np.log1p(np.exp(-np.abs(z))), 3),
}
VJPS = {
    "sigmoid_vjp": (_sig_d, 4),
    "tanh_vjp": (_tanh_d, 4),
    "exp_vjp": (np.exp, 2),
    "softplus_vjp": (_sigmoid, 3),
}


@pytest.mark.parametrize("parallel", [False, True])
@pytest.mark.parametrize("name", sorted(KERNELS) + sorted(VJPS))
def test_kernels_float64_within_a_few_ulp_of_the_libm_formula(name, parallel):
    x = _grid64()
    if not parallel:  # the serial loop on a subsample
        x = np.concatenate([SPECIAL64, x[SPECIAL64.size :: 7]])
    if name in VJPS:
        ref_f, tol = VJPS[name]
        g = np.random.default_rng(3).uniform(0.5, 2.0, x.size)
        args = (x, g)
    else:
        ref_f, tol = KERNELS[name]
        args = (x,)
    old = K.set_parallel_threshold(0 if parallel else 1 << 62)
    try:
        got = getattr(K, name)(*args)
    finally:
        K.set_parallel_threshold(old)
    with np.errstate(all="ignore"):
        ref = ref_f(x) if name not in VJPS else g * ref_f(x)
    d = _ulp_distance(got, ref)
    # Where e = exp(.) itself is subnormal it has fewer significant bits: both e's (ours
    # within 1 subnormal ulp, libm's correctly rounded) may differ by 1 ulp = 4.9e-324,
    # which reaches the result times the factor c = ref/e in front of e (4 g for tanh').
    # Allow 2 such ulps there; garbage would be off by orders of magnitude.
    with np.errstate(all="ignore"):
        arg = x if name.startswith("exp") else -np.abs(2 * x if name.startswith("tanh") else x)
        e = np.exp(arg)
        sub = (e > 0) & (e < np.finfo(np.float64).tiny)
        c = np.abs(ref[sub] / e[sub])
    with np.errstate(over="ignore"):
        d[np.flatnonzero(sub)[np.abs(got[sub] - ref[sub]) <= 2 * c * 5e-324]] = 0
    assert d.max() <= tol, (name, x[np.argmax(d)], got[np.argmax(d)], ref[np.argmax(d)])
    assert np.isnan(got[4]) and np.isnan(got[5])  # NaN in, NaN out


def test_bce_with_logits_grad_float64():
    z = _grid64()
    y = np.random.default_rng(5).uniform(0.0, 1.0, z.size)
    got = K.bce_with_logits_grad(y, z, 0.5)
    with np.errstate(all="ignore"):
        ref = 0.5 * (_sigmoid(z) - y)
    ok = ~np.isnan(z)
    # s - y cancels: compare with an absolute bound of a few ulp of s
    assert np.max(np.abs(got[ok] - ref[ok])) <= 4 * np.finfo(np.float64).eps
    assert np.all(np.isnan(got[~ok]))


@pytest.mark.skipif(
    platform.machine().lower() not in ("x86_64", "amd64"), reason="checks x86 packed instructions"
)
def test_exp_kernels_vectorise():
    """Compile fresh (no cache, so the code is inspectable): the loops of the exp-based
    kernels must use packed SIMD arithmetic and call no libm exp."""
    rows = vectorisation_report(
        """
        import numpy as np
        from structjac.kernels import unary, losses

        def kernels_for(dt):
            x = np.linspace(-3, 3, 64).astype(dt)
            return [(unary._sigmoid_vjp_serial, (x, x, dt(0), dt(0), x.copy())),
                    (unary._sigmoid_vjp_parallel, (x, x, dt(0), dt(0), x.copy())),
                    (unary._sigmoid_derivative_serial, (x, dt(0), dt(0), x.copy())),
                    (unary._tanh_vjp_serial, (x, x, dt(0), dt(0), x.copy())),
                    (unary._exp_serial, (x, dt(0), dt(0), x.copy())),
                    (losses._bce_with_logits_grad_serial, (x, x, dt(0), dt(0.5), x.copy()))]
    """,
        r"llvm\.exp\.|@(?:__)?exp[f]?\(|call\s+[^\n]*\bexp",
    )
    assert len(rows) == 12, rows
    for name, dt, packed, libm in rows:
        assert int(packed) >= 4 and libm == "0", (name, dt, packed, libm, rows)
