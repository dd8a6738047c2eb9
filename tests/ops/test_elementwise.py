"""User-defined ops: the lecture's exercise, complex-step derivative, explicit df."""

import math

import numpy as np
import pytest
from scipy.differentiate import derivative as sp_derivative

from structjac import kernels as K
from structjac.ops import elementwise
from structjac.structures import Diagonal


def test_lecture_exercise_log_plus_exp():
    op = elementwise(lambda x: np.log(x) + np.exp(x))
    x = np.linspace(0.1, 3.0, 12).reshape(3, 4)
    J = op.jacobian(x)
    assert isinstance(J, Diagonal) and J.shape == (12, 12)
    np.testing.assert_allclose(J.to_dense(), np.diag((1 / x + np.exp(x)).ravel()), rtol=1e-14)
    np.testing.assert_allclose(op(x), np.log(x) + np.exp(x), rtol=1e-15)
    res = sp_derivative(lambda t: np.log(t) + np.exp(t), x.ravel(), initial_step=1e-2)
    np.testing.assert_allclose(J.diagonal()[res.success], res.df[res.success], rtol=1e-8)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_complex_step_dtypes(dtype):
    op = elementwise(lambda x: np.sin(x) * np.exp(-x * x), name="g")
    x = np.linspace(-2, 2, 9).astype(dtype)
    ref = np.cos(x.astype(float)) * np.exp(-(x.astype(float) ** 2)) - 2 * x.astype(float) * np.sin(
        x.astype(float)
    ) * np.exp(-(x.astype(float) ** 2))
    d = op.derivative(x)
    assert d.dtype == dtype and op(x).dtype == dtype and op.vjp(x, x).dtype == dtype
    np.testing.assert_allclose(d, ref, rtol=1e-6 if dtype == np.float32 else 1e-14, atol=1e-7)
    np.testing.assert_allclose(op.vjp(x, 2 * x), 2 * x * d, rtol=1e-6)


def test_explicit_derivative_and_math_functions():
    op = elementwise(math.tanh, df=lambda x: 1 - math.tanh(x) ** 2, name="tanh2")
    np.testing.assert_allclose(
        elementwise(np.sin).derivative(np.array([0.5])), np.cos(0.5), rtol=1e-15
    )
    x = np.linspace(-1, 1, 5)
    np.testing.assert_allclose(op.derivative(x), 1 / np.cosh(x) ** 2, rtol=1e-14)
    assert repr(op) == "structjac.elementwise(tanh2)"


def test_complex_step_needs_complex_capable_f():
    op = elementwise(lambda x: math.log(x))
    np.testing.assert_allclose(op(np.array([1.0, math.e])), [0.0, 1.0])
    with pytest.raises(TypeError, match="complex"):
        op.derivative(np.array([1.0, 2.0]))


def test_layouts_and_parallel_path():
    op = elementwise(lambda x: x * x * x)
    x = np.random.default_rng(0).normal(size=(8, 6))
    xc = x.copy()
    np.testing.assert_allclose(op.derivative(x[::2, ::3]), 3 * x[::2, ::3] ** 2, rtol=1e-14)
    np.testing.assert_allclose(op.derivative(np.asfortranarray(x)), 3 * x**2, rtol=1e-14)
    np.testing.assert_array_equal(x, xc)
    big = np.linspace(-1, 1, K.get_parallel_threshold() + 3)
    np.testing.assert_allclose(op.vjp(big, big), big * 3 * big**2, rtol=1e-14, atol=1e-300)
    assert op.derivative(np.array([1, 2])).dtype == np.float64
    assert op.derivative(np.empty((0, 2))).shape == (0, 2)
    with pytest.raises(ValueError, match=r"x has shape \(2,\) but g has shape \(3,\)"):
        op.vjp(np.ones(2), np.ones(3))


def test_compiled_once_per_op_and_dtype():
    op = elementwise(lambda x: np.exp(2 * x))
    for _ in range(3):
        op.derivative(np.ones(4))
        op.derivative(np.ones(4, np.float32))
    assert len(op._deriv_k[0].signatures) == 2
