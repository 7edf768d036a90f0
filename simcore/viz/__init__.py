"""Pictures of a Trajectory: particle renders (GIF, MP4, PNG sequence) and energy plots.

    render(traj, "out/jelly.gif", color_by="speed", colliders=scene.colliders)
    plot_energy(traj, "out/energy.png")

2D trajectories and plots are matplotlib `Figure`s drawn on the Agg canvas directly, not through
pyplot: no display is needed, and the caller's pyplot backend and open figures are left alone. 3D
trajectories are drawn by default by a numpy z-buffer splat renderer (shaded spheres, perspective,
occlusion) fast enough for hundreds of thousands of particles; renderer="matplotlib" keeps the mplot3d
scatter. Every file is written atomically (to a temporary name, then renamed).

Modules: animation (render), colors (body / material / speed colours), scenery (camera choice,
collider shapes), figure (the matplotlib frame and the shared layout), projection (the 3D camera),
splat (the z-buffer), splat_frames (3D frames), writers (GIF / MP4 / PNG), energy.
"""

from .animation import RENDERERS, render
from .colors import SPEED_CMAP, Categorical, Speed, particle_colors, require_velocity
from .energy import energy, plot_energy, save_figure
from .figure import DPI, time_label
from .projection import Projection
from .scenery import (
    CAMERA_DEFAULTS,
    COLLIDER_EDGE,
    COLLIDER_FACE,
    camera_view,
    collider_displacement,
    collider_lines_3d,
)

__all__ = ["render", "RENDERERS", "plot_energy", "energy", "save_figure", "particle_colors", "require_velocity",
           "Categorical", "Speed", "SPEED_CMAP", "camera_view", "CAMERA_DEFAULTS", "Projection",
           "collider_displacement", "collider_lines_3d", "COLLIDER_FACE", "COLLIDER_EDGE", "time_label", "DPI"]
