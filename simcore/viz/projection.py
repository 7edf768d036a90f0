"""The 3D camera of the splat renderer: a perspective view of the unit-cube domain from matplotlib's
(azimuth, elevation), so `camera=dict(azimuth=30, elevation=20)` looks the same way whichever renderer
draws it.

Conventions (those of mplot3d's `view_init`): in plot coordinates (X, Y, Z), where Z is the `up` data
axis, the eye sits at distance `distance` from the domain centre c = (0.5, 0.5, 0.5) in the direction
    back  = (cos e cos a, cos e sin a, sin e)      (a = azimuth, e = elevation)
and the screen's right and up directions are
    right = (−sin a, cos a, 0),   up = (−sin e cos a, −sin e sin a, cos e)
(right × up = back: a right-handed picture, never a mirror image). A point p lands at
    column = cx + focal · (p − c)·right / depth,   row = cy − focal · (p − c)·up / depth,
    depth  = distance − (p − c)·back  (m along the view axis from the eye; rows grow downwards),
in continuous pixel coordinates: pixel (row i, column j) covers [j, j + 1) × [i, i + 1).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .scenery import CUBE

DISTANCE = 3.0   # m from the eye to the domain centre: a gentle perspective for a 1 m domain
NEAR = 0.05      # m: points nearer the eye than this (or behind it) are not drawn


@dataclasses.dataclass(frozen=True)
class Projection:
    """A perspective camera looking at the domain centre.

    Attributes:
        basis: (3, 3) rows right, up, back (unit vectors, in data coordinates x, y, z).
        distance: m from the eye to the domain centre (0.5, 0.5, 0.5).
        focal: px per (m of offset / m of depth).
        center: (column, row) px where the view axis meets the image.
    """

    basis: np.ndarray
    distance: float
    focal: float
    center: tuple

    @classmethod
    def fit(cls, view, area, distance: float = DISTANCE, margin: float = 0.03) -> "Projection":
        """The camera of `view` (azimuth deg, elevation deg, plot-axis order; see
        simcore.viz.scenery.camera_view) with focal length and centre chosen so that the unit cube
        fills `area` (left, top, width, height) px less `margin` of its size on each side."""
        azimuth, elevation, order = view
        a, e = np.radians(azimuth), np.radians(elevation)
        plot_basis = np.array([[-np.sin(a), np.cos(a), 0.0],
                               [-np.sin(e) * np.cos(a), -np.sin(e) * np.sin(a), np.cos(e)],
                               [np.cos(e) * np.cos(a), np.cos(e) * np.sin(a), np.sin(e)]])
        basis = np.zeros((3, 3))
        basis[:, list(order)] = plot_basis   # plot axis k is data axis order[k]
        unit = cls(basis, float(distance), 1.0, (0.0, 0.0))
        u, w, _ = unit.project(CUBE)
        w = -w   # project's rows grow downwards; fit in "up" units
        left, top, width, height = area
        focal = min(width * (1 - 2 * margin) / np.ptp(u), height * (1 - 2 * margin) / np.ptp(w))
        center = (left + width / 2 - focal * (u.min() + u.max()) / 2,
                  top + height / 2 + focal * (w.min() + w.max()) / 2)
        return cls(basis, float(distance), float(focal), (float(center[0]), float(center[1])))

    def camera_coordinates(self, x: np.ndarray) -> np.ndarray:
        """(3, n) m: offsets of points x (n, 3) m from the domain centre along right, up and back."""
        coords = np.ascontiguousarray(np.asarray(x, dtype=np.float64).T)      # (3, n): rows contiguous
        out = np.empty_like(coords)
        # Multiply-adds in place rather than x @ basis.T: a BLAS call on an (n, 3) array costs 10-100x
        # more (thread start-up, fighting other processes for the cores), and temporaries of n
        # elements cost more than the arithmetic.
        for row, b, shift in zip(out, self.basis, 0.5 * self.basis.sum(axis=1)):
            np.multiply(coords[0], b[0], out=row)
            row += coords[1] * b[1]
            row += coords[2] * b[2]
            row -= shift
        return out

    def project(self, x: np.ndarray):
        """Points x (n, 3) m → (column (n,) px, row (n,) px, depth (n,) m); see the module docstring.
        Points not in front of the eye (depth <= NEAR) get NaN pixels."""
        column, row, depth = self.camera_coordinates(x)
        np.subtract(self.distance, depth, out=depth)
        scale = np.divide(self.focal, depth, out=np.full_like(depth, np.nan), where=depth > NEAR)
        column *= scale
        column += self.center[0]
        row *= scale
        np.subtract(self.center[1], row, out=row)
        return column, row, depth

    def depth_range(self) -> tuple[float, float]:
        """(nearest, farthest) depth (m) of the unit cube's corners: the range depth shading spans."""
        depth = self.project(CUBE)[2]
        return float(depth.min()), float(depth.max())

    def pixels_per_metre(self, depth: float | np.ndarray) -> float | np.ndarray:
        """px per m of length facing the camera at `depth` m."""
        return self.focal / depth
