"""The rule table walked row by row, and every pair of types, against the dense product."""

from __future__ import annotations

import dis
import itertools
import sys
import warnings

import numpy as np
import pytest

import structjac as sj
from structjac.algebra import SAME_AS_LEFT, SAME_AS_RIGHT, rule_for

from .structures.makers import MAKERS, make, tolerance

# (m, n, p): left is m x n, right is n x p. Square chains, and the shapes that the
# conditional Kronecker rules need (a factor with one row, or one column).
MATMUL_SHAPES = [(6, 6, 6), (3, 3, 6), (6, 3, 3), (3, 6, 4), (4, 6, 3)]
ADD_SHAPES = [(6, 6), (3, 6)]
KINDS = list(MAKERS)


def _structure_type(kind):
    return getattr(sj, kind.split("[")[0])


def _expected_type(rule, a, b):
    if rule.result == SAME_AS_LEFT:
        return type(a)
    if rule.result == SAME_AS_RIGHT:
        return type(b)
    return rule.result


def _combine(operation, a, b):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", sj.StructureLostWarning)
        result = a @ b if operation == "matmul" else a + b
    fell = any(issubclass(w.category, sj.StructureLostWarning) for w in caught)
    return result, fell


def _pairs():
    for dtype in (np.float32, np.float64):
        for (m, n, p), kl, kr in itertools.product(MATMUL_SHAPES, KINDS, KINDS):
            yield "matmul", (m, n), (n, p), kl, kr, dtype
        for shape, kl, kr in itertools.product(ADD_SHAPES, KINDS, KINDS):
            yield "add", shape, shape, kl, kr, dtype


def _shared_factor_pairs():
    """Sums of Kronecker products that share a factor (the same object), both sides.

    The makers draw fresh factors, so only these reach ``A (x) B + A (x) C`` and
    ``A (x) C + B (x) C``: a rule computing ``(A - B) (x) C`` must fail here.
    """
    for seed, (dtype, (m, n)) in enumerate(itertools.product((np.float32, np.float64), ADD_SHAPES)):
        rng = np.random.default_rng(1000 + seed)
        for kind in ("Kronecker", "Kronecker[I (x) W]", "Kronecker[a^T (x) B]"):
            made = make(kind, (m, n), rng, dtype)
            if made is None:
                continue
            K, _ = made
            for shared in ("left", "right"):
                A2 = rng.standard_normal(K.A.shape).astype(dtype)
                B2 = rng.standard_normal(K.B.shape).astype(dtype)
                other = (
                    sj.Kronecker(K.A, sj.Dense(B2))
                    if shared == "left"
                    else sj.Kronecker(sj.Dense(A2), K.B)
                )
                yield f"{kind}[shared {shared}]", K, other


def _walk():
    """Combine every pair of makeable operands; return (ids, (operation, a, b, result, fell, dense))."""
    ids, seen = [], []

    def record(operation, kl, kr, a, A, b, B):
        result, fell = _combine(operation, a, b)
        dense = A @ B if operation == "matmul" else A + B
        ids.append(f"{operation}-{kl}{a.shape}-{kr}{b.shape}-{a.dtype}")
        seen.append((operation, a, b, result, fell, dense))

    for seed, (operation, ls, rs, kl, kr, dtype) in enumerate(_pairs()):
        rng = np.random.default_rng(seed)
        left, right = make(kl, ls, rng, dtype), make(kr, rs, rng, dtype)
        if left is None or right is None:
            continue
        (a, A), (b, B) = left, right
        record(operation, kl, kr, a, A, b, B)
    for name, a, b in _shared_factor_pairs():
        # the dense references are formed from the factors, not by to_dense of the sum's operands
        A = np.kron(a.A.to_dense(), a.B.to_dense())
        B = np.kron(b.A.to_dense(), b.B.to_dense())
        record("add", name, name, a, A, b, B)
    return ids, seen


def _rule_lines():
    """{code object of a rule: its rule} for every row of the table."""
    return {rule.function.__code__: rule for rule in sj.rules()}


def _traced_walk():
    """The walk, recording which lines of the rule functions it runs (None under another tracer)."""
    if sys.gettrace() is not None:  # coverage or a debugger: do not displace it
        return _walk(), None
    codes = _rule_lines()
    executed = set()

    def tracer(frame, event, arg):
        code = frame.f_code
        if code not in codes:
            return None

        def lines(frame, event, arg):
            if event == "line":
                executed.add((code, frame.f_lineno))
            return lines

        return lines

    sys.settrace(tracer)
    try:
        walked = _walk()
    finally:
        sys.settrace(None)
    return walked, executed


(WALK_IDS, WALK), EXECUTED = _traced_walk()


@pytest.mark.parametrize(
    "operation,a,b,result,fell,dense",
    WALK,
    ids=WALK_IDS,
)
def test_every_pair_equals_the_dense_result(operation, a, b, result, fell, dense):
    rtol, atol = tolerance(a.dtype)
    assert isinstance(result, sj.Jacobian)
    assert result.dtype == a.dtype
    assert result.shape == dense.shape
    np.testing.assert_allclose(result.to_dense(), dense, rtol=rtol, atol=10 * atol)
    rule = rule_for(operation, type(a), type(b))
    if rule is not None and not fell:
        assert isinstance(result, _expected_type(rule, a, b)), rule
    if fell:
        assert isinstance(result, sj.Sparse)
    if rule is None:
        assert fell, "no rule and no StructureLostWarning"


@pytest.mark.parametrize(
    "rule", sj.rules(), ids=lambda r: f"{r.operation}-{r.left.__name__}-{r.right.__name__}"
)
def test_every_rule_is_exercised_with_its_result_type(rule):
    """Each row of the table: some pair of operands reaches it and gets its result type."""
    hits = [
        (a, b, result)
        for operation, a, b, result, fell, dense in WALK
        if operation == rule.operation
        and not fell
        and rule_for(operation, type(a), type(b)) is rule
    ]
    assert hits, (
        f"no operands in the walk reach {rule.operation}({rule.left.__name__}, {rule.right.__name__})"
    )
    for a, b, result in hits:
        assert isinstance(result, _expected_type(rule, a, b))
    assert rule.math, "every rule carries its one line of mathematics"


def test_the_walk_runs_every_line_of_every_rule():
    """Every branch of every rule is taken by some pair of the walk (and so checked against
    the dense result by test_every_pair_equals_the_dense_result)."""
    if EXECUTED is None:
        pytest.skip("another tracer (coverage, a debugger) was active while the walk ran")
    missed = {}
    for code, rule in _rule_lines().items():
        lines = {
            line for _, line in dis.findlinestarts(code) if line not in (None, code.co_firstlineno)
        }
        not_run = sorted(line for line in lines if (code, line) not in EXECUTED)
        if not_run:
            missed[f"{rule.operation}({rule.left.__name__}, {rule.right.__name__})"] = not_run
    assert not missed, f"lines of structjac/algebra.py no pair of the walk runs: {missed}"


def test_rules_rows():
    rows = sj.rules()
    assert len({(r.operation, r.left, r.right) for r in rows}) == len(rows)
    lecture = {
        ("matmul", sj.Diagonal, sj.Diagonal): sj.Diagonal,
        ("add", sj.Diagonal, sj.Diagonal): sj.Diagonal,
        ("matmul", sj.Diagonal, sj.BlockRow): sj.BlockRow,
        ("matmul", sj.Diagonal, sj.Dense): sj.Dense,
        ("matmul", sj.Dense, sj.Diagonal): sj.Dense,
        ("matmul", sj.Kronecker, sj.Kronecker): sj.Kronecker,
        ("matmul", sj.Dense, sj.BlockRow): sj.Dense,
        ("matmul", sj.ScaledIdentity, sj.Jacobian): SAME_AS_RIGHT,
        ("matmul", sj.Identity, sj.Jacobian): SAME_AS_RIGHT,
    }
    table = {(r.operation, r.left, r.right): r.result for r in rows}
    for key, result in lecture.items():
        assert table[key] == result, key
    assert rule_for("matmul", sj.BlockRow, sj.Dense).result is sj.BlockRow


def test_mixed_dtypes_follow_result_type():
    a32 = sj.Diagonal(np.ones(3, dtype=np.float32))
    a64 = sj.Diagonal(np.ones(3))
    assert (a32 @ a32).dtype == np.float32
    assert (a32 @ a64).dtype == np.float64
    assert (a32 + sj.Identity(3, dtype=np.float32)).dtype == np.float32
    assert (
        a32 @ sj.Identity(3)
    ).dtype == np.float64  # numpy's rule: float32 with float64 is float64
    assert (sj.Diagonal(np.arange(3)) @ a32).dtype == np.float64  # integers became float64
    assert (2 * a32).dtype == np.float32 and (a32 / 3).dtype == np.float32


def test_fall_is_visible_and_strict_raises():
    K, _ = make("Kronecker", (6, 6), np.random.default_rng(0))
    B, _ = make("BlockRow", (6, 6), np.random.default_rng(1))
    with pytest.warns(sj.StructureLostWarning, match=r"add\(Kronecker, BlockRow\)"):
        result = K + B
    assert isinstance(result, sj.Sparse)
    with sj.strict():
        with pytest.raises(sj.StructureLostError, match="Kronecker"):
            K + B
        with sj.strict(False):
            with pytest.warns(sj.StructureLostWarning):
                K + B
    with pytest.warns(sj.StructureLostWarning):
        K + B  # strict mode ended with its block


def test_lecture_layer_rules_keep_structure():
    """da/dw_i = diag(g') (e_i x^T) = e_i (g'_i x^T); da/dx = diag(g') W; da/dW = diag(g') (I (x) x^T)."""
    rng = np.random.default_rng(0)
    g, x, W = rng.uniform(size=3), rng.standard_normal(2), rng.standard_normal((3, 2))
    G = sj.Diagonal(g)
    da_dw2 = G @ sj.BlockRow(1, x, 3)
    assert isinstance(da_dw2, sj.BlockRow) and da_dw2.index == 1
    np.testing.assert_allclose(da_dw2.row, g[1] * x)
    da_dx = G @ sj.Dense(W)
    np.testing.assert_allclose(da_dx.to_dense(), g[:, None] * W)
    da_dW = G @ sj.Kronecker(sj.Identity(3), sj.Dense(x[None, :]))
    assert isinstance(da_dW, sj.Kronecker)
    np.testing.assert_allclose(da_dW.to_dense(), np.diag(g) @ np.kron(np.eye(3), x[None, :]))


def test_identity_returns_the_operand_itself():
    D = sj.Dense(np.ones((3, 3)))
    assert sj.Identity(3) @ D is D and D @ sj.Identity(3) is D
    Z = sj.Zero((3, 3))
    assert (Z + D) is D and (D + Z) is D
