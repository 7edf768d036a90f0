"""benchmarks/rigid_mechanisms.py builds the mechanisms rigid_bench.py times; they must be the mechanisms
they say they are in simcore (and, where MuJoCo is installed, the same mechanism in MuJoCo)."""

import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import rigid_bench  # noqa: E402
import rigid_mechanisms as mechanisms  # noqa: E402


def test_bench_pendulum_follows_its_exact_ode_and_the_quadruped_stands():
    """Physical pendulum (I = m L² + 2/5 m r², released at 0.5 rad): the angle after 1 s within 1e-3 rad of
    the ODE's solution at dt = 0.01 s; the quadruped on its joint springs stays within 5 mm of its stance
    height; the cartpole's pole swings from 0.3 rad (bounded by it: no energy is added)."""
    pendulum, _, exact = rigid_bench.mechanism_agreement("pendulum")
    assert abs(pendulum - exact) < 1e-3, (pendulum, exact)
    pole = rigid_bench.mechanism_agreement("cartpole")[0]
    assert abs(pole) <= 0.3 + 1e-6 and abs(pole - 0.3) > 0.05, pole
    height = rigid_bench.mechanism_agreement("quadruped", seconds=0.5)[0]
    assert abs(height - mechanisms.STANCE_HEIGHT) < 5e-3, (height, mechanisms.STANCE_HEIGHT)


def test_bench_mechanisms_are_the_same_in_mujoco():
    """The same mechanism in both engines: after 1 s the pendulum's and the pole's angles agree within 1e-3
    rad and the quadruped's torso height within 1 mm (different integrators and contact models: MuJoCo's
    soft contact lets the feet sink a fraction of a millimetre)."""
    pytest.importorskip("mujoco", reason="MuJoCo is a benchmark extra (pip install mujoco), not a test dependency")
    for name, tolerance in (("pendulum", 1e-3), ("cartpole", 1e-3), ("quadruped", 1e-3)):
        ours, theirs, _ = rigid_bench.mechanism_agreement(name)
        assert math.isfinite(theirs) and abs(ours - theirs) < tolerance, (name, ours, theirs)
