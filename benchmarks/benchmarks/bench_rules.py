"""Every rule of the table (``structjac.rules()``) against the dense product of the same matrices.

One class per rule, made from :data:`CASES`: ``Matmul_Diagonal_Diagonal.time_op`` times
``Diagonal(d1) @ Diagonal(d2)`` (form ``structured``) and ``np.diag(d1) @ np.diag(d2)``
(form ``dense``) for each size ``n``. ``track_stored_bytes`` records what the result holds.
The key of each case is the rule it exercises, ``(operation, left type, right type)`` as
``structjac.rules()`` lists it; ``tests/test_benchmarks_smoke.py`` checks that every rule
of the table has a case here and that each case really reaches its rule.

``Kronecker_at_vector`` times the reshape identity ``(A (x) B) vec(X) = vec(A X B^T)``
against the dense matrix-vector product (an application, not a rule of the table).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .common import RuleVsDense, rng

try:
    import structjac as sj
except ImportError:  # the package is not importable: asv reports no benchmarks here
    sj = None

#: Width of the thin dense factors (a layer of K inputs).
K = 64
#: Length of the input of a layer inside a Kronecker factor (I_n (x) x^T).
D = 16

SQUARES = (256, 1024, 4096, 16384, 65536)  # n = p^2 for Kronecker products of p x p factors
SQUARE_DENSE = (256, 1024, 2048, 4096)  # results that are n x n even in structured form
BATCHES = (16, 64, 256, 1024, 16384)  # batch sizes for the batch structures (m = d = D)


def _vec(n, seed=0):
    return rng(seed).standard_normal(n)


def _mat(m, n, seed=0):
    return rng(seed).standard_normal((m, n))


def _p(n):
    p = int(round(np.sqrt(n)))
    return p


def _structures():
    import structjac.structures

    return structjac.structures


def _sparse(n, seed=0, per_row=5):
    S = sp.random_array((n, n), density=min(1.0, per_row / n), format="csr", rng=rng(seed))
    return sj.Sparse(S)


# (operation, left, right): (class name, sizes or None for the default, builder(n) -> (A, B))
CASES = {
    # ---- identities, scaled identities and zeros --------------------------------------
    ("matmul", "Identity", "Jacobian"): (
        "Identity_at_Dense",
        None,
        lambda n: (sj.Identity(n), sj.Dense(_mat(n, K))),
    ),
    ("matmul", "Jacobian", "Identity"): (
        "Dense_at_Identity",
        None,
        lambda n: (sj.Dense(_mat(K, n)), sj.Identity(n)),
    ),
    ("matmul", "ScaledIdentity", "Jacobian"): (
        "ScaledIdentity_at_Dense",
        None,
        lambda n: (sj.ScaledIdentity(n, 0.5), sj.Dense(_mat(n, K))),
    ),
    ("matmul", "Jacobian", "ScaledIdentity"): (
        "Dense_at_ScaledIdentity",
        None,
        lambda n: (sj.Dense(_mat(K, n)), sj.ScaledIdentity(n, 0.5)),
    ),
    ("matmul", "Zero", "Jacobian"): (
        "Zero_at_Dense",
        None,
        lambda n: (sj.Zero((n, n)), sj.Dense(_mat(n, K))),
    ),
    ("matmul", "Jacobian", "Zero"): (
        "Dense_at_Zero",
        None,
        lambda n: (sj.Dense(_mat(K, n)), sj.Zero((n, n))),
    ),
    # ---- diagonals --------------------------------------------------------------------
    ("matmul", "Diagonal", "Diagonal"): (
        "Diagonal_at_Diagonal",
        None,
        lambda n: (sj.Diagonal(_vec(n)), sj.Diagonal(_vec(n, 1))),
    ),
    ("matmul", "Diagonal", "Dense"): (
        "Diagonal_at_Dense",
        None,
        lambda n: (sj.Diagonal(_vec(n)), sj.Dense(_mat(n, K))),
    ),
    ("matmul", "Dense", "Diagonal"): (
        "Dense_at_Diagonal",
        None,
        lambda n: (sj.Dense(_mat(K, n)), sj.Diagonal(_vec(n))),
    ),
    ("matmul", "Diagonal", "BlockRow"): (
        "Diagonal_at_BlockRow",
        None,
        lambda n: (sj.Diagonal(_vec(n)), sj.BlockRow(n // 3, _vec(n, 1), n)),
    ),
    ("matmul", "BlockRow", "Diagonal"): (
        "BlockRow_at_Diagonal",
        None,
        lambda n: (sj.BlockRow(n // 3, _vec(n, 1), n), sj.Diagonal(_vec(n))),
    ),
    ("matmul", "Diagonal", "BlockColumn"): (
        "Diagonal_at_BlockColumn",
        None,
        lambda n: (sj.Diagonal(_vec(n)), sj.BlockColumn(n // 3, _vec(n, 1), n)),
    ),
    ("matmul", "BlockColumn", "Diagonal"): (
        "BlockColumn_at_Diagonal",
        None,
        lambda n: (sj.BlockColumn(n // 3, _vec(n, 1), n), sj.Diagonal(_vec(n))),
    ),
    # diag(g') (I_n (x) x^T): the activation after a layer, with respect to its weights
    ("matmul", "Diagonal", "Kronecker"): (
        "Diagonal_at_Kronecker",
        None,
        lambda n: (
            sj.Diagonal(_vec(n)),
            sj.Kronecker(sj.Identity(n), sj.Dense(_vec(D, 1)[None, :])),
        ),
    ),
    ("matmul", "Kronecker", "Diagonal"): (
        "Kronecker_at_Diagonal",
        None,
        lambda n: (
            sj.Kronecker(sj.Identity(n), sj.Dense(_vec(D, 1)[:, None])),
            sj.Diagonal(_vec(n)),
        ),
    ),
    # diag(g') over a batch of n samples, m = D outputs: onto dZ/dW (StackedKronecker, nD x D^2)
    ("matmul", "Diagonal", "StackedKronecker"): (
        "Diagonal_at_StackedKronecker",
        BATCHES,
        lambda n: (sj.Diagonal(_vec(n * D)), _structures().StackedKronecker(_mat(n, D, 1), D)),
    ),
    # ... and onto an already row-scaled dZ/dX = diag(g) (I_n (x) W)  (nD x nD)
    ("matmul", "Diagonal", "RowScaled"): (
        "Diagonal_at_RowScaled",
        BATCHES,
        lambda n: (
            sj.Diagonal(_vec(n * D)),
            _structures().RowScaled(
                _vec(n * D, 1), sj.Kronecker(sj.Identity(n), sj.Dense(_mat(D, D, 2)))
            ),
        ),
    ),
    # ---- block rows and columns -------------------------------------------------------
    ("matmul", "BlockRow", "Jacobian"): (
        "BlockRow_at_Dense",
        None,
        lambda n: (sj.BlockRow(n // 3, _vec(n, 1), n), sj.Dense(_mat(n, K))),
    ),
    ("matmul", "Jacobian", "BlockColumn"): (
        "Dense_at_BlockColumn",
        None,
        lambda n: (sj.Dense(_mat(K, n)), sj.BlockColumn(n // 3, _vec(n, 1), n)),
    ),
    ("matmul", "Dense", "BlockRow"): (
        "Dense_at_BlockRow",
        None,
        lambda n: (sj.Dense(_mat(K, n)), sj.BlockRow(n // 3, _vec(n, 1), n)),
    ),
    ("matmul", "BlockColumn", "BlockRow"): (
        "BlockColumn_at_BlockRow",
        SQUARE_DENSE,
        lambda n: (sj.BlockColumn(n // 3, _vec(n, 1), n), sj.BlockRow(n // 3, _vec(n, 2), n)),
    ),
    # ---- Kronecker products -----------------------------------------------------------
    ("matmul", "Kronecker", "Kronecker"): (
        "Kronecker_at_Kronecker",
        SQUARES,
        lambda n: (
            sj.Kronecker(sj.Dense(_mat(_p(n), _p(n))), sj.Dense(_mat(_p(n), _p(n), 1))),
            sj.Kronecker(sj.Dense(_mat(_p(n), _p(n), 2)), sj.Dense(_mat(_p(n), _p(n), 3))),
        ),
    ),
    # ---- the loose types --------------------------------------------------------------
    ("matmul", "Dense", "Jacobian"): (
        "Dense_at_Kronecker",
        SQUARES,
        lambda n: (
            sj.Dense(_mat(K, n)),
            sj.Kronecker(sj.Dense(_mat(_p(n), _p(n))), sj.Dense(_mat(_p(n), _p(n), 1))),
        ),
    ),
    ("matmul", "Jacobian", "Dense"): (
        "Kronecker_at_Dense",
        SQUARES,
        lambda n: (
            sj.Kronecker(sj.Dense(_mat(_p(n), _p(n))), sj.Dense(_mat(_p(n), _p(n), 1))),
            sj.Dense(_mat(n, K)),
        ),
    ),
    ("matmul", "Sparse", "Jacobian"): (
        "Sparse_at_Diagonal",
        None,
        lambda n: (_sparse(n), sj.Diagonal(_vec(n))),
    ),
    ("matmul", "Jacobian", "Sparse"): (
        "Diagonal_at_Sparse",
        None,
        lambda n: (sj.Diagonal(_vec(n)), _sparse(n)),
    ),
    ("matmul", "Sparse", "Dense"): (
        "Sparse_at_Dense",
        None,
        lambda n: (_sparse(n), sj.Dense(_mat(n, K))),
    ),
    ("matmul", "Dense", "Sparse"): (
        "Dense_at_Sparse",
        None,
        lambda n: (sj.Dense(_mat(K, n)), _sparse(n)),
    ),
    # ---- sums -------------------------------------------------------------------------
    ("add", "Diagonal", "Diagonal"): (
        "Diagonal_plus_Diagonal",
        None,
        lambda n: (sj.Diagonal(_vec(n)), sj.Diagonal(_vec(n, 1))),
    ),
    ("add", "ScaledIdentity", "ScaledIdentity"): (
        "ScaledIdentity_plus_ScaledIdentity",
        None,
        lambda n: (sj.ScaledIdentity(n, 0.5), sj.ScaledIdentity(n, 2.0)),
    ),
    ("add", "BlockRow", "BlockRow"): (
        "BlockRow_plus_BlockRow",
        None,
        lambda n: (sj.BlockRow(n // 3, _vec(n, 1), n), sj.BlockRow(n // 2, _vec(n, 2), n)),
    ),
    ("add", "BlockColumn", "BlockColumn"): (
        "BlockColumn_plus_BlockColumn",
        None,
        lambda n: (sj.BlockColumn(n // 3, _vec(n, 1), n), sj.BlockColumn(n // 2, _vec(n, 2), n)),
    ),
    ("add", "Kronecker", "Kronecker"): (
        "Kronecker_plus_Kronecker",
        SQUARES,
        lambda n: (
            lambda I: (
                sj.Kronecker(I, sj.Dense(_mat(_p(n), _p(n)))),
                sj.Kronecker(I, sj.Dense(_mat(_p(n), _p(n), 1))),
            )
        )(sj.Identity(_p(n))),
    ),
    ("add", "Kronecker", "ScaledIdentity"): (
        "Kronecker_plus_ScaledIdentity",
        SQUARES,
        lambda n: (
            sj.Kronecker(sj.Identity(_p(n)), sj.Dense(_mat(_p(n), _p(n)))),
            sj.ScaledIdentity(_p(n) ** 2, 2.0),
        ),
    ),
    ("add", "ScaledIdentity", "Kronecker"): (
        "ScaledIdentity_plus_Kronecker",
        SQUARES,
        lambda n: (
            sj.ScaledIdentity(_p(n) ** 2, 2.0),
            sj.Kronecker(sj.Dense(_mat(_p(n), _p(n))), sj.ScaledIdentity(_p(n), 3.0)),
        ),
    ),
    ("add", "Zero", "Jacobian"): (
        "Zero_plus_Diagonal",
        None,
        lambda n: (sj.Zero((n, n)), sj.Diagonal(_vec(n))),
    ),
    ("add", "Jacobian", "Zero"): (
        "Diagonal_plus_Zero",
        None,
        lambda n: (sj.Diagonal(_vec(n)), sj.Zero((n, n))),
    ),
    ("add", "Dense", "Jacobian"): (
        "Dense_plus_Diagonal",
        SQUARE_DENSE,
        lambda n: (sj.Dense(_mat(n, n)), sj.Diagonal(_vec(n))),
    ),
    ("add", "Jacobian", "Dense"): (
        "Diagonal_plus_Dense",
        SQUARE_DENSE,
        lambda n: (sj.Diagonal(_vec(n)), sj.Dense(_mat(n, n))),
    ),
    ("add", "Sparse", "Jacobian"): (
        "Sparse_plus_Diagonal",
        None,
        lambda n: (_sparse(n), sj.Diagonal(_vec(n))),
    ),
    ("add", "Jacobian", "Sparse"): (
        "Diagonal_plus_Sparse",
        None,
        lambda n: (sj.Diagonal(_vec(n)), _sparse(n)),
    ),
    ("add", "Sparse", "Dense"): (
        "Sparse_plus_Dense",
        SQUARE_DENSE,
        lambda n: (_sparse(n), sj.Dense(_mat(n, n))),
    ),
    ("add", "Dense", "Sparse"): (
        "Dense_plus_Sparse",
        SQUARE_DENSE,
        lambda n: (sj.Dense(_mat(n, n)), _sparse(n)),
    ),
}

#: Applications (structure @ ndarray) that the table does not list but the design names.
APPLICATIONS = {
    "Kronecker_at_vector": (
        SQUARES,
        lambda n: (
            sj.Kronecker(sj.Dense(_mat(_p(n), _p(n))), sj.Dense(_mat(_p(n), _p(n), 1))),
            _vec(n, 2),
        ),
    ),
    "Diagonal_at_vector": (None, lambda n: (sj.Diagonal(_vec(n)), _vec(n, 1))),
    "BlockRow_at_matrix": (None, lambda n: (sj.BlockRow(n // 3, _vec(n, 1), n), _mat(n, K))),
}


def _make_class(name, key_or_none, operation, case_sizes, builder):
    attrs = {
        "operation": operation,
        "rule": key_or_none,
        "operands": lambda self, n, _b=builder: _b(n),
        "__module__": __name__,
        "__doc__": f"{name.replace('_', ' ')}: structured against dense ({operation}).",
    }
    if case_sizes is not None:
        attrs["sizes"] = case_sizes
    return type(name, (RuleVsDense,), attrs)


if sj is not None:
    for _key, (_name, _sizes, _builder) in CASES.items():
        globals()[_name] = _make_class(_name, _key, _key[0], _sizes, _builder)
    for _name, (_sizes, _builder) in APPLICATIONS.items():
        globals()[_name] = _make_class(_name, None, "matmul", _sizes, _builder)

# The block structures' rules are timed in bench_blocks.py; listed here too so that the
# table is covered by CASES (the classes themselves live in bench_blocks only).
from .bench_blocks import CASES as _BLOCK_CASES

CASES.update(_BLOCK_CASES)
