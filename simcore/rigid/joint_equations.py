"""The joints' terms in the step equations (simcore.rigid.joints): `prepare` computes a step's
w-independent terms once (`JointStep`), `equations` adds the joint impulses to the dynamics rows and
gives the joint and limit rows (and their Jacobian blocks), `initial_guess` and `warm_part` start the
joint unknowns (λ, γ_limit, s_limit) and carry them to the next step."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from .bodies import DTYPE
from .joint_outputs import OUTPUTS, _angle_axis, _local, _poses, _selectors, _with_jacobian, outputs

if TYPE_CHECKING:
    from .joints import JointParams, JointSet


class JointStep:
    """The w-independent joint terms of one step (computed once per step by `prepare`)."""


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
