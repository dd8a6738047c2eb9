"""Binary ops: value, Jacobian structures against dense finite differences, vjps, dtypes."""

import numpy as np
import pytest

from structjac import kernels as K
from structjac.ops import add, divide, multiply, subtract
from structjac.structures import Diagonal, Identity, ScaledIdentity

OPS = {
    "add": (add, np.add, lambda u, v: (np.ones_like(u), np.ones_like(v))),
    "subtract": (subtract, np.subtract, lambda u, v: (np.ones_like(u), -np.ones_like(v))),
    "multiply": (multiply, np.multiply, lambda u, v: (v, u)),
    "divide": (divide, np.divide, lambda u, v: (1 / v, -u / v**2)),
}
NAMES = sorted(OPS)


def _uv(shape=(3, 4), seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    u = rng.normal(size=shape).astype(dtype)
    v = (rng.uniform(0.5, 2.0, size=shape) * rng.choice([-1, 1], size=shape)).astype(dtype)
    return u, v


def _fd_jacobians(f, u, v, h=1e-6):
    n = u.size
    Ju, Jv = np.empty((n, n)), np.empty((n, n))
    for j in range(n):
        e = np.zeros(n)
        e[j] = h
        e = e.reshape(u.shape)
        Ju[:, j] = ((f(u + e, v) - f(u - e, v)) / (2 * h)).ravel()
        Jv[:, j] = ((f(u, v + e) - f(u, v - e)) / (2 * h)).ravel()
    return Ju, Jv


@pytest.mark.parametrize("name", NAMES)
def test_jacobians_structure_and_dense(name):
    op, f, _ = OPS[name]
    u, v = _uv()
    Ju, Jv = op.jacobians(u, v)
    expected_types = {
        "add": (Identity, Identity),
        "subtract": (Identity, ScaledIdentity),
        "multiply": (Diagonal, Diagonal),
        "divide": (Diagonal, Diagonal),
    }[name]
    assert isinstance(Ju, expected_types[0]) and isinstance(Jv, expected_types[1])
    assert Ju.shape == Jv.shape == (12, 12)
    fu, fv = _fd_jacobians(f, u, v)
    np.testing.assert_allclose(Ju.to_dense(), fu, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(Jv.to_dense(), fv, rtol=1e-6, atol=1e-8)


def test_subtract_is_scaled_minus_identity():
    _, Jv = subtract.jacobians(np.ones(3), np.ones(3))
    assert float(Jv.scalar) == -1.0


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_value_vjp_and_dtype(name, dtype):
    op, f, d = OPS[name]
    u, v = _uv(dtype=dtype)
    g = np.random.default_rng(4).normal(size=u.shape).astype(dtype)
    copies = [a.copy() for a in (u, v, g)]
    val = op(u, v)
    assert val.dtype == dtype
    np.testing.assert_allclose(val, f(u, v), rtol=1e-6 if dtype == np.float32 else 1e-15)
    gu, gv = op.vjp(u, v, g)
    du, dv = d(u.astype(np.float64), v.astype(np.float64))
    rtol = 1e-5 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(gu, g * du, rtol=rtol)
    np.testing.assert_allclose(gv, g * dv, rtol=rtol)
    assert gu.dtype == gv.dtype == dtype and gu.shape == u.shape
    Ju, Jv = op.jacobians(u, v)
    assert Ju.dtype == Jv.dtype == dtype
    np.testing.assert_allclose(g.ravel() @ Ju.to_dense(), gu.ravel(), rtol=rtol)
    for a, c in zip((u, v, g), copies):
        np.testing.assert_array_equal(a, c)


@pytest.mark.parametrize("name", NAMES)
def test_vjp_returns_fresh_arrays(name):
    op = OPS[name][0]
    u, v = _uv()
    g = np.ones_like(u)
    gu, gv = op.vjp(u, v, g)
    assert not np.shares_memory(gu, g) and not np.shares_memory(gv, g)
    assert not np.shares_memory(gu, gv)


@pytest.mark.parametrize("name", NAMES)
def test_shape_mismatch_names_both(name):
    op = OPS[name][0]
    with pytest.raises(ValueError, match=r"u has shape \(2, 3\) but v has shape \(3, 2\)"):
        op(np.ones((2, 3)), np.ones((3, 2)))
    with pytest.raises(ValueError, match=r"u has shape \(3,\) but v has shape \(4,\)"):
        op.jacobians(np.ones(3), np.ones(4))
    with pytest.raises(ValueError, match=r"u has shape \(3,\) but g has shape \(2,\)"):
        op.vjp(np.ones(3), np.ones(3), np.ones(2))


@pytest.mark.parametrize("name", NAMES)
def test_layouts_ints_mixed(name):
    op, f, d = OPS[name]
    u, v = _uv(shape=(6, 8))
    for uu, vv in [(u[::2, ::2], v[::2, ::2]), (np.asfortranarray(u), v), (u.T, v.T)]:
        gu, gv = op.vjp(uu, vv, np.ones_like(uu))
        du, dv = d(uu, vv)
        np.testing.assert_allclose(gu, du, rtol=1e-14)
        np.testing.assert_allclose(gv, dv, rtol=1e-14)
    ui, vi = np.array([1, 2, 3]), np.array([4, 5, 6])
    assert op(ui, vi).dtype == np.float64
    assert op.jacobians(ui, vi)[0].dtype == np.float64
    assert op(u.astype(np.float32), v).dtype == np.float64
    assert op.vjp(np.float32(u), np.float32(v), np.float32(u))[0].dtype == np.float32


@pytest.mark.parametrize("name", NAMES)
def test_empty_and_zero_d(name):
    op = OPS[name][0]
    e = np.empty((0, 2))
    assert op(e, e).shape == (0, 2)
    assert op.jacobians(e, e)[0].shape == (0, 0)
    assert op.vjp(e, e, e)[1].shape == (0, 2)
    a, b = np.array(2.0), np.array(4.0)
    assert op(a, b).shape == ()
    assert op.jacobians(a, b)[1].shape == (1, 1)


def test_divide_by_zero_is_ieee():
    u, v = np.array([1.0, 0.0]), np.array([0.0, 0.0])
    val = divide(u, v)
    assert np.isinf(val[0]) and np.isnan(val[1])
    Ju, _ = divide.jacobians(u, v)
    assert np.all(np.isinf(Ju.diagonal()))


def test_parallel_path_agrees():
    n = K.get_parallel_threshold() + 17
    u, v = _uv(shape=(n,), seed=7)
    g = np.random.default_rng(8).normal(size=n)
    for op, d in [(multiply, OPS["multiply"][2]), (divide, OPS["divide"][2])]:
        gu, gv = op.vjp(u, v, g)
        du, dv = d(u, v)
        np.testing.assert_allclose(gu, g * du, rtol=1e-14)
        np.testing.assert_allclose(gv, g * dv, rtol=1e-14)
    Ju, Jv = divide.jacobians(u, v)
    np.testing.assert_allclose(Jv.diagonal(), -u / v**2, rtol=1e-14)
