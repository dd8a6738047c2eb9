"""The ops on dask arrays (imported only when a dask array reaches an op)."""

from __future__ import annotations

__all__ = ["apply_op"]


def apply_op(op, method, args, kwargs):
    """Map ``op.<method>`` over the chunks of the dask arrays in ``args``."""
    raise TypeError(
        f"{op!r}.{method}: dask arrays are not supported yet; call .compute() first"
    )
