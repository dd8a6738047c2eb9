"""The forward short path of element-wise calls (``structjac.transforms._fast``).

Each function is differentiated twice, by the short path and with it switched off
(the general path through ``record``): the structures must be of one type with the
same numbers, and equal a central-difference Jacobian.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.special

import structjac as sj
from structjac.transforms import _fast

from .support import central_difference_jacobian

FUNCTIONS = {
    "ten_ops": lambda x: np.sum(np.sin(np.tanh(x) * np.exp(-x) + np.log1p(x**2)) * 0.5),
    "chain": lambda x: np.sqrt(np.exp(np.tanh(x)) + 1.0) / (2.0 + np.cos(x)),
    "neg_scale": lambda x: -(-x) * 3.0 - x,
    "identity_add": lambda x: x + x - 0.0,
    "expit_square": lambda x: scipy.special.expit(np.square(x)) * x,
    "minmax": lambda x: np.maximum(x, 0.1) + np.minimum(x * x, 0.5),
    "power": lambda x: (x**3) / (1.0 + x**2),
    "abs_log": lambda x: np.log(np.abs(x) + 1.0) - np.expm1(-np.abs(x)),
    "constant_array": lambda x: x * np.linspace(1.0, 2.0, x.size) + np.arange(x.size),
    "broadcast_then_chain": lambda x: np.tanh(x[:, None] * np.ones(3)).ravel(),
}

#: Functions with float64 constant arrays: numpy promotes float32 to float64.
FLOAT64_CONSTANTS = {"constant_array", "broadcast_then_chain"}


def _both(f, x, argnums=0):
    fast = sj.jacobian(f, argnums)(x) if not isinstance(x, tuple) else sj.jacobian(f, argnums)(*x)
    old, _fast.ENABLED = _fast.ENABLED, False
    try:
        general = (
            sj.jacobian(f, argnums)(x) if not isinstance(x, tuple) else sj.jacobian(f, argnums)(*x)
        )
    finally:
        _fast.ENABLED = old
    return fast, general


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_short_path_equals_general_path_and_differences(name, dtype):
    f = FUNCTIONS[name]
    x = np.random.default_rng(3).uniform(0.2, 1.5, 7).astype(dtype)
    before = x.copy()
    fast, general = _both(f, x)
    np.testing.assert_array_equal(x, before)  # inputs never written
    assert type(fast) is type(general)
    assert fast.dtype == general.dtype
    if name not in FLOAT64_CONSTANTS:
        assert fast.dtype == dtype  # float32 stays float32
    np.testing.assert_array_equal(fast.to_dense(), general.to_dense())
    reference = central_difference_jacobian(f, [x.astype(np.float64)], 0)
    tol = 1e-6 if dtype == np.float64 else 2e-3
    np.testing.assert_allclose(fast.to_dense(), reference, rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_two_arguments(dtype):
    def f(x, y):
        return np.tanh(x * y) + np.exp(-y) * x

    rng = np.random.default_rng(4)
    x, y = (rng.uniform(-1, 1, 5).astype(dtype) for _ in range(2))
    fast, general = _both(f, (x, y), argnums=(0, 1))
    for a, b in zip(fast, general):
        assert type(a) is type(b) is sj.Diagonal
        assert a.dtype == dtype
        np.testing.assert_array_equal(a.to_dense(), b.to_dense())
    tol = 1e-6 if dtype == np.float64 else 2e-3
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    np.testing.assert_allclose(
        fast[0].to_dense(), central_difference_jacobian(f, [x64, y64], 0), rtol=tol, atol=tol
    )
    np.testing.assert_allclose(
        fast[1].to_dense(), central_difference_jacobian(f, [x64, y64], 1), rtol=tol, atol=tol
    )


def test_structures_of_the_short_path():
    x = np.linspace(0.1, 1.0, 4)
    assert type(sj.jacobian(lambda v: np.tanh(v) * 2.0)(x)) is sj.Diagonal
    J = sj.jacobian(lambda v: -v * 2.0)(x)
    assert type(J) is sj.ScaledIdentity and J.scalar == -2.0
    assert type(sj.jacobian(lambda v: v + 0.0)(x)) is sj.Identity
    # a non-diagonal Jacobian takes the general path: the rows of W scaled
    W = np.arange(12.0).reshape(3, 4)
    J = sj.jacobian(lambda v: np.tanh(W @ v))(x)
    np.testing.assert_allclose(
        J.to_dense(), central_difference_jacobian(lambda v: np.tanh(W @ v), [x], 0), atol=1e-6
    )


def test_scaled_identity_cache_keeps_signed_zero_apart():
    from structjac.transforms._compose import scaled_identity

    a = scaled_identity(3, 0.0, np.float64)
    b = scaled_identity(3, -0.0, np.float64)
    assert np.signbit(b.scalar) and not np.signbit(a.scalar)
    c = scaled_identity(3, 2.5, np.float32)
    assert c.dtype == np.float32 and c.scalar.dtype == np.float32 and c.scalar == 2.5
