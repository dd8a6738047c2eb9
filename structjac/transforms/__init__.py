"""Function transforms over the user's own numpy code.

``structjac.jacobian(f)(x)`` runs ``f`` with traced values in place of its arrays
(:mod:`~structjac.transforms._tracer`), differentiates every numpy call it makes by the
rule table (:mod:`~structjac.transforms._numpy_rules`, and
:mod:`~structjac.transforms._op_rules` for structjac's own ops), and returns the
Jacobian in the tightest structure the rule table of :mod:`structjac.algebra` gives.
``jvp``, ``vjp``, ``grad`` and ``value_and_grad`` use the same trace
(:mod:`~structjac.transforms._api`).
"""

from . import _numpy_rules, _op_rules, _tracer
from ._api import grad, jacobian, jvp, value_and_grad, vjp
from ._numpy_rules import supported
from ._tracer import Traced

_tracer._install(_numpy_rules, _op_rules)

__all__ = ["jacobian", "jvp", "vjp", "grad", "value_and_grad", "Traced", "supported"]
