"""The block structures' rules and applications: BlockDiagonal and BlockMatrix against dense.

One class per rule of the block section of the table (``structjac.rules()`` rows whose
types are ``BlockDiagonal`` or ``BlockMatrix``, and the per-sample products of the
network Jacobians), built as in ``bench_rules.py``: ``time_op`` times ``A @ B`` (or
``A + B``) on the structures (form ``structured``) and on their dense twins (form
``dense``) at matrix size ``n`` (``n // P`` blocks of ``P x P``); ``track_stored_bytes``
records what the result holds. ``bench_rules.CASES`` includes :data:`CASES`, so that the
smoke test sees every rule of the table covered.

``TwoLayerBatchJacobian`` adds a third form, ``sparse``: the same product through
``scipy.sparse``, which is what the table computed for
``Kronecker(I_N, W2) @ RowScaled(d, Kronecker(I_N, W1))`` before it had a rule.
``BlockDiagonal_at_vector`` times one batched matrix-vector product against the dense one.
"""

from __future__ import annotations

import numpy as np

from .common import RuleVsDense, StructuredVsDense, dense_bytes, pick_sizes, rng

try:
    import structjac as sj
except ImportError:  # the package is not importable: asv reports no benchmarks here
    sj = None

#: Block size of the block-diagonal cases (a layer of P units per sample).
P = 16
#: Matrix sizes n (n // P blocks).
SIZES = (256, 1024, 4096, 16384)


def _N(n):
    return max(n // P, 1)


def _bd(n, seed=0, p=P, q=P):
    return sj.BlockDiagonal(rng(seed).standard_normal((_N(n), p, q)) / p)


def _vec(n, seed=0):
    return rng(seed).standard_normal(n)


def _kron_identity(n, seed=0, p=P, q=P):
    return sj.Kronecker(sj.Identity(_N(n)), sj.Dense(rng(seed).standard_normal((p, q)) / q))


def _row_scaled(n, seed=0):
    return sj.RowScaled(rng(seed).uniform(0.1, 1.0, _N(n) * P), _kron_identity(n, seed + 1))


def _diagonal(n, seed=0):
    return sj.Diagonal(rng(seed).uniform(0.5, 2.0, _N(n) * P))


def _hstack(n, seed=0):
    m = _N(n) * P
    return sj.hstack([sj.Dense(rng(seed).standard_normal((m, 8))), sj.Identity(m)])


# (operation, left, right): (class name, sizes or None for the default, builder(n) -> (A, B))
CASES = {
    ("matmul", "BlockDiagonal", "BlockDiagonal"): (
        "BlockDiagonal_at_BlockDiagonal",
        SIZES,
        lambda n: (_bd(n), _bd(n, 1)),
    ),
    ("matmul", "Diagonal", "BlockDiagonal"): (
        "Diagonal_at_BlockDiagonal",
        SIZES,
        lambda n: (_diagonal(n), _bd(n)),
    ),
    ("matmul", "BlockDiagonal", "Diagonal"): (
        "BlockDiagonal_at_Diagonal",
        SIZES,
        lambda n: (_bd(n), _diagonal(n)),
    ),
    ("matmul", "Kronecker", "BlockDiagonal"): (
        "KroneckerIdentity_at_BlockDiagonal",
        SIZES,
        lambda n: (_kron_identity(n), _bd(n)),
    ),
    ("matmul", "BlockDiagonal", "Kronecker"): (
        "BlockDiagonal_at_KroneckerIdentity",
        SIZES,
        lambda n: (_bd(n), _kron_identity(n)),
    ),
    ("matmul", "RowScaled", "BlockDiagonal"): (
        "RowScaled_at_BlockDiagonal",
        SIZES,
        lambda n: (_row_scaled(n), _bd(n)),
    ),
    ("matmul", "BlockDiagonal", "RowScaled"): (
        "BlockDiagonal_at_RowScaled",
        SIZES,
        lambda n: (_bd(n), _row_scaled(n)),
    ),
    ("matmul", "Kronecker", "RowScaled"): (
        "KroneckerIdentity_at_RowScaled",
        SIZES,
        lambda n: (_kron_identity(n), _row_scaled(n, 1)),
    ),
    ("matmul", "RowScaled", "RowScaled"): (
        "RowScaled_at_RowScaled",
        SIZES,
        lambda n: (_row_scaled(n), _row_scaled(n, 1)),
    ),
    ("matmul", "RowScaled", "Kronecker"): (
        "RowScaled_at_KroneckerIdentity",
        SIZES,
        lambda n: (_row_scaled(n), _kron_identity(n, 3)),
    ),
    ("matmul", "BlockDiagonal", "BlockRow"): (
        "BlockDiagonal_at_BlockRow",
        SIZES,
        lambda n: (
            _bd(n),
            sj.BlockRow(np.array([0, _N(n) * P // 2]), rng(1).standard_normal((2, 64)), _N(n) * P),
        ),
    ),
    ("matmul", "BlockColumn", "BlockDiagonal"): (
        "BlockColumn_at_BlockDiagonal",
        SIZES,
        lambda n: (
            sj.BlockColumn(
                np.array([1, _N(n) * P - 1]), rng(1).standard_normal((2, 64)), _N(n) * P
            ),
            _bd(n),
        ),
    ),
    ("matmul", "BlockDiagonal", "StackedKronecker"): (
        "BlockDiagonal_at_StackedKronecker",
        SIZES,
        lambda n: (_bd(n, 0, 2, P), sj.StackedKronecker(rng(1).standard_normal((_N(n), 8)), P)),
    ),
    ("matmul", "BlockMatrix", "Jacobian"): (
        "BlockMatrix_at_Diagonal",
        SIZES,
        lambda n: (_hstack(n), sj.Diagonal(_vec(_N(n) * P + 8))),
    ),
    ("matmul", "Jacobian", "BlockMatrix"): (
        "Diagonal_at_BlockMatrix",
        SIZES,
        lambda n: (sj.Diagonal(_vec(_N(n) * P)), _hstack(n)),
    ),
    ("matmul", "BlockMatrix", "BlockMatrix"): (
        "BlockMatrix_at_BlockMatrix_T",
        SIZES,
        lambda n: (_hstack(n), _hstack(n, 1).T),
    ),
    # ---- sums -------------------------------------------------------------------------
    ("add", "BlockDiagonal", "BlockDiagonal"): (
        "BlockDiagonal_plus_BlockDiagonal",
        SIZES,
        lambda n: (_bd(n), _bd(n, 1)),
    ),
    ("add", "BlockDiagonal", "Diagonal"): (
        "BlockDiagonal_plus_Diagonal",
        SIZES,
        lambda n: (_bd(n), _diagonal(n)),
    ),
    ("add", "Diagonal", "BlockDiagonal"): (
        "Diagonal_plus_BlockDiagonal",
        SIZES,
        lambda n: (_diagonal(n), _bd(n)),
    ),
    ("add", "BlockDiagonal", "Kronecker"): (
        "BlockDiagonal_plus_KroneckerIdentity",
        SIZES,
        lambda n: (_bd(n), _kron_identity(n)),
    ),
    ("add", "Kronecker", "BlockDiagonal"): (
        "KroneckerIdentity_plus_BlockDiagonal",
        SIZES,
        lambda n: (_kron_identity(n), _bd(n)),
    ),
    ("add", "BlockDiagonal", "RowScaled"): (
        "BlockDiagonal_plus_RowScaled",
        SIZES,
        lambda n: (_bd(n), _row_scaled(n)),
    ),
    ("add", "RowScaled", "BlockDiagonal"): (
        "RowScaled_plus_BlockDiagonal",
        SIZES,
        lambda n: (_row_scaled(n), _bd(n)),
    ),
    ("add", "BlockMatrix", "BlockMatrix"): (
        "BlockMatrix_plus_BlockMatrix",
        SIZES,
        lambda n: (_hstack(n), _hstack(n, 1)),
    ),
}

#: Applications (structure @ ndarray), not rules of the table.
APPLICATIONS = {
    "BlockDiagonal_at_vector": (SIZES, lambda n: (_bd(n), _vec(_N(n) * P, 1))),
    "BlockMatrix_at_vector": (SIZES, lambda n: (_hstack(n), _vec(_N(n) * P + 8, 1))),
}


def _make_class(name, key_or_none, operation, case_sizes, builder):
    attrs = {
        "operation": operation,
        "rule": key_or_none,
        "operands": lambda self, n, _b=builder: _b(n),
        "__module__": __name__,
        "__doc__": f"{name.replace('_', ' ')}: structured against dense ({operation}).",
        "sizes": case_sizes,
    }
    return type(name, (RuleVsDense,), attrs)


if sj is not None:
    for _key, (_name, _sizes, _builder) in CASES.items():
        globals()[_name] = _make_class(_name, _key, _key[0], _sizes, _builder)
    for _name, (_sizes, _builder) in APPLICATIONS.items():
        globals()[_name] = _make_class(_name, None, "matmul", _sizes, _builder)


class TwoLayerBatchJacobian(StructuredVsDense):
    """d vec(Z2)/d vec(X) of a two-layer network over a batch of N = n // 16 samples
    (d = m = 16 inputs and outputs, h = 64 hidden units):
    ``Kronecker(I_N, W2) @ RowScaled(g', Kronecker(I_N, W1))``, structured (a BlockDiagonal of
    W2 diag(g'_k) W1), dense, and through scipy.sparse (the fall before the rule)."""

    sizes = SIZES
    forms = ["structured", "dense", "sparse"]
    cheap_forms = ("structured", "sparse")
    params = [pick_sizes(SIZES), forms]
    H = 64

    def _operands(self, n):
        N = _N(n)
        r = rng(0)
        W1, W2 = r.standard_normal((self.H, P)), r.standard_normal((P, self.H))
        g = r.uniform(0.1, 1.0, N * self.H)
        return (
            sj.Kronecker(sj.Identity(N), sj.Dense(W2)),
            sj.RowScaled(g, sj.Kronecker(sj.Identity(N), sj.Dense(W1))),
        )

    def dense_cost(self, n, form):
        N = _N(n)
        m, h = N * P, N * self.H
        return dense_bytes((m, h), (h, m), (m, m)), 2.0 * m * h * m

    def build(self, n, form):
        A, B = self._operands(n)
        if form == "dense":
            A, B = A.to_dense(), B.to_dense()
        elif form == "sparse":
            A, B = A.to_sparse(), B.to_sparse()
        return lambda: A @ B

    def track_stored_bytes(self, n, form):
        out = self.fn()
        if hasattr(out, "data") and hasattr(out, "indptr"):  # scipy.sparse CSR
            return int(out.data.nbytes + out.indices.nbytes + out.indptr.nbytes)
        return int(out.nbytes)

    track_stored_bytes.unit = "bytes"
