"""Unit quaternions (w, x, y, z) in torch: products, rotation matrices, the variational half-step.

All functions broadcast over leading dimensions: `q: (..., 4)`, `v: (..., 3)`.
"""

from __future__ import annotations

import torch


def multiply(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Hamilton product p ⊗ q. p, q: (..., 4) → (..., 4)."""
    pw, pv = p[..., :1], p[..., 1:]
    qw, qv = q[..., :1], q[..., 1:]
    w = pw * qw - (pv * qv).sum(-1, keepdim=True)
    v = pw * qv + qw * pv + torch.linalg.cross(pv, qv, dim=-1)
    return torch.cat([w, v], dim=-1)


def to_matrix(q: torch.Tensor) -> torch.Tensor:
    """Rotation matrix of a unit quaternion. q: (..., 4) → (..., 3, 3); body → world."""
    w, x, y, z = q.unbind(-1)
    rows = [
        w * w + x * x - y * y - z * z, 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), w * w - x * x + y * y - z * z, 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), w * w - x * x - y * y + z * z,
    ]
    return torch.stack(rows, -1).reshape(q.shape[:-1] + (3, 3))


def step_rotation(omega: torch.Tensor, dt: float) -> torch.Tensor:
    """ℓ(ω) = (dt/2)·(sqrt(4/dt² − |ω|²), ω): the unit quaternion that advances an orientation by one step
    with body-frame angular velocity ω, q_{k+1} = q_k ⊗ ℓ(ω_{k+1}) (Dojo, Howell et al. 2022, eq. 9;
    Manchester & Kuindersma 2016). omega: (..., 3) rad/s → (..., 4). Requires |ω|·dt < 2.
    """
    return 0.5 * dt * torch.cat([_root(omega, dt), omega], dim=-1)


def _root(omega: torch.Tensor, dt: float) -> torch.Tensor:
    """sqrt(4/dt² − |ω|²) with shape (..., 1)."""
    return torch.sqrt(4.0 / dt**2 - (omega * omega).sum(-1, keepdim=True))


def rotated_point_momentum(omega: torch.Tensor, point: torch.Tensor, impulse_body: torch.Tensor,
                           dt: float) -> torch.Tensor:
    """Gradient of impulse_bodyᵀ R(ℓ(ω)) point with respect to ω, divided by dt.

    This is the body-frame angular impulse (N·m·s) that a world impulse λ applied at a body-fixed point
    exerts in the discrete Lagrange–d'Alembert principle, with impulse_body = R_kᵀ λ. It tends to
    point × impulse_body as dt → 0. Written in closed form because λᵀR(ℓ)r = ℓᵀ Q(λ, r) ℓ is a quadratic
    form in ℓ, so the gradient is 2 (∂ℓ/∂ω)ᵀ Q ℓ. Shapes: omega, point, impulse_body: (..., 3) → (..., 3).
    """
    lam, r = impulse_body, point
    ell = step_rotation(omega, dt)
    lr = (lam * r).sum(-1, keepdim=True)
    rxl = torch.linalg.cross(r, lam, dim=-1)
    w, u = ell[..., :1], ell[..., 1:]
    # Q = [[λ·r, (r×λ)ᵀ], [r×λ, rλᵀ + λrᵀ − (λ·r) I]]
    q_w = lr * w + (rxl * u).sum(-1, keepdim=True)
    q_u = rxl * w + r * (lam * u).sum(-1, keepdim=True) + lam * (r * u).sum(-1, keepdim=True) - lr * u
    # ∂ℓ/∂ω = (dt/2)·[−ωᵀ/root; I]
    d_ell = 0.5 * dt * (q_u - omega * q_w / _root(omega, dt))
    return 2.0 * d_ell / dt


def identity(shape=(), dtype=torch.float64) -> torch.Tensor:
    q = torch.zeros(tuple(shape) + (4,), dtype=dtype)
    q[..., 0] = 1.0
    return q
