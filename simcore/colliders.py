"""Analytic signed-distance colliders for MPM scenes: Plane, Box, Sphere, Cylinder.

A collider acts on the background grid: at each grid node inside it (signed distance < 0) the grid
velocity relative to the collider is projected (Coulomb friction `friction`, boundary `mode`):
    "separate": no penetration, free to separate (the velocity is changed only when moving inward);
    "slip":     the normal relative velocity is set to zero (friction acts when pressed);
    "sticky":   the relative velocity is set to zero.
A collider is static (velocity None) or kinematic: `velocity` is a constant vector (m/s) or a callable
`v(t) -> (dim,)` of time t (s); its position advances by v·dt each substep.

For `Scene.rollout`, `velocity` (a constant, or what the callable returns) and `friction` may be torch
tensors: the rollout's gradients reach them.

Geometry is packed for the kernels as `kind` (static) and `params: (8,)` (see each class).
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np

from .checks import is_tensor, vector

PLANE, BOX, SPHERE, CYLINDER = range(4)
MODES = {"separate": 0, "slip": 1, "sticky": 2}


def _positive(value, name: str) -> float:
    """A length that must be a finite number > 0 m, as a float; ValueError naming it."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not (np.isfinite(number) and number > 0):
        raise ValueError(f"{name} must be a number > 0 m, got {value!r}")
    return number


@dataclasses.dataclass
class Collider:
    kind: ClassVar[int] = -1
    friction: float = 0.0
    mode: str = "separate"
    velocity: Any = None  # None | (dim,) m/s | Callable[[float], (dim,)]
    name: str | None = None

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"{type(self).__name__}.mode={self.mode!r}: choose one of {', '.join(MODES)}")
        try:
            friction = self.friction_value
        except (TypeError, ValueError, RuntimeError):  # not a number, or a tensor of several values
            friction = float("nan")
        if not (np.isfinite(friction) and friction >= 0):
            raise ValueError(f"{type(self).__name__}.friction must be a Coulomb coefficient, a number >= 0 "
                             f"(or a scalar torch tensor), got {self.friction!r}")
        self._check_geometry()

    def _check_geometry(self) -> None:
        """Raise ValueError naming a geometry parameter that is not a number (or out of range)."""

    @property
    def friction_value(self) -> float:
        """The Coulomb friction coefficient as a float (detached if a tensor)."""
        f = self.friction
        return float(f.detach().cpu().reshape(()).item()) if is_tensor(f) else float(f)

    @property
    def mode_code(self) -> int:
        """The boundary mode as the kernels' code (MODES)."""
        return MODES[self.mode]

    @property
    def label(self):
        return self.name or type(self).__name__

    @property
    def kinematic(self) -> bool:
        return self.velocity is not None

    def velocity_at(self, t: float, dim: int) -> np.ndarray:
        """Collider velocity (dim,) m/s at time t (s)."""
        if self.velocity is None:
            return np.zeros(dim)
        value = self.velocity(t) if callable(self.velocity) else self.velocity
        return vector(value, f"{self.label}.velocity", dim)

    def velocity_path(self, times, dim: int, dtype):
        """Velocities (len(times), dim) m/s at the given times as a torch tensor, on the autograd
        graph of a tensor velocity (or of the tensors a callable returns)."""
        import torch

        if self.velocity is None:
            return torch.zeros(len(times), dim, dtype=dtype)
        if callable(self.velocity):
            rows = [torch.as_tensor(self.velocity(float(t)), dtype=dtype).reshape(-1) for t in times]
            for t, r in zip(times, rows):
                if r.shape != (dim,) or not torch.isfinite(r).all():
                    raise ValueError(f"{self.label}.velocity({float(t):.4g}) must be {dim} finite components "
                                     f"(m/s), got {r.detach().tolist()}")
            return torch.stack(rows)
        vector(self.velocity, f"{self.label}.velocity", dim)
        return torch.as_tensor(self.velocity, dtype=dtype).reshape(1, dim).expand(len(times), dim)

    def origin(self, dim: int) -> np.ndarray:
        """The reference point (dim,) m that moves with the collider."""
        raise NotImplementedError

    def pack(self, dim: int) -> np.ndarray:
        """Geometry parameters (8,) relative to the origin, read by simcore.mpm.boundary."""
        raise NotImplementedError


@dataclasses.dataclass
class Plane(Collider):
    """Half-space {x : (x − point)·normal < 0} is solid. point: (dim,) m; normal: (dim,), normalized here.
    params[:dim] = unit normal."""

    kind: ClassVar[int] = PLANE
    point: tuple = (0.0, 0.0, 0.0)
    normal: tuple = (0.0, 1.0, 0.0)

    def _check_geometry(self):
        vector(self.point, "Plane.point", unit="m")
        vector(self.normal, "Plane.normal")

    def origin(self, dim):
        return vector(self.point, "Plane.point", dim)

    def pack(self, dim):
        n = vector(self.normal, "Plane.normal", dim)
        if np.linalg.norm(n) == 0:
            raise ValueError("Plane.normal must be a non-zero vector")
        out = np.zeros(8)
        out[:dim] = n / np.linalg.norm(n)
        return out


@dataclasses.dataclass
class Box(Collider):
    """Solid axis-aligned box. center: (dim,) m; size: (dim,) m full edge lengths. params[:dim] = half size."""

    kind: ClassVar[int] = BOX
    center: tuple = (0.5, 0.5, 0.5)
    size: tuple = (0.1, 0.1, 0.1)

    def _check_geometry(self):
        vector(self.center, "collider Box.center", unit="m")
        if np.any(vector(self.size, "collider Box.size", unit="m") <= 0):
            raise ValueError(f"collider Box.size must be positive (full edge lengths, m), got {self.size!r}")

    def origin(self, dim):
        return vector(self.center, "Box.center", dim)

    def pack(self, dim):
        s = vector(self.size, "Box.size", dim)
        if np.any(s <= 0):
            raise ValueError(f"collider Box.size must be positive, got {self.size!r}")
        out = np.zeros(8)
        out[:dim] = s / 2
        return out


@dataclasses.dataclass
class Sphere(Collider):
    """Solid ball (disk in 2D). center: (dim,) m; radius: m. params[0] = radius."""

    kind: ClassVar[int] = SPHERE
    center: tuple = (0.5, 0.5, 0.5)
    radius: float = 0.1

    def _check_geometry(self):
        vector(self.center, "collider Sphere.center", unit="m")
        self.radius = _positive(self.radius, "collider Sphere.radius")

    def origin(self, dim):
        return vector(self.center, "Sphere.center", dim)

    def pack(self, dim):
        out = np.zeros(8)
        out[0] = self.radius
        return out


@dataclasses.dataclass
class Cylinder(Collider):
    """Solid finite cylinder (3D). center: (3,) m; radius, height: m; axis: (3,) direction.
    params = (axis unit vector (3), radius, height / 2)."""

    kind: ClassVar[int] = CYLINDER
    center: tuple = (0.5, 0.5, 0.5)
    radius: float = 0.1
    height: float = 0.2
    axis: tuple = (0.0, 1.0, 0.0)

    def _check_geometry(self):
        vector(self.center, "collider Cylinder.center", unit="m")
        vector(self.axis, "collider Cylinder.axis")
        self.radius = _positive(self.radius, "collider Cylinder.radius")
        self.height = _positive(self.height, "collider Cylinder.height")

    def origin(self, dim):
        if dim != 3:
            raise ValueError("collider Cylinder is 3D only; in 2D use Box")
        return vector(self.center, "Cylinder.center", 3)

    def pack(self, dim):
        self.origin(dim)
        a = vector(self.axis, "Cylinder.axis", 3)
        if np.linalg.norm(a) == 0:
            raise ValueError("collider Cylinder.axis must be a non-zero vector")
        out = np.zeros(8)
        out[:3] = a / np.linalg.norm(a)
        out[3], out[4] = self.radius, self.height / 2
        return out
