"""One training loop for GIOROM and GNS (`--model giorom|gns`) on a generated dataset.

    python -m simcore.learned.giorom.train --data DIR --model giorom --out RUN --steps 20000 --minutes 10
    python -m simcore.learned.giorom.train --data DIR --model giorom --out RUN --steps 20000 --minutes 10 --resume

Samples are WindowDataset windows of W + 1 frames → the next frame (training split; splits by trajectory
with FRACTIONS and split seed 0, so evaluation's test trajectories are never trained on). Windows in which a
body hits a wall (`impact_windows`) are drawn with probability --impact-share in all (default 0.5; 0: every
window alike), so a model sees collisions with the walls often enough to learn them. Each step: one
batch, the model's `loss(batch)` (models.py), Adam, a learning rate decaying exponentially from --lr to
--lr / 10 over --steps. `--minutes` is a wall-clock budget: the loop stops when it is spent (checked per
step), saves a checkpoint and records the steps done, so two models get the same training time.
Checkpoints, `--resume`, metrics.csv and the progress bar are simcore.learned.train's; the model's
configuration sits in RUN/model.json and `load(RUN)` rebuilds the model from the newest checkpoint.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from simcore.learned.data import store
from simcore.learned.data.torch_dataset import WindowDataset, collate_particles, split_indices
from simcore.learned.train import ResumableSampler, Run, add_arguments, latest_checkpoint, load_checkpoint
from torch.utils.data import DataLoader

from simcore.mpm.config import BOUND

from .models import build, default_config

FRACTIONS = (5 / 7, 1 / 7, 1 / 7)  # 14 trajectories -> 10 train, 2 validation, 2 test
MODEL_FILE = "model.json"
STATS_PARTICLES = 4096  # particles per trajectory the velocity / acceleration statistics are taken over
SAMPLING_FILE = "sampling.json"
# A window is an impact window when a particle ends it (the predicted frame) within CONTACT of a wall while
# moving towards that wall faster than IMPACT_SPEED at the window's last frame. 2 cm is two particle
# spacings of the 3D datasets (the GNS radius is 2.5 cm); 0.1 m/s is 1.7 mm a frame at 1/60 s, ten times
# what sand creeping along the floor moves, so resting contact does not count as an impact.
CONTACT = 0.02  # m
IMPACT_SPEED = 0.1  # m/s
# Default share of draws from impact windows. In the 3D datasets' training splits they are 28 % (elastic),
# 15 % (sand), 89 % (water) and 22 % (plasticine) of the windows: half the draws doubles to triples the
# collisions the stepper sees on three materials and still leaves half for free flight; water's windows
# are left as they are (a share above the target is never lowered).
IMPACT_SHARE = 0.5


def domain_bounds(dataset: store.Dataset) -> tuple[float, float]:
    """(lo, hi) m of the region inside the wall layer (BOUND cells of the dataset's grid) on every axis."""
    grid = int(dataset.attrs["options"]["grid"])
    return BOUND / grid, 1 - BOUND / grid


def frame_statistics(dataset: store.Dataset, trajectories, seed: int = 0) -> tuple[np.ndarray, ...]:
    """(v_mean, v_std, a_mean, a_std), each (dim,): finite-difference velocity (m/frame) and acceleration
    (m/frame²) over every frame of `trajectories`, on up to STATS_PARTICLES particles of each."""
    velocities, accelerations = [], []
    for index in trajectories:
        t = dataset[index]
        x = np.asarray(t.x[:], dtype=np.float64)
        keep = np.random.default_rng([seed, index]).permutation(x.shape[1])[:STATS_PARTICLES]
        v = np.diff(x[:, keep], axis=0)
        velocities.append(v.reshape(-1, x.shape[2]))
        accelerations.append(np.diff(v, axis=0).reshape(-1, x.shape[2]))
    v, a = np.concatenate(velocities), np.concatenate(accelerations)
    return v.mean(0), v.std(0), a.mean(0), a.std(0)


def impact_windows(dataset: store.Dataset, windows: WindowDataset, bounds: tuple[float, float],
                   contact: float = CONTACT, speed: float = IMPACT_SPEED) -> np.ndarray:
    """(len(windows),) bool: whether sample i of `windows` is an impact window (see CONTACT): some particle
    lies within `contact` m of a wall (bounds (lo, hi) m on every axis) at the predicted frame t + 1 and
    moved towards that wall faster than `speed` m/s from frame t − 1 to t."""
    lo, hi = bounds
    flags = np.zeros(len(windows), dtype=bool)
    per_trajectory = windows.windows_per_trajectory
    for which, index in enumerate(windows.trajectories):
        t = dataset[index]
        x = np.asarray(t.x[:], dtype=np.float64)
        step = speed * float(t.frame_dt)  # m/frame
        v = x[1:] - x[:-1]  # v[k]: frame k -> k + 1
        for offset in range(per_trajectory):
            frame = windows.history - 1 + offset  # the window's last frame t (WindowDataset.locate)
            if frame < 1 or frame + 1 >= x.shape[0]:
                continue
            end, last = x[frame + 1], v[frame - 1]
            hits_lo = (end - lo < contact) & (last < -step)
            hits_hi = (hi - end < contact) & (last > step)
            flags[which * per_trajectory + offset] = bool((hits_lo | hits_hi).any())
    return flags


def impact_weights(impact: np.ndarray, share: float) -> np.ndarray:
    """Sampling weights (n,) that draw the windows flagged in `impact` (n,) bool with total probability
    `share` (each flagged window alike, each other window alike); uniform when `share` is 0, when none or
    all are flagged, or when the flagged windows already make up at least `share` of the data."""
    if not 0 <= share < 1:
        raise ValueError(f"impact share must be in [0, 1) (0: sample every window alike), got {share}")
    impact = np.asarray(impact, dtype=bool)
    count = int(impact.sum())
    if share == 0 or count in (0, len(impact)) or count / len(impact) >= share:
        return np.ones(len(impact))
    return np.where(impact, share / count, (1 - share) / (len(impact) - count))


class WeightedSampler(ResumableSampler):
    """A ResumableSampler whose epochs are `size` draws with replacement by `weights` (size,), seeded by
    (seed, epoch) like the parent's permutations, so a resumed run draws what the uninterrupted one did."""

    def __init__(self, weights, **kwargs):
        weights = torch.as_tensor(np.asarray(weights, dtype=np.float64))
        if weights.dim() != 1 or not (weights >= 0).all() or not weights.sum() > 0:
            raise ValueError("weights must be one non-negative number per sample, not all zero")
        super().__init__(len(weights), **kwargs)
        self.weights = weights

    def shard(self, epoch: int) -> list[int]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        total = self.per_rank * self.world_size
        order = torch.multinomial(self.weights, total, replacement=True, generator=generator).tolist()
        return order[self.rank::self.world_size]


def splits(path) -> dict:
    """{train, validation, test: trajectory indices} of a dataset, as training and evaluation use them."""
    return split_indices(store.open_dataset(path).indices, FRACTIONS, 0)


def load(out, checkpoint=None) -> torch.nn.Module:
    """The trained model of run directory `out` (newest checkpoint, or `checkpoint`), in eval mode."""
    out = Path(out)
    if not (out / MODEL_FILE).exists():
        raise ValueError(f"{out} has no {MODEL_FILE}: not a run directory of simcore.learned.giorom.train")
    config = json.loads((out / MODEL_FILE).read_text())
    path = Path(checkpoint) if checkpoint else latest_checkpoint(out / "checkpoints")
    if path is None:
        raise ValueError(f"{out}/checkpoints holds no checkpoint: train first (python -m simcore.learned.giorom.train)")
    model = build(config)
    model.load_state_dict(load_checkpoint(path)["model"])
    return model.eval()


def train(data, out, model: str = "giorom", *, steps: int = 1000, minutes: float | None = None, batch: int = 1,
          lr: float = 1e-3, seed: int = 0, resume: bool = False, checkpoint_every: int = 200,
          progress: bool | None = False, threads: int | None = None, impact_share: float = IMPACT_SHARE,
          **settings) -> dict:
    """Train `model` on dataset `data` into run directory `out`; returns {"steps", "seconds", "loss",
    "sampling"}: sampling = {impact_windows (share of the training windows), impact_draws (their expected
    share of the draws), impact_share}, also in RUN/sampling.json. `settings` override the model's
    configuration (models.DEFAULTS, COMMON). See the module docstring."""
    if threads:
        torch.set_num_threads(int(threads))
    if int(steps) < 1 or int(batch) < 1:
        raise ValueError(f"steps and batch must be >= 1, got steps={steps}, batch={batch}")
    if minutes is not None and not minutes > 0:
        raise ValueError(f"minutes (the wall-clock budget) must be > 0, got {minutes}")
    if not 0 <= impact_share < 1:
        raise ValueError(f"impact_share must be in [0, 1) (0: sample every window alike), got {impact_share}")
    dataset = store.open_dataset(data)
    first = dataset[dataset.indices[0]]
    config = default_config(model, int(dataset.attrs["dim"]), first.frame_dt, domain_bounds(dataset), **settings)
    config["kinds"] = sorted({int(k) for k in np.unique(np.asarray(first.kind))})
    windows = WindowDataset(data, "train", history=config["window"] + 1, fractions=FRACTIONS, split_seed=0)
    impact = impact_windows(dataset, windows, tuple(config["bounds"]))
    weights = impact_weights(impact, impact_share)
    sampling = {"impact_windows": float(impact.mean()), "impact_draws": float(weights[impact].sum() / weights.sum()),
                "impact_share": float(impact_share)}
    run = Run(out, seed=seed, resume=resume, checkpoint_every=checkpoint_every, progress=progress,
              tensorboard=False)
    with run:
        net = build(config)
        if not resume or latest_checkpoint(run.checkpoint_dir) is None:
            net.stepper.set_statistics(*frame_statistics(dataset, windows.trajectories))
        optimizer = torch.optim.Adam(net.parameters(), lr=lr)
        scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=0.1 ** (1 / int(steps)))
        net = run.prepare(net, optimizer, scheduler)
        if run.is_main:
            (Path(out) / MODEL_FILE).write_text(json.dumps(config, indent=1))
            (Path(out) / SAMPLING_FILE).write_text(json.dumps(sampling, indent=1))
        sampler = WeightedSampler(weights, seed=seed, rank=run.rank, world_size=run.world_size)
        batches = run.batches(DataLoader(windows, batch_size=int(batch), sampler=sampler, collate_fn=collate_particles))
        start, loss, done = time.perf_counter(), float("nan"), run.start_step
        net.train()
        for step in run.steps(int(steps)):
            loss, metrics = net.loss(next(batches))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
            done = step + 1
            run.log(step, **metrics, lr=scheduler.get_last_lr()[0])
            if not torch.isfinite(loss):
                raise FloatingPointError(f"the loss became {loss.item()} at step {step}; lower --lr")
            if minutes is not None and time.perf_counter() - start > 60 * minutes:
                run.step = done
                run.save()
                break
        seconds = time.perf_counter() - start
    return {"steps": done, "seconds": seconds, "loss": float(loss.detach()) if torch.is_tensor(loss) else loss,
            "sampling": sampling}


def main(argv=None) -> dict:
    parser = add_arguments(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    parser.add_argument("--data", required=True, help="dataset directory (simcore.learned.giorom.datasets)")
    parser.add_argument("--model", choices=("giorom", "gns"), default="giorom")
    parser.add_argument("--steps", type=int, default=1000, help="optimiser steps (the learning rate decays over them)")
    parser.add_argument("--minutes", type=float, default=None, help="wall-clock budget; stop when spent")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (the docs' runs use 1)")
    parser.add_argument("--impact-share", type=float, default=IMPACT_SHARE,
                        help="share of draws from windows where a body hits a wall (0: every window alike)")
    for key in ("nodes", "latent", "mp_steps", "radius", "noise", "decoder_queries"):
        parser.add_argument("--" + key.replace("_", "-"), type=float if key in ("radius", "noise") else int,
                            default=None)
    args = parser.parse_args(argv)
    if args.checkpoint_every == 0:
        args.checkpoint_every = 200
    settings = {"nodes": args.nodes, "latent": args.latent, "mp_steps": args.mp_steps, "radius": args.radius,
                "noise": args.noise, "decoder_queries": args.decoder_queries}
    if args.model == "gns":
        settings = {k: v for k, v in settings.items() if k not in ("nodes", "decoder_queries") or v is None}
        if args.nodes is not None or args.decoder_queries is not None:
            parser.error("--nodes and --decoder-queries are GIOROM settings; GNS runs on every particle")
    result = train(args.data, args.out, args.model, steps=args.steps, minutes=args.minutes, batch=args.batch,
                   lr=args.lr, seed=args.seed, resume=args.resume, checkpoint_every=args.checkpoint_every,
                   progress=False if args.no_progress else None, threads=args.threads,
                   impact_share=args.impact_share, **settings)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
