"""Kernel-by-kernel cost of a differentiable rollout: Taichi's kernel profiler over one forward-only
rollout (under torch.no_grad) and one forward + backward rollout of a neo-Hookean jelly falling onto a
frictional plane (f32, CPU).

    python benchmarks/diff_profile.py [--dim 3] [--grid 64] [--side 0.25] [--frames 10] [--k 10]

Prints the two profiles (total kernel time, calls, average per call) and the ratio of their totals.
Kernel time excludes Python overhead; `benchmarks/diff_memory.py` measures wall-clock time.
"""

import argparse

import taichi as ti
import torch

import simcore as sc
import simcore.backend as backend


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dim", type=int, default=3, choices=[2, 3])
    parser.add_argument("--grid", type=int, default=64)
    parser.add_argument("--side", type=float, default=0.25, help="edge of the jelly cube (m)")
    parser.add_argument("--frames", type=int, default=10, help="frames of 10 substeps of 2e-4 s")
    parser.add_argument("--k", type=int, default=10, help="checkpoint interval (substeps)")
    args = parser.parse_args()
    start = backend._try_init
    backend._try_init = lambda arch, precision, **kw: start(arch, precision, kernel_profiler=True, **kw)
    sc.init("cpu", "f32")
    d = args.dim
    E = torch.tensor(5e4, requires_grad=True)
    scene = sc.Scene(dim=d, grid=args.grid, dt=2e-4)
    scene.add_body(sc.shapes.Box(center=(0.5, 0.4, 0.5)[:d], size=(args.side,) * d), sc.materials.NeoHookean(E=E),
                   velocity=(0.0, -1.0, 0.0)[:d])
    scene.add_collider(sc.colliders.Plane(point=(0, 0.1, 0)[:d], normal=(0, 1, 0)[:d], friction=0.3))
    kw = dict(frames=args.frames, frame_dt=10 * 2e-4, checkpoint_every=args.k)
    print(f"{d}D, {scene.n_particles} particles, grid {args.grid}, {10 * args.frames} substeps, k = {args.k}")
    scene.rollout(**kw).x[-1].mean().backward()  # compile everything first

    def profile(title, fn):
        ti.profiler.clear_kernel_profiler_info()
        fn()
        print(f"=== {title}")
        ti.profiler.print_kernel_profiler_info("count")
        return ti.profiler.get_kernel_profiler_total_time()

    def forward():
        with torch.no_grad():
            scene.rollout(**kw)

    fwd = profile("forward only", forward)
    both = profile("forward + backward", lambda: scene.rollout(**kw).x[-1].mean().backward())
    print(f"kernel time: forward {fwd * 1e3:.1f} ms, forward + backward {both * 1e3:.1f} ms ({both / fwd:.2f}x)")


if __name__ == "__main__":
    main()
