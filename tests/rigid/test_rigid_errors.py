"""Errors a user can cause: what was wrong and what to do."""

import numpy as np
import pytest

import simcore.rigid as rigid
from simcore.errors import SimulationError


def test_invalid_inputs_raise_value_errors():
    with pytest.raises(ValueError, match="dt must be > 0"):
        rigid.World(dt=0.0)
    with pytest.raises(ValueError, match="Box size must be > 0"):
        rigid.Box(size=(0.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="Plane normal must be a nonzero vector"):
        rigid.Plane(normal=(0, 0, 0))
    with pytest.raises(ValueError, match="Sphere radius must be > 0"):
        rigid.Sphere(radius=-1.0)
    with pytest.raises(ValueError, match="position must have shape"):
        rigid.Sphere(radius=1.0, position=(0, 1))
    world = rigid.World(dt=0.01)
    with pytest.raises(ValueError, match="takes a simcore.rigid shape"):
        world.add("box")
    with pytest.raises(ValueError, match="no dynamic bodies"):
        world.run(steps=1)
    world.add(rigid.Sphere(radius=0.1))
    with pytest.raises(ValueError, match=r"controls must have shape \(steps, bodies, 6\)"):
        world.run(steps=2, controls=np.zeros((2, 6)))


def tossed(**kw):
    world = rigid.World(dt=0.05, max_iterations=1, **kw)
    world.add(rigid.Plane())
    world.add(rigid.Box(size=(0.5, 0.5, 0.5), position=(0, 0.3, 0), velocity=(1, -3, 0), angular_velocity=(2, 1, 0)))
    return world


def test_non_converging_step_raises_with_residual_and_partial_trajectory():
    """A step that misses the tolerance never continues silently: ContactSolveError (a SimulationError)
    names the step, the residual and what to change, and keeps the frames computed before it."""
    with pytest.raises(SimulationError, match=r"did not converge at step \d+ .*residual .* Try a smaller dt") as info:
        tossed().run(steps=10)
    err = info.value
    assert isinstance(err, rigid.ContactSolveError)
    assert err.frame >= 1
    assert err.trajectory.position.shape[0] == err.frame


def test_non_converging_step_can_warn_instead():
    with pytest.warns(RuntimeWarning, match="did not converge"):
        traj = tossed(on_failure="warn").run(steps=10)
    assert traj.position.shape == (11, 1, 3)
    assert (traj.iterations == 1).any()


def test_solver_reports_iterations_and_residuals_per_step():
    world = rigid.World(dt=0.01)
    world.add(rigid.Plane())
    world.add(rigid.Box(size=(0.5, 0.5, 0.5), position=(0, 0.3, 0)))
    traj = world.run(steps=30)
    assert traj.iterations.shape == traj.residual.shape == traj.complementarity.shape == (30,)
    assert (traj.residual <= world.rtol).all()
    assert (traj.complementarity <= 1e-6).all()
    assert traj.contacts.max() == 4
