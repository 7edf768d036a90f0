"""Throw a jelly so that it lands on a target: optimise its initial velocity through a differentiable
rollout (loss: squared distance along the floor between the jelly's centre of mass at the last frame,
after it has landed and stopped on a rough floor, and the target).

    python examples/throw.py [--iters 40] [--grid 32] [--target 0.7]

The landing point depends on the bounce, so the loss is rough in v0: Adam (lr 0.05) gets within a
cell of the target in about 20 iterations and then wanders within a few cells; the best is reported.
"""

import argparse

import torch

import simcore as sc

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--iters", type=int, default=40)
parser.add_argument("--grid", type=int, default=32)
parser.add_argument("--frames", type=int, default=45)
parser.add_argument("--target", type=float, default=0.7, help="target x of the centre of mass (m)")
parser.add_argument("--lr", type=float, default=0.05)
args = parser.parse_args()

sc.init("cpu", "f64")
v0 = torch.tensor([0.5, 1.0], dtype=torch.float64, requires_grad=True)    # initial guess, m/s
scene = sc.Scene(dim=2, grid=args.grid, dt=1e-3)
scene.add_body(sc.shapes.Box(center=(0.25, 0.25), size=(0.08, 0.08)), sc.materials.NeoHookean(E=3e4),
               velocity=v0, name="jelly")
scene.add_collider(sc.colliders.Plane(point=(0, 0.15), normal=(0, 1), friction=0.8))

optimizer = torch.optim.Adam([v0], lr=args.lr)
history = []
for it in range(args.iters):
    optimizer.zero_grad()
    out = scene.rollout(frames=args.frames, frame_dt=1 / 60)
    landing_x = out.x[-1, :, 0].mean()
    loss = (landing_x - args.target) ** 2
    loss.backward()
    optimizer.step()
    history.append(loss.item())
    print(f"iter {it:3d}  loss {loss.item():.3e} m²  landing x {landing_x.item():.4f} m  "
          f"v0 = ({v0[0].item():.3f}, {v0[1].item():.3f}) m/s", flush=True)
best = min(history)
print(f"best distance to target {best ** 0.5:.4f} m ({best ** 0.5 / scene.dx:.2f} cells), last "
      f"{history[-1] ** 0.5:.4f} m; loss fell {history[0] / max(best, 1e-300):.1f}x")
