"""Particle colours for renders: one colour per body or material, or speed through a colour map."""

from __future__ import annotations

import numpy as np
from matplotlib import colormaps
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.lines import Line2D

SPEED_CMAP = "viridis"


class Categorical:
    """One colour per body or material (tab10, tab20 beyond 10 categories, turbo beyond 20)."""

    def __init__(self, ids: np.ndarray, names: list, what: str):
        count = int(ids.max()) + 1 if len(ids) else 0
        cmap = colormaps["tab10" if count <= 10 else "tab20" if count <= 20 else "turbo"]
        palette = cmap(np.arange(count) % cmap.N) if count <= 20 else cmap(np.linspace(0, 1, count))
        self.colors = palette[ids]                                   # (n, 4) RGBA
        self.legend = [(names[k] if k < len(names) else f"{what} {k}", palette[k]) for k in np.unique(ids)]

    def rgba(self, frame: int, index=None) -> np.ndarray:
        """(n, 4) RGBA in [0, 1] of every particle at `frame`, or (k, 4) of the particles `index`."""
        return self.colors if index is None else self.colors[index]

    def decorate(self, fig, ax, cax_rect, fontsize):
        """Draw the legend to the right of `ax`."""
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

    def rgba(self, frame: int, index=None) -> np.ndarray:
        """(n, 4) RGBA in [0, 1] of every particle at `frame`, or (k, 4) of the particles `index`."""
        speed = self.speed[frame] if index is None else self.speed[frame][index]
        return self.cmap(self.norm(speed))

    def decorate(self, fig, ax, cax_rect, fontsize):
        """Draw the colour bar (m/s) at `cax_rect` (figure fractions)."""
        cbar = fig.colorbar(ScalarMappable(self.norm, self.cmap), cax=fig.add_axes(cax_rect))
        cbar.set_label("speed (m/s)", fontsize=fontsize)
        cbar.ax.tick_params(labelsize=fontsize * 0.9)


def particle_colors(traj, color_by: str):
    """The colouring for `color_by`: an object with rgba(frame, index=None) -> (n, 4) and decorate(...)
    (legend or colour bar)."""
    if color_by == "body":
        return Categorical(np.asarray(traj.body_id, dtype=int), traj.body_names, "body")
    if color_by == "material":
        return Categorical(np.asarray(traj.material_id, dtype=int), traj.material_names, "material")
    if color_by == "speed":
        return Speed(require_velocity(traj, "color_by='speed'"))
    raise ValueError(f"color_by must be 'body', 'material' or 'speed', got {color_by!r}")


def require_velocity(traj, what: str) -> np.ndarray:
    """traj.v, or a ValueError saying how to record velocities."""
    if traj.v is None:
        raise ValueError(f"{what} needs particle velocities, but this trajectory has none: run the scene "
                         "with record=('x', 'v'), e.g. scene.run(frames, record=('v',))")
    return traj.v
