"""MLS-MPM throughput: simcore against Taichi's own examples/simulation/mpm3d.py, back to back.

The peer is imported from the installed taichi wheel (not copied): its source is read from the
package, its configuration line is switched to the 64³ setting the file itself lists
(`dim, n_grid, steps, dt = 3, 64, 25, 2e-4`) and its `ti.init` to the arch under test, then executed
as a module (its GUI `main()` is not run). Each engine runs in its own subprocess (Taichi holds one
runtime per process), alternating, `--repeats` times; the best of each is reported.

Set-up, identical for both: 3D weakly compressible fluid, 64³ grid, 65,536 particles uniformly random
in [0.15, 0.55]³ (random order), particle volume (dx/2)², density 1, bulk modulus 400 Pa, dt = 2e-4 s,
gravity 9.8 m/s², separating frictionless walls 3 cells thick. simcore also runs a neo-Hookean jelly of
the same particle count (E = 400 Pa, nu = 0.3).

    python benchmarks/mpm_throughput.py [--arch cpu] [--steps 200] [--repeats 3] [--flip]

Prints particle-steps per second for each, the ratios, and simcore's peak resident memory per particle.
With --flip, simcore also runs both scenes with the FLIP transfer (`Scene(transfer="flip")`), in the same
alternation, and prints its cost against simcore's default APIC transfer.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

N_GRID, N_PARTICLES, DT = 64, 65_536, 2e-4


def run_peer(arch: str, steps: int) -> dict:
    import taichi

    path = Path(taichi.__file__).parent / "examples" / "simulation" / "mpm3d.py"
    source = path.read_text()
    config = "dim, n_grid, steps, dt = 3, 32, 25, 4e-4"
    if config not in source or "ti.init(arch=ti.gpu)" not in source:
        raise RuntimeError(f"{path} changed: cannot find its configuration line")
    source = source.replace(config, f"dim, n_grid, steps, dt = 3, {N_GRID}, 25, {DT}")
    source = source.replace("ti.init(arch=ti.gpu)", f"ti.init(arch=ti.{arch})")
    module = {"__name__": "mpm3d_peer", "__file__": str(path)}
    exec(compile(source, str(path), "exec"), module)
    ti = module["ti"]
    assert module["n_particles"] == N_PARTICLES
    module["init"]()
    for _ in range(10):  # compile and warm up
        module["substep"]()
    ti.sync()
    start = time.perf_counter()
    for _ in range(steps):
        module["substep"]()
    ti.sync()
    elapsed = time.perf_counter() - start
    return {"engine": "taichi mpm3d.py", "seconds": elapsed, "steps": steps, "particles": N_PARTICLES}


def run_simcore(arch: str, steps: int, what: str) -> dict:
    import numpy as np
    import taichi as ti

    import simcore as sc

    sc.init(arch)
    rss_before = _current_rss_bytes()
    dx = 1 / N_GRID
    rng = np.random.default_rng(0)
    points = rng.random((N_PARTICLES, 3)) * 0.4 + 0.15
    material, _, transfer = what.partition("+")  # "fluid", "jelly", "fluid+flip", "jelly+flip"
    scene = sc.Scene(dim=3, grid=N_GRID, dt=DT, gravity=(0, -9.8, 0), transfer=transfer or "apic")
    if material == "fluid":
        mat = sc.materials.Fluid(bulk_modulus=400.0, gamma=1.0, density=1.0)
    else:
        mat = sc.materials.NeoHookean(E=400.0, nu=0.3, density=1.0)
    scene.add_body(sc.shapes.Points(points, volume_per_particle=(dx * 0.5) ** 2), mat)
    solver = scene.build()
    solver.dt[None] = DT
    cur = 0
    for _ in range(10):
        solver.substep(cur, 1 - cur)
        cur = 1 - cur
    ti.sync()
    start = time.perf_counter()
    for _ in range(steps):
        solver.substep(cur, 1 - cur)
        cur = 1 - cur
    ti.sync()
    elapsed = time.perf_counter() - start
    x = solver.export_slot(cur)["x"]
    assert np.isfinite(x).all(), "simcore state went non-finite"
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"engine": f"simcore {what}", "seconds": elapsed, "steps": steps, "particles": N_PARTICLES,
            "peak_rss_bytes_per_particle": peak / N_PARTICLES,
            "scene_bytes_per_particle": (peak - rss_before) / N_PARTICLES}


def _current_rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize()


def _child(args) -> dict:
    cmd = [sys.executable, __file__, "--child", args.child_what, "--arch", args.arch, "--steps", str(args.steps)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="cpu", choices=["cpu", "cuda", "vulkan"])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--flip", action="store_true", help="also time simcore with the FLIP transfer")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        result = run_peer(args.arch, args.steps) if args.child == "peer" else run_simcore(args.arch, args.steps, args.child)
        print(json.dumps(result))
        return
    best: dict[str, dict] = {}
    runs = ("peer", "fluid", "jelly") + (("fluid+flip", "jelly+flip") if args.flip else ())
    for _ in range(args.repeats):
        for what in runs:
            args.child_what = what
            r = _child(args)
            r["rate"] = r["particles"] * r["steps"] / r["seconds"]
            if what not in best or r["rate"] > best[what]["rate"]:
                best[what] = r
    peer = best["peer"]["rate"]
    print(f"arch={args.arch} grid={N_GRID}^3 particles={N_PARTICLES} steps={args.steps} best of {args.repeats}")
    for what in runs:
        r = best[what]
        extra = (f"  peak RSS {r['peak_rss_bytes_per_particle']:.0f} B/particle (process), "
                 f"{r['scene_bytes_per_particle']:.0f} B/particle (scene: peak minus RSS before building it, "
                 f"grid included)" if "peak_rss_bytes_per_particle" in r else "")
        if what.endswith("+flip"):
            extra = f"  time / APIC's {best[what.split('+')[0]]['rate'] / r['rate']:5.2f}" + extra
        print(f"{r['engine']:<18} {r['rate'] / 1e6:7.3f} M particle-steps/s  ratio to peer {r['rate'] / peer:5.2f}{extra}")


if __name__ == "__main__":
    main()
