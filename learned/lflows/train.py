"""Fitting a density (and velocity) model to a data set's training observations: one loop for LFlows and
its baselines, the model chosen by `model` ("lflows", "pinn" or "mlp").

The loss of a batch of observation points (x, t, ρ, v), with ρ_s = M / box volume and v_s the data's
density-weighted RMS velocity:

    density:   mean (ρ̂ − ρ)² / ρ_s²                                   (density_loss "mse")
               or mean (softplus(log ρ̂/ρ_s) − softplus(log ρ/ρ_s))²   ("log": the reference's transformed MSE,
               relative errors where there is mass, absolute ones where there is little)
    velocity:  Σ w |v̂ − v|² / Σ w / v_s²,  w = ρ / ρ_s where v was observed   (× velocity_weight; not for mlp)
    residual:  mean (∂ρ̂/∂t + ∇·(ρ̂v̂))² / (ρ_s / T)²  at `collocation` random points of box × [t0, t1]
               (× residual_weight; the PINN's only hold on continuity; LFlows needs none)

Adam with cosine annealing and gradient clipping, the same for every model; the budget is the number of
steps and the batch size. Checkpoints, `--resume`, the progress bar and metrics.csv (loss, density,
velocity, residual, lr) come from simcore.learned.train.Run; the data order is a ResumableSampler's, so a
resumed run sees the batches an uninterrupted one would. The run's directory keeps its settings in
run.json, from which `load` rebuilds the model and the data.

    python -m simcore.learned.lflows.train --data gaussians2d --model lflows --steps 3000 --out /tmp/lflows_runs/g2
    python -m simcore.learned.lflows.train --data gaussians2d --model lflows --steps 6000 --out /tmp/lflows_runs/g2 --resume
    python -m simcore.learned.lflows.train --data dam_break --model pinn --steps 3000 --out /tmp/lflows_runs/dam_pinn

    from simcore.learned.lflows import train
    model = train.train("gaussians2d", "/tmp/lflows_runs/g2", model="lflows", steps=3000)
    model, data = train.load("/tmp/lflows_runs/g2")
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional

from . import continuity
from . import data as lfdata
from .baselines import PINN, DensityMLP
from .model import LagrangianFlow

MODELS = ("lflows", "pinn", "mlp")
SETTINGS_FILE = "run.json"
DTYPES = {"f32": torch.float32, "f64": torch.float64}


@dataclasses.dataclass
class Settings:
    """What a run trains and how (all of it lands in run.json).

    data: a data set name (data.DATASETS); data_options: keyword arguments of data.load (smaller versions).
    model: "lflows", "pinn" or "mlp". steps: optimiser steps; batch: observation points per step;
    lr: Adam's initial learning rate (cosine-annealed to 0 over `steps`); clip: gradient-norm bound.
    hidden: network width; blocks: LFlows' coupling blocks (4 layers each); components: Gaussians in LFlows'
    base mixture; depth: the MLPs' hidden layers.
    velocity_weight, residual_weight: loss weights (above); collocation: residual points per step (pinn).
    precision: "f32" or "f64" (the residual at round-off is shown in f64). density_loss: "mse" or "log".
    """

    data: str = "gaussians2d"
    data_options: dict = dataclasses.field(default_factory=dict)
    model: str = "lflows"
    steps: int = 3000
    batch: int = 512
    lr: float = 3e-3
    clip: float = 1.0
    hidden: int = 64
    blocks: int = 4
    components: int = 4
    depth: int = 4
    density_loss: str = "mse"
    velocity_weight: float = 1.0
    residual_weight: float = 1.0
    collocation: int = 256
    precision: str = "f32"

    def check(self) -> None:
        if self.model not in MODELS:
            raise ValueError(f"unknown model {self.model!r}; choose one of {', '.join(MODELS)}")
        if self.data not in lfdata.DATASETS:
            raise ValueError(f"unknown data set {self.data!r}; choose one of {', '.join(lfdata.DATASETS)}")
        if self.density_loss not in ("mse", "log"):
            raise ValueError(f"density_loss must be 'mse' or 'log', got {self.density_loss!r}")
        if self.precision not in DTYPES:
            raise ValueError(f"precision must be 'f32' or 'f64', got {self.precision!r}")
        for name in ("steps", "batch", "hidden", "blocks", "components", "depth", "collocation"):
            value = getattr(self, name)
            if not (isinstance(value, int) and value >= 1):
                raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")
        for name in ("lr", "clip"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        for name in ("velocity_weight", "residual_weight"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0 (0 turns the term off), got {getattr(self, name)!r}")


def make_model(settings: Settings, d: lfdata.FlowData) -> torch.nn.Module:
    """A fresh model of `settings.model` for data `d` (inputs normalised to its box and times; LFlows to its
    mass's mean and spread), in its precision."""
    lo, hi = (torch.as_tensor(b, dtype=torch.float32) for b in d.box)
    box = dict(center=(lo + hi) / 2, scale=(hi - lo) / 2, time_range=d.time_range)
    if settings.model == "lflows":
        # The flow starts as the normal of the observed mass's mean and spread (ActNorm's data-dependent
        # start, Kingma & Dhariwal 2018), not of the box: from the box's normal, the first hundreds of
        # steps only move mass to where the data are.
        w = d.rho * d.mask("train")
        mean = (w[:, None] * d.x).sum(0) / w.sum()
        spread = np.sqrt((w[:, None] * (d.x - mean) ** 2).sum(0) / w.sum())
        box.update(center=torch.as_tensor(mean, dtype=torch.float32), scale=torch.as_tensor(spread, dtype=torch.float32))
        model = LagrangianFlow(d.dim, mass=d.mass, blocks=settings.blocks, hidden=settings.hidden,
                               components=settings.components, **box)
    else:
        cls = PINN if settings.model == "pinn" else DensityMLP
        model = cls(d.dim, density_scale=d.density_scale, velocity_scale=d.velocity_scale, hidden=settings.hidden,
                    depth=settings.depth, **box)
    return model.to(DTYPES[settings.precision])


def random_points(d: lfdata.FlowData, n: int, dtype, generator: torch.Generator | None = None):
    """n points uniform over the data's box × [t0, t1]: x (n, dim) m, t (n,) s."""
    lo, hi = (torch.as_tensor(b, dtype=dtype) for b in d.box)
    x = lo + (hi - lo) * torch.rand(n, d.dim, dtype=dtype, generator=generator)
    t0, t1 = d.time_range
    return x, t0 + (t1 - t0) * torch.rand(n, dtype=dtype, generator=generator)


def loss_terms(model, batch, d: lfdata.FlowData, settings: Settings) -> dict:
    """The loss and its terms (module docstring) for one batch (x, t, rho, v, v_seen)."""
    x, t, rho, v, seen = batch
    rho_s, v_s = d.density_scale, d.velocity_scale
    use_velocity = model.has_velocity and settings.velocity_weight > 0 and bool(seen.any())
    if use_velocity and isinstance(model, LagrangianFlow):
        # One pass of T for ρ and v (the velocity term was 80 % of a step, mostly a second pass of T and
        # its dim separate backward traversals); v only where it was observed.
        pred, velocity = model.density_and_velocity(x, t, where=seen)
    else:
        pred = model.density(x, t)
        velocity = model.velocity(x[seen], t[seen]) if use_velocity else None
    if settings.density_loss == "mse":
        terms = {"density": ((pred - rho) ** 2).mean() / rho_s ** 2}
    else:  # log of 0 observed: the softplus of −∞ is 0, its limit
        soft = lambda r: functional.softplus(torch.log(r.clamp_min(1e-30) / rho_s))  # noqa: E731
        terms = {"density": ((soft(pred) - soft(rho)) ** 2).mean()}
    loss = terms["density"]
    if use_velocity:
        w = rho[seen] / rho_s
        err = ((velocity - v[seen]) ** 2).sum(-1)
        terms["velocity"] = (w * err).sum() / w.sum().clamp_min(1e-12) / v_s ** 2
        loss = loss + settings.velocity_weight * terms["velocity"]
    if isinstance(model, PINN) and settings.residual_weight > 0:
        xc, tc = random_points(d, settings.collocation, x.dtype)
        scale = continuity.scale(rho_s, d.time_range[1] - d.time_range[0])
        terms["residual"] = (continuity.residual(model.density, model.velocity, xc, tc) ** 2).mean() / scale ** 2
        loss = loss + settings.residual_weight * terms["residual"]
    terms["loss"] = loss
    return terms


def train(data: str = "gaussians2d", out="out/lflows", *, resume: bool = False, seed: int = 0,
          checkpoint_every: int = 500, progress: bool | None = None, tensorboard: bool | None = None,
          stop_after: int | None = None, torch_threads: int | None = 1, cache=None, log_every: int = 10,
          **settings) -> torch.nn.Module:
    """Train a model on data set `data`, writing checkpoints, metrics.csv and run.json into `out`.

    settings: the fields of `Settings` (model, steps, batch, lr, ..., data_options). A resumed run must
    ask for the same settings (steps may grow). cache: where simcore trajectories are kept (data.simulate).
    stop_after: leave after this many steps of this call without the final checkpoint, as a killed job
    would (for tests of --resume). torch_threads: torch's intra-op threads while training (None: as is).
    Returns the trained model.
    """
    unknown = sorted(set(settings) - {f.name for f in dataclasses.fields(Settings)})
    if unknown:
        raise ValueError(f"unknown settings {unknown}; the settings are {[f.name for f in dataclasses.fields(Settings)]}")
    s = Settings(data=data, **settings)
    s.check()
    path = Path(out) / SETTINGS_FILE
    if resume and path.exists():
        before = json.loads(path.read_text())
        changed = sorted(k for k, value in dataclasses.asdict(s).items() if k != "steps" and before.get(k) != value)
        if changed:
            raise ValueError(f"{out} was trained with other settings ({', '.join(f'{k}={before.get(k)!r}' for k in changed)}); "
                             "resume with the same settings (only --steps may change) or use another --out")
    threads = torch.get_num_threads()
    if torch_threads is not None:
        torch.set_num_threads(torch_threads)
    try:
        return _train(s, Path(out), resume, seed, checkpoint_every, progress, tensorboard, stop_after, cache, log_every)
    finally:
        torch.set_num_threads(threads)


def _train(s: Settings, out: Path, resume, seed, checkpoint_every, progress, tensorboard, stop_after, cache,
           log_every) -> torch.nn.Module:
    from simcore.learned.train import ResumableSampler, Run

    d = lfdata.load(s.data, cache=cache, **s.data_options)
    dtype = DTYPES[s.precision]
    with Run(out, seed=seed, resume=resume, checkpoint_every=checkpoint_every, progress=progress,
             tensorboard=tensorboard) as run:
        model = make_model(s, d)
        optimizer = torch.optim.Adam(model.parameters(), lr=s.lr)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=s.steps)
        run.prepare(model, optimizer, scheduler, ddp=False)
        if run.is_main:
            (out / SETTINGS_FILE).write_text(json.dumps(dataclasses.asdict(s), indent=1) + "\n")
        points = torch.utils.data.TensorDataset(*d.tensors("train", dtype))
        sampler = ResumableSampler(len(points), seed=seed, rank=run.rank, world_size=run.world_size)
        batches = run.batches(torch.utils.data.DataLoader(points, batch_size=s.batch, sampler=sampler, drop_last=True))
        begin = time.perf_counter()
        for step in run.steps(s.steps):
            terms = loss_terms(model, next(batches), d, s)
            optimizer.zero_grad()
            terms["loss"].backward()
            grad = torch.nn.utils.clip_grad_norm_(model.parameters(), s.clip)
            if not torch.isfinite(grad):
                raise FloatingPointError(f"step {step}: the gradient is not finite (norm {float(grad)}); lower --lr")
            optimizer.step()
            scheduler.step()
            if step % log_every == 0 or step == s.steps - 1:
                run.log(step, **{k: float(v.detach()) for k, v in terms.items()}, lr=scheduler.get_last_lr()[0],
                        grad=float(grad), elapsed_s=time.perf_counter() - begin)
            if stop_after is not None and step + 1 - run.start_step >= stop_after:
                break
    return model


def load(out, cache=None) -> tuple[torch.nn.Module, lfdata.FlowData, Settings]:
    """(model at its newest checkpoint, its data, its settings) of the run in `out`."""
    from simcore.learned.train import latest_checkpoint, load_checkpoint

    path = latest_checkpoint(Path(out) / "checkpoints")
    if path is None or not (Path(out) / SETTINGS_FILE).exists():
        raise ValueError(f"{out} holds no finished training run (run.json and checkpoints/step_*.pt); train first: "
                         "python -m simcore.learned.lflows.train --out DIR ...")
    s = Settings(**json.loads((Path(out) / SETTINGS_FILE).read_text()))
    d = lfdata.load(s.data, cache=cache, **s.data_options)
    model = make_model(s, d)
    model.load_state_dict(load_checkpoint(path, map_location="cpu")["model"])
    return model, d, s


def build_parser() -> argparse.ArgumentParser:
    from simcore.learned.train import add_arguments

    parser = argparse.ArgumentParser(prog="python -m simcore.learned.lflows.train", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    default = Settings()
    parser.add_argument("--data", default=default.data, choices=lfdata.DATASETS)
    parser.add_argument("--model", default=default.model, choices=MODELS, help="lflows (default), pinn or mlp")
    for name in ("steps", "batch", "hidden", "blocks", "components", "depth", "collocation"):
        parser.add_argument(f"--{name}", type=int, default=getattr(default, name), help=f"default {getattr(default, name)}")
    for name in ("lr", "clip", "velocity_weight", "residual_weight"):
        parser.add_argument(f"--{name.replace('_', '-')}", type=float, default=getattr(default, name),
                            help=f"default {getattr(default, name)}")
    parser.add_argument("--precision", default="f32", choices=tuple(DTYPES))
    parser.add_argument("--density-loss", default=default.density_loss, choices=("mse", "log"),
                        help="mse (default): on ρ; log: the reference's softplus(log ρ) MSE")
    parser.add_argument("--cache", default=None, help="directory for simcore trajectories (default: simulate anew)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a data option as a Python literal, e.g. --set cells=16 --set frames=12")
    return parser


def parse_options(items) -> dict:
    """{key: value} from --set KEY=VALUE items, values as Python literals (SystemExit on a malformed one)."""
    import ast

    options = {}
    for item in items:
        key, sep, value = item.partition("=")
        try:
            options[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            sep = ""
        if not sep:
            raise SystemExit(f"--set takes KEY=VALUE with a Python literal value, e.g. --set cells=16; got {item!r}")
    return options


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    options = parse_options(args.set)
    settings = {name: getattr(args, name) for name in ("model", "steps", "batch", "lr", "clip", "hidden", "blocks",
                                                       "components", "depth", "density_loss", "velocity_weight", "residual_weight", "collocation",
                                                       "precision")}
    train(args.data, args.out, resume=args.resume, seed=args.seed, checkpoint_every=args.checkpoint_every or 500,
          progress=False if args.no_progress else None, tensorboard=False if args.no_tensorboard else None,
          cache=args.cache, data_options=options, **settings)
    print(f"metrics: {Path(args.out) / 'metrics.csv'}; checkpoints: {Path(args.out) / 'checkpoints'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
