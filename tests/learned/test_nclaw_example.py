"""examples/nclaw_jelly.py --quick runs as-is: it trains a small NCLaw jelly, which then follows the ground
truth (simcore's fixed corotated jelly) more closely than the same networks untrained, over twice the
trained time, and it writes the side-by-side picture; a second run loads the checkpoint it wrote."""

import re
import subprocess
import sys

import imageio.v3 as iio


def test_nclaw_jelly_example_quick(tmp_path):
    command = [sys.executable, "examples/nclaw_jelly.py", "--quick", "--out", str(tmp_path / "run")]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    loss = re.search(r"loss ([0-9.e+-]+) -> ([0-9.e+-]+)", proc.stdout)
    assert float(loss.group(2)) < 0.5 * float(loss.group(1)), proc.stdout
    mse = re.search(r"learned ([0-9.e+-]+) m², untrained ([0-9.e+-]+) m²", proc.stdout)
    assert float(mse.group(1)) < 0.5 * float(mse.group(2)), proc.stdout
    image = iio.imread(tmp_path / "run" / "side_by_side.png")
    assert image.shape[0] == 2 * 240 and image.shape[1] == 3 * 320  # two rows (truth, learned) of three frames
    again = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and "loaded the law trained before" in again.stdout, again.stderr[-2000:]
    assert re.search(r"learned ([0-9.e+-]+) m²", again.stdout).group(1) == mse.group(1)  # the same law
