"""Progress reports (simcore.progress): a bar where someone watches a terminal or notebook, periodic
lines on stderr anywhere else, a note when kernels compile, and silence when asked (issue 12: long runs
were silent without a terminal)."""

import io
import re
import subprocess
import sys
import time
import types

import pytest

import simcore as sc
from simcore import progress
from simcore.mpm import cache

LINE = re.compile(r"^simcore: frame (\d+)/(\d+), [0-9.e+-]+ s/frame, ETA (\d+s|\d+m\d\ds|\d+h\d\dm)$")


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def _loop(total, step_s, **kwargs):
    stream = kwargs.pop("stream", None) or io.StringIO()
    with progress.Progress(total, "frame", stream=stream, **kwargs) as bar:
        for _ in range(total):
            time.sleep(step_s)
            bar.update()
    return bar, stream.getvalue()


def test_lines_every_period_without_a_terminal():
    """Not a terminal: a line at the first step (show=True), then at most one each `period` seconds,
    then a closing line."""
    start = time.monotonic()
    bar, text = _loop(10, 0.02, show=True, period=0.1)
    elapsed = time.monotonic() - start
    lines = text.splitlines()
    assert bar.mode == "lines"
    progress_lines = [line for line in lines[:-1] if LINE.match(line)]
    assert progress_lines == lines[:-1] and 2 <= len(progress_lines) <= 1 + elapsed / 0.1, (elapsed, lines)
    done = [int(LINE.match(line).group(1)) for line in progress_lines]
    assert done[0] == 1 and done == sorted(done) and done[-1] < 10
    assert re.fullmatch(r"simcore: 10 frames in \d+s", lines[-1])


def test_silent_when_asked_or_short():
    assert _loop(4, 0.02, show=False, period=0.01)[1] == ""
    with progress.quiet():
        assert _loop(4, 0.02, show=True, period=0.01)[1] == ""
    # show=None: nothing before `delay` seconds (or a period), so a short loop prints nothing at all
    assert _loop(4, 0.01, show=None, period=10.0, delay=0.5)[1] == ""
    assert _loop(4, 0.01, show=None, period=10.0, delay=0.0)[1] != ""  # (what would have been printed)


def test_bar_on_a_terminal_or_in_a_notebook(monkeypatch):
    bar, text = _loop(3, 0.0, show=True, stream=_Terminal())
    assert bar.mode == "bar" and "simcore: frame" not in text
    assert not progress.interactive(io.StringIO())
    shell = types.SimpleNamespace(config={"IPKernelApp": {}})  # what a Jupyter kernel's IPython shell has
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: shell))
    assert progress.interactive(io.StringIO())


def test_period_from_environment(monkeypatch):
    monkeypatch.setenv(progress.PERIOD_ENV, "0.25")
    assert progress.Progress(1, stream=io.StringIO()).period == 0.25
    monkeypatch.setenv(progress.PERIOD_ENV, "soon")
    with pytest.raises(ValueError, match="SIMCORE_PROGRESS_PERIOD='soon' must be a number of seconds > 0"):
        progress.default_period()


def test_run_reports_compiling_and_frames_without_a_terminal(cpu32, capsys, monkeypatch):
    """Scene.run with stderr captured (not a terminal): the new solver says it is compiling, then
    progress lines come every $SIMCORE_PROGRESS_PERIOD seconds; progress=False prints nothing."""
    monkeypatch.setenv(progress.PERIOD_ENV, "0.001")
    cache.clear()  # the next run builds its solver (and compiles, or loads from Taichi's disk cache)
    scene = sc.Scene(dim=2, grid=24)
    scene.add_body(sc.shapes.Box(center=(0.5, 0.5), size=(0.2, 0.2)), sc.materials.NeoHookean())
    scene.run(frames=6, frame_dt=1 / 60, progress=True)
    err = capsys.readouterr().err.splitlines()
    assert err[0] == ("simcore: compiling kernels for 2D NeoHookean on a 24-cell grid, f32 on cpu "
                      "(on first use; cached on disk afterwards)…")
    assert any(LINE.match(line) for line in err[1:]) and err[-1].startswith("simcore: 6 frames in ")

    cache.clear()
    scene.run(frames=6, frame_dt=1 / 60, progress=False)
    assert capsys.readouterr().err == ""


def test_cli_without_a_terminal_prints_progress_lines(tmp_path):
    """`simcore run` with its output going to a pipe (CI logs, nohup) shows progress as lines."""
    env = {**__import__("os").environ, progress.PERIOD_ENV: "0.001"}
    proc = subprocess.run([sys.executable, "-m", "simcore", "run", "dam_break", "--set", "grid=24", "--frames", "4",
                           "--format", "npz", "--out", str(tmp_path / "o")], capture_output=True, text=True,
                          timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    assert lines[0].startswith("simcore: compiling kernels for 2D Fluid on a 24-cell grid")
    assert any(LINE.match(line) for line in lines) and lines[-1] == next(
        line for line in lines if line.startswith("simcore: 4 frames in "))
