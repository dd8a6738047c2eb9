r"""The one dtype policy of structjac.

Every structure, every rule and every public function computes in the dtype
:func:`as_float_dtype` gives its input, and a combination of two operands in
:func:`result_dtype` of theirs:

* float32, float64, complex64 and complex128 are kept (float32 in, float32 out);
* integers and booleans become float64, as in :func:`numpy.linalg.inv`;
* float16 becomes float32: no kernel computes in half precision, and a half-precision
  Jacobian loses more than the three decimal digits its values carry, so the library
  computes (and returns) float32 rather than silently mixing float16 and float64;
* anything else (object, string, datetime ...) is rejected with a ``TypeError``
  naming the dtype.

``result_dtype(a, b)`` is :func:`numpy.result_type` of the two computing dtypes, so
float32 with float64 gives float64 and float32 with complex64 gives complex64.
"""

from __future__ import annotations

import numpy as np

__all__ = ["as_float_dtype", "result_dtype"]

_HALF = np.dtype(np.float16)
_SINGLE = np.dtype(np.float32)
_DOUBLE = np.dtype(np.float64)


def as_float_dtype(dtype) -> np.dtype:
    """Return the dtype structjac computes in for input of ``dtype``.

    Parameters
    ----------
    dtype : dtype_like

    Returns
    -------
    numpy.dtype
        float32/float64/complex kept, float16 -> float32, integer/bool -> float64.

    Raises
    ------
    TypeError
        For any other dtype (object, string, datetime ...), naming it.
    """
    dtype = np.dtype(dtype)
    if dtype.kind in "fc":
        return _SINGLE if dtype == _HALF else dtype
    if dtype.kind in "biu":
        return _DOUBLE
    raise TypeError(f"structjac works on numbers; got an array of dtype {dtype}")


def result_dtype(*dtypes) -> np.dtype:
    """Return the dtype of a result computed from operands of ``dtypes``.

    The :func:`numpy.result_type` of their computing dtypes (:func:`as_float_dtype`).
    """
    first = dtypes[0]
    if all(d == first for d in dtypes[1:]):
        return as_float_dtype(first)
    return np.result_type(*(as_float_dtype(d) for d in dtypes))
