"""What a new scene costs beyond its simulation, when many scenes of one configuration run in a process.

For each case (2D / 3D, forward `run` / gradient `rollout` + `backward`), a fresh process builds
`--scenes` scenes of the same configuration (dimension, precision, material kind, walls, collider) with
different shapes (box, sphere, cylinder in 3D), sizes (particle counts), material values and initial
velocities, drawn from a seeded generator, and runs each for 2 frames. Each scene is then run a second
time from its initial state: that second run is pure simulation (nothing left to build or compile), so

    overhead = (first run, including building the scene) − (second run)

is what the scene cost beyond its simulation: building its particles and model, and any kernel
compilation (simcore.mpm.cache shares compiled solvers between scenes of one configuration; a scene
larger than the shared solver's capacity makes it rebuild, counted as `builds`).

Every case runs twice, in two processes one after the other: the second process starts with Taichi's
offline cache warm from the first (each case starts from an empty cache directory of its own), which
is what a user's second script sees: its first scene's overhead is in the `warm` row.

    python benchmarks/scene_reuse.py [--scenes 20] [--cases 2d-forward 3d-forward 2d-gradient 3d-gradient]
                                     [--precision f32] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PROTOCOL = "@@ "
CASES = ("2d-forward", "3d-forward", "2d-gradient", "3d-gradient")


def _scene(sc, dim, grid, rng, E, material_kind):
    """One random scene of the case's configuration: a body on a floor (a Plane collider)."""
    scene = sc.Scene(dim=dim, grid=grid, walls="slip")
    center = tuple(rng.uniform(0.4, 0.6, dim).round(3))
    size = float(rng.uniform(0.16, 0.24))
    shapes = [sc.shapes.Box(center=center, size=(size,) * dim), sc.shapes.Sphere(center=center, radius=size / 2)]
    if dim == 3:
        shapes.append(sc.shapes.Cylinder(center=center, radius=size / 2, height=size))
    shape = shapes[int(rng.integers(len(shapes)))]
    material = {"NeoHookean": lambda: sc.materials.NeoHookean(E=E, nu=float(rng.uniform(0.2, 0.4))),
                "Sand": lambda: sc.materials.Sand(E=E, friction_angle=float(rng.uniform(25, 40)))}[material_kind]()
    velocity = tuple(rng.uniform(-1, 1, dim).round(3))
    scene.add_body(shape, material, velocity=velocity)
    scene.add_collider(sc.colliders.Plane(point=(0.0, 0.2, 0.0)[:dim], normal=(0.0, 1.0, 0.0)[:dim], friction=0.3))
    return scene


def child(case: str, scenes: int, precision: str) -> None:
    """Run one case in this process, printing one protocol line per scene."""
    import numpy as np
    import torch

    import simcore as sc
    from simcore.mpm import cache

    dim, mode = int(case[0]), case.split("-")[1]
    grid = 64 if dim == 2 else 32
    kind = "NeoHookean" if (dim == 2 or mode == "gradient") else "Sand"
    sc.init("cpu", precision)
    dtype = torch.float64 if precision == "f64" else torch.float32
    rng = np.random.default_rng(7)
    frame_dt = 1 / 60

    def simulate(scene, E):
        if mode == "forward":
            scene.run(frames=2, frame_dt=frame_dt)
        else:
            out = scene.rollout(frames=2, frame_dt=frame_dt)
            (out.x[-1] ** 2).mean().backward()

    for i in range(scenes):
        E_value = float(rng.uniform(1e4, 5e4))
        builds = cache.info().built
        t0 = time.perf_counter()
        E = torch.tensor(E_value, dtype=dtype, requires_grad=True) if mode == "gradient" else E_value
        scene = _scene(sc, dim, grid, rng, E, kind)
        simulate(scene, E)
        first = time.perf_counter() - t0
        scene.reset()
        t0 = time.perf_counter()
        simulate(scene, E)
        second = time.perf_counter() - t0
        print(PROTOCOL + json.dumps({"scene": i, "particles": scene.n_particles, "first_s": first,
                                     "simulation_s": second, "overhead_s": first - second,
                                     "builds": cache.info().built - builds}), flush=True)


def run_case(case: str, scenes: int, precision: str, kernel_cache: Path) -> list[dict]:
    """One process running the case, with Taichi's offline cache in `kernel_cache`."""
    env = dict(os.environ, TI_OFFLINE_CACHE_FILE_PATH=str(kernel_cache))
    proc = subprocess.run([sys.executable, __file__, "--child", case, "--scenes", str(scenes),
                           "--precision", precision], cwd=REPO, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"case {case} failed:\n{proc.stderr[-3000:]}")
    return [json.loads(line[len(PROTOCOL):]) for line in proc.stdout.splitlines() if line.startswith(PROTOCOL)]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenes", type=int, default=20)
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=CASES)
    parser.add_argument("--precision", default="f32", choices=("f32", "f64"))
    parser.add_argument("--json", type=Path, help="write every measurement here")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.scenes, args.precision)
        return 0
    results = {}
    print(f"{'case':<12} {'process':<8} {'1st scene s':>11} {'later: median s':>15} {'max s':>7} "
          f"{'sim median s':>12} {'builds':>6}")
    for case in args.cases:
        kernel_cache = Path(tempfile.mkdtemp(prefix="simcore-kernels-"))  # empty: the first process compiles
        for process in ("cold", "warm"):  # the second process finds Taichi's offline cache warm
            rows = run_case(case, args.scenes, args.precision, kernel_cache)
            later = rows[1:]
            results[f"{case}/{process}"] = rows
            print(f"{case:<12} {process:<8} {rows[0]['overhead_s']:>11.3f} "
                  f"{statistics.median(r['overhead_s'] for r in later):>15.3f} "
                  f"{max(r['overhead_s'] for r in later):>7.3f} "
                  f"{statistics.median(r['simulation_s'] for r in later):>12.3f} "
                  f"{sum(r['builds'] for r in rows):>6}", flush=True)
        shutil.rmtree(kernel_cache, ignore_errors=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.json.with_suffix(args.json.suffix + ".tmp")
        tmp.write_text(json.dumps(results, indent=1))
        tmp.replace(args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
