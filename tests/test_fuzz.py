"""A seeded slice of the fuzz in scripts/fuzz.py: random chains of structures against numpy.

The full run (10,000 chains) is ``PYTHONPATH=. python scripts/fuzz.py --chains 10000``.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

import structjac as sj

from .structures.makers import MAKERS

_PATH = Path(__file__).resolve().parents[1] / "scripts" / "fuzz.py"
_SPEC = importlib.util.spec_from_file_location("structjac_fuzz", _PATH)
fuzz = importlib.util.module_from_spec(_SPEC)
sys.modules.setdefault(_SPEC.name, fuzz)
_SPEC.loader.exec_module(fuzz)


@pytest.fixture(scope="module")
def report():
    return fuzz.run(chains=400, seed=20261203, stop_after=5)


def test_fuzz_slice_finds_nothing(report):
    details = "\n".join(
        f"chain {seed}: {message}\n{trace}" for seed, message, trace in report.failures
    )
    assert not report.failures, details


def test_fuzz_slice_reaches_every_structure_dtype_and_edge_shape(report):
    assert report.kinds_seen == set(MAKERS)
    assert report.dtypes_seen == {"float32", "float64", "complex128"}
    assert {(0, 0), (1, 1)} <= report.shapes_seen
    assert any(0 in shape and shape != (0, 0) for shape in report.shapes_seen)
    assert report.steps > 400 and report.checks > 10 * report.chains


def test_fuzz_finds_an_injected_wrong_value(monkeypatch):
    """The fuzz can fail: a Diagonal that applies 1.01 d instead of d is caught."""
    original = sj.Diagonal._matmat
    monkeypatch.setattr(sj.Diagonal, "_matmat", lambda self, X: 1.01 * original(self, X))
    caught = fuzz.run(chains=200, seed=1, stop_after=1)
    assert caught.failures and "off by" in caught.failures[0][1]


def test_fuzz_finds_an_injected_wrong_dtype(monkeypatch):
    """... and a float32 Dense whose transpose comes back in float64."""
    original = sj.Dense._transpose

    def widened(self):
        T = original(self)
        return T.astype(np.float64) if T.dtype == np.float32 else T

    monkeypatch.setattr(sj.Dense, "_transpose", widened)
    caught = fuzz.run(chains=300, seed=2, stop_after=1)
    assert caught.failures and "dtype" in caught.failures[0][1]
