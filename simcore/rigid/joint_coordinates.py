"""Minimal coordinates of a mechanism (simcore.rigid.joints): joint positions and rates read from the
bodies' poses and velocities (`coordinates`), and poses and velocities set from them
(`state_from_coordinates`), with the rotation-vector maps they use."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from . import quaternion as quat
from .bodies import DTYPE
from .joint_outputs import _angle_axis, _local, _poses, conjugate, outputs

if TYPE_CHECKING:
    from .joints import JointParams, JointSet


def rotation_vector(e):
    """Rotation vector (…, 3) rad of unit quaternions e (…, 4) (the shorter way round)."""
    e = torch.where(e[..., :1] < 0, -e, e)
    n = e[..., 1:].norm(dim=-1, keepdim=True)
    angle = 2 * torch.atan2(n, e[..., :1])
    small = n <= 1e-12
    # The inner where keeps the unused branch finite (2 / e_w at a half-turn, e_w = 0), so that its zero
    # gradient stays zero instead of 0 · ∞.
    scale = torch.where(small, 2.0 / torch.where(small, e[..., :1], torch.ones_like(n)), angle / n.clamp_min(1e-300))
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
