"""Granular column collapse against the planar law of Lube et al. 2005 (J. Fluid Mech. 540,
"Collapses of two-dimensional granular columns").

A 2D sand column of half-width L0 and height H0 (aspect ratio a = H0 / L0, the column's mid-plane
standing for the experiments' back wall) is released on a rough floor (`sand_collapse` scene). Lube et
al. measured, over a ≈ 0.5–20:

    run-out      ΔL / L0 = 1.2 a            (a < 2.8),   1.9 a^(2/3)   (a ≥ 2.8)
    final height H∞ / L0 = a                (a < 1.15),  a^0.4         (a ≥ 1.15)

The script runs three aspect ratios and prints one markdown row each: the measured ratios, Lube's, and
the relative differences. The deposit's extent is the 99.5th percentile of |x − 0.5| (a few particles
roll ahead of the front) plus half a particle spacing; its height the 99.5th percentile of y above the
floor. docs/validation.md quotes its output.

The defaults are the `sand_collapse` scene's: the μ(I) material (μs = tan φ) with the FLIP transfer,
whose run-outs converge with grid and time step, within 11 % of Lube's (docs/granular.md).

    python examples/column_collapse_lube.py                 # grid 64, the scene's defaults
    python examples/column_collapse_lube.py --grid 256 --particles-per-cell 9
    python examples/column_collapse_lube.py --aspect 2 --cfl 0.025       # a smaller time step: the same run-out
    python examples/column_collapse_lube.py --rheology drucker-prager    # Drucker–Prager sand: 24 % further
    python examples/column_collapse_lube.py --rheology drucker-prager --transfer apic --cfl 0.1  # APIC: dt matters
    python examples/column_collapse_lube.py --rheology drucker-prager --stress-free  # how much flows stress-free
"""

from __future__ import annotations

import argparse

import numpy as np
from simcore.scenes import sand_collapse

import simcore as sc

COLUMNS = ((0.3, 0.12), (0.2, 0.2), (0.12, 0.3))  # (width, height) m: a = 0.8, 2, 5
FLOOR = 0.1  # the scene's floor height, m


def lube(a: float) -> tuple[float, float]:
    """Lube et al. 2005's planar run-out ΔL/L0 and final height H∞/L0 at aspect ratio a."""
    run_out = 1.2 * a if a < 2.8 else 1.9 * a ** (2 / 3)
    height = a if a < 1.15 else a**0.4
    return run_out, height


def collapse(width: float, height: float, grid: int, floor_friction: float, friction_angle: float,
             seconds: float, particles_per_cell: int | None = None,
             rheology: str = sand_collapse.DEFAULTS["rheology"], cfl: float | None = None,
             transfer: str = sand_collapse.DEFAULTS["transfer"], flip_damping: float | None = None,
             stress_free: bool = False) -> tuple:
    """(ΔL/L0, H∞/L0, largest speed at the end m/s) of one column. cfl: the scene's CFL number (None:
    simcore's default, 0.4); transfer, flip_damping (1/s; None: simcore's default): `simcore.Scene`'s.
    With `stress_free`, a fourth element: `stress_free_history` of the run."""
    scene = sand_collapse.build(grid=grid, width=width, height=height, floor_friction=floor_friction,
                                friction_angle=friction_angle, particles_per_cell=particles_per_cell,
                                rheology=rheology, transfer=transfer)
    if cfl is not None:
        scene.cfl = cfl
    if flip_damping is not None:
        scene.flip_damping = flip_damping
    traj = scene.run(frames=round(seconds * 60), frame_dt=1 / 60, record=("v", "F") if stress_free else ("v",),
                     progress=False)
    x = traj.x[-1]
    L0 = width / 2
    spacing = scene.dx / round(scene.particles_per_cell ** 0.5)  # lattice sampling, 2D
    extent = np.percentile(np.abs(x[:, 0] - 0.5), 99.5) + spacing / 2
    top = np.percentile(x[:, 1], 99.5) - FLOOR
    result = (extent - L0) / L0, top / L0, float(np.abs(traj.v[-1]).max())
    return result + (stress_free_history(traj, scene.model.mass),) if stress_free else result


def stress_free_history(traj, mass, times=(0.1, 0.2, 0.3, 0.4, 0.6, 1.0)) -> list[tuple[float, float, float]]:
    """(t s, fraction of the particles, their share of the kinetic energy) at each of `times`, for the
    particles whose elastic strain is zero (every singular value of F within 1e-6 of 1): sand projected
    onto its cone's tip, which carries no stress and so no friction (docs/granular.md, cause 7)."""
    out = []
    for t in times:
        k = round(t * 60)
        if k >= len(traj.F):
            break
        free = np.all(np.abs(np.linalg.svd(traj.F[k], compute_uv=False) - 1) < 1e-6, axis=1)
        kinetic = mass * np.sum(traj.v[k] ** 2, axis=1)
        out.append((k / 60, float(free.mean()), float(kinetic[free].sum() / max(kinetic.sum(), 1e-30))))
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--grid", type=int, default=64)
    parser.add_argument("--floor-friction", type=float, default=sand_collapse.DEFAULTS["floor_friction"])
    parser.add_argument("--friction-angle", type=float, default=sand_collapse.DEFAULTS["friction_angle"])
    parser.add_argument("--seconds", type=float, default=2.0, help="simulated time (the deposits rest by 1.5 s)")
    parser.add_argument("--particles-per-cell", type=int, default=None,
                        help="a perfect square (default 4); 9 raises the a = 5 deposit by a third")
    parser.add_argument("--rheology", default=sand_collapse.DEFAULTS["rheology"], choices=["mu_i", "drucker-prager"],
                        help="the sand_collapse scene's rheology: GranularMuI with μs = tan φ (default), or Sand")
    parser.add_argument("--cfl", type=float, default=None,
                        help="CFL number of the time step (default simcore's 0.4); the run-outs depend on it")
    parser.add_argument("--transfer", default=sand_collapse.DEFAULTS["transfer"], choices=["flip", "apic"],
                        help="grid-to-particle transfer (simcore.Scene's): with 'flip' (the scene's default) the "
                             "run-outs do not depend on the time step")
    parser.add_argument("--flip-damping", type=float, default=None,
                        help="the FLIP blend's damping rate, 1/s (default simcore's 20)")
    parser.add_argument("--stress-free", action="store_true",
                        help="also print, for each column, how many particles are stress-free (on the cone's tip) "
                             "and their share of the kinetic energy during the collapse")
    parser.add_argument("--aspect", type=float, nargs="*", default=None,
                        help="run only these of the aspect ratios 0.8, 2, 5")
    args = parser.parse_args()
    sc.init("cpu", "f32", verbose=False)
    print(f"grid {args.grid}, floor friction {args.floor_friction}, φ = {args.friction_angle}°, "
          f"{args.seconds} s, {args.particles_per_cell or 4} particles per cell, {args.rheology}, "
          f"cfl {args.cfl or 0.4}, transfer {args.transfer}"
          + (f" (flip damping {args.flip_damping} 1/s)" if args.flip_damping is not None else "") + "\n")
    print("| a | ΔL/L0 simcore | ΔL/L0 Lube | diff | H∞/L0 simcore | H∞/L0 Lube | diff | max speed at end m/s |")
    print("|---|---|---|---|---|---|---|---|")
    histories = []
    for width, height in COLUMNS:
        a = height / (width / 2)
        if args.aspect and not any(abs(a - b) < 1e-6 for b in args.aspect):
            continue
        run_out, top, speed, *free = collapse(width, height, args.grid, args.floor_friction, args.friction_angle,
                                              args.seconds, args.particles_per_cell, args.rheology, args.cfl,
                                              args.transfer, args.flip_damping, args.stress_free)
        ref_run, ref_top = lube(a)
        print(f"| {a:.1f} | {run_out:.2f} | {ref_run:.2f} | {run_out / ref_run - 1:+.0%} | {top:.2f} | {ref_top:.2f} "
              f"| {top / ref_top - 1:+.0%} | {speed:.1e} |", flush=True)
        histories.append((a, *free))
    for a, history in histories if args.stress_free else ():
        print(f"\na = {a:.1f}, stress-free particles (on the cone's tip): share of particles · of kinetic energy")
        print("  ".join(f"{t:.1f} s: {n:.2f} · {e:.2f}" for t, n, e in history))


if __name__ == "__main__":
    main()
