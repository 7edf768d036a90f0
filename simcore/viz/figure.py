"""The matplotlib frame: 2D scenes (and 3D on request, as an mplot3d scatter) drawn on one figure laid
out once and redrawn per frame; the layout is shared with the 3D splat frames so that legends and
colour bars sit in the same place whichever renderer draws the particles."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .scenery import COLLIDER_EDGE, collider_displacement, collider_lines_3d, collider_patch_2d

DPI = 100


def time_label(t: float, frame_dt: float) -> str:
    """"t = 0.017 s", with enough decimals to tell consecutive frames apart."""
    decimals = min(9, max(2, math.ceil(-math.log10(frame_dt)) + 1)) if frame_dt > 0 else 3
    return f"t = {t:.{decimals}f} s"


def frame_interval(traj) -> float:
    """The time between frames (s): traj.meta["frame_dt"], else the median step of traj.t, else 0."""
    frame_dt = traj.meta.get("frame_dt") or (float(np.median(np.diff(traj.t))) if len(traj.t) > 1 else 0)
    return float(frame_dt)


@dataclasses.dataclass(frozen=True)
class Layout:
    """Where things go in a (width, height) px picture: the square plot area and the colour bar, as
    matplotlib figure fractions [left, bottom, width, height]; `side` px is the plot area's side."""

    rect: list
    cax_rect: list
    side: float
    fontsize: float


def layout(size, three_d: bool) -> Layout:
    """A square plot area on the left; the right margin holds the legend or colour bar. A 2D plot
    leaves room for tick labels; a 3D one takes the whole height (mplot3d draws its cube with its own
    margins, the splat renderer has no ticks)."""
    width, height = size
    scale = height / 480
    right_margin = 150 * scale
    if not three_d:
        side = min(height - 85 * scale, width - 70 * scale - right_margin)
        left, bottom = 60 * scale, 45 * scale
    else:
        side = min(height, width - right_margin - 30 * scale)
        left, bottom = 30 * scale, (height - side) / 2  # room for the vertical axis label
    rect = [left / width, bottom / height, side / width, side / height]
    bar_bottom = max(bottom, 45 * scale)
    cax_rect = [(left + side + 20 * scale) / width, bar_bottom / height, 15 * scale / width,
                (height - bar_bottom - 40 * scale) / height if three_d else side / height]
    return Layout(rect, cax_rect, side, max(6.0, 10.0 * scale))


class FigureFrames:
    """A figure laid out once (fixed axes, legend or colour bar, colliders, title); `image(i)` draws
    frame i's particles, time and moving colliders and returns the pixels (height, width, 3) uint8.
    `view` is None in 2D, else simcore.viz.scenery.camera_view's (azimuth, elevation, axis order)."""

    def __init__(self, traj, size, view, coloring, colliders, point_size, title):
        self.traj, self.view, self.coloring, self.colliders = traj, view, coloring, colliders
        width, height = size
        self.fig = Figure(figsize=(width / DPI, height / DPI), dpi=DPI)
        self.canvas = FigureCanvasAgg(self.fig)
        box = layout(size, view is not None)
        self.fontsize = box.fontsize
        self.ax = self._axes(box.rect)
        coloring.decorate(self.fig, self.ax, box.cax_rect, self.fontsize)
        if title:
            self.fig.suptitle(title, fontsize=self.fontsize * 1.2)
        self.frame_dt = frame_interval(traj)
        self.offsets = [collider_displacement(c, traj) for c in colliders]
        self.point_size = point_size if point_size is not None else self._auto_point_size(box.side)
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
        spacing = particle_spacing(self.traj)
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
                artists.append(self.ax.add_patch(collider_patch_2d(c, offset[i])))
                continue
            order = self.view[2]
            for line in collider_lines_3d(c, offset[i]):
                artists += self.ax.plot(line[:, order[0]], line[:, order[1]], line[:, order[2]],
                                        color=COLLIDER_EDGE, linewidth=1.2)
        return artists


def particle_spacing(traj) -> float:
    """Typical distance between neighbouring particles (m): the median rest volume^(1/dim), else the
    spacing of n particles filling the unit domain."""
    spacing = float(np.median(traj.volume)) ** (1 / traj.dim) if len(traj.volume) else 0.0
    if not spacing > 0:
        spacing = traj.n_particles ** (-1 / traj.dim)
    return spacing
