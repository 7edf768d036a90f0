"""The grid-to-particle transfers: APIC (the default) and the FLIP blend (`Scene(transfer="flip")`,
simcore.mpm.step `_flip_velocity`), each test naming the law it checks."""

import sys
from pathlib import Path

import numpy as np
import pytest

import simcore as sc
from tests.conftest import momentum

ROOT = Path(__file__).resolve().parents[2]


def noisy_velocity(x):
    """A velocity field no grid can hold: independent N(0, 0.1 m/s) per particle and axis, (n, dim)."""
    return np.random.default_rng(1).normal(0.0, 0.1, x.shape)


def free_block(transfer, flip_damping=0.0, dt=1e-4, E=1e3):
    """A 2D neo-Hookean block in zero gravity, away from the walls, its particles moving at random."""
    scene = sc.Scene(dim=2, grid=32, gravity=(0, 0), dt=dt, transfer=transfer, flip_damping=flip_damping)
    scene.add_body(sc.shapes.Box(center=(0.5, 0.5), size=(0.2, 0.2)), sc.materials.NeoHookean(E=E),
                   velocity=noisy_velocity)
    return scene


def kinetic_energy(mass, v):
    return 0.5 * float(np.sum(mass * np.sum(v**2, axis=1)))


class TestFlipBlend:
    @pytest.fixture(scope="class", autouse=True)
    def backend(self, cpu64):
        return cpu64

    def test_pure_flip_round_trip_keeps_every_velocity_when_no_force_acts(self):
        """Law: FLIP changes a particle's velocity by the grid's velocity change, so with no force
        acting (zero gravity, an unstrained body: the first substep's stress is zero) a substep leaves
        every particle's velocity as it was, to round-off. APIC replaces it by the grid's interpolant,
        which cannot hold a random field."""
        change = {}
        for transfer in ("flip", "apic"):
            scene = free_block(transfer)
            traj = scene.run(frames=1, frame_dt=1e-4, record=("v",), progress=False)
            change[transfer] = np.abs(traj.v[1] - traj.v[0]).max()
        assert change["flip"] < 1e-14
        assert change["apic"] > 0.1

    def test_flip_conserves_linear_momentum(self):
        """Law: conservation of linear momentum. The blend adds α (v_p − Σ w g0) to each particle;
        Σ_p m_p Σ_i w_ip g0_i = Σ_i m_i g0_i = Σ_p m_p v_p (Σ_i w_ip dpos_i = 0), so the term carries
        no net momentum, and internal forces none either: 50 frames of an elastic block in zero gravity
        keep Σ m v to round-off."""
        scene = free_block("flip", flip_damping=0.0, dt=None)
        traj = scene.run(frames=50, frame_dt=1e-2, record=("v",), progress=False)
        p0, p1 = momentum(scene.model.mass, traj.v[0]), momentum(scene.model.mass, traj.v[-1])
        assert np.abs(p1 - p0).max() < 1e-12 * np.abs(p0).max()
        # ... while pure FLIP leaves the block's random motion largely undamped (72 % of its kinetic
        # energy kept when measured; APIC keeps 2 %)
        assert kinetic_energy(scene.model.mass, traj.v[-1]) > 0.5 * kinetic_energy(scene.model.mass, traj.v[0])

    def test_flip_damping_acts_per_second_not_per_substep(self):
        """Law: the deviation from the grid's velocity decays as e^(−κ t) whatever the time step.
        The block's random motion (forces negligible: E = 0.01 Pa) damped at κ = 10/s keeps the same
        fraction of its kinetic energy after 0.1 s with substeps of 1e-4 s and 1e-2 s (a ratio fixed
        per substep would damp the first a hundred times more); the fraction lies between APIC's
        (the deviation gone at once) and the undamped 1."""
        kept = []
        for dt in (1e-4, 1e-2):
            scene = free_block("flip", flip_damping=10.0, dt=dt, E=1e-2)
            traj = scene.run(frames=10, frame_dt=1e-2, record=("v",), progress=False)
            kept.append(kinetic_energy(scene.model.mass, traj.v[-1]) / kinetic_energy(scene.model.mass, traj.v[0]))
        apic = free_block("apic", dt=1e-4, E=1e-2)
        traj = apic.run(frames=10, frame_dt=1e-2, record=("v",), progress=False)
        kept_apic = kinetic_energy(apic.model.mass, traj.v[-1]) / kinetic_energy(apic.model.mass, traj.v[0])
        assert abs(kept[0] / kept[1] - 1) < 0.03, kept
        assert kept_apic < 0.5 * kept[0] and kept[0] < 0.5, (kept_apic, kept)


def thrown_jelly_on_each_arch():
    """{arch: trajectory} of a 2D jelly thrown at a wall with pure FLIP (grid 48, f32, 4 frames) on the
    CPU and on Vulkan; leaves the CPU backend (f32) initialised."""
    runs = {}
    try:
        for arch in ("cpu", "vulkan"):
            sc.init(arch, "f32", verbose=False)
            scene = sc.Scene(dim=2, grid=48, dt=2e-4, transfer="flip", flip_damping=0.0)
            scene.add_body(sc.shapes.Box(center=(0.6, 0.5), size=(0.3, 0.3)), sc.materials.NeoHookean(E=5e3),
                           velocity=(6.0, -1.0))
            runs[arch] = scene.run(frames=4, frame_dt=0.01, record=("x", "v"), progress=False)
    finally:
        sc.init("cpu", "f32", verbose=False)
    return runs


@pytest.mark.vulkan
def test_vulkan_blends_flip_as_the_cpu_does(vulkan_ok):
    """Backend agreement on the GPU-style path (parallel scatter with atomics, each G2P fused with the
    next P2G): a jelly thrown at a wall with pure FLIP follows the CPU's trajectory to 1e-4 m (float32)."""
    if not vulkan_ok:
        pytest.skip("no Vulkan device (install mesa-vulkan-drivers)")
    runs = thrown_jelly_on_each_arch()
    assert runs["vulkan"].meta["arch"] == "vulkan"
    assert np.abs(runs["vulkan"].x - runs["cpu"].x).max() < 1e-4
    assert np.abs(runs["cpu"].v[-1] - runs["cpu"].v[0]).max() > 1.0  # it hit the wall


def test_column_collapse_run_out_does_not_depend_on_the_time_step_with_flip():
    """Law: a converged scheme's answer does not depend on the time step. The a = 2 Drucker–Prager sand
    column of examples/column_collapse_lube.py (grid 32, 1.5 s) with substeps four times shorter (CFL 0.4
    and 0.1): with the FLIP blend the run-outs agree within 4 % (0.7 % when measured); APIC's
    per-substep damping shortens the run-out by more than 8 % (16 % when measured)."""
    sc.init("cpu", "f32", verbose=False)
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        from column_collapse_lube import collapse
    finally:
        sys.path.remove(str(ROOT / "examples"))
    run_out = {(transfer, cfl): collapse(0.2, 0.2, 32, 1.0, 30.0, 1.5, rheology="drucker-prager", cfl=cfl,
                                         transfer=transfer)[0]
               for transfer in ("flip", "apic") for cfl in (0.4, 0.1)}
    assert abs(run_out["flip", 0.1] / run_out["flip", 0.4] - 1) < 0.04, run_out
    assert run_out["apic", 0.1] / run_out["apic", 0.4] < 0.92, run_out
