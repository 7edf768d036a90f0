"""The particle state of an MPM scene as plain host data, and the conventions its outputs follow.

A `State` is what changes during a run: per particle x, v, C, F, Jp, plus the clock and the kinematic
colliders' positions. The solver holds the state of the scene it runs in its slots; drivers keep
a State on the host between runs, so any number of scenes can share one compiled solver.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..materials import FLUID, SNOW

STATE = ("x", "v", "C", "F", "Jp")


@dataclasses.dataclass
class State:
    """x: (n, dim) m; v: (n, dim) m/s; C: (n, dim, dim) 1/s (APIC affine velocity ≈ ∇v);
    F: (n, dim, dim) elastic deformation gradient; Jp: (n,) plastic volume ratio (snow) or J (fluid),
    else 1; time: s; collider_origin: (colliders, dim) m, where each collider's reference point is."""

    x: np.ndarray
    v: np.ndarray
    C: np.ndarray
    F: np.ndarray
    Jp: np.ndarray
    time: float = 0.0
    collider_origin: np.ndarray | None = None

    @staticmethod
    def at_rest_shape(x, v, C, collider_origin=None) -> State:
        """Undeformed particles (F = I, Jp = 1) at x with velocities v and affine velocities C, time 0."""
        n, d = x.shape
        return State(x=x, v=v, C=C, F=np.broadcast_to(np.eye(d), (n, d, d)).copy(), Jp=np.ones(n),
                     collider_origin=collider_origin)

    def particles(self) -> dict[str, np.ndarray]:
        """{x, v, C, F, Jp}."""
        return {name: getattr(self, name) for name in STATE}


def output_conventions(fields: dict, kind: np.ndarray, dim: int) -> dict:
    """F and Jp as simcore reports them (`Scene.run`'s Trajectory and `Scene.rollout` alike), from the
    solver's raw state: a fluid particle keeps only J (in Jp), so its F is J^(1/d) I; a solid's Jp is 1
    unless it is snow (plastic volume ratio). Works on numpy arrays and on torch tensors (keeping the
    autograd graph); `fields` maps names to arrays with particles on their second-to-last state axis
    ((n, ...) or (frames, n, ...)); F needs Jp beside it. kind: (n,) material kind codes."""
    out = dict(fields)
    is_torch = not isinstance(next(iter(fields.values())), np.ndarray)
    if is_torch:
        import torch as xp

        mask = xp.as_tensor
    else:
        xp = np
        mask = np.asarray
    fluid = kind == FLUID
    if "F" in fields and fluid.any():
        J = fields["Jp"]
        iso = xp.where(J > 0, J, xp.zeros_like(J)) ** (1.0 / dim)
        eye = xp.eye(dim, dtype=J.dtype)
        out["F"] = xp.where(mask(fluid)[..., :, None, None], iso[..., None, None] * eye, fields["F"])
    if "Jp" in fields:
        keep = mask(fluid | (kind == SNOW))
        out["Jp"] = xp.where(keep, fields["Jp"], xp.ones_like(fields["Jp"]))
    return out
