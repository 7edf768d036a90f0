"""benchmarks/genesis_peer.py: its --help works without creating Genesis's venv (no download in CI)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_genesis_benchmark_help_runs_without_the_venv(tmp_path):
    venv = tmp_path / "venv"
    proc = subprocess.run([sys.executable, "benchmarks/genesis_peer.py", "--help", "--venv", str(venv)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    for word in ("Genesis", "--venv", "--json", "--steps", "--repeats", "--quick", "--threads"):
        assert word in proc.stdout, word
    assert not venv.exists()


def test_genesis_benchmark_no_install_refuses_a_missing_venv(tmp_path):
    venv = tmp_path / "venv"
    proc = subprocess.run([sys.executable, "benchmarks/genesis_peer.py", "--quick", "--no-install", "--venv", str(venv)],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "--no-install" in proc.stderr + proc.stdout
    assert not venv.exists()
