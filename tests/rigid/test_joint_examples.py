"""The joint examples run at reduced size and meet their laws / objectives."""

import importlib.util
import math
import pathlib
import sys

import numpy as np

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples"


def load(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_pendulum_example_matches_periods_and_bounds_energy(monkeypatch, capsys):
    """Law: measured periods within 0.5 % of 4√(L/g)·K(sin²(θ₀/2)) (θ₀ = 0.05, 2 rad); the double
    pendulum's energy error is below 1e-2 relative at dt = 0.02 s over 0.4 s and its hinge holds to 1e-8 m.
    The command line runs (--reduced) and prints the table."""
    example = load("rigid_pendulum")
    measured, exact = example.measure_periods([0.05, 2.0], length=0.25, dt=0.01)
    assert np.all(np.abs(measured / exact - 1) < 5e-3), (measured, exact)
    _, energy, gap = example.double_pendulum(dt=0.02, seconds=0.4)
    assert np.abs(energy - energy[0]).max() / abs(energy[0]) < 1e-2
    assert gap < 1e-8
    monkeypatch.setattr(sys, "argv", ["rigid_pendulum.py", "--reduced"])
    example.main()
    assert "2π√(L/g)" in capsys.readouterr().out


def test_cartpole_example_reduces_swing_up_loss(monkeypatch):
    """Trajectory optimisation through the implicit gradients lowers the swing-up loss ≥ 10× in a few
    L-BFGS iterations (20 steps of 0.05 s) and the hard replay follows the optimised rollout (the pole
    rises past the horizontal, θ_T > π/2)."""
    example = load("rigid_cartpole")
    force, first, best, q, qd = example.optimize(steps=20, iters=6, verbose=False)
    assert best <= first / 10, (first, best)
    assert q[1] > math.pi / 2
    assert np.isfinite(force.numpy()).all()
