"""3D frames drawn by the splat renderer: every particle a small shaded sphere in a z-buffer
(simcore.viz.splat), seen through the perspective camera of simcore.viz.projection, with the domain's
edges and the colliders' outlines drawn into the same z-buffer (so particles hide what is behind them),
and the legend or colour bar, title and axis directions drawn once by matplotlib and laid over every
frame. A frame of 250k particles takes tens of milliseconds, where an mplot3d scatter takes seconds
(benchmarks/render_bench.py).

Shading is a brightness factor in (0, 1] that multiplies the particle's colour, so colours keep their
hue (a body's colour, a speed's place on the colour map):
    brightness = (AMBIENT + (1 − AMBIENT) · max(0, n·LIGHT))   Lambert, n the normal at the pixel
               · (1 − DEPTH_FADE · s)                           s = 0 at the domain's nearest corner,
                                                                1 at its farthest
               · (1 − OCCLUSION · o)                            o in [0, 1]: how far the pixel lies
                                                                behind the mean depth around it
n is the normal of the visible surface (from the smoothed depth image, so the faces of a body shade
apart), mixed with each sphere's own normal when the spheres are large enough on screen to show their
shape (up to SPHERE_SHADING of it). The last factor is a screen-space ambient occlusion: creases, and
surfaces just behind a nearer one, are darker.
"""

from __future__ import annotations

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties, findfont
from PIL import Image, ImageDraw, ImageFont
from scipy.ndimage import uniform_filter

from .figure import DPI, frame_interval, layout, particle_spacing, time_label
from .projection import Projection
from .scenery import COLLIDER_EDGE, collider_displacement, collider_lines_3d, domain_lines_3d
from .splat import DepthBuffer

DOMAIN_EDGE = (0.7, 0.7, 0.7)       # the unit cube's edges
BACKGROUND = 255                     # white, as the matplotlib figures
LIGHT = np.array([-0.35, 0.55, 0.76]) / np.linalg.norm([-0.35, 0.55, 0.76])  # camera right, up, back
AMBIENT = 0.45
DEPTH_FADE = 0.3
OCCLUSION = 0.55
SPHERE_SHADING = 0.5    # at most this much of the shading comes from each sphere's own normal
SPLAT_RADIUS = 0.65     # default sphere radius, in particle spacings (0.5 touches; more fills gaps)
LINE_SAMPLE_PX = 0.6    # distance between the dots that draw a line (px)


class SplatFrames:
    """Frames of a 3D trajectory; `image(i)` returns frame i as (height, width, 3) uint8.

    Args:
        traj: the trajectory (x: (frames + 1, n, 3) m).
        size: (width, height) px.
        view: (azimuth deg, elevation deg, plot-axis order) from simcore.viz.scenery.camera_view.
        coloring: simcore.viz.colors.Categorical or Speed.
        colliders: simcore.colliders objects, drawn as outlines where the scene had them.
        point_size: matplotlib marker area (points²): the sphere's diameter √point_size pt at the
            domain centre's depth; None: SPLAT_RADIUS particle spacings.
        title: drawn at the top.
    """

    def __init__(self, traj, size, view, coloring, colliders, point_size, title):
        self.traj, self.coloring, self.colliders = traj, coloring, colliders
        self.width, self.height = size
        box = layout(size, three_d=True)
        side = int(round(box.side))
        left = int(round(box.rect[0] * self.width))
        top = int(round(self.height - (box.rect[1] + box.rect[3]) * self.height))
        top = min(max(top, 0), self.height - side)
        self.area = (slice(top, top + side), slice(left, left + side))
        self.side = side
        self.projection = Projection.fit(view, (0, 0, side, side))
        self.near, self.far = self.projection.depth_range()
        self.buffer = DepthBuffer(side, side, max_depth=2 * self.projection.distance)
        scale = self.projection.pixels_per_metre(self.projection.distance)
        if point_size is None:
            self.radius = SPLAT_RADIUS * particle_spacing(traj)                       # m
        else:
            self.radius = 0.5 * np.sqrt(point_size) * (DPI / 72) / scale
        self.line_radius = 0.5 * max(1.0, self.height / 480) - 0.5                   # px: 1 px at 480
        self.line_colors = np.array([DOMAIN_EDGE, COLLIDER_EDGE[:3]])
        self.offsets = [collider_displacement(c, traj) for c in colliders]
        self.frame_dt = frame_interval(traj)
        self.overlay = _Overlay(size, box, view, coloring, title, self.projection, self.area)
        self.font = ImageFont.truetype(findfont(FontProperties(family="monospace")),
                                       max(8, round(box.fontsize * DPI / 72)))

    def image(self, i: int) -> np.ndarray:
        image = np.full((self.height, self.width, 3), BACKGROUND, dtype=np.uint8)
        image[self.area] = self.render_view(i)
        self.overlay.apply(image)
        self._draw_time(image, time_label(float(self.traj.t[i]), self.frame_dt))
        return image

    def render_view(self, i: int) -> np.ndarray:
        """The plot area of frame i: (side, side, 3) uint8."""
        x = self.traj.x[i]
        n = len(x)
        column, row, depth = self.projection.project(x)
        radius_px = self.radius * self.projection.pixels_per_metre(np.maximum(depth, 1e-6))
        self.buffer.clear()
        self.buffer.discs(column, row, depth, radius_px, np.arange(n), bulge=self.radius)
        self._draw_lines(i, n)
        pixels, ids, depth_px = self.buffer.resolve()
        view = np.full((self.side * self.side, 3), BACKGROUND, dtype=np.uint8)
        is_particle = ids < n
        lines = ~is_particle
        view[pixels[lines]] = np.rint(self.line_colors[ids[lines] - n] * 255).astype(np.uint8)
        p_pixels, p = pixels[is_particle], ids[is_particle]
        rgb = self.coloring.rgba(i, p)[:, :3]
        brightness = self._brightness(p_pixels, depth_px[is_particle], column[p], row[p], radius_px[p])
        view[p_pixels] = np.rint(rgb * (255 * brightness)[:, None]).astype(np.uint8)
        return view.reshape(self.side, self.side, 3)

    def _brightness(self, pixels, depth, column, row, radius_px) -> np.ndarray:
        """(k,) factor in (0, 1] for the particle pixels `pixels` (flat view indices) at depth (k,) m
        whose particles are centred at (column, row) px with radius radius_px (k,)."""
        if not len(pixels):
            return np.zeros(0)
        surface = _SurfaceDepth(pixels, depth, self.side)
        r = float(np.median(radius_px))
        normal = surface.normals(max(3, 2 * round(1.5 * r) + 1), self.projection.focal)
        weight = float(np.clip((r - 1) / 4, 0.0, SPHERE_SHADING))
        if weight > 0:   # spheres large enough to show their shape: mix in their own normals
            normal = (1 - weight) * normal + weight * _sphere_normals(pixels, self.side, column, row, radius_px)
            normal /= np.linalg.norm(normal, axis=1, keepdims=True)
        lambert = normal[:, 0] * LIGHT[0] + normal[:, 1] * LIGHT[1] + normal[:, 2] * LIGHT[2]   # no BLAS call
        brightness = AMBIENT + (1 - AMBIENT) * np.maximum(0.0, lambert)
        s = np.clip((depth - self.near) / (self.far - self.near), 0.0, 1.0)
        brightness *= 1 - DEPTH_FADE * s
        occlusion = np.clip((depth - surface.mean(max(5, 2 * round(3 * r) + 1))) / (3 * self.radius), 0.0, 1.0)
        return brightness * (1 - OCCLUSION * occlusion)

    def _draw_lines(self, i: int, n: int):
        """The domain's edges (id n) and the colliders' outlines (id n + 1), as dots in the z-buffer,
        a little in front of what they touch."""
        lines = [(line, 0) for line in domain_lines_3d()]
        for c, offset in zip(self.colliders, self.offsets):
            lines += [(line, 1) for line in collider_lines_3d(c, offset[i])]
        starts = np.concatenate([line[:-1] for line, _ in lines])
        ends = np.concatenate([line[1:] for line, _ in lines])
        color = np.concatenate([np.full(len(line) - 1, k) for line, k in lines])
        points, segment = sample_segments(starts, ends, self.projection, LINE_SAMPLE_PX)
        column, row, depth = self.projection.project(points)
        self.buffer.discs(column, row, depth - self.radius, self.line_radius, n + color[segment])

    def _draw_time(self, image, text):
        left, top, right, bottom = self.font.getbbox(text)
        mask = Image.new("L", (right + 2, bottom + 2), 0)
        ImageDraw.Draw(mask).text((0, 0), text, fill=255, font=self.font)
        alpha = np.asarray(mask, dtype=np.float32) / 255
        x0, y0 = int(0.01 * self.width), int(0.015 * self.height)
        region = image[y0:y0 + alpha.shape[0], x0:x0 + alpha.shape[1]]
        alpha = alpha[:region.shape[0], :region.shape[1], None]
        region[...] = np.rint(region * (1 - alpha)).astype(np.uint8)   # black text


def sample_segments(starts, ends, projection, step_px):
    """Points along segments starts[k] → ends[k] (each (m, 3) m), about step_px apart on screen:
    (points (p, 3) m, segment index (p,) of each point)."""
    c0, r0, d0 = projection.project(starts)
    c1, r1, d1 = projection.project(ends)
    length = np.hypot(c1 - c0, r1 - r0)
    length = np.where(np.isfinite(length), length, 0.0)
    count = np.clip(np.ceil(length / step_px).astype(np.int64) + 1, 2, 100_000)
    segment = np.repeat(np.arange(len(starts)), count)
    first = np.cumsum(count) - count
    t = (np.arange(count.sum()) - first[segment]) / (count[segment] - 1)
    return starts[segment] + t[:, None] * (ends - starts)[segment], segment


def _sphere_normals(pixels, side, column, row, radius_px) -> np.ndarray:
    """(k, 3) unit normals (right, up, back) of the spheres centred at (column, row) px, radius
    radius_px, at the pixels `pixels` (flat indices of a side × side image)."""
    r = np.maximum(radius_px, 0.5)
    right = ((pixels % side) + 0.5 - column) / r
    up = (row - (pixels // side) - 0.5) / r
    rho = np.maximum(1.0, np.hypot(right, up))   # pixel rounding may put a pixel beyond the rim
    right, up = right / rho, up / rho
    return np.stack([right, up, np.sqrt(np.maximum(0.0, 1.0 - right**2 - up**2))], axis=1)


class _SurfaceDepth:
    """The depth of the visible particle surface (k pixels of a side × side image), smoothed over
    windows of pixels that hold particles only (a normalized convolution: the background does not
    pull a silhouette's depth away)."""

    def __init__(self, pixels, depth, side):
        self.pixels, self.depth, self.side = pixels, depth, side
        self.image = np.zeros((side, side), dtype=np.float32)
        self.image.reshape(-1)[pixels] = depth
        self.covered = np.zeros((side, side), dtype=np.float32)
        self.covered.reshape(-1)[pixels] = 1.0

    def smoothed(self, window: int) -> np.ndarray:
        """(side, side) m: mean depth of the covered pixels in each window × window square."""
        total = uniform_filter(self.image, size=window, mode="constant")
        count = uniform_filter(self.covered, size=window, mode="constant")
        return total / np.maximum(count, 1e-6)

    def mean(self, window: int) -> np.ndarray:
        """(k,) m: the smoothed depth at the surface's pixels."""
        return self.smoothed(window).reshape(-1)[self.pixels]

    def normals(self, window: int, focal: float) -> np.ndarray:
        """(k, 3) unit normals (right, up, back) of the smoothed surface: a surface whose depth D
        grows to the right faces right, n ∝ (∂D/∂u, ∂D/∂w, 1) with u, w m along right and up
        (1 px = depth / focal m there)."""
        d_row, d_col = np.gradient(self.smoothed(window))
        per_metre = focal / np.maximum(self.depth, 1e-6)        # px per m at each pixel
        slope_right = d_col.reshape(-1)[self.pixels] * per_metre
        slope_up = -d_row.reshape(-1)[self.pixels] * per_metre
        normal = np.stack([slope_right, slope_up, np.ones_like(slope_up)], axis=1)
        return normal / np.linalg.norm(normal, axis=1, keepdims=True)


class _Overlay:
    """What stays the same in every frame, drawn once by matplotlib on a transparent figure: the legend
    or colour bar, the title and the axis directions; `apply(image)` lays it over a frame."""

    def __init__(self, size, box, view, coloring, title, projection, area):
        width, height = size
        fig = Figure(figsize=(width / DPI, height / DPI), dpi=DPI)
        fig.patch.set_alpha(0.0)
        canvas = FigureCanvasAgg(fig)
        ax = fig.add_axes(box.rect)
        ax.set_axis_off()
        coloring.decorate(fig, ax, box.cax_rect, box.fontsize)
        if title:
            fig.suptitle(title, fontsize=box.fontsize * 1.2)
        self._axis_directions(fig, box, view, projection)
        canvas.draw()
        rgba = np.asarray(canvas.buffer_rgba()).reshape(-1, 4)
        self.pixels = np.flatnonzero(rgba[:, 3] > 0)
        self.alpha = rgba[self.pixels, 3:].astype(np.float32) / 255
        self.color = rgba[self.pixels, :3].astype(np.float32) * self.alpha     # premultiplied

    @staticmethod
    def _axis_directions(fig, box, view, projection):
        """Three short arrows in the bottom-left corner of the plot area: where x, y and z point."""
        side = 0.13 * box.rect[3]
        ax = fig.add_axes([box.rect[0], box.rect[1], side * fig.get_figheight() / fig.get_figwidth(), side])
        ax.set_axis_off()
        ax.set(xlim=(-1.45, 1.45), ylim=(-1.45, 1.45))
        for k, name in enumerate("xyz"):
            u, w = projection.basis[0, k], projection.basis[1, k]
            ax.annotate("", xy=(u, w), xytext=(0, 0),
                        arrowprops=dict(arrowstyle="-|>", color="0.3", lw=1.0, shrinkA=0, shrinkB=0))
            ax.text(1.3 * u, 1.3 * w, name, ha="center", va="center", fontsize=box.fontsize * 0.8, color="0.2")

    def apply(self, image):
        flat = image.reshape(-1, 3)
        flat[self.pixels] = np.rint(flat[self.pixels] * (1 - self.alpha) + self.color).astype(np.uint8)
