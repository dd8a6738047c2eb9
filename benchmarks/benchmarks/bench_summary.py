"""Tracked ratios, one number per benchmark family: how much the structure saves.

``Summary.track_speedup``
    baseline time / structured time, measured here in one process (min of 3 calls each,
    after one warm-up call), at the largest size of the family where the baseline runs.
    The baseline is the ``dense`` form when the family has one, else its second form
    (``numpy`` for the network).
``Summary.track_bytes_ratio``
    dense bytes / structured bytes of the result at that size (families that track
    ``stored_bytes`` only; 1.0 elsewhere).

The per-size, per-form timings themselves are the ``time_op`` benchmarks of each family.
"""

from __future__ import annotations

import inspect
import timeit

from . import (
    bench_chain,
    bench_layers,
    bench_losses,
    bench_network,
    bench_ops,
    bench_rules,
)
from .common import StructuredVsDense, limit_threads


def _families():
    out = {}
    for mod in (bench_rules, bench_ops, bench_losses, bench_layers, bench_chain, bench_network):
        for name, cls in sorted(vars(mod).items()):
            if (
                inspect.isclass(cls)
                and issubclass(cls, StructuredVsDense)
                and not inspect.isabstract(cls)
                and not name.startswith("_")
                and cls.__module__ == mod.__name__
            ):
                out[f"{mod.__name__.rsplit('.', 1)[-1]}.{name}"] = cls
    return out


FAMILIES = _families()


def _baseline(cls):
    forms = list(cls.params[1])
    return "dense" if "dense" in forms else forms[1]


def _largest_common(bench, cls, baseline):
    for n in reversed(cls.params[0]):
        if bench.too_big(n, baseline) is None:
            return n
    return None


class Summary:
    params = [sorted(FAMILIES)]
    param_names = ["family"]
    timeout = 300
    rounds = 1

    def setup(self, family):
        limit_threads()
        cls = FAMILIES[family]
        self.family = family
        self.bench = cls()
        self.forms = (cls.params[1][0], _baseline(cls))
        self.n = _largest_common(self.bench, cls, self.forms[1])
        if self.n is None:
            raise NotImplementedError(f"{family}: the baseline runs at no size")

    def _build(self):
        try:
            fs = [self.bench.build(self.n, form) for form in self.forms]
            outs = [f() for f in fs]  # compile, warm up
        except NotImplementedError:
            raise
        except Exception as exc:  # a broken family fails in its own time_op benchmark
            raise NotImplementedError(f"{self.family}: {type(exc).__name__}: {exc}") from None
        return fs, outs

    def track_speedup(self, family):
        (structured, other), _ = self._build()
        t_s = min(timeit.repeat(structured, number=1, repeat=3))
        t_o = min(timeit.repeat(other, number=1, repeat=3))
        return t_o / t_s

    track_speedup.unit = "x (baseline / structured)"

    def track_bytes_ratio(self, family):
        if getattr(self.bench, "track_stored_bytes", None) is None:
            return 1.0
        _, (s, o) = self._build()
        return _nbytes(o) / max(1, _nbytes(s))

    track_bytes_ratio.unit = "x (dense bytes / structured bytes)"

    def track_size(self, family):
        """The ``n`` at which the two ratios are measured."""
        return self.n

    track_size.unit = "n"


def _nbytes(obj):
    from .bench_layers import _stored

    return _stored(obj)
