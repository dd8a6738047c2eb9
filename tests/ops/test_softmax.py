"""softmax / log_softmax: values against a numpy oracle and jax.nn, the BlockDiagonal
Jacobian against the dense oracle and central differences, fused vjps, axes, dtypes,
large logits, NaN, bad input."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from structjac import kernels as K
from structjac.ops import log_softmax, softmax
from structjac.structures import BlockDiagonal


def _softmax_ref(x, axis=-1):
    x = np.asarray(x, dtype=np.float64)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _log_softmax_ref(x, axis=-1):
    x = np.asarray(x, dtype=np.float64)
    m = x.max(axis=axis, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=axis, keepdims=True))


OPS = {"softmax": (softmax, _softmax_ref), "log_softmax": (log_softmax, _log_softmax_ref)}
NAMES = sorted(OPS)


def _central_jacobian(f, x, step=1e-6):
    x = np.asarray(x, dtype=np.float64)
    flat = x.ravel()
    cols = []
    for j in range(flat.size):
        e = np.zeros_like(flat)
        e[j] = step
        cols.append(
            (f((flat + e).reshape(x.shape)) - f((flat - e).reshape(x.shape))).ravel() / (2 * step)
        )
    return np.stack(cols, axis=1)


SHAPES = {"row": (5,), "batch": (4, 3), "3d": (2, 3, 4), "one-class": (3, 1)}


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("shape", list(SHAPES.values()), ids=list(SHAPES))
def test_value_matches_numpy(name, shape):
    op, ref = OPS[name]
    x = np.random.default_rng(0).normal(size=shape) * 3
    np.testing.assert_allclose(op(x), ref(x), rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("axis", [0, 1, -1, -2], ids=lambda a: f"axis{a}")
def test_value_and_vjp_over_any_axis(name, axis):
    op, ref = OPS[name]
    rng = np.random.default_rng(1)
    x = rng.normal(size=(3, 4))
    g = rng.normal(size=(3, 4))
    np.testing.assert_allclose(op(x, axis=axis), ref(x, axis=axis), rtol=1e-14, atol=1e-15)
    J = _central_jacobian(lambda v: ref(v, axis=axis), x)
    np.testing.assert_allclose(op.vjp(x, g, axis=axis).ravel(), g.ravel() @ J, atol=1e-8)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("shape", list(SHAPES.values()), ids=list(SHAPES))
def test_jacobian_is_block_diagonal_and_matches_differences(name, shape):
    op, ref = OPS[name]
    x = np.random.default_rng(2).normal(size=shape)
    J = op.jacobian(x)
    k = shape[-1]
    assert isinstance(J, BlockDiagonal)
    assert J.n_blocks == x.size // k and J.block_shape == (k, k)
    assert J.nbytes == x.size * k * 8  # N k^2 numbers, not (N k)^2
    np.testing.assert_allclose(J.to_dense(), _central_jacobian(ref, x), atol=1e-8)


@pytest.mark.parametrize("name", NAMES)
def test_jacobian_blocks_closed_form(name):
    op, _ = OPS[name]
    x = np.random.default_rng(3).normal(size=(6, 5))
    p = _softmax_ref(x)
    if name == "softmax":
        want = np.einsum("ki,ij->kij", p, np.eye(5)) - p[:, :, None] * p[:, None, :]
    else:
        want = np.eye(5)[None] - p[:, None, :]
    np.testing.assert_allclose(op.jacobian(x).blocks, want, atol=1e-15)
    # from the output: the same blocks
    np.testing.assert_allclose(op.jacobian_from_output(op(x)).blocks, want, atol=1e-15)


@pytest.mark.parametrize("name", NAMES)
def test_vjp_equals_gT_J_and_from_output(name):
    op, _ = OPS[name]
    rng = np.random.default_rng(4)
    x = rng.normal(size=(7, 4))
    g = rng.normal(size=(7, 4))
    J = op.jacobian(x).to_dense()
    np.testing.assert_allclose(op.vjp(x, g).ravel(), g.ravel() @ J, atol=1e-15)
    np.testing.assert_allclose(op.vjp_from_output(op(x), g), op.vjp(x, g), atol=1e-15)


@pytest.mark.parametrize("name", NAMES)
def test_matches_jax(name):
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    fn = {"softmax": jax.nn.softmax, "log_softmax": jax.nn.log_softmax}[name]
    op, _ = OPS[name]
    x = np.random.default_rng(5).normal(size=(5, 6)) * 4
    np.testing.assert_allclose(op(x), np.asarray(fn(x)), rtol=1e-13, atol=1e-15)
    jac = jax.jacrev(lambda v: fn(v.reshape(5, 6)).ravel())(x.ravel())
    np.testing.assert_allclose(op.jacobian(x).to_dense(), np.asarray(jac), atol=1e-14)
    x32 = x.astype(np.float32)
    np.testing.assert_allclose(op(x32), np.asarray(fn(x32)), rtol=2e-6, atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("method", ["value", "vjp", "jacobian"])
def test_float32_kept(name, method):
    op, _ = OPS[name]
    x = np.random.default_rng(6).normal(size=(4, 3)).astype(np.float32)
    r = {"value": lambda: op(x), "vjp": lambda: op.vjp(x, x), "jacobian": lambda: op.jacobian(x)}[
        method
    ]()
    assert r.dtype == np.float32
    ref = {
        "value": lambda: op(x.astype(np.float64)),
        "vjp": lambda: op.vjp(x.astype(np.float64), x.astype(np.float64)),
        "jacobian": lambda: op.jacobian(x.astype(np.float64)),
    }[method]()
    dense = (lambda a: a.to_dense()) if method == "jacobian" else np.asarray
    np.testing.assert_allclose(dense(r), dense(ref), rtol=1e-5, atol=1e-6)


def test_large_logits_finite():
    x = np.array([[1e4, 0.0, -1e4], [1e4, 1e4, 1e4], [-1e4, -1e4, -1e4]])
    for dtype in (np.float32, np.float64):
        xd = x.astype(dtype)
        p = softmax(xd)
        assert np.isfinite(p).all()
        np.testing.assert_allclose(p[0], [1, 0, 0])
        np.testing.assert_allclose(p[1:], 1 / 3, rtol=1e-6)
        lp = log_softmax(xd)
        assert np.isfinite(lp).all()
        np.testing.assert_allclose(lp[0], [0, -1e4, -2e4])
        assert np.isfinite(softmax.jacobian(xd).blocks).all()
        assert np.isfinite(log_softmax.vjp(xd, np.ones_like(xd))).all()


@pytest.mark.parametrize("name", NAMES)
def test_nan_in_nan_out_per_row(name):
    op, _ = OPS[name]
    x = np.array([[0.0, np.nan, 1.0], [0.0, 1.0, 2.0]])
    r = op(x)
    assert np.isnan(r[0]).all()
    assert np.isfinite(r[1]).all()
    assert np.isnan(op.vjp(x, np.ones_like(x))[0]).all()


def test_parallel_kernel_equals_serial():
    x = np.random.default_rng(7).normal(size=(300, 10))
    g = np.random.default_rng(8).normal(size=(300, 10))
    old = K.set_parallel_threshold(0)
    try:
        par = (
            softmax(x),
            log_softmax(x),
            softmax.vjp(x, g),
            log_softmax.vjp(x, g),
            softmax.jacobian(x).blocks,
        )
    finally:
        K.set_parallel_threshold(old)
    with K.serial_only():
        ser = (
            softmax(x),
            log_softmax(x),
            softmax.vjp(x, g),
            log_softmax.vjp(x, g),
            softmax.jacobian(x).blocks,
        )
    for a, b in zip(par, ser):
        np.testing.assert_array_equal(a, b)


def test_out_and_inputs_not_written():
    x = np.random.default_rng(9).normal(size=(3, 4))
    g = np.ones((3, 4))
    x0, g0 = x.copy(), g.copy()
    out = np.empty((3, 4))
    assert softmax(x, out=out) is out
    np.testing.assert_allclose(out, _softmax_ref(x))
    out = np.empty((3, 4))
    assert softmax.vjp(x, g, axis=0, out=out) is out
    np.testing.assert_allclose(out, softmax.vjp(x, g, axis=0))
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(g, g0)
    y = x.copy()  # out aliasing the input
    softmax(y, out=y)
    np.testing.assert_allclose(y, _softmax_ref(x))


def test_empty_and_integer_input():
    assert softmax(np.empty((0, 3))).shape == (0, 3)
    assert softmax.jacobian(np.empty((0, 3))).shape == (0, 0)
    np.testing.assert_allclose(softmax(np.array([0, 0])), [0.5, 0.5])


def test_bad_input():
    with pytest.raises(ValueError, match=r"shape \(3,\) but g has shape \(2,\)"):
        softmax.vjp(np.ones(3), np.ones(2))
    with pytest.raises(ValueError, match="0-d"):
        softmax(np.float64(1.0))
    with pytest.raises(np.exceptions.AxisError, match="axis 2"):
        softmax(np.ones((2, 2)), axis=2)
    with pytest.raises(TypeError, match="axis must be an integer"):
        softmax(np.ones((2, 2)), axis=1.0)
    with pytest.raises(ValueError, match="axis 0 .* shape \\(2, 3\\).*moveaxis"):
        softmax.jacobian(np.ones((2, 3)), axis=0)
    with pytest.raises(TypeError, match="complex128"):
        softmax(np.ones(3, dtype=complex))
    with pytest.raises(TypeError, match="<U1"):
        softmax(np.array(["a", "b"]))
    with pytest.raises(ValueError, match=r"out has shape \(2,\)"):
        softmax(np.ones(3), out=np.empty(2))


@settings(deadline=None, derandomize=True, max_examples=30)
@given(
    n=st.integers(1, 4), k=st.integers(1, 5), scale=st.floats(0.1, 30.0), seed=st.integers(0, 2**16)
)
def test_property_vjp_matches_dense_jacobian(n, k, scale, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, k)) * scale
    g = rng.normal(size=(n, k))
    for op in (softmax, log_softmax):
        J = op.jacobian(x).to_dense()
        np.testing.assert_allclose(op.vjp(x, g).ravel(), g.ravel() @ J, atol=1e-12)
    np.testing.assert_allclose(softmax(x).sum(axis=1), 1.0, rtol=1e-14)
