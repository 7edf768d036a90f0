"""Dataset generation throughput: the acceptance benchmark of issue 14.

`--count` trajectories (default 200) of a 2D family with at least 2,000 particles each (default: fluid_drop,
64-cell grid, 9 particles per cell, bodies 0.28–0.32 m across: 2,200–3,800 particles), `--frames` frames
each (default 100), generated three ways into fresh directories:

    pool x1   the local process pool with 1 worker
    pool x2   the local process pool with 2 workers
    ray x2    Ray tasks on a local instance of 2 CPUs (started by the run: its start-up is counted)

Every worker runs Taichi on one CPU thread (threads=1), so that the rows measure the executor's scaling,
not Taichi's own threading. A small run first warms Taichi's kernel cache, so that no row pays for a cold
compilation the others do not. For each row: wall-clock time; start-up (until the first worker was ready)
and compile time (the longest worker's first launch of its solver) apart; the rest ("steady"); the
speed-ups the issue asks for (pool x2 >= 1.7x pool x1; ray x2 within 1.3x of pool x2); bytes on disk per
particle-frame. The data of the three rows are checked bit-identical.

    python benchmarks/dataset_gen.py [--count 200] [--frames 100] [--quick] [--family fluid_drop]
                                     [--set KEY=VALUE ...] [--no-ray] [--keep DIR] [--json out.json]

--quick: 8 trajectories of 10 frames (a smoke run; its timings are dominated by start-up). Run the full one
on an otherwise idle machine with at least 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DEFAULT_OPTIONS = {"fluid_drop": {"dim": 2, "grid": 64, "particles_per_cell": 9, "size": (0.28, 0.32)}}


def _parse_set(items) -> dict:
    from simcore import scenes

    return dict(scenes.parse_assignment(s) for s in items)


def _same(a: Path, b: Path) -> bool:
    from simcore.learned.data.store import open_dataset

    da, db = open_dataset(a), open_dataset(b)
    if da.indices != db.indices or da.failures != db.failures:
        return False
    return all(np.array_equal(da[i].x[...], db[i].x[...]) and np.array_equal(da[i].v[...], db[i].v[...])
               for i in da.indices)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--quick", action="store_true", help="8 trajectories of 10 frames")
    parser.add_argument("--family", default="fluid_drop")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a family option")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray row")
    parser.add_argument("--keep", default=None, help="write the datasets under DIR and keep them")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args(argv)
    if args.quick:
        args.count, args.frames = 8, 10

    from simcore.learned.data import families
    from simcore.learned.data.generate import generate

    options = {**DEFAULT_OPTIONS.get(args.family, {}), **_parse_set(args.set)}
    family = families.get(args.family)
    sizes = [family.sample(np.random.default_rng([args.seed, i]), **options).scene.n_particles
             for i in range(min(args.count, 20))]
    print(f"# dataset generation: {args.count} x {args.family} ({options}), {args.frames} frames; particles in the "
          f"first {len(sizes)}: {min(sizes)}..{max(sizes)} (mean {np.mean(sizes):.0f}); {os.cpu_count()} cores",
          flush=True)
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="dataset_gen-"))
    root.mkdir(parents=True, exist_ok=True)
    common = dict(frames=args.frames, seed=args.seed, options=options, progress=False, threads=1)
    try:
        warm = generate(args.family, count=1, out=root / "warm-up", workers=1, **dict(common, frames=1))
        print(f"# kernel cache warmed ({warm.compile_s:.1f} s compile)", flush=True)
        rows = [("pool x1", dict(workers=1)), ("pool x2", dict(workers=2))]
        if not args.no_ray:
            rows.append(("ray x2", dict(workers=2, ray_address="local")))
        results = {}
        for name, how in rows:
            out = root / name.replace(" ", "_")
            shutil.rmtree(out, ignore_errors=True)
            begin = time.perf_counter()
            report = generate(args.family, count=args.count, out=out, **how, **common)
            results[name] = dict(wall_s=time.perf_counter() - begin, startup_s=report.startup_s,
                                 compile_s=report.compile_s, simulate_worker_s=report.simulate_s,
                                 write_worker_s=report.write_s, written=len(report.written),
                                 failed=len(report.failed), bytes_per_particle_frame=report.bytes_per_particle_frame,
                                 bytes=report.bytes_written, out=str(out))
            results[name]["steady_s"] = results[name]["wall_s"] - report.startup_s - report.compile_s
            print(f"  {name}: {report.summary()}", flush=True)
        identical = all(_same(root / "pool_x1", root / name.replace(" ", "_")) for name, _ in rows[1:])
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)

    print("\n| executor | wall s | start-up s | compile s | steady s | simulate worker-s | write worker-s "
          "| written / failed | bytes per particle-frame |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {r['wall_s']:.1f} | {r['startup_s']:.1f} | {r['compile_s']:.1f} | {r['steady_s']:.1f} | "
              f"{r['simulate_worker_s']:.1f} | {r['write_worker_s']:.1f} | {r['written']} / {r['failed']} | "
              f"{r['bytes_per_particle_frame']:.2f} |")
    one, two = results["pool x1"], results["pool x2"]
    speedup = {"pool x2 vs x1 (wall)": one["wall_s"] / two["wall_s"],
               "pool x2 vs x1 (steady)": one["steady_s"] / max(two["steady_s"], 1e-9)}
    if "ray x2" in results:
        speedup["ray x2 / pool x2 time (wall)"] = results["ray x2"]["wall_s"] / two["wall_s"]
        speedup["ray x2 / pool x2 time (steady)"] = results["ray x2"]["steady_s"] / max(two["steady_s"], 1e-9)
    print()
    for key, value in speedup.items():
        print(f"{key}: {value:.2f}x")
    print(f"acceptance: pool x2 >= 1.7x pool x1 (wall): {speedup['pool x2 vs x1 (wall)'] >= 1.7}"
          + (f"; ray x2 within 1.3x of pool x2 (wall): {speedup['ray x2 / pool x2 time (wall)'] <= 1.3}"
             if "ray x2" in results else "") + f"; bit-identical data across executors: {identical}")
    if args.json:
        Path(args.json).write_text(json.dumps({"count": args.count, "frames": args.frames, "family": args.family,
                                               "options": options, "particles": sizes, "rows": results,
                                               "speedup": speedup, "identical": identical}, indent=2, default=str))
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
