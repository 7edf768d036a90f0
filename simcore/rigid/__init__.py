"""Rigid bodies with interior-point contact (Dojo style) and implicit gradients into PyTorch.

    world = simcore.rigid.World(dt=0.01, gravity=(0, -9.81, 0))
    world.add(simcore.rigid.Plane(point=(0, 0, 0), normal=(0, 1, 0), friction=0.5))
    box = world.add(simcore.rigid.Box(size=(0.5, 0.5, 0.5), density=1e3, position=(0, 0.25, 0)))
    traj = world.run(steps=200)

Pipeline per step (one module each): collision.detect (the contact models of each pair in pairs.py and
box_box.py) → integrator.residual (discrete Euler–Lagrange dynamics + contact complementarity) → ipm.solve
(primal-dual interior point) → integrator.advance; grad.py differentiates a step by the implicit function
theorem. joints.py adds joints (equality rows with impulses λ), joint limits (complementarity pairs like
contacts), springs, dampers and actuation to the same system (their outputs in joint_outputs.py, their
terms of a step in joint_equations.py, minimal coordinates in joint_coordinates.py); urdf.py builds
mechanisms from URDF (load_urdf).
"""

from .bodies import Box, Capsule, Plane, Sphere
from .grad import Rollout
from .joints import Fixed, Floating, Joint, Prismatic, Revolute, Spherical
from .step import Params, State
from .urdf import Mechanism, load_urdf
from .world import ContactSolveError, Trajectory, World

__all__ = ["World", "Plane", "Box", "Sphere", "Capsule", "State", "Params", "Trajectory", "Rollout",
           "ContactSolveError", "Joint", "Fixed", "Revolute", "Prismatic", "Spherical", "Floating", "load_urdf",
           "Mechanism"]
