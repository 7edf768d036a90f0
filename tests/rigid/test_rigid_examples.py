"""The rigid examples (contact, gradients, joints, URDF, Dzhanibekov) run at reduced size and reach their
objectives and laws."""

import importlib.util
import math
import pathlib
import re
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


def run_main(name, monkeypatch, capsys):
    """Run examples/<name>.py's main() with --quick; its printed output."""
    module = load(name)
    monkeypatch.setattr(sys, "argv", [f"{name}.py", "--quick"])
    module.main()
    return capsys.readouterr().out


def number(pattern, text):
    match = re.search(pattern, text)
    assert match, (pattern, text)
    return float(match.group(1))


def test_quadruped_example_stands_and_trots_forward(monkeypatch, capsys):
    """The loaded quadruped stands (torso within 4 mm of the stance height) and its open-loop trot carries
    the torso forward (+x) by more than 1 cm in 0.2 s without falling (torso above 0.2 m), the joints held
    together to < 1e-8 m throughout."""
    out = run_main("rigid_quadruped", monkeypatch, capsys)
    assert "13 links, 12 joints, 8 actuated, 4.20 kg" in out
    height = number(r"stand .*?torso height ([\d.]+) m", out)
    stance = number(r"\(stance ([\d.]+) m\)", out)
    assert abs(height - stance) < 4e-3
    assert number(r"trot .*?torso height ([\d.]+)–", out) > 0.2
    assert number(r"forward distance ([+-][\d.]+) m", out) > 0.01
    violations = [float(v) for v in re.findall(r"joint violation ([\d.e+-]+) m", out)]
    assert len(violations) == 2 and max(violations) < 1e-8


def test_dzhanibekov_example_flips_and_conserves(monkeypatch, capsys):
    """The intermediate-axis spin reverses within 1.2 s (Ω = 20 rad/s: first flip at 0.99 s) while E and L
    stay constant to round-off; the minor- and major-axis spins keep their sign."""
    out = run_main("rigid_dzhanibekov", monkeypatch, capsys)
    flips = re.search(r"sign changes at t = \[([^\]]*)\]", out).group(1)
    assert flips.strip(), out
    assert 0.95 < float(flips.split(",")[0]) < 1.05
    assert number(r"energy drift ([\d.e+-]+) relative", out) < 1e-9
    assert number(r"\|L − L₀\| / \|L₀\| ([\d.e+-]+)", out) < 1e-9
    assert out.count("keeps its sign: True") == 2
