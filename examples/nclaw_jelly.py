"""NCLaw on jelly: learn a constitutive law from one thrown cube's motion, then throw it again.

The ground truth is simcore's fixed-corotated jelly (E = 1e5 Pa, ν = 0.2) thrown spinning into the floor
(simcore.learned.nclaw.ground_truth). A law made of NCLaw's two networks (rotation-invariant features,
P = R S, a learned return map) is trained from that trajectory through the differentiable MPM
(simcore.learned.nclaw.train), or loaded from the checkpoint a previous run wrote into --out. The learned
law is then a `materials.Neural` like any other: the cube is thrown with it and with the true jelly for
twice the trained time, and the two are drawn side by side.

    python examples/nclaw_jelly.py                  # 250 steps, 60 epochs: about 6 minutes on 2 cores
    python examples/nclaw_jelly.py --quick          # a small cube, 30 steps, 5 epochs: well under a minute
    python examples/nclaw_jelly.py --model nclaw_iso  # with simcore's extra priors (docs/nclaw.md)

Prints the training loss, the position MSE (m²) of the learned and of the untrained law against the
ground truth, and writes --png.
"""

import argparse
import time
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import torch
from simcore.learned.nclaw import ground_truth as gt
from simcore.learned.nclaw import train as nt
from simcore.learned.train import read_metrics

import simcore as sc

parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument("--quick", action="store_true", help="a small cube, few steps and epochs (for tests)")
parser.add_argument("--model", default="nclaw", choices=("nclaw", "nclaw_iso"),
                    help="the paper's networks (default) or simcore's variant with extra priors (isotropy, "
                         "positive stiffness at rest, dissipative plastic flow)")
parser.add_argument("--out", default=None, help="training run directory (checkpoints; default out/nclaw_jelly_<model>)")
parser.add_argument("--png", default=None, help="the side-by-side picture (default: <out>/side_by_side.png)")
args = parser.parse_args()
args.out = args.out or f"out/nclaw_jelly_{args.model}"

sc.init("cpu", "f32", threads=1)
if args.quick:  # a 0.3 m cube (216 particles) low enough to reach the floor within the steps trained on
    steps, epochs, setup = 30, 5, {"size": 0.3, "center": (0.5, 0.32, 0.5)}
else:
    steps, epochs, setup = 250, 60, {}
# A fresh network's raw output is ~0.1 Pa: its output is read in kPa, with learning rates to match.
budget = dict(stress_scale=1e3, elastic_lr=0.1, plastic_lr=0.01, teacher=(20, 20) if args.quick else (25, 200))

start = time.perf_counter()
metrics = Path(args.out) / "metrics.csv"
if metrics.exists() and len(read_metrics(metrics)) >= epochs:
    law = nt.load(args.out)  # the checkpoint this script wrote before
    print(f"loaded the law trained before from {args.out}")
else:
    law = nt.train("jelly", args.out, epochs=epochs, steps=steps, model=args.model, resume=metrics.exists(),
                   progress=False, tensorboard=False, ground_truth_options=setup, **budget)
loss = [row["loss"] for row in read_metrics(metrics)]
print(f"training: {len(loss)} epochs, loss {loss[0]:.3g} -> {loss[-1]:.3g} ({time.perf_counter() - start:.0f} s)")


def throw(material) -> sc.Trajectory:
    """The training throw with `material`, for twice the trained time."""
    scene = sc.Scene(dim=3, grid=gt.GRID, particles_per_cell=1, dt=gt.DT, walls="separate")
    scene.add_body(gt.cube(setup.get("center", gt.CUBE_CENTER), setup.get("size", gt.CUBE_SIZE)), material,
                   velocity=gt.VELOCITY, angular_velocity=gt.ANGULAR_VELOCITY, name="cube")
    with torch.no_grad():
        return scene.run(frames=2 * steps, frame_dt=gt.DT, progress=False)


truth, learned = throw(gt.material("jelly")), throw(law.material(name="learned jelly"))
untrained = throw(nt.make_law(args.model, stress_scale=budget["stress_scale"]).material(name="untrained"))
mse = {name: float(((traj.x[1:] - truth.x[1:]) ** 2).mean()) for name, traj in (("learned", learned),
                                                                                ("untrained", untrained))}
print(f"position MSE over {2 * steps} steps (twice the trained time): learned {mse['learned']:.3e} m², "
      f"untrained {mse['untrained']:.3e} m²")

# One picture per trajectory at three times, the ground truth's row above the learned law's.
png = Path(args.png or Path(args.out) / "side_by_side.png")
frames = [steps // 2, steps, 2 * steps]
rows = []
for name, traj in (("simcore jelly (ground truth)", truth), ("learned NCLaw jelly", learned)):
    pattern = str(png.parent / f"_{png.stem}_{len(rows)}_%04d.png")
    sc.viz.render(traj, pattern, frames=frames, size=(320, 240), title=name)
    images = [iio.imread(pattern % f) for f in frames]
    rows.append(np.concatenate([image[..., :3] for image in images], axis=1))
    for f in frames:
        Path(pattern % f).unlink()
iio.imwrite(png, np.concatenate(rows, axis=0))
print(f"wrote {png} (frames {frames}: top simcore, bottom learned)")
