"""Taichi's CPU loop costs behind the solver's serial/parallel choices (`MPMSolver.SERIAL_GRID_NODES`).

Three measurements, each a ratio of two ways of running the same loop in the same process:

1. Launch cost of a parallel range-for: a kernel whose one loop has 2 iterations, run parallel and
   serialized (`ti.loop_config(serialize=True)`). The difference is the thread-pool round trip a
   parallel loop pays before any work.
2. A grid update over a whole 32³ grid (momentum / mass + gravity, a floor wall), serial against
   parallel: the largest grid the solver's CPU passes run serially.
3. How many threads a range-for of N iterations really uses: process CPU time over wall time of a
   compute-bound loop, for N = 2 … 1024 (N items of equal work each).

    python benchmarks/cpu_loops.py [--repeats 500]

Prints microseconds per call and the ratios. Single absolute timings on a shared machine are noise;
the comparisons are what the solver's choices rest on. (No `from __future__ import annotations` here:
Taichi reads the kernels' `ti.template()` annotations as objects.)
"""


import argparse
import resource
import time

import taichi as ti

from simcore.backend import KERNEL_CACHE_BYTES


def per_call_us(fn, repeats: int) -> float:
    """Best-of-3 mean microseconds per call of fn() (synchronised)."""
    fn()
    ti.sync()
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(repeats):
            fn()
        ti.sync()
        best = min(best, (time.perf_counter() - start) / repeats * 1e6)
    return best


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=500)
    args = parser.parse_args()
    # simcore's cache limit: a Taichi started with its default (100 MB) trims the shared kernel cache on
    # exit, offline cache on or off, evicting simcore's kernels (simcore.backend.KERNEL_CACHE_BYTES).
    ti.init(arch=ti.cpu, verbose=False, offline_cache_max_size_of_files=KERNEL_CACHE_BYTES)

    # 1. Launch cost.
    flag = ti.field(ti.f32, shape=8)

    @ti.kernel
    def tiny(serial: ti.template()):
        ti.loop_config(serialize=serial)
        for i in range(2):
            flag[i] = 1.0

    serial_us = per_call_us(lambda: tiny(True), args.repeats)
    parallel_us = per_call_us(lambda: tiny(False), args.repeats)
    print(f"2-iteration loop: serial {serial_us:.1f} us, parallel {parallel_us:.1f} us per launch "
          f"(a parallel loop's round trip: {parallel_us - serial_us:.1f} us)")

    # 2. Grid update over a whole 32³ grid.
    n = 32
    momentum = ti.Vector.field(3, ti.f32, shape=(n, n, n))
    mass = ti.field(ti.f32, shape=(n, n, n))
    velocity = ti.Vector.field(3, ti.f32, shape=(n, n, n))
    mass.fill(1.0)

    @ti.kernel
    def grid_update(serial: ti.template()):
        ti.loop_config(serialize=serial)
        for I in ti.grouped(ti.ndrange(n, n, n)):
            m = mass[I]
            v = ti.zero(velocity[I])
            if m > 1e-9:
                v = momentum[I] / m + 1e-3 * ti.Vector([0.0, -9.8, 0.0])
                if I[1] < 3 and v[1] < 0:
                    v = ti.zero(v)
            velocity[I] = v

    serial_us = per_call_us(lambda: grid_update(True), args.repeats)
    parallel_us = per_call_us(lambda: grid_update(False), args.repeats)
    print(f"32^3 grid update: serial {serial_us:.1f} us, parallel {parallel_us:.1f} us "
          f"(parallel / serial {parallel_us / serial_us:.2f})")

    # 3. Threads used by a range-for of N items.
    work = ti.field(ti.f32, shape=1 << 14)

    @ti.kernel
    def items(count: ti.i32):
        for t in range(count):
            chunk = (1 << 14) // count
            for j in range(chunk):
                x = work[t * chunk + j]
                for _ in range(50):
                    x = ti.sin(x) * 0.999 + 0.001
                work[t * chunk + j] = x

    for count in (2, 64, 512, 1024):
        items(count)
        ti.sync()
        cpu0 = resource.getrusage(resource.RUSAGE_SELF).ru_utime
        start = time.perf_counter()
        for _ in range(20):
            items(count)
        ti.sync()
        wall = time.perf_counter() - start
        cpu = resource.getrusage(resource.RUSAGE_SELF).ru_utime - cpu0
        print(f"range-for of {count:5d} items: CPU time / wall time {cpu / wall:.2f} (threads busy)")


if __name__ == "__main__":
    main()
