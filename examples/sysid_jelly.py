"""System identification: recover Young's modulus E and Poisson's ratio ν of a 3D jelly from its
observed trajectory, through differentiable rollouts.

The jelly is thrown sideways onto a rough floor: the impact squashes it (volume change: bulk modulus),
friction drags its foot while its top moves on (shear: shear modulus), and it then sags and wobbles
(stiffness sets the frequency). "Observed" positions of every particle in every frame are made with
the true E and ν; the fit starts 2× off in E and 0.1 off in ν and runs L-BFGS on (log E, ν) to match
them (loss: mean squared particle distance over all frames, in grid cells²). The observations carry
Gaussian noise (--noise, 1 mm by default) so that the fit is not an exact replay of its own data.

    python examples/sysid_jelly.py [--iters 50] [--grid 32] [--frames 30] [--plot out/sysid.png]

Prints the loss, E and ν each iteration, and a summary line with the errors of the best fit (the
rollout with the lowest loss).
"""

import argparse
import math
import time

import torch

import simcore as sc

parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument("--iters", type=int, default=50, help="at most this many iterations")
parser.add_argument("--grid", type=int, default=32)
parser.add_argument("--frames", type=int, default=30)
parser.add_argument("--size", type=float, default=0.2, help="edge of the jelly cube (m)")
parser.add_argument("--E", type=float, default=2e4, help="true Young's modulus (Pa)")
parser.add_argument("--nu", type=float, default=0.3, help="true Poisson's ratio")
parser.add_argument("--noise", type=float, default=1e-3, help="std of the observation noise (m)")
parser.add_argument("--plot", default=None, help="write the history to this PNG")
args = parser.parse_args()

sc.init("cpu", "f64")
dtype = torch.float64
# The unknowns, bounded by smooth maps so that no trial step of the line search leaves the range where
# the fixed dt below is stable: E in (E_init / 4, 4 E_init) on a log scale, ν in (0, 0.45).
E_init, nu_init = 2 * args.E, args.nu - 0.1                                    # 2× too stiff, 0.1 too small
z_E = torch.zeros((), dtype=dtype, requires_grad=True)
z_nu = torch.tensor(math.atanh(nu_init / 0.225 - 1), dtype=dtype, requires_grad=True)


def moduli():
    """E (Pa) and ν of the current guess, on the autograd graph of z_E and z_nu."""
    return E_init * 4 ** torch.tanh(z_E), 0.225 * (1 + torch.tanh(z_nu))


# The jelly starts with the true moduli to make the observations; each fitting rollout replaces them.
jelly = sc.materials.NeoHookean(E=torch.tensor(args.E, dtype=dtype), nu=torch.tensor(args.nu, dtype=dtype),
                                density=1e3)

# dt fixed for the stiffest material the fit may visit (E = 4 E_init, ν = 0.45; the CFL choice would
# change with E).
scene = sc.Scene(dim=3, grid=args.grid, dt=1 / args.grid / 40)
scene.add_body(sc.shapes.Box(center=(0.4, 0.15 + args.size / 2 + 0.05, 0.5), size=(args.size,) * 3), jelly,
               velocity=(1.0, -1.5, 0.0), name="jelly")
scene.add_collider(sc.colliders.Plane(point=(0, 0.15, 0), normal=(0, 1, 0), friction=0.5))

with torch.no_grad():
    observed = scene.rollout(frames=args.frames, frame_dt=1 / 60).x
    observed += args.noise * torch.randn(observed.shape, dtype=dtype, generator=torch.Generator().manual_seed(0))

history = []  # (loss, E, ν) of each rollout


def closure():
    """One rollout with gradients: the loss, and dloss/dz in z_E.grad, z_nu.grad."""
    start = time.perf_counter()
    optimizer.zero_grad()
    jelly.E, jelly.nu = moduli()
    x = scene.rollout(frames=args.frames, frame_dt=1 / 60).x
    loss = ((x[1:] - observed[1:]) / scene.dx).pow(2).sum(-1).mean()
    loss.backward()
    history.append((loss.item(), jelly.E.item(), jelly.nu.item()))
    print(f"iter {len(history) - 1:3d}  loss {loss.item():.3e} cells²  E {history[-1][1]:9.1f} Pa  "
          f"nu {history[-1][2]:.4f}  ({time.perf_counter() - start:.1f} s)", flush=True)
    return loss


# Two smooth unknowns: L-BFGS with a strong-Wolfe line search; every rollout (one forward and one
# backward pass) counts as an iteration, line-search trials included.
optimizer = torch.optim.LBFGS([z_E, z_nu], lr=1, max_iter=args.iters, max_eval=args.iters,
                              tolerance_grad=1e-9, tolerance_change=1e-9, line_search_fn="strong_wolfe")
optimizer.step(closure)

best = min(range(len(history)), key=lambda i: history[i][0])
_, E_fit, nu_fit = history[best]
E_err, nu_err = abs(E_fit / args.E - 1), abs(nu_fit - args.nu)
within = [i for i, (_, E, v) in enumerate(history) if abs(E / args.E - 1) < 0.02 and abs(v - args.nu) < 0.02]
print(f"after {len(history)} iterations: E {E_fit:.1f} Pa (true {args.E:g}, error {100 * E_err:.2f} %), "
      f"nu {nu_fit:.4f} (true {args.nu:g}, error {nu_err:.4f}); loss fell "
      f"{history[0][0] / max(history[best][0], 1e-300):.3g}x; first within 2 % and 0.02 at iteration "
      f"{within[0] if within else None}")

if args.plot:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(11, 3.2))
    its = range(len(history))
    axes[0].semilogy(its, [h[0] for h in history])
    axes[0].set(xlabel="iteration", ylabel="loss (cells²)")
    axes[1].plot(its, [h[1] for h in history]), axes[1].axhline(args.E, ls="--", c="k", label="true")
    axes[1].legend()
    axes[1].set(xlabel="iteration", ylabel="E (Pa)")
    axes[2].plot(its, [h[2] for h in history]), axes[2].axhline(args.nu, ls="--", c="k")
    axes[2].set(xlabel="iteration", ylabel="ν")
    fig.tight_layout()
    fig.savefig(args.plot, dpi=100)
    print(f"wrote {args.plot}")
