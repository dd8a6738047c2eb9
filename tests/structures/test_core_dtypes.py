"""The one dtype policy (structjac._dtypes): structures, rules and products agree."""

from __future__ import annotations

import re

import numpy as np
import pytest
import scipy.sparse as sp

import structjac as sj
from structjac._dtypes import as_float_dtype, result_dtype


@pytest.mark.parametrize(
    "given, computed",
    [
        (np.float16, np.float32),
        (np.float32, np.float32),
        (np.float64, np.float64),
        (np.complex64, np.complex64),
        (np.complex128, np.complex128),
        (np.int8, np.float64),
        (np.int64, np.float64),
        (np.uint16, np.float64),
        (np.bool_, np.float64),
    ],
    ids=lambda d: np.dtype(d).name,
)
def test_computing_dtype(given, computed):
    assert as_float_dtype(given) == np.dtype(computed)


@pytest.mark.parametrize("bad", [object, "U3", "M8[s]", "S2"], ids=str)
def test_non_numbers_are_rejected_naming_the_dtype(bad):
    with pytest.raises(TypeError, match=re.escape(str(np.dtype(bad)))):
        as_float_dtype(bad)


@pytest.mark.parametrize(
    "a, b, out",
    [
        (np.float32, np.float32, np.float32),
        (np.float32, np.float64, np.float64),
        (np.float16, np.float32, np.float32),
        (np.float16, np.float64, np.float64),
        (np.float32, np.complex64, np.complex64),
        (np.float64, np.complex64, np.complex128),
        (np.int32, np.float32, np.float64),
    ],
    ids=lambda d: np.dtype(d).name,
)
def test_result_dtype(a, b, out):
    assert result_dtype(a, b) == np.dtype(out)
    assert result_dtype(b, a) == np.dtype(out)


def _float16_structures():
    h = np.float16
    return {
        "Diagonal": (sj.Diagonal(np.array([1.0, 2.0, 4.0], h)), np.diag([1.0, 2.0, 4.0])),
        "Dense": (sj.Dense(np.arange(9.0, dtype=h).reshape(3, 3)), np.arange(9.0).reshape(3, 3)),
        "BlockRow": (
            sj.BlockRow(1, np.array([1.0, 2.0, 3.0], h), 3),
            np.outer([0, 1, 0], [1, 2, 3]),
        ),
        "Zero": (sj.Zero((3, 3), dtype=h), np.zeros((3, 3))),
    }


@pytest.mark.parametrize("kind", sorted(_float16_structures()), ids=str)
def test_float16_structures_compute_in_float32(kind):
    J, dense = _float16_structures()[kind]
    assert J.dtype == np.float32
    out = J.to_dense()
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, dense.astype(np.float32))
    y = J @ np.ones(3, np.float16)
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, dense.sum(axis=1).astype(np.float32))


def test_float16_vector_with_float64_structure_is_float64():
    J = sj.Diagonal(np.array([1.0, 3.0]))
    y = J @ np.array([0.5, 0.25], np.float16)
    assert y.dtype == np.float64
    np.testing.assert_array_equal(y, [0.5, 0.75])


@pytest.mark.parametrize(
    "a", [np.float32, np.float64, np.complex128], ids=lambda d: np.dtype(d).name
)
@pytest.mark.parametrize(
    "b", [np.float32, np.float64, np.complex128], ids=lambda d: np.dtype(d).name
)
def test_rules_and_fallback_give_the_result_dtype(a, b):
    D = sj.Diagonal(np.array([1.0, 2.0], a))
    R = sj.BlockRow(0, np.array([3.0, 4.0], b), 2)
    S = sj.Sparse(sp.csr_array(np.array([[0.0, 1.0], [1.0, 0.0]], b)))
    expected = np.result_type(a, b)
    assert (D @ R).dtype == expected
    assert (D + S).dtype == expected
    assert (D @ S).dtype == expected


_SCALAR_DTYPES = [np.float32, np.float64, np.complex64, np.complex128]


@pytest.mark.parametrize("a", _SCALAR_DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("b", _SCALAR_DTYPES, ids=lambda d: np.dtype(d).name)
def test_scaled_identity_rules_give_the_result_dtype(a, b):
    # the sum, product and scaling of scaled identities are built without the checked
    # constructor; their dtype and value must still be those of the dense matrices
    A, B = sj.ScaledIdentity(3, a(0.5), dtype=a), sj.ScaledIdentity(3, b(-2.0), dtype=b)
    expected = np.result_type(a, b)
    for result, dense in (
        (A + B, A.to_dense() + B.to_dense()),
        (A @ B, A.to_dense() @ B.to_dense()),
    ):
        assert type(result) is sj.ScaledIdentity
        assert result.dtype == expected and result.scalar.dtype == expected
        assert result.values.dtype == expected and not result.values.flags.writeable
        np.testing.assert_array_equal(result.to_dense(), dense)
