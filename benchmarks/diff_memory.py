"""Peak resident memory and time of a long differentiable rollout (issue 4's long-horizon check):
a 3D neo-Hookean jelly of about 20,000 particles, 2,000 substeps, loss.backward().

    python benchmarks/diff_memory.py [--particles 20000] [--substeps 2000] [--precision f32]

Prints the particle count, substeps, checkpoint interval, the seconds of `Scene.run`, of the rollout
under torch.no_grad and of the rollout with loss.backward(), and the process's peak RSS (ru_maxrss);
the first run also compiles the adjoint kernels (about 2 minutes on a 2-core CPU), reported separately
by a short warm-up rollout.
"""

import argparse
import math
import resource
import time

import torch

import simcore as sc


def peak_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--particles", type=int, default=20_000)
    parser.add_argument("--substeps", type=int, default=2_000)
    parser.add_argument("--precision", default="f32", choices=["f32", "f64"])
    args = parser.parse_args()
    sc.init("cpu", args.precision)
    dtype = torch.float64 if args.precision == "f64" else torch.float32
    grid = 64
    side = (args.particles / 8) ** (1 / 3) / grid  # lattice with 2 particles per cell per axis
    E = torch.tensor(5e4, dtype=dtype, requires_grad=True)
    scene = sc.Scene(dim=3, grid=grid, dt=2e-4)
    scene.add_body(sc.shapes.Box(center=(0.5, 0.4, 0.5), size=(side,) * 3), sc.materials.NeoHookean(E=E),
                   velocity=(0.0, -1.0, 0.0))
    scene.add_collider(sc.colliders.Plane(point=(0, 0.1, 0), normal=(0, 1, 0), friction=0.3))
    frames = args.substeps // 10
    frame_dt = 10 * 2e-4
    k = math.ceil(math.sqrt(args.substeps))  # the default interval; fixed so the warm-up builds the same solver

    start = time.perf_counter()
    out = scene.rollout(frames=math.ceil(k / 10), frame_dt=frame_dt, checkpoint_every=k)
    out.x[-1].mean().backward()
    print(f"warm-up (compiles the adjoint kernels): {time.perf_counter() - start:.1f} s, peak {peak_mib():.0f} MiB")

    scene.run(frames=1, frame_dt=frame_dt)  # compiles the forward solver
    scene.reset()
    start = time.perf_counter()
    scene.run(frames=frames, frame_dt=frame_dt)
    run_s = time.perf_counter() - start
    with torch.no_grad():
        start = time.perf_counter()
        scene.rollout(frames=frames, frame_dt=frame_dt, checkpoint_every=k)
        forward = time.perf_counter() - start
    start = time.perf_counter()
    out = scene.rollout(frames=frames, frame_dt=frame_dt, checkpoint_every=k)
    loss = out.x[-1, :, 1].mean()
    loss.backward()
    total = time.perf_counter() - start
    print(f"particles {scene.n_particles}, substeps {sum(out.meta['substeps'])}, checkpoint every "
          f"{out.meta['checkpoint_every']} substeps, precision {args.precision}")
    print(f"Scene.run {run_s:.1f} s; rollout under no_grad {forward:.1f} s ({forward / run_s:.2f}x run); "
          f"forward + backward {total:.1f} s ({total / forward:.2f}x the no_grad rollout, {total / run_s:.2f}x run)")
    print(f"peak RSS {peak_mib():.0f} MiB; dL/dE = {E.grad.item():.3e}; final x finite: "
          f"{bool(torch.isfinite(out.x).all())}")


if __name__ == "__main__":
    main()
