"""The domain's walls at rollout time, for GIOROM and GNS alike.

The walls are part of the scene, not something a network has to discover: learned simulators with known
geometry enforce it after each predicted step (as MPM itself does on its grid). A rollout advances its
window of positions with `advance_window`, which projects a predicted position that left the domain back
onto the wall it crossed and removes the velocity component into that wall from the window the next step
sees; points that are only carried along (GIOROM's decoded query points) are projected with
`project_positions`. Both are no-ops for points inside the domain.

The domain is the box the datasets' MPM keeps its particles in: [BOUND dx, 1 − BOUND dx] on every axis
(simcore.mpm.config.BOUND wall cells of the dataset's grid; `train.domain_bounds`), stored in each model's
configuration as `bounds`. The projection is slip and perfectly inelastic in the wall-normal direction,
like simcore's default "separate" walls on the grid: the normal velocity into the wall is removed, the
tangential one is kept.
"""

from __future__ import annotations

import torch


def domain(bounds, dim: int, like: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(lo, hi), each (dim,) m, from `bounds` = (lo, hi) with scalars (the same on every axis) or (dim,)
    sequences; in the dtype and device of `like`. Raises ValueError unless lo < hi on every axis."""
    try:
        lo, hi = bounds
        lo = torch.as_tensor(lo, dtype=torch.float64).expand(int(dim)).clone()
        hi = torch.as_tensor(hi, dtype=torch.float64).expand(int(dim)).clone()
    except (TypeError, ValueError, RuntimeError) as error:
        raise ValueError(f"bounds must be (lo, hi) in m, each a number or {dim} numbers (one per axis), got "
                         f"{bounds!r}") from error
    if not (torch.isfinite(lo).all() and torch.isfinite(hi).all() and (lo < hi).all()):
        raise ValueError(f"bounds must be finite with lo < hi on every axis (the domain's walls, m), got lo "
                         f"{lo.tolist()}, hi {hi.tolist()}; for a dataset use train.domain_bounds(dataset)")
    if like is not None:
        lo, hi = lo.to(like), hi.to(like)
    return lo, hi


def project_positions(x: torch.Tensor, bounds) -> torch.Tensor:
    """Positions x (..., d) m with every coordinate outside the domain moved onto the wall it crossed."""
    lo, hi = domain(bounds, x.shape[-1], x)
    return torch.minimum(torch.maximum(x, lo), hi)


def advance_window(history: torch.Tensor, next_x: torch.Tensor, bounds=None) -> torch.Tensor:
    """The window the next step sees: history (W + 1, n, d) m, oldest first, shifted by one frame to end
    at next_x (n, d) m.

    With `bounds` (see `domain`), a coordinate of next_x outside the domain is put onto the wall, and the
    earlier frames of that particle are shifted along that axis so that its last velocity (the one the
    next step integrates, x' = x + (x − x₋₁) + a) has no component into the wall; its earlier velocities
    are kept, so the stepper still sees how it approached. bounds=None: no projection (what the network
    alone predicts)."""
    if history.dim() != 3 or next_x.shape != history.shape[1:]:
        raise ValueError(f"history must be (W + 1, n, d) and next_x (n, d) with the same n, d; got "
                         f"{tuple(history.shape)} and {tuple(next_x.shape)}")
    window = torch.cat([history[1:], next_x[None]])
    if bounds is None:
        return window
    projected = project_positions(next_x, bounds)
    # a moved coordinate: the particle went through the wall from history[-1]; shifting its past by
    # (wall − last position) zeroes the last normal velocity and keeps every earlier difference
    shift = torch.where(projected != next_x, projected - history[-1], torch.zeros_like(next_x))
    window[:-1] += shift
    window[-1] = projected
    return window


def distance_outside(x: torch.Tensor, bounds) -> float:
    """How far, m, the point of x (..., d) farthest outside the domain lies beyond its walls (0 inside;
    inf when x holds NaN or inf)."""
    if not torch.isfinite(x).all():
        return float("inf")
    lo, hi = domain(bounds, x.shape[-1], x)
    return float(torch.clamp(torch.maximum(lo - x, x - hi), min=0).max()) if x.numel() else 0.0
