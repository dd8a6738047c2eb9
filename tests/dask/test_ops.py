"""Element-wise ops, binary ops and losses on dask arrays against the NumPy results."""

import numpy as np
import pytest

da = pytest.importorskip("dask.array")

import structjac as sj
from structjac import ops

from .conftest import ComputeCalled, no_compute

UNARY = ["sigmoid", "tanh", "relu", "leaky_relu", "exp", "softplus", "log"]
# several chunkings of a (1003, 7) batch, the last chunk ragged
CHUNKS = [(1003, 7), (137, 3), (1, 7)]
DTYPES = [np.float64, np.float32]


def _data(dtype, shape=(1003, 7), seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(dtype)
    g = rng.standard_normal(shape).astype(dtype)
    return x, g


def _input(name, x):
    return np.abs(x) + 0.1 if name == "log" else x


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("chunks", CHUNKS)
@pytest.mark.parametrize("name", UNARY)
def test_unary_value_derivative_vjp(name, chunks, dtype):
    op = getattr(ops, name)
    x, g = _data(dtype)
    x = _input(name, x)
    X, G = da.from_array(x, chunks=chunks), da.from_array(g, chunks=chunks)
    with no_compute():
        results = [op(X), op.derivative(X), op.vjp(X, G)]
    expected = [op(x), op.derivative(x), op.vjp(x, g)]
    for got, want in zip(results, expected):
        assert isinstance(got, da.Array)
        assert got.chunks == X.chunks
        assert got.dtype == want.dtype == dtype
        np.testing.assert_array_equal(got.compute(), want)


@pytest.mark.parametrize("name", ["sigmoid", "tanh"])
def test_from_output_route(name):
    op = getattr(ops, name)
    x, g = _data(np.float64)
    a = op(x)
    A, G = da.from_array(a, chunks=(300, 7)), da.from_array(g, chunks=(300, 7))
    with no_compute():
        d, v, J = op.derivative_from_output(A), op.vjp_from_output(A, G), op.jacobian_from_output(A)
    np.testing.assert_array_equal(d.compute(), op.derivative_from_output(a))
    np.testing.assert_array_equal(v.compute(), op.vjp_from_output(a, g))
    np.testing.assert_array_equal(J.diagonal().compute(), op.jacobian_from_output(a).diagonal())


@pytest.mark.parametrize("dtype", DTYPES)
def test_jacobian_is_a_lazy_diagonal(dtype):
    x, _ = _data(dtype, shape=(500, 4))
    X = da.from_array(x, chunks=(128, 4))
    v = np.random.default_rng(1).standard_normal(x.size).astype(dtype)
    V = da.from_array(v, chunks=333)
    with no_compute():
        J = ops.tanh.jacobian(X)
        Jv, vJ = J @ V, V @ J
        value, J2 = ops.tanh.value_and_jacobian(X)
    assert isinstance(J, sj.Diagonal)
    assert isinstance(J.values, da.Array) and isinstance(J.diagonal(), da.Array)
    assert J.shape == (x.size, x.size) and J.dtype == dtype
    assert isinstance(Jv, da.Array) and isinstance(vJ, da.Array)
    ref = ops.tanh.jacobian(x)
    np.testing.assert_array_equal(Jv.compute(), ref @ v)
    np.testing.assert_array_equal(vJ.compute(), v @ ref)
    np.testing.assert_array_equal(value.compute(), ops.tanh(x))
    np.testing.assert_array_equal(J2.diagonal().compute(), ref.diagonal())
    # small enough: the dense matrix equals the in-memory one
    small = ops.tanh.jacobian(da.from_array(x[:20], chunks=(7, 4)))
    np.testing.assert_array_equal(small.to_dense(), ops.tanh.jacobian(x[:20]).to_dense())


def test_jacobian_to_dense_refuses_past_the_guard():
    X = da.zeros((20_000,), chunks=5_000)
    J = ops.sigmoid.jacobian(X)
    with (
        no_compute(),
        pytest.raises(
            sj.DenseLimitError, match=r"DaskDiagonal.to_dense\(\): the dense 20000 x 20000"
        ),
    ):
        J.to_dense()
    # the one guard of the library: lowering it refuses a small one too, raising it allows
    small = ops.sigmoid.jacobian(da.zeros((30,), chunks=10))
    with sj.dense_limit(30 * 30 * 8 - 1), no_compute(), pytest.raises(sj.DenseLimitError):
        small.to_dense()
    with sj.dense_limit(30 * 30 * 8):
        np.testing.assert_array_equal(small.to_dense(), np.diag(np.full(30, 0.25)))
    with pytest.raises(ValueError, match=r"shapes do not fit.*\(19999,\)"):
        J @ da.zeros(19_999, chunks=5_000)


def test_diagonal_pickles():
    import pickle

    J = ops.sigmoid.jacobian(da.arange(10.0, chunks=4))
    J2 = pickle.loads(pickle.dumps(J))
    np.testing.assert_array_equal(J2.diagonal().compute(), J.diagonal().compute())


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("chunks", [(1003, 7), (200, 7), (137, 3)])
@pytest.mark.parametrize("name", ["add", "subtract", "multiply", "divide"])
def test_binary(name, chunks, dtype):
    op = getattr(ops, name)
    u, v = _data(dtype)
    g = _data(dtype, seed=3)[0]
    U, V, G = (da.from_array(a, chunks=chunks) for a in (u, v, g))
    V = V.rechunk((100, 7))  # a different chunking of the second argument
    with no_compute():
        value = op(U, V)
        gu, gv = op.vjp(U, V, G)
        Ju, Jv = op.jacobians(U, V)
    assert value.chunks == U.chunks and value.dtype == dtype
    np.testing.assert_array_equal(value.compute(), op(u, v))
    ru, rv = op.vjp(u, v, g)
    np.testing.assert_array_equal(gu.compute(), ru)
    np.testing.assert_array_equal(gv.compute(), rv)
    for J, R in zip((Ju, Jv), op.jacobians(u, v)):
        assert isinstance(J, type(R)) and J.shape == R.shape and J.dtype == R.dtype
        if isinstance(R, sj.Diagonal) and type(R).__name__ == "Diagonal":
            assert isinstance(J.diagonal(), da.Array)
            np.testing.assert_array_equal(J.diagonal().compute(), R.diagonal())
        else:
            assert type(J) is type(R)
            np.testing.assert_array_equal(J.diagonal(), R.diagonal())


def test_elementwise_user_op():
    op = ops.elementwise(lambda t: np.log(1 + t * t), name="log1p_sq")
    x, g = _data(np.float64)
    X, G = da.from_array(x, chunks=(250, 7)), da.from_array(g, chunks=(250, 7))
    with no_compute():
        d, v = op.derivative(X), op.vjp(X, G)
    np.testing.assert_array_equal(d.compute(), op.derivative(x))
    np.testing.assert_array_equal(v.compute(), op.vjp(x, g))


def _loss_data(name, dtype, n=1003):
    rng = np.random.default_rng(5)
    if name == "cross_entropy":
        return rng.integers(0, 5, n), rng.standard_normal((n, 5)).astype(dtype)
    y = (rng.random((n, 3)) > 0.5).astype(dtype)
    if name == "bce":
        return y, rng.uniform(0.01, 0.99, (n, 3)).astype(dtype)
    return y, rng.standard_normal((n, 3)).astype(dtype)


LOSSES = ["mse", "bce", "bce_with_logits", "cross_entropy"]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("chunks", [1003, 200, 137])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none", "elementwise_mean"])
@pytest.mark.parametrize("name", LOSSES)
def test_losses(name, reduction, chunks, dtype):
    op = getattr(ops, name)
    y, z = _loss_data(name, dtype)
    Y = da.from_array(y, chunks=chunks)
    Z = da.from_array(z, chunks=(chunks, 2))  # across the class axis: rechunked to rows
    with no_compute():
        value = op(Y, Z, reduction=reduction)
        grad = op.grad(Y, Z, reduction=reduction)
        per = op.per_sample(Y, Z)
    assert isinstance(value, da.Array) and isinstance(grad, da.Array)
    want = op(y, z, reduction=reduction)
    assert value.dtype == np.asarray(want).dtype == dtype
    assert value.shape == np.shape(want)
    rtol = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(value.compute(), want, rtol=rtol)
    assert grad.shape == z.shape and grad.dtype == dtype
    np.testing.assert_array_equal(grad.compute(), op.grad(y, z, reduction=reduction))
    np.testing.assert_array_equal(per.compute(), op.per_sample(y, z))


def test_loss_of_an_empty_batch_is_nan():
    Y = da.zeros((0,), chunks=1)
    assert np.isnan(ops.mse(Y, Y).compute())
    assert ops.mse(Y, Y, reduction="sum").compute() == 0


def test_per_sample_jacobian_is_a_lazy_diagonal():
    y, z = _loss_data("bce_with_logits", np.float64)
    y, z = y[:, 0], z[:, 0]
    with no_compute():
        J = ops.bce_with_logits.jacobian(
            da.from_array(y, chunks=100), da.from_array(z, chunks=100), reduction="none"
        )
    np.testing.assert_array_equal(
        J.diagonal().compute(), ops.bce_with_logits.jacobian(y, z, "none").diagonal()
    )
    with pytest.raises(TypeError, match="use grad"):
        ops.mse.jacobian(da.from_array(y, chunks=100), da.from_array(z, chunks=100))


def test_bad_input():
    X = da.zeros((10, 3), chunks=5)
    with pytest.raises(ValueError, match=r"x has shape \(10, 3\) but g has shape \(10, 2\)"):
        ops.sigmoid.vjp(X, da.zeros((10, 2)))
    with pytest.raises(TypeError, match="out= is not supported"):
        ops.sigmoid(X, out=np.empty((10, 3)))
    with pytest.raises(ValueError, match="unknown reduction"):
        ops.mse(X, X, reduction="avg")
    with pytest.raises(ValueError, match=r"y has shape \(9, 3\) but y_hat has shape \(10, 3\)"):
        ops.mse(da.zeros((9, 3)), X)
    unknown = X[X[:, 0] > 0]  # nan chunk sizes
    with pytest.raises(ValueError, match=r"unknown \(nan\) chunk sizes"):
        ops.sigmoid(unknown)
    with pytest.raises(ValueError, match=r"unknown \(nan\) chunk sizes"):
        ops.mse(unknown, unknown)


def test_inputs_not_written_and_no_compute_on_numpy_mix():
    x, g = _data(np.float64)
    X = da.from_array(x, chunks=(100, 7))
    before = x.copy()
    with no_compute():
        r = ops.sigmoid.vjp(X, g)  # a NumPy cotangent joins the dask graph
    np.testing.assert_array_equal(r.compute(), ops.sigmoid.vjp(x, g))
    np.testing.assert_array_equal(x, before)


def test_no_compute_guard_works():
    with no_compute(), pytest.raises(ComputeCalled):
        da.ones(3).sum().compute()
