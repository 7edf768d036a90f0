"""Joints between rigid bodies in maximal coordinates (Dojo, Howell et al. 2022, §III-C): what a user
adds to a World, and their terms in the step equations.

Every body keeps its own 6 velocity unknowns; a joint removes degrees of freedom with equality
constraints on the end-of-step configuration, c(q_{k+1}) = 0, whose impulses λ (own unknowns of the same
Newton / interior-point system, no slack, no complementarity) act along the constraint's rate map at the
start of the step, D_k = (1/dt) ∂c(q_{k+1}(z))/∂z |_{z=0}:

    dynamics   M(z − z_k) − dt·(gravity, controls) − D_kᵀ λ − D_{θ,k}ᵀ f_θ = 0
    joint      c(q_{k+1}(z)) = 0
    limit      s − (±(θ(q_{k+1}(z)) − bound)) = 0,   γ s = κ,   γ, s ≥ 0     (like a contact gap)

with f_θ = dt(−k(θ_k − θ_rest) + u) − dt·c_d·D_θ z + Σ ±γ the generalized impulse along a revolute angle or
prismatic displacement θ (spring k, actuation u explicit at q_k, damper c_d implicit). Forces at q_k with
the constraint at q_{k+1} is the constrained discrete Euler–Lagrange equation (SHAKE; Marsden & West 2001,
§3.4): the step stays a variational integrator, so energy has no secular drift and a constraint that is
invariant under rigid motions of the whole mechanism conserves its linear and angular momentum exactly.

Per joint the constraint function is built from seven numbers of the two bodies' poses, with their
derivatives in closed form (joint_outputs.py); the joints' terms of one step's equations are in
joint_equations.py, minimal coordinates (reading and setting a mechanism's joint positions) in
joint_coordinates.py. This module holds what a user adds and the structure and parameters fixed when
the World is built, and re-exports what the step, the gradients and the World call.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from . import quaternion as quat
from .bodies import DTYPE, Body, as_tensor
from .joint_coordinates import coordinates, state_from_coordinates
from .joint_equations import JointStep, equations, initial_guess, offsets, prepare, warm_part
from .joint_outputs import conjugate, outputs

__all__ = ["KINDS", "DOFS", "Joint", "Fixed", "Revolute", "Prismatic", "Spherical", "Floating", "JointSet", "build",
           "JointParams", "parameters",
           # from joint_outputs, joint_equations and joint_coordinates
           "outputs", "JointStep", "prepare", "offsets", "equations", "initial_guess", "warm_part", "coordinates",
           "state_from_coordinates"]

KINDS = ("fixed", "revolute", "prismatic", "spherical", "floating")
# Minimal coordinates per kind (positions; rates have the same count).
DOFS = {"fixed": 0, "revolute": 1, "prismatic": 1, "spherical": 3, "floating": 6}


class Joint:
    """A joint between `parent` (a dynamic body, or None for the world) and `child` (a dynamic body).

    anchor: (3,) m, world-frame point where the bodies are joined, at the bodies' initial poses; axis:
    (3,) world-frame direction at the initial poses (revolute, prismatic; normalized here). The joint's
    zero (angle, displacement, rotation) is the initial relative pose. One-degree-of-freedom joints
    (Revolute, Prismatic) also take: lower, upper (rad or m, None for no limit), stiffness (N·m/rad or
    N/m) and rest (rad or m) of a spring, damping (N·m·s/rad or N·s/m), actuated (its torque or force
    is a control of World.run / World.rollout, `actuation`). Numbers may be torch tensors with
    requires_grad: World.rollout then returns gradients with respect to them.
    """

    kind = "joint"

    def __init__(self, parent, child, anchor, axis=None, *, lower=None, upper=None, stiffness=0.0, damping=0.0,
                 rest=0.0, actuated=False, name=None):
        label = type(self).__name__
        for role, body in (("child", child), ("parent", parent)):
            if body is None and role == "parent":
                continue
            if not isinstance(body, Body) or body.static:
                raise ValueError(f"{label} {role} must be a dynamic body (Sphere, Box, Capsule){' or None for the world' if role == 'parent' else ''}, "
                                 f"got {body!r}; a static Box cannot carry a joint: use parent=None")
        if parent is child:
            raise ValueError(f"{label} parent and child are the same body {child!r}; use parent=None to "
                             "join a body to the world")
        self.parent, self.child, self.name = parent, child, name
        self.anchor = as_tensor(anchor, (3,), f"{label} anchor")
        self.axis = None
        if self.kind in ("revolute", "prismatic"):
            if axis is None:
                raise ValueError(f"{label} needs an axis, e.g. axis=(0, 0, 1)")
            a = as_tensor(axis, (3,), f"{label} axis")
            if float(a.detach().norm()) < 1e-9:
                raise ValueError(f"{label} axis must be a nonzero vector, got {a.detach().tolist()}")
            self.axis = a / a.norm()
        elif axis is not None:
            raise ValueError(f"{label} has no axis; axis= is for Revolute and Prismatic joints")
        one_dof = DOFS[self.kind] == 1
        if not one_dof and (lower is not None or upper is not None or actuated
                            or _nonzero(stiffness) or _nonzero(damping)):
            raise ValueError(f"{label}: limits, springs, dampers and actuation are for Revolute and "
                             "Prismatic joints")
        self.lower = None if lower is None else as_tensor(lower, (), f"{label} lower limit")
        self.upper = None if upper is None else as_tensor(upper, (), f"{label} upper limit")
        if self.lower is not None and self.upper is not None and not float(self.lower.detach()) < float(self.upper.detach()):
            raise ValueError(f"{label} needs lower < upper, got {float(self.lower.detach())} and "
                             f"{float(self.upper.detach())}")
        for bound in (self.lower, self.upper):
            if bound is not None and self.kind == "revolute" and abs(float(bound.detach())) >= 2 * torch.pi:
                raise ValueError(f"{label} limits must lie in (−2π, 2π) rad (the angle is measured from the "
                                 f"initial pose), got {float(bound.detach())}")
        self.stiffness = as_tensor(stiffness, (), f"{label} stiffness")
        self.damping = as_tensor(damping, (), f"{label} damping")
        self.rest = as_tensor(rest, (), f"{label} rest position")
        if float(self.stiffness.detach()) < 0 or float(self.damping.detach()) < 0:
            raise ValueError(f"{label} stiffness and damping must be ≥ 0, got {float(self.stiffness.detach())}, "
                             f"{float(self.damping.detach())}")
        self.actuated = bool(actuated)
        self.index = None        # set by World.add: row in the joint arrays
        self.dof_index = None    # first column of this joint in World.joint_positions
        self.actuator_index = None  # column in `actuation` if actuated

    @property
    def dofs(self) -> int:
        return DOFS[self.kind]

    def __repr__(self):
        return f"{type(self).__name__}(name={self.name!r}, index={self.index})"


def _nonzero(value) -> bool:
    t = value if isinstance(value, torch.Tensor) else torch.as_tensor(value)
    return bool((t.detach() != 0).any())


class Fixed(Joint):
    """Welds child to parent (6 constraints)."""
    kind = "fixed"

    def __init__(self, parent, child, anchor=(0.0, 0.0, 0.0), *, name=None):
        super().__init__(parent, child, anchor, name=name)


class Revolute(Joint):
    """Hinge about `axis` through `anchor` (5 constraints; coordinate: angle, rad, right-handed about axis)."""
    kind = "revolute"


class Prismatic(Joint):
    """Slider along `axis` (5 constraints; coordinate: displacement of the child along axis, m)."""
    kind = "prismatic"


class Spherical(Joint):
    """Ball joint at `anchor` (3 constraints; coordinates: rotation vector of the child relative to its
    initial orientation, parent frame, rad)."""
    kind = "spherical"

    def __init__(self, parent, child, anchor, *, name=None):
        super().__init__(parent, child, anchor, name=name)


class Floating(Joint):
    """No constraint: records the parent/child relation so that minimal coordinates (displacement of the
    child anchor in the parent frame, m, then rotation vector, rad) can read and set the child's pose."""
    kind = "floating"

    def __init__(self, parent, child, anchor=None, *, name=None):
        if anchor is None:   # default: the child's centre of mass
            anchor = child.position.detach() if isinstance(child, Body) else (0.0, 0.0, 0.0)
        super().__init__(parent, child, anchor, name=name)


# ----------------------------------------------------------------------------------------------
# Structure (fixed when the World is built)
# ----------------------------------------------------------------------------------------------
@dataclass
class JointSet:
    """Index arrays of a World's joints. Rows of the pose table: 0..bodies−1 dynamic bodies, `bodies`
    the world (fixed at the origin).

    parent, child: (J,) long. eq_joint: (m,) joint of each equality row; eq_slot: (m,) which row of its
    kind's selector. coord_joint: (n1,) joints with a coordinate (revolute, prismatic), in joint order.
    limit_coord: (L,) coordinate row of each limit; limit_sign: (L,) +1 lower, −1 upper; limit_joint
    (L,). actuated_coord: (na,) coordinate rows driven by `actuation` columns, in order."""
    bodies: int
    kinds: list
    parent: torch.Tensor
    child: torch.Tensor
    eq_joint: torch.Tensor
    eq_slot: torch.Tensor
    coord_joint: torch.Tensor
    limit_coord: torch.Tensor
    limit_sign: torch.Tensor
    actuated_coord: torch.Tensor
    dofs: int

    @property
    def count(self):
        return len(self.kinds)

    @property
    def rows(self):
        return len(self.eq_joint)

    @property
    def limits(self):
        return len(self.limit_coord)

    @property
    def actuators(self):
        return len(self.actuated_coord)


EQ_ROWS = {"fixed": 6, "revolute": 5, "prismatic": 5, "spherical": 3, "floating": 0}


def build(joints, bodies: int) -> JointSet:
    """JointSet of `joints` (list of Joint, World order) between `bodies` dynamic bodies."""
    row = lambda b: bodies if b is None else b.index  # noqa: E731
    eq_joint, eq_slot, coord_joint, limit_coord, limit_sign, actuated = [], [], [], [], [], []
    for j, joint in enumerate(joints):
        eq_joint += [j] * EQ_ROWS[joint.kind]
        eq_slot += list(range(EQ_ROWS[joint.kind]))
        if joint.dofs == 1:
            c = len(coord_joint)
            coord_joint.append(j)
            for bound, sign in ((joint.lower, 1.0), (joint.upper, -1.0)):
                if bound is not None:
                    limit_coord.append(c)
                    limit_sign.append(sign)
            if joint.actuated:
                actuated.append(c)
    long = lambda xs: torch.tensor(xs, dtype=torch.long)  # noqa: E731
    return JointSet(bodies, [j.kind for j in joints], long([row(j.parent) for j in joints]),
                    long([row(j.child) for j in joints]), long(eq_joint), long(eq_slot), long(coord_joint),
                    long(limit_coord), torch.tensor(limit_sign, dtype=DTYPE), long(actuated),
                    sum(j.dofs for j in joints))


@dataclass
class JointParams:
    """Joint parameters in body frames (torch, possibly on an autograd graph), J joints, L limits.
    anchor_parent, anchor_child: (J, 3) m in the parent / child body frame (world frame for the world);
    axis: (J, 3) unit, parent frame (zero for joints without one); rest_rotation: (J, 4) the child's
    orientation relative to the parent's at the joint's zero; stiffness, damping, rest: (n1,) per
    coordinate; bound: (L,) limit positions (rad or m)."""
    anchor_parent: torch.Tensor
    anchor_child: torch.Tensor
    axis: torch.Tensor
    rest_rotation: torch.Tensor
    stiffness: torch.Tensor
    damping: torch.Tensor
    rest: torch.Tensor
    bound: torch.Tensor


def parameters(joints, bodies) -> JointParams:
    """Body-frame joint parameters from the user's world-frame anchors and axes at the bodies' initial
    poses (held fixed: a gradient with respect to a body's initial pose moves the body, not the joint).
    One batched pass over all joints (World.run reads the joint coordinates of every frame with them)."""
    stack = lambda xs, shape: torch.stack(xs) if xs else torch.zeros(shape, dtype=DTYPE)  # noqa: E731
    origin, unit = torch.zeros(3, dtype=DTYPE), quat.identity((), DTYPE)

    def poses(side):
        bodies_ = [getattr(j, side) for j in joints]
        return (stack([origin if b is None else b.position.detach() for b in bodies_], (0, 3)),
                stack([unit if b is None else b.orientation.detach() for b in bodies_], (0, 4)))

    (xp, qp), (xc, qc) = poses("parent"), poses("child")
    Rp_T, Rc_T = quat.to_matrix(qp).transpose(-1, -2), quat.to_matrix(qc).transpose(-1, -2)
    mv = lambda M, a: (M @ a[..., None])[..., 0]  # noqa: E731
    anchor = stack([j.anchor for j in joints], (0, 3))
    axis = stack([j.axis if j.axis is not None else origin for j in joints], (0, 3))
    one = [j for j in joints if j.dofs == 1]
    bound = [b for j in one for b in (j.lower, j.upper) if b is not None]
    return JointParams(mv(Rp_T, anchor - xp), mv(Rc_T, anchor - xc), mv(Rp_T, axis),
                       quat.multiply(conjugate(qp), qc), stack([j.stiffness for j in one], (0,)),
                       stack([j.damping for j in one], (0,)), stack([j.rest for j in one], (0,)),
                       stack(bound, (0,)))
