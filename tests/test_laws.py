"""Algebraic laws over random structures (hypothesis), checked against the dense matrices."""

from __future__ import annotations

import warnings

import numpy as np
from hypothesis import given, settings, strategies as st

import structjac as sj

from .structures.makers import MAKERS, make, tolerance

SQUARE = 6
KINDS = sorted(MAKERS)
INVERTIBLE = [
    "Identity",
    "ScaledIdentity",
    "Diagonal",
    "Kronecker",
    "Kronecker[I (x) B]",
    "Dense",
    "Sparse",
]


@st.composite
def structures(draw, kinds=KINDS, dtype=None, shape=(SQUARE, SQUARE)):
    kind = draw(st.sampled_from(kinds))
    seed = draw(st.integers(0, 2**32 - 1))
    if dtype is None:
        dtype = draw(st.sampled_from([np.float32, np.float64]))
    made = make(kind, shape, np.random.default_rng(seed), dtype)
    assert made is not None, (kind, shape)
    return made


def _quiet(function):
    """Falls to Sparse are allowed in the laws; they are tested in test_algebra."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sj.StructureLostWarning)
        return function()


def _close(J, M, dtype, scale=1.0):
    rtol, atol = tolerance(dtype)
    np.testing.assert_allclose(J.to_dense(), M, rtol=50 * rtol, atol=50 * atol * scale)


LAWS = settings(deadline=None, max_examples=60)


@LAWS
@given(structures(dtype=np.float64), structures(dtype=np.float64), structures(dtype=np.float64))
def test_associativity(a, b, c):
    (A, Ad), (B, Bd), (C, Cd) = a, b, c
    left = _quiet(lambda: (A @ B) @ C)
    right = _quiet(lambda: A @ (B @ C))
    np.testing.assert_allclose(left.to_dense(), right.to_dense(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(left.to_dense(), Ad @ Bd @ Cd, rtol=1e-10, atol=1e-10)


@LAWS
@given(structures(), structures())
def test_transpose_of_product(a, b):
    (A, Ad), (B, Bd) = a, b
    product = _quiet(lambda: (A @ B).T)
    reversed_ = _quiet(lambda: B.T @ A.T)
    # The dense reference of a float32 Kronecker is rounded to float32 entry by entry;
    # compare at the lower precision of the two operands.
    dtype = np.float32 if np.float32 in (A.dtype, B.dtype) else np.float64
    _close(product, (Ad @ Bd).T, dtype, scale=10)
    _close(reversed_, (Ad @ Bd).T, dtype, scale=10)


@LAWS
@given(structures(dtype=np.float64), structures(dtype=np.float64), structures(dtype=np.float64))
def test_distributivity(a, b, c):
    (A, Ad), (B, Bd), (C, Cd) = a, b, c
    left = _quiet(lambda: A @ (B + C))
    right = _quiet(lambda: A @ B + A @ C)
    np.testing.assert_allclose(left.to_dense(), right.to_dense(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(left.to_dense(), Ad @ (Bd + Cd), rtol=1e-10, atol=1e-10)


@LAWS
@given(structures(kinds=INVERTIBLE, dtype=np.float64))
def test_inverse_round_trip(a):
    A, Ad = a
    Ainv = A.inv()
    assert not isinstance(Ainv, sj.Dense) or isinstance(A, sj.Dense)
    for product in (_quiet(lambda: Ainv @ A), _quiet(lambda: A @ Ainv)):
        np.testing.assert_allclose(product.to_dense(), np.eye(SQUARE), atol=1e-10)


@LAWS
@given(
    structures(dtype=np.float32),
    structures(dtype=np.float32),
    st.sampled_from(["matmul", "add", "sub"]),
)
def test_float32_is_kept(a, b, operation):
    (A, _), (B, _) = a, b
    result = _quiet(lambda: {"matmul": A @ B, "add": A + B, "sub": A - B}[operation])
    assert result.dtype == np.float32
    assert result.to_dense().dtype == np.float32
    assert (A @ np.ones(SQUARE, dtype=np.float32)).dtype == np.float32
    assert (np.ones(SQUARE, dtype=np.float32) @ A).dtype == np.float32
    assert (-A).dtype == np.float32 and (A * 2).dtype == np.float32 and (A / 2).dtype == np.float32
    assert A.T.dtype == np.float32


@LAWS
@given(structures(), st.floats(-4, 4, allow_nan=False).filter(lambda c: abs(c) > 1e-3))
def test_scalar_multiplication_is_structure_kept(a, c):
    A, Ad = a
    scaled = c * A
    assert type(scaled) in (type(A), sj.ScaledIdentity)
    _close(scaled, c * Ad, A.dtype, scale=4)
