"""The plain-Python parts of the MPM core: configuration, capacity, substep planner, collider paths,
output conventions. None of these needs Taichi."""

import numpy as np
import pytest
import torch

import simcore as sc
from simcore.materials import FIXED_COROTATED, FLUID, NEO_HOOKEAN, SAND, SNOW
from simcore.mpm.config import Capacity, Configuration
from simcore.mpm.kinematics import collider_paths
from simcore.mpm.planner import Schedule, substeps_for_frame
from simcore.mpm.state import output_conventions


def config(kinds, needs_grad=False, arch="cpu", grid=32, dim=3):
    return Configuration(dim=dim, grid=grid, kinds=kinds, wall_modes=((0, 0),) * dim, colliders=(),
                         n_actuators=0, precision="f32", arch=arch, needs_grad=needs_grad)


def test_configuration_chooses_the_code_paths():
    """The decomposition each material needs decides the P2G path: fused for neo-Hookean and fluid,
    split (the stress in parallel, the scatter serially) for SVD / closest-rotation materials on the
    CPU, deform for gradient solvers with decompositions."""
    assert config((NEO_HOOKEAN, FLUID)).p2g_mode == "fused"
    assert config((SAND,)).uses_svd and config((SAND,)).p2g_mode == "split"
    assert config((FIXED_COROTATED,)).uses_rotation and not config((FIXED_COROTATED,)).uses_svd
    assert config((SAND,), arch="cuda").p2g_mode == "fused"
    assert config((SAND,), needs_grad=True).p2g_mode == "deform"
    assert config((NEO_HOOKEAN,), needs_grad=True).p2g_mode == "fused"
    assert config((SNOW,)).uses_Jp and not config((SAND,)).uses_Jp
    assert config((SAND,), grid=32).serial_grid and not config((SAND,), grid=64).serial_grid
    # Equal configurations are equal keys, whatever object built them.
    assert config((SAND,)) == config((SAND,)) and hash(config((SAND,))) == hash(config((SAND,)))
    assert config((SAND,)) != config((SAND,), needs_grad=True)


def test_capacity_rounds_to_powers_of_two():
    assert Capacity.for_particles(1000, 16, needs_grad=True) == Capacity(1024, 16)
    assert Capacity.for_particles(1025, 16, needs_grad=True) == Capacity(2048, 16)
    assert Capacity.for_particles(8000, 128, needs_grad=True).particles == 8192
    assert Capacity.for_particles(100, 3, needs_grad=False).particles == 4096
    assert Capacity.for_particles(65536, 3, needs_grad=False).particles == 131072
    assert Capacity(2048, 16).holds(Capacity(2000, 3)) and not Capacity(2048, 16).holds(Capacity(2049, 3))


def test_slot_bytes_count_what_each_configuration_keeps():
    """A gradient solver's bytes per slot: the state and its adjoint (2 · 25 floats a particle in 3D),
    the kept temporaries its materials need, and 7 floats a grid node."""
    def per_particle(kinds):
        return (config(kinds, needs_grad=True).slot_bytes(8192) - 4 * 32 ** 3 * 7) / (4 * 8192)

    assert per_particle((NEO_HOOKEAN,)) == 50 + 9  # the APIC affine matrix
    assert per_particle((FIXED_COROTATED,)) == 50 + 9 + 9 + 9  # + F_trial and its closest rotation
    assert per_particle((SAND,)) == 50 + 9 + 9 + 21  # + F_trial and its SVD
    assert config((SAND,), needs_grad=True).with_grad(False) == config((SAND,))


def test_planner_respects_the_cfl_bound():
    """CFL: substeps of at most cfl · dx / (signal speed + |g| frame_dt), equal, summing to the frame."""
    n, dt = substeps_for_frame(1 / 60, signal_speed=50.0, gravity=9.8, dx=1 / 64, dt=None, cfl=0.4, frame=1)
    bound = (1 / 64) / (50.0 + 9.8 / 60)
    assert dt <= 0.4 * bound * (1 + 1e-12) and n * dt == pytest.approx(1 / 60, rel=1e-14)
    assert (1 / 60) / (n - 1) > 0.4 * bound  # one substep fewer would break the bound
    n, dt = substeps_for_frame(0.01, 1.0, 0.0, 1 / 32, dt=3e-3, cfl=0.4, frame=1)
    assert (n, dt) == (4, 0.0025)  # dt is the largest substep: frames split evenly
    with pytest.raises(ValueError, match="exceeds the CFL stability bound"):
        substeps_for_frame(0.01, 100.0, 0.0, 1 / 32, dt=1e-3, cfl=0.4, frame=1)
    with pytest.raises(sc.SimulationError, match="at frame 3"):
        substeps_for_frame(0.01, 100.0, 0.0, 1 / 32, dt=1e-3, cfl=0.4, frame=3)


def test_schedule_frames_and_segments():
    s = Schedule(substeps=[3, 2, 4], dts=[0.1, 0.2, 0.05])
    assert s.total == 9 and s.frame_ends() == [3, 5, 9] and s.frame_starts() == [0, 3, 5]
    assert s.dt_of(4) == 0.2 and s.segments(4) == [(0, 4), (4, 4), (8, 1)]
    assert s.segments(0, at_frames=True) == [(0, 3), (3, 2), (5, 4)]


def test_collider_paths_numpy_and_torch_agree_with_the_exact_path():
    """Kinematics: a collider moving at v(t) = (sin t, 2) is moved by dt · v(t_start) per substep (the
    kernels' explicit rule); numpy and torch give the same path, and torch's is differentiable."""
    speed = torch.tensor(2.0, dtype=torch.float64, requires_grad=True)
    numpy_box = sc.colliders.Box(center=(0.5, 0.5), size=(0.1, 0.1), velocity=lambda t: (np.sin(t), 2.0))
    torch_box = sc.colliders.Box(center=(0.5, 0.5), size=(0.1, 0.1),
                                 velocity=lambda t: torch.stack([torch.tensor(np.sin(t), dtype=torch.float64),
                                                                 speed]))
    dts = np.array([0.1, 0.1, 0.2, 0.05])
    origin = np.array([[0.5, 0.5]])
    o_np, v_np = collider_paths([numpy_box], origin, 1.0, dts, 2)
    o_t, v_t = collider_paths([torch_box], origin, 1.0, torch.as_tensor(dts), 2, torch.float64)
    starts = 1.0 + np.concatenate([[0.0], np.cumsum(dts)[:-1]])
    expected = origin[0] + np.concatenate([[[0, 0]], np.cumsum(dts[:, None] * np.stack(
        [np.sin(starts), np.full(4, 2.0)], 1), 0)])
    np.testing.assert_allclose(o_np[:, 0], expected, rtol=1e-15)
    np.testing.assert_allclose(o_t.detach().numpy(), o_np, rtol=1e-15)
    np.testing.assert_allclose(v_t.detach().numpy(), v_np, rtol=1e-15)
    o_t[-1, 0, 1].backward()
    assert speed.grad.item() == pytest.approx(dts.sum())  # d(final y)/d(speed) = Σ dt


def test_output_conventions_numpy_and_torch_agree():
    """A fluid particle's F is J^(1/d) I and its Jp is J; a non-snow solid's Jp is 1; snow keeps its Jp."""
    kind = np.array([FLUID, SNOW, NEO_HOOKEAN])
    F = np.stack([np.full((2, 2), 7.0), np.eye(2) * 1.1, np.eye(2) * 0.9])[None]
    Jp = np.array([[0.81, 0.95, 0.5]])
    out = output_conventions({"F": F, "Jp": Jp}, kind, 2)
    np.testing.assert_allclose(out["F"][0, 0], 0.9 * np.eye(2), rtol=1e-15)
    np.testing.assert_array_equal(out["F"][0, 1:], F[0, 1:])
    np.testing.assert_array_equal(out["Jp"][0], [0.81, 0.95, 1.0])
    out_t = output_conventions({"F": torch.as_tensor(F), "Jp": torch.as_tensor(Jp)}, kind, 2)
    np.testing.assert_allclose(out_t["F"].numpy(), out["F"], rtol=1e-15)
    np.testing.assert_array_equal(out_t["Jp"].numpy(), out["Jp"])
