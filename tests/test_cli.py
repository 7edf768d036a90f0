"""The `simcore` command line."""

import subprocess
import sys

import numpy as np
import pytest

import simcore as sc
from simcore.cli import main


def test_run_writes_requested_formats(tmp_path):
    """`simcore run jelly_drop --frames 5 --out DIR` (the real entry point) exits 0 and writes the npz."""
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "simcore", "run", "jelly_drop", "--frames", "5", "--out", str(out),
                           "--format", "npz", "--set", "grid=24", "--no-progress"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    traj = sc.Trajectory.load(out / "jelly_drop.npz")
    assert traj.frames == 5 and traj.body_names == ["jelly"] and np.isfinite(traj.x).all()


@pytest.mark.parametrize("argv, message", [
    (["run", "no_such_scene"], "unknown scene 'no_such_scene'"),
    (["run", "jelly_drop", "--set", "gird=24"], "has no parameter 'gird'"),
    (["run", "jelly_drop", "--format", "npz,bmp"], "unknown --format bmp"),
    (["run", "jelly_drop", "--set", "E=-5"], "Young's modulus"),
])
def test_bad_input_exits_nonzero_with_one_line(argv, message, capsys, tmp_path):
    code = main(argv + ["--out", str(tmp_path / "o"), "--frames", "1"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and len(err.splitlines()) == 1


def test_unwritable_or_existing_out(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["run", "--out", str(blocker / "sub"), "--frames", "1"]) == 2
    assert "cannot write to --out" in capsys.readouterr().err
    full = tmp_path / "full"
    full.mkdir()
    (full / "old.npz").write_text("x")
    assert main(["run", "--out", str(full), "--frames", "1"]) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_scenes_lists_every_scene(capsys):
    from simcore import scenes

    assert main(["scenes"]) == 0
    out = capsys.readouterr().out
    for name in scenes.NAMES:
        assert name in out


def test_info_lists_versions_and_backends(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "taichi 1.7.4" in out and "cpu     f64: available" in out and "vulkan" in out and "cuda" in out
    sc.init("cpu")
