"""Oracles for the transform tests: finite differences, the complex step, and JAX.

Each test function is written once against a namespace ``m`` (numpy, or jax.numpy
with the same names), so that structjac traces exactly the code JAX differentiates.
"""

from __future__ import annotations

import types

import numpy as np
import scipy.special

import structjac as sj

NP = types.SimpleNamespace(
    **{name: getattr(np, name) for name in dir(np) if not name.startswith("_")},
    expit=scipy.special.expit,
    sigmoid=sj.sigmoid,
    relu=sj.relu,
    sj_tanh=sj.tanh,
)


def jax_namespace():
    """``jax.numpy`` under the names of :data:`NP` (x64 on), or None without JAX."""
    try:
        import jax
    except ImportError:  # pragma: no cover - CI installs jax
        return None
    jax.config.update("jax_enable_x64", True)
    jnp = jax.numpy
    return types.SimpleNamespace(
        **{name: getattr(jnp, name) for name in dir(jnp) if not name.startswith("_")},
        expit=jax.nn.sigmoid,
        sigmoid=jax.nn.sigmoid,
        relu=jax.nn.relu,
        sj_tanh=jnp.tanh,
    )


def central_difference_jacobian(f, args, argnum, h=1e-6):
    """Columns :math:`(f(x + h e_j) - f(x - h e_j)) / 2h` of the flattened Jacobian."""
    args = [np.array(a, dtype=np.float64) if isinstance(a, np.ndarray) else a for a in args]
    x = args[argnum]
    out = np.asarray(f(*args), dtype=np.float64)
    J = np.empty((out.size, x.size))
    for j in range(x.size):
        plus, minus = x.copy(), x.copy()
        plus.flat[j] += h
        minus.flat[j] -= h
        a_plus = list(args)
        a_plus[argnum] = plus
        a_minus = list(args)
        a_minus[argnum] = minus
        J[:, j] = (np.asarray(f(*a_plus)) - np.asarray(f(*a_minus))).reshape(-1) / (2 * h)
    return J


def complex_step_jacobian(f, args, argnum, h=1e-30):
    """Columns :math:`\\operatorname{Im} f(x + i h e_j) / h`, exact to rounding for analytic f."""
    args = list(args)
    x = np.asarray(args[argnum], dtype=np.complex128)
    columns = []
    for j in range(x.size):
        step = x.copy()
        step.flat[j] += 1j * h
        call = list(args)
        call[argnum] = step
        columns.append(np.asarray(f(*call)).reshape(-1).imag / h)
    return np.stack(columns, axis=1)


def jax_jacobian(jf, args, argnum):
    """``jax.jacrev`` flattened to ``(out.size, x.size)``."""
    import jax

    jargs = [jax.numpy.asarray(a) if isinstance(a, np.ndarray) else a for a in args]
    out = np.asarray(jf(*jargs))
    J = np.asarray(jax.jacrev(jf, argnums=argnum)(*jargs))
    return J.reshape(out.size, np.size(args[argnum]))
