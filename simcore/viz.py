"""Pictures of a Trajectory: particle renders (GIF, MP4, PNG sequence) and energy plots.

    render(traj, "out/jelly.gif", color_by="speed", colliders=scene.colliders)
    plot_energy(traj, "out/energy.png")

Figures are matplotlib `Figure`s drawn on the Agg canvas directly, not through pyplot: no display is
needed, and the caller's pyplot backend and open figures are left alone. Every file is written
atomically (to a temporary name, then renamed).
"""

from __future__ import annotations

import math
import numbers
from pathlib import Path

import imageio.v3 as iio
import imageio_ffmpeg
import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Circle, Polygon, Rectangle

from .colliders import Box, Collider, Cylinder, Plane, Sphere
from .export import check_trajectory, select_frames
from .io import atomic_path, atomic_write
from .mpm.kinematics import collider_paths
from .trajectory import Trajectory

DPI = 100
COLLIDER_FACE = (0.75, 0.75, 0.75, 1.0)   # opaque light grey, drawn under the particles
COLLIDER_EDGE = (0.35, 0.35, 0.35, 1.0)
SPEED_CMAP = "viridis"
CAMERA_DEFAULTS = {"azimuth": 30.0, "elevation": 20.0, "up": None}
# Plot axes (X, Y, Z) ← data axes: a cyclic permutation (keeps the picture right-handed) that puts the
# `up` axis on the plot's vertical.
_AXIS_ORDER = {"x": (1, 2, 0), "y": (2, 0, 1), "z": (0, 1, 2)}


# ----------------------------------------------------------------------------------------------
# Rendering
# ----------------------------------------------------------------------------------------------
def render(traj: Trajectory, path, color_by: str = "body", camera: dict | None = None, colliders=None,
           frames=None, fps: float = 30, size=(640, 480), point_size: float | None = None,
           title: str | None = None) -> Path:
    """Draw the particles of each frame and write an animation or image sequence.

    Args:
        traj: the trajectory (x: (frames + 1, n, dim) m in the unit domain [0, 1]^dim).
        path: "….gif" (animated, loops), "….mp4" (H.264; width and height must be even) or a PNG
            pattern with one integer field, e.g. "out/frame_%04d.png", filled with the trajectory frame
            index (frame_0007.png is traj.x[7]).
        color_by: "body" or "material" (one colour each, legend from traj.body_names / material_names),
            or "speed" |v| (needs traj.v; colour bar in m/s, one range for the whole trajectory).
        camera: 3D only: dict(azimuth=30, elevation=20, up=None) in degrees; `up` ("x", "y" or "z") is
            the data axis drawn vertically, by default the axis gravity (traj.meta["gravity"]) is
            mostly along, else "y". Axes are fixed to [0, 1]^3 so frames do not jump.
        colliders: simcore.colliders objects to draw (e.g. scene.colliders): in 2D filled shapes (a
            Plane's solid side, Box, Sphere), in 3D outlines (Plane ∩ domain, Box, Sphere, Cylinder).
            Kinematic ones are moved along their velocity over the recorded substeps.
        frames: trajectory frame indices to draw (see simcore.export.select_frames); None: all.
        fps: frames per second of the GIF / MP4.
        size: (width, height) pixels of each image.
        point_size: marker area (points²); None: from the particle spacing (volume^(1/dim)) so
            neighbours touch.
        title: drawn at the top.
    Returns:
        Path(path) (for a PNG pattern, the pattern).
    Raises:
        ValueError: an unsupported path, size, fps, camera or color_by, or "speed" without velocities.
    """
    check_trajectory(traj)
    kind = _output_kind(path)
    size = _check_size(size, kind)
    if not (isinstance(fps, numbers.Real) and math.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be a positive number of frames per second, got {fps!r}")
    indices = select_frames(traj, frames)
    coloring = particle_colors(traj, color_by)
    view = camera_view(traj, camera)
    colliders = _check_colliders(colliders, traj.dim)
    canvas = _FrameCanvas(traj, size, view, coloring, colliders, point_size, title)
    images = ((i, canvas.image(i)) for i in indices)
    return _WRITERS[kind](images, path, fps, size)


def _output_kind(path) -> str:
    text = str(path)
    if "%" in text:
        try:
            text % 0
        except (TypeError, ValueError):
            raise ValueError(f"PNG pattern {text!r} needs exactly one integer field such as %04d, "
                             "e.g. 'out/frame_%04d.png'") from None
        if not text.lower().endswith(".png"):
            raise ValueError(f"an image pattern must end in .png, e.g. 'out/frame_%04d.png'; got {text!r}")
        return "png"
    suffix = Path(text).suffix.lower()
    if suffix in (".gif", ".mp4"):
        return suffix[1:]
    raise ValueError(f"render writes .gif, .mp4 or a PNG pattern such as 'out/frame_%04d.png'; got {text!r}")


def _check_size(size, kind) -> tuple[int, int]:
    try:
        width, height = (int(s) for s in size)
    except (TypeError, ValueError):
        raise ValueError(f"size must be (width, height) in pixels, got {size!r}") from None
    if min(width, height) < 64 or (width, height) != tuple(size):
        raise ValueError(f"size must be two integers >= 64 pixels (width, height), got {size!r}")
    if kind == "mp4" and (width % 2 or height % 2):
        raise ValueError(f"MP4 (H.264, yuv420p) needs an even width and height, got {size!r}; "
                         f"use e.g. {(width + width % 2, height + height % 2)}")
    return width, height


def _check_colliders(colliders, dim) -> list[Collider]:
    if colliders is None:
        return []
    colliders = [colliders] if isinstance(colliders, Collider) else list(colliders)
    for c in colliders:
        if not isinstance(c, Collider):
            raise TypeError(f"colliders must be simcore.colliders objects, got {type(c).__name__}")
        c.pack(dim)  # validates the geometry for this dimension (a Cylinder in 2D raises)
    return colliders


# ----------------------------------------------------------------------------------------------
# Colours
# ----------------------------------------------------------------------------------------------
class Categorical:
    """One colour per body or material (tab10, tab20 beyond 10 categories)."""

    def __init__(self, ids: np.ndarray, names: list, what: str):
        count = int(ids.max()) + 1 if len(ids) else 0
        cmap = colormaps["tab10" if count <= 10 else "tab20" if count <= 20 else "turbo"]
        palette = cmap(np.arange(count) % cmap.N) if count <= 20 else cmap(np.linspace(0, 1, count))
        self.colors = palette[ids]                                   # (n, 4) RGBA
        self.legend = [(names[k] if k < len(names) else f"{what} {k}", palette[k]) for k in np.unique(ids)]

    def rgba(self, frame: int) -> np.ndarray:
        return self.colors

    def decorate(self, fig, ax, cax_rect, fontsize):
        handles = [Line2D([], [], ls="", marker="o", ms=fontsize * 0.8, color=c, label=name)
                   for name, c in self.legend]
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False,
                  fontsize=fontsize, borderaxespad=0.0)


class Speed:
    """|v| (m/s) through viridis, one range [0, max over every frame] so colours mean the same in every
    frame."""

    def __init__(self, v: np.ndarray):
        self.speed = np.linalg.norm(v, axis=-1)                      # (frames + 1, n) m/s
        self.norm = Normalize(0.0, max(float(np.nanmax(self.speed, initial=0.0)), 1e-12))
        self.cmap = colormaps[SPEED_CMAP]

    def rgba(self, frame: int) -> np.ndarray:
        return self.cmap(self.norm(self.speed[frame]))

    def decorate(self, fig, ax, cax_rect, fontsize):
        cbar = fig.colorbar(ScalarMappable(self.norm, self.cmap), cax=fig.add_axes(cax_rect))
        cbar.set_label("speed (m/s)", fontsize=fontsize)
        cbar.ax.tick_params(labelsize=fontsize * 0.9)


def particle_colors(traj: Trajectory, color_by: str):
    """The colouring for `color_by`: an object with rgba(frame) -> (n, 4) and decorate(...) (legend or
    colour bar)."""
    if color_by == "body":
        return Categorical(np.asarray(traj.body_id, dtype=int), traj.body_names, "body")
    if color_by == "material":
        return Categorical(np.asarray(traj.material_id, dtype=int), traj.material_names, "material")
    if color_by == "speed":
        return Speed(require_velocity(traj, "color_by='speed'"))
    raise ValueError(f"color_by must be 'body', 'material' or 'speed', got {color_by!r}")


def require_velocity(traj: Trajectory, what: str) -> np.ndarray:
    if traj.v is None:
        raise ValueError(f"{what} needs particle velocities, but this trajectory has none: run the scene "
                         "with record=('x', 'v'), e.g. scene.run(frames, record=('v',))")
    return traj.v


# ----------------------------------------------------------------------------------------------
# Camera and colliders
# ----------------------------------------------------------------------------------------------
def camera_view(traj: Trajectory, camera: dict | None):
    """None in 2D; in 3D (azimuth deg, elevation deg, plot-axis order) from `camera` (see render)."""
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
    if up not in _AXIS_ORDER:
        raise ValueError(f"camera up must be 'x', 'y' or 'z', got {up!r}")
    return float(camera["azimuth"]), float(camera["elevation"]), _AXIS_ORDER[up]


def _gravity_axis(traj) -> str:
    g = np.asarray(traj.meta.get("gravity", ()), dtype=float).reshape(-1)
    if g.shape != (3,) or not np.any(g):
        return "y"
    return "xyz"[int(np.argmax(np.abs(g)))]


def collider_displacement(collider: Collider, traj: Trajectory) -> np.ndarray:
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


def _collider_patch_2d(c: Collider, offset: np.ndarray):
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


_CUBE = np.array([[i >> 2 & 1, i >> 1 & 1, i & 1] for i in range(8)], dtype=float)
_CUBE_EDGES = [(i, j) for i in range(8) for j in range(i + 1, 8) if bin(i ^ j).count("1") == 1]


def _plane_outline(point, normal) -> list[np.ndarray]:
    """The polygon where the plane meets the unit cube, as one closed (k + 1, 3) line (or none)."""
    s = (_CUBE - point) @ normal                               # signed distance of each cube corner
    hits = [_CUBE[i] + s[i] / (s[i] - s[j]) * (_CUBE[j] - _CUBE[i])
            for i, j in _CUBE_EDGES if s[i] * s[j] < 0 or (s[i] == 0)]
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
    """Outline of a 3D collider as polylines, each (k, 3) m."""
    origin = c.origin(3) + offset
    params = c.pack(3)
    if isinstance(c, Plane):
        return _plane_outline(origin, params[:3])
    if isinstance(c, Box):
        corners = origin - params[:3] + 2 * params[:3] * _CUBE
        return [corners[[i, j]] for i, j in _CUBE_EDGES]
    if isinstance(c, Sphere):
        return [_circle(origin, axis, c.radius) for axis in np.eye(3)]
    if isinstance(c, Cylinder):
        axis, radius, half = params[:3], params[3], params[4]
        ends = [_circle(origin + s * half * axis, axis, radius, samples=48) for s in (-1, 1)]
        sides = [np.stack([ends[0][k], ends[1][k]]) for k in range(0, 48, 12)]
        return ends + sides
    raise ValueError(f"cannot draw a {type(c).__name__} collider")


# ----------------------------------------------------------------------------------------------
# One figure, redrawn per frame
# ----------------------------------------------------------------------------------------------
def time_label(t: float, frame_dt: float) -> str:
    """"t = 0.017 s", with enough decimals to tell consecutive frames apart."""
    decimals = min(9, max(2, math.ceil(-math.log10(frame_dt)) + 1)) if frame_dt > 0 else 3
    return f"t = {t:.{decimals}f} s"


class _FrameCanvas:
    """A figure laid out once (fixed axes, legend or colour bar, colliders, title); `image(i)` draws
    frame i's particles, time and moving colliders and returns the pixels (height, width, 3) uint8."""

    def __init__(self, traj, size, view, coloring, colliders, point_size, title):
        self.traj, self.view, self.coloring, self.colliders = traj, view, coloring, colliders
        width, height = size
        self.fig = Figure(figsize=(width / DPI, height / DPI), dpi=DPI)
        self.canvas = FigureCanvasAgg(self.fig)
        scale = height / 480
        self.fontsize = max(6.0, 10.0 * scale)
        # Square plot area on the left; the right margin holds the legend or colour bar. mplot3d
        # draws its cube inside the axes with its own margins, so a 3D axes takes the whole height.
        right_margin = 150 * scale
        if view is None:
            side = min(height - 85 * scale, width - 70 * scale - right_margin)
            left, bottom = 60 * scale, 45 * scale
        else:
            side = min(height, width - right_margin - 30 * scale)
            left, bottom = 30 * scale, (height - side) / 2  # room for the vertical axis label
        rect = [left / width, bottom / height, side / width, side / height]
        bar_bottom = max(bottom, 45 * scale)
        cax_rect = [(left + side + 20 * scale) / width, bar_bottom / height, 15 * scale / width,
                    (height - bar_bottom - 40 * scale) / height if view is not None else side / height]
        self.ax = self._axes(rect)
        coloring.decorate(self.fig, self.ax, cax_rect, self.fontsize)
        if title:
            self.fig.suptitle(title, fontsize=self.fontsize * 1.2)
        frame_dt = traj.meta.get("frame_dt") or (float(np.median(np.diff(traj.t))) if len(traj.t) > 1 else 0)
        self.frame_dt = float(frame_dt)
        self.offsets = [collider_displacement(c, traj) for c in colliders]
        self.point_size = point_size if point_size is not None else self._auto_point_size(side)
        self.artists = []

    def _axes(self, rect):
        fs = self.fontsize
        if self.view is None:
            ax = self.fig.add_axes(rect)
            ax.set(xlim=(0, 1), ylim=(0, 1), aspect="equal")
            ax.set_xlabel("x (m)", fontsize=fs)
            ax.set_ylabel("y (m)", fontsize=fs)
        else:
            azimuth, elevation, order = self.view
            ax = self.fig.add_axes(rect, projection="3d")
            ax.set(xlim=(0, 1), ylim=(0, 1), zlim=(0, 1))
            ax.set_box_aspect((1, 1, 1))
            ax.view_init(elev=elevation, azim=azimuth)
            for axis, data_axis in zip((ax.xaxis, ax.yaxis, ax.zaxis), order):
                axis.set_label_text(f"{'xyz'[data_axis]} (m)", fontsize=fs)
        ax.tick_params(labelsize=fs * 0.8)
        return ax

    def _auto_point_size(self, side_px) -> float:
        spacing = float(np.median(self.traj.volume)) ** (1 / self.traj.dim) if len(self.traj.volume) else 0.0
        if not spacing > 0:
            spacing = self.traj.n_particles ** (-1 / self.traj.dim)
        # mplot3d draws the unit cube at about 0.6 of the axes width at its default distance.
        diameter_pt = spacing * side_px * (72 / DPI) * (1.0 if self.view is None else 0.6)
        return float(np.clip(diameter_pt**2, 0.3, 400.0))

    def image(self, i: int) -> np.ndarray:
        for artist in self.artists:
            artist.remove()
        self.artists = self._draw_colliders(i) + self._draw_particles(i)
        self.artists.append(self.fig.text(0.01, 0.985, time_label(float(self.traj.t[i]), self.frame_dt),
                                          ha="left", va="top", fontsize=self.fontsize, family="monospace"))
        self.canvas.draw()
        return np.asarray(self.canvas.buffer_rgba())[..., :3].copy()

    def _draw_particles(self, i):
        x, colors = self.traj.x[i], self.coloring.rgba(i)
        style = dict(s=self.point_size, c=colors, linewidths=0, marker="o", zorder=2)
        if self.view is None:
            return [self.ax.scatter(x[:, 0], x[:, 1], **style)]
        order = self.view[2]
        return [self.ax.scatter(x[:, order[0]], x[:, order[1]], x[:, order[2]], depthshade=False, **style)]

    def _draw_colliders(self, i):
        artists = []
        for c, offset in zip(self.colliders, self.offsets):
            if self.view is None:
                artists.append(self.ax.add_patch(_collider_patch_2d(c, offset[i])))
                continue
            order = self.view[2]
            for line in collider_lines_3d(c, offset[i]):
                artists += self.ax.plot(line[:, order[0]], line[:, order[1]], line[:, order[2]],
                                        color=COLLIDER_EDGE, linewidth=1.2)
        return artists


# ----------------------------------------------------------------------------------------------
# Writers: each takes an iterator of (frame index, (height, width, 3) uint8 image) and writes atomically
# ----------------------------------------------------------------------------------------------
def _write_gif(images, path, fps, size) -> Path:
    path = Path(path)
    with atomic_write(path) as handle, iio.imopen(handle, "w", extension=".gif", plugin="pillow") as out:
        for _, image in images:
            # bits=8 keeps each buffered frame as a 1-byte-per-pixel palette image (pillow writes at close).
            out.write(image, duration=1000 / fps, loop=0, bits=8)
    return path


def _write_mp4(images, path, fps, size) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:  # ffmpeg writes by file name
        writer = imageio_ffmpeg.write_frames(str(tmp), size, fps=fps, codec="libx264", quality=8,
                                             macro_block_size=2, ffmpeg_log_level="error")
        writer.send(None)
        try:
            for _, image in images:
                writer.send(np.ascontiguousarray(image))
        finally:
            writer.close()
    return path


def _write_png_sequence(images, pattern, fps, size) -> Path:
    for i, image in images:
        with atomic_write(str(pattern) % i) as handle:
            iio.imwrite(handle, image, extension=".png")
    return Path(pattern)


_WRITERS = {"gif": _write_gif, "mp4": _write_mp4, "png": _write_png_sequence}


# ----------------------------------------------------------------------------------------------
# Energy
# ----------------------------------------------------------------------------------------------
def _gravity(traj: Trajectory, gravity) -> np.ndarray:
    if gravity is None:
        gravity = traj.meta.get("gravity")
        if gravity is None:
            raise ValueError("the trajectory's meta has no gravity; pass gravity=(0, -9.8) in m/s² "
                             "(one component per dimension)")
    g = np.asarray(gravity, dtype=float).reshape(-1)
    if g.shape != (traj.dim,) or not np.all(np.isfinite(g)):
        raise ValueError(f"gravity must be {traj.dim} finite numbers in m/s², got {gravity!r}")
    return g


def energy(traj: Trajectory, gravity=None) -> dict[str, np.ndarray]:
    """Per-frame energies, each (frames + 1,) J:
        kinetic   = ½ Σ_p m_p |v_p|²   (particle velocities; the APIC affine part is not included)
        potential = −Σ_p m_p g·x_p     (gravitational, zero at x = 0)
        total     = kinetic + potential (elastic strain energy is not included).
    gravity: (dim,) m/s²; default traj.meta["gravity"]. Needs traj.v."""
    v = require_velocity(traj, "energy")
    g = _gravity(traj, gravity)
    kinetic = 0.5 * np.einsum("p,fpd,fpd->f", traj.mass, v, v)
    potential = -np.einsum("p,fpd,d->f", traj.mass, traj.x, g)
    return {"kinetic": kinetic, "potential": potential, "total": kinetic + potential}


def plot_energy(traj: Trajectory, path=None, gravity=None) -> Figure:
    """Kinetic, gravitational potential and their sum (J) against time (s); see `energy`.

    Args:
        path: if given, the figure is saved there (PNG, or another format matplotlib knows by suffix).
        gravity: (dim,) m/s²; default traj.meta["gravity"].
    Returns:
        The matplotlib Figure (lines in the order kinetic, potential, total).
    """
    check_trajectory(traj)
    e = energy(traj, gravity)
    fig = Figure(figsize=(6.4, 4.0), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.plot(traj.t, e["kinetic"], label="kinetic ½Σm|v|²")
    ax.plot(traj.t, e["potential"], label="gravitational −Σm g·x")
    ax.plot(traj.t, e["total"], "k--", label="kinetic + gravitational")
    ax.set(xlabel="time (s)", ylabel="energy (J)")
    ax.legend()
    if path is not None:
        save_figure(fig, path)
    return fig


def save_figure(fig: Figure, path) -> Path:
    """Save `fig` atomically; the format comes from the suffix (PNG when there is none)."""
    path = Path(path)
    fmt = path.suffix[1:].lower() or "png"
    supported = fig.canvas.get_supported_filetypes()
    if fmt not in supported:
        raise ValueError(f"cannot save a figure as .{fmt}: use one of {', '.join('.' + k for k in supported)}")
    with atomic_write(path) as handle:
        fig.savefig(handle, format=fmt)
    return path
