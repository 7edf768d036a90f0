"""Rigid shapes: what a user adds to a World, and their mass properties.

Dynamic shapes (Sphere, Box, Capsule) carry an initial state; static shapes (Plane, Box(static=True))
only geometry. Any numeric argument may be a torch tensor with requires_grad: World.rollout then returns
gradients with respect to it (mass, inertia, size, friction, initial state). SI units throughout.
"""

from __future__ import annotations

import math

import torch

DTYPE = torch.float64


def as_tensor(value, shape, name: str) -> torch.Tensor:
    """A float64 tensor of the given shape; keeps the autograd graph of a tensor argument."""
    t = value if isinstance(value, torch.Tensor) else torch.as_tensor(value, dtype=DTYPE)
    t = t.to(DTYPE)
    if tuple(t.shape) != tuple(shape):
        try:
            t = t.expand(shape) if t.dim() == 0 else t.reshape(shape)
        except RuntimeError:
            raise ValueError(f"{name} must have shape {shape}, got {tuple(t.shape)}") from None
    if not torch.isfinite(t.detach()).all():
        raise ValueError(f"{name} must be finite, got {t.detach().tolist()}")
    return t


class Shape:
    """Common parts of every shape. friction: dimensionless Coulomb coefficient (pair rule: product);
    restitution: coefficient e in [0, 1] of Newton's impact law (pair rule: maximum; 0 = inelastic)."""

    kind = "shape"
    static = False

    def __init__(self, friction, name, restitution=0.0):
        self.friction = as_tensor(friction, (), "friction")
        if float(self.friction.detach()) < 0:
            raise ValueError(f"friction must be ≥ 0, got {float(self.friction.detach())}")
        self.restitution = as_tensor(restitution, (), "restitution")
        if not 0.0 <= float(self.restitution.detach()) <= 1.0:
            raise ValueError(f"restitution must be in [0, 1], got {float(self.restitution.detach())}")
        self.name = name
        self.index = None  # set by World.add: row in the body arrays (dynamic) or static list

    def __repr__(self):
        return f"{type(self).__name__}(name={self.name!r}, index={self.index})"


class Plane(Shape):
    """Static half-space {p : normal·(p − point) ≥ 0}. point: (3,) m; normal: (3,) (normalized here)."""

    kind = "plane"
    static = True

    def __init__(self, point=(0.0, 0.0, 0.0), normal=(0.0, 1.0, 0.0), friction=0.5, restitution=0.0, name=None):
        super().__init__(friction, name, restitution)
        self.point = as_tensor(point, (3,), "Plane point")
        n = as_tensor(normal, (3,), "Plane normal")
        if float(n.detach().norm()) < 1e-12:
            raise ValueError("Plane normal must be a nonzero vector, e.g. normal=(0, 1, 0)")
        self.normal = n / n.norm()


class Body(Shape):
    """A dynamic rigid body in maximal coordinates.

    position: (3,) m of the centre of mass; orientation: (4,) unit quaternion (w, x, y, z), body → world;
    velocity: (3,) m/s; angular_velocity: (3,) rad/s in the world frame. Mass properties come from
    `density` (kg/m³) unless `mass` (kg) is given; `inertia` (kg·m²) is a principal-axes (3,) vector or a
    body-frame (3, 3) matrix and defaults to the solid shape's inertia for that mass.
    """

    def __init__(self, *, density, mass, inertia, position, orientation, velocity, angular_velocity,
                 friction, name, static=False, restitution=0.0):
        super().__init__(friction, name, restitution)
        self.static = bool(static)
        self.position = as_tensor(position, (3,), "position")
        q = as_tensor(orientation, (4,), "orientation")
        if float(q.detach().norm()) < 1e-12:
            raise ValueError("orientation must be a nonzero quaternion (w, x, y, z), e.g. (1, 0, 0, 0)")
        self.orientation = q / q.norm()
        self.velocity = as_tensor(velocity, (3,), "velocity")
        self.angular_velocity = as_tensor(angular_velocity, (3,), "angular_velocity")
        if mass is None and density is None:
            density = 1000.0
        self._density = None if density is None else as_tensor(density, (), "density")
        self._mass = None if mass is None else as_tensor(mass, (), "mass")
        self._inertia = None if inertia is None else as_tensor(inertia, (3, 3) if _is_matrix(inertia) else (3,),
                                                               "inertia")
        if self._mass is not None and float(self._mass.detach()) <= 0:
            raise ValueError(f"mass must be > 0 kg, got {float(self._mass.detach())}")
        if self._density is not None and float(self._density.detach()) <= 0:
            raise ValueError(f"density must be > 0 kg/m³, got {float(self._density.detach())}")

    @property
    def mass(self) -> torch.Tensor:
        """kg."""
        return self._mass if self._mass is not None else self._density * self.volume()

    @property
    def inertia(self) -> torch.Tensor:
        """Body-frame inertia tensor (3, 3) kg·m²."""
        if self._inertia is None:
            return torch.diag(self.unit_inertia() * self.mass)
        return self._inertia if self._inertia.dim() == 2 else torch.diag(self._inertia)

    def volume(self) -> torch.Tensor:
        raise NotImplementedError

    def unit_inertia(self) -> torch.Tensor:
        """Principal inertia per unit mass (3,) m²."""
        raise NotImplementedError

    def size_vector(self) -> torch.Tensor:
        """Geometry as (3,) m: box half extents, (radius, 0, 0) sphere, (radius, half length, 0) capsule."""
        raise NotImplementedError


def _is_matrix(value) -> bool:
    t = value if isinstance(value, torch.Tensor) else torch.as_tensor(value)
    return t.dim() == 2


class Sphere(Body):
    """Solid sphere of `radius` m."""

    kind = "sphere"

    def __init__(self, radius, *, density=None, mass=None, inertia=None, position=(0, 0, 0),
                 orientation=(1, 0, 0, 0), velocity=(0, 0, 0), angular_velocity=(0, 0, 0), friction=1.0,
                 restitution=0.0, name=None):
        self.radius = as_tensor(radius, (), "Sphere radius")
        if float(self.radius.detach()) <= 0:
            raise ValueError(f"Sphere radius must be > 0 m, got {float(self.radius.detach())}")
        super().__init__(density=density, mass=mass, inertia=inertia, position=position,
                         orientation=orientation, velocity=velocity, angular_velocity=angular_velocity,
                         friction=friction, name=name, restitution=restitution)

    def volume(self):
        return 4.0 / 3.0 * math.pi * self.radius**3

    def unit_inertia(self):
        return (0.4 * self.radius**2).expand(3)

    def size_vector(self):
        z = torch.zeros((), dtype=DTYPE)
        return torch.stack([self.radius, z, z])


class Box(Body):
    """Solid box with full edge lengths `size` (3,) m along its body axes. static=True: a fixed obstacle
    (then only position, orientation, size and friction matter)."""

    kind = "box"

    def __init__(self, size, *, density=None, mass=None, inertia=None, position=(0, 0, 0),
                 orientation=(1, 0, 0, 0), velocity=(0, 0, 0), angular_velocity=(0, 0, 0), friction=1.0,
                 restitution=0.0, static=False, name=None):
        self.size = as_tensor(size, (3,), "Box size")
        if float(self.size.detach().min()) <= 0:
            raise ValueError(f"Box size must be > 0 m on every axis, got {self.size.detach().tolist()}")
        super().__init__(density=density, mass=mass, inertia=inertia, position=position,
                         orientation=orientation, velocity=velocity, angular_velocity=angular_velocity,
                         friction=friction, name=name, static=static, restitution=restitution)

    def volume(self):
        return self.size.prod()

    def unit_inertia(self):
        s2 = self.size**2
        return torch.stack([s2[1] + s2[2], s2[0] + s2[2], s2[0] + s2[1]]) / 12.0

    def size_vector(self):
        return 0.5 * self.size


class Capsule(Body):
    """Capsule: a cylinder of `length` m between the centres of two hemispherical caps of `radius` m,
    along the body z axis."""

    kind = "capsule"

    def __init__(self, radius, length, *, density=None, mass=None, inertia=None, position=(0, 0, 0),
                 orientation=(1, 0, 0, 0), velocity=(0, 0, 0), angular_velocity=(0, 0, 0), friction=1.0,
                 restitution=0.0, name=None):
        self.radius = as_tensor(radius, (), "Capsule radius")
        self.length = as_tensor(length, (), "Capsule length")
        if float(self.radius.detach()) <= 0 or float(self.length.detach()) < 0:
            raise ValueError(f"Capsule needs radius > 0 and length ≥ 0 m, got {float(self.radius.detach())}, "
                             f"{float(self.length.detach())}")
        super().__init__(density=density, mass=mass, inertia=inertia, position=position,
                         orientation=orientation, velocity=velocity, angular_velocity=angular_velocity,
                         friction=friction, name=name, restitution=restitution)

    def volume(self):
        r, L = self.radius, self.length
        return math.pi * r**2 * L + 4.0 / 3.0 * math.pi * r**3

    def unit_inertia(self):
        # Cylinder plus two hemispheres (parallel-axis term 3Lr/8 for a hemisphere's centroid).
        r, L = self.radius, self.length
        v_cyl, v_sph = math.pi * r**2 * L, 4.0 / 3.0 * math.pi * r**3
        f_cyl, f_sph = v_cyl / (v_cyl + v_sph), v_sph / (v_cyl + v_sph)
        axial = f_cyl * r**2 / 2 + f_sph * 0.4 * r**2
        transverse = f_cyl * (L**2 / 12 + r**2 / 4) + f_sph * (0.4 * r**2 + L**2 / 4 + 3 * L * r / 8)
        return torch.stack([transverse, transverse, axial])

    def size_vector(self):
        return torch.stack([self.radius, 0.5 * self.length, torch.zeros((), dtype=DTYPE)])
