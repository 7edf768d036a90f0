"""Kinematic colliders' paths: where each collider is, and how fast it moves, at every substep.

One integrator for every driver: `Scene.run` (numpy, frame by frame), `Scene.rollout` (torch, on the
autograd graph of tensor velocities) and the renderers. It is the rule the kernels see: a collider
moves by dt · v(t) over a substep that starts at time t (explicit Euler on its prescribed velocity).
"""

from __future__ import annotations

import numpy as np


def substep_times(t0: float, dts, xp=np):
    """Start time (s) of each substep: t0 + Σ_{j<g} dt_j. dts: (T,) s, a numpy array or torch tensor."""
    return t0 + xp.cumsum(dts, 0) - dts


def collider_paths(colliders, origin, t0: float, dts, dim: int, dtype=None):
    """Origins and velocities of `colliders` over substeps of lengths `dts`.

    Args:
        origin: (nc, dim) m, the colliders' reference points at time t0 (s).
        dts: (T,) s; numpy, or a torch tensor when `dtype` (a torch dtype) is given.
    Returns:
        origins (T + 1, nc, dim) m: at the start of each substep, then after the last one;
        velocities (T, nc, dim) m/s: during each substep. numpy float64, or torch tensors of `dtype`
        on the autograd graph of tensor velocities (a collider's `velocity` or what its callable returns).
    """
    if dtype is None:
        times = substep_times(t0, np.asarray(dts, dtype=np.float64))
        velocity = np.stack([np.stack([c.velocity_at(float(t), dim) for c in colliders]) for t in times])
        steps = np.asarray(dts)[:, None, None] * velocity
        moved = np.concatenate([np.zeros((1,) + steps.shape[1:]), np.cumsum(steps, 0)])
        return np.asarray(origin, dtype=np.float64)[None] + moved, velocity
    import torch

    times = substep_times(t0, dts, torch)
    velocity = torch.stack([c.velocity_path(times, dim, dtype) for c in colliders], 1)
    steps = dts[:, None, None] * velocity
    moved = torch.cat([torch.zeros((1,) + tuple(steps.shape[1:]), dtype=dtype), torch.cumsum(steps, 0)])
    return torch.as_tensor(origin, dtype=dtype)[None] + moved, velocity
