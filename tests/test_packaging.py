"""The installed package is self-contained (issue 12, defect 3): a wheel built from the repository carries
the scenes and meshes inside the simcore namespace, installs no other top-level name, and every scene runs
through the installed `simcore` command from a fresh virtual environment, away from the repository.

The venv is created with --system-site-packages so that taichi, torch and numpy come from the current
environment (no download); the wheel's simcore shadows the editable one, which the tests check."""

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from test_scenes import SMALL  # the same sizes: kernels compiled for either test are in Taichi's disk cache

import simcore as sc
from simcore import scenes

REPO = Path(__file__).resolve().parents[1]
# Top-level entries of the repository that the build does not need (out/ may hold large trajectories).
NOT_BUILD_INPUTS = {".git", "out", "build", "dist", "site", "tests", "docs", "benchmarks", "examples",
                    ".pytest_cache", ".ruff_cache"}
SCENE_SETTINGS = ["--frames", "1", "--format", "npz", "--no-progress"]


def _run(cmd, **kwargs):
    proc = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    assert proc.returncode == 0, f"{' '.join(map(str, cmd))} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc


def _clean_env() -> dict:
    """The environment without anything that would put the repository on the venv's import path."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["PYTHONNOUSERSITE"] = "1"
    return env


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel built from a copy of the repository's build inputs (so the build leaves nothing in the
    checkout), without build isolation: setuptools comes from this environment, no network."""
    root = tmp_path_factory.mktemp("packaging")
    source = root / "source"
    source.mkdir()
    for entry in REPO.iterdir():
        if entry.name in NOT_BUILD_INPUTS or entry.name.startswith(".venv") or entry.name.endswith(".egg-info"):
            continue
        if entry.is_dir():
            shutil.copytree(entry, source / entry.name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(entry, source / entry.name)
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
          "-w", str(root / "dist"), str(source)], env=_clean_env(), timeout=300)
    (built,) = (root / "dist").glob("simcore-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Path:
    """A fresh venv (system site-packages visible) with the wheel installed; returns its bin directory."""
    root = tmp_path_factory.mktemp("venv")
    _run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(root)], timeout=120)
    bin_dir = root / ("Scripts" if os.name == "nt" else "bin")
    # The venv has no pip of its own; the system one, run by the venv's python, installs into the venv.
    # --no-index: every dependency must already be satisfied by the system site-packages.
    _run([str(bin_dir / "python"), "-m", "pip", "install", "-q", "--no-index", str(wheel)],
         env=_clean_env(), cwd=root, timeout=300)
    return bin_dir


def test_wheel_contains_scenes_and_assets_inside_simcore(wheel):
    """Every module of simcore/ and scenes/ and every shipped mesh and URDF is in the wheel under simcore/; the
    wheel's only top-level entries are simcore/ and its dist-info (no generic `scenes`, no `assets`)."""
    names = set(zipfile.ZipFile(wheel).namelist())
    top = {name.split("/", 1)[0] for name in names}
    assert {t for t in top if not t.endswith(".dist-info")} == {"simcore"}, top
    expected = {p.relative_to(REPO).as_posix() for p in (REPO / "simcore").rglob("*.py")}
    expected |= {f"simcore/scenes/{p.name}" for p in (REPO / "scenes").glob("*.py")}
    expected |= {f"simcore/assets/{p.name}" for p in (REPO / "assets").glob("*") if p.suffix in (".obj", ".urdf")}
    expected |= {"simcore/assets/LICENSE.md", "simcore/assets/__init__.py"}
    assert {f"simcore/scenes/{name}.py" for name in scenes.NAMES} <= expected
    missing = sorted(expected - names)
    assert not missing, f"missing from the wheel (a directory under simcore/ without __init__.py? see setup.py): {missing}"


def test_wheel_metadata_has_urls_and_authors(wheel):
    with zipfile.ZipFile(wheel) as zf:
        (meta,) = [n for n in zf.namelist() if n.endswith(".dist-info/METADATA")]
        text = zf.read(meta).decode()
    assert "Project-URL: Homepage, https://" in text and "Project-URL: Issues, https://" in text
    assert "Author: " in text or "Author-email: " in text


def test_venv_imports_the_wheel_not_the_checkout(venv):
    code = ("import simcore, simcore.scenes, simcore.assets; "
            "print(simcore.__file__); print(simcore.scenes.__file__); print(simcore.assets.path('torus.obj'))")
    lines = _run([str(venv / "python"), "-c", code], env=_clean_env(), cwd=venv.parent, timeout=120).stdout.split()
    site = (venv.parent / "lib").resolve()
    for line in lines:
        assert Path(line).resolve().is_relative_to(site), f"{line} is not inside the venv {venv.parent}"
        assert not Path(line).resolve().is_relative_to(REPO)


@pytest.mark.slow  # about 30 s with a warm kernel cache, 60-70 s cold (2-core CPU); runs in CI (`slow` is not deselected)
def test_installed_cli_lists_and_runs_every_scene(venv, tmp_path):
    """`simcore scenes` (the console script) lists every scene; `simcore run NAME --frames 1` at the small
    sizes of tests/test_scenes.py writes a 1-frame trajectory for each, from a directory outside the
    repository."""
    simcore_cmd = str(venv / "simcore")
    listed = _run([simcore_cmd, "scenes"], env=_clean_env(), cwd=tmp_path, timeout=120).stdout
    for name in scenes.NAMES:
        assert name in listed
        sets = [arg for key, value in SMALL[name].items() for arg in ("--set", f"{key}={value}")]
        _run([simcore_cmd, "run", name, "--out", str(tmp_path / name), *SCENE_SETTINGS, *sets],
             env=_clean_env(), cwd=tmp_path, timeout=300)
        traj = sc.Trajectory.load(tmp_path / name / f"{name}.npz")
        assert traj.frames == 1 and traj.x.shape[1] > 0 and np.isfinite(traj.x).all(), name


def test_dir_lists_the_lazy_subpackages_without_importing_them():
    """dir(simcore) shows viz, rigid, export (and the other lazily loaded subpackages), while a bare
    `import simcore` imports none of them (a fresh interpreter: other tests have imported them here)."""
    code = ("import sys, simcore; lazy = ['viz', 'rigid', 'export', 'torch', 'scenes', 'assets']; "
            "print(sorted(set(lazy) - set(dir(simcore)))); print(sorted(m for m in lazy if 'simcore.' + m in sys.modules)); "
            "print(simcore.viz.__name__, simcore.assets.__name__)")
    out = _run([sys.executable, "-c", code], env=_clean_env(), cwd=REPO, timeout=120).stdout.splitlines()
    assert out == ["[]", "[]", "simcore.viz simcore.assets"], out
