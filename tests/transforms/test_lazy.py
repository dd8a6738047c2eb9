"""Pending element-wise calls and the chunked gradient of their sum or mean
(:mod:`structjac.transforms._lazy`): against the ordinary (eager) reverse pass, the
Jacobian's row and central differences, in float32 and float64, with numbers
broadcast, NaN and inf, several chunks with a short last one, and numpy's errstate.

The sizes are small: the tests lower ``MIN_SIZE`` (every call may be pending) and
``CHUNK_BYTES`` (a chunk of 7 float64 or 14 float32 entries) so that the chunked pass,
its short last chunk and its accumulation across chunks all run.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.special
from hypothesis import given, settings
from hypothesis import strategies as st

import structjac as sj
from structjac.transforms import _lazy

from .support import central_difference_jacobian

DTYPES = [np.float32, np.float64]
RTOL = {np.float32: 1e-5, np.float64: 1e-12}
C = np.linspace(0.5, 1.5, 23)  # a constant array of the inputs' shape (23 entries)


@pytest.fixture
def small(monkeypatch):
    """Every element-wise call may be pending; chunks of 56 bytes; count fused passes."""
    monkeypatch.setattr(_lazy, "MIN_SIZE", 1)
    monkeypatch.setattr(_lazy, "CHUNK_BYTES", 56)
    calls = []
    original = _lazy.fused_reduction

    def counted(x, mean):
        result = original(x, mean)
        calls.append(result is not None)
        return result

    monkeypatch.setattr(_lazy, "fused_reduction", counted)
    return calls


def _eager(transform, fn, *args):
    """The same transform with nothing pending (the ordinary rules only)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_lazy, "MIN_SIZE", 1 << 62)
        return transform(fn)(*args)


FUNCTIONS = {
    "issue": lambda x: np.mean(np.tanh(x) * np.exp(-x) + np.log1p(x**2)),
    "sum_chain": lambda x: np.sum(np.sin(np.cos(x) * 0.5) - 2.0 * x),
    "unary_all": lambda x: np.mean(
        np.sqrt(np.square(x) + 1)
        + np.expm1(x)
        + np.log(np.abs(x) + 1)
        + scipy.special.expit(x)
        + (+x)
        - np.tanh(-x)
    ),
    "powers": lambda x: np.sum(x**3 + x**2 + x**1 + x**0 + np.abs(x) ** 0.5),
    "divisions": lambda x: np.mean(x / (2.0 + np.sin(x)) + 1.0 / (3.0 + x * x) + x / 4.0),
    "extrema": lambda x: np.sum(
        np.maximum(x, 0.1) + np.minimum(np.tanh(x), x * 0.5) + np.maximum(x, x)
    ),
    "fan_out": lambda x: np.sum(np.tanh(x) * np.tanh(x) + np.tanh(x) - x * x + x),
    "constants": lambda x: np.mean(x * C + np.exp(C - x) - C),
    "mixed_numbers": lambda x: np.sum(np.float32(2.0) * x + 3 - x * True + np.float32(0.1) * x),
    "scalar_seed_only": lambda x: np.sum(x + 1.0 - x * 0.0),
    "keepdims": lambda x: np.sum(np.mean(np.exp(-x * x), keepdims=True) * 3.0),
    "twice": lambda x: np.mean(np.tanh(x)) * 2.0 + np.sum(np.exp(x)) * 0.5,
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_fused_grad_equals_eager_grad_and_finite_differences(name, dtype, small):
    fn = FUNCTIONS[name]
    x = np.random.default_rng(3).uniform(-1.5, 1.5, 23).astype(dtype)
    x[x == 0] = 0.25
    x0 = x.copy()
    value, g = sj.value_and_grad(fn)(x)
    assert any(small), "the fused pass did not run"
    value_e, g_e = _eager(sj.value_and_grad, fn, x)
    assert g.dtype == dtype and g.shape == x.shape
    assert np.asarray(value).dtype == np.asarray(value_e).dtype
    np.testing.assert_allclose(g, g_e, rtol=RTOL[dtype], atol=RTOL[dtype] * 1e-2)
    np.testing.assert_allclose(value, value_e, rtol=RTOL[dtype] * 10)
    np.testing.assert_allclose(
        value,
        fn(x.astype(np.float64)),
        rtol=1e-5 if dtype == np.float32 else 1e-12,
        atol=1e-5 if dtype == np.float32 else 1e-14,
    )
    fd = central_difference_jacobian(fn, [x.astype(np.float64)], 0).reshape(x.shape)
    np.testing.assert_allclose(g, fd, rtol=1e-3 if dtype == np.float32 else 1e-7, atol=1e-6)
    np.testing.assert_array_equal(x, x0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_two_arguments_and_a_2d_batch(dtype, small):
    def fn(x, y):
        return np.mean(x * y + np.tanh(y) - np.exp(-x) / (1.0 + y * y))

    rng = np.random.default_rng(4)
    x = rng.uniform(-1, 1, (5, 6)).astype(dtype)
    y = rng.uniform(-1, 1, (5, 6)).astype(dtype)
    gx, gy = sj.grad(fn, argnums=(0, 1))(x, y)
    assert small == [True]
    ex, ey = _eager(lambda f: sj.grad(f, argnums=(0, 1)), fn, x, y)
    for got, want in ((gx, ex), (gy, ey)):
        assert got.dtype == dtype and got.shape == (5, 6)
        np.testing.assert_allclose(got, want, rtol=RTOL[dtype], atol=1e-7)


@pytest.mark.parametrize("dtype", DTYPES)
def test_vjp_of_a_fused_mean_can_be_called_again(dtype, small):
    fn = FUNCTIONS["issue"]
    x = np.linspace(-1, 1, 23).astype(dtype)
    value, vjp_fn = sj.vjp(fn, x)
    ct = np.asarray(2.5, dtype=dtype)
    first = vjp_fn(ct)[0]
    first_copy = first.copy()
    first += 1  # the caller owns what it got
    second = vjp_fn(ct)[0]
    np.testing.assert_array_equal(second, first_copy)
    np.testing.assert_allclose(second, 2.5 * _eager(sj.grad, fn, x), rtol=RTOL[dtype])
    assert second.dtype == dtype


def test_a_pending_value_read_elsewhere_is_evaluated_by_the_ordinary_rules(small):
    x = np.linspace(-1, 1, 23)

    def read_after(x):
        y = np.tanh(x) * x
        return np.mean(y) + y[3] * 2.0 + np.sum(y.reshape(23, 1) @ np.ones((1, 2)))

    def read_before(x):
        y = np.exp(-x) + x
        z = y[::2]
        return np.sum(z) + np.mean(y * y)

    for fn in (read_after, read_before):
        small.clear()
        g = sj.grad(fn)(x)
        np.testing.assert_allclose(g, _eager(sj.grad, fn, x), rtol=1e-12)
        fd = central_difference_jacobian(fn, [x], 0).reshape(x.shape)
        np.testing.assert_allclose(g, fd, rtol=1e-7, atol=1e-8)
    assert small == [True]  # read_before: y was evaluated before its mean (no fused pass)


def test_broadcasting_and_other_dtypes_are_not_pending(small):
    x = np.random.default_rng(5).uniform(-1, 1, (4, 6))
    b = np.linspace(0, 1, 6)

    def fn(x):
        return np.mean(np.tanh(x + b) * np.float32(2.0))

    g = sj.grad(fn)(x)
    np.testing.assert_allclose(g, _eager(sj.grad, fn, x), rtol=1e-12)
    x32 = x.astype(np.float32)
    g32 = sj.grad(lambda v: np.sum(np.exp(v) * np.float64(0.5)))(x32)  # float64 output: eager
    assert g32.dtype == np.float32
    np.testing.assert_allclose(g32, 0.5 * np.exp(x32), rtol=1e-6)


ELEMENTWISE = {
    "issue": lambda x: np.tanh(x) * np.exp(-x) + np.log1p(x**2),
    "numbers": lambda x: 2.0 * x - 1.0,
    "identity": lambda x: (x + 0.0) * 1.0,
    "unary_all": lambda x: (
        np.sqrt(np.square(x) + 1)
        + np.expm1(x)
        + np.log(np.abs(x) + 1)
        + scipy.special.expit(x)
        - np.tanh(-x)
        + np.sin(x) * np.cos(x)
    ),
    "extrema_powers": lambda x: np.maximum(x, 0.1) * x**3 + np.minimum(x, 0.0) / (2.0 + x * x),
    "constants": lambda x: x * C + np.exp(C - x),
    "after_a_layer": lambda x: np.tanh(np.reshape(W @ x, (23,))) * np.exp(x),
    "summed": lambda x: np.sum(np.tanh(x) * x),
    "mean_then_more": lambda x: np.mean(np.exp(-x * x)) * np.sin(x),
}
W = np.random.default_rng(7).normal(size=(23, 23))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(ELEMENTWISE))
def test_fused_jacobian_equals_eager_jacobian(name, dtype, small):
    fn = ELEMENTWISE[name]
    x = np.random.default_rng(8).uniform(-1.5, 1.5, 23).astype(dtype)
    x0 = x.copy()
    J = sj.jacobian(fn)(x)
    J_e = _eager(sj.jacobian, fn, x)
    assert type(J) is type(J_e), (type(J).__name__, type(J_e).__name__)
    assert J.dtype == J_e.dtype
    np.testing.assert_allclose(
        J.to_dense(), J_e.to_dense(), rtol=RTOL[dtype], atol=RTOL[dtype] * 1e-2
    )
    np.testing.assert_array_equal(x, x0)
    if dtype == np.float64:
        fd = central_difference_jacobian(fn, [x], 0)
        np.testing.assert_allclose(J.to_dense(), fd, rtol=1e-6, atol=1e-7)


def test_fused_jacobian_of_two_arguments_and_of_an_array_read_later(small):
    rng = np.random.default_rng(9)
    x, y = rng.uniform(-1, 1, (2, 3, 5))

    def two(x, y):
        return np.tanh(x * y) + y * 3.0

    for got, want in zip(
        sj.jacobian(two, argnums=(0, 1))(x, y),
        _eager(lambda f: sj.jacobian(f, argnums=(0, 1)), two, x, y),
    ):
        assert type(got) is type(want) is sj.Diagonal
        np.testing.assert_allclose(got.to_dense(), want.to_dense(), rtol=1e-12)

    def reused(x):
        u = np.exp(x) * x
        v = np.tanh(u)  # pending on u
        return np.concatenate([v.reshape(-1), u[0].reshape(-1), np.sin(u).reshape(-1)])

    J = sj.jacobian(reused)(x)
    np.testing.assert_allclose(J.to_dense(), _eager(sj.jacobian, reused, x).to_dense(), rtol=1e-12)
    np.testing.assert_allclose(
        J.to_dense(), central_difference_jacobian(reused, [x], 0), rtol=1e-6, atol=1e-8
    )


def test_jvp_never_makes_pending_values(small):
    x = np.linspace(-1, 1, 23)
    pending = []
    original = _lazy.pending_call

    def spy(*args):
        result = original(*args)
        pending.append(result)
        return result

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_lazy, "pending_call", spy)
        _, t = sj.jvp(FUNCTIONS["issue"], (x,), (np.ones(23),))
    assert pending == []
    np.testing.assert_allclose(t, _eager(sj.grad, FUNCTIONS["issue"], x).sum(), rtol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
def test_nan_and_inf_inputs_give_what_the_eager_pass_gives(dtype, small):
    x = np.linspace(-2, 2, 23).astype(dtype)
    x[[1, 5, 17]] = [np.nan, np.inf, -np.inf]

    def fn(x):
        return np.mean(np.tanh(x) * np.exp(-x * 0.1) + np.maximum(x, 0.0) + np.log1p(x * x))

    with np.errstate(all="ignore"):
        value, g = sj.value_and_grad(fn)(x)
        value_e, g_e = _eager(sj.value_and_grad, fn, x)
    assert small == [True]
    np.testing.assert_array_equal(np.isnan(g), np.isnan(g_e))
    np.testing.assert_allclose(g, g_e, rtol=RTOL[dtype], equal_nan=True)
    np.testing.assert_array_equal(value, value_e)  # both NaN


def _warnings_of(run):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run()
    return sorted(str(w.message) for w in caught if issubclass(w.category, RuntimeWarning))


def test_floating_point_errors_are_reported_as_numpy_reports_them(small):
    x = np.linspace(-2, 2, 23)  # negative entries and a zero: invalid, divide, then 0 * inf

    def fn(x):
        return np.sum(np.log(x) * x)

    fused = _warnings_of(lambda: sj.grad(fn)(x))
    assert small == [True]
    eager = _warnings_of(lambda: _eager(sj.grad, fn, x))
    assert fused == eager  # once each, by kind and function, as the whole-array calls
    assert "invalid value encountered in log" in fused
    with np.errstate(invalid="raise", divide="ignore"):
        with pytest.raises(FloatingPointError, match="invalid value encountered in log"):
            sj.grad(fn)(x)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("error")
        g = sj.grad(fn)(x)
    with np.errstate(all="ignore"):
        np.testing.assert_allclose(g, _eager(sj.grad, fn, x), rtol=1e-12, equal_nan=True)


def test_an_errstate_callback_falls_back_to_the_ordinary_rules(small):
    seen = []
    x = np.linspace(-2, 2, 23)
    with np.errstate(all="call", call=lambda kind, flag: seen.append(kind)):
        g = sj.grad(lambda v: np.sum(np.log(v)))(x)
    assert small == [False]
    assert seen  # numpy's own callback was called by the eager log
    with np.errstate(all="ignore"):
        np.testing.assert_allclose(g, 1 / x, rtol=1e-12)


def test_the_default_sizes_keep_small_arrays_eager():
    x = np.linspace(-1, 1, 100)
    assert 100 < _lazy.MIN_SIZE
    made = []
    original = _lazy.Traced._make_pending

    def spy(*args):
        made.append(args)
        return original(*args)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_lazy.Traced, "_make_pending", spy)
        sj.grad(FUNCTIONS["issue"])(x)
        sj.jacobian(ELEMENTWISE["issue"])(x)
        big = np.linspace(-1, 1, _lazy.MIN_SIZE)
        g = sj.grad(FUNCTIONS["issue"])(big)
        assert made  # from MIN_SIZE entries on, the calls are pending
    np.testing.assert_allclose(g, _eager(sj.grad, FUNCTIONS["issue"], big), rtol=1e-12)


@pytest.mark.parametrize("lazy", [False, True])
def test_division_by_the_number_zero_gives_inf_as_numpy_does(lazy, monkeypatch):
    if lazy:
        monkeypatch.setattr(_lazy, "MIN_SIZE", 1)
    x = np.array([1.0, -2.0, 0.5])
    with np.errstate(all="ignore"):
        g = sj.grad(lambda v: np.sum(v / 0.0))(x)
        J = sj.jacobian(lambda v: v / 0.0)(x)
    np.testing.assert_array_equal(g, [np.inf] * 3)
    assert isinstance(J, sj.ScaledIdentity) and J.scalar == np.inf


# ------------------------------------------------------------------ hypothesis
UNARY = [
    np.tanh,
    np.sin,
    np.exp,
    np.negative,
    np.square,
    np.cos,
    scipy.special.expit,
    lambda v: np.log1p(v * v),
    lambda v: np.sqrt(1.0 + v * v),
    lambda v: v * 0.75,
    lambda v: 0.5 - v,
    lambda v: v**3,
]
BINARY = [
    np.add,
    np.subtract,
    np.multiply,
    lambda u, v: u / (2.0 + np.cos(v)),
    np.maximum,
    np.minimum,
]

step = st.one_of(
    st.tuples(st.just(0), st.integers(0, len(UNARY) - 1), st.integers(0, 10**6)),
    st.tuples(
        st.just(1), st.integers(0, len(BINARY) - 1), st.integers(0, 10**6), st.integers(0, 10**6)
    ),
)


def _run(program, x):
    values = [x]
    for kind, index, *picks in program:
        operands = [values[p % len(values)] for p in picks]
        values.append(UNARY[index](*operands) if kind == 0 else BINARY[index](*operands))
    return values[-1]


@settings(deadline=None, derandomize=True, max_examples=40)
@given(
    program=st.lists(step, min_size=1, max_size=7),
    seed=st.integers(0, 2**32 - 1),
    mean=st.booleans(),
    f32=st.booleans(),
)
def test_random_element_wise_programs_fused_equal_eager(program, seed, mean, f32):
    dtype = np.float32 if f32 else np.float64
    x = np.random.default_rng(seed).uniform(-1.0, 1.0, 23).astype(dtype)
    reduce = np.mean if mean else np.sum

    def fn(x):
        return reduce(_run(program, x))

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_lazy, "MIN_SIZE", 1)
        mp.setattr(_lazy, "CHUNK_BYTES", 40)
        g = sj.grad(fn)(x)
    g_e = _eager(sj.grad, fn, x)
    assert g.dtype == dtype
    np.testing.assert_allclose(g, g_e, rtol=1e-4 if f32 else 1e-11, atol=1e-5 if f32 else 1e-12)
    if not f32:
        fd = central_difference_jacobian(fn, [x], 0).reshape(x.shape)
        np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-6)
