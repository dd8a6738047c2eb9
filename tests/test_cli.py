"""The command line, end to end at small sizes."""

import subprocess
import sys

import pytest

from structjac.__main__ import main


def test_walk_small(capsys):
    assert main(["--n", "1000"]) == 0
    out = capsys.readouterr().out
    for word in ("Diagonal", "BlockRow", "Kronecker", "StackedKronecker", "value_and_grad",
                 "max relative error"):
        assert word in out
    err = float(out.split("max relative error")[1].split()[0])
    assert err < 1e-12


def test_bench_small(capsys):
    assert main(["bench", "--sizes", "100", "1000"]) == 0
    captured = capsys.readouterr()
    assert "structured" in captured.out and "#" in captured.err


def test_bench_plot(tmp_path, capsys):
    target = tmp_path / "bench.png"
    code = main(["bench", "--sizes", "100", "--plot", str(target)])
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert code == 1
        assert "matplotlib" in capsys.readouterr().err
    else:
        assert code == 0 and target.exists()


@pytest.mark.parametrize("argv", [["--n", "abc"], ["--n", "0"], ["bench", "--sizes", "x"], ["frobnicate"]])
def test_bad_arguments_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert "usage" in capsys.readouterr().err


def test_help_and_module_entry_point():
    out = subprocess.run([sys.executable, "-m", "structjac", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "bench" in out.stdout
