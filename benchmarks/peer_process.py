"""What the peer benchmarks share: a peer's own virtual environment, and a child process that answers
one command per line (each engine runs in its own process, so the two can take turns).

Imported by benchmarks/mpm_pytorch_peer.py and benchmarks/genesis_peer.py (run as scripts from the
repository root, so this folder is on sys.path).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PROTOCOL = "@@ "  # children print their answers on lines starting with this; other output is noise


def ensure_venv(venv: Path, requirements: list[str], install: bool) -> Path:
    """The python of `venv`, created with `python -m venv` and filled by pip when missing or filled with
    other requirements. Every requirement but the last (the peer itself) is also passed as a constraint,
    so that pip keeps the pinned torch build (the CPU wheel already on the machine) whatever the peer
    asks for."""
    python = venv / "bin" / "python"
    wanted = "".join(f"{r}\n" for r in requirements)
    marker = venv / ".simcore-peer-packages"
    if python.exists() and marker.exists() and marker.read_text() == wanted:
        return python
    if not install:
        raise SystemExit(f"{venv} is missing or was not filled by this script; run without --no-install")
    if not python.exists():
        print(f"creating {venv} (python -m venv)", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as handle:
        handle.write("".join(f"{r}\n" for r in requirements[:-1]))
        constraints = handle.name
    try:
        cmd = [str(python), "-m", "pip", "install", "-c", constraints, *requirements]
        print("installing the peer: " + " ".join(cmd), file=sys.stderr)
        subprocess.run(cmd, check=True, stdout=sys.stderr)
    finally:
        os.unlink(constraints)
    marker.write_text(wanted)
    return python


class Child:
    """A process answering one command per line with one protocol line each; its other output goes to
    `log_path`."""

    def __init__(self, name, cmd, log_path, env=None):
        self.name = name
        self.log = open(log_path, "w")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, text=True,
                                     bufsize=1, cwd=REPO, env=env)

    def read(self) -> dict:
        for line in self.proc.stdout:
            if line.startswith(PROTOCOL):
                return json.loads(line[len(PROTOCOL):])
            self.log.write(line)
        self.log.flush()
        tail = Path(self.log.name).read_text()[-3000:]
        raise RuntimeError(f"{self.name} exited (code {self.proc.wait()}); its output ({self.log.name}) ends:\n{tail}")

    def ask(self, cmd: str) -> dict:
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()
        return self.read()

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.flush()
                self.proc.wait(timeout=60)
            except (BrokenPipeError, subprocess.TimeoutExpired):
                self.proc.kill()
        self.log.close()


def thread_cpu() -> dict:
    """CPU seconds of each OS thread of this process (Linux /proc)."""
    out, tick = {}, os.sysconf("SC_CLK_TCK")
    for tid in os.listdir("/proc/self/task"):
        try:
            fields = open(f"/proc/self/task/{tid}/stat").read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[tid] = (int(fields[11]) + int(fields[12])) / tick
    return out


def busy_threads(before: dict, after: dict, seconds: float) -> int:
    """Threads that ran for at least 10 % of the timed wall clock."""
    return sum(1 for tid, c in after.items() if c - before.get(tid, 0.0) >= 0.1 * seconds)
