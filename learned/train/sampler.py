"""Data order that a resumed run can reproduce: `ResumableSampler` and `Run.batches`.

torch's DataLoader(shuffle=True) draws each epoch's permutation from the global generator when an epoch
begins, and cannot start mid-epoch; a run resumed from a checkpoint taken mid-epoch would see other
batches than an uninterrupted one. Here epoch e's order is a function of (seed, e) alone, split over the
ranks like torch's DistributedSampler (rank r takes positions r, r + W, r + 2W, ...), and an epoch can start
at any position without loading the samples before it.

Rank r's k-th batch of B holds positions W·(kB + j) + r, j < B, of the epoch's permutation, so W ranks with
batch B see, together, exactly the samples one process with batch W·B sees (when W·B divides the dataset,
or with drop_last): the data-parallel run follows the single-process one.
"""

from __future__ import annotations

import math

import torch


class ResumableSampler(torch.utils.data.Sampler):
    """Indices of a dataset of `size` samples: epoch e's permutation (seeded by (seed, e)) or identity
    order, this rank's shard of it, from position `start` of the shard (`set_epoch`).

    Args:
        size: the dataset's length (or the dataset itself).
        shuffle: permute each epoch (else the natural order).
        seed: seeds the permutations (the same on every rank).
        rank, world_size: this rank's shard; default: torch.distributed's, or 0 of 1.
        drop_last: drop the tail that does not divide evenly over the ranks (else the shard is padded with
            the permutation's first indices, as DistributedSampler does, so every rank has as many).
    """

    def __init__(self, size, *, shuffle: bool = True, seed: int = 0, rank: int | None = None,
                 world_size: int | None = None, drop_last: bool = False):
        size = size if isinstance(size, int) else len(size)
        if size < 1:
            raise ValueError(f"ResumableSampler needs a dataset of at least one sample, got {size}")
        dist = torch.distributed
        active = dist.is_available() and dist.is_initialized()
        self.world_size = world_size if world_size is not None else (dist.get_world_size() if active else 1)
        self.rank = rank if rank is not None else (dist.get_rank() if active else 0)
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f"rank must be in [0, world_size={self.world_size}), got {self.rank}")
        self.size, self.shuffle, self.seed, self.drop_last = size, bool(shuffle), int(seed), bool(drop_last)
        self.per_rank = size // self.world_size if drop_last else math.ceil(size / self.world_size)
        if self.per_rank < 1:
            raise ValueError(f"{size} samples over {self.world_size} ranks with drop_last leaves none per rank")
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Iterate epoch `epoch` from position `start` of this rank's shard (samples before it are skipped,
        not loaded)."""
        if not 0 <= start <= self.per_rank:
            raise ValueError(f"start must be in [0, {self.per_rank}] (samples per rank per epoch), got {start}")
        self.epoch, self.start = int(epoch), int(start)

    def shard(self, epoch: int) -> list[int]:
        """This rank's sample indices in epoch `epoch`, in order."""
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            order = torch.randperm(self.size, generator=generator).tolist()
        else:
            order = list(range(self.size))
        total = self.per_rank * self.world_size
        order = (order * math.ceil(total / self.size))[:total]  # pad by wrapping around, or drop the tail
        return order[self.rank::self.world_size]

    def __iter__(self):
        return iter(self.shard(self.epoch)[self.start:])

    def __len__(self) -> int:
        return self.per_rank - self.start


def batches(loader: torch.utils.data.DataLoader, start_step: int = 0):
    """Endless batches of `loader` (whose sampler is a ResumableSampler), one per step, beginning with
    the batch an uninterrupted run would use at step `start_step` (epochs follow one another).

    Each epoch also sets `loader.generator` to one seeded by (sampler seed, epoch): a DataLoader draws its
    workers' base seed when an epoch's iteration begins, from the global torch generator unless it has its
    own, and a resumed run begins an iteration where the uninterrupted one did not — that draw would shift
    every later random number of the training loop (dropout, noise injection)."""
    sampler = loader.sampler
    if not isinstance(sampler, ResumableSampler):
        raise ValueError("the loader's sampler must be a ResumableSampler (DataLoader(dataset, batch_size=B, "
                         "sampler=ResumableSampler(len(dataset), seed=...))) for batches that resume exactly")
    if loader.batch_size is None:
        raise ValueError("batches(loader) needs a loader with a batch_size (automatic batching)")
    size = loader.batch_size
    per_epoch = sampler.per_rank // size if loader.drop_last else math.ceil(sampler.per_rank / size)
    if per_epoch < 1:
        raise ValueError(f"batch_size {size} with drop_last exceeds the {sampler.per_rank} samples per rank")
    epoch, k = divmod(int(start_step), per_epoch)
    while True:
        sampler.set_epoch(epoch, start=k * size)
        loader.generator = torch.Generator().manual_seed(sampler.seed * 1_000_003 + epoch + 7919)
        yield from loader
        epoch, k = epoch + 1, 0
