"""Training NCLaw's networks from one trajectory through simcore's differentiable MPM.

The recipe is the reference's (`experiments/train.py`, configs `train/default.yaml`, `teacher/cosine.yaml`):

- the ground truth: the thrown cube of one material (ground_truth.py), every step's x, v, C, F;
- an epoch is one pass over the trajectory's T steps, cut into ⌈T/λ⌉ segments; each segment restarts from
  the ground-truth state (x, v, C, F: teacher forcing) and is rolled out by the MPM with the networks as
  the material; λ grows from 25 to 200 steps over the epochs on a cosine,
  λ(e) = 200 + (25 − 200) · ½(1 + cos(π e / E)), e = 0 … E − 1 (capped at T);
- the loss is the position error summed over steps, Σ_t mean_p,i (x − x̂)², times 1e4 · ⌈T/λ⌉ / T (so
  that its size does not change as the segments lengthen); one optimiser step per epoch;
- Adam (elastic network lr 1.0, plastic network lr 0.1, one parameter group each) with cosine annealing
  over the epochs, and the gradient norm of each network clipped to 0.1.

Checkpoints, `--resume`, the progress bar and metrics.csv come from simcore.learned.train.Run (one Run
step = one epoch).

The same loop trains the baselines (baselines.py), chosen by `model`: "nclaw" (the networks with the
paper's priors), "nclaw_iso" (the same plus simcore's extra priors — isotropy, a positive stiffness at
rest, dissipative plastic flow: models.py, `isotropic=True` — and a penalty in its loss on plastic flow at
the ground truth's own states: `flow_penalty`),
"mlp" (plain MLPs from F to P without priors) or "oracle" (the ground truth's material
family, its parameters identified from a wrong start; one parameter group with its own learning rate,
`oracle_lr`, as its unknowns are log-moduli rather than network weights). The run's directory keeps
the law's description in law.json, from which `load` rebuilds it.

    python -m simcore.learned.nclaw.train --material jelly --epochs 300 --out out/nclaw_jelly
    python -m simcore.learned.nclaw.train --material jelly --epochs 300 --out out/nclaw_jelly --resume
    python -m simcore.learned.nclaw.train --material jelly --model oracle --epochs 60 --out out/oracle_jelly

    from simcore.learned.nclaw import train
    law = train.train("jelly", "out/nclaw_jelly", epochs=300)   # an NCLaw module
    scene.add_body(shape, law.material())                       # a materials.Neural any scene can use
    law = train.load("out/nclaw_jelly")                         # from the newest checkpoint
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

import simcore as sc

from . import ground_truth as gt
from .baselines import MLPLaw, NetworkLaw, OracleLaw
from .models import ALPHA, HIDDEN, ElasticNet, PlasticNet, nclaw_material

TEACHER_START, TEACHER_END = 25, 200  # steps (teacher/cosine.yaml)
ELASTIC_LR, PLASTIC_LR = 1.0, 0.1  # train/default.yaml: elasticity_lr, plasticity_lr
GRAD_MAX_NORM = 0.1  # elasticity_grad_max_norm, plasticity_grad_max_norm
LOSS_SCALE = 1e4  # experiments/train.py: loss_factor = 1e4 · teacher.loss_factor
WAVE_MODULUS = 1e5  # Pa: the learned law's P-wave modulus for simcore's CFL guard (dt is fixed at gt.DT)
ORACLE_LR = 0.05  # Adam's step in the oracle's unconstrained coordinates (log E: ~5 % per epoch at first)
MODELS = ("nclaw", "nclaw_iso", "mlp", "oracle")  # nclaw_iso: NCLaw with simcore's extra priors
LAW_FILE = "law.json"  # in a run's directory: what `load` rebuilds
FLOW_WEIGHT = 0.1  # nclaw_iso's penalty on plastic flow at the truth's states (flow_penalty); docs/nclaw.md variants 12-15
DEVIATORIC_FROM = 0.05  # ... and on deviatoric flow at states strained beyond this (‖dev E‖); docs/nclaw.md variant 15


class NCLaw(NetworkLaw):
    """The learned law: an elastic network and (optionally) a plastic network (models.py)."""

    def __init__(self, dim: int = 3, hidden=HIDDEN, alpha: float = ALPHA, plastic: bool = True,
                 stress_scale: float = 1.0, isotropic: bool = False):
        super().__init__()
        self.elastic = ElasticNet(dim=dim, hidden=hidden, stress_scale=stress_scale, isotropic=isotropic)
        self.plastic = PlasticNet(dim=dim, hidden=hidden, alpha=alpha, isotropic=isotropic) if plastic else None

    def material(self, density: float = gt.DENSITY, wave_modulus: float = WAVE_MODULUS, name: str | None = None):
        """The law as a simcore material (materials.Neural); the modules are shared, not copied."""
        return nclaw_material(self.elastic, self.plastic, density=density, wave_modulus=wave_modulus, name=name)


def make_law(model: str = "nclaw", material: str = "jelly", *, plastic: bool = True, hidden=HIDDEN,
             stress_scale: float = 1.0, dtype=torch.float32) -> nn.Module:
    """A fresh law of kind `model` (one of MODELS) for `material` (the oracle's family and wrong start
    depend on it; the networks do not)."""
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}; choose one of {', '.join(MODELS)}")
    if model in ("nclaw", "nclaw_iso"):
        law = NCLaw(dim=3, hidden=hidden, plastic=plastic, stress_scale=stress_scale, isotropic=model == "nclaw_iso")
    elif model == "mlp":
        law = MLPLaw(dim=3, hidden=tuple(hidden), plastic=plastic, stress_scale=stress_scale)
    else:
        law = OracleLaw(material)
    return law.to(dtype)


def teacher_lambda(epoch: int, epochs: int, steps: int, start: float = TEACHER_START,
                   end: float = TEACHER_END) -> float:
    """λ (steps between teacher restarts) at `epoch` of `epochs`: cosine from `start` to min(end, steps)."""
    end = min(end, steps)
    return end + (start - end) * 0.5 * (1.0 + math.cos(math.pi * epoch / epochs))


def teacher_segments(steps: int, lam: float) -> list[tuple[int, int]]:
    """The (first, last) steps of the ⌈steps/λ⌉ segments of an epoch, as the reference's `Teacher.uniform`
    spreads them: segment of step i = ⌊i · S / steps⌋, S = ⌈steps/λ⌉; each starts from the ground truth
    at `first` and is compared with it at first + 1 … last."""
    count = math.ceil(steps / lam)
    label = np.floor(np.linspace(0, count, steps, endpoint=False)).astype(int)
    firsts = [0] + [i for i in range(1, steps) if label[i] != label[i - 1]]
    return list(zip(firsts, firsts[1:] + [steps]))


def rollout_from(scene: sc.Scene, start: dict, frames: int) -> torch.Tensor:
    """Positions (frames + 1, n, dim) m of `scene` rolled out for `frames` frames of one substep each
    (scene.dt) from the particle state `start` = {x, v (n, dim), C, F (n, dim, dim)} instead of the
    bodies' initial state, on the autograd graph of the scene's Neural parameters (`Scene.rollout(start=)`,
    which checks the shapes)."""
    state = {name: start[name] for name in ("x", "v", "C", "F")}
    return scene.rollout(frames=frames, frame_dt=scene.dt, start=state, record=("x",)).x


def reserve_solver(scene: sc.Scene, longest: int) -> None:
    """Size the scene's gradient solver for segments of up to `longest` steps once. simcore grows a
    solver when a rollout needs more slots than it has, and a new solver's kernels compile again on
    first use (up to minutes); λ grows every epoch, so without this nearly every epoch would grow it."""
    from simcore import backend
    from simcore import torch as bridge
    from simcore.mpm import cache

    be = backend.active()
    config = scene.model.configuration(be.precision, be.arch, needs_grad=True)
    cache.solver_for(config, scene.model.n_particles, bridge.solver_slots(longest))


def training_scene(law: NCLaw, ground_truth_options: dict | None = None) -> sc.Scene:
    """The ground truth's cube (same particles, grid, walls and dt) made of the learned law."""
    o = {"grid": gt.GRID, "particles_per_cell": 1, "center": gt.CUBE_CENTER, "size": gt.CUBE_SIZE,
         **(ground_truth_options or {})}
    unknown = set(o) - {"grid", "particles_per_cell", "center", "size", "velocity", "angular_velocity"}
    if unknown:
        raise ValueError(f"ground-truth options {sorted(unknown)} are not set-up options of {gt.FAMILY!r}")
    scene = sc.Scene(dim=3, grid=o["grid"], particles_per_cell=o["particles_per_cell"], dt=gt.DT, walls="separate")
    scene.add_body(gt.cube(o["center"], o["size"]), law.material(name="nclaw"), name="cube")
    return scene


def _ground_truth(material: str, steps: int, options: dict, dtype) -> dict:
    traj = gt.trajectory(material, steps, **options)
    return {name: torch.as_tensor(np.asarray(getattr(traj, name)), dtype=dtype) for name in ("x", "v", "C", "F")}


def _clip(group: dict) -> float:
    norm = torch.nn.utils.clip_grad_norm_(group["params"], GRAD_MAX_NORM)
    if not torch.isfinite(norm):
        raise FloatingPointError(f"the gradient of the {group['name']} parameters is not finite (norm {float(norm)}); "
                                 "lower the learning rates or the number of steps per segment")
    return float(norm)


def epoch_loss(scene: sc.Scene, truth: dict, lam: float, law: nn.Module | None = None) -> tuple[float, int]:
    """One epoch's forward and backward: every teacher segment rolled out from the ground truth, its scaled
    position loss back-propagated into the law's .grad (accumulated). `law.refresh()`, if a law is given,
    runs before each segment. Returns (loss, segments)."""
    steps = truth["x"].shape[0] - 1
    segments = teacher_segments(steps, lam)
    factor = LOSS_SCALE * len(segments) / steps
    total = 0.0
    for first, last in segments:
        start = {name: truth[name][first] for name in ("x", "v", "C", "F")}
        if law is not None:
            law.refresh()
        x = rollout_from(scene, start, last - first)
        loss = factor * ((x[1:] - truth["x"][first + 1:last + 1]) ** 2).mean(dim=(1, 2)).sum()
        loss.backward()
        total += float(loss.detach())
    return total, len(segments)


def flow_states(plastic, truth: dict, limit: int = 50_000) -> tuple[torch.Tensor, torch.Tensor] | None:
    """`PlasticNet.flow_inputs` (invariants (m, d + 1), strain sizes (m, 2)) of up to `limit` of the ground
    truth's elastic states F (every step's particles, evenly strided), for the flow penalty; None
    if the law has no isotropic plastic network. They do not depend on the networks: computed once a run."""
    if plastic is None or not getattr(plastic, "isotropic", False):
        return None
    F = truth["F"][1:].reshape(-1, plastic.dim, plastic.dim)
    stride = max(1, math.ceil(F.shape[0] / limit))
    with torch.no_grad():
        return plastic.flow_inputs(F[::stride])


def flow_penalty(plastic, states, weight: float, deviatoric_from: float = DEVIATORIC_FROM) -> torch.Tensor | None:
    """weight · mean over the ground truth's `states` (flow_states) of the strain one step of the return map
    would remove there, γ_vol ‖vol E‖ + γ_dev ‖dev E‖ · [‖dev E‖ > deviatoric_from], in units of the
    network's strain scale (1 %). None if off.

    Why: the truth's states are outputs of its return map, and a return map is a projection onto the
    admissible states, so the true law leaves them alone (γ = 0 there: von Mises, Drucker–Prager, the
    fluid's, the jelly's none). Among laws that fit the motion about equally, this prefers the one whose
    return map does so. The network starts with flow everywhere (γ ≈ α), and the position loss alone did
    not remove it from the jelly law (docs/nclaw.md, variants 9–15). The deviatoric part only beyond
    `deviatoric_from` (5 %): a von Mises material's states pile up on its yield surface (plasticine's at
    2.0–2.1 %), where a smooth network cannot switch flow off at the surface and on just beyond it, and a
    penalty there took plasticine's yield flow down with it (velocity_c 3.3–3.6× the oracle, unstable
    training gradients: variant 13); beyond the largest yield strain the data show, it asks nothing of
    plasticine and stops the jelly's creep at the large strains it holds (median ‖dev E‖ 10 %).
    Unweighted by the strain, a penalty on γ took water's shear flow away (variant 12); weighted, water's
    states (dev E = 0) add nothing to it. deviatoric_from = inf: the volumetric part only (variant 14)."""
    if states is None or not weight > 0:
        return None
    invariants, sizes = states
    gamma = plastic.flow_fractions(invariants)
    removed = gamma[:, 1] * sizes[:, 1] + gamma[:, 0] * sizes[:, 0] * (sizes[:, 0] > deviatoric_from)
    return weight * removed.mean() / plastic.strain_scale


def train(material: str = "jelly", out="out/nclaw", epochs: int = 300, steps: int = gt.STEPS, *, model: str = "nclaw",
          oracle_lr: float = ORACLE_LR, resume: bool = False,
          seed: int = 0, checkpoint_every: int = 1, plastic: bool = True, elastic_lr: float = ELASTIC_LR,
          plastic_lr: float = PLASTIC_LR, flow_lr: float | None = None, flow_weight: float | None = None, flow_until: float = 1.0,
          deviatoric_from: float = DEVIATORIC_FROM, teacher=(TEACHER_START, TEACHER_END), progress: bool | None = None,
          ground_truth_options: dict | None = None, hidden=HIDDEN, stress_scale: float = 1.0,
          stop_after: int | None = None, tensorboard: bool | None = None, torch_threads: int | None = 1) -> NCLaw:
    """Train a law of kind `model` ("nclaw", "mlp" or "oracle") on `material`'s ground truth (its first `steps` steps) for `epochs` epochs, writing
    checkpoints and metrics.csv into `out` (columns: loss, lambda, segments, lr_elastic, lr_plastic,
    grad_elastic, grad_plastic — gradient norms before clipping —, epoch_s). simcore must be initialised
    (sc.init); the networks take its precision. stress_scale: Pa per unit of the elastic network's output
    (1: the reference's raw output). flow_lr: the isotropic plastic network's flow offsets' own Adam step
    (None: plastic_lr). flow_weight: the flow penalty's weight (None: FLOW_WEIGHT for nclaw_iso,
    0 otherwise; metrics column flow_penalty); deviatoric_from: the strain ‖dev E‖ beyond which it also
    penalises deviatoric flow (inf: never). flow_until: the penalty is on for the first `flow_until` of
    the epochs (a fraction; 1: all), and only logged after. stop_after: leave after this many epochs of this call without the
    last one's checkpoint, as a killed job would (for tests of --resume). torch_threads: torch's intra-op
    threads while training (None: leave as is). The networks see ~1,000 particles per substep, too few to
    gain from threads, and torch's spinning pool fights Taichi's for the cores: on the shared 2-core CPU
    the reduced test's epochs took 4–8× longer with torch's default threads than with one.
    Returns the trained law (train.NCLaw, baselines.MLPLaw or baselines.OracleLaw); an oracle's run
    also logs its parameters (columns named after them) and their relative errors (err_<name>).
    """
    from simcore import backend

    gt.material(material)
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}; choose one of {', '.join(MODELS)}")
    for name, value in (("epochs", epochs), ("steps", steps)):
        if not (isinstance(value, int) and value >= 1):
            raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")
    if flow_weight is None:
        flow_weight = FLOW_WEIGHT if model == "nclaw_iso" else 0.0
    if not 0 < flow_until <= 1:
        raise ValueError(f"flow_until must be a fraction of the epochs in (0, 1], got {flow_until!r}")
    if not (math.isfinite(flow_weight) and flow_weight >= 0):
        raise ValueError(f"flow_weight must be a finite number >= 0 (0: no flow penalty), got {flow_weight!r}")
    if flow_lr is not None and not (math.isfinite(flow_lr) and flow_lr > 0):
        raise ValueError(f"flow_lr must be > 0 (or None: the plastic lr), got {flow_lr!r}")
    if not deviatoric_from >= 0:  # NaN fails too
        raise ValueError(f"deviatoric_from must be a strain >= 0 (inf: no deviatoric-flow penalty), got {deviatoric_from!r}")
    dtype = torch.float64 if backend.active().precision == "f64" else torch.float32
    options = dict(ground_truth_options or {})
    threads = torch.get_num_threads()
    if torch_threads is not None:
        torch.set_num_threads(torch_threads)
    try:
        return _train(material, out, epochs, steps, model, resume, seed, checkpoint_every, plastic,
                      (elastic_lr, plastic_lr, oracle_lr, flow_lr), teacher, progress, options, hidden, stress_scale, stop_after,
                      tensorboard, dtype, flow_weight, flow_until, deviatoric_from)
    finally:
        torch.set_num_threads(threads)


def _train(material, out, epochs, steps, model, resume, seed, checkpoint_every, plastic, lrs, teacher,
           progress, options, hidden, stress_scale, stop_after, tensorboard, dtype, flow_weight=0.0, flow_until=1.0,
           deviatoric_from=DEVIATORIC_FROM) -> nn.Module:
    from simcore.learned.train import Run

    with Run(out, seed=seed, resume=resume, checkpoint_every=checkpoint_every, progress=progress,
             tensorboard=tensorboard) as run:
        description = {"model": model, "material": material, "plastic": bool(plastic), "hidden": list(hidden),
                       "stress_scale": float(stress_scale)}
        (Path(out) / LAW_FILE).write_text(json.dumps(description, indent=1) + "\n")
        law = make_law(model, material, plastic=plastic, hidden=hidden, stress_scale=stress_scale, dtype=dtype)
        optimizer = torch.optim.Adam(law.parameter_groups(*lrs))
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
        run.prepare(law, optimizer, scheduler, ddp=False)
        truth = _ground_truth(material, steps, options, dtype)
        scene = training_scene(law, options)
        x0 = torch.as_tensor(scene.initial_state()["x"], dtype=dtype)
        if not torch.allclose(x0, truth["x"][0], atol=1e-5):
            raise RuntimeError("the training scene's particles are not the ground truth's: the set-ups differ")
        longest = max(last - first for e in range(epochs)
                      for first, last in teacher_segments(steps, teacher_lambda(e, epochs, steps, *teacher)))
        reserve_solver(scene, longest)
        states = flow_states(getattr(law, "plastic", None), truth) if flow_weight > 0 else None
        for epoch in run.steps(epochs):
            begin = time.perf_counter()
            lam = teacher_lambda(epoch, epochs, steps, *teacher)
            optimizer.zero_grad()
            loss, count = epoch_loss(scene, truth, lam, law)
            penalty = flow_penalty(getattr(law, "plastic", None), states, flow_weight, deviatoric_from)
            if penalty is not None and epoch < flow_until * epochs:
                penalty.backward()
            groups = {group["name"]: (group["lr"], _clip(group)) for group in optimizer.param_groups}
            optimizer.step()
            scheduler.step()
            identified = {}
            if penalty is not None:
                identified["flow_penalty"] = float(penalty.detach())
            if "flow" in groups:  # the flow fractions at rest after this epoch's step
                identified.update(lr_flow=groups["flow"][0], grad_flow=groups["flow"][1])
                identified.update(zip(("rest_flow_dev", "rest_flow_vol"),
                                      torch.sigmoid(law.plastic.flow_offset.detach()).tolist()))
            if isinstance(law, OracleLaw):  # the parameters after this epoch's step, and their errors
                identified = {name: float(v.detach()) for name, v in law.values().items()}
                identified.update({f"err_{name}": e for name, e in law.relative_errors().items()})
            lr_elastic, grad_elastic = groups["elastic"]
            lr_plastic, grad_plastic = groups.get("plastic", (0.0, 0.0))
            run.log(epoch, loss=loss, **{"lambda": lam}, segments=count, lr_elastic=lr_elastic,
                    lr_plastic=lr_plastic, grad_elastic=grad_elastic, grad_plastic=grad_plastic,
                    epoch_s=time.perf_counter() - begin, **identified)
            if stop_after is not None and epoch + 1 - run.start_step >= stop_after:
                break
    return law


def load(out, plastic: bool = True, hidden=HIDDEN, dtype=torch.float32, stress_scale: float = 1.0,
         step: int | None = None) -> nn.Module:
    """The law of the newest checkpoint in `out` (a `train` run's directory), or of the one after `step`
    optimiser steps, rebuilt from its law.json (model, material, plastic, hidden, stress_scale); a
    directory without one holds an NCLaw described by the arguments."""
    from simcore.learned.train import latest_checkpoint, load_checkpoint
    from simcore.learned.train.checkpoint import checkpoint_path, list_checkpoints

    directory = Path(out) / "checkpoints"
    path = latest_checkpoint(directory) if step is None else checkpoint_path(directory, step)
    if path is None or not path.exists():
        kept = [k for k, _ in list_checkpoints(directory)] if directory.exists() else []
        raise ValueError(f"{out} holds no checkpoint{'' if step is None else f' after step {step}'} "
                         f"(checkpoints kept: {kept or 'none'}); train first, or choose a kept step")
    description = {"model": "nclaw", "material": "jelly", "plastic": plastic, "hidden": list(hidden),
                   "stress_scale": stress_scale}
    if (Path(out) / LAW_FILE).exists():
        description.update(json.loads((Path(out) / LAW_FILE).read_text()))
    law = make_law(description["model"], description["material"], plastic=description["plastic"],
                   hidden=tuple(description["hidden"]), stress_scale=description["stress_scale"], dtype=dtype)
    law.load_state_dict(load_checkpoint(path, map_location="cpu")["model"])
    return law


def main(argv=None) -> int:
    from simcore.learned.train import add_arguments

    parser = argparse.ArgumentParser(prog="python -m simcore.learned.nclaw.train", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    parser.add_argument("--material", default="jelly", choices=list(gt.MATERIALS))
    parser.add_argument("--model", default="nclaw", choices=MODELS,
                        help="nclaw (default), nclaw_iso (nclaw with simcore's extra priors), mlp (plain MLP "
                             "baseline) or oracle (the true family, parameters fitted)")
    parser.add_argument("--epochs", type=int, default=300, help="epochs (optimiser steps; default 300)")
    parser.add_argument("--steps", type=int, default=gt.STEPS, help=f"steps of the trajectory (default {gt.STEPS})")
    parser.add_argument("--elastic-only", action="store_true", help="no plastic network")
    parser.add_argument("--elastic-lr", type=float, default=ELASTIC_LR, help=f"default {ELASTIC_LR}")
    parser.add_argument("--plastic-lr", type=float, default=PLASTIC_LR, help=f"default {PLASTIC_LR}")
    parser.add_argument("--flow-lr", type=float, default=None,
                        help="nclaw_iso: lr of the plastic network's flow offsets (default: the plastic lr)")
    parser.add_argument("--flow-weight", type=float, default=None,
                        help="nclaw_iso: weight of the penalty on plastic flow at the ground truth's states (the mean "
                             "strain one return-map step would remove there, in units of 1 %%; default "
                             f"{FLOW_WEIGHT:g} for nclaw_iso; 0: off)")
    parser.add_argument("--flow-until", type=float, default=1.0,
                        help="nclaw_iso: the flow penalty is on for this fraction of the epochs (default 1)")
    parser.add_argument("--deviatoric-from", type=float, default=DEVIATORIC_FROM,
                        help="nclaw_iso: the penalty also covers deviatoric flow on the ground truth's states strained "
                             f"beyond this ‖dev E‖ (default {DEVIATORIC_FROM:g}; inf: volumetric flow only)")
    parser.add_argument("--oracle-lr", type=float, default=ORACLE_LR, help=f"default {ORACLE_LR}")
    parser.add_argument("--threads", type=int, default=None,
                        help="Taichi's CPU threads (default: all cores; 1 on a CPU shared with other jobs)")
    parser.add_argument("--stress-scale", type=float, default=1.0,
                        help="Pa per unit of the elastic network's output (default 1: the reference's)")
    parser.add_argument("--precision", default="f32", choices=("f32", "f64"))
    args = parser.parse_args(argv)
    sc.init("cpu", args.precision, threads=args.threads, verbose=False)
    train(args.material, args.out, args.epochs, args.steps, model=args.model, oracle_lr=args.oracle_lr,
          resume=args.resume, seed=args.seed,
          # an epoch is long: a checkpoint every epoch unless told otherwise
          checkpoint_every=args.checkpoint_every or 1, plastic=not args.elastic_only, elastic_lr=args.elastic_lr,
          plastic_lr=args.plastic_lr, flow_lr=args.flow_lr, flow_weight=args.flow_weight, flow_until=args.flow_until,
          deviatoric_from=args.deviatoric_from,
          stress_scale=args.stress_scale, progress=False if args.no_progress else None,
          tensorboard=False if args.no_tensorboard else None)
    print(f"metrics: {Path(args.out) / 'metrics.csv'}; checkpoints: {Path(args.out) / 'checkpoints'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
