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
