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


def test_scenes_lists_every_scene_with_its_parameters(capsys):
    """`simcore scenes` shows each scene's --set keys with their defaults and meanings, from the table
    (PARAMETERS) that --set validation reads (DEFAULTS is derived from it)."""
    from simcore import scenes
    from simcore.cli import _setting

    assert main(["scenes"]) == 0
    out = capsys.readouterr().out
    for name in scenes.NAMES:
        module = scenes.load(name)
        assert f"\n{name}" in out and module.DESCRIPTION in out
        assert module.DEFAULTS == {key: default for key, (default, _) in module.PARAMETERS.items()}
        for key, (default, meaning) in module.PARAMETERS.items():
            assert f"{key}={_setting(default)}" in out and meaning in out
            assert scenes.parse_assignment(f"{key}={_setting(default)}") == (key, default)  # pastes back


def test_scenes_for_one_scene(capsys):
    assert main(["scenes", "snowball"]) == 0
    out = capsys.readouterr().out
    assert "critical_stretch=" in out and "jelly_drop" not in out
    assert main(["scenes", "snowbal"]) == 2
    assert "unknown scene 'snowbal'" in capsys.readouterr().err


def test_unknown_set_key_points_to_the_parameter_list(capsys, tmp_path):
    assert main(["run", "snowball", "--set", "radus=0.1", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "has no parameter 'radus'" in err and "radius" in err and "simcore scenes snowball" in err


@pytest.mark.parametrize("argv", [["--help"], ["scenes"], ["run", "--help"]])
def test_no_taichi_banner(argv):
    """Taichi prints "[Taichi] version ..." on import (and "[Taichi] Starting on arch=..." on init);
    simcore's commands do not pass that on (issue 12)."""
    proc = subprocess.run([sys.executable, "-m", "simcore", *argv], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "[Taichi]" not in proc.stdout + proc.stderr


def _leaked_taichi_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(("[E ", "[W ", "[Taichi]"))]


def test_info_prints_no_taichi_log_lines():
    """The f64 capability probe on Vulkan fails by design on most devices; Taichi's own error line
    ("[E ...] [spirv_codegen.cpp:visit@955] Instruction Exp(27) does not 64bits operation") and its
    blank lines stay out of `simcore info` (issue 12, defect 5)."""
    proc = subprocess.run([sys.executable, "-m", "simcore", "info"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert _leaked_taichi_lines(proc.stdout + proc.stderr) == [] and proc.stderr == ""
    assert "" not in proc.stdout.splitlines()  # Taichi's SPIR-V failure also printed two empty lines


def test_vulkan_f64_fails_cleanly(vulkan_ok, tmp_path):
    """`simcore run --arch vulkan --precision f64` either runs, or says in one line why not; no Taichi log."""
    if not vulkan_ok:
        pytest.skip("no Vulkan device (install mesa-vulkan-drivers)")
    proc = subprocess.run([sys.executable, "-m", "simcore", "run", "jelly_drop", "--arch", "vulkan", "--precision",
                           "f64", "--frames", "1", "--set", "dim=2", "--set", "grid=16", "--format", "npz",
                           "--no-progress", "--out", str(tmp_path / "o")], capture_output=True, text=True, timeout=300)
    assert _leaked_taichi_lines(proc.stdout + proc.stderr) == []
    if proc.returncode != 0:
        assert proc.returncode == 2 and proc.stdout == ""  # Taichi's failure also printed blank lines
        assert len(proc.stderr.splitlines()) == 1 and "precision='f64' is not available" in proc.stderr


def test_blow_up_says_what_was_written_and_what_to_change(capsys, tmp_path):
    """A run that goes non-finite (a jelly far too soft for its speed) exits 2 with one line that names the
    frame, says where the frames before it were written, and which settings to change; it does not point
    to `error.trajectory`, which a command-line user does not have (issue 12, defect 6)."""
    out = tmp_path / "o"
    code = main(["run", "jelly_drop", "--set", "dim=2", "--set", "grid=24", "--set", "E=20", "--set", "nu=0.45",
                 "--set", "speed=10", "--frames", "30", "--format", "npz", "--no-progress", "--out", str(out)])
    err = capsys.readouterr().err.strip()
    sc.init("cpu")
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "simulation failed at frame" in err and "error.trajectory" not in err
    assert f"written to {out}" in err and "--set" in err and "simcore scenes jelly_drop" in err
    frame = int(err.split("simulation failed at frame ")[1].split(",")[0])
    traj = sc.Trajectory.load(out / "jelly_drop.npz")
    assert traj.frames == frame - 1 and f"the {frame - 1} frame(s) before the failure" in err


def test_info_lists_versions_and_backends(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "taichi 1.7.4" in out and "cpu     f64: available" in out and "vulkan" in out and "cuda" in out
    sc.init("cpu")


@pytest.mark.parametrize("argv, module, rest", [
    (["learn", "nclaw", "--material", "jelly", "--epochs", "3", "--out", "D"], "simcore.learned.nclaw.train",
     ["--material", "jelly", "--epochs", "3", "--out", "D"]),
    (["learn", "nclaw", "evaluate", "--runs", "R"], "simcore.learned.nclaw.evaluate", ["--runs", "R"]),
    (["learn", "giorom", "rollout", "--help-me"], "simcore.learned.giorom.rollout", ["--help-me"]),
    (["learn", "lflows"], "simcore.learned.lflows.train", []),
])
def test_learn_hands_its_arguments_to_the_methods_command_line(argv, module, rest, monkeypatch):
    """`simcore learn METHOD [COMMAND] ARGS` calls simcore.learned.METHOD.COMMAND.main(ARGS), COMMAND
    defaulting to training (the issue's `simcore learn nclaw --material jelly --epochs N --out DIR`)."""
    import importlib

    calls = []
    target = importlib.import_module(module)
    monkeypatch.setattr(target, "main", lambda args: calls.append(args) or 0)
    assert main(argv) == 0
    assert calls == [rest]


def test_learn_rejects_an_unknown_method(capsys):
    with pytest.raises(SystemExit):
        main(["learn", "gns", "train"])
    assert "invalid choice: 'gns'" in capsys.readouterr().err
