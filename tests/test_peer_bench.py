"""benchmarks/mpm_pytorch_peer.py: its --help works without creating the peer's venv (no download in CI)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_peer_benchmark_help_runs_without_the_venv(tmp_path):
    venv = tmp_path / "venv"
    proc = subprocess.run([sys.executable, "benchmarks/mpm_pytorch_peer.py", "--help"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "mpm-pytorch" in proc.stdout and "--venv" in proc.stdout and "--json" in proc.stdout
    assert not venv.exists()
