"""A body of a scene: its particles' initial state and material (`Body`), made from `Scene.add_body`'s
arguments (`initial_velocity`, `rigid_spin`, `actuator_groups`), and the snapshots that tell whether
anything a scene is built from has changed since (`_snapshot`, `_same`)."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from .checks import is_tensor
from .materials import Fluid, Material
from .mpm.model import check_inside
from .shapes import Shape


@dataclasses.dataclass
class Body:
    """A body added to a scene: its particles' initial state and material (read-only after adding)."""

    name: str
    shape: Shape
    material: Material
    x: np.ndarray          # (n, dim) m
    v: np.ndarray          # (n, dim) m/s
    C: np.ndarray          # (n, dim, dim) 1/s, the initial velocity gradient (APIC)
    placed_volume: np.ndarray  # (n,) m^dim, the volume each particle fills where it is placed
    params: dict           # per-particle material arrays (simcore.materials.Material.particle_parameters)
    velocity_tensor: Any = None  # the torch tensor given as velocity, if any: (dim,) or (n, dim) m/s
    actuator_group: np.ndarray | None = None  # (n,) int, −1 for passive particles
    fibre: np.ndarray | None = None           # (n, dim) unit fibre directions of actuated particles
    spin: np.ndarray | None = None            # (n, dim) m/s, the part of v given as angular_velocity
    initial_stress: str | None = None         # None | "hydrostatic" | "geostatic" | "uniaxial_stress"
    at_rest: Any = None  # the scene's simcore.initial_stress.SceneAtRest, for a stressed body

    @property
    def volume(self) -> np.ndarray:
        """(n,) m^dim: the particles' rest volumes, what the solver's masses (density × volume) and stress
        impulses use. Unstressed, the placed volumes; with an initial stress, placed volume / J: a particle
        compressed to J fills its placed volume (simcore.initial_stress)."""
        if self.at_rest is None:
            return self.placed_volume
        return self.placed_volume / self.at_rest.of(self).J

    @property
    def n_particles(self) -> int:
        return len(self.x)

    def positions_tensor(self, grid: int):
        """The torch tensor of a `shapes.Points` body given as one, checked as it is now (an optimiser
        may have moved it since add_body): the particle count the body was built with, and inside
        the domain of a `grid`-cell grid, outside its wall layer. None for other bodies.

        Raises:
            ValueError: naming the body, when the tensor no longer fits.
        """
        points = getattr(self.shape, "tensor", None)
        if points is None:
            return None
        if tuple(points.shape) != self.x.shape:
            raise ValueError(f"body {self.name!r}: its points tensor now has shape {tuple(points.shape)}, but "
                             f"the body was built with {self.x.shape}; rebuild the scene to change the "
                             "particle count")
        check_inside(self.name, points.detach().cpu().numpy().astype(np.float64), grid)
        return points

    def initial_positions(self, grid: int) -> np.ndarray:
        """(n, dim) m: where the body's particles start, as it is now (a Points tensor's current values)."""
        points = self.positions_tensor(grid)
        return self.x if points is None else points.detach().cpu().numpy().astype(np.float64)

    def initial_velocities(self) -> np.ndarray:
        """(n, dim) m/s: the body's initial velocities as they are now: a velocity tensor's current
        values (an optimiser may have updated it in place since add_body), plus the angular part."""
        if self.velocity_tensor is None:
            return self.v
        v = np.broadcast_to(self.velocity_tensor.detach().cpu().numpy().astype(np.float64), self.x.shape)
        return v + self.spin if self.spin is not None else v.copy()


def initial_velocity(dim, name, x, velocity):
    """`add_body`'s velocity argument as (n, dim) m/s for particles x (n, dim), and the tensor it was
    given as (None otherwise: a differentiable rollout reads it as a leaf)."""
    v = np.zeros_like(x)
    velocity_tensor = None
    if is_tensor(velocity):
        velocity_tensor = velocity
        velocity = velocity.detach().cpu().numpy()
        if velocity.shape == x.shape:
            velocity = (lambda values: (lambda _x: values))(velocity)
    if velocity is not None:
        if callable(velocity):
            v = np.asarray(velocity(x.copy()), dtype=np.float64)
            if v.shape != x.shape:
                raise ValueError(f"body {name!r}: velocity callable returned shape {v.shape}, expected {x.shape}")
        else:
            vel = np.asarray(velocity, dtype=np.float64).reshape(-1)
            if vel.shape != (dim,):
                raise ValueError(f"body {name!r}: velocity must have {dim} components, got {velocity!r}")
            v = np.broadcast_to(vel, x.shape).copy()
    return v, velocity_tensor


def rigid_spin(dim, name, x, volume, angular_velocity):
    """The rigid rotation ω × (x − centroid) (n, dim) m/s of `add_body`'s angular_velocity (rad/s)
    and its velocity gradient W (dim, dim) 1/s, the particles' initial APIC C."""
    omega = np.asarray(angular_velocity, dtype=np.float64).reshape(-1)
    if omega.shape != ((1,) if dim == 2 else (3,)):
        raise ValueError(f"body {name!r}: angular_velocity must be a scalar in 2D or (3,) in 3D (rad/s)")
    W = _skew(omega, dim)
    center = np.average(x, axis=0, weights=volume)
    return (x - center) @ W.T, W


def _skew(omega, dim):
    """Velocity gradient of a rigid rotation: v = ω × r  ⇒  ∇v = [ω]×."""
    if dim == 2:
        w = float(np.asarray(omega).reshape(-1)[0])
        return np.array([[0.0, -w], [w, 0.0]])
    wx, wy, wz = np.asarray(omega, dtype=float).reshape(3)
    return np.array([[0.0, -wz, wy], [wz, 0.0, -wx], [-wy, wx, 0.0]])


def actuator_groups(dim, name, material, x, actuator, fibre):
    """`add_body`'s actuator and fibre arguments as the particles' actuator groups (n,) int32 (−1: passive)
    and unit fibre directions (n, dim); (None, None) for a body without actuators."""
    if actuator is None:
        if fibre is not None:
            raise ValueError(f"body {name!r}: fibre given without actuator")
        return None, None
    groups = np.asarray(actuator(x.copy()) if callable(actuator) else np.full(len(x), actuator))
    if groups.shape != (len(x),) or not np.issubdtype(groups.dtype, np.integer) or groups.min() < -1:
        raise ValueError(f"body {name!r}: actuator must be an int >= 0 or a callable returning (n,) ints "
                         ">= -1 (-1: passive)")
    if material.kind == Fluid.kind:
        raise ValueError(f"body {name!r}: a Fluid cannot carry actuators (no fibre to pull)")
    f = np.asarray(fibre if fibre is not None else np.zeros(dim), dtype=np.float64).reshape(-1)
    if f.shape != (dim,) or not np.linalg.norm(f) > 0:
        raise ValueError(f"body {name!r}: an actuated body needs fibre=(dim,) non-zero direction")
    return groups.astype(np.int32), np.broadcast_to(f / np.linalg.norm(f), x.shape).copy()


def _snapshot(value):
    """`value` as it is now, for `_same` to compare with later: a tensor's or array's values (copied), a
    torch module with its weights' values, tuples element by element; anything else as itself."""
    if is_tensor(value):
        if hasattr(value, "state_dict"):  # a module: the same object, with the same weights
            return (value,) + tuple(_snapshot(w) for w in value.state_dict().values())
        return value.detach().cpu().numpy().copy()
    if isinstance(value, np.ndarray):
        return value.copy()
    if isinstance(value, (tuple, list)):
        return tuple(_snapshot(v) for v in value)
    return value


def _same(a, b) -> bool:
    """Whether two snapshots are equal: arrays by shape and values, tuples element by element, other
    objects by identity or ==."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.shape == b.shape
                and np.array_equal(a, b))
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if a is b:
        return True
    try:
        return type(a) is type(b) and bool(a == b)
    except (TypeError, ValueError):
        return False
