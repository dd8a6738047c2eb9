"""Bad input to the transforms: each a clear error naming what is wrong; inputs never written."""

from __future__ import annotations

import numpy as np
import pytest

import structjac as sj

X = np.linspace(0.1, 1.0, 6)

UNTRACEABLE = {
    "cumsum": (lambda x: np.cumsum(x), "numpy.cumsum"),
    "sort": (lambda x: np.sort(x), "numpy.sort"),
    "clip": (lambda x: np.clip(x, 0, 1), "numpy.clip"),
    "arctan_ufunc": (lambda x: np.arctan(x), "numpy.arctan"),
    "einsum": (lambda x: np.einsum("i,i->", x, x), "numpy.einsum"),
    "ufunc_reduce": (lambda x: np.add.reduce(x), "numpy.add.reduce"),
    "ufunc_accumulate": (lambda x: np.multiply.accumulate(x), "numpy.multiply.accumulate"),
    "ufunc_outer": (lambda x: np.multiply.outer(x, x), "numpy.multiply.outer"),
    "ufunc_out": (lambda x: np.exp(x, out=np.empty(6)), "out="),
    "ufunc_where_kw": (lambda x: np.exp(x, where=x > 0.5), "where"),
    "sum_out": (lambda x: np.sum(x, out=np.empty(())), "out="),
    "sum_dtype": (lambda x: np.sum(x, dtype=np.float32), "dtype"),
    "asarray": (lambda x: np.asarray(x) * 2, "cannot be converted"),
    "float": (lambda x: float(x[0]) * x, "float()"),
    "bool_control_flow": (lambda x: x if x[0] else -x, "bool()"),
    "inplace_add": (lambda x: _inplace_add(x), "in-place +="),
    "setitem": (lambda x: _setitem(x), "item assignment"),
    "assign_into_ndarray": (lambda x: _assign_into(x), "cannot be converted"),
    "traced_index": (lambda x: x[x], "traced index"),
    "reshape_fortran": (lambda x: x.reshape((2, 3), order="F"), "order='F'"),
    "matmul_3d": (lambda x: np.ones((2, 2, 3)) @ x.reshape(3, 2), "shape (2, 2, 3)"),
    "op_jacobian_of_traced": (lambda x: sj.sigmoid.jacobian(x), "only calling the op is traced"),
    "loss_traced_targets": (lambda x: sj.mse(x, np.ones(6)), "targets y are traced"),
    "where_one_argument": (lambda x: np.where(x), "numpy.where(condition)"),
}


def _inplace_add(x):
    x += 1
    return x


def _setitem(x):
    x[0] = 1.0
    return x


def _assign_into(x):
    out = np.zeros(6)
    out[:] = x
    return out


@pytest.mark.parametrize("name", UNTRACEABLE, ids=list(UNTRACEABLE))
@pytest.mark.parametrize("transform", ["jacobian", "grad"])
def test_untraceable_code_raises_type_error_naming_it(name, transform):
    f, words = UNTRACEABLE[name]
    x = X.copy()
    g = f if transform == "jacobian" else (lambda x: np.sum(f(x)))
    fn = sj.jacobian(g) if transform == "jacobian" else sj.grad(g)
    with pytest.raises(TypeError) as info:
        fn(x)
    assert words in str(info.value)
    np.testing.assert_array_equal(x, X)


@pytest.mark.parametrize("shape", [(3,), (2, 2)], ids=["vector", "matrix"])
def test_grad_of_non_scalar_names_the_shape(shape):
    with pytest.raises(
        TypeError, match=r"scalar.*shape \(" + ", ".join(map(str, shape)).replace("(", "")
    ):
        sj.grad(lambda x: np.tanh(x))(np.ones(shape))


@pytest.mark.parametrize(
    "transform",
    [sj.jacobian, sj.grad, sj.value_and_grad],
    ids=["jacobian", "grad", "value_and_grad"],
)
@pytest.mark.parametrize("argnums", [2, -3, (0, 5)], ids=["2", "minus3", "tuple_with_5"])
def test_argnums_out_of_range(transform, argnums):
    with pytest.raises(ValueError, match="argnums .* out of range .* 2 positional arguments"):
        transform(lambda x, y: np.sum(x * y), argnums=argnums)(np.ones(2), np.ones(2))


def test_argnums_not_an_int():
    with pytest.raises(TypeError, match="argnums must be an int"):
        sj.jacobian(np.tanh, argnums=0.5)(np.ones(2))


def test_argnums_repeated():
    with pytest.raises(ValueError, match="repeats"):
        sj.grad(lambda x: np.sum(x), argnums=(0, 0))(np.ones(2))


@pytest.mark.parametrize(
    "dtype",
    [np.int64, np.int32, np.uint8, np.bool_, np.complex128],
    ids=["int64", "int32", "uint8", "bool", "complex128"],
)
@pytest.mark.parametrize("transform", [sj.jacobian, sj.grad], ids=["jacobian", "grad"])
def test_non_float_inputs_name_the_dtype(dtype, transform):
    x = np.ones(3, dtype=dtype)
    with pytest.raises(TypeError, match=f"argument 0 has dtype {np.dtype(dtype)}"):
        transform(lambda x: np.sum(np.tanh(x)))(x)


def test_integer_python_scalar_input():
    with pytest.raises(TypeError, match="argument 0 has dtype int"):
        sj.grad(lambda x: x * x)(3)


def test_float16_input():
    with pytest.raises(TypeError, match="float16"):
        sj.jacobian(np.tanh)(np.ones(2, dtype=np.float16))


def test_constant_integer_arguments_not_differentiated_are_fine():
    J = sj.jacobian(lambda x, k: x * k, argnums=0)(np.ones(3), np.arange(3))
    np.testing.assert_array_equal(J.diagonal(), [0.0, 1.0, 2.0])


def test_tuple_output_is_refused():
    with pytest.raises(TypeError, match="returned a tuple"):
        sj.jacobian(lambda x: (x, x))(np.ones(2))


def test_no_arguments():
    with pytest.raises(TypeError, match="without arguments"):
        sj.jacobian(lambda: 1.0)()


def test_vjp_cotangent_shape_and_jvp_tangent_shape():
    _, vjp_fn = sj.vjp(np.tanh, np.ones(3))
    with pytest.raises(
        ValueError, match=r"cotangent has shape \(2,\) but the value has shape \(3,\)"
    ):
        vjp_fn(np.ones(2))
    with pytest.raises(
        ValueError, match=r"tangent 0 has shape \(2,\) but primal 0 has shape \(3,\)"
    ):
        sj.jvp(np.tanh, (np.ones(3),), (np.ones(2),))
    with pytest.raises(ValueError, match="1 primals but 2 tangents"):
        sj.jvp(np.tanh, (np.ones(3),), (np.ones(3), np.ones(3)))


def test_nested_transforms_are_refused():
    with pytest.raises(TypeError, match="already traced|nested"):
        sj.jacobian(lambda x: sj.grad(lambda y: np.sum(y * x))(x))(np.ones(2))


def test_traced_values_cannot_be_made_by_hand():
    with pytest.raises(TypeError, match="made by structjac's transforms"):
        sj.transforms.Traced(np.ones(2))


def test_read_only_inputs_are_accepted_and_unchanged():
    x = np.linspace(-1, 1, 5)
    x.flags.writeable = False
    J = sj.jacobian(lambda x: np.tanh(x) * x)(x)
    assert type(J) is sj.Diagonal
    g = sj.grad(lambda x: np.sum(np.tanh(x)))(x)
    assert g.flags.writeable
    np.testing.assert_array_equal(x, np.linspace(-1, 1, 5))
