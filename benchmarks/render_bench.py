"""3D render speed: the splat renderer (simcore.viz's default for 3D) against the matplotlib mplot3d
scatter (renderer="matplotlib"), on the same points in the same process.

The points are those of the 3D dam break (`simcore run dam_break --set dim=3`): a water column
0.3 × 0.5 × 0.8 m at the MPM spacing of grid 64 (1/128 m, 8 particles a cell), 248k particles, made to
slump by a prescribed motion (the column widens and drops, with a ripple; velocities from its time
derivative) so that every frame differs; or, with --trajectory, the frames of a saved trajectory (e.g.
`simcore run dam_break --set dim=3 --frames 30 --format npz`). Colours are by speed, as `simcore run`
draws a one-body scene.

Four measurements, each frames per second over the whole picture (particles, outlines, colour bar,
time label): each renderer drawing frames in memory, and each writing an MP4 through `viz.render`
(H.264 encoding by imageio-ffmpeg's ffmpeg, a second process). The splat renderer draws every frame
(best of --repeats passes); matplotlib, seconds a frame at this size, draws --mpl-frames of them.
Each also reports CPU time per frame (this process and ffmpeg, user + system): on a machine shared
with other work, wall time varies from run to run and CPU time much less.

    python benchmarks/render_bench.py [--particles 248000] [--frames 30] [--mpl-frames 2]
                                      [--size 640x480] [--repeats 2] [--trajectory run.npz] [--out DIR]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

import simcore as sc
from simcore import viz
from simcore.viz.figure import FigureFrames
from simcore.viz.splat_frames import SplatFrames

SPACING = 1 / 128        # m: grid 64, 2 particles per cell along each axis
COLUMN = (0.3, 0.5, 0.8)  # m: the dam break's water column (width, height, depth)
LO = 3.5 / 64            # m: where the column starts, as in scenes/dam_break.py
FRAME_DT = 1 / 60


def dam_break_points(particles: int, frames: int) -> sc.Trajectory:
    """The dam break's column at MPM spacing, scaled to about `particles`, slumping over `frames`."""
    scale = (particles / np.prod(np.array(COLUMN) / SPACING)) ** (1 / 3)
    counts = np.maximum(1, np.round(np.array(COLUMN) / SPACING * scale)).astype(int)
    spacing = np.array(COLUMN) / counts
    grid = np.stack(np.meshgrid(*[np.arange(c) for c in counts], indexing="ij"), -1).reshape(-1, 3)
    x0 = LO + (grid + 0.5) * spacing                                            # (n, 3) m
    t = np.arange(frames + 1) * FRAME_DT
    s = (t / max(t[-1], FRAME_DT))[:, None]                                     # 0 → 1 over the run
    rel = (x0 - LO)[None]                                                       # (1, n, 3)
    height = rel[..., 1] / COLUMN[1]
    x = np.empty((frames + 1, len(x0), 3))
    x[..., 0] = LO + rel[..., 0] * (1 + 1.6 * s * (1 - height))                 # the foot runs out
    x[..., 1] = LO + rel[..., 1] * (1 - 0.6 * s) + 0.01 * s * np.sin(25 * rel[..., 2] + 40 * rel[..., 0])
    x[..., 2] = LO + rel[..., 2]
    x = np.clip(x, LO, 1 - LO)
    v = np.gradient(x, t, axis=0) if frames else np.zeros_like(x)
    n = len(x0)
    return sc.Trajectory(x=x, t=t, body_id=np.zeros(n, int), material_id=np.zeros(n, int),
                         mass=np.full(n, 1e3 * np.prod(spacing)), volume=np.full(n, np.prod(spacing)),
                         body_names=["water"], material_names=["Fluid"],
                         meta={"dim": 3, "gravity": [0.0, -9.8, 0.0], "frame_dt": FRAME_DT}, v=v)


def cpu_seconds() -> float:
    """CPU time (s) of this process and of its finished children (ffmpeg), user + system."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def timed(work, count: int) -> tuple[float, float]:
    """(frames per second of wall time, CPU seconds per frame) of work() drawing `count` frames."""
    wall, cpu = time.perf_counter(), cpu_seconds()
    work()
    return count / (time.perf_counter() - wall), (cpu_seconds() - cpu) / count


def draw_frames(canvas, indices) -> tuple[float, float]:
    return timed(lambda: [canvas.image(i) for i in indices], len(indices))


def write_mp4(traj, path, indices, renderer, size) -> tuple[float, float]:
    return timed(lambda: viz.render(traj, path, color_by="speed", frames=indices, size=size, renderer=renderer),
                 len(indices))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--particles", type=int, default=248_000)
    parser.add_argument("--frames", type=int, default=30, help="frames after the first (the MP4 holds frames + 1)")
    parser.add_argument("--mpl-frames", type=int, default=2, help="frames matplotlib draws (seconds each)")
    parser.add_argument("--size", default="640x480", help="WIDTHxHEIGHT px (even, for H.264)")
    parser.add_argument("--repeats", type=int, default=2, help="passes of the splat renderer (best is kept)")
    parser.add_argument("--trajectory", default=None, help="render this saved .npz instead of the synthetic column")
    parser.add_argument("--out", default=None, help="keep the MP4s here (default: a temporary directory)")
    args = parser.parse_args()
    size = tuple(int(s) for s in args.size.lower().split("x"))

    if args.trajectory:
        traj = sc.Trajectory.load(args.trajectory)
        what = f"{args.trajectory}"
    else:
        traj = dam_break_points(args.particles, args.frames)
        what = "the 3D dam break's column at MPM spacing (1/128 m at 248k particles), prescribed slump"
    splat_frames = list(range(len(traj.t)))
    mpl_frames = splat_frames[:max(1, args.mpl_frames)]
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"python {platform.python_version()}, numpy {np.__version__}")
    print(f"points: {traj.n_particles} particles, {len(splat_frames)} frames, {size[0]}x{size[1]} px; {what}")

    view = viz.camera_view(traj, None)
    coloring = viz.particle_colors(traj, "speed")
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="render_bench_"))
    results = {}
    splat = SplatFrames(traj, size, view, coloring, [], None, None)
    splat.image(0)   # first-call costs (font, buffers) out of the timing, as for matplotlib below
    results["splat", "frames"] = max(draw_frames(splat, splat_frames) for _ in range(args.repeats))
    results["splat", "mp4"] = max(write_mp4(traj, out / "splat.mp4", splat_frames, "splat", size)
                                  for _ in range(args.repeats))
    figure = FigureFrames(traj, size, view, coloring, [], None, None)
    figure.image(0)
    results["matplotlib", "frames"] = draw_frames(figure, mpl_frames)
    results["matplotlib", "mp4"] = write_mp4(traj, out / "matplotlib.mp4", mpl_frames, "matplotlib", size)

    for (renderer, target), (fps, cpu) in results.items():
        count = len(splat_frames if renderer == "splat" else mpl_frames)
        print(f"{renderer:<10} {target:<6}: {fps:8.3f} frames/s ({1000 / fps:8.1f} ms/frame wall, "
              f"{1000 * cpu:8.1f} ms/frame CPU incl. ffmpeg, {count} frames)")
    ratio = {target: results["splat", target][0] / results["matplotlib", target][0] for target in ("frames", "mp4")}
    print(f"splat / matplotlib: frames {ratio['frames']:.0f}x, mp4 {ratio['mp4']:.0f}x (wall time)")
    print(f"videos: {out / 'splat.mp4'}, {out / 'matplotlib.mp4'}")


if __name__ == "__main__":
    main()
