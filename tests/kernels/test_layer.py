"""The fused dense-layer kernels (``structjac.kernels.layer``): bias + activation in place
and keeping z, vjp + bias gradient in place, the outer-product vjp; against NumPy
references in float32 and float64, serial and parallel, NaN and inf, inputs untouched,
the chunked bias-gradient sum against float64 and NumPy, vectorised loops, no float64
promotion in float32 kernels."""

import platform
import tempfile

import numpy as np
import pytest
import scipy.special as sps

from structjac import kernels as K
from structjac.kernels import layer
from .support import run_python as _run

NAMES = sorted(layer.ACTIVATIONS)
PARAMS = {"relu": (0.5,), "leaky_relu": (0.1, 0.25)}  # not the defaults, to see them used


def _value(name, z):
    """NumPy float64 reference of g(z)."""
    if name == "sigmoid":
        return sps.expit(z)
    if name == "tanh":
        return np.tanh(z)
    if name == "relu":
        return np.where(z > 0, z, np.where(np.isnan(z), z, 0.0))
    if name == "leaky_relu":
        return np.where(z < 0, PARAMS[name][0] * z, z)
    if name == "softplus":
        return np.logaddexp(0.0, z)
    if name == "silu":
        return np.where(z == -np.inf, 0.0, z * sps.expit(z))
    return z


def _grad(name, s):
    """NumPy float64 reference of g' from s (the output for sigmoid/tanh, else z)."""
    if name == "sigmoid":
        return s * (1 - s)
    if name == "tanh":
        return (1 + s) * (1 - s)
    if name in ("relu", "leaky_relu"):
        neg = 0.0 if name == "relu" else PARAMS[name][0]
        at0 = PARAMS[name][-1]
        return np.where(np.isnan(s), np.nan, np.where(s > 0, 1.0, np.where(s < 0, neg, at0)))
    if name == "softplus":
        return sps.expit(s)
    if name == "silu":
        e = sps.expit(s)
        with np.errstate(invalid="ignore"):
            return np.where(np.isinf(s), e, e * (1 + s * sps.expit(-s)))
    return np.ones_like(s)


RTOL = {np.float32: 2e-6, np.float64: 1e-14}


def _data(dtype, N=700, m=19, seed=0, specials=True):
    rng = np.random.default_rng(seed)
    Z = (3 * rng.standard_normal((N, m))).astype(dtype)
    b = rng.standard_normal(m).astype(dtype)
    if specials:
        Z[0, :6] = [np.nan, np.inf, -np.inf, 0.0, -0.0, 40.0]
        Z[1, :3] = -b[:3]  # z = Z + b = 0 exactly
    return Z, b


@pytest.fixture(params=[False, True], ids=["serial", "parallel"])
def parallel(request):
    old = K.set_parallel_threshold(0 if request.param else 1 << 62)
    yield request.param
    K.set_parallel_threshold(old)


def _close(got, ref, dtype, atol=1e-30):
    ref = ref.astype(dtype)  # compare in the result's precision
    np.testing.assert_allclose(got, ref, rtol=RTOL[dtype], atol=RTOL[dtype] * atol)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", NAMES)
def test_bias_activation_in_place_and_keeping_z(name, dtype, parallel):
    Z0, b = _data(dtype)
    b0 = b.copy()
    z = Z0.astype(np.float64) + b.astype(np.float64)  # exact in float64
    Z = Z0.copy()
    got = layer.bias_activation(Z, b, name, PARAMS.get(name, ()))
    assert got is Z and Z.dtype == dtype
    with np.errstate(invalid="ignore"):
        _close(Z, _value(name, (Z0 + b).astype(np.float64)), dtype)
    # keep z: Z <- Z + b (as NumPy adds), out = g(Z + b), the same bits as in place
    Zk = Z0.copy()
    A = np.full_like(Zk, -7.0)
    assert layer.bias_activation(Zk, b, name, PARAMS.get(name, ()), out=A) is A
    np.testing.assert_array_equal(Zk, Z0 + b)
    np.testing.assert_array_equal(A, Z)
    np.testing.assert_array_equal(b, b0)  # b never written
    assert np.isnan(Z[0, 0])  # NaN in, NaN out
    del z


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", NAMES)
def test_vjp_bias_grad_in_place(name, dtype, parallel):
    rng = np.random.default_rng(1)
    Z, b = _data(dtype, seed=2)
    S = Z + b
    if name in ("sigmoid", "tanh"):  # g' from the output
        S = layer.bias_activation(S.copy(), np.zeros_like(b), name)
    S0 = S.copy()
    G0 = rng.standard_normal(S.shape).astype(dtype)
    G = G0.copy()
    gb = layer.activation_vjp_bias_grad(G, S, name, PARAMS.get(name, ()))
    ref = G0.astype(np.float64) * _grad(name, S.astype(np.float64))
    # silu' = s (1 + z sigma(-z)) has a root (z = -1.278): there the error is relative
    # to the terms, about |G|
    _close(G, ref, dtype, atol=4 * np.abs(G0).max() if name == "silu" else 1e-30)
    np.testing.assert_array_equal(S, S0)  # S never written
    assert gb.dtype == dtype and gb.shape == (S.shape[1],)
    # the sum of what was written, in float64, rounded once: within a few ulp + the
    # chunk sums' rounding (256 terms in the dtype)
    with np.errstate(invalid="ignore"):
        exact = np.sum(G.astype(np.float64), axis=0)
        scale = np.sum(np.abs(G.astype(np.float64)), axis=0)
    eps = np.finfo(dtype).eps
    ok = np.isfinite(exact)
    assert np.all(np.abs(gb[ok] - exact[ok]) <= 4 * eps * np.abs(exact[ok]) + 64 * eps * scale[ok])
    np.testing.assert_array_equal(np.isnan(gb), np.isnan(exact))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", NAMES)
def test_outer_vjp_bias_grad_is_outer_product_then_vjp(name, dtype, parallel):
    rng = np.random.default_rng(3)
    Z, b = _data(dtype, seed=4)
    S = Z + b
    if name in ("sigmoid", "tanh"):
        S = layer.bias_activation(S.copy(), np.zeros_like(b), name)
    g = rng.standard_normal((S.shape[0], 1)).astype(dtype)
    w = rng.standard_normal((1, S.shape[1])).astype(dtype)
    g0, w0, S0 = g.copy(), w.copy(), S.copy()
    out = np.empty_like(S)
    got, gb = layer.outer_activation_vjp_bias_grad(g, w, S, name, PARAMS.get(name, ()), out=out)
    assert got is out
    G = g * w
    gb_ref = layer.activation_vjp_bias_grad(G, S, name, PARAMS.get(name, ()))
    np.testing.assert_array_equal(out, G)  # the same numbers, bit for bit
    np.testing.assert_array_equal(gb, gb_ref)
    for a, a0 in ((g, g0), (w, w0), (S, S0)):
        np.testing.assert_array_equal(a, a0)
    got1, gb1 = layer.outer_activation_vjp_bias_grad(
        g.ravel(), w.ravel(), S, name, PARAMS.get(name, ())
    )
    np.testing.assert_array_equal(got1, out)


def _row_squares_close(rowsq, M):
    """``rowsq`` against the float64 row sums of squares of what the kernel wrote."""
    with np.errstate(invalid="ignore", over="ignore"):
        ref = np.sum(M.astype(np.float64) ** 2, axis=1)
    ok = np.isfinite(ref)
    eps = np.finfo(M.dtype).eps
    assert np.all(np.abs(rowsq[ok] - ref[ok]) <= 8 * M.shape[1] * eps * ref[ok] + 1e-300)
    np.testing.assert_array_equal(np.isnan(rowsq), np.isnan(ref))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", NAMES)
def test_row_squares_in_the_same_pass(name, dtype, parallel):
    """``rowsq=``: each row's sum of squares of what the pass wrote (the ghost norms'
    factors), and the same values written as without it, bit for bit."""
    rng = np.random.default_rng(5)
    Z0, b = _data(dtype, seed=6)
    N = Z0.shape[0]
    p = PARAMS.get(name, ())
    plain = layer.bias_activation(Z0.copy(), b, name, p)
    for out in (None, np.empty_like(Z0)):
        Z = Z0.copy()
        rowsq = np.full(N, -1.0, dtype)
        A = layer.bias_activation(Z, b, name, p, out=out, rowsq=rowsq)
        np.testing.assert_array_equal(A, plain)
        _row_squares_close(rowsq, A)
    S = plain if name in ("sigmoid", "tanh") else Z0 + b
    G0 = rng.standard_normal(S.shape).astype(dtype)
    G1, G2 = G0.copy(), G0.copy()
    gb1 = layer.activation_vjp_bias_grad(G1, S, name, p)
    rowsq = np.full(N, -1.0, dtype)
    gb2 = layer.activation_vjp_bias_grad(G2, S, name, p, rowsq=rowsq)
    np.testing.assert_array_equal(G1, G2)
    np.testing.assert_array_equal(gb1, gb2)
    _row_squares_close(rowsq, G2)
    g = rng.standard_normal(N).astype(dtype)
    w = rng.standard_normal(S.shape[1]).astype(dtype)
    out1, gb1 = layer.outer_activation_vjp_bias_grad(g, w, S, name, p)
    rowsq = np.full(N, -1.0, dtype)
    out2, gb2 = layer.outer_activation_vjp_bias_grad(g, w, S, name, p, rowsq=rowsq)
    np.testing.assert_array_equal(out1, out2)
    np.testing.assert_array_equal(gb1, gb2)
    _row_squares_close(rowsq, out2)


def test_row_squares_bad_input():
    Z, b = _data(np.float64, N=5, m=3, specials=False)
    for bad in (np.empty(4), np.empty(5, np.float32), np.empty((5, 1)), [0.0] * 5):
        with pytest.raises(
            ValueError,
            match=r"rowsq must be a writeable C-contiguous array "
            r"of shape \(5,\) and dtype float64, got",
        ):
            layer.bias_activation(Z.copy(), b, "relu", rowsq=bad)
    ro = np.empty(5)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="rowsq must be a writeable"):
        layer.activation_vjp_bias_grad(Z.copy(), Z, "relu", rowsq=ro)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_serial_and_parallel_give_the_same_bits(dtype):
    Z, b = _data(dtype, N=3001, m=64, specials=False)
    results = []
    for threshold in (1 << 62, 0):
        old = K.set_parallel_threshold(threshold)
        try:
            A = layer.bias_activation(Z.copy(), b, "sigmoid")
            G = np.cos(Z)
            gb = layer.activation_vjp_bias_grad(G, A, "sigmoid")
            results.append((A, G, gb))
        finally:
            K.set_parallel_threshold(old)
    for x, y in zip(*results):
        np.testing.assert_array_equal(x, y)


def test_float32_bias_gradient_is_as_accurate_as_a_float64_sum():
    """262,144 rows (the issue's batch): the chunked float32 sum against the exact
    (float64) sum of the same float32 numbers, and against NumPy's float32 G.sum(axis=0)."""
    rng = np.random.default_rng(5)
    N, m = 262_144, 64
    G = (rng.standard_normal((N, m)) * 1e-3 + 2e-4).astype(np.float32)
    S = np.full((N, m), 0.0, np.float32)  # tanh'(0) = 1: G unchanged
    exact = np.sum(G.astype(np.float64), axis=0)
    npsum = G.sum(axis=0)
    gb = layer.activation_vjp_bias_grad(G.copy(), S, "tanh")
    err_ours = np.abs(gb.astype(np.float64) - exact) / np.abs(exact)
    err_numpy = np.abs(npsum.astype(np.float64) - exact) / np.abs(exact)
    assert err_ours.max() <= 4 * np.finfo(np.float32).eps  # rounded once, nearly
    assert err_ours.max() <= err_numpy.max()


def test_defaults_and_errors():
    Z = np.array([[0.0, -1.0, 2.0]])
    G = np.ones_like(Z)
    layer.activation_vjp_bias_grad(G, Z, "relu")  # relu'(0) = 1 by default
    np.testing.assert_array_equal(G, [[1.0, 0.0, 1.0]])
    A = layer.bias_activation(Z.copy(), np.zeros(3), "leaky_relu")
    np.testing.assert_array_equal(A, [[0.0, -0.01, 2.0]])  # slope 0.01 by default
    with pytest.raises(ValueError, match="unknown activation"):
        layer.bias_activation(Z.copy(), np.zeros(3), "gelu")
    with pytest.raises(ValueError, match="C-contiguous"):
        layer.bias_activation(np.ones((3, 4)).T, np.zeros(3), "relu")
    with pytest.raises(ValueError, match="float32 or float64"):
        layer.bias_activation(np.ones((2, 3), np.int64), np.zeros(3), "relu")
    with pytest.raises(TypeError):
        layer.bias_activation([[1.0]], [0.0], "relu")
    with pytest.raises(ValueError, match="shape"):
        layer.bias_activation(np.ones((2, 3)), np.zeros(4), "relu")
    with pytest.raises(ValueError, match="read-only"):
        R = np.ones((2, 3))
        R.flags.writeable = False
        layer.bias_activation(R, np.zeros(3), "relu")
    with pytest.raises(ValueError, match="shares memory"):
        Zs = np.ones((4, 3))
        layer.bias_activation(Zs[:2], np.zeros(3), "relu", out=Zs[1:3])
    with pytest.raises(ValueError, match="at most"):
        layer.bias_activation(np.ones((2, 3)), np.zeros(3), "relu", (1.0, 2.0))
    with pytest.raises(ValueError, match="shape"):
        layer.activation_vjp_bias_grad(np.ones((2, 3)), np.ones((3, 2)), "sigmoid")
    # S that is G: copied first (the result is the same as with a separate S)
    G = np.full((3, 2), 0.5)
    gb = layer.activation_vjp_bias_grad(G, G, "sigmoid")
    np.testing.assert_array_equal(G, np.full((3, 2), 0.125))
    np.testing.assert_array_equal(gb, [0.375, 0.375])
    # identity: S is not read
    G = np.arange(6.0).reshape(3, 2)
    np.testing.assert_array_equal(layer.activation_vjp_bias_grad(G, None, "identity"), [6.0, 9.0])


def test_empty_batch():
    Z = np.empty((0, 4), np.float32)
    layer.bias_activation(Z, np.zeros(4, np.float32), "tanh")
    gb = layer.activation_vjp_bias_grad(Z, Z.copy(), "tanh")
    assert gb.shape == (4,) and gb.dtype == np.float32 and not gb.any()


@pytest.mark.skipif(
    platform.machine().lower() not in ("x86_64", "amd64"), reason="checks x86 packed instructions"
)
def test_layer_kernels_vectorise_and_stay_float32():
    """Fresh compile: every layer kernel (serial and parallel) for float32 has no
    float -> double conversion; every serial float32 loop (but softplus' value, which
    calls libm's log1p) uses packed registers (in place, one array: no failed alias
    check)."""
    code = """
        import re
        import numpy as np
        from structjac import kernels as K
        from structjac.kernels import layer
        for threshold in (1 << 62, 0):
            K.set_parallel_threshold(threshold)
            for dt in (np.float32, np.float64):
                Z = np.linspace(-3, 3, 64 * 16).astype(dt).reshape(64, 16)
                b = np.zeros(16, dt)
                for name in layer.ACTIVATIONS:
                    A = layer.bias_activation(Z.copy(), b, name)
                    layer.bias_activation(Z.copy(), b, name, out=A)
                    layer.activation_vjp_bias_grad(Z.copy(), A, name)
                    layer.outer_activation_vjp_bias_grad(Z[:, 0], b, A, name)
        bad, packed = [], []
        for name, kernels in layer._KERNELS.items():
            for pair in kernels:
                for disp in pair:
                    for sig in disp.signatures:
                        llvm = disp.inspect_llvm(sig)
                        if "float32" in str(sig) and re.search(r"fpext float", llvm):
                            bad.append(disp.__name__)
                        softplus_value = name == "softplus" and "bias_act" in disp.__name__
                        if (disp.__name__.endswith("_serial") and "float32" in str(sig)
                                and not softplus_value):      # log1p: a libm call
                            asm = disp.inspect_asm(sig)
                            n = len(re.findall(r"%ymm|%zmm", asm))
                            packed.append(f"{disp.__name__}:{n}")
        print(sorted(set(bad)), " ".join(packed))
    """
    with tempfile.TemporaryDirectory() as cache:
        out = _run(code, {"NUMBA_CACHE_DIR": cache})
    bad, _, packed = out.partition("] ")
    assert bad == "[", out
    assert len(packed.split()) == 4 * len(layer.ACTIVATIONS) - 2, out
    for entry in packed.split():
        name, n = entry.rsplit(":", 1)
        assert int(n) >= 8, (entry, out)
