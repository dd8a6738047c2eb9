"""``python -m structjac --dask`` on a 2-worker LocalCluster."""

import subprocess
import sys

import pytest

pytest.importorskip("dask")
pytest.importorskip("distributed")


def test_dask_job_runs_and_matches_memory():
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "structjac",
            "--dask",
            "--n",
            "30000",
            "--chunk",
            "10000",
            "--dtype",
            "float64",
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert "2 workers" in lines[0]
    assert any("3 chunks of 10,000 rows" in line for line in lines)
    diff = [line for line in lines if "max relative difference" in line]
    assert len(diff) == 1 and float(diff[0].split()[-1]) < 1e-12
    assert all(len(line) <= 88 for line in lines)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--dask", "--workers", "0"], "--workers"),
        (["--dask", "--chunk", "-5"], "--chunk"),
        (["--dask", "bench"], "does not combine with bench"),
    ],
)
def test_dask_job_bad_arguments(argv, message):
    run = subprocess.run(
        [sys.executable, "-m", "structjac", *argv], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 2
    assert message in run.stderr
