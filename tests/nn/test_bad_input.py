"""Issue 13's nn/layers defects and the dtype policy (issue 14.5): each test fails on the
code before the fix (wrapped indices, ZeroDivisionError, silent truncation, scrambled y...)."""

import numpy as np
import pytest

from structjac import nn
from structjac.layers import DenseLayer, dense_jacobians, float_dtype, neuron_jacobians


@pytest.fixture
def net_problem():
    rng = np.random.default_rng(0)
    W = rng.standard_normal((2, 3))
    b = rng.standard_normal(2)
    X = rng.standard_normal((5, 3))
    y = (rng.random((5, 2)) > 0.5).astype(float)
    return [(W, b)], X, y


# ------------------------------------------------------------------ layers
@pytest.mark.parametrize("k", [5, 6, -6, 100])
def test_dz_dx_sample_out_of_range_names_k_and_N(k):
    J = dense_jacobians(np.ones((2, 3)), np.zeros(2), np.ones((5, 3)))
    with pytest.raises(IndexError, match=rf"sample {k} .*N = 5"):
        J.dz_dx_sample(k)


def test_dz_dx_sample_negative_in_range_counts_from_the_end_like_dz_dw():
    rng = np.random.default_rng(1)
    W = rng.standard_normal((2, 3))
    J = dense_jacobians(W, np.zeros(2), rng.standard_normal((5, 3)))
    np.testing.assert_array_equal(J.dz_dx_sample(-1).to_dense(), J.dz_dx_sample(4).to_dense())
    np.testing.assert_array_equal(J.dz_dw(-1).to_dense(), J.dz_dw(1).to_dense())


def test_neuron_dz_dx_out_of_range():
    J = neuron_jacobians(np.ones(3), 0.0, np.ones((4, 3)))
    with pytest.raises(IndexError, match=r"sample 4 .*N = 4"):
        J.dz_dx(4)


def test_batch_of_zero_samples():
    J = dense_jacobians(np.ones((2, 3)), np.zeros(2), np.ones((0, 3)))
    assert J.dz_dW.shape == (0, 6) and J.a.shape == (0, 2)
    with pytest.raises(IndexError, match=r"sample 0 .*N = 0"):  # was ZeroDivisionError
        J.dz_dx_sample(0)


def test_dense_layer_forward_names_both_shapes():
    layer = DenseLayer(np.ones((2, 3)), np.zeros(2))
    with pytest.raises(ValueError, match=r"\(4, 4\).*\(2, 3\)"):
        layer.forward(np.ones((4, 4)))
    with pytest.raises(ValueError, match=r"\(2,\).*\(2, 3\)"):
        layer.forward(np.ones(2))


@pytest.mark.parametrize("bad", [np.ones((2, 3)) + 1j, np.array([["1", "2", "3"]] * 2)])
def test_layers_refuse_complex_and_strings(bad):
    with pytest.raises(TypeError, match=str(bad.dtype)):
        dense_jacobians(bad, np.zeros(2), np.ones(3))
    with pytest.raises(TypeError, match=str(bad.dtype)):
        dense_jacobians(np.ones((2, 3)), np.zeros(2), bad)
    with pytest.raises(TypeError, match=str(bad.dtype)):
        DenseLayer(np.ones((3, 3)), np.zeros(3)).forward(bad)
    with pytest.raises(TypeError, match=str(bad.dtype)):
        neuron_jacobians(np.ones(3), 0.0, bad)


def test_float_dtype_policy():
    assert float_dtype(np.float16) == np.float32
    assert float_dtype(np.float16, np.float32) == np.float32
    assert float_dtype(np.float32, np.float64) == np.float64
    assert float_dtype(np.int64) == np.float64
    assert float_dtype(np.bool_) == np.float64


@pytest.mark.parametrize("act", ["sigmoid", "tanh", "relu", None])
def test_layers_float16_becomes_float32_everywhere(act):
    rng = np.random.default_rng(2)
    W = rng.standard_normal((2, 3)).astype(np.float16)
    X = rng.standard_normal((4, 3)).astype(np.float16)
    J = dense_jacobians(W, np.zeros(2, np.float16), X, act)  # was z float16, a float64
    assert J.z.dtype == J.a.dtype == np.float32
    assert all(Jac.dtype == np.float32 for _, Jac in J.items())
    assert DenseLayer(W, None, act).forward(X).dtype == np.float32
    N = neuron_jacobians(W[0], 0.0, X, act)
    assert N.a.dtype == np.float32 and N.da_dw.dtype == np.float32


# --------------------------------------------------------------------- nn
@pytest.mark.parametrize(
    "sizes,exc",
    [
        ([3, 2.5, 1], TypeError),
        ([3, "2", 1], TypeError),
        ([3, True, 1], TypeError),
        ([3, 0, 1], ValueError),
        ([3, -2, 1], ValueError),
    ],
)
def test_mlp_sizes_must_be_positive_integers(sizes, exc):
    with pytest.raises(exc, match=r"sizes\[1\]"):
        nn.MLP(sizes)


def test_mlp_sizes_numpy_integers_are_fine():
    assert nn.MLP(np.array([3, 2, 1])).sizes == [3, 2, 1]


def test_mlp_dtype_must_be_a_float_dtype():
    with pytest.raises(TypeError, match="float16"):
        nn.MLP([3, 1], dtype=np.float16)


def test_y_shape_checked_exactly(net_problem):
    params, X, y = net_problem
    with pytest.raises(ValueError, match=r"\(2, 5\).*\(5, 2\)"):  # was accepted, scrambled
        nn.value_and_grad(params, X, y.T, ["sigmoid"])
    with pytest.raises(ValueError, match=r"\(10,\)"):
        nn.value_and_grad(params, X, y.ravel(), ["sigmoid"])
    one = [(params[0][0][:1], params[0][1][:1])]
    a = nn.value_and_grad(one, X, y[:, 0], ["sigmoid"])  # (N,) for m_L = 1
    b = nn.value_and_grad(one, X, y[:, :1], ["sigmoid"])  # (N, 1)
    assert a.loss == b.loss
    with pytest.raises(ValueError, match=r"\(1, 5\)"):
        nn.value_and_grad(one, X, y[:, :1].T, ["sigmoid"])


def test_empty_params(net_problem):
    _, X, y = net_problem
    with pytest.raises(ValueError, match="params is empty"):
        nn.value_and_grad([], X, y[:, 0], [])
    with pytest.raises(ValueError, match="params is empty"):
        nn.forward([], X, [])


def test_batch_of_zero_samples_in_nn(net_problem):
    params, X, y = net_problem
    with pytest.raises(ValueError, match="0 samples"):
        nn.value_and_grad(params, X[:0], y[:0], ["sigmoid"])


@pytest.mark.parametrize("where", ["X", "W", "b", "y"])
@pytest.mark.parametrize("kind", ["complex", "str"])
def test_complex_and_string_arrays_are_type_errors(net_problem, where, kind):
    params, X, y = net_problem
    args = {"X": X, "W": params[0][0], "b": params[0][1], "y": y}
    args[where] = args[where] + 1j if kind == "complex" else args[where].astype(str)
    with pytest.raises(TypeError, match=rf"{where} has dtype (complex128|<U)"):
        nn.value_and_grad([(args["W"], args["b"])], args["X"], args["y"], ["sigmoid"], "mse")


def test_inputs_are_not_written_to(net_problem):
    params, X, y = net_problem
    copies = [a.copy() for a in (params[0][0], params[0][1], X, y)]
    for method in ("fused", "structures"):
        nn.value_and_grad(params, X, y, ["tanh"], "mse", method=method)
    for a, c in zip((params[0][0], params[0][1], X, y), copies):
        np.testing.assert_array_equal(a, c)


def test_reductions_the_same_as_the_losses(net_problem):
    params, X, y = net_problem
    from structjac import ops

    for red in ("mean", "sum", "elementwise_mean"):
        res = nn.value_and_grad(params, X, y, ["sigmoid"], "mse", reduction=red, per_sample=True)
        out = nn.forward(params, X, ["sigmoid"])
        assert res.loss == pytest.approx(ops.mse(y, out, reduction=red), rel=1e-15)
        ref = nn.value_and_grad(
            params, X, y, ["sigmoid"], "mse", reduction=red, method="structures"
        )
        np.testing.assert_allclose(res.grads[0][0], ref.grads[0][0], rtol=1e-13)
        # the per-sample gradients are those of J_0^(k), whatever the reduction
        mean = nn.value_and_grad(params, X, y, ["sigmoid"], "mse", per_sample=True)
        np.testing.assert_allclose(res.per_sample[0][0], mean.per_sample[0][0], rtol=1e-13)
    s = nn.value_and_grad(params, X, y, ["sigmoid"], "mse", reduction="sum").grads[0][0]
    e = nn.value_and_grad(params, X, y, ["sigmoid"], "mse", reduction="elementwise_mean").grads[0][
        0
    ]
    np.testing.assert_allclose(e, s / y.size, rtol=1e-13)
    with pytest.raises(ValueError, match="'none' gives a vector"):
        nn.value_and_grad(params, X, y, ["sigmoid"], "mse", reduction="none")


def test_options_validated(net_problem):
    params, X, y = net_problem
    with pytest.raises(TypeError, match="workspace"):
        nn.value_and_grad(params, X, y, ["sigmoid"], workspace={})


def test_float32_network_given_float64_data_stays_float32(net_problem):
    params, X, y = net_problem
    net = nn.MLP([3, 2], ["sigmoid"], loss="bce", dtype=np.float32)
    p32 = net.init(0)
    loss, grads = net.value_and_grad(p32, X, y)  # X, y float64
    assert np.asarray(loss).dtype == np.float32
    assert all(gW.dtype == gb.dtype == np.float32 for gW, gb in grads)
    assert net.forward(p32, X).dtype == np.float32
    ref = net.value_and_grad(p32, X.astype(np.float32), y.astype(np.float32))
    np.testing.assert_array_equal(grads[0][0], ref.grads[0][0])
    # float64 parameters into a float32 network: float32 too
    _, g = net.value_and_grad(params, X, y)
    assert g[0][0].dtype == np.float32


def test_float16_data_computes_in_float32(net_problem):
    params, X, y = net_problem
    p16 = [(W.astype(np.float16), b.astype(np.float16)) for W, b in params]
    res = nn.value_and_grad(p16, X.astype(np.float16), y.astype(np.float16), ["tanh"], "mse")
    assert np.asarray(res.loss).dtype == np.float32
    assert all(gW.dtype == gb.dtype == np.float32 for gW, gb in res.grads)
    assert nn.forward(p16, X.astype(np.float16), ["tanh"]).dtype == np.float32
