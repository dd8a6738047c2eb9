"""Seeded fuzz of structjac: random chains of structures against dense numpy.

Each chain starts from a random structure (every maker of ``tests/structures/makers.py``,
shapes from 0 x 0, 1 x 1 and empty up to 8 x 8, dtype float32, float64 or complex128 —
a complex structure is a real one times a complex scalar, so its entries are complex) and
applies 1 to 5 random steps: a product with another structure, a sum or difference with
one of the same shape, the transpose, the conjugate transpose, negation, scaling by a
scalar, division by a scalar, the inverse where the structure is square. After every step
the result is checked against the dense matrix the same steps give in numpy: its dtype,
shape and type, ``to_dense``, ``J @ x``, ``x @ J``, ``to_sparse`` and ``diagonal``.

An error is allowed only where the mathematics allows it: ``inv`` of a singular or
non-square matrix (``LinAlgError``) or of a structure with no closed-form inverse
(``NotImplementedError``). Anything else — a wrong value, a wrong dtype, any other
exception — is a failure, printed with the seed of its chain so it can be replayed
(``--replay SEED``).

Usage (from the repository root)::

    PYTHONPATH=. python scripts/fuzz.py --chains 10000 --seed 0
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import structjac as sj  # noqa: E402
from tests.structures.makers import MAKERS, make  # noqa: E402

DTYPES = (np.float32, np.float64, np.complex128)
SIZES = (0, 1, 1, 2, 3, 4, 6, 8)
STEPS = (
    "matmul",
    "matmul",
    "add",
    "subtract",
    "transpose",
    "H",
    "negate",
    "scale",
    "divide",
    "inv",
)


class Mismatch(AssertionError):
    """The structure and the dense reference disagree."""


@dataclass
class Report:
    chains: int = 0
    steps: int = 0
    checks: int = 0
    allowed_errors: dict = field(default_factory=dict)
    failures: list = field(default_factory=list)
    kinds_seen: set = field(default_factory=set)
    shapes_seen: set = field(default_factory=set)
    dtypes_seen: set = field(default_factory=set)

    def allow(self, name):
        self.allowed_errors[name] = self.allowed_errors.get(name, 0) + 1


def _tolerance(dtype, scale, steps):
    eps = np.finfo(np.dtype(dtype)).eps
    return 64 * eps * (1 + steps) * max(1.0, scale)


def _random_structure(rng, shape, dtype, report):
    """A random structure of ``shape`` and ``dtype`` and its dense matrix, or None."""
    kinds = list(MAKERS)
    rng.shuffle(kinds)
    real = np.float32 if dtype == np.float32 else np.float64
    for kind in kinds:
        made = make(kind, shape, np.random.default_rng(rng.integers(2**63)), real)
        if made is None:
            continue
        J, M = made
        if np.dtype(dtype).kind == "c":
            c = complex(rng.uniform(0.5, 1.5), rng.uniform(-1.5, 1.5))
            J, M = J * c, M * np.complex128(c)
        report.kinds_seen.add(kind)
        return kind, J, M.astype(np.result_type(M.dtype, dtype))
    return None


def _check(J, M, dtype, scale, steps, rng, where):
    """Compare a structure with its dense reference (dtype, shape, values, products)."""
    if not isinstance(J, sj.Jacobian):
        raise Mismatch(f"{where}: result is {type(J).__name__}, not a Jacobian")
    if J.dtype != np.dtype(dtype):
        raise Mismatch(f"{where}: dtype {J.dtype}, expected {np.dtype(dtype)} ({type(J).__name__})")
    if J.shape != M.shape:
        raise Mismatch(f"{where}: shape {J.shape}, expected {M.shape} ({type(J).__name__})")
    tol = _tolerance(dtype, scale, steps)
    m, n = M.shape

    def close(got, expected, what):
        got = np.asarray(got)
        if got.shape != expected.shape:
            raise Mismatch(f"{where}: {what} has shape {got.shape}, expected {expected.shape}")
        if got.size and not np.all(np.abs(got - expected) <= tol * (1 + np.abs(expected))):
            error = np.max(np.abs(got - expected))
            raise Mismatch(
                f"{where}: {what} of {type(J).__name__} off by {error:.3g} (tolerance {tol:.3g})"
            )

    D = J.to_dense()
    if D.dtype != np.dtype(dtype):
        raise Mismatch(f"{where}: to_dense() dtype {D.dtype}, expected {np.dtype(dtype)}")
    close(D, M, "to_dense()")
    x = rng.standard_normal(n).astype(dtype)
    g = rng.standard_normal(m).astype(dtype)
    X = rng.standard_normal((n, 2)).astype(dtype)
    close(J @ x, M @ x, "J @ x")
    close(g @ J, g @ M, "g @ J")
    close(J @ X, M @ X, "J @ X")
    S = J.to_sparse()
    if S.dtype != np.dtype(dtype):
        raise Mismatch(f"{where}: to_sparse() dtype {S.dtype}, expected {np.dtype(dtype)}")
    close(S.toarray(), M, "to_sparse()")
    d = J.diagonal()
    if d.dtype != np.dtype(dtype):
        raise Mismatch(f"{where}: diagonal() dtype {d.dtype}, expected {np.dtype(dtype)}")
    close(d, np.diagonal(M), "diagonal()")
    return 6


def _scale_of(M):
    return float(np.max(np.abs(M))) if M.size else 0.0


def _scalar(rng, dtype):
    c = rng.choice([-1.0, 1.0]) * rng.uniform(0.25, 4.0)
    if np.dtype(dtype).kind == "c" and rng.uniform() < 0.5:
        return complex(c, rng.uniform(-2, 2))
    return np.dtype(dtype).type(c) if rng.uniform() < 0.5 else float(c)


def run_chain(seed, report, max_steps=5):
    """One chain from ``seed``; raise on the first disagreement."""
    rng = np.random.default_rng(seed)
    dtype = DTYPES[rng.integers(len(DTYPES))]
    shape = (int(rng.choice(SIZES)), int(rng.choice(SIZES)))
    if rng.uniform() < 0.3:
        shape = (shape[0], shape[0])
    start = _random_structure(rng, shape, dtype, report)
    if start is None:
        return
    kind, J, M = start
    report.dtypes_seen.add(np.dtype(dtype).name)
    report.shapes_seen.add(shape)
    trail = [f"{kind}{shape} {np.dtype(dtype).name}"]
    scale = 1.0 + _scale_of(M)
    report.checks += _check(J, M, dtype, scale, 0, rng, " -> ".join(trail))
    for step in range(1, int(rng.integers(1, max_steps + 1)) + 1):
        operation = STEPS[rng.integers(len(STEPS))]
        m, n = J.shape
        if operation == "matmul":
            p = int(rng.choice(SIZES))
            if rng.uniform() < 0.5:
                other = _random_structure(rng, (n, p), dtype, report)
                if other is None:
                    continue
                name, K, N = other
                J, M = J @ K, M @ N
                trail.append(f"@ {name}{(n, p)}")
            else:
                other = _random_structure(rng, (p, m), dtype, report)
                if other is None:
                    continue
                name, K, N = other
                J, M = K @ J, N @ M
                trail.append(f"{name}{(p, m)} @")
            scale = scale * (1 + _scale_of(N)) * (1 + max(J.shape))
        elif operation in ("add", "subtract"):
            other = _random_structure(rng, (m, n), dtype, report)
            if other is None:
                continue
            name, K, N = other
            if rng.uniform() < 0.5:
                J, M = (J + K, M + N) if operation == "add" else (J - K, M - N)
                trail.append(f"{'+' if operation == 'add' else '-'} {name}")
            else:
                J, M = (K + J, N + M) if operation == "add" else (K - J, N - M)
                trail.append(f"{name} {'+' if operation == 'add' else '-'}")
            scale = scale + 1 + _scale_of(N)
        elif operation == "transpose":
            J, M = J.T, M.T
            trail.append(".T")
        elif operation == "H":
            J, M = J.H, M.conj().T
            trail.append(".H")
        elif operation == "negate":
            J, M = -J, -M
            trail.append("neg")
        elif operation in ("scale", "divide"):
            c = _scalar(rng, dtype)
            if isinstance(c, complex) and np.dtype(dtype).kind != "c":
                continue
            if operation == "scale":
                J, M = (c * J, M * c) if rng.uniform() < 0.5 else (J * c, M * c)
                trail.append(f"* {c!r}")
                scale *= abs(c)
            else:
                J, M = J / c, M / np.asarray(c, dtype=np.result_type(dtype, np.asarray(c).dtype))
                trail.append(f"/ {c!r}")
                scale /= abs(c)
            M = M.astype(dtype)
        elif operation == "inv":
            if m != n:
                try:
                    J.inv()
                except (np.linalg.LinAlgError, NotImplementedError):
                    report.allow(f"inv of a non-square {type(J).__name__}")
                    continue
                raise Mismatch(
                    f"{' -> '.join(trail)}: inv of a non-square {type(J).__name__} did not raise"
                )
            wide = np.complex128 if np.dtype(dtype).kind == "c" else np.float64
            try:
                Jinv = J.inv()
            except NotImplementedError:
                report.allow(f"inv: {type(J).__name__} has no closed form")
                continue
            except np.linalg.LinAlgError as error:
                if n and np.linalg.cond(M.astype(wide)) < 1e6 and "singular" in str(error):
                    raise Mismatch(
                        f"{' -> '.join(trail)}: inv says singular, cond(M) = "
                        f"{np.linalg.cond(M.astype(wide)):.3g}: {error}"
                    ) from error
                report.allow(f"inv: LinAlgError from {type(J).__name__}")
                continue
            cond = np.linalg.cond(M.astype(wide)) if n else 1.0
            if not np.isfinite(cond) or cond > 1e4:
                return  # the reference itself is not trustworthy beyond here
            J, M = Jinv, np.linalg.inv(M.astype(wide)).astype(dtype) if n else M
            trail.append(".inv()")
            scale = (1 + _scale_of(M)) * cond * (1 + n)
        report.steps += 1
        report.checks += _check(J, M, dtype, scale, step, rng, " -> ".join(trail))


def run(chains=10_000, seed=0, stop_after=20):
    """Run ``chains`` seeded chains; return the :class:`Report` (failures collected)."""
    report = Report()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sj.StructureLostWarning)
        for k in range(chains):
            chain_seed = seed * 1_000_003 + k
            report.chains += 1
            try:
                run_chain(chain_seed, report)
            except Exception as error:  # noqa: BLE001 — every failure is recorded
                report.failures.append(
                    (chain_seed, f"{type(error).__name__}: {error}", traceback.format_exc(limit=4))
                )
                if len(report.failures) >= stop_after:
                    break
    return report


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chains", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--replay", type=int, default=None, help="run one chain seed, raise its error"
    )
    args = parser.parse_args(argv)
    if args.replay is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", sj.StructureLostWarning)
            run_chain(args.replay, Report())
        print(f"chain {args.replay}: no failure")
        return 0
    start = time.perf_counter()
    report = run(args.chains, args.seed)
    elapsed = time.perf_counter() - start
    print(
        f"{report.chains} chains, {report.steps} steps, {report.checks} checks in {elapsed:.1f} s "
        f"(seed {args.seed})"
    )
    print(
        f"makers: {len(report.kinds_seen)} of {len(MAKERS)}; dtypes: {sorted(report.dtypes_seen)}; "
        f"shapes with a 0: {sum(0 in s for s in report.shapes_seen)}, 1x1: {(1, 1) in report.shapes_seen}, "
        f"0x0: {(0, 0) in report.shapes_seen}"
    )
    for name, count in sorted(report.allowed_errors.items()):
        print(f"  allowed: {name}: {count}")
    print(f"failures: {len(report.failures)}")
    for chain_seed, message, trace in report.failures:
        print(f"--- chain {chain_seed}: {message}\n{trace}")
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
