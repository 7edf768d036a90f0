"""URDF import: a robot description (links, joints) → bodies and joints of a simcore.rigid World.

    world = simcore.rigid.World(dt=0.01, gravity=(0, 0, -9.81))
    robot = simcore.rigid.load_urdf(simcore.assets.path("quadruped.urdf"), world, base_position=(0, 0, 0.3))
    robot.links["torso"], robot.joints["fl_hip"], robot.actuators["fl_hip"]   # Body, Joint, column of actuation

Parsing is done by yourdfpy (the XML → dataclasses step, ROS URDF spec); this module only maps the parsed
model onto simcore.rigid's maximal coordinates: one dynamic body per link, one joint per URDF joint, the
links placed at the robot's zero configuration (every joint at 0) from the base pose.

What maps to what:

- link ``<collision>`` (else ``<visual>``) primitive → the body's shape: box → Box, sphere → Sphere,
  cylinder (radius r, length L) → Capsule(r, max(L − 2r, 0)) (no cylinder body exists; the capsule keeps the
  cylinder's axis, radius and overall length), ``<capsule radius length>`` (the Drake / Gazebo extension;
  length = the cylindrical part, as simcore's Capsule) → Capsule. One primitive per link.
- link ``<inertial>`` → mass (kg) and the inertia tensor (kg·m²), rotated from the inertial frame into the
  body frame. A simcore body's position is its centre of mass and its shape is centred there, so the body
  is put at the inertial origin with the shape's orientation; a shape origin that differs from the
  inertial origin by more than `offset_tolerance` raises (the shape would move; see `load_urdf`).
- joint revolute → Revolute (limits lower/upper), continuous → Revolute without limits, prismatic →
  Prismatic, fixed → Fixed, floating → Floating (no constraint; minimal coordinates only); axis and origin
  give the world-frame anchor and axis at the zero configuration; ``<dynamics damping>`` → damping
  (N·m·s/rad or N·s/m); ``<limit effort>`` is kept in `Mechanism.effort` (simcore applies no torque
  saturation: a controller clips to it).
- actuation: by default the joints named in a ``<transmission>``; `actuated="all"` drives every revolute,
  continuous and prismatic joint; a list of names drives those.

Raise ValueError (naming the element and what to do): meshes, mimic joints, planar joints, joint friction,
several primitives on one link, links without geometry or mass, a link that is the child of two joints
(closed loop), more than one root.
"""

from __future__ import annotations

import io
import math
import os
from dataclasses import dataclass, field

import numpy as np
import torch

from . import joints as jnt
from .bodies import Body, Box, Capsule, Sphere

SUPPORTED_JOINTS = ("revolute", "continuous", "prismatic", "fixed", "floating")


@dataclass
class Mechanism:
    """What `load_urdf` added to the World, by URDF name.

    links: link name → Body (world.bodies[body.index]); joints: joint name → Joint (its `index`,
    `dof_index`, `actuator_index` are the World's); actuators: joint name → column of World.run's
    `actuation` (N·m or N), in column order; effort: joint name → |torque| (N·m) or |force| (N) bound from
    ``<limit effort>`` (inf if absent); lower, upper: joint name → limit (rad or m; None if absent);
    root_joint: the Floating (floating base) or Fixed (welded base) joint from the world to the root link,
    or None (floating=None); base: the root link's Body; name: the robot's name."""
    name: str
    links: dict = field(default_factory=dict)
    joints: dict = field(default_factory=dict)
    actuators: dict = field(default_factory=dict)
    effort: dict = field(default_factory=dict)
    lower: dict = field(default_factory=dict)
    upper: dict = field(default_factory=dict)
    root_joint: jnt.Joint | None = None
    base: Body | None = None

    @property
    def actuated_joints(self) -> list:
        """Names of the actuated joints in `actuation` column order."""
        return sorted(self.actuators, key=self.actuators.get)

    def coordinate_columns(self, names=None) -> list:
        """Columns in World.joint_positions of the given one-degree-of-freedom joints (default: the
        actuated ones, in actuation order)."""
        names = self.actuated_joints if names is None else names
        return [self.joints[n].dof_index for n in names]

    def effort_limits(self) -> torch.Tensor:
        """(actuators,) N·m or N: the ``<limit effort>`` of each actuated joint, in column order."""
        return torch.tensor([self.effort[n] for n in self.actuated_joints], dtype=torch.float64)


def _pose(matrix):
    """(rotation (3, 3), translation (3,)) of a 4×4 homogeneous transform (identity for None)."""
    if matrix is None:
        return np.eye(3), np.zeros(3)
    m = np.asarray(matrix, dtype=np.float64)
    return m[:3, :3], m[:3, 3]


def _quaternion(R):
    """Unit quaternion (w, x, y, z) of a rotation matrix (Shepperd's method: the largest pivot)."""
    tr = np.trace(R)
    if tr > 0:
        s = 2.0 * math.sqrt(tr + 1.0)
        q = [0.25 * s, (R[2, 1] - R[1, 2]) / s, (R[0, 2] - R[2, 0]) / s, (R[1, 0] - R[0, 1]) / s]
    elif R[0, 0] > R[1, 1] and R[0, 0] > R[2, 2]:
        s = 2.0 * math.sqrt(1.0 + R[0, 0] - R[1, 1] - R[2, 2])
        q = [(R[2, 1] - R[1, 2]) / s, 0.25 * s, (R[0, 1] + R[1, 0]) / s, (R[0, 2] + R[2, 0]) / s]
    elif R[1, 1] > R[2, 2]:
        s = 2.0 * math.sqrt(1.0 + R[1, 1] - R[0, 0] - R[2, 2])
        q = [(R[0, 2] - R[2, 0]) / s, (R[0, 1] + R[1, 0]) / s, 0.25 * s, (R[1, 2] + R[2, 1]) / s]
    else:
        s = 2.0 * math.sqrt(1.0 + R[2, 2] - R[0, 0] - R[1, 1])
        q = [(R[1, 0] - R[0, 1]) / s, (R[0, 2] + R[2, 0]) / s, (R[1, 2] + R[2, 1]) / s, 0.25 * s]
    q = np.asarray(q)
    return q / np.linalg.norm(q)


def _rotation(q):
    w, x, y, z = np.asarray(q, dtype=np.float64) / np.linalg.norm(q)
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
                     [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
                     [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]])


def _read_xml(source):
    """lxml root of a URDF file path or XML string, with capsules (which yourdfpy does not parse) taken
    out: returns (root, {(link, element kind, index): (radius, length)}) where each capsule was replaced
    by a placeholder cylinder."""
    from lxml import etree
    if isinstance(source, os.PathLike):
        source = os.fspath(source)
    if not isinstance(source, (str, bytes)):
        raise ValueError(f"URDF source must be a path or an XML string, got {type(source).__name__}")
    text = source
    if not (source.lstrip().startswith(b"<") if isinstance(source, bytes) else source.lstrip().startswith("<")):
        if not os.path.isfile(source):
            raise ValueError(f"URDF {source!r} is neither a file nor an XML string (it must start with '<')")
        with open(source, "rb") as f:
            text = f.read()
    if isinstance(text, str):
        text = text.encode()
    try:
        root = etree.fromstring(text, parser=etree.XMLParser(remove_blank_text=True, remove_comments=True))
    except etree.XMLSyntaxError as err:
        raise ValueError(f"URDF is not well-formed XML: {err}") from None
    if root.tag != "robot":
        raise ValueError(f"URDF root element must be <robot>, got <{root.tag}>")
    capsules = {}
    for link in root.findall("link"):
        for kind in ("collision", "visual"):
            for i, element in enumerate(link.findall(kind)):
                geometry = element.find("geometry")
                shape = None if geometry is None or len(geometry) == 0 else geometry[0]
                if shape is not None and shape.tag == "capsule":
                    capsules[(link.get("name"), kind, i)] = (float(shape.get("radius")), float(shape.get("length")))
                    shape.tag = "cylinder"
                elif shape is not None and shape.tag not in ("box", "sphere", "cylinder"):
                    what = f"<{shape.tag} filename={shape.get('filename')!r}>" if shape.tag == "mesh" else f"<{shape.tag}>"
                    raise ValueError(f"link {link.get('name')!r}: {kind} geometry {what} is not supported; "
                                     "simcore.rigid bodies are primitives: replace it with a <box>, <sphere>, "
                                     "<cylinder> or <capsule> of similar size")
    return root, capsules


def _check_unsupported(root):
    for joint in root.findall("joint"):
        name = joint.get("name")
        if joint.find("mimic") is not None:
            raise ValueError(f"joint {name!r}: <mimic> is not supported (no coupled joints in simcore.rigid); "
                             "remove the <mimic> element and drive the joint through actuation instead")
        kind = joint.get("type")
        if kind not in SUPPORTED_JOINTS:
            raise ValueError(f"joint {name!r}: type {kind!r} is not supported; use one of {SUPPORTED_JOINTS} "
                             "(a planar joint is a prismatic-prismatic-revolute chain of links)")
        dyn = joint.find("dynamics")
        if dyn is not None and float(dyn.get("friction", 0.0)) != 0.0:
            raise ValueError(f"joint {name!r}: <dynamics friction> (Coulomb joint friction) is not supported; "
                             "remove it or set friction=\"0\" (damping is supported)")


def _transmission_joints(root):
    return {j.get("name") for t in root.findall("transmission") for j in t.findall("joint")}


def _shape(link, capsules, friction):
    """(constructor kwargs → Body, origin (4, 4) or None) of a link's one primitive."""
    for kind in ("collision", "visual"):
        elements = link.collisions if kind == "collision" else link.visuals
        if len(elements) > 1:
            raise ValueError(f"link {link.name!r} has {len(elements)} <{kind}> elements; a simcore.rigid body has "
                             "one primitive: split the link into links joined by fixed joints")
        if not elements:
            continue
        element = elements[0]
        g = element.geometry
        if (link.name, kind, 0) in capsules:
            radius, length = capsules[(link.name, kind, 0)]
            return (lambda **kw: Capsule(radius, length, friction=friction, **kw)), element.origin
        if g.box is not None:
            size = tuple(float(s) for s in g.box.size)
            return (lambda **kw: Box(size, friction=friction, **kw)), element.origin
        if g.sphere is not None:
            return (lambda **kw: Sphere(float(g.sphere.radius), friction=friction, **kw)), element.origin
        if g.cylinder is not None:
            r, L = float(g.cylinder.radius), float(g.cylinder.length)
            # The closest body: a capsule of the same radius, axis and overall length.
            return (lambda **kw: Capsule(r, max(L - 2 * r, 0.0), friction=friction, **kw)), element.origin
    raise ValueError(f"link {link.name!r} has no <collision> or <visual> geometry; a simcore.rigid body needs "
                     "a primitive shape: add a <collision> with a <box>, <sphere>, <cylinder> or <capsule>")


def load_urdf(source, world, *, base_position=(0.0, 0.0, 0.0), base_orientation=(1.0, 0.0, 0.0, 0.0),
              floating=True, actuated="transmission", friction=1.0, offset_tolerance=1e-6) -> Mechanism:
    """Add the robot described by a URDF to `world` and return the Mechanism (name → body / joint maps).

    source: a path to a .urdf file or the XML itself (a string starting with '<'). base_position: (3,) m
    and base_orientation: (4,) (w, x, y, z), the pose of the root link's frame (not its centre of mass)
    at the zero configuration; every other link is placed from it through the joint origins. floating:
    True, the root is a free body with a Floating joint from the world (its pose and twist are the first
    6 minimal coordinates); False, the root is welded to the world (Fixed); None, a free body and no root
    joint. actuated: "transmission" (joints named in a <transmission>), "all" (every revolute, continuous
    and prismatic joint), "none", or a list of joint names. friction: Coulomb coefficient of every link
    (pair rule: product with the ground's). offset_tolerance: m, largest allowed distance between a link's
    shape origin and its centre of mass (simcore centres shapes on the centre of mass).
    """
    try:
        import yourdfpy
    except ImportError:
        raise ImportError("load_urdf needs yourdfpy (the URDF parser): pip install yourdfpy") from None

    root_xml, capsules = _read_xml(source)
    _check_unsupported(root_xml)
    transmissions = _transmission_joints(root_xml)
    from lxml import etree
    urdf = yourdfpy.URDF.load(io.BytesIO(etree.tostring(root_xml)), build_scene_graph=False, load_meshes=False)
    robot = urdf.robot
    links = {link.name: link for link in robot.links}
    joints = {j.name: j for j in robot.joints}
    drive = _driven_joints(actuated, joints, transmissions)
    parent_joint, root = _tree(robot, links)
    frames, order = _link_frames(robot, root, base_position, base_orientation, set(links))

    mech = Mechanism(name=robot.name)
    for name in order:
        mech.links[name] = _add_link(world, links[name], frames[name], capsules, friction, offset_tolerance)
    base = mech.links[root]
    mech.base = base
    if floating is True:
        mech.root_joint = world.add(jnt.Floating(None, base, anchor=frames[root][1], name=f"{root}_floating"))
    elif floating is False:
        mech.root_joint = world.add(jnt.Fixed(None, base, anchor=frames[root][1], name=f"{root}_fixed"))
    elif floating is not None:
        raise ValueError(f"floating must be True, False or None, got {floating!r}")
    for name in order[1:]:
        _add_joint(world, mech, parent_joint[name], frames[name], drive)
    return mech


def _driven_joints(actuated, joints: dict, transmissions: set) -> set:
    """The names of the joints that take a torque or force (`load_urdf`'s `actuated`), checked."""
    movable = [n for n, j in joints.items() if j.type in ("revolute", "continuous", "prismatic")]
    if actuated == "transmission":
        drive = transmissions
    elif actuated == "all":
        drive = set(movable)
    elif actuated == "none" or actuated is None:
        drive = set()
    elif isinstance(actuated, (list, tuple, set)):
        drive = set(actuated)
    else:
        raise ValueError(f"actuated must be 'transmission', 'all', 'none' or a list of joint names, got {actuated!r}")
    for name in drive:
        if name not in joints:
            raise ValueError(f"actuated joint {name!r} (from a <transmission> or the actuated list) is not a "
                             f"<joint> of the URDF; its joints are {sorted(joints)}")
        if name not in movable:
            raise ValueError(f"actuated joint {name!r} is {joints[name].type}; only revolute, continuous and "
                             "prismatic joints take a torque or force")
    return drive


def _tree(robot, links: dict):
    """({child link: its joint}, the root link's name), checking that every link is the child of at most
    one joint and that there is exactly one root."""
    parent_joint = {}
    for j in robot.joints:
        for end in (j.parent, j.child):
            if end not in links:
                raise ValueError(f"joint {j.name!r} refers to link {end!r}, which is not a <link> of the URDF")
        if j.child in parent_joint:
            raise ValueError(f"link {j.child!r} is the child of joints {parent_joint[j.child].name!r} and "
                             f"{j.name!r}: closed kinematic loops are not supported; remove one of the joints")
        parent_joint[j.child] = j
    roots = [n for n in links if n not in parent_joint]
    if len(roots) != 1:
        raise ValueError(f"a URDF must have exactly one root link (a link that is no joint's child), got {roots}")
    return parent_joint, roots[0]


def _link_frames(robot, root: str, base_position, base_orientation, link_names: set):
    """The zero-configuration world pose (R (3, 3), p (3,) m) of every link frame, and the links in
    breadth-first order from the root (parents first)."""
    R0, p0 = _rotation(base_orientation), np.asarray(base_position, dtype=np.float64)
    if p0.shape != (3,):
        raise ValueError(f"base_position must have shape (3,), got {p0.shape}")
    frames = {root: (R0, p0)}
    order = [root]
    children = {}
    for j in robot.joints:
        children.setdefault(j.parent, []).append(j)
    for name in order:       # grows while iterating: breadth-first
        for j in children.get(name, []):
            Rp, pp = frames[name]
            Rj, pj = _pose(j.origin)
            frames[j.child] = (Rp @ Rj, pp + Rp @ pj)
            order.append(j.child)
    if len(order) != len(link_names):
        raise ValueError(f"links {sorted(link_names - set(order))} are not connected to the root {root!r}")
    return frames, order


def _add_link(world, link, frame, capsules, friction, offset_tolerance):
    """Add one link as a dynamic body (its shape centred on its centre of mass, its inertia turned into
    the shape's axes) at its zero-configuration frame (R, p); returns the body."""
    name, inertial = link.name, link.inertial
    if inertial is None or inertial.mass is None or float(inertial.mass) <= 0:
        raise ValueError(f"link {name!r} has no positive <inertial><mass>; every link is a dynamic body in "
                         "simcore.rigid: give it a mass and <inertia>, or merge it into its parent")
    make, shape_origin = _shape(link, capsules, friction)
    R_link, p_link = frame
    Rs, ps = _pose(shape_origin)
    Ri, pi = _pose(inertial.origin)
    com = p_link + R_link @ pi
    offset = np.linalg.norm(R_link @ (ps - pi))
    if offset > offset_tolerance:
        raise ValueError(f"link {name!r}: its shape origin is {offset:.3g} m from its centre of mass "
                         "(<inertial><origin>); simcore.rigid centres a body's shape on its centre of mass: "
                         "give the <collision> and <inertial> the same origin xyz, or raise offset_tolerance "
                         "to accept the shape moving onto the centre of mass")
    R_body = R_link @ Rs                      # body axes = the shape's axes
    R_inertial = R_link @ Ri
    I_in = np.asarray(inertial.inertia, dtype=np.float64)
    # Inertia tensor from the inertial frame to the body frame: I_b = Rᵀ I R with R = R_bodyᵀ R_inertial.
    R_bi = R_body.T @ R_inertial
    I_body = R_bi @ I_in @ R_bi.T
    if np.linalg.eigvalsh(0.5 * (I_body + I_body.T)).min() <= 0:
        raise ValueError(f"link {name!r}: <inertia> must be positive definite, got {I_in.tolist()}")
    return world.add(make(mass=float(inertial.mass), inertia=I_body, position=com,
                          orientation=_quaternion(R_body), name=name))


def _add_joint(world, mech, j, child_frame, drive: set):
    """Add URDF joint j (its frame is its child link's, at `child_frame` (R, p)) to `world` and `mech`:
    its limits, damping, effort limit and whether it is actuated."""
    Rj, anchor = child_frame
    axis = Rj @ np.asarray(j.axis if j.axis is not None else (1.0, 0.0, 0.0), dtype=np.float64)
    parent, child = mech.links[j.parent], mech.links[j.child]
    damping = float(j.dynamics.damping) if j.dynamics is not None and j.dynamics.damping is not None else 0.0
    lim = j.limit
    lower = upper = None
    if j.type in ("revolute", "prismatic") and lim is not None:
        lower, upper = lim.lower, lim.upper
        if lower is not None and upper is not None and not lower < upper:
            raise ValueError(f"joint {j.name!r}: <limit lower={lower} upper={upper}> needs lower < upper; "
                             "make it a fixed joint if it must not move")
    effort = float(lim.effort) if lim is not None and lim.effort is not None else math.inf
    kw = dict(lower=lower, upper=upper, damping=damping, actuated=j.name in drive, name=j.name)
    if j.type in ("revolute", "continuous"):
        joint = jnt.Revolute(parent, child, anchor, axis, **kw)
    elif j.type == "prismatic":
        joint = jnt.Prismatic(parent, child, anchor, axis, **kw)
    elif j.type == "fixed":
        joint = jnt.Fixed(parent, child, anchor, name=j.name)
    else:
        joint = jnt.Floating(parent, child, anchor, name=j.name)
    world.add(joint)
    mech.joints[j.name] = joint
    if joint.dofs == 1:
        mech.lower[j.name], mech.upper[j.name], mech.effort[j.name] = lower, upper, effort
    if joint.actuator_index is not None:
        mech.actuators[j.name] = joint.actuator_index
