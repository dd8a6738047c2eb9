"""structjac.jacobian on numpy functions: structure type, finite differences, complex step, JAX."""

from __future__ import annotations

import functools

import numpy as np
import pytest

import structjac as sj

from .cases import CASES, add_losses
from .support import (
    NP,
    central_difference_jacobian,
    complex_step_jacobian,
    jax_jacobian,
    jax_namespace,
)

add_losses(NP, None)

IDS = [c.id for c in CASES]


def _args(case):
    return case.make(np.random.default_rng(sum(map(ord, case.id))))


def _numpy_f(case):
    return functools.partial(case.f, NP)


def _structures(case, args):
    J = sj.jacobian(_numpy_f(case), argnums=case.argnums)(*args)
    if isinstance(case.argnums, tuple):
        return list(zip(case.argnums, J, case.expected))
    return [(case.argnums, J, case.expected)]


def test_there_are_at_least_forty_functions():
    assert len(CASES) >= 40
    assert len(set(IDS)) == len(IDS)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_structure_and_central_differences(case):
    args = _args(case)
    f = _numpy_f(case)
    for argnum, J, expected in _structures(case, args):
        assert type(J) is expected, f"{case.id}: d/d(arg {argnum}) is {type(J).__name__}"
        out = np.asarray(f(*args))
        assert J.shape == (out.size, np.size(args[argnum]))
        fd = central_difference_jacobian(f, args, argnum)
        np.testing.assert_allclose(J.to_dense(), fd, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(
    "case", [c for c in CASES if c.analytic], ids=[c.id for c in CASES if c.analytic]
)
def test_complex_step(case):
    args = _args(case)
    f = _numpy_f(case)
    for argnum, J, _ in _structures(case, args):
        cs = complex_step_jacobian(f, args, argnum)
        np.testing.assert_allclose(J.to_dense(), cs, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_against_jax(case):
    pytest.importorskip("jax")
    JM = jax_namespace()
    add_losses(NP, JM)
    args = _args(case)
    jf = functools.partial(case.f, JM)
    for argnum, J, _ in _structures(case, args):
        expected = jax_jacobian(jf, args, argnum)
        np.testing.assert_allclose(J.to_dense(), expected, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_inputs_not_written(case):
    args = _args(case)
    copies = [np.array(a, copy=True) for a in args]
    _structures(case, args)
    sj.grad(lambda *a: NP.sum(NP.sin(_numpy_f(case)(*a))), argnums=case.argnums)(*args)
    for a, c in zip(args, copies):
        np.testing.assert_array_equal(a, c)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_modes_agree(case):
    """jvp and vjp give the Jacobian's products; grad of <w, f> gives w^T J."""
    args = _args(case)
    f = _numpy_f(case)
    rng = np.random.default_rng(7)
    nums = case.argnums if isinstance(case.argnums, tuple) else (case.argnums,)
    for argnum, J, _ in _structures(case, args):
        x = args[argnum]
        t = rng.normal(size=np.shape(x))

        def g(xi, argnum=argnum):
            call = list(args)
            call[argnum] = xi
            return f(*call)

        value, tangent = sj.jvp(g, (x,), (t,))
        np.testing.assert_allclose(
            np.reshape(tangent, -1), J @ t.reshape(-1), rtol=1e-12, atol=1e-13
        )
        w = rng.normal(size=np.shape(value))
        _, vjp_fn = sj.vjp(g, x)
        (ct,) = vjp_fn(w)
        np.testing.assert_allclose(ct.reshape(-1), w.reshape(-1) @ J, rtol=1e-12, atol=1e-13)
        assert ct.shape == np.shape(x)
    assert nums


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_float32_stays_float32(case):
    args32 = tuple(a.astype(np.float32) if isinstance(a, np.ndarray) else a for a in _args(case))
    # constants of the cases are float64; cast them by running on float32 inputs only where
    # the function has none, else check the result type follows numpy's promotion.
    f = _numpy_f(case)
    out = np.asarray(f(*args32))
    J = sj.jacobian(f, argnums=case.argnums)(*args32)
    for Ji in J if isinstance(J, tuple) else (J,):
        assert Ji.dtype == out.dtype
    nums = case.argnums if isinstance(case.argnums, tuple) else (case.argnums,)

    def scalar(*a):
        return NP.sum(f(*a))

    grads = sj.grad(scalar, argnums=nums)(*args32)
    for n, gr in zip(nums, grads):
        assert gr.dtype == np.float32 and gr.shape == np.shape(args32[n])
