"""The cost of one NCLaw training epoch, for the paper's networks and simcore's isotropic ones.

Four variants train on the jelly ground truth in one process, interleaved, on one core:

| variant | what |
|---|---|
| `nclaw` | the paper's networks (learned/nclaw/models.py, `isotropic=False`), as shipped |
| `nclaw_iso, no handover, recompute` | simcore's isotropic networks, the elastic network decomposing F_new itself, and every substep's torch forward recomputed in the reverse sweep (the code before both savings) |
| `nclaw_iso, recompute` | the handover only |
| `nclaw_iso` | as shipped: the coaxial plastic step hands F_new's rotation and stretch to the elastic network (`F_new.nclaw_stretch`), and the reverse sweep back-propagates through the graphs recorded in the forward (simcore.neural.GRAPH_BUDGET) |

"no handover" is the shipped code with the plastic step's output copied (`F_new.clone()`: the same values
and gradients, no stretch attached); "recompute" sets `simcore.neural.GRAPH_BUDGET = 0`. Each variant trains `--epochs` epochs of `--steps` steps
(`train.train`, the reduced budget's learning rates) `--repeats` times; the first epoch of each run
(warm-up: kernels, ground truth) is dropped and the median of the rest is reported, with the ratios of
the medians measured in this run.

    python benchmarks/nclaw_epoch.py [--steps 250] [--epochs 3] [--repeats 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
from pathlib import Path

VARIANTS = ("nclaw", "nclaw_iso, no handover, recompute", "nclaw_iso, recompute", "nclaw_iso")


def epoch_seconds(variant: str, steps: int, epochs: int, out: Path) -> list[float]:
    """Seconds of each epoch after the first, for one training run of `variant`."""
    from simcore.learned.nclaw import models, train
    from simcore.learned.train import read_metrics

    from simcore import neural

    forward, budget = models.PlasticNet.forward, neural.GRAPH_BUDGET
    if "no handover" in variant:
        models.PlasticNet.forward = lambda self, F, *features: forward(self, F, *features).clone()
    if "recompute" in variant:
        neural.GRAPH_BUDGET = 0
    try:
        shutil.rmtree(out, ignore_errors=True)
        train.train("jelly", out, epochs=epochs, steps=steps, model=variant.split(",")[0], progress=False,
                    tensorboard=False, stress_scale=1e3, elastic_lr=0.1, plastic_lr=0.01)
    finally:
        models.PlasticNet.forward, neural.GRAPH_BUDGET = forward, budget
    return [row["epoch_s"] for row in read_metrics(out / "metrics.csv")][1:]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=250, help="steps of the training trajectory (the paper: 1000)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per run (the first is dropped)")
    parser.add_argument("--repeats", type=int, default=2, help="runs per variant, interleaved")
    parser.add_argument("--json", default=None, help="write the results here")
    args = parser.parse_args(argv)
    if args.epochs < 2:
        parser.error("--epochs must be >= 2 (the first epoch is warm-up and dropped)")
    import simcore as sc

    sc.init("cpu", "f32", threads=1, verbose=False)
    seconds = {variant: [] for variant in VARIANTS}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeats):
            for variant in VARIANTS:
                seconds[variant] += epoch_seconds(variant, args.steps, args.epochs, Path(tmp) / "run")
    median = {variant: statistics.median(values) for variant, values in seconds.items()}
    print(f"one training epoch of {args.steps} steps, jelly, f32, one thread "
          f"(median of {len(seconds[VARIANTS[0]])} epochs per variant):")
    print("| variant | s per epoch | / nclaw_iso |")
    print("|---|---|---|")
    for variant in VARIANTS:
        print(f"| {variant} | {median[variant]:.2f} | {median[variant] / median['nclaw_iso']:.2f} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"steps": args.steps, "seconds": seconds, "median": median}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
