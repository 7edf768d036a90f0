"""P2G on the CPU: the serial scatter against the partitioned one (simcore.mpm.step), by particle count.

A neo-Hookean cube (3D, 64³ grid; or 2D, 256² grid with --dim 2) of N particles in random order, dt =
2e-4 s, timed over --steps substeps (the whole substep: P2G, grid update, G2P), best of --repeats, in one
process per thread count (`sc.init(threads=)`), with the solver's `parts` forced to 1 (serial loop) and
to the thread count (partitioned) on the same scene. simcore uses the partitioned scatter from
PARTITION_MIN_PARTICLES particles up (simcore/mpm/config.py); this is the measurement behind it.

    python benchmarks/scatter_modes.py [--dim 3] [--particles 4000,8000,16000,32000,64000] [--threads 1,2]
        [--steps 100] [--repeats 3]

Prints M particle-steps/s for each mode and their ratio (partitioned / serial; > 1: partitioned faster).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time


def child(dim: int, particles: int, threads: int, steps: int, repeats: int) -> dict:
    import numpy as np
    import taichi as ti

    import simcore as sc

    sc.init("cpu", "f32", threads=threads, verbose=False)
    grid = 64 if dim == 3 else 256
    side = 0.4
    points = np.random.default_rng(0).random((particles, dim)) * side + 0.15
    scene = sc.Scene(dim=dim, grid=grid, dt=2e-4)
    # the particles fill the cube at this density whatever their count: volume per particle = side^dim / N
    scene.add_body(sc.shapes.Points(points, volume_per_particle=side ** dim / particles),
                   sc.materials.NeoHookean(E=400.0, nu=0.3, density=1.0))
    solver = scene.build()
    solver.dt[None] = 2e-4
    rates = {}
    for mode, parts in (("serial", 1), ("partitioned", solver.max_parts)):
        if parts < 2 and mode == "partitioned":
            continue
        solver.parts = parts
        solver.import_slot(0, scene.state)
        cur = 0
        for _ in range(5):  # compile and warm up
            solver.substep(cur, 1 - cur)
            cur = 1 - cur
        best = float("inf")
        for _ in range(repeats):
            ti.sync()
            start = time.perf_counter()
            for _ in range(steps):
                solver.substep(cur, 1 - cur)
                cur = 1 - cur
            ti.sync()
            best = min(best, time.perf_counter() - start)
        rates[mode] = particles * steps / best
    return {"dim": dim, "particles": particles, "threads": threads, "parts": solver.max_parts, "rates": rates}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dim", type=int, default=3, choices=(2, 3))
    parser.add_argument("--particles", default="4000,8000,16000,32000,64000")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", nargs=5, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(*args.child)))
        return
    print(f"{args.dim}D neo-Hookean, random order, {args.steps} substeps, best of {args.repeats} "
          "(M particle-steps/s)")
    print("| particles | threads | serial | partitioned | partitioned / serial |")
    print("|---|---|---|---|---|")
    for threads in (int(t) for t in args.threads.split(",")):
        for n in (int(p) for p in args.particles.split(",")):
            cmd = [sys.executable, __file__, "--child", str(args.dim), str(n), str(threads), str(args.steps),
                   str(args.repeats)]
            r = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.splitlines()[-1])
            serial = r["rates"]["serial"] / 1e6
            if "partitioned" in r["rates"]:
                part = r["rates"]["partitioned"] / 1e6
                print(f"| {n:,} | {threads} | {serial:.2f} | {part:.2f} ({r['parts']} parts) | {part / serial:.2f} |",
                      flush=True)
            else:
                print(f"| {n:,} | {threads} | {serial:.2f} | — (one thread) | — |", flush=True)


if __name__ == "__main__":
    main()
