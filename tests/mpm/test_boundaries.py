"""Walls and colliders: non-penetration, Coulomb friction, kinematic motion (CPU, float32)."""

import numpy as np
import pytest

import simcore as sc
from simcore.mpm.solver import BOUND

M, Col = sc.materials, sc.colliders
G = 9.8


def com_velocity(traj):
    return np.einsum("p,fpd->fd", traj.mass, traj.v) / traj.mass.sum()


def slide(mode, friction, v0=1.0, frames=30):
    """A stiff block on the floor (the −y wall) launched sideways at v0 m/s."""
    scene = sc.Scene(dim=2, grid=64, walls={"-y": mode}, wall_friction=friction)
    floor = BOUND * scene.dx
    scene.add_body(sc.shapes.Box(center=(0.3, floor + 0.05 + scene.dx / 4), size=(0.2, 0.1)),
                   M.NeoHookean(E=2e5, nu=0.3), velocity=(v0, 0.0))
    return scene.run(frames=frames, frame_dt=1 / 60, record=("v",))


def test_coulomb_stopping_distance(cpu32):
    """Coulomb friction on the floor decelerates a sliding block at μg: it stops after v0²/(2μg)
    (0.2551 m for v0 = 1 m/s, μ = 0.2), here within 3 %."""
    traj = slide("separate", 0.2)
    com = traj.center_of_mass()
    distance = com[-1, 0] - com[0, 0]
    assert abs(com_velocity(traj)[-1, 0]) < 0.05
    assert distance == pytest.approx(1.0 / (2 * 0.2 * G), rel=0.03)


def test_frictionless_slip_keeps_velocity(cpu32):
    """Newton's first law along a frictionless slip floor: the tangential velocity is unchanged."""
    traj = slide("slip", 0.0, frames=20)
    assert np.allclose(com_velocity(traj)[:, 0], 1.0, atol=1e-5)


def test_sticky_floor_stops_sliding(cpu32):
    """A sticky wall sets the grid velocity to zero: the bottom of the block stops within about a
    cell, and the block as a whole stays within a cell of where it started (slip would carry it 0.33 m
    in the same time). The stiff block then rocks in its shear mode, its centre-of-mass velocity swinging
    through ±0.6 m/s about zero, so a single frame's velocity says nothing."""
    traj = slide("sticky", 0.0, frames=20)
    bottom = traj.x[0, :, 1] < traj.x[0, :, 1].min() + 0.01
    assert np.abs(traj.x[:, bottom, 0] - traj.x[0, bottom, 0]).max() < 1.5 / 64
    com = traj.center_of_mass()[:, 0]
    assert np.abs(com - com[0]).max() < 1 / 64


@pytest.fixture(scope="module")
def jelly_drop(cpu32):
    scene = sc.Scene(dim=2, grid=48)
    scene.add_body(sc.shapes.Box(center=(0.5, 0.45), size=(0.2, 0.2)), M.NeoHookean(E=3e4, nu=0.3),
                   velocity=(0.0, -1.0))
    scene.add_collider(Col.Plane(point=(0.0, 0.1), normal=(0.0, 1.0), friction=0.5))
    traj = scene.run(frames=240, frame_dt=1 / 60, record=("v",))
    return scene, traj


def test_jelly_bounces_on_plane(jelly_drop):
    """An elastic body hitting a rigid plane rebounds: its centre-of-mass velocity turns upward."""
    _, traj = jelly_drop
    vy = com_velocity(traj)[:, 1]
    first_down = np.argmax(vy < -1.5)
    assert first_down > 0 and vy[first_down:].max() > 0.5


def test_jelly_never_penetrates_plane(jelly_drop):
    """Non-penetration: no particle goes below the plane by more than half a grid cell."""
    scene, traj = jelly_drop
    assert traj.x[:, :, 1].min() > 0.1 - scene.dx / 2


def test_jelly_settles(jelly_drop):
    """Dissipation (APIC transfers, friction) brings the bouncing jelly to rest on the plane."""
    _, traj = jelly_drop
    ke = 0.5 * np.einsum("p,fpd->f", traj.mass, traj.v**2)
    assert ke[-10:].max() < 0.02 * ke.max()
    height = traj.center_of_mass()[-30:, 1]  # last 0.5 s: small vibration about rest on the plane
    assert height.max() - height.min() < 0.02 and height.min() < 0.1 + 0.11


@pytest.mark.parametrize("collider", [
    Col.Box(center=(0.5, 0.2, 0.5), size=(0.4, 0.1, 0.4)),
    Col.Sphere(center=(0.5, 0.05, 0.5), radius=0.2),
    Col.Cylinder(center=(0.5, 0.2, 0.5), radius=0.25, height=0.1, axis=(0, 1, 0)),
    Col.Plane(point=(0, 0.25, 0), normal=(0, 1, 0)),
], ids=["box", "sphere", "cylinder", "plane"])
def test_collider_supports_falling_body(cpu32, collider):
    """Each collider type is impenetrable: a body dropped on its top (at y = 0.25 m) comes to rest there."""
    scene = sc.Scene(dim=3, grid=24)
    scene.add_body(sc.shapes.Box(center=(0.5, 0.4, 0.5), size=(0.12, 0.08, 0.12)), M.NeoHookean(E=2e4))
    scene.add_collider(collider)
    traj = scene.run(frames=25, frame_dt=1 / 60)
    y = traj.x[-1, :, 1]
    assert y.min() > 0.25 - scene.dx / 2
    assert y.min() < 0.25 + 2 * scene.dx  # it fell down to the collider


def test_kinematic_collider_pushes_body(cpu32):
    """A kinematic box moving at constant velocity pushes a body ahead of it (and does not pass through)."""
    scene = sc.Scene(dim=2, grid=48, gravity=(0.0, 0.0))
    scene.add_body(sc.shapes.Box(center=(0.5, 0.5), size=(0.12, 0.12)), M.NeoHookean(E=2e4))
    scene.add_collider(Col.Box(center=(0.3, 0.5), size=(0.1, 0.3), velocity=(0.6, 0.0), friction=0.0))
    traj = scene.run(frames=30, frame_dt=1 / 60)
    # The scene's state carries the collider where its substeps moved it: x0 + v t.
    np.testing.assert_allclose(scene.state.collider_origin[0], [0.3 + 0.6 * traj.t[-1], 0.5], rtol=1e-12)
    pusher_front = scene.state.collider_origin[0, 0] + 0.05
    assert traj.x[-1, :, 0].min() > pusher_front - scene.dx
    assert traj.center_of_mass()[-1, 0] > 0.5 + 0.1


def test_kinematic_collider_callable_velocity(cpu32):
    """A collider whose velocity is a callable of time is moved by ∫v dt: a plane lifted at
    v(t) = 0.5 m/s for t < 0.25 s then at rest raises a resting body by about 0.125 m."""
    scene = sc.Scene(dim=2, grid=48)
    scene.add_body(sc.shapes.Box(center=(0.5, 0.3), size=(0.15, 0.1)), M.NeoHookean(E=3e4))
    scene.add_collider(Col.Plane(point=(0, 0.245), normal=(0, 1), velocity=lambda t: (0.0, 0.5 if t < 0.25 else 0.0)))
    traj = scene.run(frames=40, frame_dt=1 / 60)
    assert traj.x[-1, :, 1].min() == pytest.approx(0.245 + 0.125, abs=scene.dx)
