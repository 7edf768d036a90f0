"""The PyTorch bridge: differentiable MPM rollouts as a torch.autograd.Function.

Tensors in (initial positions and velocities, per-particle mass and material constants, built by
torch from whatever the user gave as tensors), tensors out (states per frame); the backward pass runs
simcore.diff's reverse sweep and returns the gradients as new tensors. Nothing is written into a
tensor's `.grad` by simcore, so no gradient is counted twice.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch

from . import backend
from .diff.rollout import DiffRollout, Schedule


@dataclasses.dataclass
class Rollout:
    """States per frame as torch tensors on the autograd graph.

    x: (frames + 1, n, dim) m; v: (frames + 1, n, dim) m/s if recorded; t: (frames + 1,) s;
    body_id, material_id: (n,) numpy; meta: substeps per frame, dt per frame, checkpoint interval.
    """

    x: torch.Tensor
    t: torch.Tensor
    body_id: np.ndarray
    material_id: np.ndarray
    meta: dict
    v: torch.Tensor | None = None


class _RolloutFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, runner, record, x0, v0, mass, mu, lam, plastic, actuation):
        solver = runner.solver
        dtype = np.float64 if backend.active().precision == "f64" else np.float32
        for field, value in ((solver.mass, mass), (solver.mu, mu), (solver.lam, lam), (solver.plastic, plastic)):
            field.from_numpy(value.detach().cpu().numpy().astype(dtype))
        runner.actuation = actuation.detach().cpu().numpy().astype(np.float64)
        initial = runner.initial_state(x0.detach().cpu().numpy(), v0.detach().cpu().numpy())
        frames = runner.rollout.forward(initial, runner.schedule, record=record, keep=runner.keep)
        ctx.runner, ctx.record = runner, record
        return tuple(torch.from_numpy(frames[name]).to(x0.dtype) for name in record)

    @staticmethod
    def backward(ctx, *grad_outputs):
        runner = ctx.runner
        grad_frames = {name: g.detach().cpu().numpy() for name, g in zip(ctx.record, grad_outputs) if g is not None}
        runner.actuation_grad = np.zeros_like(runner.actuation)
        grads = runner.rollout.backward(grad_frames)
        dtype = grad_outputs[0].dtype
        as_t = lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(dtype)  # noqa: E731
        return (None, None, as_t(grads["x"]), as_t(grads["v"]), as_t(grads["mass"]), as_t(grads["mu"]),
                as_t(grads["lam"]), as_t(grads["plastic"]), as_t(runner.actuation_grad))


class _NoContext:
    """Stands in for autograd's ctx when the forward runs without a graph."""


class _Runner:
    """What the Function needs: the scene's gradient-enabled solver, its schedule and initial state."""

    def __init__(self, scene, solver, schedule, k):
        self.scene, self.solver, self.schedule = scene, solver, schedule
        self.keep = True  # store checkpoints for backward
        self.set_colliders = scene._collider_setter(schedule)
        self.frame_of = np.repeat(np.arange(len(schedule.substeps)), schedule.substeps)
        self.actuation = None       # (frames, groups) Pa, set by the Function's forward
        self.actuation_grad = None
        self.rollout = DiffRollout(solver, before_substep=self.before_substep, after_adjoint=self.after_adjoint,
                                   checkpoint_every=k)

    def before_substep(self, g):
        if self.set_colliders is not None:
            self.set_colliders(g)
        if self.solver.n_actuators:
            self.solver.activation.from_numpy(self.actuation[self.frame_of[g]].astype(self.solver_dtype))

    def after_adjoint(self, g):
        if self.solver.n_actuators:
            self.actuation_grad[self.frame_of[g]] += self.solver.activation.grad.to_numpy()
            self.solver.activation.grad.fill(0)

    @property
    def solver_dtype(self):
        return np.float64 if backend.active().precision == "f64" else np.float32

    def initial_state(self, x0, v0):
        state = self.scene.initial_state()
        state["x"], state["v"] = x0, v0
        if not np.isfinite(x0).all() or not np.isfinite(v0).all():
            raise ValueError("rollout: initial positions or velocities are not finite")
        return state


def default_checkpoint_interval(total_substeps: int) -> int:
    """k minimising n·(T/k + k): about √T."""
    return max(1, int(math.ceil(math.sqrt(total_substeps))))


def rollout(scene, frames: int, frame_dt: float, record=("x",), checkpoint_every: int | None = None,
            actuation=None) -> Rollout:
    """See Scene.rollout."""
    record = tuple(dict.fromkeys(("x",) + tuple(record)))
    if set(record) - {"x", "v"}:
        raise ValueError(f"rollout can record x and v, not {sorted(set(record) - {'x', 'v'})}")
    dtype = torch.float64 if backend.active().precision == "f64" else torch.float32
    schedule = scene._schedule(frames, frame_dt)
    k = min(checkpoint_every or default_checkpoint_interval(schedule.total), schedule.total)
    solver = scene._gradient_solver(slots=k + 1)
    x0, v0, mass, mu, lam, plastic = scene._torch_inputs(dtype)
    act = scene._check_actuation(actuation, frames)
    act = act.to(dtype) if torch.is_tensor(act) else torch.as_tensor(act, dtype=dtype)
    runner = _Runner(scene, solver, schedule, k)
    inputs = (x0, v0, mass, mu, lam, plastic, act)
    if torch.is_grad_enabled() and any(t.requires_grad for t in inputs):
        outputs = _RolloutFunction.apply(runner, record, *inputs)
    else:  # nothing to differentiate: no checkpoints, no graph
        runner.keep = False
        with torch.no_grad():
            outputs = _RolloutFunction.forward(_NoContext(), runner, record, *inputs)
    states = dict(zip(record, outputs))
    t = torch.as_tensor(np.concatenate([[0.0], np.cumsum([frame_dt] * frames)]), dtype=dtype)
    meta = {"substeps": list(schedule.substeps), "dt": list(schedule.dts), "checkpoint_every": k,
            "frame_dt": frame_dt}
    return Rollout(x=states["x"], v=states.get("v"), t=t, body_id=scene.body_id.copy(),
                   material_id=scene.material_id.copy(), meta=meta)
