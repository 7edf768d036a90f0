"""The partitioned scatter (simcore.mpm.step: on a multi-threaded CPU, scenes of at least
PARTITION_MIN_PARTICLES particles scatter in one run of particles per thread, each into its own copy
of the grid, summed afterwards) computes the serial loop's P2G.

Laws and properties checked, on a 2D jelly of 20,000 particles (above the threshold) thrown at a wall:
- the same trajectory as the serial scatter (one thread) to float64 round-off: the two differ only in
  the order in which each node sums its particles' contributions (the two-thread run also fuses each
  substep's G2P with the next substep's P2G, `MPMSolver.fused_substeps`, which these checks cover too);
- mass and momentum: the grid's total mass equals the particles' (to round-off), and in free flight
  the total momentum changes by exactly m g dt per substep;
- determinism: two runs on two threads agree to the bit (the runs are fixed by the particle count, not
  by the thread scheduling);
- a differentiable rollout (whose forward uses the same scatter) reproduces `run`, and its gradients
  (whose adjoint of G2P scatters in the same runs) equal the serial scatter's to round-off.
"""

import numpy as np
import pytest
import torch

import simcore as sc
from simcore.mpm import cache
from simcore.mpm.config import PARTITION_MIN_PARTICLES

M = sc.materials
GRID = 96
FRAMES = 4


def jelly_scene(E=5e3, velocity=(6.0, -1.0), transfer="apic"):
    scene = sc.Scene(dim=2, grid=GRID, dt=2e-4, transfer=transfer)
    # A 0.37 m square at 4 × 4 particles per cell: 142² = 20,164 particles, thrown at the right wall.
    scene.add_body(sc.shapes.Box(center=(0.6, 0.5), size=(0.37, 0.37)), M.NeoHookean(E=E, nu=0.3),
                   velocity=velocity, particles_per_cell=16)
    return scene


def run_with(threads: int, rollout: bool = False, transfer: str = "apic"):
    sc.init("cpu", "f64", threads=threads, verbose=False)
    scene = jelly_scene(transfer=transfer)
    traj = scene.run(frames=FRAMES, frame_dt=0.01, record=("x", "v"), progress=False)
    solver = scene.build()
    out = {"x": traj.x, "v": traj.v, "parts": solver.parts, "n": scene.model.n_particles,
           "fuses": solver.fuses_transfers}
    if rollout:
        out["rollout_x"] = scene.rollout(frames=FRAMES, frame_dt=0.01).x.detach().numpy()
        E = torch.tensor(5e3, dtype=torch.float64, requires_grad=True)
        v0 = torch.tensor([6.0, -1.0], dtype=torch.float64, requires_grad=True)
        x = jelly_scene(E, v0, transfer).rollout(frames=FRAMES, frame_dt=0.01).x
        # Count the reverse substeps whose gather also ran the next one's scatter (two threads).
        solver = next(s for s in cache.solvers() if s.needs_grad)
        fused, calls = solver.transfer_adjoint_gather_scatter, []
        solver.transfer_adjoint_gather_scatter = lambda *args: (calls.append(args), fused(*args))
        ((x[-1] ** 2).mean() + (x[2] ** 2).mean()).backward()  # (a loss term mid-segment: no fusion there)
        del solver.transfer_adjoint_gather_scatter
        out["grads"] = np.array([E.grad.item(), *v0.grad.tolist()])
        out["fused_adjoint_substeps"] = sum(1 for _, fuse, _ in calls if fuse)  # (s, fuse, parts)
    return out


@pytest.fixture(scope="module")
def runs():
    try:
        yield {"serial": run_with(1, rollout=True), "parts": run_with(2, rollout=True), "parts_again": run_with(2)}
    finally:
        sc.init("cpu", "f32", verbose=False)


def test_scene_is_partitioned_on_two_threads_only(runs):
    assert runs["parts"]["n"] >= PARTITION_MIN_PARTICLES
    assert runs["serial"]["parts"] == 1
    assert runs["parts"]["parts"] == 2
    assert runs["parts"]["fuses"] and not runs["serial"]["fuses"]  # the fused transfers are what ran


def test_partitioned_scatter_equals_serial_to_round_off(runs):
    """Same P2G, different summation order: the trajectories agree to round-off after 200 substeps
    with wall contact (the body reaches the wall layer at x = 0.969 m within the 0.04 s)."""
    serial, parts = runs["serial"], runs["parts"]
    assert serial["x"][:, :, 0].max() > 0.95  # it reached the wall
    np.testing.assert_allclose(parts["x"], serial["x"], rtol=0, atol=1e-10)
    np.testing.assert_allclose(parts["v"], serial["v"], rtol=0, atol=1e-8)


def test_partitioned_scatter_is_deterministic(runs):
    assert np.array_equal(runs["parts"]["x"], runs["parts_again"]["x"])
    assert np.array_equal(runs["parts"]["v"], runs["parts_again"]["v"])


def test_rollout_uses_the_same_scatter(runs):
    np.testing.assert_allclose(runs["parts"]["rollout_x"], runs["parts"]["x"], rtol=0, atol=1e-12)


def test_gradients_equal_the_serial_scatters(runs):
    """d (mean(x_T²) + mean(x_2²)) / d(E, v0) through the partitioned forward and adjoint scatters =
    through the serial ones, to round-off (the gradients themselves are checked against finite
    differences in tests/diff; here the two scatters must agree), also where the reverse sweep fuses
    each substep's gather with the next one's scatter (`transfer_adjoint_gather_scatter`)."""
    serial, parts = runs["serial"]["grads"], runs["parts"]["grads"]
    assert np.all(np.abs(serial) > 0)
    # the two-thread sweep fused each gather with the next scatter (all but a segment's last substep)
    assert runs["serial"]["fused_adjoint_substeps"] == 0 and runs["parts"]["fused_adjoint_substeps"] > 0
    np.testing.assert_allclose(parts, serial, rtol=1e-9, atol=0)


@pytest.fixture(scope="module")
def flip_runs():
    try:
        yield {"serial": run_with(1, rollout=True, transfer="flip"), "parts": run_with(2, rollout=True, transfer="flip")}
    finally:
        sc.init("cpu", "f32", verbose=False)


def test_flip_blend_is_the_same_on_every_scatter_path(flip_runs):
    """The FLIP transfer (`Scene(transfer="flip")`, its default damping) on the partitioned scatter,
    each substep's G2P fused with the next P2G, and in the reverse sweep's fused gather and scatter:
    the trajectory and the gradients equal the serial loop's to round-off."""
    serial, parts = flip_runs["serial"], flip_runs["parts"]
    assert parts["parts"] == 2 and parts["fuses"] and parts["fused_adjoint_substeps"] > 0
    assert serial["x"][:, :, 0].max() > 0.95  # it reached the wall
    np.testing.assert_allclose(parts["x"], serial["x"], rtol=0, atol=1e-10)
    np.testing.assert_allclose(parts["v"], serial["v"], rtol=0, atol=1e-8)
    np.testing.assert_allclose(parts["rollout_x"], parts["x"], rtol=0, atol=1e-12)
    assert np.all(np.abs(serial["grads"]) > 0)
    np.testing.assert_allclose(parts["grads"], serial["grads"], rtol=1e-9, atol=0)


def test_grid_mass_and_free_flight_momentum():
    """Σ grid mass = Σ particle mass after a partitioned P2G; in free flight (no wall reached in one
    substep) the total momentum grows by exactly M g dt."""
    try:
        sc.init("cpu", "f64", threads=2, verbose=False)
        scene = jelly_scene()
        solver = scene.build()
        assert solver.parts == 2
        solver.dt[None] = 2e-4
        mass = scene.model.mass
        state = solver.export_slot(0)
        p0 = (mass[:, None] * state["v"]).sum(0)
        solver.substep(0, 1)
        grid_mass = solver.grid_mass.to_numpy().sum()
        assert grid_mass == pytest.approx(mass.sum(), rel=1e-12)
        p1 = (mass[:, None] * solver.export_slot(1)["v"]).sum(0)
        expected = p0 + mass.sum() * 2e-4 * np.array(scene.gravity)
        np.testing.assert_allclose(p1, expected, rtol=1e-12, atol=1e-12)
    finally:
        sc.init("cpu", "f32", verbose=False)
