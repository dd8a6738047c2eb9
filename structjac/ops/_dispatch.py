"""Hand an op's call to the owner of a foreign argument (a traced value, a dask array).

The ops compute on ndarrays. Two kinds of argument are not ndarrays and must not be
converted by ``np.asarray``:

* a value traced by the function transforms: its type has a ``__structjac_op__``
  attribute, ``handler(op, method, args, kwargs)``, which records the call;
* a ``dask.array.Array``: the call is mapped over its chunks by
  :mod:`structjac._dask`, imported only when a dask array arrives (the core never
  imports dask).

A handler may return ``NotImplemented`` to let the op compute on ndarrays after all.
"""

from __future__ import annotations

import functools

import numpy as np

__all__ = ["dispatched", "foreign_handler"]

# a set: one hash lookup per argument on the path of every op call
_PLAIN = frozenset(
    (np.ndarray, int, float, complex, bool, str, type(None)) + tuple(np.sctypeDict.values())
)


def _dask_handler(op, method, args, kwargs):
    from .. import _dask

    return _dask.apply_op(op, method, args, kwargs)


def foreign_handler(args):
    """Return the handler that owns one of ``args``, or None when all are plain."""
    for arg in args:
        kind = type(arg)
        if kind in _PLAIN:
            continue
        handler = getattr(kind, "__structjac_op__", None)
        if handler is not None:
            return handler
        if kind.__module__.startswith("dask.") and hasattr(arg, "dask"):
            return _dask_handler
    return None


def dispatched(method):
    """Decorate a public op method so that foreign arguments reach their owner first."""
    name = method.__name__

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        for arg in args:  # all plain (ndarrays, numbers): straight to the method
            if type(arg) not in _PLAIN:
                break
        else:
            return method(self, *args, **kwargs)
        handler = foreign_handler(args)
        if handler is not None:
            result = handler(self, name, args, kwargs)
            if result is not NotImplemented:
                return result
        return method(self, *args, **kwargs)

    return wrapper
