"""Actuators (ChainQueen active fibre stress) in forward runs."""

import numpy as np
import pytest

import simcore as sc


def test_contracting_fibre_shortens_body(cpu32):
    """A positive activation is tension along the fibre, like a muscle: it shortens a free body along
    x and barely changes its height (no gravity, no contact); a negative one lengthens it."""
    scene = sc.Scene(dim=2, grid=32, gravity=(0.0, 0.0))
    scene.add_body(sc.shapes.Box(center=(0.5, 0.5), size=(0.2, 0.1)), sc.materials.NeoHookean(E=2e4),
                   actuator=0, fibre=(1.0, 0.0))
    traj = scene.run(frames=10, frame_dt=1 / 60, actuation=np.full((10, 1), 4e3))
    width0, width1 = np.ptp(traj.x[0, :, 0]), np.ptp(traj.x[-1, :, 0])
    height0, height1 = np.ptp(traj.x[0, :, 1]), np.ptp(traj.x[-1, :, 1])
    assert width1 < 0.95 * width0 and abs(height1 - height0) < 0.5 * abs(width1 - width0)
    scene.reset()
    pushed = scene.run(frames=10, frame_dt=1 / 60, actuation=np.full((10, 1), -4e3))
    assert np.ptp(pushed.x[-1, :, 0]) > 1.05 * width0


def test_actuator_errors(cpu32):
    scene = sc.Scene(dim=2, grid=32)
    box = sc.shapes.Box(center=(0.5, 0.5), size=(0.1, 0.1))
    with pytest.raises(ValueError, match="needs fibre"):
        scene.add_body(box, sc.materials.NeoHookean(), actuator=0)
    with pytest.raises(ValueError, match="Fluid cannot carry actuators"):
        scene.add_body(box, sc.materials.Fluid(), actuator=0, fibre=(1, 0))
    scene.add_body(box, sc.materials.NeoHookean())
    with pytest.raises(ValueError, match="no body has an actuator"):
        scene.run(frames=1, actuation=np.zeros((1, 1)))
