"""One training loop for GIOROM and GNS (`--model giorom|gns`) on a generated dataset.

    python -m simcore.learned.giorom.train --data DIR --model giorom --out RUN --steps 20000 --minutes 10
    python -m simcore.learned.giorom.train --data DIR --model giorom --out RUN --steps 20000 --minutes 10 --resume

Samples are WindowDataset windows of W + 1 frames → the next frame (training split; splits by trajectory
with FRACTIONS and split seed 0, so evaluation's test trajectories are never trained on). Each step: one
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
          progress: bool | None = False, threads: int | None = None, **settings) -> dict:
    """Train `model` on dataset `data` into run directory `out`; returns {"steps", "seconds", "loss"}.
    `settings` override the model's configuration (models.DEFAULTS, COMMON). See the module docstring."""
    if threads:
        torch.set_num_threads(int(threads))
    if int(steps) < 1 or int(batch) < 1:
        raise ValueError(f"steps and batch must be >= 1, got steps={steps}, batch={batch}")
    if minutes is not None and not minutes > 0:
        raise ValueError(f"minutes (the wall-clock budget) must be > 0, got {minutes}")
    dataset = store.open_dataset(data)
    first = dataset[dataset.indices[0]]
    config = default_config(model, int(dataset.attrs["dim"]), first.frame_dt, domain_bounds(dataset), **settings)
    config["kinds"] = sorted({int(k) for k in np.unique(np.asarray(first.kind))})
    windows = WindowDataset(data, "train", history=config["window"] + 1, fractions=FRACTIONS, split_seed=0)
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
        sampler = ResumableSampler(len(windows), seed=seed, rank=run.rank, world_size=run.world_size)
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
    return {"steps": done, "seconds": seconds, "loss": float(loss.detach()) if torch.is_tensor(loss) else loss}


def main(argv=None) -> dict:
    parser = add_arguments(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    parser.add_argument("--data", required=True, help="dataset directory (simcore.learned.giorom.datasets)")
    parser.add_argument("--model", choices=("giorom", "gns"), default="giorom")
    parser.add_argument("--steps", type=int, default=1000, help="optimiser steps (the learning rate decays over them)")
    parser.add_argument("--minutes", type=float, default=None, help="wall-clock budget; stop when spent")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (the docs' runs use 1)")
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
                   progress=False if args.no_progress else None, threads=args.threads, **settings)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
