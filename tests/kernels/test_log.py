"""The vectorised log and log1p (``structjac.kernels._log``) and the kernels built on them:
ulp distance to ``np.log``/``np.log1p`` (float64) and to the correctly rounded value
(float32) over dense sweeps (random bit patterns over the whole range, subnormals, around
1, around -1 for log1p, tiny and huge arguments), the special values exactly, the log,
softplus and per-sample BCE kernels against NumPy, and the compiled loops are vectorised
(no libm call)."""

import platform

import numba
import numpy as np
import pytest

from structjac import kernels as K
from structjac.kernels import layer, losses
from structjac.kernels._config import FASTMATH
from structjac.kernels._log import vlog, vlog1p
from .support import vectorisation_report, ulp_distance as _ulp_distance


# compiled with the kernels' flags (reassoc included): the helpers keep their own
@numba.njit(cache=False, fastmath=set(FASTMATH), error_model="numpy")
def _vlog_array(x):
    out = np.empty_like(x)
    for i in range(x.size):
        out[i] = vlog(x[i])
    return out


@numba.njit(cache=False, fastmath=set(FASTMATH), error_model="numpy")
def _vlog1p_array(x):
    out = np.empty_like(x)
    for i in range(x.size):
        out[i] = vlog1p(x[i])
    return out


def _random_bits(dtype, n, rng):
    """Uniform random bit patterns of non-negative finite floats (every binade equally)."""
    fi = np.finfo(dtype)
    ity = np.int64 if dtype == np.float64 else np.int32
    top = np.array(fi.max, dtype).view(ity)
    return rng.integers(0, int(top) + 1, n, dtype=np.int64).astype(ity).view(dtype)


def _log_sweep(dtype):
    rng = np.random.default_rng(31)
    fi = np.finfo(dtype)
    p2 = np.ldexp(np.ones(1, dtype), np.arange(fi.minexp - fi.nmant, fi.maxexp, dtype=np.int32))
    sqrt2 = np.sqrt(np.array(2.0, dtype)) * p2[np.abs(np.log2(p2)) < 60]
    return np.concatenate(
        [
            _random_bits(dtype, 1_000_000, rng),
            p2,
            np.nextafter(p2, dtype(0)),
            np.nextafter(p2, dtype(np.inf)),  # exponent steps
            sqrt2,
            np.nextafter(sqrt2, dtype(0)),
            np.nextafter(sqrt2, dtype(np.inf)),  # m's break
            np.linspace(0.5, 2.0, 1_000_001).astype(dtype),  # around 1
            1
            + np.ldexp(rng.uniform(-1.0, 1.0, 200_000), rng.integers(-60, -1, 200_000)).astype(
                dtype
            ),
            rng.uniform(0.0, fi.tiny, 100_000).astype(dtype),  # subnormals
            np.array([fi.smallest_subnormal, fi.tiny, fi.max, 1.0, 2.0, np.e], dtype),
        ]
    )


def _log1p_sweep(dtype):
    rng = np.random.default_rng(37)
    fi = np.finfo(dtype)
    pos = _random_bits(dtype, 600_000, rng)
    tiny = np.ldexp(rng.uniform(-1.0, 1.0, 300_000), rng.integers(-70, 0, 300_000)).astype(dtype)
    near_m1 = (-1 + np.ldexp(rng.uniform(0.0, 1.0, 200_000), rng.integers(-60, 0, 200_000))).astype(
        dtype
    )
    bounds = np.array([np.sqrt(0.5) - 1, np.sqrt(2.0) - 1, 1.0, 3.0, 2**24, 2**53, 2**54], dtype)
    return np.concatenate(
        [
            pos,
            -pos[pos < 1][:200_000],
            tiny,
            near_m1,
            bounds,
            np.nextafter(bounds, dtype(-np.inf)),
            np.nextafter(bounds, dtype(np.inf)),
            np.linspace(-1.0, 1.0, 1_000_001).astype(dtype)[1:],
            np.linspace(-1.0, 40.0, 400_001).astype(dtype)[1:],
            rng.uniform(0.0, fi.tiny, 50_000).astype(dtype)
            * rng.choice([-1, 1], 50_000).astype(dtype),
            np.array(
                [
                    fi.smallest_subnormal,
                    -fi.smallest_subnormal,
                    fi.tiny,
                    fi.max,
                    fi.eps,
                    -fi.eps / 2,
                    -1 + fi.eps / 2,
                ],
                dtype,
            ),
        ]
    )


def _check(got, ref, x, tol):
    d = _ulp_distance(got, ref)
    i = int(np.argmax(d))
    assert d.max() <= tol, (x[i], got[i], ref[i], d.max())
    return d


def test_vlog_float64_within_one_ulp_of_numpy():
    x = _log_sweep(np.float64)
    with np.errstate(divide="ignore"):
        ref = np.log(x)
    d = _check(_vlog_array(x), ref, x, 1)  # measured 1; the target is 2
    assert np.mean(d == 0) > 0.9


def test_vlog1p_float64_within_one_ulp_of_numpy():
    x = _log1p_sweep(np.float64)
    with np.errstate(divide="ignore"):
        ref = np.log1p(x)
    d = _check(_vlog1p_array(x), ref, x, 1)
    assert np.mean(d == 0) > 0.9


def test_vlog_float32_within_one_ulp_of_correct_rounding():
    x = _log_sweep(np.float32)
    got = _vlog_array(x)
    assert got.dtype == np.float32
    with np.errstate(divide="ignore"):
        ref = np.log(x.astype(np.float64)).astype(np.float32)  # correctly rounded (nearly always)
    _check(got, ref, x, 1)


def test_vlog1p_float32_within_one_ulp_of_correct_rounding():
    x = _log1p_sweep(np.float32)
    got = _vlog1p_array(x)
    assert got.dtype == np.float32
    with np.errstate(divide="ignore"):
        ref = np.log1p(x.astype(np.float64)).astype(np.float32)
    _check(got, ref, x, 1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_special_values(dtype):
    fi = np.finfo(dtype)
    x = np.array(
        [
            0.0,
            -0.0,
            np.inf,
            -np.inf,
            np.nan,
            -np.nan,
            1.0,
            -1.0,
            -fi.max,
            -fi.smallest_subnormal,
            fi.smallest_subnormal,
            fi.max,
        ],
        dtype,
    )
    got = _vlog_array(x)
    assert got.dtype == dtype
    assert got[0] == -np.inf and got[1] == -np.inf  # log(+-0) = -inf
    assert got[2] == np.inf  # log(inf) = inf
    assert np.all(np.isnan(got[[3, 4, 5, 7, 8, 9]]))  # NaN and x < 0 -> NaN
    assert got[6] == 0.0 and not np.signbit(got[6])
    with np.errstate(all="ignore"):
        ref = np.log(x[10:].astype(np.float64)).astype(dtype)
    np.testing.assert_array_equal(got[10:], ref)

    y = np.array(
        [
            0.0,
            -0.0,
            np.inf,
            -np.inf,
            np.nan,
            -1.0,
            -1.5,
            -fi.max,
            fi.smallest_subnormal,
            -fi.smallest_subnormal,
            fi.tiny,
            -fi.tiny,
            1e-30,
            -1e-30,
        ],
        dtype,
    )
    got = _vlog1p_array(y)
    assert got.dtype == dtype
    assert got[0] == 0.0 and not np.signbit(got[0])
    assert got[1] == 0.0 and np.signbit(got[1])  # -0.0 -> -0.0
    assert got[2] == np.inf
    assert np.all(np.isnan(got[[3, 4, 6, 7]]))  # NaN, x < -1 -> NaN
    assert got[5] == -np.inf  # log1p(-1) = -inf
    np.testing.assert_array_equal(got[8:], y[8:])  # tiny x: log1p(x) = x


def _softplus_ref(x):
    x = x.astype(np.float64)
    return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))


@pytest.mark.parametrize("parallel", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_log_and_softplus_kernels(dtype, parallel):
    rng = np.random.default_rng(41)
    x = np.concatenate([_log_sweep(dtype)[::5], np.array([0.0, -1.0, np.nan, np.inf], dtype)])
    z = np.concatenate(
        [
            rng.normal(scale=20.0, size=300_000).astype(dtype),
            np.linspace(-120.0, 120.0, 100_001).astype(dtype),
            np.array([0.0, -0.0, np.inf, -np.inf, np.nan], dtype),
        ]
    )
    old = K.set_parallel_threshold(0 if parallel else 1 << 62)
    try:
        lg = K.log(x)
        sp = K.softplus(z)
    finally:
        K.set_parallel_threshold(old)
    assert lg.dtype == dtype and sp.dtype == dtype
    with np.errstate(all="ignore"):
        if dtype == np.float64:
            _check(lg, np.log(x), x, 1)
        else:
            _check(lg, np.log(x.astype(np.float64)).astype(dtype), x, 1)
        ref = _softplus_ref(z).astype(dtype)
    # max(z, 0) + l: l = log1p(e) within 1 ulp, e = exp(-|z|) within 1 ulp (1 ulp of l
    # where l ~ e), one more rounding; float64's reference is itself np.log1p(np.exp(.))
    # (two more roundings), float32's is rounded once from float64
    _check(sp, ref, z, 3 if dtype == np.float64 else 2)
    assert sp[-3] == np.inf and sp[-2] == 0.0 and np.isnan(sp[-1])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_layer_softplus_forward_matches_the_op(dtype):
    rng = np.random.default_rng(43)
    Z = rng.normal(scale=10.0, size=(300, 67)).astype(dtype)
    b = rng.normal(size=67).astype(dtype)
    A = layer.bias_activation(Z.copy(), b, "softplus")
    ref = K.softplus(Z + b)
    np.testing.assert_array_equal(A, ref)


def _bce_ref(y, h, eps):
    c = np.clip(h.astype(np.float64), eps, 1 - eps)
    return -(y * np.log(c) + (1 - y) * np.log1p(-c))


def _bce_logits_ref(y, z):
    z = z.astype(np.float64)
    return np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))


@pytest.mark.parametrize("parallel", [False, True])
@pytest.mark.parametrize("shape", [(100_003,), (2_001, 1), (1_501, 67)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bce_per_sample_kernels(dtype, shape, parallel):
    rng = np.random.default_rng(47)
    n = int(np.prod(shape))
    y = rng.uniform(0.0, 1.0, n).astype(dtype).reshape(shape)
    z = rng.normal(scale=8.0, size=n).astype(dtype).reshape(shape)
    h = (1 / (1 + np.exp(-z.astype(np.float64)))).astype(dtype)
    h.flat[:7] = [0.0, 1.0, 1e-30, 0.5, 1 - 1e-9, 2.0, -1.0]  # clamped values
    eps = K.BCE_EPS[np.dtype(dtype)]
    old = K.set_parallel_threshold(0 if parallel else 1 << 62)
    try:
        got = K.bce_per_sample(y, h)
        got_l = K.bce_with_logits_per_sample(y, z)
    finally:
        K.set_parallel_threshold(old)
    assert got.dtype == dtype and got_l.dtype == dtype and got.shape == (shape[0],)
    yf = y.astype(np.float64)
    ref = _bce_ref(yf, h, dtype(eps)).reshape(shape[0], -1).sum(axis=1)
    ref_l = _bce_logits_ref(yf, z).reshape(shape[0], -1).sum(axis=1)
    # each term is computed in the dtype (a few ulp of its largest part), the sum in float64
    scale = np.abs(_bce_ref(yf, h, dtype(eps))).reshape(shape[0], -1).sum(axis=1) + 1.0
    tol = 8 * np.finfo(dtype).eps
    assert np.max(np.abs(got - ref) / scale) <= tol
    scale_l = (np.abs(z.astype(np.float64)) + 1.0).reshape(shape[0], -1).sum(axis=1)
    assert np.max(np.abs(got_l - ref_l) / scale_l) <= tol


def test_per_sample_flat_path_equals_the_row_sums():
    """One entry per sample (a flat loop) gives what the row loop gives for those entries
    (to rounding: the kernels' ``reassoc`` may order a term's sum differently in each)."""
    rng = np.random.default_rng(53)
    for dtype in (np.float32, np.float64):
        y = rng.uniform(0.0, 1.0, (500, 3)).astype(dtype)
        z = rng.normal(scale=5.0, size=(500, 3)).astype(dtype)
        h = (1 / (1 + np.exp(-z))).astype(dtype)
        eps = dtype(K.BCE_EPS[np.dtype(dtype)])
        flat = np.empty(1500, dtype)
        rows = np.empty(500, dtype)
        y1, z1, h1 = y.reshape(-1, 1), z.reshape(-1, 1), h.reshape(-1, 1)
        losses._bce_with_logits_per_sample_serial(y1, z1, dtype(0), flat)
        for j in range(3):  # rows of two copies of column j: each row sum is twice the term
            zc = np.ascontiguousarray(np.stack([z[:, j], z[:, j]], axis=1))
            yc = np.ascontiguousarray(np.stack([y[:, j], y[:, j]], axis=1))
            losses._bce_with_logits_per_sample_serial(yc, zc, dtype(0), rows)
            err = np.abs(rows - 2.0 * flat.reshape(500, 3)[:, j].astype(np.float64))
            assert np.all(
                err <= 8 * np.finfo(dtype).eps * (np.abs(z[:, j]) + 1)
            )  # max(z,0) - zy cancels
        losses._bce_per_sample_serial(y1, h1, eps, flat)
        for j in range(3):
            hc = np.ascontiguousarray(np.stack([h[:, j], h[:, j]], axis=1))
            yc = np.ascontiguousarray(np.stack([y[:, j], y[:, j]], axis=1))
            losses._bce_per_sample_serial(yc, hc, eps, rows)
            np.testing.assert_allclose(
                rows,
                2.0 * flat.reshape(500, 3)[:, j].astype(np.float64),
                rtol=4 * np.finfo(dtype).eps,
                atol=0,
            )


@pytest.mark.skipif(
    platform.machine().lower() not in ("x86_64", "amd64"), reason="checks x86 packed instructions"
)
def test_log_kernels_vectorise():
    """Fresh compile (no cache): packed arithmetic and no libm log/log1p in the log and
    softplus kernels, the fused softplus layer forward and the per-sample BCE losses (one
    entry per sample: the flat loop; rows of 16: the inner loop)."""
    rows = vectorisation_report(
        """
        import numpy as np
        from structjac.kernels import layer, losses, unary

        def kernels_for(dt):
            x = np.linspace(0.1, 3, 64).astype(dt)
            Z = x.reshape(4, 16).copy()
            b = np.zeros(16, dt)
            fwd, keep = layer._KERNELS["softplus"][:2]
            o = np.empty(64, dt)
            return [(unary._log_serial, (x, dt(0), dt(0), x.copy())),
                    (unary._log_parallel, (x, dt(0), dt(0), x.copy())),
                    (unary._softplus_serial, (x, dt(0), dt(0), x.copy())),
                    (fwd[0], (Z, b, dt(0), dt(0), np.empty(4, dt))),
                    (keep[0], (Z, b, dt(0), dt(0), Z.copy(), np.empty(4, dt))),
                    (losses._bce_per_sample_serial, (x.reshape(-1, 1), x.reshape(-1, 1) / 4, dt(1e-7), o)),
                    (losses._bce_with_logits_per_sample_serial, (x.reshape(-1, 1), x.reshape(-1, 1), dt(0), o)),
                    (losses._bce_with_logits_per_sample_serial, (Z, Z, dt(0), o[:4]))]
    """,
        r"@(?:llvm\.)?log(?:1p)?f?\b|@(?:__)?exp[f]?\(|llvm\.exp\.",
        packed=r"v?mul|vfn?madd\w*|v?div",
    )
    assert len(rows) == 16, rows
    for name, dt, packed, libm in rows:
        assert int(packed) >= 4 and libm == "0", (name, dt, packed, libm, rows)
