"""What surrounds the particles in a picture: the 3D camera's choice of view, and the colliders (2D
filled shapes, 3D outlines) where the scene had them at each frame."""

from __future__ import annotations

import numpy as np
from matplotlib.patches import Circle, Polygon, Rectangle

from ..colliders import Box, Collider, Cylinder, Plane, Sphere
from ..mpm.kinematics import collider_paths

COLLIDER_FACE = (0.75, 0.75, 0.75, 1.0)   # opaque light grey, drawn under the particles
COLLIDER_EDGE = (0.35, 0.35, 0.35, 1.0)
CAMERA_DEFAULTS = {"azimuth": 30.0, "elevation": 20.0, "up": None}
# Plot axes (X, Y, Z) ← data axes: a cyclic permutation (keeps the picture right-handed) that puts the
# `up` axis on the plot's vertical.
AXIS_ORDER = {"x": (1, 2, 0), "y": (2, 0, 1), "z": (0, 1, 2)}


# ----------------------------------------------------------------------------------------------
# Camera
# ----------------------------------------------------------------------------------------------
def camera_view(traj, camera: dict | None):
    """None in 2D; in 3D (azimuth deg, elevation deg, plot-axis order) from `camera`
    (dict(azimuth=30, elevation=20, up=None); see simcore.viz.render)."""
    if traj.dim == 2:
        if camera is not None:
            raise ValueError("camera applies to 3D trajectories; a 2D trajectory is drawn in its plane")
        return None
    camera = dict(camera or {})
    unknown = set(camera) - set(CAMERA_DEFAULTS)
    if unknown:
        raise ValueError(f"unknown camera key(s) {sorted(unknown)}: use {sorted(CAMERA_DEFAULTS)}, e.g. "
                         "camera=dict(azimuth=30, elevation=20)")
    camera = {**CAMERA_DEFAULTS, **camera}
    up = camera["up"] or _gravity_axis(traj)
    if up not in AXIS_ORDER:
        raise ValueError(f"camera up must be 'x', 'y' or 'z', got {up!r}")
    return float(camera["azimuth"]), float(camera["elevation"]), AXIS_ORDER[up]


def _gravity_axis(traj) -> str:
    g = np.asarray(traj.meta.get("gravity", ()), dtype=float).reshape(-1)
    if g.shape != (3,) or not np.any(g):
        return "y"
    return "xyz"[int(np.argmax(np.abs(g)))]


# ----------------------------------------------------------------------------------------------
# Colliders
# ----------------------------------------------------------------------------------------------
def check_colliders(colliders, dim) -> list[Collider]:
    """A list of simcore.colliders objects valid in `dim` dimensions, from None, one or many."""
    if colliders is None:
        return []
    colliders = [colliders] if isinstance(colliders, Collider) else list(colliders)
    for c in colliders:
        if not isinstance(c, Collider):
            raise TypeError(f"colliders must be simcore.colliders objects, got {type(c).__name__}")
        c.pack(dim)  # validates the geometry for this dimension (a Cylinder in 2D raises)
    return colliders


def collider_displacement(collider: Collider, traj) -> np.ndarray:
    """(frames + 1, dim) m displacement of a kinematic collider at each frame time, as the scene moves
    it (simcore.mpm.kinematics: origin += dt · v(t) every substep; substeps and dt from traj.meta, one
    per frame if absent). A constant velocity gives v · t exactly; a callable one is integrated over the
    substeps from traj.t[0] (a trajectory from a continued run starts it at its initial position)."""
    dim, count = traj.dim, len(traj.t)
    if collider.velocity is None:
        return np.zeros((count, dim))
    if not callable(collider.velocity):
        return traj.t[:, None] * collider.velocity_at(0.0, dim)[None]
    substeps = [int(n) for n in (traj.meta.get("substeps") or [1] * (count - 1))]
    dts = traj.meta.get("dt") or list(np.diff(traj.t))
    origins, _ = collider_paths([collider], np.zeros((1, dim)), float(traj.t[0]),
                                np.repeat(np.asarray(dts, dtype=np.float64), substeps), dim)
    return origins[np.concatenate([[0], np.cumsum(substeps)]), 0]


def collider_patch_2d(c: Collider, offset: np.ndarray):
    """A filled matplotlib patch of a 2D collider moved by `offset` (2,) m."""
    style = dict(facecolor=COLLIDER_FACE, edgecolor=COLLIDER_EDGE, linewidth=1.0, zorder=1)
    if isinstance(c, Plane):
        p, n = c.origin(2) + offset, c.pack(2)[:2]
        t = np.array([-n[1], n[0]])
        big = 4.0  # beyond the unit domain in every direction; clipped by the axes
        return Polygon([p - big * t, p + big * t, p + big * t - big * n, p - big * t - big * n], **style)
    if isinstance(c, Box):
        half = c.pack(2)[:2]
        return Rectangle(c.origin(2) + offset - half, *(2 * half), **style)
    if isinstance(c, Sphere):
        return Circle(c.origin(2) + offset, c.radius, **style)
    raise ValueError(f"cannot draw a {type(c).__name__} collider in 2D")


def _circle(center, axis, radius, samples=48) -> np.ndarray:
    """(samples + 1, 3) closed circle about unit `axis`."""
    a = np.asarray(axis, dtype=float)
    u = np.cross(a, [1.0, 0, 0] if abs(a[0]) < 0.9 else [0, 1.0, 0])
    u /= np.linalg.norm(u)
    w = np.cross(a, u)
    phi = np.linspace(0, 2 * np.pi, samples + 1)[:, None]
    return center + radius * (np.cos(phi) * u + np.sin(phi) * w)


CUBE = np.array([[i >> 2 & 1, i >> 1 & 1, i & 1] for i in range(8)], dtype=float)   # unit cube corners
CUBE_EDGES = [(i, j) for i in range(8) for j in range(i + 1, 8) if bin(i ^ j).count("1") == 1]


def _plane_outline(point, normal) -> list[np.ndarray]:
    """The polygon where the plane meets the unit cube, as one closed (k + 1, 3) line (or none)."""
    s = (CUBE - point) @ normal                               # signed distance of each cube corner
    hits = [CUBE[i] + s[i] / (s[i] - s[j]) * (CUBE[j] - CUBE[i])
            for i, j in CUBE_EDGES if s[i] * s[j] < 0 or (s[i] == 0)]
    if len(hits) < 3:
        return []
    hits = np.unique(np.round(np.array(hits), 12), axis=0)
    center = hits.mean(0)
    u = hits[0] - center
    w = np.cross(normal, u)
    order = np.argsort(np.arctan2((hits - center) @ w, (hits - center) @ u))
    loop = hits[order]
    return [np.vstack([loop, loop[:1]])]


def collider_lines_3d(c: Collider, offset: np.ndarray) -> list[np.ndarray]:
    """Outline of a 3D collider moved by `offset` (3,) m, as polylines, each (k, 3) m."""
    origin = c.origin(3) + offset
    params = c.pack(3)
    if isinstance(c, Plane):
        return _plane_outline(origin, params[:3])
    if isinstance(c, Box):
        corners = origin - params[:3] + 2 * params[:3] * CUBE
        return [corners[[i, j]] for i, j in CUBE_EDGES]
    if isinstance(c, Sphere):
        return [_circle(origin, axis, c.radius) for axis in np.eye(3)]
    if isinstance(c, Cylinder):
        axis, radius, half = params[:3], params[3], params[4]
        ends = [_circle(origin + s * half * axis, axis, radius, samples=48) for s in (-1, 1)]
        sides = [np.stack([ends[0][k], ends[1][k]]) for k in range(0, 48, 12)]
        return ends + sides
    raise ValueError(f"cannot draw a {type(c).__name__} collider")


def domain_lines_3d() -> list[np.ndarray]:
    """The 12 edges of the unit-cube domain, each (2, 3) m."""
    return [CUBE[[i, j]] for i, j in CUBE_EDGES]
