"""structjac: Jacobians kept in the shape the mathematics gives them.

Public names only; the documentation describes the structures, the rule table and the ops.
"""

from . import layers, nn
from ._dask import worker_env as dask_worker_env
from ._dense_limit import DEFAULT_DENSE_LIMIT, DenseLimitError, dense_limit
from ._warnings import StructureLostError, StructureLostWarning, strict
from .algebra import Rule, as_jacobian, rules
from .chain import ChainPlan, chain, chain_plan
from .layers import DenseLayer, dense_jacobians, neuron_jacobians
from .nn import MLP
from .linear_operator import JacobianLinearOperator
from .ops import (
    LeakyReLU,
    ReLU,
    add,
    bce,
    bce_with_logits,
    cross_entropy,
    divide,
    elementwise,
    exp,
    leaky_relu,
    log,
    log_softmax,
    mse,
    multiply,
    relu,
    sigmoid,
    silu,
    softmax,
    softplus,
    subtract,
    tanh,
)
from .transforms import grad, jacobian, jvp, value_and_grad, vjp
from .structures import (
    BlockColumn,
    BlockDiagonal,
    BlockMatrix,
    BlockRow,
    Dense,
    Diagonal,
    Identity,
    Jacobian,
    Kronecker,
    RowScaled,
    ScaledIdentity,
    Sparse,
    StackedKronecker,
    Transposed,
    Zero,
    block,
    hstack,
    vstack,
)

__version__ = "0.1.0"

__all__ = [
    "dask_worker_env",
    "dense_limit",
    "DenseLimitError",
    "DEFAULT_DENSE_LIMIT",
    "Jacobian",
    "Identity",
    "ScaledIdentity",
    "Zero",
    "Diagonal",
    "BlockRow",
    "BlockColumn",
    "Kronecker",
    "Dense",
    "Sparse",
    "StackedKronecker",
    "RowScaled",
    "Transposed",
    "BlockDiagonal",
    "BlockMatrix",
    "hstack",
    "vstack",
    "block",
    "as_jacobian",
    "rules",
    "Rule",
    "strict",
    "StructureLostWarning",
    "StructureLostError",
    "JacobianLinearOperator",
    # element-wise ops (structjac.ops)
    "sigmoid",
    "tanh",
    "relu",
    "leaky_relu",
    "exp",
    "log",
    "softplus",
    "silu",
    "ReLU",
    "LeakyReLU",
    "elementwise",
    "add",
    "subtract",
    "multiply",
    "divide",
    "mse",
    "bce",
    "bce_with_logits",
    "softmax",
    "log_softmax",
    "cross_entropy",
    # layers, networks, chains
    "layers",
    "nn",
    "DenseLayer",
    "dense_jacobians",
    "neuron_jacobians",
    "MLP",
    "chain",
    "chain_plan",
    "ChainPlan",
    # function transforms of the user's own numpy code (structjac.transforms)
    "jacobian",
    "jvp",
    "vjp",
    "grad",
    "value_and_grad",
]
