"""``BlockRow.inv`` / ``BlockColumn.inv`` say precisely why there is no inverse (issue 13):
the class, the shape, and the reason (not square; a zero row or column, named; every row or
column stored, so a general matrix), also for a 1 x 1 block."""

import re

import numpy as np
import pytest

import structjac as sj


def _shape(J):
    return re.escape(str(J.shape))


@pytest.mark.parametrize(
    "make",
    [
        lambda: sj.BlockRow(0, np.array([2.0]), 1),
        lambda: sj.BlockColumn(0, np.array([2.0]), 1),
        lambda: sj.BlockRow([2, 0, 1], np.eye(3) + 1, 3),
        lambda: sj.BlockColumn([1, 0], np.array([[1.0, 2.0], [3.0, 4.0]]), 2),
    ],
    ids=["BlockRow 1x1", "BlockColumn 1x1", "BlockRow 3x3 full", "BlockColumn 2x2 full"],
)
def test_full_square_block_names_itself_its_shape_and_why(make):
    J = make()
    name = type(J).__name__
    axis = "row" if name == "BlockRow" else "column"
    with pytest.raises(
        NotImplementedError,
        match=rf"^{name} of shape {_shape(J)} stores all {J.shape[0]} of its "
        rf"{axis}s: it is a general .* closed-form"
        r".*Dense\(J\.to_dense\(\)\)\.inv\(\)",
    ):
        J.inv()
    # the advice is right: the dense inverse of what it stores
    M = J.to_dense()
    np.testing.assert_allclose(sj.Dense(M).inv().to_dense() @ M, np.eye(M.shape[0]), atol=1e-12)


def test_missing_column_of_a_block_column_is_named_as_a_column():
    J = sj.BlockColumn([0, 2], np.ones((2, 3)), 3)
    with pytest.raises(
        np.linalg.LinAlgError,
        match=r"^BlockColumn of shape \(3, 3\) is singular: column 1 is zero "
        r"\(it stores columns \[0 2\] only\)",
    ):
        J.inv()


def test_missing_row_of_a_block_row_is_named():
    J = sj.BlockRow([3, 0], np.ones((2, 4)), 4)
    with pytest.raises(
        np.linalg.LinAlgError,
        match=r"^BlockRow of shape \(4, 4\) is singular: row 1 is zero "
        r"\(it stores rows \[0 3\] only\)",
    ):
        J.inv()


@pytest.mark.parametrize(
    "J",
    [sj.BlockColumn(1, np.ones(2), 3), sj.BlockRow(0, np.ones(3), 1)],
    ids=["BlockColumn 2x3", "BlockRow 1x3"],
)
def test_not_square_names_the_class_and_shape(J):
    with pytest.raises(
        np.linalg.LinAlgError, match=rf"^{type(J).__name__} of shape {_shape(J)} is not square"
    ):
        J.inv()
