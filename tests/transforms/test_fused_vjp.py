"""The one-pass reverse kernels of the element-wise rules and the in-place accumulation
of cotangents: against the numpy formulas, the generic (unfused) path and central
differences, in float32 and float64; nothing the user passed is written."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.special

import structjac as sj
from structjac.transforms import _kernels, _local

from .support import central_difference_jacobian

DTYPES = [np.float32, np.float64]
RTOL = {np.float32: 2e-6, np.float64: 1e-13}


def _a(rng, dtype, n=37):
    return rng.uniform(0.3, 2.0, n).astype(dtype)  # inside every derivative's domain


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("code", sorted(_kernels.CODES))
def test_kernel_equals_its_formula(code, dtype):
    rng = np.random.default_rng(code)
    a, g = _a(rng, dtype), rng.standard_normal(37).astype(dtype)
    a0, g0 = a.copy(), g.copy()
    expected = g * _kernels.CODES[code](a).astype(dtype)
    out = _kernels.elementwise_vjp(code, g, a)
    assert out.dtype == dtype and out.shape == a.shape
    np.testing.assert_allclose(out, expected, rtol=RTOL[dtype])
    # one number broadcast (the vjp of a mean): read once, the same products
    scalar = np.broadcast_to(g[3], a.shape)
    np.testing.assert_allclose(
        _kernels.elementwise_vjp(code, scalar, a), g[3] * _kernels.CODES[code](a), rtol=RTOL[dtype]
    )
    # accumulation in place into an array the caller owns
    acc = rng.standard_normal(37).astype(dtype)
    acc0 = acc.copy()
    assert _kernels.elementwise_vjp(code, g, a, out=acc) is acc
    np.testing.assert_allclose(acc, acc0 + expected, rtol=RTOL[dtype], atol=1e-6)
    np.testing.assert_array_equal(a, a0)
    np.testing.assert_array_equal(g, g0)


def test_kernel_declines_what_it_cannot_take():
    a = np.linspace(0.5, 1.5, 6)
    g = np.ones(6)
    assert (
        _kernels.elementwise_vjp(_kernels.TIMES, g.astype(np.float32).astype(np.longdouble), a)
        is None
    )
    assert _kernels.elementwise_vjp(_kernels.TIMES, g, a, out=np.zeros(6, np.float32)) is None
    assert _kernels.elementwise_vjp(_kernels.TIMES, g, a, out=np.zeros((6, 2))[:, 0]) is None
    assert not _kernels.fusable(a[::2], a.dtype)
    assert not _kernels.fusable(a, np.float32)


def _fns():
    return {
        "exp": lambda x: np.sum(np.exp(x) * np.cos(x)),
        "expm1": lambda x: np.mean(np.expm1(x) ** 3),
        "log": lambda x: np.sum(np.log(x) * x),
        "log1p": lambda x: np.mean(np.log1p(x**2)),
        "sqrt": lambda x: np.sum(np.sqrt(x) * np.sin(x)),
        "square": lambda x: np.sum(np.square(x) / (1 + x)),
        "tanh": lambda x: np.sum(np.tanh(x) * x),
        "expit": lambda x: np.sum(scipy.special.expit(x) * x),
        "mul_div": lambda x: np.sum((x * np.exp(-x)) / (2 + x)),
        "issue": lambda x: np.mean(np.tanh(x) * np.exp(-x) + np.log1p(x**2)),
        # one value with several consumers: its cotangent is accumulated in place
        "fan_out": lambda x: np.sum(np.tanh(x) + np.tanh(x) * np.exp(x) + x * x + x),
        "shared_g": lambda x: np.sum((x + x) * (x - x * 2)),
        # +-1 derivatives added or subtracted in place into an accumulated cotangent
        "minus_chain": lambda x: np.mean(np.tanh(x) - np.exp(-x) - (-x) + x * 3),
    }


def _generic_grad(fn, x):
    """The gradient with the fused kernels switched off (every rule's numpy expression)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_kernels, "fusable", lambda a, dtype: False)
        return sj.grad(fn)(x)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(_fns()))
def test_fused_grad_equals_generic_path_and_finite_differences(name, dtype):
    fn = _fns()[name]
    x = np.random.default_rng(1).uniform(0.3, 1.7, (4, 5)).astype(dtype)
    x0 = x.copy()
    g = sj.grad(fn)(x)
    assert g.dtype == dtype and g.shape == x.shape
    np.testing.assert_allclose(g, _generic_grad(fn, x), rtol=RTOL[dtype] * 10, atol=1e-6)
    fd = central_difference_jacobian(fn, [x.astype(np.float64)], 0).reshape(x.shape)
    np.testing.assert_allclose(g, fd, rtol=1e-3 if dtype == np.float32 else 1e-7, atol=1e-6)
    np.testing.assert_array_equal(x, x0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_vjp_never_writes_the_cotangent_and_can_be_called_again(dtype):
    # the output is the input plus itself: the user's cotangent flows through the
    # +-1 shortcut unchanged, and must not become an accumulation buffer
    def fn(x):
        return x + np.tanh(x) + x

    x = np.linspace(0.1, 1.0, 6).astype(dtype)
    _, vjp_fn = sj.vjp(fn, x)
    ct = np.linspace(1.0, 2.0, 6).astype(dtype)
    ct0 = ct.copy()
    first = vjp_fn(ct)[0]
    second = vjp_fn(ct)[0]
    np.testing.assert_array_equal(ct, ct0)
    expected = ct * (2 + (1 - np.tanh(x) ** 2))
    np.testing.assert_allclose(first, expected, rtol=RTOL[dtype] * 10)
    np.testing.assert_array_equal(first, second)
    assert first.dtype == dtype
    assert not np.shares_memory(first, ct)


def test_plus_minus_one_shortcut_passes_the_cotangent_unmultiplied():
    local = _local.elementwise_local((3,), (3,), np.dtype(np.float64), lambda: 1)
    g = np.array([1.0, np.nan, -0.0])
    assert local.vjp(g) is g
    minus = _local.elementwise_local((3,), (3,), np.dtype(np.float64), lambda: -1)
    np.testing.assert_array_equal(minus.vjp(g), -g)
    # broadcast: the sum over the broadcast axes still happens
    row = _local.elementwise_local((3,), (2, 3), np.dtype(np.float64), lambda: 1)
    np.testing.assert_array_equal(row.vjp(np.ones((2, 3))), [2.0, 2.0, 2.0])


@pytest.mark.parametrize("dtype", DTYPES)
def test_broadcast_operands_are_not_fused_and_stay_right(dtype):
    b = np.array([0.5, 2.0, 3.0], dtype=dtype)

    def fn(x):
        return np.sum(np.exp(x * b) / b)

    x = np.random.default_rng(2).uniform(0.1, 0.9, (4, 3)).astype(dtype)
    g = sj.grad(fn)(x)
    assert g.dtype == dtype
    np.testing.assert_allclose(g, np.exp(x * b), rtol=RTOL[dtype] * 10)


# ---------------------------------------------------------------- forward fast path
def _diagonals(n, dtype, rng):
    return [
        sj.Identity(n, dtype=dtype),
        sj.ScaledIdentity(n, -2.5, dtype=dtype),
        sj.Diagonal(rng.standard_normal(n).astype(dtype)),
    ]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("d_dtype", DTYPES)
def test_diagonal_times_equals_the_rule_table(dtype, d_dtype):
    from structjac.transforms._compose import compose, diagonal_times
    from structjac.transforms._local import diagonal_structure

    rng = np.random.default_rng(3)
    n = 6
    for d in (
        1,
        -1,
        0.5,
        np.float32(3.0),
        rng.standard_normal(n).astype(d_dtype),
        rng.standard_normal((2, 3)).astype(d_dtype),
    ):
        for J in _diagonals(n, dtype, rng):
            fast = diagonal_times(d, J, np.dtype(d_dtype))
            shape = np.shape(d) if np.ndim(d) else (n,)
            generic = compose(diagonal_structure(d, shape, np.dtype(d_dtype)), J)
            assert type(fast) is type(generic), (d, J)
            assert fast.dtype == generic.dtype
            np.testing.assert_allclose(fast.to_dense(), generic.to_dense(), rtol=1e-6)
    # anything but a diagonal J, or a d of another size: not taken (the table decides)
    assert diagonal_times(np.ones(n), sj.Dense(np.ones((n, 2))), np.dtype(dtype)) is None
    assert diagonal_times(np.ones(n + 1), sj.Identity(n), np.dtype(dtype)) is None


def test_diagonal_times_never_wraps_a_value_of_the_trace():
    from structjac.transforms._compose import diagonal_times

    y = np.linspace(1.0, 2.0, 4)
    J = diagonal_times(y, sj.Identity(4), np.dtype(np.float64))
    assert not np.shares_memory(J.values, y)
    assert y.flags.writeable


@pytest.mark.parametrize("dtype", DTYPES)
def test_elementwise_jacobian_keeps_its_type_and_values(dtype):
    def f(x):
        return np.tanh(x) * np.exp(-x) + np.log1p(x**2) - 3 * x + x * 0.5

    x = np.linspace(-1.0, 1.0, 7).astype(dtype)
    J = sj.jacobian(f)(x)
    assert type(J) is sj.Diagonal and J.dtype == dtype
    fd = central_difference_jacobian(f, [x.astype(np.float64)], 0)
    np.testing.assert_allclose(
        J.to_dense(), fd, rtol=1e-3 if dtype == np.float32 else 1e-7, atol=1e-5
    )
    twice = sj.jacobian(lambda x: -(-x))(x)  # noqa: B002 (a double negation on purpose)
    assert type(twice) is sj.ScaledIdentity and twice.scalar == 1
    assert type(sj.jacobian(lambda x: 2 * (3 * x))(x)) is sj.ScaledIdentity


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("J_dtype", DTYPES)
@pytest.mark.parametrize("reduce", [np.sum, np.mean])
def test_reduction_of_a_diagonal_equals_the_rule_table(reduce, dtype, J_dtype):
    from structjac.transforms._local import reduction_jacobian
    from structjac.transforms._tracer import Trace

    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 3)).astype(dtype)
    trace = Trace("jacobian", 1)
    t = trace.new_input(x, 0, jacobian=sj.Identity(x.size, dtype=dtype))
    y = reduce(t)
    # the rule table's product of the reduction's row with each diagonal J
    scale = 1 / x.size if reduce is np.mean else 1.0
    R = reduction_jacobian(x.shape, (0, 1), scale, np.dtype(dtype))
    for J in _diagonals(x.size, J_dtype, rng):
        generic = R @ J
        t = trace.new_input(x, 0, jacobian=J)
        fast = reduce(t)._payload[0]
        assert type(fast) is type(generic) is sj.BlockRow
        assert fast.dtype == generic.dtype
        np.testing.assert_array_equal(fast.to_dense(), generic.to_dense())
    assert y._payload[0].shape == (1, x.size)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("code", sorted(_kernels.CODES))
def test_fused_diagonal_times_equals_the_numpy_derivative(code, dtype):
    from structjac.transforms._compose import diagonal_times, fused_diagonal_times

    rng = np.random.default_rng(5)
    a = _a(rng, dtype, 9)
    a0 = a.copy()
    for J in _diagonals(9, dtype, rng):
        fast = fused_diagonal_times(code, a, J)
        generic = diagonal_times(_kernels.CODES[code](a).astype(dtype), J, np.dtype(dtype))
        assert type(fast) is type(generic) is sj.Diagonal and fast.dtype == dtype
        np.testing.assert_allclose(fast.values, generic.values, rtol=RTOL[dtype])
        assert not np.shares_memory(fast.values, a)
    np.testing.assert_array_equal(a, a0)
    # another dtype or a non-contiguous array: declined, the numpy path decides
    other = np.float64 if dtype == np.float32 else np.float32
    assert fused_diagonal_times(code, a, sj.Identity(9, dtype=other)) is None
    assert fused_diagonal_times(code, np.repeat(a, 2)[::2], sj.Identity(9, dtype=dtype)) is None
