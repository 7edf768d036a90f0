"""A Lagrangian flow network fitted to a simcore dam break: its density and velocity over time, next to
the particles.

simcore simulates a 2D water column released at the left wall (the `lflows_dam_break` family); the
particles are counted per cell (density, a mass fraction per m²) and averaged (velocity); LFlows is fitted
to the first three quarters of the frames, except a held-out block on the floor, and then drawn at four
times, the last one held out. Its continuity residual ∂ρ/∂t + ∇·(ρv) is at float round-off by
construction, and its total mass is exactly 1 at every time.

    python examples/lflows_dam_break.py            # ~3,000 steps (minutes on one core)
    python examples/lflows_dam_break.py --quick    # a small run (< 60 s): grid 32, 150 steps

A second run with the same --out loads the flow it trained (delete the directory to train again).
"""

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from simcore.learned.lflows import evaluate, train  # noqa: E402
from simcore.learned.train import latest_checkpoint, read_metrics  # noqa: E402

import simcore as sc  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument("--quick", action="store_true", help="a small, fast run (grid 32, 150 steps)")
parser.add_argument("--out", default="out/lflows_dam_break", help="the run's directory (checkpoints, picture)")
args = parser.parse_args()

torch.set_num_threads(1)
sc.init("cpu", "f32", verbose=False)
if args.quick:
    setup = dict(steps=150, batch=256, hidden=32, blocks=2, data_options={"grid": 32, "frames": 24, "cells": 16})
else:
    setup = dict(steps=3000, batch=512)
out = Path(args.out)
cache = out / "cache"

# 1. Fit (or load) LFlows on the dam break's density and velocity observations.
if latest_checkpoint(out / "checkpoints") is not None:
    print(f"loaded the flow trained before from {out} (delete it to train again)")
else:
    train.train("dam_break", out, model="lflows", progress=False, tensorboard=False, cache=cache, **setup)
    rows = read_metrics(out / "metrics.csv")
    print(f"trained {setup['steps']} steps: loss {rows[0]['loss']:.4g} -> {rows[-1]['loss']:.4g}")
flow, d, _ = train.load(out, cache=cache)

# 2. How good is it, and does it conserve mass?
rho, _ = evaluate.predict(flow, d, "region")
print(f"density R² on the held-out block {evaluate.r2(rho, d.rho[d.mask('region')]):.3f}, "
      f"on the later times {evaluate.r2(evaluate.predict(flow, d, 'future')[0], d.rho[d.mask('future')]):.3f}")
print(f"continuity residual RMS {evaluate.residual_rms(flow, d, points=500):.1e} of ρ_s/T (float64)")

# 3. The picture: particles (top), learned density with its velocity arrows (bottom), at four times.
frames = np.linspace(0, len(d.times) - 1, 4).round().astype(int)
fig, axes = plt.subplots(2, 4, figsize=(12, 6))
n = 64
grid = np.stack(np.meshgrid((np.arange(n) + 0.5) / n, (np.arange(n) + 0.5) / n, indexing="xy"), -1).reshape(-1, 2)
arrows = np.stack(np.meshgrid(np.linspace(0.05, 0.95, 16), np.linspace(0.05, 0.95, 16), indexing="xy"), -1).reshape(-1, 2)
for col, k in enumerate(frames):
    t = float(d.times[k])
    held = " (held out)" if t > d.t_split else ""
    ax = axes[0, col]
    ax.scatter(d.particles[k, :, 0], d.particles[k, :, 1], s=1, c="tab:blue")
    ax.set(xlim=(0, 1), ylim=(0, 1), aspect="equal", xticks=[], yticks=[], title=f"particles, t = {t:.2f} s{held}")
    x = torch.as_tensor(grid, dtype=torch.float32)
    with torch.no_grad():
        density = flow.density(x, torch.full((len(x),), t)).numpy().reshape(n, n)
    xa = torch.as_tensor(arrows, dtype=torch.float32)
    ta = torch.full((len(xa),), t)
    va = flow.velocity(xa, ta).detach().numpy()
    with torch.no_grad():
        where = flow.density(xa, ta).numpy() > 0.2 * density.max()  # arrows where the water is
    ax = axes[1, col]
    ax.imshow(density, origin="lower", extent=(0, 1, 0, 1), cmap="viridis")
    ax.quiver(arrows[where, 0], arrows[where, 1], va[where, 0], va[where, 1], color="w", scale=20, width=0.004)
    ax.set(xticks=[], yticks=[], title=f"LFlows ρ and v, t = {t:.2f} s{held}")
fig.suptitle("simcore dam break: particles (top) and the Lagrangian flow network's density and velocity (bottom)")
fig.tight_layout()
fig.savefig(out / "dam_break.png", dpi=80)
print(f"wrote {out / 'dam_break.png'}")
