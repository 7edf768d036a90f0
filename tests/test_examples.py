"""The examples run as-is from the command line (at a reduced size)."""

import subprocess
import sys

import numpy as np
import pytest

import simcore as sc


@pytest.mark.parametrize("script, args", [
    ("examples/quickstart.py", ["--grid", "16", "--frames", "4"]),
    ("examples/materials_gallery.py", ["--grid", "32", "--frames", "4"]),
])
def test_example_runs(script, args, tmp_path):
    out = tmp_path / "out.npz"
    proc = subprocess.run([sys.executable, script, *args, "--out", str(out)], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    traj = sc.Trajectory.load(out)
    assert traj.frames == 4 and np.isfinite(traj.x).all()


def test_throw_example_reaches_target():
    """examples/throw.py at a reduced size: the best landing loss falls at least 20× (and the
    landing comes within a cell of the target)."""
    import re

    proc = subprocess.run([sys.executable, "examples/throw.py", "--iters", "12", "--grid", "24", "--frames", "40"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    last = proc.stdout.strip().splitlines()[-1]
    cells = float(re.search(r"\(([0-9.]+) cells\)", last).group(1))
    factor = float(re.search(r"loss fell ([0-9.e+]+)x", last).group(1))
    assert factor >= 20 and cells < 1.0, last


def test_column_collapse_example_prints_one_row_per_column():
    """examples/column_collapse_lube.py at a reduced size: a finite run-out and height for each of its
    three aspect ratios, beside Lube et al.'s values."""
    proc = subprocess.run([sys.executable, "examples/column_collapse_lube.py", "--grid", "32", "--seconds", "0.5"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [line.split("|")[1:-1] for line in proc.stdout.splitlines() if line.startswith("| ") and "simcore" not in line]
    assert [float(r[0]) for r in rows] == [0.8, 2.0, 5.0]
    assert all(np.isfinite(float(r[1])) and float(r[1]) > 0 and float(r[4]) > 0 for r in rows)
    assert [float(r[2]) for r in rows] == [0.96, 2.40, 5.56]  # Lube et al. 2005's laws at a = 0.8, 2, 5


def test_column_collapse_example_options():
    """--aspect picks the columns, --cfl sets the time step and --rheology mu_i the μ(I) material: one
    row, a = 2, finite."""
    proc = subprocess.run([sys.executable, "examples/column_collapse_lube.py", "--grid", "32", "--seconds", "0.25",
                           "--aspect", "2", "--cfl", "0.2", "--rheology", "mu_i"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "mu_i, cfl 0.2" in proc.stdout
    rows = [line.split("|")[1:-1] for line in proc.stdout.splitlines() if line.startswith("| ") and "simcore" not in line]
    assert [float(r[0]) for r in rows] == [2.0] and np.isfinite(float(rows[0][1]))
