"""Every structure against its dense reference: the dense-oracle mixin.

Each test class supplies ``kind`` (a maker in ``makers.py``), the shapes to try, and what
its transpose and sparsity must be; it inherits the tests of value, transpose, matvec,
matmat, vjp, to_sparse, diagonal, scaling, the LinearOperator, immutability and dtype,
each in float32 and float64.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla

import structjac as sj

from .makers import make, tolerance

DTYPES = [np.float32, np.float64]


class DenseOracle:
    kind: str
    shapes = [(6, 6), (3, 6), (6, 3)]
    transpose_type: type | None = None  # default: the structure's own type
    invertible = False
    #: what ``inv()`` raises when there is no inverse (a singular or non-square matrix:
    #: LinAlgError; a structure with no closed-form inverse: NotImplementedError)
    no_inverse: type = np.linalg.LinAlgError

    def cases(self, dtype, seed=0):
        out = []
        for shape in self.shapes:
            made = make(self.kind, shape, np.random.default_rng(seed), dtype)
            if made is not None:
                out.append(made)
        assert out, f"no shape of {self.shapes} fits {self.kind}"
        return out

    def expected_nnz(self, J, M):
        return int(np.count_nonzero(M))

    @pytest.mark.parametrize("dtype", DTYPES)
    def test_to_dense(self, dtype):
        for J, M in self.cases(dtype):
            D = J.to_dense()
            assert isinstance(D, np.ndarray) and D.dtype == dtype and J.dtype == dtype
            assert J.shape == M.shape == D.shape
            np.testing.assert_array_equal(D, M)

    @pytest.mark.parametrize("dtype", DTYPES)
    def test_metadata_and_repr(self, dtype):
        for J, M in self.cases(dtype):
            assert J.ndim == 2
            assert J.dense_nbytes == M.nbytes
            assert J.nbytes == _stored_nbytes(J)
            text = repr(J)
            assert (
                type(J).__name__ in text and str(J.shape) in text and str(np.dtype(dtype)) in text
            )

    @pytest.mark.parametrize("dtype", DTYPES)
    def test_transpose(self, dtype):
        for J, M in self.cases(dtype):
            T = J.T
            assert isinstance(T, self.transpose_type or type(J))
            assert not isinstance(T, (sj.Dense, sj.Sparse)) or isinstance(J, (sj.Dense, sj.Sparse))
            np.testing.assert_array_equal(T.to_dense(), M.T)
            np.testing.assert_array_equal(T.T.to_dense(), M)

    @pytest.mark.parametrize("dtype", DTYPES)
    def test_matvec(self, dtype):
        rtol, atol = tolerance(dtype)
        rng = np.random.default_rng(1)
        for J, M in self.cases(dtype):
            x = rng.standard_normal(M.shape[1]).astype(dtype)
            y = J @ x
            assert y.shape == (M.shape[0],) and y.dtype == dtype
            np.testing.assert_allclose(y, M @ x, rtol=rtol, atol=atol)

    @pytest.mark.parametrize("dtype", DTYPES)
    def test_matmat(self, dtype):
        rtol, atol = tolerance(dtype)
        rng = np.random.default_rng(2)
        for J, M in self.cases(dtype):
            X = rng.standard_normal((M.shape[1], 4)).astype(dtype)
            Y = J @ X
            assert Y.shape == (M.shape[0], 4) and Y.dtype == dtype
            np.testing.assert_allclose(Y, M @ X, rtol=rtol, atol=atol)

    @pytest.mark.parametrize("dtype", DTYPES)
    def test_vjp(self, dtype):
        rtol, atol = tolerance(dtype)
        rng = np.random.default_rng(3)
        for J, M in self.cases(dtype):
            g = rng.standard_normal(M.shape[0]).astype(dtype)
            v = g @ J
            assert v.shape == (M.shape[1],) and v.dtype == dtype
            np.testing.assert_allclose(v, g @ M, rtol=rtol, atol=atol)
            G = rng.standard_normal((3, M.shape[0])).astype(dtype)
            V = G @ J
            assert V.shape == (3, M.shape[1]) and V.dtype == dtype
            np.testing.assert_allclose(V, G @ M, rtol=rtol, atol=atol)

    def test_mixed_dtype_application_follows_result_type(self):
        for J, M in self.cases(np.float32):
            x64 = np.ones(M.shape[1])
            assert (J @ x64).dtype == np.float64
            xi = np.ones(M.shape[1], dtype=np.int64)
            assert (J @ xi).dtype == np.float64
            np.testing.assert_allclose(J @ xi, M.astype(np.float64) @ xi, rtol=1e-6, atol=1e-6)

    @pytest.mark.parametrize("dtype", DTYPES)
    def test_to_sparse(self, dtype):
        for J, M in self.cases(dtype):
            S = J.to_sparse()
            assert isinstance(S, sp.csr_array) and S.dtype == dtype
            np.testing.assert_array_equal(S.toarray(), M)
            assert S.nnz == self.expected_nnz(J, M)

    @pytest.mark.parametrize("dtype", DTYPES)
    def test_structural_counts_bound_the_pattern(self, dtype):
        """nnz, n_nonzero_rows and n_nonzero_cols (what the chain planner asks) are
        upper bounds of the true pattern, and exact for the stored pattern's nnz."""
        for J, M in self.cases(dtype):
            S = J.to_sparse()
            rows = np.unique(S.tocoo().row).size
            cols = np.unique(S.tocoo().col).size
            assert isinstance(J.nnz, int) and isinstance(J.n_nonzero_rows, int)
            assert isinstance(J.n_nonzero_cols, int)
            assert S.nnz <= J.nnz <= M.size, (S.nnz, J.nnz)
            assert int(np.count_nonzero(M)) <= J.nnz
            assert rows <= J.n_nonzero_rows <= M.shape[0]
            assert cols <= J.n_nonzero_cols <= M.shape[1]
            assert np.count_nonzero(np.any(M != 0, axis=1)) <= J.n_nonzero_rows
            assert np.count_nonzero(np.any(M != 0, axis=0)) <= J.n_nonzero_cols

    @pytest.mark.parametrize("dtype", DTYPES)
    def test_diagonal(self, dtype):
        for J, M in self.cases(dtype):
            d = J.diagonal()
            assert d.dtype == dtype
            np.testing.assert_array_equal(d, np.diagonal(M))

    @pytest.mark.parametrize("dtype", DTYPES)
    def test_scale_negate_divide(self, dtype):
        rtol, atol = tolerance(dtype)
        for J, M in self.cases(dtype):
            for result, expected in [
                (2.5 * J, 2.5 * M),
                (J * -2, -2 * M),
                (-J, -M),
                (J / 4, M / 4),
            ]:
                assert result.dtype == dtype
                assert isinstance(result, sj.Jacobian)
                np.testing.assert_allclose(result.to_dense(), expected, rtol=rtol, atol=atol)
            assert type(-J).__name__ in {type(J).__name__, "ScaledIdentity"}

    @pytest.mark.parametrize("dtype", DTYPES)
    def test_linear_operator(self, dtype):
        rtol, atol = tolerance(dtype)
        rng = np.random.default_rng(4)
        for J, M in self.cases(dtype):
            A = J.aslinearoperator()
            assert isinstance(A, spla.LinearOperator) and A.dtype == dtype and A.shape == M.shape
            x = rng.standard_normal(M.shape[1]).astype(dtype)
            y = rng.standard_normal(M.shape[0]).astype(dtype)
            X = rng.standard_normal((M.shape[1], 3)).astype(dtype)
            np.testing.assert_allclose(A.matvec(x), M @ x, rtol=rtol, atol=atol)
            np.testing.assert_allclose(A.rmatvec(y), M.T @ y, rtol=rtol, atol=atol)
            np.testing.assert_allclose(A.matmat(X), M @ X, rtol=rtol, atol=atol)
            np.testing.assert_allclose(A.H.matvec(y), M.T @ y, rtol=rtol, atol=atol)
            np.testing.assert_allclose(A.T.matvec(y), M.T @ y, rtol=rtol, atol=atol)

    def test_immutable(self):
        for J, M in self.cases(np.float64):
            with pytest.raises(AttributeError):
                J.shape = (1, 1)
            with pytest.raises(AttributeError):
                J.anything = 1
            with pytest.raises(TypeError, match=r"to_dense\(\)"):
                np.asarray(J)  # never densified implicitly
            dense = J.to_dense()
            dense[...] = 7.0  # to_dense hands out a copy
            np.testing.assert_array_equal(J.to_dense(), M)

    def test_inputs_not_written(self):
        rng = np.random.default_rng(5)
        for J, M in self.cases(np.float64):
            x = rng.standard_normal(M.shape[1])
            x.flags.writeable = False
            J @ x
            g = rng.standard_normal(M.shape[0])
            kept = g.copy()
            g @ J
            np.testing.assert_array_equal(g, kept)

    def test_inv(self):
        for J, M in self.cases(np.float64):
            if self.invertible and M.shape[0] == M.shape[1]:
                Jinv = J.inv()
                assert isinstance(Jinv, type(J)) or isinstance(J, sj.Identity)
                np.testing.assert_allclose(Jinv.to_dense() @ M, np.eye(M.shape[0]), atol=1e-10)
                continue
            expected = np.linalg.LinAlgError if self.invertible else self.no_inverse
            with pytest.raises(expected, match="square|singular|closed-form"):
                J.inv()


def _stored_nbytes(J):
    """The bytes of the arrays a structure holds, recounted from its slots (its own
    ``nbytes`` is not consulted): nested structures, sparse matrices and tuples walked;
    a broadcast array (a stride of 0) counts what it stores, an Identity nothing."""

    def count(value):
        if isinstance(value, sj.Identity):
            return 0  # I stores nothing
        if isinstance(value, sj.Jacobian):
            names = {
                n for klass in type(value).__mro__ for n in klass.__dict__.get("__slots__", ())
            }
            if getattr(value, "_scalar_index", False):
                names.discard("_indices")  # one row index is a Python int, not an array
            return sum(count(getattr(value, n)) for n in names if hasattr(value, n))
        if isinstance(value, np.ndarray):
            if any(s == 0 and k > 1 for s, k in zip(value.strides, value.shape)):
                index = tuple(slice(0, 1) if s == 0 else slice(None) for s in value.strides)
                return value[index].nbytes
            return value.nbytes
        if sp.issparse(value):
            return value.data.nbytes + value.indices.nbytes + value.indptr.nbytes
        if isinstance(value, (tuple, list)):
            return sum(count(v) for v in value)
        return 0

    return count(J)


class TestIdentity(DenseOracle):
    kind = "Identity"
    invertible = True

    def test_no_copy_and_no_storage(self):
        I = sj.Identity(5)
        D = sj.Diagonal(np.arange(5.0))
        assert I @ D is D and D @ I is D and I.nbytes == 0
        assert I.inv() is I


class TestScaledIdentity(DenseOracle):
    kind = "ScaledIdentity"
    invertible = True

    def test_stores_one_number(self):
        assert sj.ScaledIdentity(10**6, 0.5).nbytes == 8
        assert sj.ScaledIdentity(4, np.float32(2)).dtype == np.float32


class TestZero(DenseOracle):
    kind = "Zero"


class TestDiagonal(DenseOracle):
    kind = "Diagonal"
    invertible = True

    def test_lecture_sum_product_inverse(self):
        a, b = np.array([1.0, 2.0, 3.0]), np.array([4.0, 5.0, 6.0])
        A, B = sj.Diagonal(a), sj.Diagonal(b)
        np.testing.assert_array_equal((A + B).diagonal(), a + b)  # diag(a1+b1, a2+b2, ...)
        np.testing.assert_array_equal((A @ B).diagonal(), a * b)  # diag(a1 b1, a2 b2, ...)
        np.testing.assert_allclose(A.inv().diagonal(), 1 / a)


class TestBlockRow(DenseOracle):
    kind = "BlockRow"
    transpose_type = sj.BlockColumn

    def expected_nnz(self, J, M):
        return J.shape[1]  # a one-row BlockRow stores its whole row

    def test_zero_entries_are_stored(self):
        B = sj.BlockRow(1, np.array([0.0, 2.0, 0.0]), 4)
        assert B.to_sparse().nnz == 3


class TestBlockRowMany(DenseOracle):
    kind = "BlockRow[2 rows]"
    transpose_type = sj.BlockColumn

    def expected_nnz(self, J, M):
        return 2 * J.shape[1]


class TestBlockColumn(DenseOracle):
    kind = "BlockColumn"
    transpose_type = sj.BlockRow

    def expected_nnz(self, J, M):
        return J.shape[0]


class TestKronecker(DenseOracle):
    kind = "Kronecker"
    shapes = [(6, 6), (3, 6), (6, 3)]
    invertible = True

    def expected_nnz(self, J, M):
        return J.A.to_sparse().nnz * J.B.to_sparse().nnz

    def test_applies_without_densifying(self, monkeypatch):
        K, M = make("Kronecker", (6, 6), np.random.default_rng(0))

        def refuse(*args, **kwargs):
            raise AssertionError("densified")

        for part in (K, K.A, K.B):
            monkeypatch.setattr(type(part), "to_dense", refuse)
            monkeypatch.setattr(type(part), "to_sparse", refuse)
        x = np.arange(6.0)
        np.testing.assert_allclose(K @ x, M @ x)
        np.testing.assert_allclose(x @ K, x @ M)


class TestKroneckerIdentity(TestKronecker):
    kind = "Kronecker[I (x) B]"
    shapes = [(6, 6), (3, 6)]


class TestKroneckerDenseScaledIdentity(TestKronecker):
    kind = "Kronecker[W (x) cI]"
    shapes = [(6, 6), (4, 6), (6, 2)]


class TestKroneckerRowLeft(DenseOracle):
    kind = "Kronecker[a^T (x) B]"


class TestKroneckerColumnLeft(DenseOracle):
    kind = "Kronecker[a (x) B]"


class TestStackedKronecker(DenseOracle):
    kind = "StackedKronecker"
    shapes = [(6, 6), (3, 6), (6, 3), (4, 6)]
    transpose_type = sj.Transposed
    no_inverse = NotImplementedError


class TestTransposedStackedKronecker(DenseOracle):
    kind = "Transposed[StackedKronecker]"
    shapes = [(6, 6), (3, 6), (6, 3), (6, 4)]
    transpose_type = sj.StackedKronecker
    no_inverse = NotImplementedError


class TestRowScaled(DenseOracle):
    kind = "RowScaled"
    shapes = [(6, 6), (3, 6), (6, 3), (4, 6)]
    transpose_type = sj.Transposed
    no_inverse = NotImplementedError


class TestDense(DenseOracle):
    kind = "Dense"
    invertible = True


class TestSparse(DenseOracle):
    kind = "Sparse"
    invertible = True

    def expected_nnz(self, J, M):
        return int(np.count_nonzero(M))


def test_structures_do_not_densify_when_applied(monkeypatch):
    """Diagonal, BlockRow and BlockColumn apply without building their dense matrix."""
    rng = np.random.default_rng(0)
    for kind in ("Diagonal", "BlockRow", "BlockRow[2 rows]", "BlockColumn", "ScaledIdentity"):
        J, M = make(kind, (6, 6), rng)
        monkeypatch.setattr(type(J), "to_dense", lambda self: (_ for _ in ()).throw(AssertionError))
        x = rng.standard_normal(6)
        np.testing.assert_allclose(J @ x, M @ x)
        np.testing.assert_allclose(x @ J, x @ M)
        monkeypatch.undo()


def test_scipy_solvers_accept_the_operator():
    rng = np.random.default_rng(0)
    d = rng.uniform(1.0, 3.0, 50)
    A = sj.Diagonal(d).aslinearoperator()
    b = rng.standard_normal(50)
    for solver in (spla.cg, spla.gmres):
        x, info = solver(A, b, rtol=1e-12)
        assert info == 0
        np.testing.assert_allclose(x, b / d, rtol=1e-8)
    K, M = make("Kronecker", (3, 6), rng)
    y = rng.standard_normal(3)
    x = spla.lsqr(K.aslinearoperator(), y, atol=1e-14, btol=1e-14)[0]
    np.testing.assert_allclose(x, np.linalg.lstsq(M, y, rcond=None)[0], rtol=1e-6, atol=1e-8)


def test_as_jacobian():
    D = sj.Diagonal(np.ones(2))
    assert sj.as_jacobian(D) is D
    assert isinstance(sj.as_jacobian(np.ones((2, 3))), sj.Dense)
    assert isinstance(sj.as_jacobian(sp.eye(3, format="lil")), sj.Sparse)
    s = sj.as_jacobian(np.float32(2.0), n=4)
    assert isinstance(s, sj.ScaledIdentity) and s.shape == (4, 4) and s.dtype == np.float32
    with pytest.raises(ValueError, match=r"\(3,\)"):
        sj.as_jacobian(np.ones(3))


def test_matmul_with_scipy_sparse_operands():
    S = sp.random_array((4, 4), density=0.5, random_state=0, format="csr")
    D = sj.Diagonal(np.arange(1.0, 5.0))
    np.testing.assert_allclose((D @ S).to_dense(), np.diag(np.arange(1.0, 5.0)) @ S.toarray())
    np.testing.assert_allclose((S @ D).to_dense(), S.toarray() @ np.diag(np.arange(1.0, 5.0)))


def test_complex_linear_operator_adjoint_conjugates():
    rng = np.random.default_rng(7)
    M = rng.standard_normal((3, 4)) + 1j * rng.standard_normal((3, 4))
    d = rng.standard_normal(3) + 1j * rng.standard_normal(3)
    for J, dense in [
        (sj.Dense(M), M),
        (sj.Diagonal(d), np.diag(d)),
        (sj.Kronecker(sj.Dense(M[:1, :2]), sj.Diagonal(d)), np.kron(M[:1, :2], np.diag(d))),
    ]:
        A = J.aslinearoperator()
        y = rng.standard_normal(dense.shape[0]) + 1j * rng.standard_normal(dense.shape[0])
        x = rng.standard_normal(dense.shape[1]) + 1j * rng.standard_normal(dense.shape[1])
        assert A.dtype == np.complex128
        np.testing.assert_allclose(A.matvec(x), dense @ x)
        np.testing.assert_allclose(A.rmatvec(y), dense.conj().T @ y)
        np.testing.assert_allclose(A.H.matvec(y), dense.conj().T @ y)
        np.testing.assert_allclose(A.H.rmatvec(x), dense @ x)
        np.testing.assert_allclose(A.T.matvec(y), dense.T @ y)


def test_every_maker_has_an_oracle_class():
    """Each maker in makers.py is checked against its dense reference by a DenseOracle class."""
    import importlib
    import inspect

    from .makers import MAKERS

    covered = set()
    for module in ("test_oracle", "test_block_diagonal", "test_block_matrix"):
        found = importlib.import_module(f"tests.structures.{module}")
        for _, cls in inspect.getmembers(found, inspect.isclass):
            if issubclass(cls, DenseOracle) and cls.__name__.startswith("Test"):
                covered.add(cls.kind)
    assert set(MAKERS) - covered == set(), "makers without an oracle class"


def test_hypothesis_is_seeded():
    """The suite's hypothesis profile derandomizes the property tests (tests/conftest.py)."""
    import os

    from hypothesis import settings

    assert settings().derandomize or os.environ.get("HYPOTHESIS_PROFILE") == "random"
