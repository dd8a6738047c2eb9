"""The small caches on the path of every call: an op's parameter tuple, the typed kernel
parameters, the rule table's apply cache and the float32/float64 shortcut of
``float_dtype``.  Each must give what the uncached computation gives."""

from __future__ import annotations

import numpy as np
import pytest

import structjac as sj
from structjac import _registry, ops
from structjac.kernels import _config
from structjac.kernels import unary as ku


def test_an_op_parameter_changed_after_construction_is_used():
    op = ops.LeakyReLU(slope=0.1)
    x = np.array([-2.0, 3.0])
    np.testing.assert_array_equal(op(x), [-0.2, 3.0])
    op.slope = 0.5
    np.testing.assert_array_equal(op(x), [-1.0, 3.0])
    np.testing.assert_array_equal(op.vjp(x, np.ones(2)), [0.5, 1.0])


@pytest.mark.parametrize("zero", [0.0, -0.0])
def test_signed_zero_parameters_are_not_confused(zero):
    x = np.array([0.0, 1.0])
    for value in (0.0, -0.0, zero):  # fill and read the cache in both orders
        got = ku.relu_derivative(x, value)
        assert np.signbit(got[0]) == np.signbit(value)


def test_unhashable_and_numpy_parameters():
    x = np.array([-1.0, 0.0, 2.0])
    for at_zero in (np.array(0.5), np.float32(0.5), 0.5):
        np.testing.assert_array_equal(ku.relu_derivative(x, at_zero), [0.0, 0.5, 1.0])
    got = ku.relu_derivative(x.astype(np.float32), 0.5)
    assert got.dtype == np.float32


def test_the_typed_cache_is_bounded():
    x = np.ones(3)
    for i in range(5000):
        ku.leaky_relu(x, 1.0 + i * 1e-6)
    assert len(ku._TYPED) <= 4096


@pytest.mark.parametrize(
    "dtypes, expect",
    [
        ((np.float32,), np.float32),
        ((np.float64, np.float64), np.float64),
        ((np.float32, np.float64), np.float64),
        ((np.float32, np.float32, np.int8), np.float64),
        ((np.float16,), np.float64),
        ((">f8",), np.float64),
        ((">f4", np.float32), np.float64),  # a non-native byte order: converted, in float64
    ],
)
def test_float_dtype(dtypes, expect):
    arrays = [np.ones(2, dtype=d) for d in dtypes]
    assert _config.float_dtype(*arrays) == np.dtype(expect)


def test_a_rule_registered_after_a_product_is_used():
    class Marked(sj.Dense):
        pass

    a, b = Marked(np.eye(2)), sj.Dense(np.ones((2, 2)))
    first = a @ b
    assert type(first) is sj.Dense
    sentinel = sj.Dense(np.full((2, 2), 7.0))
    key = ("matmul", Marked, sj.Dense)
    try:

        def marked_at_dense(p, q):
            """M D = the sentinel (a test rule)."""
            return sentinel

        _registry.register("matmul", Marked, sj.Dense, sj.Dense)(marked_at_dense)
        assert (a @ b) is sentinel
    finally:
        _registry._RULES.pop(key, None)
        _registry._CACHE.clear()
        _registry._APPLY.clear()
    np.testing.assert_array_equal((a @ b).to_dense(), first.to_dense())
