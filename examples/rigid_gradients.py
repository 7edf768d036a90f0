"""How κ_grad shapes gradients through contact: d(final position)/d(push force) against the force.

A box rests on a plane (μ = 0.5). A constant horizontal force F acts for `--steps` steps. With hard
contact the box does not move while F < μ m g, so d x_T / dF jumps from 0 to a positive value at the
friction threshold. The relaxed dynamics that World.rollout differentiates smooth this step: large κ_grad
gives a smooth, informative gradient below the threshold; as κ_grad → 0 it approaches the hard step.
Writes a matplotlib PNG.

    python examples/rigid_gradients.py --out out/rigid_gradients.png
"""

import argparse
import os

import numpy as np
import torch

import simcore.rigid as rigid

KAPPAS = (1e-1, 1e-2, 1e-3, 1e-5)


def gradient_curve(kappa_grad, forces, steps=25, dt=0.02):
    """d x_T / dF (m/N) at each force (N) for one κ_grad; also returns the threshold μ m g (N)."""
    out = []
    for f in forces:
        world = rigid.World(dt=dt, gravity=(0, -9.81, 0), kappa_grad=kappa_grad)
        world.add(rigid.Plane(friction=0.5))
        box = world.add(rigid.Box(size=(0.5, 0.5, 0.5), density=200.0, position=(0, 0.25, 0)))
        force = torch.tensor(float(f), dtype=torch.float64, requires_grad=True)
        u = torch.zeros(steps, 1, 6, dtype=torch.float64)
        u = u + force * torch.nn.functional.one_hot(torch.tensor(0), 6).to(torch.float64)
        x_final = world.rollout(steps=steps, controls=u).position[-1, 0, 0]
        (grad,) = torch.autograd.grad(x_final, force)
        out.append(float(grad))
    return np.array(out), 0.5 * float(box.mass) * 9.81


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="out/rigid_gradients.png")
    parser.add_argument("--points", type=int, default=25, help="forces sampled")
    parser.add_argument("--steps", type=int, default=25, help="steps of the push (dt = 0.02 s)")
    args = parser.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    threshold = 0.5 * 200.0 * 0.125 * 9.81
    forces = np.linspace(0.5 * threshold, 1.5 * threshold, args.points)
    fig, ax = plt.subplots(figsize=(6, 4))
    for kappa in KAPPAS:
        grads, _ = gradient_curve(kappa, forces, args.steps)
        ax.plot(forces, grads, marker=".", label=f"κ_grad = {kappa:g}")
        print(f"κ_grad {kappa:g}: d x_T/dF at 0.75 threshold = {grads[len(forces) // 4]:.3e} m/N")
    t = args.steps * 0.02
    ax.plot(forces, np.where(forces > threshold, t**2 / (2 * 200.0 * 0.125), 0.0), "k--", lw=1,
            label="hard contact, continuous time (T²/2m above μmg)")
    ax.axvline(threshold, color="gray", lw=0.5)
    ax.set_xlabel("push force F (N)")
    ax.set_ylabel("d x_T / dF (m/N)")
    ax.legend()
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    tmp = args.out + ".tmp.png"
    fig.savefig(tmp, dpi=120)
    os.replace(tmp, args.out)  # atomic write
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
