"""Binary cross-entropy with logits at infinite logits: the finite limits, not NaN.

The stable form max(z, 0) - z y + log1p(exp(-|z|)) evaluates inf - inf at z = +inf
(y > 0) and 0 * inf at z = -inf, y = 0.  The limits are z (1 - y) for z -> +inf and
-z y for z -> -inf (0 when the factor is 0); the gradient sigma(z) - y tends to
1 - y and -y.  Checked against large finite logits, where the formula is exact.
"""

import numpy as np
import pytest

import structjac as sj
from structjac.kernels import losses

Y = np.array([1.0, 0.0, 0.5, 0.0, 1.0, 0.25])
Z = np.array([np.inf, -np.inf, np.inf, np.inf, -np.inf, -np.inf])
LIMIT = np.array([0.0, 0.0, np.inf, np.inf, np.inf, np.inf])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_per_sample_limits(dtype):
    got = losses.bce_with_logits_per_sample(Y.astype(dtype), Z.astype(dtype))
    assert got.dtype == dtype
    np.testing.assert_array_equal(got, LIMIT.astype(dtype))
    # the finite cases agree with a large finite logit, where the formula is exact
    big = np.where(Z > 0, 1e30, -1e30).astype(dtype)
    finite = LIMIT == 0
    np.testing.assert_array_equal(
        got[finite], losses.bce_with_logits_per_sample(Y.astype(dtype), big)[finite]
    )


@pytest.mark.parametrize("m", [1, 2, 3])
def test_rows_of_several_entries(m):
    y = np.tile(Y[:, None], (1, m))
    z = np.tile(Z[:, None], (1, m))
    np.testing.assert_array_equal(losses.bce_with_logits_per_sample(y, z), LIMIT)


def test_op_loss_and_gradient():
    y, z = Y[:2], Z[:2]  # both at their zero-loss limit
    assert float(sj.ops.bce_with_logits(y, z)) == 0.0
    np.testing.assert_array_equal(sj.ops.bce_with_logits.grad(y, z), [0.0, 0.0])
    g = sj.ops.bce_with_logits.grad(Y, Z)  # sigma(+-inf) - y, over N
    np.testing.assert_array_equal(g, (np.where(Z > 0, 1.0, 0.0) - Y) / Y.size)
    assert float(sj.ops.bce_with_logits(Y, Z)) == np.inf


def test_nan_stays_nan_and_finite_values_unchanged():
    z = np.array([np.nan, 3.0, -2.5, 0.0])
    y = np.array([1.0, 0.5, 0.25, 1.0])
    got = losses.bce_with_logits_per_sample(y, z)
    assert np.isnan(got[0])
    ref = np.maximum(z[1:], 0) - z[1:] * y[1:] + np.log1p(np.exp(-np.abs(z[1:])))
    np.testing.assert_allclose(got[1:], ref, rtol=1e-14)
