"""The rigid examples run at reduced size and reach their objectives."""

import importlib.util
import pathlib
import sys

import numpy as np
import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples"


def load(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_push_example_stops_box_on_target():
    """Objective (x_T − target)² + (0.1 v_T)² falls ≥ 1000× and the hard-contact replay stops < 1 cm
    from the target."""
    push = load("rigid_push")
    first, last, error, traj = push.optimize(iters=8, steps=40, push=15, target=0.6, verbose=False)
    assert last <= first / 1e3
    assert error < 0.01
    assert np.abs(traj.velocity[-1, 0]).max() < 1e-3


def test_sysid_example_recovers_friction():
    """Friction recovered within 2 % from a wrong guess (0.6 vs 0.35); loss falls ≥ 100×."""
    sysid = load("rigid_sysid")
    mu, first, last = sysid.fit(true_mu=0.35, guess=0.6, iters=8, steps=25, verbose=False)
    assert abs(mu / 0.35 - 1) < 0.02
    assert last <= first / 100


def test_gradients_example_approaches_hard_step(tmp_path, monkeypatch):
    """Below the friction threshold the gradient d x_T/dF shrinks ≥ 10× when κ_grad drops 100×
    (approaching the hard step, where it is 0); above it, it stays near the hard value T²/2m."""
    grads = load("rigid_gradients")
    steps = 10
    forces = np.array([0.75, 1.25]) * 0.5 * 25.0 * 9.81
    smooth, threshold = grads.gradient_curve(1e-2, forces, steps)
    sharp, _ = grads.gradient_curve(1e-4, forces, steps)
    assert forces[0] < threshold < forces[1]
    assert sharp[0] * 10 <= smooth[0]
    hard = (steps * 0.02) ** 2 / (2 * 25.0)
    assert sharp[1] == pytest.approx(hard, rel=0.15)
    out = tmp_path / "g.png"
    monkeypatch.setattr(sys, "argv", ["rigid_gradients.py", "--out", str(out), "--points", "2", "--steps", "4"])
    grads.main()
    assert out.stat().st_size > 1000
