"""Unary ops: derivatives against scipy.differentiate and independent numpy formulas,
Jacobians against a dense Jacobian built column by column, vjps, dtypes, edge inputs."""

import numpy as np
import pytest
import scipy.special as sps
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy.differentiate import derivative as sp_derivative

from structjac import kernels as K
from structjac.ops import (
    LeakyReLU,
    ReLU,
    exp,
    leaky_relu,
    log,
    relu,
    sigmoid,
    softplus,
    tanh,
)
from structjac.structures import Diagonal


def _relu_d(x, c=1.0):
    return np.where(np.isnan(x), np.nan, np.where(x > 0, 1.0, np.where(x < 0, 0.0, c)))


def _leaky_d(x, s=0.01, c=1.0):
    return np.where(np.isnan(x), np.nan, np.where(x > 0, 1.0, np.where(x < 0, s, c)))


# name -> (op, numpy value, numpy derivative, domain of smooth test points)
REF = {
    "sigmoid": (sigmoid, sps.expit, lambda x: sps.expit(x) * sps.expit(-x), (-30, 30)),
    "tanh": (tanh, np.tanh, lambda x: 1 / np.cosh(x) ** 2, (-15, 15)),
    "relu": (relu, lambda x: np.where(x > 0, x, np.where(np.isnan(x), x, 0.0)), _relu_d, (-5, 5)),
    "leaky_relu": (leaky_relu, lambda x: np.where(x < 0, 0.01 * x, x), _leaky_d, (-5, 5)),
    "exp": (exp, np.exp, np.exp, (-20, 20)),
    "log": (log, np.log, lambda x: 1 / x, (0.01, 50)),
    "softplus": (softplus, lambda x: np.logaddexp(0.0, x), sps.expit, (-30, 30)),
}
NAMES = sorted(REF)
RTOL = {np.float64: 1e-12, np.float32: 4e-6}


def _points(name, n=257, seed=0):
    lo, hi = REF[name][3]
    rng = np.random.default_rng(seed)
    x = rng.uniform(lo, hi, n)
    if name in ("relu", "leaky_relu"):
        x = x[np.abs(x) > 1e-3]  # away from the kink for finite differences
    return x


@pytest.mark.parametrize("name", NAMES)
def test_derivative_against_scipy_differentiate(name):
    op, f, _, _ = REF[name]
    x = _points(name)
    x = x[np.abs(x) < 6]  # the far tails are checked against closed forms
    res = sp_derivative(f, x, initial_step=1e-2 if name != "log" else 1e-3)
    ok = res.success  # points where scipy reached its tolerances
    assert ok.mean() > 0.8
    np.testing.assert_allclose(op.derivative(x[ok]), res.df[ok], rtol=1e-8, atol=1e-13)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_value_and_derivative_against_numpy(name, dtype):
    op, f, df, _ = REF[name]
    x = _points(name).astype(dtype)
    x64 = x.astype(np.float64)
    v, d = op(x), op.derivative(x)
    assert v.dtype == dtype and d.dtype == dtype
    np.testing.assert_allclose(v, f(x64), rtol=RTOL[dtype], atol=1e-300)
    np.testing.assert_allclose(d, df(x64), rtol=RTOL[dtype], atol=1e-300)


def _dense_jacobian_fd(f, x, h=1e-6):
    """Jacobian of the flattened f, column by column by central differences."""
    x = np.asarray(x, dtype=np.float64)
    n = x.size
    J = np.empty((n, n))
    for j in range(n):
        e = np.zeros(n)
        e[j] = h
        J[:, j] = (
            f((x.ravel() + e).reshape(x.shape)).ravel()
            - f((x.ravel() - e).reshape(x.shape)).ravel()
        ) / (2 * h)
    return J


@pytest.mark.parametrize("name", NAMES)
def test_jacobian_is_diagonal_and_matches_dense_fd(name):
    op, f, _, _ = REF[name]
    x = _points(name, n=40, seed=3)[:12].reshape(3, 4)  # a batch (N=3, d=4)
    J = op.jacobian(x)
    assert isinstance(J, Diagonal)
    assert J.shape == (12, 12)
    np.testing.assert_allclose(J.to_dense(), _dense_jacobian_fd(f, x), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_vjp_equals_g_times_derivative(name, dtype):
    op = REF[name][0]
    x = _points(name, seed=5).astype(dtype)
    g = np.random.default_rng(1).normal(size=x.shape).astype(dtype)
    out = op.vjp(x, g)
    assert out.dtype == dtype
    np.testing.assert_allclose(out, g * op.derivative(x), rtol=2 * RTOL[dtype])
    np.testing.assert_allclose(
        x @ np.zeros(0) if False else out,
        g @ op.jacobian(x).to_dense(),
        rtol=RTOL[dtype] * 10,
        atol=1e-30,
    )
    v, J = op.value_and_jacobian(x)
    np.testing.assert_array_equal(v, op(x))
    np.testing.assert_array_equal(J.diagonal(), op.derivative(x))
    assert J.dtype == dtype


@settings(deadline=None, max_examples=40)
@given(
    hnp.arrays(
        np.float64,
        hnp.array_shapes(min_dims=1, max_dims=2, max_side=6),
        elements=st.floats(-40, 40),
    ),
    st.sampled_from(NAMES),
)
def test_vjp_property(x, name):
    op, _, df, _ = REF[name]
    if name == "log":
        x = np.abs(x) + 0.5
    g = np.linspace(-1, 2, x.size).reshape(x.shape)
    np.testing.assert_allclose(op.vjp(x, g), g * df(x), rtol=1e-12, atol=1e-300)


# --- the output route ---------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_from_output_formulas(dtype):
    z = np.linspace(-6, 6, 101).astype(dtype)
    g = np.linspace(1, 2, 101).astype(dtype)
    a = sigmoid(z)
    ref = a.astype(np.float64) * (1 - a.astype(np.float64))
    np.testing.assert_allclose(sigmoid.derivative_from_output(a), ref, rtol=RTOL[dtype] * 4)
    np.testing.assert_allclose(sigmoid.vjp_from_output(a, g), g * ref, rtol=RTOL[dtype] * 4)
    assert isinstance(sigmoid.jacobian_from_output(a), Diagonal)
    t = tanh(z)
    ref = (1 + t.astype(np.float64)) * (1 - t.astype(np.float64))
    np.testing.assert_allclose(tanh.derivative_from_output(t), ref, rtol=RTOL[dtype] * 4)
    np.testing.assert_allclose(tanh.vjp_from_output(t, g), g * ref, rtol=RTOL[dtype] * 4)
    np.testing.assert_allclose(tanh.jacobian_from_output(t).diagonal(), ref, rtol=RTOL[dtype] * 4)
    for arr in (sigmoid.derivative_from_output(a), tanh.vjp_from_output(t, g)):
        assert arr.dtype == dtype
    # agrees with the derivative from z where a(1-a) has no cancellation
    np.testing.assert_allclose(
        sigmoid.derivative_from_output(a), sigmoid.derivative(z), rtol=50 * RTOL[dtype]
    )


def test_sigmoid_tails_float32():
    z = np.concatenate([np.linspace(-80, 80, 1601), [-80.0, 80.0]]).astype(np.float32)
    ref = np.exp(-np.abs(z.astype(np.float64))) / (1 + np.exp(-np.abs(z.astype(np.float64)))) ** 2
    got = sigmoid.derivative(z)
    assert got.dtype == np.float32
    assert np.all(got > 0)
    assert np.max(np.abs(got / ref - 1)) <= 1e-6
    # fused vjp keeps it too
    assert np.max(np.abs(sigmoid.vjp(z, np.ones_like(z)) / ref - 1)) <= 1e-6


def test_tanh_tails_float32():
    z = np.linspace(-40, 40, 801).astype(np.float32)
    ref = 1 / np.cosh(z.astype(np.float64)) ** 2
    got = tanh.derivative(z)
    assert np.max(np.abs(got / ref - 1)) <= 1e-5


# --- relu at zero, leaky slope ---------------------------------------------------------


def test_relu_derivative_at_zero_choices():
    x = np.array([-2.0, -0.0, 0.0, 3.0, np.nan, np.inf, -np.inf])
    np.testing.assert_array_equal(relu.derivative(x), _relu_d(x, 1.0))
    for c in (0.0, 0.5):
        for op in (ReLU(at_zero=c), relu.with_derivative_at_zero(c)):
            np.testing.assert_array_equal(op.derivative(x), _relu_d(x, c))
            np.testing.assert_array_equal(op.vjp(x, np.full(7, 2.0)), 2 * _relu_d(x, c))
    assert relu.at_zero == 1.0  # the module default is untouched


def test_relu_nan_propagates():
    x = np.array([np.nan, -1.0, 1.0])
    assert np.isnan(relu(x)[0]) and np.isnan(relu.derivative(x)[0])
    assert np.isnan(relu.vjp(x, np.ones(3))[0])
    assert np.isnan(leaky_relu.derivative(x)[0]) and np.isnan(leaky_relu(x)[0])


def test_leaky_relu_slope():
    x = np.array([-2.0, 0.0, 3.0])
    op = LeakyReLU(slope=0.2, at_zero=0.0)
    np.testing.assert_allclose(op(x), [-0.4, 0.0, 3.0])
    np.testing.assert_array_equal(op.derivative(x), _leaky_d(x, 0.2, 0.0))
    np.testing.assert_array_equal(leaky_relu.with_slope(0.3).derivative(x), _leaky_d(x, 0.3, 1.0))
    assert leaky_relu.slope == 0.01


# --- inputs -------------------------------------------------------------------------


def _safe_x(name, x):
    return np.abs(x) + 0.25 if name == "log" else x


@pytest.mark.parametrize("name", NAMES)
def test_layouts_and_no_writes(name):
    op, f, df, _ = REF[name]
    base = _safe_x(name, np.random.default_rng(2).normal(size=(6, 8)))
    g_base = np.random.default_rng(3).normal(size=(6, 8))
    variants = {
        "strided": base[::2, ::3],
        "fortran": np.asfortranarray(base),
        "readonly": base.copy(),
        "transposed": base.T,
    }
    variants["readonly"].setflags(write=False)
    for kind, x in variants.items():
        x_copy = x.copy()
        g = (
            np.ascontiguousarray(g_base[: x.shape[0], : x.shape[1]])
            if x.shape[0] <= 6
            else g_base.T
        )
        g_copy = g.copy()
        np.testing.assert_allclose(op(x), f(x), rtol=1e-12, err_msg=kind)
        np.testing.assert_allclose(op.derivative(x), df(x), rtol=1e-12, err_msg=kind)
        np.testing.assert_allclose(op.vjp(x, g), g * df(x), rtol=1e-12, err_msg=kind)
        np.testing.assert_allclose(op.jacobian(x).diagonal(), df(x).ravel(), rtol=1e-12)
        np.testing.assert_array_equal(x, x_copy)
        np.testing.assert_array_equal(g, g_copy)


@pytest.mark.parametrize("name", NAMES)
def test_integer_and_bool_inputs_become_float64(name):
    op, f, df, _ = REF[name]
    x = np.array([1, 2, 3], dtype=np.int32)
    assert op(x).dtype == np.float64
    np.testing.assert_allclose(op.derivative(x), df(x.astype(float)), rtol=1e-12)
    assert op.derivative(np.array([True, False])).dtype == np.float64
    assert op.vjp(x, np.ones(3, np.float32)).dtype == np.float64  # int -> float64, then result_type


def test_mixed_dtypes_follow_result_type():
    x32 = np.linspace(-1, 1, 5, dtype=np.float32)
    assert sigmoid.vjp(x32, np.ones(5, np.float32)).dtype == np.float32
    assert sigmoid.vjp(x32, np.ones(5)).dtype == np.float64


@pytest.mark.parametrize("name", NAMES)
def test_empty_and_zero_d(name):
    op, f, df, _ = REF[name]
    for shape in [(0,), (0, 3)]:
        x = np.empty(shape)
        assert op(x).shape == shape and op.derivative(x).shape == shape
        assert op.vjp(x, x).shape == shape
        assert op.jacobian(x).shape == (0, 0)
    x = np.array(0.7)
    assert op(x).shape == () and op.derivative(x).shape == ()
    np.testing.assert_allclose(op.derivative(x), df(0.7), rtol=1e-12)
    assert op.jacobian(x).shape == (1, 1)
    np.testing.assert_allclose(op(0.7), f(0.7), rtol=1e-12)  # python scalar


@pytest.mark.parametrize("name", NAMES)
def test_nan_and_inf(name):
    op, f, df, _ = REF[name]
    x = np.array([np.nan, np.inf, -np.inf, 0.0, -1.0, 1.0])
    with np.errstate(all="ignore"):
        fx, dfx = f(x), df(x)
    np.testing.assert_allclose(op(x), fx, rtol=1e-15, atol=0)  # NaN where the reference is NaN
    np.testing.assert_allclose(op.derivative(x), dfx, rtol=1e-15, atol=0)
    assert np.isnan(op.vjp(x, np.ones(6))[0])


def test_log_of_negative_is_nan():
    out = log(np.array([-1.0, -2.0]))
    assert np.all(np.isnan(out))


def test_vjp_shape_mismatch_names_both():
    with pytest.raises(ValueError, match=r"x has shape \(3,\) but g has shape \(2, 2\)"):
        sigmoid.vjp(np.ones(3), np.ones((2, 2)))
    with pytest.raises(ValueError, match=r"a has shape \(3,\) but g has shape \(4,\)"):
        tanh.vjp_from_output(np.ones(3), np.ones(4))


def test_out_argument_checked_and_used():
    x = np.linspace(-1, 1, 6).reshape(2, 3)
    o = np.empty((2, 3))
    r = sigmoid(x, out=o)
    assert r is o
    np.testing.assert_allclose(o, sps.expit(x))
    with pytest.raises(ValueError, match="shape"):
        sigmoid(x, out=np.empty(6))
    with pytest.raises(ValueError, match="dtype"):
        sigmoid(x, out=np.empty((2, 3), np.float32))
    with pytest.raises(ValueError, match="C-contiguous"):
        sigmoid(x, out=np.empty((3, 2)).T)


@pytest.mark.parametrize("name", NAMES)
def test_serial_and_parallel_paths_agree(name):
    op, f, df, _ = REF[name]
    n = K.get_parallel_threshold() + 1001
    x = _safe_x(name, np.random.default_rng(9).uniform(-8, 8, n))
    g = np.random.default_rng(10).normal(size=n)
    small = slice(0, 1000)
    np.testing.assert_allclose(op.vjp(x, g), g * df(x), rtol=1e-12)  # parallel path
    np.testing.assert_allclose(op.derivative(x), df(x), rtol=1e-12)
    np.testing.assert_array_equal(op.vjp(x[small], g[small]), op.vjp(x, g)[small])  # serial
    np.testing.assert_array_equal(op(x[small]), op(x)[small])


# ------------------------------------------------------------ out aliasing an input
@pytest.mark.parametrize("parallel", [False, True], ids=["serial", "parallel"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", NAMES)
def test_out_aliasing_an_input_gives_the_same_result(name, dtype, parallel):
    """op(x, out=x), op.derivative(x, out=x), op.vjp(x, g, out=g) and out=x, and the
    from-output vjp with out=g: the values of the out-of-place call, across the chunks of
    the in-place path (IN_PLACE_CHUNK) and with a partial overlap (copied first)."""
    op = REF[name][0]
    rng = np.random.default_rng(12)
    n = 3 * K.unary.IN_PLACE_CHUNK + 17
    lo, hi = REF[name][3]
    x0 = rng.uniform(lo, hi, n).astype(dtype)
    x0[:3] = [np.nan, np.inf, -np.inf] if name != "log" else [np.nan, np.inf, 0.0]
    g0 = rng.uniform(-2, 2, n).astype(dtype)
    old = K.set_parallel_threshold(0 if parallel else 1 << 62)
    try:
        with np.errstate(all="ignore"):
            calls = [
                (lambda x, g, out: op(x, out=out), "x"),
                (lambda x, g, out: op.derivative(x, out=out), "x"),
                (lambda x, g, out: op.vjp(x, g, out=out), "g"),
                (lambda x, g, out: op.vjp(x, g, out=out), "x"),
            ]
            if hasattr(op, "vjp_from_output"):
                calls.append((lambda x, g, out: op.vjp_from_output(x, g, out=out), "g"))
            for call, which in calls:
                ref = call(x0, g0, None)
                x, g = x0.copy(), g0.copy()
                target = x if which == "x" else g
                assert call(x, g, target) is target
                np.testing.assert_array_equal(target, ref)
            # partial overlap: out is x shifted by one element
            buf = np.concatenate([x0, x0[:1]])
            ref = op(buf[:-1])
            got = op(buf[:-1], out=buf[1:])
            np.testing.assert_array_equal(got, ref)
    finally:
        K.set_parallel_threshold(old)
