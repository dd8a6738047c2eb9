"""``elementwise(f)`` refuses the two kinds of f that gave silently wrong numbers (issue 13):
a function that is not analytic (complex step 0 for ``np.abs``) and a function of the whole
array (``x - np.mean(x)``), and keeps accepting the functions it is meant for."""

import math

import numpy as np
import pytest

from structjac.ops import elementwise

X = np.array([-1.5, -0.2, 0.4, 1.0, 2.5])


def _central(f, x, h=1e-6):
    return (f(x + h) - f(x - h)) / (2 * h)


NOT_ANALYTIC = {
    "np.abs": np.abs,
    "lambda np.abs": lambda x: np.abs(x),
    "np.real": lambda x: np.real(x),
    "np.conj": lambda x: np.conj(x) * 2.0,
    "abs squared": lambda x: np.abs(x) ** 2,
}


@pytest.mark.parametrize("f", NOT_ANALYTIC.values(), ids=NOT_ANALYTIC.keys())
def test_not_analytic_f_without_df_is_refused(f):
    op = elementwise(f)
    for call in (
        op.derivative,
        op.jacobian,
        lambda x: op.vjp(x, np.ones_like(x)),
        op.value_and_jacobian,
    ):
        with pytest.raises(ValueError, match="not analytic.*df="):
            call(X)


def test_not_analytic_f_with_df_is_right():
    op = elementwise(np.abs, df=np.sign)
    x = X.copy()
    np.testing.assert_array_equal(op(x), np.abs(X))
    np.testing.assert_allclose(op.derivative(x), _central(np.abs, X), rtol=1e-9)
    np.testing.assert_array_equal(x, X)


NOT_ELEMENTWISE = {
    "softmax": lambda x: np.exp(x) / np.sum(np.exp(x)),
    "centre": lambda x: x - np.mean(x),
    "sum": lambda x: np.sum(x),
    "scale by max": lambda x: x / np.max(np.abs(x) + 1.0),
}


@pytest.mark.parametrize("f", NOT_ELEMENTWISE.values(), ids=NOT_ELEMENTWISE.keys())
@pytest.mark.parametrize("df", [None, lambda x: 0.0], ids=["complex step", "given df"])
def test_f_of_the_whole_array_is_refused(f, df):
    op = elementwise(f, df=df)
    for call in (op, op.derivative, op.jacobian, lambda x: op.vjp(x, np.ones_like(x))):
        with pytest.raises(ValueError, match="not element-wise"):
            call(X)


def test_the_message_names_the_op_and_the_point():
    with pytest.raises(ValueError, match=r"'centre'.*at x = 0\.37.*np\.mean"):
        elementwise(lambda x: x - np.mean(x), name="centre")(X)
    with pytest.raises(ValueError, match=r"'absolute'.*x = 0\.37 is 0 .* gives 1"):
        elementwise(np.abs).derivative(X)


ACCEPTED = {
    "log + exp": (lambda x: np.log(x) + np.exp(x), None, np.array([0.2, 0.9, 1.7, 3.0])),
    "sin exp": (lambda x: np.sin(x) * np.exp(-x * x), None, X),
    "cube": (lambda x: x * x * x, None, X),
    "constant": (lambda x: 2.0, None, X),
    "np.sin ufunc": (np.sin, None, X),
    "math.tanh with df": (math.tanh, lambda x: 1 - math.tanh(x) ** 2, X),
    "branch with df": (lambda x: x if x > 0 else 0.5 * x, lambda x: 1.0 if x > 0 else 0.5, X),
    "steep exp": (lambda x: np.exp(40 * x), None, np.array([-1.0, 0.1, 0.5])),
}


@pytest.mark.parametrize("f, df, x", ACCEPTED.values(), ids=ACCEPTED.keys())
def test_element_wise_functions_are_accepted_and_right(f, df, x):
    op = elementwise(f, df=df)
    scalar = np.vectorize(lambda v: float(f(v)))
    np.testing.assert_allclose(op(x), scalar(x), rtol=1e-14)
    np.testing.assert_allclose(op.derivative(x), _central(scalar, x), rtol=1e-6, atol=1e-8)
