"""Differentiable element-wise functions with structured Jacobians.

Unary ops (:mod:`structjac.ops.unary`), user-defined ops
(:func:`elementwise`), binary ops (:mod:`structjac.ops.binary`), softmax and
log-softmax over an axis (:mod:`structjac.ops.softmax`) and losses
(:mod:`structjac.ops.losses`).  Each returns its value, its Jacobian as a
structure (``Diagonal``, ``Identity``, ``ScaledIdentity``, ``BlockRow``) and a
fused vector-Jacobian product computed by the kernels of
:mod:`structjac.kernels`.

Examples
--------
>>> import numpy as np
>>> from structjac import ops
>>> x = np.array([-1.0, 0.0, 1.0])
>>> ops.relu.jacobian(x).diagonal()
array([0., 1., 1.])
"""

from .binary import Add, BinaryOp, Divide, Multiply, Subtract, add, divide, multiply, subtract
from .elementwise import ElementwiseOp, elementwise
from .losses import (
    BCE,
    MSE,
    REDUCTIONS,
    BCEWithLogits,
    CrossEntropy,
    Loss,
    bce,
    bce_with_logits,
    cross_entropy,
    mse,
)
from .softmax import LogSoftmax, Softmax, log_softmax, softmax
from . import unary
from .unary import *  # noqa: F403 (every op of the scalar table)
from .unary import (
    Exp,
    LeakyReLU,
    Log,
    OutputUnaryOp,
    ReLU,
    Sigmoid,
    Softplus,
    Tanh,
    UnaryOp,
    exp,
    leaky_relu,
    log,
    relu,
    sigmoid,
    softplus,
    tanh,
)

__all__ = [
    # unary: every op of the kernels' scalar table, and the base classes
    *unary.__all__,
    # user-defined
    "elementwise",
    "ElementwiseOp",
    # binary
    "add",
    "subtract",
    "multiply",
    "divide",
    "BinaryOp",
    "Add",
    "Subtract",
    "Multiply",
    "Divide",
    # row-wise (softmax over an axis)
    "softmax",
    "log_softmax",
    "Softmax",
    "LogSoftmax",
    # losses
    "mse",
    "bce",
    "bce_with_logits",
    "cross_entropy",
    "Loss",
    "MSE",
    "BCE",
    "BCEWithLogits",
    "CrossEntropy",
    "REDUCTIONS",
]
