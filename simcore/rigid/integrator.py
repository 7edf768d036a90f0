"""The step equations: discrete Euler–Lagrange dynamics with contact impulses, and the contact
complementarity conditions, as one residual r(w) = 0 over the step unknowns w (one world).

Unknowns w = [z, γ, s, β, η] (length 6·bodies + 8·contacts):
  z: (bodies, 6) end-of-step velocities (v m/s world frame, ω rad/s body frame), x_{k+1} = x_k + dt·v,
     q_{k+1} = q_k ⊗ ℓ(ω) (variational integrator of Dojo, Howell et al. 2022, §III);
  γ: (C,) normal impulses N·s, s: (C,) gaps m (slack of φ ≥ 0);
  β: (C, 3) friction cone variable (β₀ = μγ, β₁₂ = friction impulse N·s in the tangent basis);
  η: (C, 3) dual cone variable (η₀ ≥ |slip|, η₁₂ = tangential slip velocity m/s).
Equations (Dojo §IV, nonlinear complementarity with second-order cones, relaxed by κ):
  dynamics   m(v − v_k) − dt(m g + F) − Σ λ = 0,
             dt/2 [√(4/dt² − |ω|²) J ω + ω × J ω − √(4/dt² − |ω_k|²) J ω_k + ω_k × J ω_k]
                 − dt R_kᵀ τ − Σ τ_contact = 0     (discrete Euler–Lagrange for rotation)
  gap        s − φ(z) = 0
  slip       η₁₂ − v_t(z) = 0,   β₀ − μγ = 0
  centering  γ s = κ,   β ∘ η = κ e   (Jordan product of the second-order cone, e = (1, 0, 0))
Contact impulses enter through the discrete Lagrange–d'Alembert principle as gradients of λ·p_{k+1}, so
the force directions are exactly the constraint Jacobians.
"""

from __future__ import annotations

import torch

from . import quaternion as quat


def sizes(bodies: int, contacts: int) -> dict:
    """Offsets of the blocks of w."""
    z = 6 * bodies
    return dict(z=(0, z), gamma=(z, z + contacts), gap=(z + contacts, z + 2 * contacts),
                beta=(z + 2 * contacts, z + 5 * contacts), eta=(z + 5 * contacts, z + 8 * contacts),
                total=z + 8 * contacts)


def unpack(w: torch.Tensor, bodies: int, contacts: int):
    """(v (nb, 3), ω (nb, 3), γ (C,), s (C,), β (C, 3), η (C, 3)) views of w (…, N)."""
    o = sizes(bodies, contacts)
    lead = w.shape[:-1]
    z = w[..., : o["z"][1]].reshape(lead + (bodies, 6))
    g = w[..., o["gamma"][0]:o["gamma"][1]]
    s = w[..., o["gap"][0]:o["gap"][1]]
    b = w[..., o["beta"][0]:o["beta"][1]].reshape(lead + (contacts, 3))
    e = w[..., o["eta"][0]:o["eta"][1]].reshape(lead + (contacts, 3))
    return z[..., :3], z[..., 3:], g, s, b, e


def advance(x, q, v_next, om_next, dt):
    """End-of-step pose from end-of-step velocities: x + dt v, q ⊗ ℓ(ω) (renormalized against round-off)."""
    q_next = quat.multiply(q, quat.step_rotation(om_next, dt))
    return x + dt * v_next, q_next / q_next.norm(dim=-1, keepdim=True)


def residual(w, kappa, x, q, v, om, force, torque, mass, inertia, gravity, body_a, body_b, normal, tangent,
             rn_a, rn_b, rt_a, rt_b, offset, friction, active, dt: float):
    """Step residual of one world, (N,). kappa: central-path target (scalar tensor or float).

    x, q, v, om: (nb, ·) start-of-step state (ω body frame); force, torque: (nb, 3) N, N·m world frame;
    mass (nb,) kg; inertia (nb, 3, 3) kg·m² body frame; gravity (3,) m/s²; contact arrays as in
    collision.Contacts for one world; active (C,) bool: inactive candidates get the trivially satisfied
    constraint φ = 1 m, v_t = 0 and exert no impulse.
    """
    nb, C = x.shape[0], normal.shape[0]
    v2, om2, gamma, gap, beta, eta = unpack(w, nb, C)
    on = active.to(w.dtype)
    # The ground (static shapes) is an extra body row that never moves.
    zero = torch.zeros(1, 3, dtype=w.dtype)
    X, V2, W2 = torch.cat([x, zero]), torch.cat([v2, zero]), torch.cat([om2, zero])
    Q = torch.cat([q, quat.identity((1,), w.dtype)])
    R_k = quat.to_matrix(Q)
    R_next = quat.to_matrix(quat.multiply(Q, quat.step_rotation(W2, dt)))

    def at_next(rows, r):
        return X[rows] + dt * V2[rows] + (R_next[rows] @ r[..., None])[..., 0]

    def at_now(rows, r):
        return X[rows] + (R_k[rows] @ r[..., None])[..., 0]

    phi = (normal * (at_next(body_a, rn_a) - at_next(body_b, rn_b))).sum(-1) - offset
    slip = (at_next(body_a, rt_a) - at_now(body_a, rt_a)) - (at_next(body_b, rt_b) - at_now(body_b, rt_b))
    v_t = (tangent @ slip[..., None])[..., 0] / dt
    phi = torch.where(active, phi, torch.ones_like(phi))
    v_t = v_t * on[:, None]

    lam_n = normal * (gamma * on)[:, None]
    lam_t = (tangent.transpose(-1, -2) @ (beta[:, 1:] * on[:, None])[..., None])[..., 0]

    def angular(rows, r, lam):
        lam_body = (R_k[rows].transpose(-1, -2) @ lam[..., None])[..., 0]
        return quat.rotated_point_momentum(W2[rows], r, lam_body, dt)

    onehot_a = torch.nn.functional.one_hot(body_a, nb + 1).to(w.dtype)[:, :nb]
    onehot_b = torch.nn.functional.one_hot(body_b, nb + 1).to(w.dtype)[:, :nb]
    lam = lam_n + lam_t
    lin_impulse = onehot_a.T @ lam - onehot_b.T @ lam
    ang_impulse = (onehot_a.T @ (angular(body_a, rn_a, lam_n) + angular(body_a, rt_a, lam_t))
                   - onehot_b.T @ (angular(body_b, rn_b, lam_n) + angular(body_b, rt_b, lam_t)))

    r_lin = mass[:, None] * (v2 - v) - dt * (mass[:, None] * gravity + force) - lin_impulse
    r_ang = 0.5 * dt * (_momentum(om2, inertia, dt, +1) - _momentum(om, inertia, dt, -1)) \
        - dt * (R_k[:nb].transpose(-1, -2) @ torque[..., None])[..., 0] - ang_impulse
    r_dyn = torch.cat([r_lin, r_ang], -1).reshape(-1)
    r_gap = gap - phi
    r_slip = eta[:, 1:] - v_t
    r_mu = beta[:, 0] - friction * gamma
    r_comp = gamma * gap - kappa
    r_cone = torch.cat([(beta * eta).sum(-1, keepdim=True) - kappa,
                        beta[:, :1] * eta[:, 1:] + eta[:, :1] * beta[:, 1:]], -1)
    return torch.cat([r_dyn, r_gap, r_slip.reshape(-1), r_mu, r_comp, r_cone.reshape(-1)])


def _momentum(om, inertia, dt, sign):
    """√(4/dt² − |ω|²) J ω ± ω × J ω, (nb, 3)."""
    J_om = (inertia @ om[..., None])[..., 0]
    root = torch.sqrt(4.0 / dt**2 - (om * om).sum(-1, keepdim=True))
    return root * J_om + sign * torch.linalg.cross(om, J_om, dim=-1)


def row_blocks(bodies: int, contacts: int) -> dict:
    """Offsets of the residual blocks (same order as `residual`)."""
    z = 6 * bodies
    C = contacts
    return dict(dyn=(0, z), gap=(z, z + C), slip=(z + C, z + 3 * C), mu=(z + 3 * C, z + 4 * C),
                comp=(z + 4 * C, z + 5 * C), cone=(z + 5 * C, z + 8 * C))


def angular_momentum(q, om, inertia, dt):
    """Discrete spatial angular momentum about the centre of mass, world frame (…, 3) kg·m²/s.

    π_k = R(q_k) (w J ω + u × J ω) with ℓ(ω) = (w, u): the quantity the variational integrator conserves
    exactly in free flight (discrete Noether theorem); it tends to R J ω as dt → 0.
    """
    ell = quat.step_rotation(om, dt)
    J_om = (inertia @ om[..., None])[..., 0]
    body = ell[..., :1] * J_om + torch.linalg.cross(ell[..., 1:], J_om, dim=-1)
    return (quat.to_matrix(q) @ body[..., None])[..., 0]
