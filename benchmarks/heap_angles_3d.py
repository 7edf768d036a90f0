"""Resting slopes of 3D sand heaps (simcore.materials.Sand): conical heaps and plane-strain ridges,
built steeper than the friction angle φ and released, for chosen φ and start slopes.

    python benchmarks/heap_angles_3d.py [--phi 20,30,40] [--over 3,10] [--shape cone,ridge] [--grid 48]
        [--frames 90] [--yield-surface matsuoka-nakai|compression-cone] [--json out.json]

`--yield-surface` is `Sand.yield_surface` (default: Sand's default, Matsuoka–Nakai). Each case runs in
its own process on one thread (two at a time), f32, CPU; sand's default stiffness
(E = 3.5e5 Pa), 2 particles per cell per axis, a sticky floor at y = 0.1 m, 90 frames of 1/60 s.

- cone: `tests/mpm/test_granular_and_fluid.conical_heap` (base radius 0.3 m), its flank slope by
  `cone_slope` (highest particle per ring of width dx, fitted between 25 % and 75 % of the height);
- ridge: `tests/mpm/test_granular_and_fluid.ridge`, the 2D heap (0.15 m tall) extruded 0.2 m along z
  between two slip planes (plane strain), its slope by `flank_slope` on the middle 0.1 m.

Prints, per case: the start slope as measured (the built slope differs by the lattice's steps), the
resting slope, the apex height before and after, and the final / peak kinetic energy.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PROTOCOL = "@@ "


def child(cfg: dict):
    import numpy as np

    sys.path.insert(0, str(REPO))
    import simcore as sc
    from tests.mpm.test_granular_and_fluid import BASE, cone_slope, conical_heap, flank_slope, ridge

    sc.init("cpu", "f32", threads=1, verbose=False)
    phi, slope, grid, frames = cfg["phi"], cfg["phi"] + cfg["over"], cfg["grid"], cfg["frames"]
    if cfg["shape"] == "cone":
        traj, dx = conical_heap(phi, slope, grid=grid, frames=frames, yield_surface=cfg["yield_surface"])
        measure = lambda x: cone_slope(x, dx)  # noqa: E731
    else:
        traj, dx, middle = ridge(phi, slope, grid=grid, frames=frames, yield_surface=cfg["yield_surface"])
        measure = lambda x: flank_slope(x[middle][:, :2], dx)  # noqa: E731
    ke = 0.5 * np.einsum("p,fpd->f", traj.mass, traj.v**2)
    print(PROTOCOL + json.dumps({**cfg, "particles": int(traj.x.shape[1]), "start": measure(traj.x[0]),
                                 "rest": measure(traj.x[-1]), "apex_start": float(traj.x[0][:, 1].max() - BASE),
                                 "apex_rest": float(traj.x[-1][:, 1].max() - BASE),
                                 "ke_ratio": float(ke[-1] / ke.max())}), flush=True)


def run_child(cfg: dict) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(cfg)], cwd=REPO, capture_output=True,
                          text=True)
    for line in proc.stdout.splitlines():
        if line.startswith(PROTOCOL):
            return json.loads(line[len(PROTOCOL):])
    return {**cfg, "error": (proc.stdout + proc.stderr)[-2000:]}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--phi", default="20,30,40", help="friction angles (degrees), comma-separated")
    parser.add_argument("--over", default="3,10", help="how much steeper than φ the heaps are built (degrees)")
    parser.add_argument("--shape", default="cone,ridge", help="cone, ridge or both")
    parser.add_argument("--grid", type=int, default=48)
    parser.add_argument("--frames", type=int, default=90)
    parser.add_argument("--yield-surface", default="matsuoka-nakai", choices=["matsuoka-nakai", "compression-cone"])
    parser.add_argument("--json", help="write the rows here")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(json.loads(args.child))
    cfgs = [{"shape": s, "phi": float(p), "over": float(o), "grid": args.grid, "frames": args.frames,
             "yield_surface": args.yield_surface}
            for s in args.shape.split(",") for p in args.phi.split(",") for o in args.over.split(",")]
    unknown = {c["shape"] for c in cfgs} - {"cone", "ridge"}
    if unknown:
        raise SystemExit(f"unknown --shape {sorted(unknown)}: choose cone, ridge or cone,ridge")
    with ThreadPoolExecutor(2) as pool:
        rows = list(pool.map(run_child, cfgs))
    print("| shape | φ | built | start (measured) | rests at | rest − φ | apex m (start → rest) | final / peak KE |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['shape']} | {r['phi']:.0f} | {r['phi'] + r['over']:.1f} | error: {r['error'][-200:]!r} |")
            continue
        print(f"| {r['shape']} | {r['phi']:.0f}° | {r['phi'] + r['over']:.1f}° | {r['start']:.1f}° | {r['rest']:.1f}° | "
              f"{r['rest'] - r['phi']:+.1f}° | {r['apex_start']:.3f} → {r['apex_rest']:.3f} | {r['ke_ratio']:.1e} |")
    if args.json:
        sys.path.insert(0, str(REPO))
        from simcore.io import atomic_write  # a failed write leaves no half file

        with atomic_write(args.json, "w") as handle:
            json.dump(rows, handle, indent=1)


if __name__ == "__main__":
    main()
