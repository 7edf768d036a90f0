"""simcore.learned.lflows: Lagrangian flow networks (Torres et al., ICLR 2024) — densities and velocities that
satisfy the continuity equation exactly, fitted to analytic flows and to simcore's fluid and granular runs.

- model.py: `LagrangianFlow`, a time-conditioned bijection z = T(x; t) (ActNorm, conditional linear and
  affine-coupling layers with exact log-determinants); ρ = M p(T) |det ∂T/∂x|, v = −(∂T/∂x)⁻¹ ∂T/∂t.
- baselines.py: `PINN` (ρ and v with a continuity penalty) and `DensityMLP` (ρ alone).
- continuity.py: the residual ∂ρ/∂t + ∇·(ρv) of any model, by autograd.
- data.py: analytic moving Gaussian mixtures (2D, 3D) and simcore trajectories (a dam break, a sand
  collapse) as density and velocity observations with held-out regions and later times.
- train.py: one training loop for all three (`python -m simcore.learned.lflows.train`).
- evaluate.py: R², velocity error, residual and mass over time; the table in docs/lflows.md.
"""

from .baselines import PINN, DensityMLP
from .continuity import residual
from .model import LagrangianFlow

__all__ = ["LagrangianFlow", "PINN", "DensityMLP", "residual"]
