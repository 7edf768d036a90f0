"""`Run`: one training run in one directory — seeding, torchrun's process group, checkpoints with resume,
metrics and a progress bar — around a loop the caller writes.

    run = Run("out/mlp", seed=0, resume=args.resume, checkpoint_every=100)
    model = run.prepare(model, optimizer, scheduler)      # resumes from DIR/checkpoints if asked
    batches = run.batches(DataLoader(data, batch_size=32, sampler=ResumableSampler(len(data), seed=0)))
    for step in run.steps(1000):                          # starts at the restored step; checkpoints itself
        loss = loss_fn(model, next(batches))
        optimizer.zero_grad(); loss.backward(); optimizer.step(); scheduler.step()
        run.log(step, loss=loss)                          # averaged over ranks; rank 0 writes the CSV
    run.close()

The loop is the caller's, so the same Run serves a loop over DataLoader batches and a loop whose loss is a
differentiable simulator rollout (for that case: `prepare(..., ddp=False)` and `run.sync_gradients()`
after backward; see simcore.learned.train.distributed).

Layout of DIR: checkpoints/step_%08d.pt, metrics.csv, tensorboard/ (when tensorboard is installed).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch

from simcore.progress import Progress

from . import checkpoint as ckpt
from . import distributed
from .metrics import MetricsLogger
from .sampler import batches as sampler_batches
from .seeding import rng_state, seed_everything, set_rng_state


class Run:
    """One training run writing into `out_dir`.

    Args:
        out_dir: the run's directory (created).
        seed: seeds Python, NumPy and torch on every rank (models built after this start equal).
        resume: continue from the newest checkpoint in out_dir/checkpoints (a fresh start if there is
            none). Without it, a directory that already holds checkpoints is an error, so that two runs
            never mix.
        checkpoint_every: save after every this many steps (and after the last step of `steps(total)`);
            0: only after the last step.
        keep_checkpoints: how many of the newest checkpoints to keep (0: all).
        tensorboard: True: also log to out_dir/tensorboard (an error if tensorboard is not installed);
            None: do so when it is installed; False: CSV only.
        progress: the progress bar (simcore.progress.Progress's `show`: None shows it once the loop runs
            a couple of seconds, False never); only rank 0 shows one.
        backend, device: see simcore.learned.train.distributed.setup.
    Attributes: dist (DistInfo), device, rank, world_size, is_main, start_step (the first step to run).
    """

    def __init__(self, out_dir: str | os.PathLike, *, seed: int = 0, resume: bool = False,
                 checkpoint_every: int = 0, keep_checkpoints: int = 2, tensorboard: bool | None = None,
                 progress: bool | None = None, backend: str | None = None, device=None):
        if int(checkpoint_every) < 0:
            raise ValueError(f"checkpoint_every must be >= 0 steps (0: only at the end), got {checkpoint_every}")
        self.out_dir = Path(out_dir)
        self.checkpoint_dir = self.out_dir / "checkpoints"
        self.seed, self.resume = int(seed), bool(resume)
        self.checkpoint_every, self.keep_checkpoints = int(checkpoint_every), int(keep_checkpoints)
        self.tensorboard, self.progress = tensorboard, progress
        self.dist = distributed.setup(backend, device)
        seed_everything(self.seed)
        self.start_step = 0
        self.step = 0
        self.model = None
        self._objects: dict = {}
        self._metrics: MetricsLogger | None = None
        if self.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)

    @classmethod
    def from_args(cls, args: argparse.Namespace, **overrides) -> Run:
        """A Run from the options `add_arguments` defined."""
        options = dict(seed=args.seed, resume=args.resume, checkpoint_every=args.checkpoint_every,
                       keep_checkpoints=args.keep_checkpoints, progress=False if args.no_progress else None,
                       tensorboard=False if args.no_tensorboard else None)
        options.update(overrides)
        return cls(args.out, **options)

    device = property(lambda self: self.dist.device)
    rank = property(lambda self: self.dist.rank)
    world_size = property(lambda self: self.dist.world_size)
    is_main = property(lambda self: self.dist.is_main)

    def prepare(self, model: torch.nn.Module, optimizer=None, scheduler=None, *, ddp: bool = True,
                **stateful) -> torch.nn.Module:
        """Move `model` to the run's device, restore a checkpoint if resuming, and return the model to train
        with: DistributedDataParallel-wrapped when distributed and `ddp`, else the model itself (then call
        `sync_gradients()` after each backward in a distributed run).

        The optimizer, scheduler and any further objects with state_dict()/load_state_dict() (`stateful`,
        e.g. a GradScaler or a sampler) are saved in and restored from every checkpoint. Build the optimizer
        on the model's parameters before calling this (module.to keeps the same Parameter objects).
        """
        model.to(self.device)
        self.model = model
        self._objects = {"model": model, "optimizer": optimizer, "scheduler": scheduler, **stateful}
        for name, obj in self._objects.items():
            if obj is not None and not (hasattr(obj, "state_dict") and hasattr(obj, "load_state_dict")):
                raise ValueError(f"{name} has no state_dict()/load_state_dict(), so a checkpoint cannot hold it")
        latest = ckpt.latest_checkpoint(self.checkpoint_dir)
        if latest is not None and not self.resume:
            raise ValueError(f"{self.out_dir} already holds checkpoints (newest: {latest.name}): pass resume=True "
                             f"(--resume) to continue that run, or choose another output directory")
        wrapped = distributed.wrap(model, self.dist) if ddp else model
        if self.dist.distributed and not ddp:
            distributed.broadcast_parameters(model)
        if self.resume and latest is not None:
            self._restore(latest)
        if self.is_main:
            tb = None if self.tensorboard is False else self.out_dir / "tensorboard"
            self._metrics = MetricsLogger(self.out_dir / "metrics.csv", tensorboard_dir=tb,
                                          require_tensorboard=bool(self.tensorboard), resume_step=self.start_step)
        return wrapped

    def _restore(self, path: Path) -> None:
        # On the CPU: generator states must stay CPU tensors; load_state_dict copies weights onto the model's
        # device and the optimiser's state onto its parameters' device.
        state = ckpt.load_checkpoint(path, map_location="cpu")
        for name, obj in self._objects.items():
            if obj is None:
                continue
            if name not in state:
                raise ValueError(f"checkpoint {path} has no {name!r} state: it was written by a run with "
                                 f"different objects ({sorted(k for k in state if k not in ('rng', 'step'))})")
            obj.load_state_dict(state[name])
        states = state["rng"]
        set_rng_state(states[self.rank % len(states)])
        self.start_step = self.step = int(state["step"])

    def steps(self, total: int):
        """Yield the step numbers start_step, ..., total - 1 with a progress bar; after each step that
        completes a multiple of `checkpoint_every` steps, and after the last, save a checkpoint."""
        total = int(total)
        if total < self.start_step:
            raise ValueError(f"the run was resumed at step {self.start_step}, past the requested total of {total} "
                             f"steps: ask for more steps, or start a new run")
        show = self.progress if self.is_main else False
        with Progress(total - self.start_step, "step", show=show) as bar:
            for step in range(self.start_step, total):
                yield step
                self.step = step + 1
                if self.step == total or (self.checkpoint_every and self.step % self.checkpoint_every == 0):
                    self.save()
                bar.update()

    def batches(self, loader):
        """Endless batches of `loader` (sampler: simcore.learned.train.ResumableSampler), one a step, from
        the batch an uninterrupted run would use at `start_step`: a resumed run sees the same data."""
        return sampler_batches(loader, self.start_step)

    def sync_gradients(self) -> None:
        """Average gradients over ranks (for `prepare(..., ddp=False)` loops; a no-op in one process)."""
        distributed.sync_gradients(self.model)

    def log(self, step: int, **metrics) -> None:
        """Log `metrics` (numbers or 0-d tensors) at `step`. In a distributed run every rank must call it;
        the values are averaged over ranks and rank 0 writes them."""
        if self.dist.distributed:
            metrics = distributed.all_reduce_mean(metrics)
        if self.is_main:
            if self._metrics is None:
                raise ValueError("call run.prepare(model, ...) before run.log(...)")
            self._metrics.log(step, metrics)

    def save(self, **extra) -> Path | None:
        """Write a checkpoint of every prepared object, the step count and every rank's generator states
        (collective: every rank calls it; rank 0 writes). Returns the path on rank 0."""
        if self.model is None:
            raise ValueError("call run.prepare(model, ...) before saving a checkpoint")
        rng = distributed.gather_objects(rng_state())
        path = None
        if self.is_main:
            state = {name: obj.state_dict() for name, obj in self._objects.items() if obj is not None}
            state.update(step=self.step, rng=rng, seed=self.seed, world_size=self.world_size, extra=extra)
            path = ckpt.save_checkpoint(ckpt.checkpoint_path(self.checkpoint_dir, self.step), state)
            ckpt.prune_checkpoints(self.checkpoint_dir, self.keep_checkpoints)
        distributed.barrier()
        return path

    def close(self) -> None:
        """Close the metrics files and leave the process group."""
        if self._metrics is not None:
            self._metrics.close()
            self._metrics = None
        distributed.shutdown()

    def __enter__(self) -> Run:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def add_arguments(parser: argparse.ArgumentParser, *, out: str | None = None) -> argparse.ArgumentParser:
    """Add the options every training script shares: --out, --seed, --resume, --checkpoint-every,
    --keep-checkpoints, --no-progress, --no-tensorboard (read back by Run.from_args)."""
    parser.add_argument("--out", required=out is None, default=out, help="the run's directory")
    parser.add_argument("--seed", type=int, default=0, help="seed for Python, NumPy and torch (default 0)")
    parser.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --out")
    parser.add_argument("--checkpoint-every", type=int, default=0, metavar="STEPS",
                        help="save a checkpoint every STEPS steps (default: at the end only)")
    parser.add_argument("--keep-checkpoints", type=int, default=2, metavar="N",
                        help="keep the newest N checkpoints (0: all; default 2)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar or lines")
    parser.add_argument("--no-tensorboard", action="store_true", help="metrics to CSV only")
    return parser
