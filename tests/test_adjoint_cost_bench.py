"""benchmarks/adjoint_cost.py: its --quick smoke configuration runs one material in f32 (in a child
process, as the full benchmark does) and prints a finite, positive (forward+backward)/forward ratio,
in the table and in its JSON."""

import json
import math
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_adjoint_cost_quick_prints_a_finite_positive_ratio(tmp_path):
    out_json = tmp_path / "out.json"
    proc = subprocess.run([sys.executable, "benchmarks/adjoint_cost.py", "--quick", "--materials", "FixedCorotated",
                           "--precisions", "f32", "--json", str(out_json)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # | material | precision | forward s | fwd+bwd s | ratio | ...
    rows = re.findall(r"^\|\s*FixedCorotated\s*\|\s*f32\s*\|\s*([^|]+)\|\s*([^|]+)\|\s*([^|]+)\|", proc.stdout, re.M)
    assert len(rows) == 1, proc.stdout
    forward, fwdbwd, ratio = (float(c) for c in rows[0])
    assert math.isfinite(ratio) and ratio > 0, proc.stdout
    assert forward > 0 and fwdbwd > 0, proc.stdout
    result = json.loads(out_json.read_text())["results"][0]
    assert result["material"] == "FixedCorotated" and result["precision"] == "f32"
    assert math.isfinite(result["ratio"]) and result["ratio"] > 0
    assert result["finite"] and math.isfinite(result["dL_dparam"])
    assert result["solver_reused"] in (True, None)  # the warm-up compiled the solver the timings used
