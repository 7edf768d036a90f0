"""Step 1 of the at-rest state (simcore.initial_stress): the overburden along columns, g times the mass per
unit area resting on each particle."""

from __future__ import annotations

import numpy as np


def vertical(gravity: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """(n, across, g): the unit vertical n = −g/|g|, an orthonormal basis (d − 1, d) across it, |g|."""
    g = float(np.linalg.norm(gravity))
    n = -np.asarray(gravity, dtype=np.float64) / g
    across = np.linalg.svd(np.eye(len(n)) - np.outer(n, n))[0][:, : len(n) - 1].T
    return n, across, g


def overburden(x: np.ndarray, spacing: np.ndarray, mass: np.ndarray, gravity: np.ndarray) -> np.ndarray:
    """q (n,) Pa: g times the mass per unit area resting on each particle, half its own included.

    x: (n, dim) m; spacing: (n,) m, each particle's spacing (the width of its column); mass: (n,) kg;
    gravity: (dim,) m/s². Columns are bins of the smallest spacing across gravity; in a column, particles
    more than 1.5 spacings apart along gravity do not rest on each other (air between them)."""
    up, across, g = vertical(gravity)
    height = x @ up
    cell = np.floor(x @ across.T / spacing.min() + 0.5).astype(np.int64)
    column = np.unique(cell, axis=0, return_inverse=True)[1].reshape(-1)
    per_area = mass / spacing ** (x.shape[1] - 1)
    order = np.lexsort((-height, column))  # column by column, from the top down
    col, h, s, w = column[order], height[order], spacing[order], per_area[order]
    top = np.ones(len(order), bool)  # the first particle of each run
    top[1:] = (col[1:] != col[:-1]) | (h[:-1] - h[1:] > 1.5 * 0.5 * (s[1:] + s[:-1]))
    run_start = np.maximum.accumulate(np.where(top, np.arange(len(order)), 0))
    total = np.cumsum(w) - w  # mass per area above, over the whole sorted order
    above = total - total[run_start]
    q = np.empty(len(x))
    q[order] = g * (above + 0.5 * w)
    return q
