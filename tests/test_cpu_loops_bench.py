"""benchmarks/cpu_loops.py (the loop costs behind MPMSolver.SERIAL_GRID_NODES) runs and prints its three
measurements."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_cpu_loops_benchmark_prints_its_measurements():
    proc = subprocess.run([sys.executable, "benchmarks/cpu_loops.py", "--repeats", "5"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert re.search(r"2-iteration loop: serial [\d.]+ us, parallel [\d.]+ us", out), out
    assert re.search(r"32\^3 grid update: serial [\d.]+ us, parallel [\d.]+ us", out), out
    assert len(re.findall(r"range-for of\s+\d+ items: CPU time / wall time [\d.]+", out)) == 4, out
