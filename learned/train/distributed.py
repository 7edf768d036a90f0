"""Data-parallel training through torch.distributed, launched with `torchrun`.

Under torchrun (WORLD_SIZE, RANK, LOCAL_RANK, MASTER_ADDR, MASTER_PORT in the environment) `setup()` joins
the process group with env:// initialisation: NCCL when CUDA is present (one GPU per process, chosen by
LOCAL_RANK), gloo on CPU. Without WORLD_SIZE it is a plain single process and nothing is started.

Two ways to keep the replicas equal, both averaging gradients over ranks:
- `wrap(model)`: torch's DistributedDataParallel, for ordinary loops where the model's forward is called
  once per backward on a batch (GIOROM, LFlows). It overlaps the all-reduce with the backward pass.
- `sync_gradients(model)` after `loss.backward()`: one all-reduce of every gradient, for loops where the
  model is not called through its own forward once per step, e.g. a learned constitutive law evaluated
  thousands of times inside a differentiable simulator rollout, possibly again inside the simulator's
  backward (NCLaw). DDP's reducer assumes one forward per backward and would see none of the calls made
  from inside a custom autograd Function's backward; an explicit all-reduce has no such assumption.
  `broadcast_parameters(model)` first makes every rank start from rank 0's parameters.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands: `rank` of `world_size` processes, `local_rank` on its node, the torch
    `device` it computes on, and the process-group `backend` ("gloo", "nccl"; None: a single process)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    backend: str | None = None

    @property
    def distributed(self) -> bool:
        return self.backend is not None

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes checkpoints, metrics and progress."""
        return self.rank == 0


def setup(backend: str | None = None, device: str | torch.device | None = None) -> DistInfo:
    """Join torchrun's process group if WORLD_SIZE is set (env:// initialisation), else run alone.

    Args:
        backend: "gloo" | "nccl" | None (NCCL if CUDA is available, else gloo).
        device: the device to compute on; None: cuda:LOCAL_RANK where CUDA is available, else cpu.
    """
    if backend not in (None, "gloo", "nccl"):
        raise ValueError(f"backend must be 'gloo', 'nccl' or None (automatic), got {backend!r}")
    cuda = torch.cuda.is_available()
    if "WORLD_SIZE" not in os.environ:
        dev = torch.device(device) if device is not None else torch.device("cuda" if cuda else "cpu")
        return DistInfo(device=dev)
    try:
        world_size = int(os.environ["WORLD_SIZE"])
        rank = int(os.environ["RANK"])
        local_rank = int(os.environ.get("LOCAL_RANK", rank))
    except (KeyError, ValueError) as error:
        raise ValueError("WORLD_SIZE is set but RANK/LOCAL_RANK are missing or not integers: launch with "
                         "torchrun (which sets them all), or unset WORLD_SIZE for a single process") from error
    backend = backend or ("nccl" if cuda else "gloo")
    if backend == "nccl" and not cuda:
        raise ValueError("backend 'nccl' needs CUDA, which this process does not have: use 'gloo' on CPU")
    if device is not None:
        dev = torch.device(device)
    elif cuda:
        dev = torch.device("cuda", local_rank)
    else:
        dev = torch.device("cpu")
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        # torch._dynamo, imported lazily by the first optimizer a script builds, keeps a reference to every
        # process group that exists when it is imported; destroy_process_group then leaves gloo's threads
        # running until interpreter exit, where their teardown aborted about one two-process run in 80
        # ("terminate called without an active exception", SIGABRT after all work was done). Imported
        # before the group exists, it holds none and shutdown() joins those threads.
        importlib.import_module("torch._dynamo")
        kwargs = {"device_id": dev} if backend == "nccl" else {}
        dist.init_process_group(backend=backend, init_method="env://", world_size=world_size, rank=rank, **kwargs)
    return DistInfo(rank=rank, world_size=world_size, local_rank=local_rank, device=dev, backend=backend)


def shutdown() -> None:
    """Leave the process group (a no-op in a single process)."""
    if dist.is_available() and dist.is_initialized():
        # Every rank reaches this point before any tears the group down: a rank that destroys its gloo
        # context while another still sends on it (the last step's all-reduce, the checkpoint's gather)
        # can abort that rank at exit (seen as a rare failure of a two-process torchrun).
        if dist.get_world_size() > 1:
            dist.barrier()
        dist.destroy_process_group()


def _active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def wrap(model: torch.nn.Module, info: DistInfo, **ddp_options) -> torch.nn.Module:
    """`model` as DistributedDataParallel when `info` is distributed, else unchanged."""
    if not info.distributed:
        return model
    device_ids = [info.device.index] if info.device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=device_ids, **ddp_options)


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The module inside a DistributedDataParallel wrapper (or `model` itself)."""
    return model.module if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model


def broadcast_parameters(model: torch.nn.Module, src: int = 0) -> None:
    """Copy rank `src`'s parameters and buffers to every rank (for `sync_gradients` loops)."""
    if _active():
        with torch.no_grad():
            for tensor in [*model.parameters(), *model.buffers()]:
                dist.broadcast(tensor.data, src)


def sync_gradients(model_or_parameters) -> None:
    """Average every parameter's gradient over the ranks, in one flat all-reduce.

    Call after `loss.backward()` and before `optimizer.step()` in loops that do not use `wrap` (see the
    module docstring). A parameter without a gradient on some rank counts as a zero gradient there, so
    that every rank sends the same number of values (a missing one would hang the others).
    """
    params = list(model_or_parameters.parameters() if isinstance(model_or_parameters, torch.nn.Module)
                  else model_or_parameters)
    if not _active() or not params:
        return
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    groups: dict = {}  # one flat buffer per (dtype, device): torch.cat needs them alike
    for p in params:
        groups.setdefault((p.grad.dtype, p.grad.device), []).append(p)
    for group in groups.values():
        flat = torch.cat([p.grad.reshape(-1) for p in group])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        flat /= dist.get_world_size()
        offset = 0
        for p in group:
            n = p.grad.numel()
            p.grad.copy_(flat[offset:offset + n].view_as(p.grad))
            offset += n


def all_reduce_mean(values: dict) -> dict:
    """The mean over ranks of each value (numbers or 0-d tensors), as floats; unchanged in one process.
    Every rank must call it with the same names."""
    names = sorted(values)
    local = torch.tensor([float(values[k]) for k in names], dtype=torch.float64)
    if _active():
        if dist.get_backend() == "nccl":
            local = local.cuda()
        dist.all_reduce(local, op=dist.ReduceOp.SUM)
        local = local.cpu() / dist.get_world_size()
    return {k: float(v) for k, v in zip(names, local.tolist())}


def gather_objects(obj) -> list:
    """Every rank's `obj` (picklable), in rank order; [obj] in one process."""
    if not _active():
        return [obj]
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def barrier() -> None:
    if _active():
        dist.barrier()
