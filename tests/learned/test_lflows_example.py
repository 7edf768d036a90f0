"""examples/lflows_dam_break.py --quick runs as-is: it simulates a small simcore dam break, fits LFlows to
its particle-count densities, reports a continuity residual at float round-off, and draws the particles
above the learned density and velocity at four times; a second run loads the flow it trained."""

import os
import re
import subprocess
import sys

import imageio.v3 as iio


def test_lflows_dam_break_example_quick(tmp_path):
    command = [sys.executable, "examples/lflows_dam_break.py", "--quick", "--out", str(tmp_path / "run")]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=300, env=dict(os.environ))
    assert proc.returncode == 0, proc.stderr[-2000:]
    loss = re.search(r"loss ([0-9.e+-]+) -> ([0-9.e+-]+)", proc.stdout)
    assert float(loss.group(2)) < float(loss.group(1)), proc.stdout
    residual = float(re.search(r"continuity residual RMS ([0-9.e+-]+)", proc.stdout).group(1))
    assert residual < 1e-10, proc.stdout  # round-off (float64), relative to the density's own rate of change
    image = iio.imread(tmp_path / "run" / "dam_break.png")
    assert image.shape[0] == 6 * 80 and image.shape[1] == 12 * 80  # 2 rows × 4 times at 80 dpi
    again = subprocess.run(command, capture_output=True, text=True, timeout=300, env=dict(os.environ))
    assert again.returncode == 0 and "loaded the flow trained before" in again.stdout, again.stderr[-2000:]
    assert re.search(r"residual RMS ([0-9.e+-]+)", again.stdout).group(1) == f"{residual:.1e}"
