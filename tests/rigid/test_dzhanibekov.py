"""The Dzhanibekov (tennis-racket) effect of a free box (examples/rigid_dzhanibekov.py): torque-free
rotation about the intermediate principal axis is unstable and periodically reverses (Euler's equations;
Landau & Lifshitz, Mechanics §37), rotation about the minor and major axes is stable, and the kinetic energy
and angular momentum of the free body are conserved."""

import importlib.util
import pathlib

import numpy as np
import pytest
from scipy.integrate import solve_ivp

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples"
OMEGA, EPSILON, DT = 20.0, 1e-3, 0.01   # rad/s, relative perturbation, s: Ω·dt = 0.2


def load(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def example():
    return load("rigid_dzhanibekov")


@pytest.fixture(scope="module")
def intermediate(example):
    """3 s of spin about the intermediate axis (y): two flips at Ω = 20 rad/s."""
    return example.spin(axis=1, omega=OMEGA, epsilon=EPSILON, dt=DT, seconds=3.0)


def euler_first_flip(inertia, w0, t_end):
    """First sign change (s) of ω₂ from Euler's equations I ω̇ = (Iω) × ω, integrated to 1e-12."""
    def rhs(_, w):
        return np.cross(inertia * w, w) / inertia
    event = lambda _, w: w[1]  # noqa: E731
    event.terminal = True
    sol = solve_ivp(rhs, (0, t_end), w0, rtol=1e-12, atol=1e-14, events=event, method="DOP853")
    return float(sol.t_events[0][0])


def test_intermediate_axis_spin_flips_with_the_elliptic_period(example, intermediate):
    """Law: ω₂ (body frame, along the intermediate axis) reverses sign, first when Euler's equations say
    (within 1 %: the step's O((Ω dt)²) phase error, Ω dt = 0.2), then again after the half period 2K(k)/λ
    of the Jacobi-elliptic solution (within 1 %)."""
    t, w, _, _ = intermediate
    flips = example.sign_changes(t, w[:, 1])
    w0 = np.array([EPSILON * OMEGA, OMEGA, EPSILON * OMEGA])
    assert len(flips) >= 2, flips
    first = euler_first_flip(example.moments(), w0, 3.0)
    assert abs(flips[0] / first - 1) < 1e-2, (flips[0], first)
    half = example.flip_half_period(w0)
    assert abs((flips[1] - flips[0]) / half - 1) < 1e-2, (np.diff(flips), half)
    # A flip is a reversal, not a wobble: ω₂ swings to nearly −Ω.
    assert w[:, 1].min() < -0.99 * OMEGA


def test_free_spin_conserves_energy_and_angular_momentum(intermediate):
    """Law: without torque, kinetic energy ½ωᵀIω and the world-frame angular momentum (the integrator's
    discrete momentum) are constant. Measured drifts over the 300 steps including two flips: ≈ 1e-12
    relative (round-off of the Newton solve at rtol 1e-12); the bound 1e-9 leaves room for platform
    round-off while a first-order integrator error (Ω dt = 0.2) would be ~1e-2."""
    _, _, energy, momentum = intermediate
    L = np.linalg.norm(momentum, axis=1)
    assert np.abs(energy - energy[0]).max() / energy[0] < 1e-9
    assert np.abs(L - L[0]).max() / L[0] < 1e-9
    assert np.linalg.norm(momentum - momentum[0], axis=1).max() / L[0] < 1e-9


@pytest.mark.parametrize("axis", [0, 2], ids=["minor", "major"])
def test_spin_about_minor_and_major_axes_is_stable(example, axis):
    """Law: rotation about the axes of least and greatest inertia is stable: the transverse components of
    ω stay of the order of the perturbation (the linearised motion is an ellipse with semi-axes ε Ω
    √(ratios of inertia differences), here < 2 ε Ω) and ω along the spin axis keeps its sign, over the time
    in which the intermediate axis flips (1.5 s)."""
    _, w, _, _ = example.spin(axis=axis, omega=OMEGA, epsilon=EPSILON, dt=DT, seconds=1.5)
    transverse = np.delete(w, axis, axis=1)
    assert np.abs(transverse).max() < 2.5 * EPSILON * OMEGA
    assert (w[:, axis] > 0.99 * OMEGA).all()
