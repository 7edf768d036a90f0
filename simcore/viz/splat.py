"""A z-buffer of splats, in numpy: discs (particles, drawn as little spheres) and dots (line samples)
are written into one buffer that keeps, per pixel, the nearest thing drawn there.

Each pixel holds one uint64 key, (quantized depth << 32) | id, and a disc is drawn by
`np.minimum.at(keys, pixels, key)` once per pixel offset of its stencil: the minimum is the nearest
surface, whatever the order things were drawn in, and its low 32 bits say what it was (a particle index,
or a line's colour). A sphere's surface is nearer the eye than its centre by b·sqrt(1 − (d/r)²) at
distance d px from its centre (r px its radius on screen, b m in space), so where two spheres overlap
the nearer surface wins pixel by pixel, as a ray tracer would draw them.
"""

from __future__ import annotations

import numpy as np

EMPTY = np.iinfo(np.uint64).max
ID_BITS = 32
ID_MASK = np.uint64((1 << ID_BITS) - 1)
MAX_RADIUS_PX = 12.0   # discs are clipped to this radius (px): the cost grows with its square


def stencil(radius_px: float) -> list[tuple[int, int, int]]:
    """The pixel offsets (d², dy, dx) within radius_px of a disc's centre pixel, nearest first."""
    reach = int(np.floor(radius_px))
    offsets = [(dx * dx + dy * dy, dy, dx) for dy in range(-reach, reach + 1) for dx in range(-reach, reach + 1)]
    return sorted(o for o in offsets if o[0] <= radius_px**2)


class DepthBuffer:
    """The nearest surface per pixel of a (height, width) image.

    Args:
        width, height: px.
        max_depth: m; depths are quantized over [0, max_depth] (2³² levels) and clipped to it.
    """

    def __init__(self, width: int, height: int, max_depth: float):
        self.width, self.height = int(width), int(height)
        self.pad = int(np.ceil(MAX_RADIUS_PX)) + 1   # a stencil never leaves the padded buffer
        self.row = self.width + 2 * self.pad
        self.keys = np.full((self.height + 2 * self.pad) * self.row, EMPTY, dtype=np.uint64)
        self.depth_scale = (2.0**ID_BITS - 1) / float(max_depth)   # quantization levels per m

    def clear(self):
        self.keys.fill(EMPTY)

    def discs(self, column, row, depth, radius_px, ids, bulge: float = 0.0):
        """Draw discs centred at (column, row) px (each (n,)) at depth (n,) m, of radius radius_px
        (scalar or (n,) px; the centre pixel is always drawn), with ids (n,) (< 2³²).

        bulge: 0 for flat discs, else the spheres' radius in m: the surface at d px from a centre
        pixel is nearer by bulge·sqrt(1 − d²/r²), r the discs' mean radius (a sphere's bulge is the
        same in m wherever it is; only its size in px changes with depth). Discs whose centre is off
        the image, or not in front of the eye (or NaN), are not drawn."""
        column, row, depth = (np.asarray(a, dtype=np.float64) for a in (column, row, depth))
        ix, iy = np.floor(column), np.floor(row)
        keep = (ix >= 0) & (ix < self.width) & (iy >= 0) & (iy < self.height) & (depth > 0)
        r2 = np.broadcast_to(np.clip(radius_px, 0.0, MAX_RADIUS_PX) ** 2, depth.shape)
        ids = np.broadcast_to(np.asarray(ids, dtype=np.uint64), depth.shape)
        if not keep.all():
            ix, iy, depth, r2, ids = ix[keep], iy[keep], depth[keep], r2[keep], ids[keep]
        if not len(depth):
            return
        offsets = stencil(np.sqrt(r2.max()))
        levels = np.array(sorted({d2 for d2, _, _ in offsets}), dtype=np.float64)
        # Order the discs by how far their stencil reaches, largest first: the discs an offset d²
        # belongs to are then a prefix, taken without a copy.
        reach = np.searchsorted(levels, r2, side="right").astype(np.int8)     # levels within the radius
        counts = np.bincount(reach, minlength=len(levels) + 1)
        if np.count_nonzero(counts) > 1:
            order = np.concatenate([np.flatnonzero(reach == k) for k in range(len(counts) - 1, -1, -1)
                                    if counts[k]])
            ix, iy, depth, ids = ix[order], iy[order], depth[order], ids[order]
        within = np.cumsum(counts[::-1])[::-1]                                # within[k]: reach >= k
        iy *= self.row
        iy += ix
        iy += self.pad * self.row + self.pad
        base = iy.astype(np.int64)
        depth *= self.depth_scale
        np.minimum(depth, 2.0**ID_BITS - 1, out=depth)
        level = depth.astype(np.uint64)
        key = np.left_shift(level, np.uint64(ID_BITS), out=level)
        key |= ids
        r2_typical = max(float(r2.mean()), 0.25)
        lift_max = int(key.min() >> np.uint64(ID_BITS))  # keeps key − lift from wrapping below depth 0
        pixel, drawn = np.empty_like(base), np.empty_like(key)
        for d2, dy, dx in offsets:
            count = int(within[int(np.searchsorted(levels, d2)) + 1])
            lift = min(int(bulge * np.sqrt(max(0.0, 1.0 - d2 / r2_typical)) * self.depth_scale), lift_max)
            np.add(base[:count], dy * self.row + dx, out=pixel[:count])
            np.subtract(key[:count], np.uint64(lift << ID_BITS), out=drawn[:count])
            np.minimum.at(self.keys, pixel[:count], drawn[:count])

    def resolve(self):
        """What is visible: (pixels (k,) flat indices into the (height, width) image, ids (k,) int64,
        depth (k,) m) of every pixel something was drawn on."""
        inner = self.keys.reshape(-1, self.row)[self.pad:self.pad + self.height, self.pad:self.pad + self.width]
        inner = inner.reshape(-1)
        pixels = np.flatnonzero(inner != EMPTY)
        hit = inner[pixels]
        ids = (hit & ID_MASK).astype(np.int64)
        depth = (hit >> np.uint64(ID_BITS)).astype(np.float64) / self.depth_scale
        return pixels, ids, depth
