"""The mechanisms of benchmarks/rigid_bench.py, built the same way in simcore.rigid and in MuJoCo.

All three are z up, gravity 9.81 m/s², dt = rigid_bench.DT, unactuated (the benchmark times the step, not
a controller), started off their rest pose so that they move:

  pendulum   a 1 kg sphere (radius 5 cm, solid) 1 m below a world hinge about y, released at 0.5 rad;
             no contact.
  cartpole   a 1 kg cart (box 0.3 × 0.15 × 0.15 m) on a world rail along x, a 0.2 kg pole (box
             0.04 × 0.04 × 0.6 m) hanging from a hinge about y at the cart's centre, released at 0.3 rad;
             no contact (a cart and its pole do not collide with each other in either engine).
  quadruped  assets/quadruped.urdf (4.2 kg, 8 hinges, sphere feet) on a floating base, standing on a plane
             (friction 0.8) on joint springs (40 N·m/rad about the stance angles hips 0.6, knees −1.2 rad,
             damping 0.3 N·m·s/rad) instead of a controller, its torso dropped from 1 mm above the stance
             height. simcore loads the URDF with `rigid.load_urdf`; MuJoCo loads the same file through
             `mujoco.MjSpec` and gets the free joint, floor and springs added in code (its MJCF is
             printed by `python benchmarks/rigid_mechanisms.py quadruped`). Differences that remain:
             simcore makes each URDF cylinder a capsule of equal length, MuJoCo keeps the cylinder (only
             the sphere feet touch the ground here), and the two engines' contact models differ (simcore:
             hard contact by an interior-point method; MuJoCo: soft constraints).
"""

from __future__ import annotations

import math
import sys

import numpy as np
import simcore.assets
import torch

import simcore.rigid as rigid

G = 9.81
MECHANISMS = ("pendulum", "cartpole", "quadruped")
HIP, KNEE, LEG, FOOT = 0.6, -1.2, 0.15, 0.02  # rad, rad, m, m (assets/quadruped.urdf; examples/rigid_quadruped.py)
STANCE_HEIGHT = 2 * LEG * math.cos(HIP) + FOOT  # torso frame above the ground, m
SPRING, DAMPER, FRICTION = 40.0, 0.3, 0.8


def _stance(names) -> list[float]:
    return [HIP if n.endswith("hip") else KNEE for n in names]


def simcore_mechanism(name: str, dt: float, worlds: int = 1):
    """(World, State of `worlds` identical worlds) of mechanism `name`."""
    world = rigid.World(dt=dt, gravity=(0, 0, -G))
    if name == "pendulum":
        bob = world.add(rigid.Sphere(radius=0.05, mass=1.0, position=(0, 0, -1.0)))
        world.add(rigid.Revolute(parent=None, child=bob, anchor=(0, 0, 0), axis=(0, 1, 0)))
        q = [0.5]
    elif name == "cartpole":
        cart = world.add(rigid.Box(size=(0.3, 0.15, 0.15), mass=1.0))
        pole = world.add(rigid.Box(size=(0.04, 0.04, 0.6), mass=0.2, position=(0, 0, -0.3)))
        world.add(rigid.Prismatic(parent=None, child=cart, anchor=(0, 0, 0), axis=(1, 0, 0)))
        world.add(rigid.Revolute(parent=cart, child=pole, anchor=(0, 0, 0), axis=(0, 1, 0)))
        q = [0.0, 0.3]
    elif name == "quadruped":
        world.add(rigid.Plane(point=(0, 0, 0), normal=(0, 0, 1), friction=FRICTION))
        robot = rigid.load_urdf(simcore.assets.path("quadruped.urdf"), world, actuated="none", friction=1.0,
                                base_position=(0, 0, STANCE_HEIGHT + 1e-3))
        hinges = [n for n, j in robot.joints.items() if j.kind == "revolute"]
        for n, rest in zip(hinges, _stance(hinges)):
            j = robot.joints[n]
            j.stiffness, j.damping, j.rest = (torch.tensor(v, dtype=torch.float64) for v in (SPRING, DAMPER, rest))
        q = world.joint_positions().clone()
        for n, rest in zip(hinges, _stance(hinges)):
            q[robot.joints[n].dof_index] = rest
        q = q.tolist()
    else:
        raise ValueError(f"unknown mechanism {name!r}; choose among {', '.join(MECHANISMS)}")
    return world, world.state_from_joints(torch.tensor([q] * worlds, dtype=torch.float64))


def _pendulum_xml(dt: float) -> str:
    return f"""<mujoco><option timestep="{dt}" gravity="0 0 -{G}"/>
  <worldbody><body><joint name="hinge" type="hinge" axis="0 1 0"/>
    <geom type="sphere" size="0.05" pos="0 0 -1" mass="1"/></body></worldbody></mujoco>"""


def _cartpole_xml(dt: float) -> str:
    return f"""<mujoco><option timestep="{dt}" gravity="0 0 -{G}"/>
  <worldbody><body name="cart"><joint name="rail" type="slide" axis="1 0 0"/>
    <geom type="box" size="0.15 0.075 0.075" mass="1"/>
    <body name="pole"><joint name="hinge" type="hinge" axis="0 1 0"/>
      <geom type="box" size="0.02 0.02 0.3" pos="0 0 -0.3" mass="0.2"/></body></body></worldbody></mujoco>"""


def quadruped_spec(dt: float):
    """The MuJoCo spec of the quadruped (see the module docstring)."""
    import mujoco

    spec = mujoco.MjSpec.from_file(str(simcore.assets.path("quadruped.urdf")))
    spec.option.timestep, spec.option.gravity = dt, [0, 0, -G]
    torso = spec.worldbody.first_body()
    torso.add_freejoint()
    torso.pos = [0, 0, STANCE_HEIGHT + 1e-3]
    spec.worldbody.add_geom(type=mujoco.mjtGeom.mjGEOM_PLANE, size=[10, 10, 0.1], friction=[FRICTION, 0, 0])
    for geom in spec.geoms:  # MuJoCo takes the larger of two friction coefficients: 0.8 for foot–ground
        geom.friction = [FRICTION, 0.005, 0.0001]
        geom.condim = 3
    for joint in spec.joints:
        if joint.type == mujoco.mjtJoint.mjJNT_HINGE:
            for attr, value in (("stiffness", SPRING), ("damping", DAMPER)):
                # MuJoCo 4 made these polynomial coefficients (linear first); 3.x has a scalar
                current = getattr(joint, attr)
                setattr(joint, attr, [value] + [0.0] * (len(current) - 1) if np.ndim(current) else value)
            joint.springref = _stance([joint.name])[0]
    return spec


def mujoco_mechanism(name: str, dt: float):
    """(MjModel, MjData) of mechanism `name`, at its start pose."""
    import mujoco

    if name == "quadruped":
        model = quadruped_spec(dt).compile()
    elif name in ("pendulum", "cartpole"):
        model = mujoco.MjModel.from_xml_string(_pendulum_xml(dt) if name == "pendulum" else _cartpole_xml(dt))
    else:
        raise ValueError(f"unknown mechanism {name!r}; choose among {', '.join(MECHANISMS)}")
    data = mujoco.MjData(model)
    for j in range(model.njnt):
        joint = model.joint(j)
        if name == "pendulum":
            data.qpos[joint.qposadr[0]] = 0.5
        elif name == "cartpole" and joint.name == "hinge":
            data.qpos[joint.qposadr[0]] = 0.3
        elif name == "quadruped" and model.jnt_type[j] == mujoco.mjtJoint.mjJNT_HINGE:
            data.qpos[joint.qposadr[0]] = _stance([joint.name])[0]
    mujoco.mj_forward(model, data)
    return model, data


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "quadruped":
        print(quadruped_spec(0.01).to_xml())
    else:
        for name in MECHANISMS:
            world, state = simcore_mechanism(name, 0.01)
            model, _ = mujoco_mechanism(name, 0.01)
            print(name, "simcore bodies", len(world.bodies), "joints", len(world.joints),
                  "| MuJoCo bodies", model.nbody - 1, "dofs", model.nv, "mass", float(np.sum(model.body_mass)))
