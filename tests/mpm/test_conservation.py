"""Conservation laws and exact solutions of the MLS-MPM integrator (CPU, float64)."""

import numpy as np
import pytest

import simcore as sc
from tests.conftest import angular_momentum, momentum

M = sc.materials


def test_grid_mass_equals_particle_mass(cpu64):
    """Mass conservation: quadratic B-spline weights are a partition of unity, so P2G puts exactly the
    particles' total mass on the grid (to round-off), at any time of a run."""
    scene = sc.Scene(dim=3, grid=24)
    scene.add_body(sc.shapes.Sphere(center=(0.5, 0.5, 0.5), radius=0.15), M.NeoHookean(E=1e4), velocity=(0.3, -0.5, 0.1))
    traj = scene.run(frames=3, frame_dt=0.01)
    solver = scene.build()  # the shared compiled solver, with the scene's current state in slot 0
    solver.p2g(0, 1, solver.serial_scatter, solver.parts)
    total = traj.mass.sum()
    assert abs(solver.total_grid_mass() - total) < 1e-12 * total


@pytest.fixture(scope="module")
def colliding_pair(cpu64):
    """Two elastic bodies (different materials) colliding, no gravity, far from the walls."""
    scene = sc.Scene(dim=2, grid=48, gravity=(0.0, 0.0))
    scene.add_body(sc.shapes.Box(center=(0.35, 0.5), size=(0.12, 0.16)), M.NeoHookean(E=2e4, nu=0.3),
                   velocity=(1.0, 0.1), name="left")
    scene.add_body(sc.shapes.Sphere(center=(0.62, 0.48), radius=0.07), M.FixedCorotated(E=4e4, nu=0.2, density=2e3),
                   velocity=(-0.8, 0.0), name="right")
    traj = scene.run(frames=12, frame_dt=0.02, record=("v", "C"))
    return scene, traj


def test_linear_momentum_conserved(colliding_pair):
    """Newton's third law: with no gravity and no boundary contact, total momentum Σ m v is constant
    (to 1e-6 relative) through an elastic collision."""
    scene, traj = colliding_pair
    # The bodies did collide: the left body's velocity changed.
    left = traj.body("left")
    assert abs(traj.v[-1, left, 0].mean() - 1.0) > 0.2
    p0 = momentum(traj.mass, traj.v[0])
    for f in range(traj.frames + 1):
        assert np.linalg.norm(momentum(traj.mass, traj.v[f]) - p0) <= 1e-6 * np.linalg.norm(p0)


def test_angular_momentum_conserved_spinning_body(cpu64):
    """APIC conserves angular momentum (Jiang et al. 2015): a spinning, translating elastic body with
    no gravity keeps Σ m x×v + m dx²/4 ε:Cᵀ to 1e-5 relative."""
    for dim in (2, 3):
        scene = sc.Scene(dim=dim, grid=32, gravity=(0.0,) * dim)
        omega = 6.0 if dim == 2 else (1.0, 5.0, 2.0)
        scene.add_body(sc.shapes.Box(center=(0.5,) * dim, size=(0.25, 0.12, 0.18)[:dim]), M.FixedCorotated(E=1e4),
                       velocity=(0.1, -0.05, 0.02)[:dim], angular_velocity=omega)
        traj = scene.run(frames=10, frame_dt=0.01, record=("v", "C"))
        L = [angular_momentum(traj.mass, traj.x[f], traj.v[f], traj.C[f], scene.dx) for f in range(11)]
        assert np.linalg.norm(traj.x[-1] - traj.x[0], axis=1).max() > 0.02  # it did spin
        for f in range(11):
            assert np.linalg.norm(L[f] - L[0]) <= 1e-5 * np.linalg.norm(L[0]), (dim, f)


def test_free_fall_matches_discrete_and_continuous_solution(cpu64):
    """Free fall of a stress-free body: symplectic Euler on a uniform grid velocity gives exactly
    x_n = x0 + n dt v0 + dt² g n(n+1)/2 (to 1e-10), which differs from x0 + v0 t + ½ g t² by ½ g dt t,
    the integrator's O(dt) error."""
    g = np.array([0.0, -9.8, 0.0])
    v0 = np.array([0.3, 1.5, -0.2])
    scene = sc.Scene(dim=3, grid=32, gravity=g, dt=1e-3)
    scene.add_body(sc.shapes.Box(center=(0.45, 0.5, 0.55), size=(0.1, 0.1, 0.1)), M.NeoHookean(E=1e4), velocity=v0)
    traj = scene.run(frames=10, frame_dt=0.01)
    assert traj.meta["substeps"] == [10] * 10 and np.allclose(traj.meta["dt"], 1e-3)
    x0 = traj.x[0]
    for f in range(11):
        n, dt = 10 * f, 1e-3
        discrete = x0 + n * dt * v0 + dt**2 * g * n * (n + 1) / 2
        assert np.abs(traj.x[f] - discrete).max() < 1e-10
        t = n * dt
        continuous = x0 + v0 * t + 0.5 * g * t**2
        bound = 0.5 * np.linalg.norm(g) * dt * t
        assert np.abs(traj.x[f] - continuous).max() <= bound + 1e-12


@pytest.mark.parametrize("material", [M.FixedCorotated(E=1e5), M.NeoHookean(E=1e5), M.Snow(), M.Sand(),
                                      M.Plasticine(), M.Fluid(bulk_modulus=1e5)], ids=lambda m: type(m).__name__)
def test_body_at_rest_stays_at_rest(cpu64, material):
    """Equilibrium: an undeformed body with no gravity feels no stress and does not move
    (max displacement < 1e-6 m over 1000 substeps)."""
    scene = sc.Scene(dim=2, grid=32, gravity=(0.0, 0.0), dt=1e-4)
    scene.add_body(sc.shapes.Box(center=(0.5, 0.5), size=(0.2, 0.2)), material)
    traj = scene.run(frames=10, frame_dt=1e-2)
    assert sum(traj.meta["substeps"]) == 1000
    assert np.abs(traj.x[-1] - traj.x[0]).max() < 1e-6
