"""Geometry → particles.

A shape answers two questions: which points are inside it (`contains(x)`, x: (m, dim) m) and what box
bounds it (`bounds(dim)`). `sample` fills it with particles, either on a lattice aligned with the
simulation grid (`"lattice"`, particle volume = spacing^dim) or uniformly at random with a seed
(`"random"`, particle volume = shape volume / count). Shapes work in 2D and 3D where that makes sense
(a Sphere is a disk in 2D).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from .checks import is_tensor, vector


def _vec(value, name, dim=None, unit="m"):
    """`simcore.checks.vector`, in metres unless told."""
    return vector(value, name, dim, unit)


def _positive(value, name: str, unit: str = "m") -> float:
    """A scalar parameter that must be a finite number > 0 (`unit`), as a float; ValueError naming it."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not (math.isfinite(number) and number > 0):
        raise ValueError(f"{name} must be a number > 0 {unit}, got {value!r}")
    return number


@dataclasses.dataclass
class Shape:
    """Base class. Subclasses implement `contains`, `bounds` and `volume`."""

    def contains(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def bounds(self, dim: int) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def volume(self, dim: int) -> float:
        raise NotImplementedError

    def centroid(self, dim: int) -> np.ndarray:
        lo, hi = self.bounds(dim)
        return 0.5 * (lo + hi)

    def sample(self, dim: int, spacing: float, *, sampling: str = "lattice", seed: int = 0,
               particles_per_volume: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Particles filling the shape.

        Args:
            dim: 2 or 3.
            spacing: lattice spacing (m); particles sit at (k + 1/2)·spacing, so bodies sampled with the
                same spacing never share a particle site.
            sampling: "lattice" or "random".
            seed: for "random".
            particles_per_volume: for "random" (1/m^dim); default spacing^-dim.
        Returns:
            x: (n, dim) m, volume: (n,) m^dim.
        """
        lo, hi = self.bounds(dim)
        if sampling == "lattice":
            axes = [np.arange(math.floor(lo[a] / spacing), math.ceil(hi[a] / spacing)) * spacing + spacing / 2
                    for a in range(dim)]
            grid = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, dim)
            x = grid[self.contains(grid)]
            vol = np.full(len(x), spacing**dim)
        elif sampling == "random":
            density = particles_per_volume or spacing**-dim
            rng = np.random.default_rng(seed)
            box_volume = float(np.prod(hi - lo))
            count = int(round(self.volume(dim) * density))
            x = np.empty((0, dim))
            while len(x) < count:  # rejection sampling in the bounding box, deterministic for a seed
                batch = max(64, int(1.3 * count * box_volume / max(self.volume(dim), 1e-300)))
                trial = lo + (hi - lo) * rng.random((batch, dim))
                x = np.concatenate([x, trial[self.contains(trial)]])
            x = x[:count]
            vol = np.full(len(x), self.volume(dim) / max(count, 1))
        else:
            raise ValueError(f"unknown sampling {sampling!r}: use 'lattice' or 'random'")
        return x, vol


@dataclasses.dataclass
class Box(Shape):
    """Axis-aligned box. center: (dim,) m; size: (dim,) m, full edge lengths."""

    center: tuple = (0.5, 0.5, 0.5)
    size: tuple = (0.2, 0.2, 0.2)

    def __post_init__(self):
        if np.any(_vec(self.size, "Box.size") <= 0):
            raise ValueError(f"Box.size must be positive (full edge lengths, m), got {self.size!r}")
        _vec(self.center, "Box.center")

    def _cs(self, dim):
        return _vec(self.center, "Box.center", dim), _vec(self.size, "Box.size", dim)

    def contains(self, x):
        c, s = self._cs(x.shape[1])
        return np.all(np.abs(x - c) <= s / 2, axis=1)

    def bounds(self, dim):
        c, s = self._cs(dim)
        return c - s / 2, c + s / 2

    def volume(self, dim):
        return float(np.prod(self._cs(dim)[1]))


@dataclasses.dataclass
class Sphere(Shape):
    """Ball (a disk in 2D). center: (dim,) m; radius: m."""

    center: tuple = (0.5, 0.5, 0.5)
    radius: float = 0.1

    def __post_init__(self):
        self.radius = _positive(self.radius, "Sphere.radius")
        _vec(self.center, "Sphere.center")

    def contains(self, x):
        c = _vec(self.center, "Sphere.center", x.shape[1])
        return np.sum((x - c) ** 2, axis=1) <= self.radius**2

    def bounds(self, dim):
        c = _vec(self.center, "Sphere.center", dim)
        return c - self.radius, c + self.radius

    def volume(self, dim):
        return math.pi * self.radius**2 if dim == 2 else 4 / 3 * math.pi * self.radius**3


@dataclasses.dataclass
class Cylinder(Shape):
    """Solid circular cylinder (3D only). center: (3,) m; radius, height: m; axis: (3,) direction."""

    center: tuple = (0.5, 0.5, 0.5)
    radius: float = 0.1
    height: float = 0.2
    axis: tuple = (0.0, 1.0, 0.0)

    def __post_init__(self):
        self.radius = _positive(self.radius, "Cylinder.radius")
        self.height = _positive(self.height, "Cylinder.height")
        _vec(self.center, "Cylinder.center")
        a = _vec(self.axis, "Cylinder.axis", 3)
        if np.linalg.norm(a) == 0:
            raise ValueError("Cylinder.axis must be a non-zero vector")

    def _frame(self, dim):
        if dim != 3:
            raise ValueError("Cylinder is a 3D shape; in 2D use Box (a cylinder's cross-section)")
        a = _vec(self.axis, "Cylinder.axis", 3)
        return _vec(self.center, "Cylinder.center", 3), a / np.linalg.norm(a)

    def contains(self, x):
        c, a = self._frame(x.shape[1])
        d = x - c
        along = d @ a
        radial = np.linalg.norm(d - along[:, None] * a, axis=1)
        return (np.abs(along) <= self.height / 2) & (radial <= self.radius)

    def bounds(self, dim):
        c, a = self._frame(dim)
        # Extent of a cylinder along each world axis: h/2 |a_k| + r sqrt(1 - a_k²).
        ext = self.height / 2 * np.abs(a) + self.radius * np.sqrt(np.clip(1 - a**2, 0, None))
        return c - ext, c + ext

    def volume(self, dim):
        self._frame(dim)
        return math.pi * self.radius**2 * self.height


@dataclasses.dataclass
class Points(Shape):
    """Explicit particles. points: (n, dim) m; volume: per-particle volume (m^dim), scalar or (n,);
    default: the scene's lattice cell volume (spacing^dim).

    `points` may be a torch tensor: `Scene.rollout` then differentiates with respect to the initial
    positions (its values at add_body time are used for validation; in-place updates are read by
    each rollout)."""

    points: np.ndarray = None
    volume_per_particle: float | np.ndarray | None = None
    tensor: object = dataclasses.field(default=None, repr=False)

    def __post_init__(self):
        if is_tensor(self.points):
            self.tensor = self.points
            self.points = self.points.detach().cpu().numpy()
        try:
            pts = np.asarray(self.points, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"Points.points must be a numeric (n, 2) or (n, 3) array (m), got {self.points!r}") from None
        if pts.ndim != 2 or pts.shape[1] not in (2, 3) or len(pts) == 0:
            raise ValueError(f"Points.points must be a non-empty (n, 2) or (n, 3) array, got shape {pts.shape}")
        if not np.all(np.isfinite(pts)):
            raise ValueError("Points.points has non-finite values")
        self.points = pts

    def contains(self, x):
        raise TypeError("Points has no interior; it is sampled as given")

    def bounds(self, dim):
        return self.points.min(0), self.points.max(0)

    def volume(self, dim):
        raise TypeError("Points has no volume of its own; give volume_per_particle")

    def centroid(self, dim):
        return self.points.mean(0)

    def sample(self, dim, spacing, *, sampling="lattice", seed=0, particles_per_volume=None):
        if self.points.shape[1] != dim:
            raise ValueError(f"Points are {self.points.shape[1]}D but the scene is {dim}D")
        n = len(self.points)
        v = spacing**dim if self.volume_per_particle is None else self.volume_per_particle
        try:
            vol = np.broadcast_to(np.asarray(v, dtype=np.float64), (n,)).copy()
        except (TypeError, ValueError):
            raise ValueError(f"Points.volume_per_particle must be a number or {n} numbers > 0 (m^{dim}), "
                             f"got {v!r}") from None
        if not np.all(np.isfinite(vol) & (vol > 0)):
            raise ValueError(f"Points.volume_per_particle must be > 0 m^{dim}, got {v!r}")
        return self.points.copy(), vol


@dataclasses.dataclass
class Mesh(Shape):
    """A closed triangle mesh (3D), from a file any trimesh loader reads or a `trimesh.Trimesh`.

    The mesh is scaled by `scale` (scalar or (3,)), rotated by `rotation` ((3, 3) matrix, or (3,) XYZ
    Euler angles in degrees) about its bounding-box centre, and that centre is moved to `center` (m).
    `size`, if given, scales the mesh uniformly so its largest bounding-box edge is `size` m (applied
    instead of `scale`). The mesh must be watertight: an open mesh has no inside to fill.
    """

    source: object = None
    center: tuple = (0.5, 0.5, 0.5)
    scale: object = 1.0
    size: float | None = None
    rotation: object = None

    def __post_init__(self):
        import trimesh

        if isinstance(self.source, trimesh.Trimesh):
            mesh, label = self.source.copy(), "the given mesh"
        else:
            label = str(self.source)
            try:
                mesh = trimesh.load(self.source, force="mesh")
            except Exception as exc:  # trimesh raises many types for unreadable files
                raise ValueError(f"cannot read mesh {label}: {exc}") from None
        if not isinstance(mesh, trimesh.Trimesh) or len(mesh.faces) == 0:
            raise ValueError(f"{label} holds no triangle mesh")
        if not mesh.is_watertight:
            raise ValueError(f"mesh {label} is not watertight (it has holes or non-manifold edges), so it has "
                             "no inside to fill with particles; repair it (e.g. trimesh.repair.fill_holes, or "
                             "a mesh editor's 'make manifold'), or pass a closed mesh")
        mesh.apply_translation(-mesh.bounds.mean(axis=0))
        if self.size is not None:
            self.size = _positive(self.size, "Mesh.size")
            mesh.apply_scale(self.size / mesh.extents.max())
        else:
            scale = _vec(self.scale, "Mesh.scale", unit="")
            if scale.shape not in ((1,), (3,)) or np.any(scale <= 0):
                raise ValueError(f"Mesh.scale must be one factor or 3 factors > 0, got {self.scale!r}")
            scale = np.broadcast_to(scale, (3,))
            transform = np.diag(np.append(scale, 1.0))
            mesh.apply_transform(transform)
        if self.rotation is not None:
            try:
                R = np.asarray(self.rotation, dtype=float)
            except (TypeError, ValueError):
                R = np.zeros(0)  # reported below
            if R.shape == (3,):
                from scipy.spatial.transform import Rotation

                R = Rotation.from_euler("xyz", R, degrees=True).as_matrix()
            if R.shape != (3, 3) or not np.allclose(R @ R.T, np.eye(3), atol=1e-6):
                raise ValueError("Mesh.rotation must be a (3, 3) rotation matrix or (3,) Euler angles in degrees")
            T = np.eye(4)
            T[:3, :3] = R
            mesh.apply_transform(T)
        if mesh.volume < 0:  # inverted winding: fix so contains() is right
            mesh.invert()
        mesh.apply_translation(_vec(self.center, "Mesh.center", 3))
        self._mesh = mesh

    @property
    def mesh(self):
        """The placed trimesh.Trimesh (m)."""
        return self._mesh

    def _check_dim(self, dim):
        if dim != 3:
            raise ValueError("Mesh is a 3D shape; a 2D scene needs Box, Sphere or Points")

    def contains(self, x):
        self._check_dim(x.shape[1])
        return self._mesh.contains(x)

    def bounds(self, dim):
        self._check_dim(dim)
        return self._mesh.bounds[0].copy(), self._mesh.bounds[1].copy()

    def volume(self, dim):
        self._check_dim(dim)
        return float(self._mesh.volume)
