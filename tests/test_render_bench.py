"""benchmarks/render_bench.py runs at a tiny size and prints frames per second of both renderers, to
frames and to MP4, and their ratio; the MP4s it writes hold every frame it drew."""

import re
import subprocess
import sys
from pathlib import Path

import imageio_ffmpeg

ROOT = Path(__file__).resolve().parent.parent


def test_render_benchmark_prints_both_renderers_and_the_ratio(tmp_path):
    proc = subprocess.run([sys.executable, "benchmarks/render_bench.py", "--particles", "2000", "--frames", "3",
                           "--mpl-frames", "1", "--size", "160x120", "--repeats", "1", "--out", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    particles = int(re.search(r"points: (\d+) particles, 4 frames, 160x120 px", out).group(1))
    assert 1500 < particles < 2500, out
    for renderer in ("splat", "matplotlib"):
        for target in ("frames", "mp4"):
            fps = float(re.search(rf"{renderer}\s+{target}\s*:\s*([\d.]+) frames/s", out).group(1))
            assert fps > 0, out
    assert re.search(r"splat / matplotlib: frames \d+x, mp4 \d+x", out), out
    assert imageio_ffmpeg.count_frames_and_secs(str(tmp_path / "splat.mp4"))[0] == 4
    assert imageio_ffmpeg.count_frames_and_secs(str(tmp_path / "matplotlib.mp4"))[0] == 1
