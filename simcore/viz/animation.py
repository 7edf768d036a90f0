"""render(): a trajectory's frames drawn and written as a GIF, an MP4 or numbered PNGs."""

from __future__ import annotations

import math
import numbers
from pathlib import Path

from ..export import check_trajectory, select_frames
from .colors import particle_colors
from .figure import FigureFrames
from .scenery import camera_view, check_colliders
from .splat_frames import SplatFrames
from .writers import WRITERS, check_size, output_kind

RENDERERS = ("splat", "matplotlib")


def render(traj, path, color_by: str = "body", camera: dict | None = None, colliders=None,
           frames=None, fps: float = 30, size=(640, 480), point_size: float | None = None,
           title: str | None = None, renderer: str | None = None) -> Path:
    """Draw the particles of each frame and write an animation or image sequence.

    Args:
        traj: the trajectory (x: (frames + 1, n, dim) m in the unit domain [0, 1]^dim).
        path: "….gif" (animated, loops), "….mp4" (H.264; width and height must be even) or a PNG
            pattern with one integer field, e.g. "out/frame_%04d.png", filled with the trajectory frame
            index (frame_0007.png is traj.x[7]).
        color_by: "body" or "material" (one colour each, legend from traj.body_names / material_names),
            or "speed" |v| (needs traj.v; colour bar in m/s, one range for the whole trajectory).
        camera: 3D only: dict(azimuth=30, elevation=20, up=None) in degrees, as matplotlib's
            view_init; `up` ("x", "y" or "z") is the data axis drawn vertically, by default the axis
            gravity (traj.meta["gravity"]) is mostly along, else "y". The unit cube is framed the same
            in every frame, so frames do not jump.
        colliders: simcore.colliders objects to draw (e.g. scene.colliders): in 2D filled shapes (a
            Plane's solid side, Box, Sphere), in 3D outlines (Plane ∩ domain, Box, Sphere, Cylinder).
            Kinematic ones are moved along their velocity over the recorded substeps.
        frames: trajectory frame indices to draw (see simcore.export.select_frames); None: all.
        fps: frames per second of the GIF / MP4.
        size: (width, height) pixels of each image.
        point_size: marker area (points²); None: from the particle spacing (volume^(1/dim)) so
            neighbours touch. The splat renderer draws spheres √point_size points across at the domain
            centre's depth.
        title: drawn at the top.
        renderer: 3D only. "splat" (the default): shaded spheres in a z-buffer, with perspective and
            occlusion, the domain's edges outlined and the axis directions in a corner; fast (a 250k
            particle frame in tens of ms, see docs/benchmarks.md). "matplotlib": an mplot3d scatter
            with ticked axes, seconds per frame at that size. 2D trajectories are always drawn by
            matplotlib.
    Returns:
        Path(path) (for a PNG pattern, the pattern).
    Raises:
        ValueError: an unsupported path, size, fps, camera, color_by or renderer, or "speed" without
            velocities.
    """
    check_trajectory(traj)
    kind = output_kind(path)
    size = check_size(size, kind)
    if not (isinstance(fps, numbers.Real) and math.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be a positive number of frames per second, got {fps!r}")
    if renderer is not None and renderer not in RENDERERS:
        raise ValueError(f"renderer must be 'splat' or 'matplotlib' (3D), got {renderer!r}")
    indices = select_frames(traj, frames)
    coloring = particle_colors(traj, color_by)
    view = camera_view(traj, camera)
    if view is None and renderer == "splat":
        raise ValueError("renderer='splat' draws 3D trajectories; a 2D one is drawn by matplotlib "
                         "(leave renderer=None)")
    colliders = check_colliders(colliders, traj.dim)
    frames_of = SplatFrames if view is not None and renderer != "matplotlib" else FigureFrames
    canvas = frames_of(traj, size, view, coloring, colliders, point_size, title)
    images = ((i, canvas.image(i)) for i in indices)
    return WRITERS[kind](images, path, fps, size)
