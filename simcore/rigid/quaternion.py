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
    """Rotation matrix of a unit quaternion. q: (..., 4) → (..., 3, 3); body → world.
    R = (w² − |u|²) I + 2 u uᵀ + 2 w [u]×."""
    w, u = q[..., :1, None], q[..., 1:]
    eye = _EYE.to(q.dtype)
    return (w * w - (u * u).sum(-1)[..., None, None]) * eye + 2 * u[..., :, None] * u[..., None, :] \
        + 2 * w * skew(u)


def skew(v: torch.Tensor) -> torch.Tensor:
    """Cross-product matrix [v]× (..., 3, 3) of v (..., 3): [v]×_ij = −ε_ijk v_k."""
    return (v @ _SKEW_MAP.to(v.dtype)).unflatten(-1, (3, 3))


_EYE = torch.eye(3, dtype=torch.float64)
_LEVI_CIVITA = torch.zeros(3, 3, 3, dtype=torch.float64)
_LEVI_CIVITA[0, 1, 2] = _LEVI_CIVITA[1, 2, 0] = _LEVI_CIVITA[2, 0, 1] = 1.0
_LEVI_CIVITA[0, 2, 1] = _LEVI_CIVITA[2, 1, 0] = _LEVI_CIVITA[1, 0, 2] = -1.0
_SKEW_MAP = -_LEVI_CIVITA.permute(2, 0, 1).reshape(3, 9)   # v (…, 3) @ this = [v]× flattened


def step_rotation(omega: torch.Tensor, dt: float) -> torch.Tensor:
    """ℓ(ω) = (dt/2)·(sqrt(4/dt² − |ω|²), ω): the unit quaternion that advances an orientation by one step
    with body-frame angular velocity ω, q_{k+1} = q_k ⊗ ℓ(ω_{k+1}) (Dojo, Howell et al. 2022, eq. 9;
    Manchester & Kuindersma 2016). omega: (..., 3) rad/s → (..., 4). Requires |ω|·dt < 2.
    """
    return 0.5 * dt * torch.cat([_root(omega, dt), omega], dim=-1)


def _root(omega: torch.Tensor, dt: float) -> torch.Tensor:
    """sqrt(4/dt² − |ω|²) with shape (..., 1)."""
    return torch.sqrt(4.0 / dt**2 - (omega * omega).sum(-1, keepdim=True))


def identity(shape=(), dtype=torch.float64) -> torch.Tensor:
    q = torch.zeros(tuple(shape) + (4,), dtype=dtype)
    q[..., 0] = 1.0
    return q
