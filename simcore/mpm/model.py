"""The model of an MPM scene: a frozen description of everything that does not change during a run
(plain numpy, no Taichi). `simcore.Scene` builds it; the drivers (`Scene.run`, `Scene.rollout`, dataset
generators) run it on a compiled solver (simcore.mpm.cache) from a `simcore.mpm.state.State`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from .config import BOUND, Configuration


@dataclasses.dataclass(frozen=True, eq=False)
class Model:
    """Per-particle constants, walls, gravity and colliders of one scene.

    dim: 2 or 3; grid: cells per axis over [0, 1]^dim; gravity: (dim,) m/s².
    wall_modes: ((lo, hi) per axis) mode codes; wall_friction: Coulomb μ at the walls.
    Per particle, n of them: mass (n,) kg; volume (n,) m^dim; mu, lam (n,) Pa (a fluid's mu is its
    viscosity Pa·s and lam its bulk modulus); plastic (n, 3) material constants; wave_speed (n,) m/s at
    rest; kind (n,) int32 material kind codes; body_id, material_id (n,) int.
    Actuators: n_actuators groups; actuator_group (n,) int32 (−1 passive); fibre (n, dim) unit vectors.
    colliders: the simcore.colliders objects; collider_params (nc, 8) packed geometry; collider_friction
    (nc,); collider_origin (nc, dim) m at time 0.
    stress_hook: the torch stress of Neural materials (simcore.neural.NeuralStress) or None.
    extra_kinds: material kind codes compiled into the solver although no particle has them
        (`Scene(compile_materials=...)`), so that scenes with different mixes share one solver.
    transfer: "apic" or "flip" (the grid-to-particle velocity transfer, `Scene(transfer=...)`);
    flip_damping: 1/s, the FLIP blend's damping rate.
    """

    dim: int
    grid: int
    gravity: np.ndarray
    wall_modes: tuple[tuple[int, int], ...]
    wall_friction: float
    mass: np.ndarray
    volume: np.ndarray
    mu: np.ndarray
    lam: np.ndarray
    plastic: np.ndarray
    wave_speed: np.ndarray
    kind: np.ndarray
    body_id: np.ndarray
    material_id: np.ndarray
    body_names: tuple[str, ...]
    material_names: tuple[str, ...]
    n_actuators: int = 0
    actuator_group: np.ndarray | None = None
    fibre: np.ndarray | None = None
    colliders: tuple = ()
    collider_params: np.ndarray | None = None
    collider_friction: np.ndarray | None = None
    collider_origin: np.ndarray | None = None
    stress_hook: Any = None
    extra_kinds: tuple[int, ...] = ()
    transfer: str = "apic"
    flip_damping: float = 0.0

    @property
    def n_particles(self) -> int:
        return len(self.mass)

    @property
    def dx(self) -> float:
        """Grid spacing, m."""
        return 1.0 / self.grid

    @property
    def kinds(self) -> tuple[int, ...]:
        """Material kind codes the solver is compiled for, sorted: those present, and the extra ones."""
        return tuple(sorted({int(k) for k in np.unique(self.kind)} | set(self.extra_kinds)))

    @property
    def kinematic(self) -> bool:
        """Whether any collider moves."""
        return any(c.kinematic for c in self.colliders)

    def configuration(self, precision: str, arch: str, needs_grad: bool = False) -> Configuration:
        """The solver configuration that runs this model."""
        return Configuration(dim=self.dim, grid=self.grid, kinds=self.kinds, wall_modes=self.wall_modes,
                             colliders=tuple((c.kind, c.mode_code) for c in self.colliders),
                             n_actuators=self.n_actuators, precision=precision, arch=arch, needs_grad=needs_grad,
                             flip=self.transfer == "flip")

    def check_actuation(self, actuation, frames: int):
        """(frames, n_actuators) activations (Pa; numpy or torch) as given, checked; zeros when the
        model has actuators and none is given."""
        shape = (frames, self.n_actuators)
        if actuation is None:
            return np.zeros(shape)
        if self.n_actuators == 0:
            raise ValueError("actuation given but no body has an actuator (add_body(..., actuator=g, fibre=...))")
        if tuple(actuation.shape) != shape:
            raise ValueError(f"actuation must have shape (frames, actuator groups) = {shape}, got "
                             f"{tuple(actuation.shape)}")
        return actuation


def check_inside(name: str, x: np.ndarray, grid: int) -> None:
    """Raise ValueError unless every particle x: (n, dim) m of body `name` lies in the unit domain,
    outside the wall layer of a `grid`-cell grid (BOUND cells at each wall)."""
    dim, dx = x.shape[1], 1.0 / grid
    lo, hi = BOUND * dx, 1 - BOUND * dx
    outside = (x < 0) | (x > 1)
    if outside.any():
        p = int(np.argmax(outside.any(1)))
        raise ValueError(f"body {name!r} reaches outside the domain [0, 1]^{dim} (particle at "
                         f"{np.round(x[p], 4).tolist()}); move or shrink it")
    in_wall = (x < lo) | (x > hi)
    if in_wall.any():
        p = int(np.argmax(in_wall.any(1)))
        raise ValueError(f"body {name!r} overlaps the wall layer (particle at {np.round(x[p], 4).tolist()}); "
                         f"particles must lie in [{lo:.4g}, {hi:.4g}] m on every axis ({BOUND} cells "
                         f"of {dx:.4g} m at each wall); move or shrink it")
