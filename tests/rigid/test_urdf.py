"""URDF import (simcore.rigid.load_urdf): the shipped quadruped's structure and mass properties, a URDF
pendulum's period against the physical-pendulum law, clear errors for what is not supported, and the
quadruped standing under PD joint control with its joints held to round-off."""

import importlib.util
import math
import pathlib

import numpy as np
import pytest
import simcore.assets
import torch

import simcore.rigid as rigid

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples"
G = 9.81


def load_example(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def quadruped(**kw):
    world = rigid.World(dt=0.01, gravity=(0, 0, -G))
    return world, rigid.load_urdf(simcore.assets.path("quadruped.urdf"), world, base_position=(0, 0, 0.4), **kw)


def test_shipped_quadruped_structure_masses_and_limits():
    """The asset's content arrives in the World: 13 links (torso, 4 × thigh, shin, foot) → 13 bodies; 12 URDF
    joints (8 revolute, 4 fixed) plus the floating base; total mass 4.2 kg (sum of <mass>); the 8 hip and
    knee joints named in <transmission>s are the actuators; limits, effort and damping carried over; the
    links sit at the zero configuration (feet 0.30 m below the torso frame)."""
    world, robot = quadruped()
    assert len(robot.links) == len(world.bodies) == 13
    assert len(robot.joints) == 12 and len(world.joints) == 13
    kinds = sorted(j.kind for j in robot.joints.values())
    assert kinds.count("revolute") == 8 and kinds.count("fixed") == 4
    assert robot.root_joint.kind == "floating" and robot.base is robot.links["torso"]
    assert math.isclose(sum(float(b.mass) for b in world.bodies), 4.2, rel_tol=1e-12)
    assert world.actuators == 8 and set(robot.actuators) == {f"{leg}_{j}" for leg in ("fl", "fr", "hl", "hr")
                                                             for j in ("hip", "knee")}
    assert [robot.actuators[n] for n in robot.actuated_joints] == list(range(8))
    hip, knee = robot.joints["fl_hip"], robot.joints["hr_knee"]
    assert (float(hip.lower), float(hip.upper)) == (-1.2, 1.2)
    assert (float(knee.lower), float(knee.upper)) == (-2.6, 0.3)
    assert float(hip.damping) == 0.01 and robot.effort["fl_knee"] == 20.0
    assert torch.allclose(hip.axis, torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64))
    foot = robot.links["fl_foot"]
    assert torch.allclose(foot.position, torch.tensor([0.15, 0.11, 0.1], dtype=torch.float64), atol=1e-12)
    # A URDF cylinder becomes the capsule of the same radius and overall length.
    thigh = robot.links["fl_thigh"]
    assert thigh.kind == "capsule" and math.isclose(float(thigh.length) + 2 * float(thigh.radius), 0.15)
    # Inertia taken from <inertia>, not from the capsule's solid shape.
    assert math.isclose(float(thigh.inertia[2, 2]), 6e-5, rel_tol=1e-9)
    # Minimal coordinates: floating base (6) then one per revolute joint.
    assert world.joint_positions().shape == (6 + 8,)


def test_actuated_option_and_welded_base():
    """actuated="all" drives every revolute joint, "none" none, a list those named; floating=False welds
    the root to the world (a Fixed joint: no base coordinates)."""
    world, robot = quadruped(actuated="none", floating=False)
    assert world.actuators == 0 and robot.root_joint.kind == "fixed"
    assert world.joint_positions().shape == (8,)
    world, robot = quadruped(actuated=["fl_knee", "fr_hip"])
    assert robot.actuated_joints == ["fr_hip", "fl_knee"]   # World (breadth-first) order: hips before knees
    world, robot = quadruped(actuated="all")
    assert world.actuators == 8


PENDULUM = """<robot name="pendulum">
  <link name="base">
    <inertial><mass value="1"/><inertia ixx="1e-3" iyy="1e-3" izz="1e-3" ixy="0" ixz="0" iyz="0"/></inertial>
    <collision><geometry><box size="0.05 0.05 0.05"/></geometry></collision>
  </link>
  <link name="rod">
    <inertial><origin xyz="0 0 {d}"/><mass value="{m}"/>
      <inertia ixx="{I}" iyy="{I}" izz="{Iz}" ixy="0" ixz="0" iyz="0"/></inertial>
    <collision><origin xyz="0 0 {d}"/><geometry><capsule radius="{r}" length="{length}"/></geometry></collision>
  </link>
  <joint name="hinge" type="continuous">
    <parent link="base"/><child link="rod"/><origin xyz="0 0 0"/><axis xyz="0 1 0"/>
  </joint>
</robot>"""


def test_urdf_pendulum_has_the_physical_pendulum_period():
    """Law: a rigid body swinging on a hinge at distance d from its centre of mass, with moment of inertia
    I_c about its centre, has the small-amplitude period 2π√((I_c + m d²)/(m g d)) (physical pendulum).
    A two-link URDF (base welded to the world, a capsule rod on a continuous joint, inertia from
    <inertial>) swinging at 0.05 rad matches it within 0.5 % (measured: 2e-6 at dt = 0.01 s; the
    point-mass law 2π√(d/g) would be 13 % off)."""
    m, r, length, d = 0.5, 0.02, 0.4, -0.2
    I_c = m * length**2 / 12          # a thin rod about its centre: deliberately not the capsule's solid value
    xml = PENDULUM.format(m=m, r=r, length=length, d=d, I=I_c, Iz=0.5 * m * r * r)
    world = rigid.World(dt=0.01, gravity=(0, 0, -G), rtol=1e-10)
    robot = rigid.load_urdf(xml, world, floating=False)
    rod = robot.links["rod"]
    assert rod.kind == "capsule" and float(rod.length) == length and float(rod.inertia[0, 0]) == I_c
    period = 2 * math.pi * math.sqrt((I_c + m * d * d) / (m * G * abs(d)))
    column = robot.joints["hinge"].dof_index
    state = world.state_from_joints(torch.tensor([0.05], dtype=torch.float64))
    traj = world.run(steps=int(1.3 * period / world.dt), state=state)
    angle = traj.joint_position[:, 0, column]
    s = np.sign(angle)
    i = np.nonzero(s[:-1] != s[1:])[0]
    crossings = traj.time[i] - angle[i] * (traj.time[i + 1] - traj.time[i]) / (angle[i + 1] - angle[i])
    assert len(crossings) >= 2
    measured = 2 * np.diff(crossings).mean()
    assert abs(measured / period - 1) < 5e-3, (measured, period)


def test_inertia_is_rotated_from_the_inertial_frame_into_the_body_frame():
    """An <inertial> frame turned 90° about z relative to the shape swaps the x and y moments in the body
    frame (I_body = Rᵀ I R)."""
    xml = """<robot name="r"><link name="a">
      <inertial><origin xyz="0 0 0" rpy="0 0 1.5707963267948966"/><mass value="1"/>
        <inertia ixx="1" iyy="2" izz="3" ixy="0" ixz="0" iyz="0"/></inertial>
      <collision><geometry><sphere radius="0.1"/></geometry></collision></link></robot>"""
    world = rigid.World()
    body = rigid.load_urdf(xml, world).links["a"]
    assert torch.allclose(body.inertia, torch.diag(torch.tensor([2.0, 1.0, 3.0], dtype=torch.float64)), atol=1e-12)


LINK = """<link name="{name}"><inertial><mass value="1"/><inertia ixx="1e-3" iyy="1e-3" izz="1e-3" ixy="0"
  ixz="0" iyz="0"/></inertial><collision><geometry>{geometry}</geometry></collision></link>"""
BALL = '<sphere radius="0.05"/>'


def robot_xml(*parts):
    return '<robot name="r">' + "".join(parts) + "</robot>"


def joint(name, parent, child, kind="revolute", extra=""):
    return (f'<joint name="{name}" type="{kind}"><parent link="{parent}"/><child link="{child}"/>'
            f'<axis xyz="0 0 1"/><limit lower="-1" upper="1" effort="1" velocity="1"/>{extra}</joint>')


@pytest.mark.parametrize("xml, words", [
    (robot_xml(LINK.format(name="a", geometry='<mesh filename="leg.stl"/>')), ["'a'", "mesh", "leg.stl", "<box>"]),
    (robot_xml(LINK.format(name="a", geometry=BALL), LINK.format(name="b", geometry=BALL),
               LINK.format(name="c", geometry=BALL), joint("j1", "a", "b"),
               joint("j2", "a", "c", extra='<mimic joint="j1"/>')), ["'j2'", "mimic"]),
    (robot_xml(LINK.format(name="a", geometry=BALL), LINK.format(name="b", geometry=BALL),
               joint("j", "a", "b", kind="planar")), ["'j'", "planar"]),
    (robot_xml(LINK.format(name="a", geometry=BALL), LINK.format(name="b", geometry=BALL),
               LINK.format(name="c", geometry=BALL), joint("j1", "a", "b"), joint("j2", "a", "c"),
               joint("j3", "b", "c")), ["'c'", "closed kinematic loop"]),
    (robot_xml(LINK.format(name="a", geometry=BALL), LINK.format(name="b", geometry=BALL),
               joint("j", "a", "b", extra='<dynamics damping="0.1" friction="0.5"/>')), ["'j'", "friction"]),
    (robot_xml('<link name="a"><collision><geometry><sphere radius="0.1"/></geometry></collision></link>'),
     ["'a'", "mass"]),
    (robot_xml('<link name="a"><inertial><mass value="1"/><inertia ixx="1" iyy="1" izz="1" ixy="0" ixz="0" '
               'iyz="0"/></inertial></link>'), ["'a'", "no <collision>"]),
    (robot_xml('<link name="a"><inertial><origin xyz="0 0 0.1"/><mass value="1"/><inertia ixx="1" iyy="1" '
               'izz="1" ixy="0" ixz="0" iyz="0"/></inertial><collision><geometry><sphere radius="0.1"/>'
               '</geometry></collision></link>'), ["'a'", "centre of mass", "offset_tolerance"]),
    (robot_xml(LINK.format(name="a", geometry=BALL), LINK.format(name="b", geometry=BALL),
               joint("j", "a", "b"), '<transmission name="t"><joint name="nope"/></transmission>'),
     ["'nope'", "not a <joint>"]),
])
def test_unsupported_urdf_elements_raise_clear_errors(xml, words):
    """Meshes, mimic joints, planar joints, closed loops, joint friction, massless or shapeless links, a shape
    off the centre of mass and a transmission on an unknown joint each raise a ValueError that names the
    element and says what to do."""
    with pytest.raises(ValueError) as err:
        rigid.load_urdf(xml, rigid.World())
    for word in words:
        assert word in str(err.value), (word, str(err.value))


def test_load_urdf_rejects_a_missing_file_and_a_bad_option():
    with pytest.raises(ValueError, match="neither a file nor an XML string"):
        rigid.load_urdf("no/such/robot.urdf", rigid.World())
    with pytest.raises(ValueError, match="actuated must be"):
        rigid.load_urdf(simcore.assets.path("quadruped.urdf"), rigid.World(), actuated="some")


def test_quadruped_stands_under_pd_control():
    """Law (statics): under PD joint control at a crouched stance the loaded quadruped comes to rest on its
    four feet: over 1 s the torso height stays within 4 mm of where it started (the stance sags by the P
    term's static error, τ_gravity / kp), and within 1 mm over the last 0.5 s; every joint holds its anchors
    together to < 1e-8 m (the equality rows of the step, solved to rtol)."""
    example = load_example("rigid_quadruped")
    world, robot, state = example.build()
    _, t, torso, violation = example.simulate(world, robot, state, 1.0, example.stance)
    assert t[-1] == pytest.approx(1.0)
    assert np.ptp(torso[:, 2]) < 4e-3, np.ptp(torso[:, 2])
    assert np.ptp(torso[len(t) // 2:, 2]) < 1e-3
    assert abs(torso[-1, 2] - example.STANCE_HEIGHT) < 4e-3
    assert violation < 1e-8
