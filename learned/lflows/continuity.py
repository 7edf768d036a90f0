"""The continuity equation ∂ρ/∂t + ∇·(ρv) = 0, checked on any model by autograd.

`residual(density, velocity, x, t)` takes the model's batched functions — density(x (n, dim), t (n,)) → (n,)
kg/m^dim and velocity(x, t) → (n, dim) m/s — and differentiates them point by point with forward-mode
autograd (torch.func.jacfwd under vmap): ∂ρ/∂t from ρ, ∇·(ρv) as the trace of ∂(ρv)/∂x. For a Lagrangian
flow the velocity is itself a Jacobian expression, so the divergence is a second derivative of T; it is
exact up to floating-point round-off, which is what makes the residual a test of the construction (and,
for the PINN, the quantity its penalty drives down without reaching zero).
"""

from __future__ import annotations

import torch
from torch.func import jacfwd, vmap


def residual(density, velocity, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """∂ρ/∂t + ∇·(ρv) at the points: (n,) kg/(m^dim s). density, velocity: batched callables as above;
    x (n, dim) m, t (n,) s. Differentiable with respect to the models' parameters (a PINN's penalty)."""

    def rho(xi, ti):
        return density(xi[None], ti[None])[0]

    def flux(xi, ti):
        return rho(xi, ti) * velocity(xi[None], ti[None])[0]

    def one(xi, ti):
        return jacfwd(rho, argnums=1)(xi, ti) + torch.diagonal(jacfwd(flux, argnums=0)(xi, ti)).sum()

    return vmap(one)(x, t)


def scale(density_scale: float, time_scale: float) -> float:
    """The size a residual is measured against, kg/(m^dim s): a typical density over the data's duration
    (a residual of this size would change the density by about itself over the whole time span)."""
    return float(density_scale) / float(time_scale)
