"""The rule table's unchecked constructors (``_wrap``) build what the checked ones build.

Rules build their results from arrays and structures they have just formed, so they skip
the public constructors' validation. Each ``_wrap`` must give a structure equal to the
checked constructor's in type, shape, dtype and values, keep its arrays read-only, and
never freeze memory that belongs to someone else.
"""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest

import structjac as sj

DTYPES = [np.float32, np.float64, np.complex64, np.complex128]


def _same(fast, checked):
    assert type(fast) is type(checked)
    assert fast.shape == checked.shape and fast.dtype == checked.dtype
    np.testing.assert_array_equal(fast.to_dense(), checked.to_dense())


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_dense_wrap_equals_the_checked_constructor(dtype):
    M = np.arange(12, dtype=dtype).reshape(3, 4)
    fast = sj.Dense._wrap(M.copy())
    _same(fast, sj.Dense(M))
    assert not fast.matrix.flags.writeable


def test_dense_wrap_of_a_view_leaves_the_viewed_array_writeable():
    base = np.arange(12.0).reshape(3, 4)
    fast = sj.Dense._wrap(base[:2])  # C-contiguous view of the first two rows
    assert base.flags.writeable and not fast.matrix.flags.writeable
    base[0, 0] = 7.0  # the caller's array stays theirs
    np.testing.assert_array_equal(fast.matrix[1], [4.0, 5.0, 6.0, 7.0])


@pytest.mark.parametrize(
    "matrix",
    [
        np.asfortranarray(np.arange(6.0).reshape(2, 3)),  # not C-contiguous
        np.arange(6).reshape(2, 3),  # integers: converted to float64
        np.arange(6, dtype=np.float16).reshape(2, 3),  # float16: computed in float32
    ],
    ids=["fortran", "int", "float16"],
)
def test_dense_wrap_falls_back_to_the_checked_constructor(matrix):
    original = matrix.copy()
    fast = sj.Dense._wrap(matrix)
    _same(fast, sj.Dense(original))
    assert fast.matrix.flags.c_contiguous and not fast.matrix.flags.writeable
    np.testing.assert_array_equal(matrix, original)


@pytest.mark.parametrize("a", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("b", DTYPES, ids=lambda d: np.dtype(d).name)
def test_kronecker_wrap_equals_the_checked_constructor(a, b):
    A = sj.Dense(np.arange(4, dtype=a).reshape(2, 2))
    B = sj.Diagonal(np.array([1.0, -2.0, 3.0], dtype=b))
    fast = sj.Kronecker._wrap(A, B)
    _same(fast, sj.Kronecker(A, B))
    assert fast.A.dtype == fast.B.dtype == np.result_type(a, b)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_zero_and_scaled_identity_wrap_equal_the_checked_constructors(dtype):
    dtype = np.dtype(dtype)
    _same(sj.Zero._wrap(2, 5, dtype), sj.Zero((2, 5), dtype=dtype))
    c = dtype.type(-1.5)
    _same(sj.ScaledIdentity._wrap(4, c), sj.ScaledIdentity(4, c, dtype=dtype))


@pytest.mark.parametrize("make", [lambda: sj.ScaledIdentity(5, -0.5), lambda: sj.Identity(5)])
def test_scaled_identity_diagonal_is_built_on_first_use(make):
    J = make()
    for again in (J, pickle.loads(pickle.dumps(J)), copy.deepcopy(J), copy.copy(J)):
        values = again.values
        assert values.shape == (5,) and values.strides == (0,)
        assert not values.flags.writeable
        np.testing.assert_array_equal(values, np.full(5, J.scalar))
        assert again.values is values  # kept once built
        np.testing.assert_array_equal(
            (again @ sj.Diagonal(np.arange(5.0))).diagonal(), values * np.arange(5.0)
        )
    with pytest.raises(AttributeError, match="no attribute 'missing'"):
        J.missing
