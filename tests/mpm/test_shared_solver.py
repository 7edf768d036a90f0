"""Scenes of one configuration share one compiled solver (simcore.mpm.cache): what each scene computes
must not depend on what other scenes ran on that solver before or in between."""

import numpy as np
import pytest
import torch

import simcore as sc
from simcore.mpm import cache

M, S = sc.materials, sc.shapes


def jelly(size=0.2, E=2e4, velocity=(0.5, -1.0), shape="box"):
    scene = sc.Scene(dim=2, grid=32)
    body = (S.Box(center=(0.5, 0.5), size=(size, size)) if shape == "box"
            else S.Sphere(center=(0.5, 0.5), radius=size / 2))
    scene.add_body(body, M.NeoHookean(E=E, nu=0.3), velocity=velocity)
    scene.add_collider(sc.colliders.Plane(point=(0, 0.3), normal=(0, 1), friction=0.2, velocity=(0.0, 0.2)))
    return scene


def test_scenes_of_one_configuration_share_a_solver(cpu64):
    """Reuse: a second scene of the same configuration (another shape, size, modulus, velocity) builds no
    solver; a scene of another configuration (another material kind) builds its own."""
    cache.clear()
    jelly().run(frames=2, frame_dt=0.01)
    assert cache.info().built == 1
    jelly(size=0.24, E=5e4, velocity=(0.0, 0.0), shape="sphere").run(frames=2, frame_dt=0.01)
    assert cache.info().built == 1 and cache.info().reused >= 1
    sand = sc.Scene(dim=2, grid=32)
    sand.add_body(S.Box(center=(0.5, 0.5), size=(0.2, 0.2)), M.Sand(E=2e4))
    sand.add_collider(sc.colliders.Plane(point=(0, 0.3), normal=(0, 1), friction=0.2, velocity=(0.0, 0.2)))
    sand.run(frames=1, frame_dt=0.01)
    assert cache.info().built == 2


def test_compile_materials_shares_one_solver_across_material_mixes(cpu64):
    """Reuse across mixes: scenes compiled for the same listed material types share one solver whatever
    subset their bodies use, and a jelly on that solver (through the SVD materials' split path) moves
    as on its own neo-Hookean-only solver, to round-off in float64."""
    listed = (M.NeoHookean, M.Sand, M.Fluid)

    def scene(*materials, compile_materials=listed):
        s = sc.Scene(dim=2, grid=32, compile_materials=compile_materials)
        for i, m in enumerate(materials):
            s.add_body(S.Box(center=(0.3 + 0.4 * i, 0.5), size=(0.2, 0.2)), m, velocity=(0.0, -1.0))
        return s

    cache.clear()
    shared = scene(M.NeoHookean(E=2e4)).run(frames=3, frame_dt=0.01, record=("x", "F"))
    scene(M.Sand(E=2e4), M.Fluid()).run(frames=1, frame_dt=0.01)
    scene(M.Fluid()).run(frames=1, frame_dt=0.01)
    assert cache.info().built == 1
    alone = scene(M.NeoHookean(E=2e4), compile_materials=()).run(frames=3, frame_dt=0.01, record=("x", "F"))
    assert cache.info().built == 2
    np.testing.assert_allclose(shared.x, alone.x, rtol=0, atol=1e-12)
    np.testing.assert_allclose(shared.F, alone.F, rtol=0, atol=1e-10)


@pytest.mark.parametrize("bad", [M.Neural, "Sand", 3])
def test_compile_materials_rejects_what_is_not_a_material_type(bad):
    with pytest.raises(ValueError, match="compile_materials"):
        sc.Scene(dim=2, compile_materials=(bad,))


def test_interleaved_scenes_equal_scenes_run_alone(cpu64):
    """Determinism under sharing: two scenes advanced in alternation on the shared solver (each `run`
    reloads its own model, state, clock and collider positions) give bit-identical trajectories to
    each scene run in one go."""
    alone = [jelly(E=2e4).run(frames=6, frame_dt=0.01, record=("x", "v", "F")),
             jelly(size=0.16, E=8e4, shape="sphere").run(frames=6, frame_dt=0.01, record=("x", "v", "F"))]
    a, b = jelly(E=2e4), jelly(size=0.16, E=8e4, shape="sphere")
    parts = {0: [], 1: []}
    for _ in range(3):
        parts[0].append(a.run(frames=2, frame_dt=0.01, record=("x", "v", "F")))
        parts[1].append(b.run(frames=2, frame_dt=0.01, record=("x", "v", "F")))
    for i, traj in enumerate(alone):
        for name in ("x", "v", "F"):
            pieces = [getattr(traj, name)[0]] + [p for part in parts[i] for p in getattr(part, name)[1:]]
            np.testing.assert_array_equal(np.stack(pieces), getattr(traj, name))
    assert a.time == pytest.approx(0.06) and b.time == pytest.approx(0.06)


def test_larger_scene_grows_the_solver(cpu64):
    """Capacity: a scene with more particles than the shared solver holds replaces it with a larger one,
    and a smaller scene then runs on that one."""
    cache.clear()
    small = jelly(size=0.1)
    small.run(frames=1, frame_dt=0.01)
    (solver,) = cache.solvers()
    big = sc.Scene(dim=2, grid=32, particles_per_cell=16)
    big.add_body(S.Box(center=(0.5, 0.55), size=(0.8, 0.6)), M.NeoHookean(E=2e4), velocity=(0.5, -1.0))
    big.add_collider(sc.colliders.Plane(point=(0, 0.2), normal=(0, 1), friction=0.2, velocity=(0.0, 0.2)))
    assert big.n_particles > solver.capacity.particles
    big.run(frames=1, frame_dt=0.01)
    (grown,) = cache.solvers()
    assert grown is not solver and grown.capacity.particles >= big.n_particles
    small.reset()
    traj = small.run(frames=1, frame_dt=0.01)
    assert cache.solvers() == [grown] and np.isfinite(traj.x).all()


def test_gradient_of_one_scene_unaffected_by_another_between_forward_and_backward(cpu64):
    """Rollout A's backward after scene B (same configuration, so the same gradient solver) ran a rollout
    in between gives A's gradient alone, to 1e-12: the backward reloads A's model and constants."""

    def loss_and_grad(between=None):
        E = torch.tensor(3e4, dtype=torch.float64, requires_grad=True)
        scene = jelly(E=E)
        out = scene.rollout(frames=3, frame_dt=0.01)
        if between is not None:
            between()
        ((out.x[-1] ** 2).mean()).backward()
        return E.grad.item()

    def other_rollout():
        E = torch.tensor(9e4, dtype=torch.float64, requires_grad=True)
        out = jelly(size=0.26, E=E, velocity=(-1.0, 0.0), shape="sphere").rollout(frames=3, frame_dt=0.01)
        (out.x[-1].sum()).backward()

    alone = loss_and_grad()
    assert alone != 0
    assert loss_and_grad(other_rollout) == pytest.approx(alone, rel=1e-12)


def test_rollout_after_add_body_equals_the_scene_built_whole(cpu64):
    """Issue 12, defect 1: rollout, add_body, rollout on one scene (the README's gradient snippets in
    order) failed inside Taichi ("ti.field shape (100,) does not match the numpy array shape (145,)"):
    the scene kept the gradient solver of its first rollout, sized for its first body. Now the second
    rollout, and its gradient, equal those of a scene built with both bodies from the start."""

    def second_body(scene):
        scene.add_body(S.Box(center=(0.3, 0.6), size=(0.1, 0.1)), M.NeoHookean(E=4e4), velocity=(1.0, 0.0))

    E = torch.tensor(3e4, dtype=torch.float64, requires_grad=True)
    scene = jelly(E=E)
    first = scene.rollout(frames=2, frame_dt=0.01)
    second_body(scene)
    grown = scene.rollout(frames=2, frame_dt=0.01)
    assert grown.x.shape[1] == scene.n_particles > first.x.shape[1]
    (grown.x[-1] ** 2).sum().backward()
    whole = jelly(E=(E_whole := torch.tensor(3e4, dtype=torch.float64, requires_grad=True)))
    second_body(whole)
    expected = whole.rollout(frames=2, frame_dt=0.01)
    (expected.x[-1] ** 2).sum().backward()
    torch.testing.assert_close(grown.x, expected.x, rtol=0, atol=1e-14)
    assert E.grad.item() == pytest.approx(E_whole.grad.item(), rel=1e-12) and E.grad.item() != 0


def test_backward_after_the_solver_was_replaced(cpu64):
    """A rollout's autograd graph outlives the solver its forward ran on: after a larger scene of the
    configuration made the cache replace (and free) the gradient solver, the first rollout's backward
    gives its gradient alone, to 1e-12. Before issue 12 it ran on the freed fields (a segfault)."""

    def rollout():
        E = torch.tensor(3e4, dtype=torch.float64, requires_grad=True)
        return E, jelly(E=E).rollout(frames=3, frame_dt=0.01)

    E, out = rollout()
    ((out.x[-1] ** 2).mean()).backward()
    alone = E.grad.item()
    E, out = rollout()
    (old,) = [s for s in cache.solvers() if s.needs_grad]
    big = sc.Scene(dim=2, grid=32, particles_per_cell=16)
    big.add_body(S.Box(center=(0.5, 0.6), size=(0.6, 0.45)), M.NeoHookean(E=2e4))
    big.add_collider(sc.colliders.Plane(point=(0, 0.3), normal=(0, 1), friction=0.2, velocity=(0.0, 0.2)))
    assert big.n_particles > old.capacity.particles
    big.rollout(frames=1, frame_dt=0.01)
    assert old not in cache.solvers()  # replaced and freed
    ((out.x[-1] ** 2).mean()).backward()
    assert E.grad.item() == pytest.approx(alone, rel=1e-12) and alone != 0
