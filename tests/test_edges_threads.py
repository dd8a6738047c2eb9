"""Parallel kernels: concurrent callers under Numba's ``workqueue`` threading layer, and
the choice of the serial kernel on a busy machine (issue 13).

The layer is not thread-safe: two Python threads inside parallel kernels at once used
to abort the whole process (SIGABRT, "Concurrent access has been detected").  The
layer must be chosen before Numba's first parallel call, so each case runs in a fresh
interpreter.
"""

import pytest

from tests.kernels.support import run_python


def _has_omp():
    try:
        from numba.np.ufunc import omppool  # noqa: F401
    except ImportError:
        return False
    return True


needs_omp = pytest.mark.skipif(not _has_omp(), reason="Numba's OpenMP layer is not built here")

#: 8 threads, each calling ops on 2**17 elements (above the parallel threshold) and
#: checking every result against numpy; the parent checks the exit status.
_CONCURRENT = """
    import threading
    import numpy as np, numba
    import structjac as sj
    from structjac import ops, kernels as K

    n = 2 * max(K.get_parallel_threshold(), 65536)
    K.set_parallel_threshold(0)              # parallel kernels even on a busy machine
    x = np.linspace(-4, 4, n)
    g = np.cos(x)
    s = 1 / (1 + np.exp(-x))
    cube = sj.elementwise(lambda v: v * v * v, name="cube")
    failures = []

    def work():
        try:
            for _ in range(25):
                assert np.allclose(ops.sigmoid(x), s)
                assert np.allclose(ops.tanh.vjp(x, g), g * (1 - np.tanh(x) ** 2))
                assert np.allclose(ops.multiply.vjp(x, x, g)[0], g * x)
                assert np.allclose(cube.derivative(x), 3 * x * x)
                assert np.allclose(ops.softmax(x.reshape(-1, 4)).sum(axis=1), 1)
        except BaseException as exc:          # reported by the parent, not swallowed
            failures.append(repr(exc))

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures, failures
    print(numba.threading_layer())
"""


@pytest.mark.parametrize("layer", ["workqueue", pytest.param("omp", marks=needs_omp)])
def test_eight_threads_calling_parallel_kernels_do_not_abort(layer):
    out = run_python(_CONCURRENT, {"NUMBA_THREADING_LAYER": layer})
    assert out.split()[-1] == layer


def test_workqueue_still_runs_the_parallel_kernel_for_a_single_caller():
    code = """
        import numpy as np, numba
        from structjac.kernels import unary, _config
        x = np.linspace(-3, 3, 2 * _config.PARALLEL_THRESHOLD)
        _config.LOAD_AWARE = False           # parallel kernels even on a busy machine
        unary.sigmoid(x)
        assert numba.threading_layer() == "workqueue"
        chosen = _config.pick(unary._sigmoid_serial, unary._sigmoid_parallel, x.size)
        # not thread-safe: a guarded choice that runs the parallel kernel when free
        assert chosen is not unary._sigmoid_parallel and chosen.parallel is unary._sigmoid_parallel
        assert unary._sigmoid_parallel.signatures
        print("ok")
    """
    assert run_python(code, {"NUMBA_THREADING_LAYER": "workqueue"}).strip() == "ok"


@needs_omp
def test_a_threadsafe_layer_calls_the_parallel_kernel_directly():
    code = """
        import numpy as np
        from structjac.kernels import unary, _config
        x = np.linspace(-3, 3, 2 * _config.PARALLEL_THRESHOLD)
        _config.LOAD_AWARE = False           # parallel kernels even on a busy machine
        unary.sigmoid(x)
        chosen = _config.pick(unary._sigmoid_serial, unary._sigmoid_parallel, x.size)
        assert chosen is unary._sigmoid_parallel
        print("ok")
    """
    assert run_python(code, {"NUMBA_THREADING_LAYER": "omp"}).strip() == "ok"


# ---------------------------------------------------------------- a busy machine
# The policy is tested by giving pick() the scheduler's count of runnable tasks; how
# long the kernels take is measured by scripts, not by tests.

from structjac.kernels import _config  # noqa: E402


@pytest.fixture
def machine(monkeypatch):
    """Set the number of runnable tasks pick() sees (None: no /proc/loadavg)."""
    seen = {"runnable": 1}
    monkeypatch.setattr(_config, "_runnable_tasks", lambda: seen["runnable"])
    monkeypatch.setattr(_config, "LOAD_SAMPLE_SECONDS", 0.0)
    monkeypatch.setattr(_config, "_LOAD_READING", (-float("inf"), True))
    monkeypatch.setattr(_config.numba, "get_num_threads", lambda: 2)
    monkeypatch.setattr(_config.os, "cpu_count", lambda: 4)
    monkeypatch.setattr(_config, "_layer_is_threadsafe", lambda: True)
    return seen


def _chosen(n=None):
    return _config.pick("serial", "parallel", n or 2 * _config.PARALLEL_THRESHOLD)


def test_parallel_when_a_cpu_is_idle_for_each_thread(machine):
    for runnable in (None, 1, 2, 3):  # this thread + 2 others leave 2 of 4 CPUs
        machine["runnable"] = runnable
        assert _chosen() == "parallel", runnable


def test_serial_on_a_busy_machine(machine):
    for runnable in (4, 5, 40):  # fewer than 2 idle CPUs: a thread would wait
        machine["runnable"] = runnable
        assert _chosen() == "serial", runnable


def test_threshold_zero_or_load_aware_off_force_parallel(machine, monkeypatch):
    machine["runnable"] = 40
    monkeypatch.setattr(_config, "PARALLEL_THRESHOLD", 0)
    assert _chosen(10) == "parallel"
    monkeypatch.setattr(_config, "PARALLEL_THRESHOLD", 65536)
    monkeypatch.setattr(_config, "LOAD_AWARE", False)
    assert _chosen() == "parallel"


def test_the_load_is_read_at_most_once_per_sample_period(machine, monkeypatch):
    reads = []
    monkeypatch.setattr(_config, "_runnable_tasks", lambda: reads.append(1) or 40)
    monkeypatch.setattr(_config, "LOAD_SAMPLE_SECONDS", 3600.0)
    assert [_chosen() for _ in range(50)] == ["serial"] * 50
    assert len(reads) == 1


def test_runnable_tasks_reads_the_scheduler_count():
    n = _config._runnable_tasks()
    try:
        with open("/proc/loadavg", "rb") as f:
            fields = f.read().split()
    except OSError:
        assert n is None
        return
    assert isinstance(n, int) and 1 <= n <= int(fields[3].split(b"/")[1])
