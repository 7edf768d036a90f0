"""The baselines LFlows is compared with, on the same data and budget (the paper's §5 baselines):

- `PINN`: one MLP (x, t) → (ρ, v), ρ = ρ_ref softplus(·) ≥ 0, v = v_ref (·); continuity is only a
  penalty in its loss (train.py adds ‖∂ρ/∂t + ∇·(ρv)‖² at random collocation points), so it is satisfied
  approximately, and total mass is whatever the data and the penalty make it.
- `DensityMLP`: an MLP (x, t) → ρ with no velocity and no physics: plain regression of the density.

Both take and return what LagrangianFlow does: x (n, dim) m, t (n,) s → density (n,) kg/m^dim,
velocity (n, dim) m/s (`has_velocity` says whether there is one).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional

from .model import Normalize, check_points, mlp


class _FieldMLP(nn.Module):
    """An MLP of the normalised (x, t) with `outputs` outputs; the density's and velocity's scales are buffers."""

    def __init__(self, dim: int, outputs: int, center=None, scale=None, time_range=(0.0, 1.0),
                 density_scale: float = 1.0, velocity_scale: float = 1.0, hidden: int = 64, depth: int = 4):
        super().__init__()
        if dim not in (2, 3):
            raise ValueError(f"dim must be 2 or 3, got {dim!r}")
        self.dim = dim
        center = torch.full((dim,), 0.5) if center is None else center
        scale = torch.full((dim,), 0.5) if scale is None else scale
        self.normalize = Normalize(center, scale, time_range)
        self.net = mlp(dim + 1, hidden, outputs, depth=depth)
        self.register_buffer("density_scale", torch.tensor(float(density_scale)))
        self.register_buffer("velocity_scale", torch.tensor(float(velocity_scale)))

    def _out(self, x, t):
        check_points(x, t, self.dim)
        xn, tn = self.normalize(x, t)
        return self.net(torch.cat([xn, tn[:, None]], dim=-1))

    def density(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """ρ(x, t) (n,) kg/m^dim, positive through a softplus."""
        return self.density_scale * functional.softplus(self._out(x, t)[:, 0])


class PINN(_FieldMLP):
    """MLP (x, t) → (ρ, v); continuity enters only through the training loss's residual penalty."""

    has_velocity = True

    def __init__(self, dim: int, **kwargs):
        super().__init__(dim, 1 + dim, **kwargs)

    def velocity(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """v(x, t) (n, dim) m/s."""
        return self.velocity_scale * self._out(x, t)[:, 1:]


class DensityMLP(_FieldMLP):
    """MLP (x, t) → ρ: no velocity, no conservation."""

    has_velocity = False

    def __init__(self, dim: int, **kwargs):
        super().__init__(dim, 1, **kwargs)
