"""The seven joint outputs and their derivatives (simcore.rigid.joints).

Per joint the constraint function is built from seven numbers of the two bodies' poses (`outputs`):
Δ (3) the child anchor relative to the parent anchor in the parent frame, m; ρ = 2 vec(e) (3), rad, with
e = q_p* ⊗ q_c ⊗ q_0* the child's rotation relative to its rest orientation, in the parent frame; and
θ = 2 atan2(a·vec(e), e_w), the revolute angle about the parent-frame axis a. Rows (S·outputs):
fixed Δ, ρ; spherical Δ; revolute Δ, b₁·ρ, b₂·ρ (b ⟂ a); prismatic b₁·Δ, b₂·Δ, ρ; floating none.
Coordinates: revolute θ, prismatic a·Δ. Derivatives with respect to the 12 velocity unknowns of the two
bodies are written in closed form (`_with_jacobian`; checked against torch.func.jacfwd in the tests).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from . import quaternion as quat
from .bodies import DTYPE

if TYPE_CHECKING:
    from .joints import JointSet

OUTPUTS = 7  # Δ (3), ρ (3), θ


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


def conjugate(q):
    return q * torch.tensor([1.0, -1.0, -1.0, -1.0], dtype=q.dtype)


# ----------------------------------------------------------------------------------------------
# The outputs' arguments per joint
# ----------------------------------------------------------------------------------------------
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


def _angle_axis(js, jp):
    is_rev = torch.tensor([k == "revolute" for k in js.kinds], dtype=torch.bool)
    return torch.where(is_rev[:, None], jp.axis, torch.zeros_like(jp.axis))
