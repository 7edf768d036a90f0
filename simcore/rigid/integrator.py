"""The step equations: discrete Euler–Lagrange dynamics with contact impulses, and the contact
complementarity conditions, as one residual r(w) = 0 over the step unknowns w, with its Jacobian ∂r/∂w in
closed form. Batched over B worlds.

Unknowns w = [z, γ, s, β, η] (length 6·bodies + 8·contacts):
  z: (bodies, 6) end-of-step velocities (v m/s world frame, ω rad/s body frame), x_{k+1} = x_k + dt·v,
     q_{k+1} = q_k ⊗ ℓ(ω) (variational integrator of Dojo, Howell et al. 2022, §III);
  γ: (C,) normal impulses N·s, s: (C,) gaps m (slack of φ ≥ 0);
  β: (C, 3) friction cone variable (β₀ = μγ, β₁₂ = friction impulse N·s in the tangent basis);
  η: (C, 3) dual cone variable (η₀ ≥ |slip|, η₁₂ = tangential slip velocity m/s).
Equations (Dojo §IV: nonlinear complementarity with second-order cones, relaxed by κ):
  dynamics   m(v − v_k) − dt(m g + F) − Σ λ = 0,
             dt/2 [√(4/dt² − |ω|²) J ω + ω × J ω − √(4/dt² − |ω_k|²) J ω_k + ω_k × J ω_k]
                 − dt R_kᵀ τ − Σ τ_contact = 0     (discrete Euler–Lagrange equation for rotation)
  gap        s − φ(z) = 0
  slip       η₁₂ − v_t(z) = 0,   β₀ − μγ = 0
  centering  γ s = κ,   β ∘ η = κ e   (Jordan product of the second-order cone, e = (1, 0, 0))
Contact impulses enter through the discrete Lagrange–d'Alembert principle as gradients of λ·p_{k+1}
(p a body-fixed witness point), so force directions are exactly the constraint Jacobians and ∂r/∂w
holds the curvature term ∂²(λ·p)/∂ω².
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


def row_blocks(bodies: int, contacts: int) -> dict:
    """Offsets of the residual blocks (same order as `equations`)."""
    z, C = 6 * bodies, contacts
    return dict(dyn=(0, z), gap=(z, z + C), slip=(z + C, z + 3 * C), mu=(z + 3 * C, z + 4 * C),
                comp=(z + 4 * C, z + 5 * C), cone=(z + 5 * C, z + 8 * C))


def unpack(w: torch.Tensor, bodies: int, contacts: int):
    """(v (…, nb, 3), ω (…, nb, 3), γ (…, C), s (…, C), β (…, C, 3), η (…, C, 3)) views of w (…, N)."""
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


_skew = quat.skew
# The arrow matrix of the Jordan product as a linear map of x: Arrow(x)_ij = Σ_k _ARROW_ijk x_k.
_ARROW = torch.zeros(3, 3, 3, dtype=torch.float64)
_ARROW[0, 0, 0] = _ARROW[1, 1, 0] = _ARROW[2, 2, 0] = 1.0
_ARROW[0, 1, 1] = _ARROW[1, 0, 1] = _ARROW[0, 2, 2] = _ARROW[2, 0, 2] = 1.0
_ARROW_MAP = _ARROW.permute(2, 0, 1).reshape(3, 9)



def _mm(A, B):
    return A @ B


def _mv(M, v):
    return (M @ v[..., None])[..., 0]


def _mtv(M, v):
    return (M.transpose(-1, -2) @ v[..., None])[..., 0]


class _Attachment:
    """Body-fixed points r during one step: their end-of-step positions, the Jacobian of those positions
    with respect to the bodies' (v, ω), and the curvature of λ·p with respect to ω.

    X, Rk: (B, P, 3), (B, P, 3, 3) start-of-step position and rotation of each point's body; V2, W2:
    (B, P, 3) that body's end-of-step velocities (the unknowns); r: (B, P, 3) body-frame points."""

    def __init__(self, X, V2, W2, Rk, r, dt):
        self.dt, self.r = dt, r
        om = W2
        self.om, self.Rk = om, Rk
        self.root = torch.sqrt(4.0 / dt**2 - (om * om).sum(-1, keepdim=True))
        ell = 0.5 * dt * torch.cat([self.root, om], -1)
        w, u = ell[..., :1], ell[..., 1:]
        self.ell = ell
        rotated = (w * w - (u * u).sum(-1, keepdim=True)) * r + 2 * (u * r).sum(-1, keepdim=True) * u \
            + 2 * w * torch.linalg.cross(u, r, dim=-1)
        self.p_next = X + dt * V2 + _mv(Rk, rotated)
        # ∂(R(ℓ) r)/∂ℓ = [2(w r + u × r), 2((u·r) I + u rᵀ − r uᵀ − w [r]×)], ∂ℓ/∂ω = dt/2 [−ωᵀ/root; I]
        eye = torch.eye(3, dtype=r.dtype)
        d_w = 2 * (w * r + torch.linalg.cross(u, r, dim=-1))
        d_u = 2 * ((u * r).sum(-1)[..., None, None] * eye + u[..., :, None] * r[..., None, :]
                   - r[..., :, None] * u[..., None, :] - w[..., None] * _skew(r))
        self.L = 0.5 * dt * torch.cat([-om[..., None, :] / self.root[..., None], eye.expand(om.shape[:-1] + (3, 3))],
                                      -2)
        D = d_w[..., :, None] * self.L[..., :1, :] + _mm(d_u, self.L[..., 1:, :])
        self.jac_rot = _mm(Rk, D)  # ∂p_next/∂ω (…, 3, 3); ∂p_next/∂v = dt·I

    def angular_impulse(self, lam):
        """Body-frame angular impulse of world impulse lam at the point: (1/dt) (∂p/∂ω)ᵀ λ."""
        return _mtv(self.jac_rot, lam) / self.dt

    def curvature(self, lam):
        """(1/dt) ∂²(λ·p_next)/∂ω² (…, 3, 3), from λ_bᵀR(ℓ)r = ℓᵀQℓ (quadratic in ℓ)."""
        lam_b, r = _mtv(self.Rk, lam), self.r
        lr = (lam_b * r).sum(-1)
        rxl = torch.linalg.cross(r, lam_b, dim=-1)
        eye = torch.eye(3, dtype=r.dtype)
        Qvv = r[..., :, None] * lam_b[..., None, :] + lam_b[..., :, None] * r[..., None, :] - lr[..., None, None] * eye
        Q = torch.cat([torch.cat([lr[..., None, None], rxl[..., None, :]], -1),
                       torch.cat([rxl[..., :, None], Qvv], -1)], -2)
        Q_ell0 = (Q[..., 0, :] * self.ell).sum(-1)
        om, root = self.om, self.root[..., 0]
        d2_ell0 = 0.5 * self.dt * (-eye / root[..., None, None]
                                   - om[..., :, None] * om[..., None, :] / root[..., None, None] ** 3)
        hess = 2 * _mm(self.L.transpose(-1, -2), _mm(Q, self.L)) + 2 * Q_ell0[..., None, None] * d2_ell0
        return hess / self.dt


class Prepared:
    """The parts of the step equations that do not depend on the unknowns w (computed once per step)."""


def prepare(x, q, v, om, force, torque, mass, inertia, gravity, contacts, dt: float) -> Prepared:
    """Per-step constants of `equations`: the start-of-step poses gathered per witness point, the
    contact frames and masks, and the dynamics terms of the start-of-step state and controls."""
    p = Prepared()
    B, nb = x.shape[:2]
    C = contacts.normal.shape[1]
    dtype = x.dtype
    p.B, p.nb, p.C, p.dt, p.mass, p.inertia = B, nb, C, dt, mass, inertia
    p.n, p.T, p.active, p.offset = contacts.normal, contacts.tangent, contacts.active, contacts.offset
    p.on = contacts.active.to(dtype)
    p.ia, p.ib = contacts.body_a, contacts.body_b
    # The ground (all static shapes) is an extra body row that never moves.
    X = torch.cat([x, torch.zeros(B, 1, 3, dtype=dtype)], 1)
    R_k = quat.to_matrix(torch.cat([q, quat.identity((B, 1), dtype)], 1))
    # All witness points in one batch: normal a, normal b, friction a, friction b (4C points).
    p.rows = torch.cat([p.ia, p.ib, p.ia, p.ib])
    p.r = torch.cat([contacts.rn_a, contacts.rn_b, contacts.rt_a, contacts.rt_b], 1).expand(B, 4 * C, 3)
    p.X, p.Rk = X[:, p.rows], R_k[:, p.rows]
    p.p_now = p.X + _mv(p.Rk, p.r)
    p.rubs = p.on * (contacts.friction > 0).to(dtype)
    p.mu_eff = torch.where(contacts.friction > 0, contacts.friction, torch.ones_like(contacts.friction))
    p.onehot_a = torch.nn.functional.one_hot(p.ia, nb + 1).to(dtype)[:, :nb]   # (C, nb)
    p.onehot_b = torch.nn.functional.one_hot(p.ib, nb + 1).to(dtype)[:, :nb]
    # Sum over contacts into bodies, + for side a, − for side b: (nb, 2C) applied to [a-terms; b-terms].
    p.scatter = torch.cat([p.onehot_a, -p.onehot_b]).T
    J_om = _mv(inertia, om)
    root1 = torch.sqrt(4.0 / dt**2 - (om * om).sum(-1, keepdim=True))
    p.lin0 = -mass[:, None] * v - dt * (mass[:, None] * gravity + force)
    p.ang0 = 0.5 * dt * (-root1 * J_om + torch.linalg.cross(om, J_om, dim=-1)) - dt * _mtv(R_k[:, :nb], torque)
    return p


def equations(w, kappa, x, q, v, om, force, torque, mass, inertia, gravity, contacts, dt: float,
              jacobian: bool = True, prepared: Prepared | None = None):
    """Step residual r(w; κ) (B, N) and, if asked, its Jacobian ∂r/∂w (B, N, N) (jacobian="lazy": a
    function that assembles it from this evaluation's intermediate values, for solvers that first check
    convergence).

    x, q, v, om: (B, nb, ·) start-of-step state (ω body frame); force, torque: (B, nb, 3) N, N·m world
    frame; mass (nb,) kg; inertia (nb, 3, 3) kg·m² body frame; gravity (3,) m/s²; contacts: a
    collision.Contacts. Inactive candidates get the trivially satisfied constraint φ = 1 m, v_t = 0 and
    exert no impulse. prepared: `prepare(...)` of the same arguments, to skip recomputing it.
    """
    p = prepare(x, q, v, om, force, torque, mass, inertia, gravity, contacts, dt) if prepared is None else prepared
    B, nb, C = p.B, p.nb, p.C
    v2, om2, gamma, gap, beta, eta = unpack(w, nb, C)
    n, T, on, rubs = p.n, p.T, p.on, p.rubs
    zero = torch.zeros(B, 1, 3, dtype=w.dtype)
    V2, W2 = torch.cat([v2, zero], 1), torch.cat([om2, zero], 1)
    every = _Attachment(p.X, V2[:, p.rows], W2[:, p.rows], p.Rk, p.r, dt)
    P = every.p_next.unflatten(1, (4, C))
    P0 = p.p_now.unflatten(1, (4, C))
    phi = (n * (P[:, 0] - P[:, 1])).sum(-1) - p.offset
    slip = (P[:, 2] - P0[:, 2]) - (P[:, 3] - P0[:, 3])
    v_t = _mv(T, slip) / dt
    phi = torch.where(p.active, phi, torch.ones_like(phi))
    # Friction rows of inactive or frictionless (μ = 0) contacts are placeholders: no slip coupling, no
    # friction impulse, and β₀ = γ (μ_eff = 1) keeps the cone pair interior.
    v_t = v_t * rubs[..., None]
    lam_n = n * (gamma * on)[..., None]
    lam_t = _mtv(T, beta[..., 1:] * rubs[..., None])
    lam = lam_n + lam_t
    scatter = lambda a, b: torch.einsum("nc,bck->bnk", p.scatter, torch.cat([a, b], 1))  # noqa: E731
    lin_impulse = scatter(lam, lam)
    lam4 = torch.cat([lam_n, lam_n, lam_t, lam_t], 1)
    ang = every.angular_impulse(lam4).unflatten(1, (4, C))
    ang_impulse = scatter(ang[:, 0] + ang[:, 2], ang[:, 1] + ang[:, 3])

    J_om2 = _mv(p.inertia, om2)
    root2 = torch.sqrt(4.0 / dt**2 - (om2 * om2).sum(-1, keepdim=True))
    r_lin = p.mass[:, None] * v2 + p.lin0 - lin_impulse
    r_ang = 0.5 * dt * (root2 * J_om2 + torch.linalg.cross(om2, J_om2, dim=-1)) + p.ang0 - ang_impulse
    r = torch.cat([torch.cat([r_lin, r_ang], -1).reshape(B, -1), gap - phi, (eta[..., 1:] - v_t).reshape(B, -1),
                   beta[..., 0] - p.mu_eff * gamma, gamma * gap - kappa,
                   torch.cat([(beta * eta).sum(-1, keepdim=True) - kappa,
                              beta[..., :1] * eta[..., 1:] + eta[..., :1] * beta[..., 1:]], -1).reshape(B, -1)], -1)
    if not jacobian:
        return r, None

    def jac():
        return jacobian_blocks(w, p, om2, root2, J_om2, gamma, gap, beta, eta, lam4, every)
    return r, (jac if jacobian == "lazy" else jac())


def _scatter_rows(local_a, local_b, onehot_a, onehot_b):
    """Per-contact rows on the (v, ω) of side a and side b, (B, C, k, 6), placed in the columns of their
    bodies: (B, C, k, 6 nb). The ground row (index nb) has no columns (one-hot truncated)."""
    B, C, k, _ = local_a.shape
    nb = onehot_a.shape[1]
    full = local_a[:, :, :, None, :] * onehot_a[None, :, None, :, None] \
        - local_b[:, :, :, None, :] * onehot_b[None, :, None, :, None]
    return full.reshape(B, C, k, 6 * nb)


def _block_diagonal(view, blocks):
    """Write per-contact blocks (B, C, i, j) on the block diagonal of view (B, C·i, C·j) (a view of J)."""
    C, i, j = blocks.shape[1:]
    view.unflatten(1, (C, i)).unflatten(3, (C, j)).diagonal(dim1=1, dim2=3).copy_(blocks.permute(0, 2, 3, 1))


def jacobian_blocks(w, p: Prepared, om2, root2, J_om2, gamma, gap, beta, eta, lam4, every):
    """∂r/∂w (B, N, N), assembled from dense blocks (rows: dynamics, gap, slip, μ, complementarity, cone;
    columns: z, γ, s, β, η). The contact rows of the dynamics are the transposed constraint Jacobians
    (impulses act along ∂φ/∂z and ∂v_t/∂z: discrete Lagrange–d'Alembert), so both come from G_φ, G_v."""
    B, N = w.shape
    nb, C, dt, mass, inertia = p.nb, p.C, p.dt, p.mass, p.inertia
    dtype = w.dtype
    n, T = p.n.expand(B, C, 3), p.T.expand(B, C, 2, 3)
    on, rubs, mu_eff = p.on.expand(B, C), p.rubs.expand(B, C), p.mu_eff.expand(B, C)
    Jm = torch.zeros(B, N, N, dtype=dtype)
    o, rb = sizes(nb, C), row_blocks(nb, C)
    eye = torch.eye(3, dtype=dtype)
    nz = 6 * nb
    # body blocks: m I on v, ½dt ∂(DEL)/∂ω on ω, minus the contact curvature ∂²(λ·p)/∂ω² (below)
    d_rot = root2[..., None] * inertia - J_om2[..., :, None] * om2[..., None, :] / root2[..., None] \
        + _skew(om2) @ inertia - _skew(J_om2)
    body = torch.zeros(B, nb, 6, 6, dtype=dtype)
    body[..., :3, :3] = mass[:, None, None] * eye
    body[..., 3:, 3:] = 0.5 * dt * d_rot
    if C:
        onehot_a, onehot_b = p.onehot_a, p.onehot_b
        curv = every.curvature(lam4).unflatten(1, (4, C))
        on_, rub_ = on[..., None, None], rubs[..., None, None]
        curv_a = on_ * curv[:, 0] + rub_ * curv[:, 2]
        curv_b = on_ * curv[:, 1] + rub_ * curv[:, 3]
        body[..., 3:, 3:] -= torch.einsum("nc,bcij->bnij", p.scatter, torch.cat([curv_a, curv_b], 1))
        # G_φ = ∂φ/∂z (B, C, 6nb) and G_v = ∂v_t/∂z (B, 2C, 6nb); the gap and slip rows are −G.
        jac4 = every.jac_rot.unflatten(1, (4, C))

        def phi_rows(jac_rot):
            return torch.cat([dt * n, _mtv(jac_rot, n)], -1)[:, :, None] * on[..., None, None]

        def slip_rows(jac_rot):
            return torch.cat([T, _mm(T, jac_rot) / dt], -1) * rubs[..., None, None]

        G_phi = _scatter_rows(phi_rows(jac4[:, 0]), phi_rows(jac4[:, 1]), onehot_a, onehot_b)[:, :, 0]
        G_v = _scatter_rows(slip_rows(jac4[:, 2]), slip_rows(jac4[:, 3]), onehot_a, onehot_b)  # (B, C, 2, 6nb)
        g0, s0, b0, e0 = o["gamma"][0], o["gap"][0], o["beta"][0], o["eta"][0]
        Jm[:, :nz, g0:g0 + C] = -G_phi.transpose(1, 2) / dt
        Jm[:, :nz, b0:b0 + 3 * C].unflatten(2, (C, 3))[..., 1:] = -G_v.permute(0, 3, 1, 2)
        gr, sr, mr, cr, kr = rb["gap"][0], rb["slip"][0], rb["mu"][0], rb["comp"][0], rb["cone"][0]
        Jm[:, gr:gr + C, :nz] = -G_phi
        Jm[:, sr:sr + 2 * C, :nz] = -G_v.reshape(B, 2 * C, nz)
        Jm[:, gr:gr + C, s0:s0 + C].diagonal(dim1=1, dim2=2).fill_(1.0)
        Jm[:, sr:sr + 2 * C, e0:e0 + 3 * C].unflatten(1, (C, 2)).unflatten(3, (C, 3)) \
            .diagonal(dim1=1, dim2=3)[:, :, 1:].copy_(eye[:2, :2, None])
        Jm[:, mr:mr + C, b0:b0 + 3 * C].unflatten(2, (C, 3)).diagonal(dim1=1, dim2=2)[:, 0].fill_(1.0)
        Jm[:, mr:mr + C, g0:g0 + C].diagonal(dim1=1, dim2=2).copy_(-mu_eff)
        Jm[:, cr:cr + C, g0:g0 + C].diagonal(dim1=1, dim2=2).copy_(gap)
        Jm[:, cr:cr + C, s0:s0 + C].diagonal(dim1=1, dim2=2).copy_(gamma)
        _block_diagonal(Jm[:, kr:kr + 3 * C, b0:b0 + 3 * C], arrow(eta))
        _block_diagonal(Jm[:, kr:kr + 3 * C, e0:e0 + 3 * C], arrow(beta))
    if nb:
        _block_diagonal(Jm[:, :nz, :nz], body)
    return Jm


def arrow(x):
    """Arrow matrix of the Jordan product: x ∘ y = Arrow(x) y. (…, 3) → (…, 3, 3)."""
    return (x @ _ARROW_MAP.to(x.dtype)).unflatten(-1, (3, 3))


def angular_momentum(q, om, inertia, dt):
    """Discrete spatial angular momentum about the centre of mass, world frame (…, 3) kg·m²/s.

    π_k = R(q_k) (w J ω − u × J ω) with ℓ(ω_k) = (w, u) and ω_k the step that reached q_k: the quantity
    the variational integrator conserves exactly in free flight (discrete Noether theorem); → R J ω as
    dt → 0.
    """
    ell = quat.step_rotation(om, dt)
    J_om = (inertia @ om[..., None])[..., 0]
    body = ell[..., :1] * J_om - torch.linalg.cross(ell[..., 1:], J_om, dim=-1)
    return (quat.to_matrix(q) @ body[..., None])[..., 0]
