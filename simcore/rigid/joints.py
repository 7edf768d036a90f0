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

Per joint the constraint function is built from seven numbers of the two bodies' poses (`outputs`):
Δ (3) the child anchor relative to the parent anchor in the parent frame, m; ρ = 2 vec(e) (3), rad, with
e = q_p* ⊗ q_c ⊗ q_0* the child's rotation relative to its rest orientation, in the parent frame; and
θ = 2 atan2(a·vec(e), e_w), the revolute angle about the parent-frame axis a. Rows (S·outputs):
fixed Δ, ρ; spherical Δ; revolute Δ, b₁·ρ, b₂·ρ (b ⟂ a); prismatic b₁·Δ, b₂·Δ, ρ; floating none.
Coordinates: revolute θ, prismatic a·Δ. Derivatives with respect to the 12 velocity unknowns of the two
bodies are written in closed form (`_with_jacobian`; checked against torch.func.jacfwd in the tests).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from . import quaternion as quat
from .bodies import DTYPE, Body, as_tensor

KINDS = ("fixed", "revolute", "prismatic", "spherical", "floating")
# Minimal coordinates per kind (positions; rates have the same count).
DOFS = {"fixed": 0, "revolute": 1, "prismatic": 1, "spherical": 3, "floating": 6}
OUTPUTS = 7  # Δ (3), ρ (3), θ


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
    poses (held fixed: a gradient with respect to a body's initial pose moves the body, not the joint)."""
    def pose(b):
        if b is None:
            return torch.zeros(3, dtype=DTYPE), quat.identity((), DTYPE)
        return b.position.detach(), b.orientation.detach()
    ap, ac, ax, q0, k, c, rest, bound = [], [], [], [], [], [], [], []
    for joint in joints:
        (xp, qp), (xc, qc) = pose(joint.parent), pose(joint.child)
        Rp, Rc = quat.to_matrix(qp), quat.to_matrix(qc)
        ap.append(Rp.T @ (joint.anchor - xp))
        ac.append(Rc.T @ (joint.anchor - xc))
        ax.append(Rp.T @ joint.axis if joint.axis is not None else torch.zeros(3, dtype=DTYPE))
        q0.append(quat.multiply(conjugate(qp), qc))
        if joint.dofs == 1:
            k.append(joint.stiffness), c.append(joint.damping), rest.append(joint.rest)
            bound += [b for b in (joint.lower, joint.upper) if b is not None]
    stack = lambda xs, shape: torch.stack(xs) if xs else torch.zeros(shape, dtype=DTYPE)  # noqa: E731
    return JointParams(stack(ap, (0, 3)), stack(ac, (0, 3)), stack(ax, (0, 3)), stack(q0, (0, 4)),
                       stack(k, (0,)), stack(c, (0,)), stack(rest, (0,)), stack(bound, (0,)))


def conjugate(q):
    return q * torch.tensor([1.0, -1.0, -1.0, -1.0], dtype=q.dtype)


# ----------------------------------------------------------------------------------------------
# The seven joint outputs and their derivatives
# ----------------------------------------------------------------------------------------------
def outputs(z, xp, qp, xc, qc, rp, rc, q0, angle_axis, dt):
    """[Δ (3) m, ρ (3) rad, θ rad] of the poses reached with the velocities z = (v_p, ω_p, v_c, ω_c)
    (12,) (body-frame ω) from (xp, qp), (xc, qc); broadcasts over leading dims. angle_axis: the revolute
    axis (zero for other kinds, where θ is unused)."""
    xp2 = xp + dt * z[..., 0:3]
    qp2 = quat.multiply(qp, quat.step_rotation(z[..., 3:6], dt))
    xc2 = xc + dt * z[..., 6:9]
    qc2 = quat.multiply(qc, quat.step_rotation(z[..., 9:12], dt))
    Rp, Rc = quat.to_matrix(qp2), quat.to_matrix(qc2)
    arm = xc2 + (Rc @ rc[..., None])[..., 0] - xp2
    delta = (Rp.transpose(-1, -2) @ arm[..., None])[..., 0] - rp
    e = quat.multiply(quat.multiply(conjugate(qp2), qc2), conjugate(q0))
    theta = 2 * torch.atan2((angle_axis * e[..., 1:]).sum(-1, keepdim=True), e[..., :1])
    return torch.cat([delta, 2 * e[..., 1:], theta], -1)


def _with_jacobian(z, xp, qp, xc, qc, rp, rc, q0, angle_axis, dt):
    """`outputs` (…, 7) and their Jacobian ∂outputs/∂z (…, 7, 12), in closed form (torch.func.jacfwd of
    `outputs` gives the same to round-off — tests/rigid/test_joints.py — but costs ~40 ms a call).

    Quaternion products are linear in each factor: a ⊗ b = Lq(a) b = Rq(b) a; ∂ℓ/∂ω = dt/2 [−ωᵀ/root; I];
    ∂(R(q) r)/∂q = M(q, r) (as integrator._Attachment); θ = 2 atan2(y, x) gives dθ = 2(x dy − y dx)/(x² + y²).
    """
    vp, wp, vc, wc = z[..., 0:3], z[..., 3:6], z[..., 6:9], z[..., 9:12]
    lp, lc = quat.step_rotation(wp, dt), quat.step_rotation(wc, dt)
    qp2, qc2 = quat.multiply(qp, lp), quat.multiply(qc, lc)
    Rp, Rc = quat.to_matrix(qp2), quat.to_matrix(qc2)
    RpT = Rp.transpose(-1, -2)
    arm = xc + dt * vc + _mv(Rc, rc) - xp - dt * vp
    delta = _mv(RpT, arm) - rp
    cqp2 = conjugate(qp2)
    pre = quat.multiply(cqp2, qc2)
    c0 = conjugate(q0)
    e = quat.multiply(pre, c0)
    y, x = (angle_axis * e[..., 1:]).sum(-1), e[..., 0]
    theta = 2 * torch.atan2(y, x)
    out = torch.cat([delta, 2 * e[..., 1:], theta[..., None]], -1)

    dqp = _qL(qp) @ _dell(wp, dt)                     # ∂qp2/∂ωp (…, 4, 3)
    dqc = _qL(qc) @ _dell(wc, dt)
    conj = torch.diag(torch.tensor([1.0, -1.0, -1.0, -1.0], dtype=z.dtype))
    de_wp = _qR(c0) @ _qR(qc2) @ conj @ dqp          # ∂e/∂ωp (…, 4, 3)
    de_wc = _qR(c0) @ _qL(cqp2) @ dqc
    eye = torch.eye(3, dtype=z.dtype).expand(RpT.shape)
    d_delta = torch.cat([-dt * RpT, _rot_jac(cqp2, arm) @ conj @ dqp, dt * RpT, RpT @ _rot_jac(qc2, rc) @ dqc], -1)
    d_rho = 2 * torch.cat([0 * eye, de_wp[..., 1:, :], 0 * eye, de_wc[..., 1:, :]], -1)
    # x² + y² = 1 on a revolute joint; the clamp only guards kinds whose θ is unused (y = 0) at e_w = 0.
    dtheta_de = 2 * torch.cat([-y[..., None], x[..., None] * angle_axis], -1) / (x * x + y * y).clamp_min(1e-300)[..., None]
    zero = torch.zeros(z.shape[:-1] + (1, 3), dtype=z.dtype)
    d_theta = torch.cat([zero, dtheta_de[..., None, :] @ de_wp, zero, dtheta_de[..., None, :] @ de_wc], -1)
    return out, torch.cat([d_delta, d_rho, d_theta], -2)


def _mv(M, v):
    return (M @ v[..., None])[..., 0]


def _qL(a):
    """Lq(a) (…, 4, 4): a ⊗ b = Lq(a) b."""
    w, u = a[..., :1, None], a[..., 1:]
    top = torch.cat([a[..., None, :1], -u[..., None, :]], -1)
    return torch.cat([top, torch.cat([u[..., :, None], w * torch.eye(3, dtype=a.dtype) + quat.skew(u)], -1)], -2)


def _qR(b):
    """Rq(b) (…, 4, 4): a ⊗ b = Rq(b) a."""
    w, u = b[..., :1, None], b[..., 1:]
    top = torch.cat([b[..., None, :1], -u[..., None, :]], -1)
    return torch.cat([top, torch.cat([u[..., :, None], w * torch.eye(3, dtype=b.dtype) - quat.skew(u)], -1)], -2)


def _dell(om, dt):
    """∂ℓ(ω)/∂ω (…, 4, 3) = dt/2 [−ωᵀ/root; I]."""
    root = torch.sqrt(4.0 / dt**2 - (om * om).sum(-1, keepdim=True))
    eye = torch.eye(3, dtype=om.dtype).expand(om.shape[:-1] + (3, 3))
    return 0.5 * dt * torch.cat([-om[..., None, :] / root[..., None], eye], -2)


def _rot_jac(q, r):
    """∂(R(q) r)/∂q (…, 3, 4) = [2(w r + u × r), 2((u·r) I + u rᵀ − r uᵀ − w [r]×)]."""
    w, u = q[..., :1], q[..., 1:]
    eye = torch.eye(3, dtype=q.dtype)
    d_w = 2 * (w * r + torch.linalg.cross(u, r, dim=-1))
    d_u = 2 * ((u * r).sum(-1)[..., None, None] * eye + u[..., :, None] * r[..., None, :]
               - r[..., :, None] * u[..., None, :] - w[..., None] * quat.skew(r))
    return torch.cat([d_w[..., None], d_u], -1)


def _selectors(kinds, axis):
    """Per joint the (6, 7) selector of its equality rows (padded with zeros) and the (7,) selector of its
    coordinate, from the parent-frame axes (J, 3)."""
    J = len(kinds)
    eye = torch.eye(OUTPUTS, dtype=DTYPE)
    zero3 = torch.zeros(J, 3, dtype=DTYPE)
    b = _perpendicular(axis)                      # (J, 2, 3)
    rows, coord = [], []
    for j, kind in enumerate(kinds):
        pad = [torch.zeros(OUTPUTS, dtype=DTYPE)] * 6
        if kind == "fixed":
            r = list(eye[:6])
        elif kind == "spherical":
            r = list(eye[:3])
        elif kind == "revolute":
            r = list(eye[:3]) + [torch.cat([zero3[j], b[j, 0], zero3[j, :1]]),
                                 torch.cat([zero3[j], b[j, 1], zero3[j, :1]])]
        elif kind == "prismatic":
            r = [torch.cat([b[j, 0], zero3[j], zero3[j, :1]]), torch.cat([b[j, 1], zero3[j], zero3[j, :1]])] \
                + list(eye[3:6])
        else:
            r = []
        rows.append(torch.stack((r + pad)[:6]))
        coord.append(eye[6] if kind == "revolute" else torch.cat([axis[j], zero3[j], zero3[j, :1]]))
    stack = lambda xs, shape: torch.stack(xs) if xs else torch.zeros(shape, dtype=DTYPE)  # noqa: E731
    return stack(rows, (0, 6, OUTPUTS)), stack(coord, (0, OUTPUTS))


def _perpendicular(axis):
    """Two unit vectors (J, 2, 3) spanning the plane ⟂ each axis (J, 3) (any for a zero axis)."""
    safe = torch.where(axis.detach().norm(dim=-1, keepdim=True) > 0.5, axis,
                       torch.tensor([1.0, 0.0, 0.0], dtype=DTYPE).expand_as(axis))
    helper = torch.eye(3, dtype=DTYPE)[safe.detach().abs().argmin(-1)]
    b1 = torch.linalg.cross(safe, helper, dim=-1)
    b1 = b1 / b1.norm(dim=-1, keepdim=True)
    return torch.stack([b1, torch.linalg.cross(safe, b1, dim=-1)], -2)


# ----------------------------------------------------------------------------------------------
# Per step
# ----------------------------------------------------------------------------------------------
class JointStep:
    """The w-independent joint terms of one step (computed once per step by `prepare`)."""


def _poses(js: JointSet, x, q):
    """Start-of-step parent and child poses (B, J, ·), the world row at the origin."""
    B = x.shape[0]
    X = torch.cat([x, torch.zeros(B, 1, 3, dtype=x.dtype)], 1)
    Q = torch.cat([q, quat.identity((B, 1), x.dtype)], 1)
    return X[:, js.parent], Q[:, js.parent], X[:, js.child], Q[:, js.child]


def _local(js: JointSet, z):
    """(B, nb, 6) body velocities → (B, J, 12) (v_p, ω_p, v_c, ω_c), zero for the world."""
    Z = torch.cat([z, torch.zeros_like(z[:, :1])], 1)
    return torch.cat([Z[:, js.parent], Z[:, js.child]], -1)


def prepare(js: JointSet, state_tensors, jp: JointParams, actuation, dt: float, margin: float,
            decisions: dict | None = None) -> JointStep:
    """Joint terms of one step: start-of-step outputs and rate maps D_k (1/s per unit velocity), the
    explicit spring and actuation impulses, and which limits are within reach this step (decided here
    when `decisions` is None, else reused: the backward pass keeps the forward's choices).
    actuation: (B, na) N·m or N."""
    x, q, v, om = state_tensors
    s = JointStep()
    B, nb = x.shape[:2]
    s.js, s.B, s.nb, s.dt = js, B, nb, dt
    xp, qp, xc, qc = _poses(js, x, q)
    J = js.count
    s.args = [t.reshape(B * J, -1) for t in (xp, qp, xc, qc)] + \
        [t.expand(B, J, t.shape[-1]).reshape(B * J, -1) for t in (jp.anchor_parent, jp.anchor_child,
                                                                    jp.rest_rotation, _angle_axis(js, jp))]
    zero = torch.zeros(B * J, 12, dtype=x.dtype)
    out0, jac0 = _with_jacobian(zero, *s.args, dt)
    s.out0 = out0.reshape(B, J, OUTPUTS)
    D = jac0.reshape(B, J, OUTPUTS, 12) / dt
    sel_eq, sel_coord = _selectors(js.kinds, jp.axis)
    s.sel_eq = sel_eq[js.eq_joint, js.eq_slot]            # (m, 7)
    s.sel_coord = sel_coord[js.coord_joint]               # (n1, 7)
    s.D_eq = _select(s.sel_eq, D[:, js.eq_joint])         # (B, m, 12)
    s.D_coord = _select(s.sel_coord, D[:, js.coord_joint])  # (B, n1, 12)
    onehot = torch.nn.functional.one_hot
    s.onehot_p = onehot(js.parent, nb + 1).to(x.dtype)[:, :nb]
    s.onehot_c = onehot(js.child, nb + 1).to(x.dtype)[:, :nb]
    s.G_eq = _scatter(s.D_eq, js.eq_joint, s)             # (B, m, 6nb)
    s.G_coord = _scatter(s.D_coord, js.coord_joint, s)    # (B, n1, 6nb)
    coord0 = (s.sel_coord * s.out0[:, js.coord_joint]).sum(-1)       # (B, n1)
    rate0 = (s.D_coord * _local(js, torch.cat([v, om], -1))[:, js.coord_joint]).sum(-1)
    s.coord0, s.rate0 = coord0, rate0
    explicit = -jp.stiffness * (coord0 - jp.rest)
    if js.actuators:
        explicit = explicit.index_add(1, js.actuated_coord, actuation)
    s.explicit = dt * explicit                            # (B, n1) N·s or N·m·s
    s.damping = dt * jp.damping                           # (n1,)
    # Limits: gap g = ±(θ − bound) ≥ 0, in reach when g_k < margin + 2 dt |rate| (as contacts).
    s.sign, s.bound = js.limit_sign, jp.bound
    s.gap0 = s.sign * (coord0[:, js.limit_coord] - s.bound)
    s.rate_lim = s.sign * rate0[:, js.limit_coord]
    decisions = {} if decisions is None else decisions
    if "limit_active" not in decisions:
        decisions["limit_active"] = (s.gap0.detach() < margin + 2 * dt * s.rate_lim.detach().abs()).detach()
    s.decisions = decisions
    s.active = decisions["limit_active"]
    s.on = s.active.to(x.dtype)
    return s


def _select(selector, jac):
    """Rows selector (R, 7) of per-row output Jacobians jac (B, R, 7, 12) → (B, R, 12)."""
    return torch.einsum("rk,brkc->brc", selector, jac)


def _angle_axis(js, jp):
    is_rev = torch.tensor([k == "revolute" for k in js.kinds], dtype=torch.bool)
    return torch.where(is_rev[:, None], jp.axis, torch.zeros_like(jp.axis))


def _scatter(local, joint, s):
    """Rows (B, R, 12) on the (v, ω) of parent and child of joint[r] → (B, R, 6 nb) in the bodies'
    columns (the world has none)."""
    B, R, _ = local.shape
    full = local[..., None, :6] * s.onehot_p[joint][None, :, :, None] \
        + local[..., None, 6:] * s.onehot_c[joint][None, :, :, None]
    return full.reshape(B, R, 6 * s.nb)


def offsets(nc: int, js: JointSet):
    """Offsets in w (and r) of λ, γ_limit, s_limit after the nc contact unknowns (rows)."""
    m, L = js.rows, js.limits
    return dict(lam=(nc, nc + m), gamma=(nc + m, nc + m + L), gap=(nc + m + L, nc + m + 2 * L),
                total=nc + m + 2 * L)


def equations(w, nc: int, kappa, s: JointStep, jacobian=True):
    """Joint terms of the step equations at w (B, N): (impulse on the dynamics rows (B, 6 nb), joint rows
    [c_eq (m), limit gap (L), limit centering (L)] (B, m + 2L), and if asked a function adding the joint
    blocks to a Jacobian (B, N, N) in place; it evaluates ∂c/∂z only when called)."""
    js, B, nb = s.js, s.B, s.nb
    o = offsets(nc, js)
    z = w[:, :6 * nb].reshape(B, nb, 6)
    lam = w[:, o["lam"][0]:o["lam"][1]]
    gam, gap = w[:, o["gamma"][0]:o["gamma"][1]], w[:, o["gap"][0]:o["gap"][1]]
    zl = _local(js, z)
    zf = zl.reshape(B * js.count, 12)
    out = outputs(zf, *s.args, s.dt).reshape(B, js.count, OUTPUTS)
    c_eq = (s.sel_eq * out[:, js.eq_joint]).sum(-1)
    coord = (s.sel_coord * out[:, js.coord_joint]).sum(-1)
    rate = (s.D_coord * zl[:, js.coord_joint]).sum(-1)
    g = s.sign * (coord[:, js.limit_coord] - s.bound)
    g = torch.where(s.active, g, torch.ones_like(g))
    f = s.explicit - s.damping * rate
    if js.limits:
        f = f.index_add(1, js.limit_coord, s.sign * gam * s.on)
    impulse = (s.G_eq * lam[..., None]).sum(1) + (s.G_coord * f[..., None]).sum(1)
    rows = torch.cat([c_eq, gap - g, gam * gap - kappa], -1)
    if not jacobian:
        return impulse, rows, None

    def add_jacobian(Jm):
        jac = _with_jacobian(zf, *s.args, s.dt)[1].reshape(B, js.count, OUTPUTS, 12)
        nz = 6 * nb
        m, L = js.rows, js.limits
        l0, g0, s0 = o["lam"][0], o["gamma"][0], o["gap"][0]
        E_eq = _scatter(_select(s.sel_eq, jac[:, js.eq_joint]), js.eq_joint, s)
        E_coord = _scatter(_select(s.sel_coord, jac[:, js.coord_joint]), js.coord_joint, s)
        Jm[:, :nz, :nz] += s.G_coord.transpose(1, 2) @ (s.damping[:, None] * s.G_coord)
        Jm[:, :nz, l0:l0 + m] = -s.G_eq.transpose(1, 2)
        Jm[:, l0:l0 + m, :nz] = E_eq
        if L:
            lim = (s.sign * s.on)[..., None]
            Jm[:, :nz, g0:g0 + L] = -(s.G_coord[:, js.limit_coord] * lim).transpose(1, 2)
            Jm[:, l0 + m:l0 + m + L, :nz] = -E_coord[:, js.limit_coord] * lim
            Jm[:, l0 + m:l0 + m + L, s0:s0 + L].diagonal(dim1=1, dim2=2).fill_(1.0)
            Jm[:, l0 + m + L:l0 + m + 2 * L, g0:g0 + L].diagonal(dim1=1, dim2=2).copy_(gap)
            Jm[:, l0 + m + L:l0 + m + 2 * L, s0:s0 + L].diagonal(dim1=1, dim2=2).copy_(gam)
        return Jm
    return impulse, rows, add_jacobian


# Floors of the cold start of a limit (rad or m; N·s or N·m·s), as for contacts.
GAP_FLOOR, IMPULSE_FLOOR = 1e-3, 1e-3


def initial_guess(s: JointStep, kappa: float, warm=None):
    """Start (B, m + 2L): λ from the previous step's solution when the joint set is the same (warm, a
    tuple (λ, γ, s, limit_active) or None), else 0; limits in reach start at the predicted gap (plus a
    floor) with a small impulse, or warm; placeholders at their exact solution s = 1, γ = κ."""
    js, B = s.js, s.B
    lam = torch.zeros(B, js.rows, dtype=DTYPE)
    gap = (s.gap0 + s.dt * s.rate_lim).abs().detach() + GAP_FLOOR
    gam = torch.full_like(gap, IMPULSE_FLOOR)
    gap = torch.where(s.active, gap, torch.ones_like(gap))
    gam = torch.where(s.active, gam, torch.full_like(gam, kappa))
    if warm is not None and warm[0].shape[0] == B:
        lam0, gam0, gap0, active0 = warm
        lam = lam0.clone()
        keep = active0 & s.active
        gam, gap = torch.where(keep, gam0, gam), torch.where(keep, gap0, gap)
    return torch.cat([lam, gam, gap], -1)


def warm_part(w, nc: int, s: JointStep):
    """(λ, γ, s, limit_active) of a solution w for the next step's warm start."""
    o = offsets(nc, s.js)
    part = lambda k: w[:, o[k][0]:o[k][1]]  # noqa: E731
    return part("lam"), part("gamma"), part("gap"), s.active


# ----------------------------------------------------------------------------------------------
# Minimal coordinates
# ----------------------------------------------------------------------------------------------
def rotation_vector(e):
    """Rotation vector (…, 3) rad of unit quaternions e (…, 4) (the shorter way round)."""
    e = torch.where(e[..., :1] < 0, -e, e)
    n = e[..., 1:].norm(dim=-1, keepdim=True)
    angle = 2 * torch.atan2(n, e[..., :1])
    scale = torch.where(n > 1e-12, angle / n.clamp_min(1e-300), 2.0 / e[..., :1])
    return scale * e[..., 1:]


def from_rotation_vector(phi):
    """Unit quaternion (…, 4) of a rotation vector (…, 3) rad."""
    angle = phi.norm(dim=-1, keepdim=True)
    half = 0.5 * angle
    sinc = torch.where(angle > 1e-12, torch.sin(half) / angle.clamp_min(1e-300), 0.5 - angle**2 / 48)
    return torch.cat([torch.cos(half), sinc * phi], -1)


def coordinates(joints, js: JointSet, jp: JointParams, state):
    """Minimal coordinates of a batched State: (positions (B, dofs), velocities (B, dofs)) in joint order:
    revolute angle (rad) and rate (rad/s); prismatic displacement (m) and rate (m/s); spherical rotation
    vector (rad) and relative angular velocity (rad/s, parent frame); floating anchor displacement (m,
    parent frame) and rotation vector, then their rates (m/s, parent frame; rad/s relative angular
    velocity, parent frame); fixed none."""
    x, q, v, om = state.tensors()
    B = x.shape[0]
    xp, qp, xc, qc = _poses(js, x, q)
    zl = _local(js, torch.cat([v, om], -1))
    per_joint = [t.expand(B, js.count, t.shape[-1]) for t in (jp.anchor_parent, jp.anchor_child, jp.rest_rotation,
                                                               _angle_axis(js, jp))]
    args = (xp, qp, xc, qc, *per_joint)
    out = outputs(torch.zeros(B, js.count, 12, dtype=x.dtype), *args, 1.0)
    Rp, Rc = quat.to_matrix(qp), quat.to_matrix(qc)
    mv = lambda M, a: (M @ a[..., None])[..., 0]  # noqa: E731
    vp, wp, vc, wc = zl[..., :3], zl[..., 3:6], zl[..., 6:9], zl[..., 9:]
    rel_w = mv(Rp.transpose(-1, -2), mv(Rc, wc)) - wp                      # parent frame
    arm = xc + mv(Rc, per_joint[1]) - xp
    arm_dot = vc + mv(Rc, torch.linalg.cross(wc, per_joint[1], dim=-1)) - vp
    delta_dot = -torch.linalg.cross(wp, mv(Rp.transpose(-1, -2), arm), dim=-1) + mv(Rp.transpose(-1, -2), arm_dot)
    e = quat.multiply(quat.multiply(conjugate(qp), qc), conjugate(per_joint[2]))
    pos, vel = [], []
    for j, joint in enumerate(joints):
        kind = joint.kind
        if kind == "revolute":
            pos.append(out[:, j, 6:7]), vel.append((jp.axis[j] * rel_w[:, j]).sum(-1, keepdim=True))
        elif kind == "prismatic":
            pos.append((jp.axis[j] * out[:, j, :3]).sum(-1, keepdim=True))
            vel.append((jp.axis[j] * delta_dot[:, j]).sum(-1, keepdim=True))
        elif kind == "spherical":
            pos.append(rotation_vector(e[:, j])), vel.append(rel_w[:, j])
        elif kind == "floating":
            pos += [out[:, j, :3], rotation_vector(e[:, j])]
            vel += [delta_dot[:, j], rel_w[:, j]]
    empty = torch.zeros(B, 0, dtype=x.dtype)
    return (torch.cat(pos, -1) if pos else empty), (torch.cat(vel, -1) if vel else empty)


def state_from_coordinates(joints, jp: JointParams, base, positions, velocities):
    """A State in which every joint's child sits at the given minimal coordinates (B, dofs) and rates
    (B, dofs) (layout of `coordinates`) relative to its parent, parents first; bodies that are no joint's
    child keep their pose and velocity in `base` (a batched State)."""
    x0, q0, v0, om0 = base.tensors()
    B, nb = x0.shape[:2]
    w0 = (quat.to_matrix(q0) @ om0[..., None])[..., 0]
    # Per-body lists (no in-place writes: the result stays differentiable in positions and velocities).
    x, q, v, w_world = ([t[:, i] for i in range(nb)] for t in (x0, q0, v0, w0))
    placed = [True] * nb
    for joint in joints:
        placed[joint.child.index] = False
    pending = list(enumerate(joints))
    mv = lambda M, a: (M @ a[..., None])[..., 0]  # noqa: E731
    while pending:
        ready = [(j, jt) for j, jt in pending if jt.parent is None or placed[jt.parent.index]]
        if not ready:
            raise ValueError("joints form a loop: minimal coordinates need a tree (each body the child of "
                             "at most one joint, no cycles)")
        for j, joint in ready:
            pending.remove((j, joint))
            if joint.parent is None:
                xp, qp = torch.zeros(B, 3, dtype=DTYPE), quat.identity((B,), DTYPE)
                vp, wp = torch.zeros(B, 3, dtype=DTYPE), torch.zeros(B, 3, dtype=DTYPE)
            else:
                p = joint.parent.index
                xp, qp, vp, wp = x[p], q[p], v[p], w_world[p]
            a0 = joint.dof_index
            pos, vel = positions[:, a0:a0 + joint.dofs], velocities[:, a0:a0 + joint.dofs]
            axis = jp.axis[j]
            shift, shift_rate = torch.zeros(B, 3, dtype=DTYPE), torch.zeros(B, 3, dtype=DTYPE)
            rot, rel_w = torch.zeros(B, 3, dtype=DTYPE), torch.zeros(B, 3, dtype=DTYPE)
            if joint.kind == "revolute":
                rot, rel_w = axis * pos, axis * vel
            elif joint.kind == "prismatic":
                shift, shift_rate = axis * pos, axis * vel
            elif joint.kind == "spherical":
                rot, rel_w = pos, vel
            elif joint.kind == "floating":
                shift, rot, shift_rate, rel_w = pos[:, :3], pos[:, 3:], vel[:, :3], vel[:, 3:]
            Rp = quat.to_matrix(qp)
            qc = quat.multiply(quat.multiply(qp, from_rotation_vector(rot)), jp.rest_rotation[j].expand(B, 4))
            qc = qc / qc.norm(dim=-1, keepdim=True)
            Rc = quat.to_matrix(qc)
            lever = mv(Rp, jp.anchor_parent[j] + shift)
            anchor = xp + lever
            anchor_rate = vp + torch.linalg.cross(wp, lever, dim=-1) + mv(Rp, shift_rate)
            wc = wp + mv(Rp, rel_w)
            arm = mv(Rc, jp.anchor_child[j])
            c = joint.child.index
            x[c], q[c] = anchor - arm, qc
            v[c] = anchor_rate - torch.linalg.cross(wc, arm, dim=-1)
            w_world[c] = wc
            placed[c] = True
    x, q, v, w_world = (torch.stack(t, 1) for t in (x, q, v, w_world))
    om = (quat.to_matrix(q).transpose(-1, -2) @ w_world[..., None])[..., 0]
    return x, q, v, om
