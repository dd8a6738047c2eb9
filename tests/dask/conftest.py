"""Shared fixtures of the dask tests: a scheduler that refuses to run (laziness)."""

import contextlib

import pytest

dask = pytest.importorskip("dask")


class ComputeCalled(AssertionError):
    pass


def _refuse(*args, **kwargs):
    raise ComputeCalled("a dask graph was computed before the user asked")


@contextlib.contextmanager
def no_compute():
    """Within the block, any dask compute raises: building the graph must be lazy."""
    with dask.config.set(scheduler=_refuse):
        yield
