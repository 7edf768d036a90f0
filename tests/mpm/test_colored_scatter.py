"""The colored scatter (simcore.mpm.step): on the CPU, scenes of at least COLORED_MIN_PARTICLES scatter
in parallel without atomics, slab by slab. These tests force it on small scenes (and force the serial
loop for the reference) by moving that threshold."""

import numpy as np
import pytest
import torch

import simcore as sc
from simcore.mpm import config

M, S = sc.materials, sc.shapes


@pytest.fixture
def scatter(monkeypatch):
    """scatter("colored" | "serial"): make every CPU scatter run that way from now on."""
    def use(mode):
        monkeypatch.setattr(config, "COLORED_MIN_PARTICLES", 0 if mode == "colored" else 1 << 40)
    return use


def two_bodies(E=2e4):
    """A jelly and a fluid blob side by side with a gap between them (so that some slabs are empty and
    the partition is uneven), falling on a moving plane."""
    scene = sc.Scene(dim=2, grid=32)
    scene.add_body(S.Box(center=(0.3, 0.5), size=(0.2, 0.2)), M.NeoHookean(E=E, nu=0.3), velocity=(0.5, -1.0))
    scene.add_body(S.Sphere(center=(0.72, 0.55), radius=0.08), M.Fluid(bulk_modulus=5e3), velocity=(-0.3, -0.5))
    scene.add_collider(sc.colliders.Plane(point=(0, 0.3), normal=(0, 1), friction=0.2, velocity=(0.0, 0.2)))
    return scene


def test_colored_scatter_equals_the_serial_loop_to_round_off(cpu64, scatter):
    """P2G is a sum over particles: scattering slab by slab changes only the order of the additions,
    so positions, velocities and deformation gradients agree with the serial loop to round-off."""
    scatter("serial")
    serial = two_bodies().run(frames=6, frame_dt=0.01, record=("x", "v", "F"))
    scatter("colored")
    scene = two_bodies()
    colored = scene.run(frames=6, frame_dt=0.01, record=("x", "v", "F"))
    assert scene.build().scatter_mode == config.COLORED
    for name in ("x", "v", "F"):
        np.testing.assert_allclose(getattr(colored, name), getattr(serial, name), rtol=0, atol=1e-11)


def test_slab_partition_never_lets_two_tasks_write_one_node(cpu64, scatter):
    """The invariants the colored scatter's race freedom rests on, read back from the solver after a
    substep: slabs are contiguous runs of cells in order, every slab but the last is at least 2 cells
    wide (so the nodes of slabs k and k + 2, cells … last + 2, never meet), and `slab_order` lists
    each particle once, in its own slab, in index order."""
    scatter("colored")
    scene = two_bodies()
    scene.run(frames=1, frame_dt=0.01)
    solver = scene.build()
    n = scene.n_particles
    cell_slab = solver.cell_slab.to_numpy()
    n_slabs = int(solver.n_slabs[None])
    assert 2 <= n_slabs <= solver.SLABS
    assert cell_slab[0] == 0 and cell_slab[-1] == n_slabs - 1
    assert set(np.diff(cell_slab)) <= {0, 1}
    first = [int(np.flatnonzero(cell_slab == k)[0]) for k in range(n_slabs)]
    last = [int(np.flatnonzero(cell_slab == k)[-1]) for k in range(n_slabs)]
    for k in range(n_slabs - 1):
        assert last[k] - first[k] + 1 >= 2 or k == 0
    for k in range(n_slabs - 2):
        assert last[k] + 2 < first[k + 2]  # the highest node slab k writes is below slab k + 2's lowest
    # The particles of the slot the substep started from, binned by their stencils' lower cells.
    x = solver.x.to_numpy()[0, :n]
    cell = np.clip(np.floor(x[:, 0] * solver.inv_dx - 0.5).astype(int), 0, solver.n_grid - 3)
    start = solver.slab_start.to_numpy()[:n_slabs + 1]
    order = solver.slab_order.to_numpy()[:n]
    assert start[0] == 0 and start[-1] == n
    assert sorted(order) == list(range(n))
    for k in range(n_slabs):
        members = order[start[k]:start[k + 1]]
        assert np.all(cell_slab[cell[members]] == k)
        assert np.all(np.diff(members) > 0)
    counts = np.diff(start)
    assert counts.max() < 0.75 * n  # the quantile split shares the particles out


def test_colored_adjoint_scatter_equals_the_serial_loop(cpu64, scatter):
    """Reverse mode: the adjoint of G2P scatters too (ḡ_i += w_i u_i), so it is colored as well; the
    gradient of a rollout's loss with respect to a modulus and the initial velocity agrees with the
    serial loop's to round-off."""
    grads = {}
    for mode in ("serial", "colored"):
        scatter(mode)
        E = torch.tensor(2e4, dtype=torch.float64, requires_grad=True)
        v0 = torch.tensor([0.5, -1.0], dtype=torch.float64, requires_grad=True)
        scene = sc.Scene(dim=2, grid=32)
        scene.add_body(S.Box(center=(0.4, 0.5), size=(0.2, 0.2)), M.NeoHookean(E=E, nu=0.3), velocity=v0)
        scene.add_collider(sc.colliders.Plane(point=(0, 0.3), normal=(0, 1), friction=0.2))
        out = scene.rollout(frames=3, frame_dt=0.01)
        (out.x[-1] ** 2).sum().backward()
        grads[mode] = (E.grad.item(), v0.grad.numpy().copy())
    assert grads["colored"][0] == pytest.approx(grads["serial"][0], rel=1e-9)
    np.testing.assert_allclose(grads["colored"][1], grads["serial"][1], rtol=1e-9)
