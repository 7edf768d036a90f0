"""The CPU scatter: one serial loop against the colored parallel scatter (simcore.mpm.step), by
particle count and thread count, in the same run on the same machine.

Scene: a 3D neo-Hookean jelly cube (E = 1e5 Pa, ν = 0.3, 1e3 kg/m³) sampled at 2 particles per cell
per axis on a 64³ grid, falling at 2 m/s onto the floor, dt = 2e-4 s, `--steps` substeps as one frame
(`scene.run`), float32. The cube's edge is chosen for each particle count. Each (particles, threads,
mode) runs in its own process (`sc.init(threads=T)`, serial then colored; the mode is forced by moving
`simcore.mpm.config.COLORED_MIN_PARTICLES`), best of `--repeats` timed runs
after one untimed warm-up (compilation). Prints particle-steps per second and colored / serial.

    python benchmarks/scatter_modes.py [--particles 1000,8000,27000,64000] [--threads 1,2]
        [--steps 100] [--repeats 3] [--json out.json]
    python benchmarks/scatter_modes.py --quick     # smoke test: 1,000 particles, 1 thread, 5 steps
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
GRID = 64


def child(particles: int, threads: int, mode: str, steps: int, repeats: int) -> dict:
    sys.path.insert(0, str(REPO))
    import numpy as np

    import simcore as sc
    from simcore.mpm import config

    config.COLORED_MIN_PARTICLES = 0 if mode == "colored" else 1 << 40
    sc.init("cpu", "f32", threads=threads, verbose=False)
    dx = 1.0 / GRID
    cells = max(2, round((particles / 8) ** (1 / 3)))  # 8 particles a cell
    scene = sc.Scene(dim=3, grid=GRID, dt=2e-4, walls="separate")
    scene.add_body(sc.shapes.Box(center=(0.5, 6 * dx + cells * dx / 2, 0.5), size=(cells * dx,) * 3),
                   sc.materials.NeoHookean(E=1e5, nu=0.3), velocity=(0.0, -2.0, 0.0))
    frame_dt = steps * 2e-4
    times = []
    for r in range(repeats + 1):
        scene.reset()
        start = time.perf_counter()
        traj = scene.run(frames=1, frame_dt=frame_dt, progress=False)
        if r:  # the first run compiles
            times.append(time.perf_counter() - start)
    used = scene.build().scatter_mode
    if used != mode:
        raise SystemExit(f"asked for the {mode} scatter, ran {used}")
    return {"particles": scene.n_particles, "threads": threads, "mode": mode, "best_s": min(times),
            "steps": steps, "finite": bool(np.isfinite(traj.x).all())}


def measure(particles: int, threads: int, mode: str, steps: int, repeats: int) -> dict:
    cmd = [sys.executable, __file__, "--child", json.dumps([particles, threads, mode, steps, repeats])]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        raise SystemExit(f"child {particles} particles, {threads} threads, {mode} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--particles", default="1000,8000,27000,64000", help="comma separated (about: cubes)")
    parser.add_argument("--threads", default="1,2", help="comma separated thread counts")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--quick", action="store_true", help="smoke test: 1,000 particles, 1 thread, 5 steps")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(*json.loads(args.child))))
        return
    if args.quick:
        args.particles, args.threads, args.steps, args.repeats = "1000", "1", 5, 1
    rows = []
    print("| particles | threads | serial M particle-steps/s | colored M particle-steps/s | colored / serial |")
    print("|---|---|---|---|---|")
    for n in map(int, args.particles.split(",")):
        for threads in map(int, args.threads.split(",")):
            runs = {}
            for mode in ("serial", "colored"):
                runs[mode] = measure(n, threads, mode, args.steps, args.repeats)
            rate = {m: r["particles"] * r["steps"] / r["best_s"] / 1e6 for m, r in runs.items()}
            ratio = rate["colored"] / rate["serial"]
            rows.append({"particles": runs["serial"]["particles"], "threads": threads, "serial": rate["serial"],
                         "colored": rate["colored"], "ratio": ratio,
                         "finite": runs["serial"]["finite"] and runs["colored"]["finite"]})
            print(f"| {rows[-1]['particles']:,} | {threads} | {rate['serial']:.2f} | {rate['colored']:.2f} | "
                  f"{ratio:.2f}× |", flush=True)
    if args.json:
        args.json.write_text(json.dumps({"steps": args.steps, "repeats": args.repeats, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
