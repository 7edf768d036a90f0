"""The scene API: bodies, initial velocities, per-particle parameters, errors, determinism, records."""

import os

import numpy as np
import pytest

import simcore as sc

M, S = sc.materials, sc.shapes


def small_scene(**kw):
    scene = sc.Scene(dim=2, grid=24, **kw)
    scene.add_body(S.Box(center=(0.5, 0.5), size=(0.2, 0.2)), M.NeoHookean(E=1e4), name="jelly")
    return scene


def test_body_outside_domain_is_named(cpu32):
    scene = sc.Scene(dim=3, grid=32)
    with pytest.raises(ValueError, match="'cube'.*outside the domain"):
        scene.add_body(S.Box(center=(0.95, 0.5, 0.5), size=(0.2, 0.2, 0.2)), M.NeoHookean(), name="cube")


def test_body_in_wall_layer_is_named_with_allowed_range(cpu32):
    scene = sc.Scene(dim=2, grid=32)
    with pytest.raises(ValueError, match=r"'ball' overlaps the wall layer.*\[0.09375, 0.9062\]"):
        scene.add_body(S.Sphere(center=(0.5, 0.12), radius=0.05), M.Fluid(), name="ball")


def test_dt_above_stability_bound_reports_bound(cpu32):
    scene = sc.Scene(dim=2, grid=24, dt=0.01)
    scene.add_body(S.Box(center=(0.5, 0.5), size=(0.2, 0.2)), M.NeoHookean(E=1e6))
    with pytest.raises(ValueError, match=r"dt=0.01 s exceeds the CFL stability bound [0-9.e-]+ s"):
        scene.run(frames=1)


def test_nan_reports_frame_substep_body_and_keeps_frames(cpu32):
    """A material too soft for the step (cfl=1) inverts and goes non-finite; the error names where,
    and the frames before it are kept."""
    scene = sc.Scene(dim=2, grid=32, cfl=1.0)
    scene.add_body(S.Box(center=(0.8, 0.8), size=(0.1, 0.1)), M.NeoHookean(E=50, nu=0.45), name="rock")
    scene.add_body(S.Box(center=(0.5, 0.3), size=(0.2, 0.1)), M.NeoHookean(E=50, nu=0.45),
                   velocity=(0, -8), name="jelly")
    with pytest.raises(sc.SimulationError) as info:
        scene.run(frames=30, frame_dt=1 / 60)
    err = info.value
    assert err.body == "jelly" and err.frame >= 2 and err.substep is not None
    assert f"frame {err.frame}, substep {err.substep}" in str(err)
    traj = err.trajectory
    assert traj.frames == err.frame - 1 and np.isfinite(traj.x).all()
    # The scene is left at the last good state.
    assert np.array_equal(scene.state.x, traj.x[-1]) and scene.time == traj.t[-1]


def test_bad_parameters_raise_clear_errors():
    with pytest.raises(ValueError, match="Poisson's ratio"):
        M.NeoHookean(nu=0.5)
    with pytest.raises(ValueError, match="Young's modulus"):
        M.FixedCorotated(E=-1.0)
    with pytest.raises(ValueError, match="density"):
        M.Fluid(density=0.0)
    with pytest.raises(ValueError, match="friction_angle"):
        M.Sand(friction_angle=95)
    with pytest.raises(ValueError, match="yield_stress"):
        M.Plasticine(yield_stress=0)
    with pytest.raises(ValueError, match="critical_compression"):
        M.Snow(critical_compression=1.5)
    with pytest.raises(ValueError, match="unknown mode"):
        sc.Scene(walls={"-y": "glue"})
    with pytest.raises(ValueError, match="unknown wall side"):
        sc.Scene(dim=2, walls={"-z": "sticky"})
    with pytest.raises(ValueError, match="perfect square"):
        sc.Scene(dim=2, particles_per_cell=5).add_body(S.Box(center=(0.5, 0.5), size=(0.2, 0.2)), M.Fluid())


def test_per_particle_parameters(cpu32):
    """Parameters may vary per particle: a callable of position, or one value per particle."""
    scene = sc.Scene(dim=2, grid=24)
    body = scene.add_body(S.Box(center=(0.5, 0.5), size=(0.2, 0.2)), M.NeoHookean(E=lambda x: 1e4 * (1 + x[:, 0])))
    E = body.params["mu"] * 2 * 1.3
    assert np.allclose(E, 1e4 * (1 + body.x[:, 0]))
    with pytest.raises(ValueError, match="one value per particle"):
        scene.add_body(S.Box(center=(0.5, 0.2), size=(0.1, 0.1)), M.NeoHookean(E=np.ones(3)))
    with pytest.raises(ValueError, match="invalid value"):
        scene.add_body(S.Box(center=(0.5, 0.2), size=(0.1, 0.1)), M.NeoHookean(E=lambda x: -x[:, 0]))


def test_initial_velocity_forms(cpu32):
    """Velocity as a vector, a callable of position, or an angular velocity about the centroid."""
    scene = sc.Scene(dim=3, grid=24)
    a = scene.add_body(S.Sphere(center=(0.3, 0.5, 0.5), radius=0.08), M.NeoHookean(), velocity=(1, 2, 3))
    b = scene.add_body(S.Box(center=(0.7, 0.5, 0.5), size=(0.1, 0.1, 0.1)), M.NeoHookean(),
                       velocity=lambda x: np.stack([x[:, 1], 0 * x[:, 1], 0 * x[:, 1]], 1))
    c = scene.add_body(S.Cylinder(center=(0.5, 0.3, 0.5), radius=0.06, height=0.1), M.NeoHookean(),
                       angular_velocity=(0, 2.0, 0))
    assert np.allclose(a.v, [1, 2, 3])
    assert np.allclose(b.v[:, 0], b.x[:, 1])
    r = c.x - c.x.mean(0)
    assert np.allclose(c.v, np.cross([0, 2.0, 0], r))
    with pytest.raises(ValueError, match="velocity must have 3 components"):
        scene.add_body(S.Box(center=(0.5, 0.7, 0.5), size=(0.1, 0.1, 0.1)), M.NeoHookean(), velocity=(1, 2))


def test_random_sampling_is_seeded(cpu32):
    """The same seed gives the same particles and the same trajectory; another seed does not."""
    def run(seed):
        scene = sc.Scene(dim=2, grid=24, sampling="random", seed=seed)
        scene.add_body(S.Sphere(center=(0.5, 0.5), radius=0.15), M.NeoHookean(E=1e4))
        return scene.run(frames=3, frame_dt=0.01)
    a, b, c = run(1), run(1), run(2)
    assert np.array_equal(a.x, b.x)
    assert not np.array_equal(a.x[0], c.x[0])


def test_sampled_volume_matches_shape(cpu32):
    """Particle volumes add up to the shape's volume (lattice sampling, to the lattice resolution)."""
    scene = sc.Scene(dim=3, grid=48)
    body = scene.add_body(S.Sphere(center=(0.5, 0.5, 0.5), radius=0.2), M.Fluid())
    assert body.volume.sum() == pytest.approx(4 / 3 * np.pi * 0.2**3, rel=0.02)


def test_run_continues_and_reset_restarts(cpu32):
    scene = small_scene()
    first = scene.run(frames=4, frame_dt=0.01)
    second = scene.run(frames=2, frame_dt=0.01)
    assert np.allclose(second.x[0], first.x[-1]) and second.t[0] == pytest.approx(0.04)
    scene.reset()
    again = scene.run(frames=4, frame_dt=0.01)
    assert np.array_equal(again.x, first.x)


def test_trajectory_records_and_round_trips(cpu32, tmp_path):
    scene = small_scene()
    traj = scene.run(frames=3, frame_dt=0.01, record=("v", "F"))
    assert traj.x.shape == (4, traj.n_particles, 2) and traj.v.shape == traj.x.shape
    assert traj.F.shape == (4, traj.n_particles, 2, 2) and traj.C is None
    assert traj.body_names == ["jelly"] and traj.material_names == ["NeoHookean"]
    path = traj.save(tmp_path / "run.npz")
    assert sorted(os.listdir(tmp_path)) == ["run.npz"]  # written atomically: no temporary left
    loaded = sc.Trajectory.load(path)
    for name in ("x", "t", "v", "F", "body_id", "material_id", "mass", "volume"):
        assert np.array_equal(getattr(loaded, name), getattr(traj, name))
    assert loaded.meta["substeps"] == traj.meta["substeps"] and loaded.body_names == ["jelly"]
    with pytest.raises(ValueError, match="cannot record"):
        scene.run(frames=1, record=("sigma",))


def test_user_dt_splits_frames_into_equal_substeps(cpu32):
    """dt is the largest substep: a 1/60 s frame with dt = 2e-4 s takes 84 equal substeps."""
    scene = small_scene(dt=2e-4)
    traj = scene.run(frames=1, frame_dt=1 / 60)
    assert traj.meta["substeps"] == [84] and traj.meta["dt"][0] == pytest.approx(1 / 60 / 84)


def test_model_follows_the_values_it_is_built_from():
    """Scene.model is rebuilt when a value it is made from changes (a tensor updated in place by an
    optimiser, a parameter or collider friction reassigned), so that `run` sees what `rollout` sees
    (issue 12), and is the same object otherwise (a run then uploads nothing: MPMSolver.load)."""
    import torch

    E = torch.tensor(2e4, dtype=torch.float64, requires_grad=True)
    scene = sc.Scene(dim=2, grid=24)
    material = M.NeoHookean(E=E, nu=0.3)
    scene.add_body(S.Box(center=(0.5, 0.5), size=(0.2, 0.2)), material)
    floor = scene.add_collider(sc.colliders.Plane(point=(0, 0.3), normal=(0, 1), friction=0.2))
    model = scene.model
    assert scene.model is model
    with torch.no_grad():
        E.mul_(2)
    assert scene.model is not model and scene.model.mu[0] == pytest.approx(2 * model.mu[0], rel=1e-12)
    model = scene.model
    material.nu = 0.25
    assert scene.model is not model and scene.model.lam[0] < model.lam[0]
    model = scene.model
    floor.friction = 0.5
    assert scene.model is not model and scene.model.collider_friction.tolist() == [0.5]
    assert scene.model is scene.model
    model = scene.model
    scene.gravity = (0.0, -3.0)  # a tilting table reassigns gravity between runs
    assert scene.model is not model and scene.model.gravity.tolist() == [0.0, -3.0]
    model = scene.model
    scene.wall_friction = 0.4
    assert scene.model is not model and scene.model.wall_friction == 0.4
    with pytest.raises(ValueError, match="gravity must be 2 finite numbers"):
        scene.gravity = (0.0, float("nan"))
