"""The μ(I) heap's resting slope against atan μs for μs = tan 20°, tan 30°, tan 40° (issue 13).

tests/mpm/test_mu_i.py checks the static angle for μs = tan 20° only (a 30° heap rests at 19.7°). This
script runs the same set-up (a 2D triangular heap 0.15 m high on a sticky floor, μ2 − μs = 0.236,
I0 = 0.279, d = 5 mm, E = 1e5 Pa, grid 64, float64) for larger μs, each from flanks 10° and 15° steeper
than atan μs, and prints one markdown row per heap: start and final flank slope, the slump, and the
kinetic energy at the end over its peak (≈ 0 when the heap has come to rest).

    nice -n 10 python benchmarks/mu_i_static_angles.py [--seconds 2.0]
"""

import argparse
import math
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "mpm"))
from test_granular_and_fluid import BASE, flank_slope  # noqa: E402

import simcore as sc  # noqa: E402

GRID = 64
DX = 1 / GRID


def heap(mu_s_deg: float, flank_deg: float, seconds: float, delta_mu: float = 0.236, height: float = 0.15):
    """Run a μ(I) heap; returns its Trajectory (positions and velocities per frame)."""
    mu_s = math.tan(math.radians(mu_s_deg))
    spacing = DX / 2
    xs = np.arange(0.05, 0.95, spacing) + spacing / 2
    ys = np.arange(BASE, 0.6, spacing) + spacing / 2
    points = np.stack(np.meshgrid(xs, ys, indexing="ij"), -1).reshape(-1, 2)
    points = points[points[:, 1] - BASE < height - np.abs(points[:, 0] - 0.5) * math.tan(math.radians(flank_deg))]
    scene = sc.Scene(dim=2, grid=GRID)
    material = sc.materials.GranularMuI(E=1e5, mu_s=mu_s, mu_2=mu_s + delta_mu, I0=0.279, grain_diameter=5e-3)
    scene.add_body(sc.shapes.Points(points, volume_per_particle=spacing ** 2), material)
    scene.add_collider(sc.colliders.Plane(point=(0, BASE), normal=(0, 1), mode="sticky"))
    return scene.run(frames=round(seconds * 60), frame_dt=1 / 60, record=("v",), progress=False)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="simulated time per heap (s)")
    args = parser.parse_args(argv)
    sc.init("cpu", "f64", verbose=False)
    print("| atan μs (°) | start slope (°) | final slope (°) | final − atan μs (°) | slump (°) | final / peak kinetic energy |")
    print("|---|---|---|---|---|---|")
    for mu_s_deg in (20.0, 30.0, 40.0):
        for extra in (10.0, 15.0):
            traj = heap(mu_s_deg, mu_s_deg + extra, args.seconds)
            start, final = flank_slope(traj.x[0], DX), flank_slope(traj.x[-1], DX)
            ke = 0.5 * np.einsum("p,fpd->f", traj.mass, traj.v ** 2)
            print(f"| {mu_s_deg:.0f} | {start:.1f} | {final:.1f} | {final - mu_s_deg:+.1f} | {start - final:.1f} | "
                  f"{ke[-1] / ke.max():.2e} |", flush=True)


if __name__ == "__main__":
    main()
