"""The command line, end to end at small sizes: output, argument checks, pipes."""

import os
import re
import subprocess
import sys

import pytest

import structjac
from structjac.__main__ import WIDTH, _count, _fmt_bytes, _fmt_count, main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(*argv, **kwargs):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run(
        [sys.executable, "-m", "structjac", *argv],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        **kwargs,
    )


def test_walk_small(capsys):
    assert main(["--n", "1000", "--progress"]) == 0
    captured = capsys.readouterr()
    out = captured.out
    for word in (
        "Diagonal",
        "BlockRow",
        "Kronecker",
        "StackedKronecker",
        "value_and_grad",
        "max relative error",
    ):
        assert word in out
    err = float(out.split("max relative error")[1].split()[0])
    assert err < 1e-12
    long = [line for line in out.splitlines() if len(line) > WIDTH]
    assert long == []
    assert re.search(r"\(\d+, \d+\)", out) is None  # no raw shape tuples
    assert "structjac" in captured.err  # the progress bar


def test_walk_without_progress(capsys):
    assert main(["--n", "100", "--no-progress"]) == 0
    assert capsys.readouterr().err == ""


def test_bench_small(capsys):
    assert main(["bench", "--sizes", "1e2", "1000", "--repeats", "3", "--progress"]) == 0
    captured = capsys.readouterr()
    out = captured.out
    assert "median of 3 runs after a warm-up" in out
    assert "speed-up" in out and "IQR" in out and "ratio" in out
    rows = [line for line in out.splitlines() if line.startswith(("sigmoid", "layer"))]
    assert len(rows) == 4 and rows[0].split()[2] == "100"
    assert all(len(line) <= WIDTH for line in out.splitlines())
    assert "bench" in captured.err


def test_bench_dense_skipped_above_the_limit(capsys):
    assert main(["bench", "--sizes", "100", "--repeats", "1", "--dense-limit", "0"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith(("sigmoid", "layer"))]
    assert len(rows) == 2 and all("skipped" in line for line in rows)


def test_bench_plot(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    target = tmp_path / "bench.png"
    assert main(["bench", "--sizes", "100", "200", "--repeats", "2", "--plot", str(target)]) == 0
    assert target.stat().st_size > 0


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--n", "abc"], "positive integer"),
        (["--n", "0"], "positive integer"),
        (["--n", "1.5"], "positive integer"),
        (["--n", "-3"], "positive integer"),
        (["bench", "--sizes", "x"], "positive integer"),
        (["bench", "--sizes=-1e3"], "positive integer"),
        (["bench", "--repeats", "0"], "positive integer"),
        (["bench", "--dense-limit", "-1"], "non-negative"),
        (["bench", "--plot", "/no/such/folder/b.png"], "does not exist"),
        (["bench", "--plot", "bench.txt"], ".png"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_bad_arguments_exit_2_before_any_work(argv, message, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "usage" in err and message in err


def test_plot_without_matplotlib_is_refused_before_work(monkeypatch, tmp_path, capsys):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "matplotlib" else real(name, *a),
    )
    with pytest.raises(SystemExit) as info:
        main(["bench", "--plot", str(tmp_path / "b.png")])
    assert info.value.code == 2
    captured = capsys.readouterr()
    assert "matplotlib" in captured.err and captured.out == ""


def test_numbers_in_scientific_notation():
    assert _count("1e3") == 1000 and _count("1_000") == 1000 and _count("20000") == 20000
    assert _fmt_count(1_280_000) == "1.28M" and _fmt_count(20_000) == "20,000"
    assert _fmt_bytes(16.4e15) == "16.4 PB" and _fmt_bytes(2e18) == "2000.0 PB"
    assert _fmt_bytes(999) == "999 B" and _fmt_bytes(65_536) == "65.5 kB"


def test_options_after_the_subcommand(capsys):
    assert (
        main(
            [
                "bench",
                "--sizes",
                "100",
                "--repeats",
                "1",
                "--dtype",
                "float64",
                "--seed",
                "3",
                "--no-progress",
            ]
        )
        == 0
    )
    assert "float64" in capsys.readouterr().out
    assert main(["--dtype", "float64", "bench", "--sizes", "100", "--repeats", "1"]) == 0
    assert "float64" in capsys.readouterr().out


def test_version(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"structjac {structjac.__version__}"


def test_help_and_module_entry_point():
    out = _run("--help")
    assert out.returncode == 0 and "bench" in out.stdout
    assert all(len(line) <= WIDTH for line in out.stdout.splitlines())


def test_closed_pipe_is_not_a_traceback():
    # the reader goes away after the first line, as `python -m structjac | head -1` does
    proc = subprocess.Popen(
        [sys.executable, "-m", "structjac", "--n", "200", "--no-progress"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=ROOT),
    )
    proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read().decode()
    proc.wait(timeout=300)
    assert "Traceback" not in err and "BrokenPipe" not in err
    assert proc.returncode in (0, 141)
