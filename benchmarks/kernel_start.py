"""What a process pays before its first rigid step runs: Taichi's Python-to-IR pass of the step kernel
plus compiling it (cold) or loading it from the offline cache (warm).

Each measurement is a fresh subprocess timing its first `World.run(steps=5)` of a box sliding on a plane
(the step kernel's first call), against its own temporary kernel cache: the first process finds it empty
(cold), the second finds what the first wrote (warm). `--plain` runs the same with Taichi's own
source-position formatting (simcore.backend memoizes it), for comparison in the same run.

    python benchmarks/kernel_start.py [--repeats 2]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time


def child(plain: bool) -> None:
    import simcore as sc

    if plain:
        from taichi.lang.ast.ast_transformer_utils import ASTTransformerContext

        ASTTransformerContext.get_pos_info = ASTTransformerContext.get_pos_info.original
    sc.init("cpu", "f32", verbose=False)
    world = sc.rigid.World(dt=0.01, gravity=(0, -9.81, 0))
    world.add(sc.rigid.Plane(point=(0, 0, 0), normal=(0, 1, 0), friction=0.5))
    world.add(sc.rigid.Box(size=(0.5, 0.5, 0.5), density=1e3, position=(0, 0.25, 0), velocity=(4, 0, 0)))
    start = time.perf_counter()
    world.run(steps=5)
    print(f"{time.perf_counter() - start:.3f}")


def measure(plain: bool, cache: str) -> float:
    env = dict(os.environ, TI_OFFLINE_CACHE_FILE_PATH=cache)
    args = [sys.executable, __file__, "--child"] + (["--plain"] if plain else [])
    out = subprocess.run(args, env=env, capture_output=True, text=True, check=True).stdout
    return float(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=2, help="cold/warm pairs per variant (default 2)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--plain", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.plain)
        return
    print("| source positions | cold: first run s | warm: first run s |\n|---|---|---|")
    for _ in range(args.repeats):
        for plain in (False, True):
            with tempfile.TemporaryDirectory() as cache:
                cold, warm = measure(plain, cache), measure(plain, cache)
            print(f"| {'Taichi (plain)' if plain else 'memoized'} | {cold:.1f} | {warm:.1f} |", flush=True)


if __name__ == "__main__":
    main()
