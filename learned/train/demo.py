"""The smallest complete training script on the toolkit: a tiny MLP fitted to y = sin(3 x · w) on 96
synthetic points, through a DataLoader whose ResumableSampler shards each epoch over the ranks. The tests use it for resume and DDP
equivalence; it is also the template for the models' own scripts.

    python -m simcore.learned.train.demo --out out/demo --steps 200
    python -m simcore.learned.train.demo --out out/demo --steps 400 --resume      # continues to step 400
    torchrun --standalone --nproc_per_node 2 -m simcore.learned.train.demo --out out/demo2 --batch 16

With W ranks and --batch B each, the ranks' batches of a step together hold the samples of one process's
batch of W·B (simcore.learned.train.sampler), so W ranks follow the parameters of one process with batch
W·B (gradients averaged over ranks = the gradient of the mean over the whole batch), up to floating-point
summation order.
"""

from __future__ import annotations

import argparse

import torch

from .run import Run, add_arguments
from .sampler import ResumableSampler

N_POINTS, N_IN = 96, 3


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m simcore.learned.train.demo", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    parser.add_argument("--steps", type=int, default=200, help="optimiser steps in all (default 200)")
    parser.add_argument("--batch", type=int, default=32, help="points per rank per step (default 32)")
    parser.add_argument("--hidden", type=int, default=32, help="hidden width (default 32)")
    parser.add_argument("--dropout", type=float, default=0.0, help="dropout probability (draws from the RNG)")
    parser.add_argument("--lr", type=float, default=1e-2, help="Adam learning rate (default 1e-2)")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument("--sync", choices=("ddp", "allreduce"), default="ddp",
                        help="ddp: DistributedDataParallel; allreduce: run.sync_gradients() after backward, "
                             "as a simulator-rollout loop does")
    parser.add_argument("--stop-at", type=int, default=None, metavar="STEP",
                        help="raise KeyboardInterrupt after step STEP, as if the job were killed (for tests)")
    return parser


def synthetic_data(dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """The regression set, fixed whatever the run's seed: inputs (N, 3), targets (N, 1)."""
    g = torch.Generator().manual_seed(1234)
    x = torch.rand(N_POINTS, N_IN, generator=g, dtype=torch.float64) * 2 - 1
    w = torch.tensor([1.0, -0.5, 0.25], dtype=torch.float64)
    return x.to(dtype), torch.sin(3 * x @ w)[:, None].to(dtype)


def train(argv: list[str] | None = None) -> torch.nn.Module:
    """Run the demo with command-line `argv`; returns the trained (unwrapped) model."""
    args = build_parser().parse_args(argv)
    dtype = getattr(torch, args.dtype)
    with Run.from_args(args) as run:
        x, y = (t.to(run.device) for t in synthetic_data(dtype))
        model = torch.nn.Sequential(torch.nn.Linear(N_IN, args.hidden), torch.nn.Tanh(), torch.nn.Dropout(args.dropout),
                                    torch.nn.Linear(args.hidden, 1)).to(dtype)
        optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=50, gamma=0.5)
        net = run.prepare(model, optimizer, scheduler, ddp=args.sync == "ddp")
        data = torch.utils.data.TensorDataset(x, y)
        sampler = ResumableSampler(len(data), seed=args.seed, rank=run.rank, world_size=run.world_size)
        batches = run.batches(torch.utils.data.DataLoader(data, batch_size=args.batch, sampler=sampler))
        for step in run.steps(args.steps):
            inputs, targets = next(batches)
            loss = torch.mean((net(inputs) - targets) ** 2)
            optimizer.zero_grad()
            loss.backward()
            if args.sync == "allreduce":
                run.sync_gradients()
            optimizer.step()
            scheduler.step()
            run.log(step, loss=loss.detach(), lr=scheduler.get_last_lr()[0])
            if args.stop_at is not None and step == args.stop_at:
                raise KeyboardInterrupt(f"stopped after step {step} (--stop-at)")
        return model


if __name__ == "__main__":
    train()
