"""The PyTorch bridge: differentiable MPM rollouts as a chain of torch.autograd.Functions.

A rollout is cut into segments of k substeps (one segment per frame when a closed-loop controller
acts). Each segment is one autograd Function from the particle state at its start {x, v, C, F, Jp}
(plus the per-particle material constants, the activations and collider paths of its substeps, and the
parameters of any Neural material) to the state at its end and the frames recorded inside it. Autograd
therefore keeps exactly one state per segment (the checkpoint) and calls each segment's backward in
reverse order; the backward recomputes the segment and runs simcore.diff's adjoint sweep, returning
gradients as new tensors. Nothing is written into a tensor's `.grad` by simcore, so no gradient is
counted twice.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable

import numpy as np
import torch

from . import backend
from .diff.rollout import STATE, DiffRollout, Schedule
from .materials import FLUID, SNOW
from .mpm.solver import MPMSolver


@dataclasses.dataclass
class Rollout:
    """States per frame as torch tensors on the autograd graph.

    x: (frames + 1, n, dim) m; t: (frames + 1,) s; if recorded: v (frames + 1, n, dim) m/s,
    C (frames + 1, n, dim, dim) 1/s, F (frames + 1, n, dim, dim), Jp (frames + 1, n) — with `run`'s
    conventions (a fluid particle's F is J^(1/d) I and its Jp is J; Jp is 1 except for snow and fluid);
    actuation: (frames, groups) Pa, the activations applied (from the controller, if any);
    body_id, material_id: (n,) numpy; meta: substeps per frame, dt per frame, checkpoint interval.
    """

    x: torch.Tensor
    t: torch.Tensor
    body_id: np.ndarray
    material_id: np.ndarray
    meta: dict
    v: torch.Tensor | None = None
    C: torch.Tensor | None = None
    F: torch.Tensor | None = None
    Jp: torch.Tensor | None = None
    actuation: torch.Tensor | None = None


def _np(t: torch.Tensor, dtype) -> np.ndarray:
    return np.ascontiguousarray(t.detach().cpu().numpy(), dtype=dtype)


class _SegmentFunction(torch.autograd.Function):
    """(start state, constants, per-substep inputs, neural parameters) -> (end state, recorded frames)."""

    @staticmethod
    def forward(ctx, runner, g0, length, fields, x, v, C, F, Jp, mass, mu, lam, plastic, act, origin, vel, friction,
                *neural_params):
        dt = runner.np_dtype
        start = {name: _np(t, dt) for name, t in zip(STATE, (x, v, C, F, Jp))}
        if not all(np.isfinite(a).all() for a in start.values()):
            raise ValueError(f"rollout: the state entering substep {g0} is not finite (initial state, or a "
                             "controller/actuation that blew the simulation up)")
        inputs = (mass, mu, lam, plastic, act, origin, vel, friction)
        runner.load(g0, *[_np(t, dt) for t in inputs])
        # The last segment keeps its substeps' temporaries when a backward will follow it at once.
        keep = not isinstance(ctx, _NoContext) and g0 + length == runner.schedule.total
        end, frames = runner.diff.forward_segment(start, g0, length, fields, keep)
        ctx.runner, ctx.g0, ctx.length, ctx.start = runner, g0, length, start
        ctx.inputs = [_np(t, dt) for t in inputs]
        ctx.frames = sorted(frames)
        ctx.fields = fields
        ctx.dtype = x.dtype
        as_t = lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(x.dtype)  # noqa: E731
        # One (frames in segment, n, ...) output per state field; empty (0, ...) when not recorded.
        recorded = [np.stack([frames[f][name] for f in ctx.frames]) if frames and name in fields
                    else np.zeros((0,) + start[name].shape, dt) for name in STATE]
        return tuple(as_t(end[name]) for name in STATE) + tuple(as_t(r) for r in recorded)

    @staticmethod
    def backward(ctx, gx, gv, gC, gF, gJp, *grec):
        runner, g0, length = ctx.runner, ctx.g0, ctx.length
        dt = runner.np_dtype
        runner.load(g0, *ctx.inputs)
        grad_end = {name: (None if g is None else _np(g, dt)) for name, g in zip(STATE, (gx, gv, gC, gF, gJp))}
        grad_frames = {f: {name: _np(g[i], dt) for name, g in zip(STATE, grec) if g is not None and g.shape[0]}
                       for i, f in enumerate(ctx.frames)}
        runner.start_adjoint(length)
        grads = runner.diff.backward_segment(ctx.start, g0, length, grad_end, grad_frames)
        runner.finish_adjoint(length)
        as_t = lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(ctx.dtype)  # noqa: E731
        neural = runner.hook.take_param_grads() if runner.hook is not None else []
        return ((None, None, None, None) + tuple(as_t(grads[name]) for name in STATE)
                + (as_t(grads["mass"]), as_t(grads["mu"]), as_t(grads["lam"]), as_t(grads["plastic"]),
                   as_t(runner.act_grad), as_t(runner.origin_grad), as_t(runner.vel_grad),
                   as_t(grads["collider_friction"])) + tuple(neural))


class _NoContext:
    """Stands in for autograd's ctx when a segment runs without a graph."""


class _Runner:
    """What the segment Functions share: the scene's gradient-enabled solver, its schedule, and the
    per-substep inputs of the segment being run."""

    def __init__(self, scene, solver, schedule):
        self.scene, self.solver, self.schedule = scene, solver, schedule
        self.hook = solver.stress_hook
        self.np_dtype = np.float64 if backend.active().precision == "f64" else np.float32
        self.diff = DiffRollout(solver, schedule)

    def load(self, g0, mass, mu, lam, plastic, act, origin, vel, friction):
        """Upload the constants and the segment's per-substep inputs (all numpy; substep g0 + i
        reads slot i)."""
        solver = self.solver
        solver.set_constants(mass=mass, mu=mu, lam=lam, plastic=plastic,
                             collider_friction=friction if self.scene.colliders else None)
        solver.set_substep_inputs(0, origin=origin if self.scene.colliders else None,
                                  velocity=vel if self.scene.colliders else None,
                                  activation=act if solver.n_actuators else None)
        self.act, self.origin, self.vel = act, origin, vel

    def start_adjoint(self, length):
        for name in ("collider_origin", "collider_velocity", "activation"):
            field = getattr(self.solver, name, None)
            if field is not None:
                field.grad.fill(0)

    def finish_adjoint(self, length):
        """The adjoints of the segment's per-substep inputs, (length, ...) numpy."""
        solver = self.solver
        self.act_grad = (solver.activation.grad.to_numpy()[:length] if solver.n_actuators
                         else np.zeros_like(self.act))
        if self.scene.colliders:
            self.origin_grad = solver.collider_origin.grad.to_numpy()[:length]
            self.vel_grad = solver.collider_velocity.grad.to_numpy()[:length]
        else:
            self.origin_grad, self.vel_grad = np.zeros_like(self.origin), np.zeros_like(self.vel)


# A rollout whose substeps all fit in this much solver memory keeps them all (k = T: its backward
# recomputes nothing); a longer one is checkpointed every √T substeps.
KEEP_ALL_BUDGET = 512 << 20


def solver_slots(k: int) -> int:
    """Slots of the gradient solver for segments of k substeps: k + 1 rounded up to a power of two
    (at least 16), so that rollouts of similar lengths share one compiled solver."""
    return max(16, 1 << (k).bit_length())


def default_checkpoint_interval(total_substeps: int, bytes_per_slot: int | None = None) -> int:
    """k = T when every substep fits in KEEP_ALL_BUDGET (given the bytes per slot), else the k
    minimising n·(T/k + k): about √T."""
    if bytes_per_slot is not None and solver_slots(total_substeps) * bytes_per_slot <= KEEP_ALL_BUDGET:
        return total_substeps
    return max(1, int(math.ceil(math.sqrt(total_substeps))))


def _collider_paths(scene, schedule: Schedule, dtype):
    """Origins and velocities of every collider at the start of every substep: (T, nc, dim) tensors
    (on the autograd graph of tensor velocities), and frictions (nc,)."""
    d, T = scene.dim, schedule.total
    nc = max(len(scene.colliders), 1)
    if not scene.colliders:
        zeros = torch.zeros(T, nc, d, dtype=dtype)
        return zeros, zeros, torch.zeros(nc, dtype=dtype)
    dts = torch.as_tensor([schedule.dt_of(g) for g in range(T)], dtype=dtype)
    times = torch.cumsum(torch.cat([torch.zeros(1, dtype=dtype), dts[:-1]]), 0)
    origins, velocities = [], []
    for c in scene.colliders:
        vel = c.velocity_path(times, d, dtype)                       # (T, d)
        start = torch.as_tensor(c.origin(d), dtype=dtype)
        moved = torch.cumsum(dts[:, None] * vel, 0) - dts[:, None] * vel  # displacement before substep g
        origins.append(start + moved)
        velocities.append(vel)
    friction = torch.stack([torch.as_tensor(c.friction, dtype=dtype).reshape(()) for c in scene.colliders])
    return torch.stack(origins, 1), torch.stack(velocities, 1), friction


def rollout(scene, frames: int, frame_dt: float, record=("x",), checkpoint_every: int | None = None,
            actuation=None, controller: Callable | None = None) -> Rollout:
    """See Scene.rollout."""
    record = tuple(dict.fromkeys(("x",) + tuple(record)))
    if set(record) - set(STATE):
        raise ValueError(f"cannot record {sorted(set(record) - set(STATE))}: choose from {STATE}")
    if "F" in record:  # a fluid particle's F is made from its J (kept in Jp)
        record = tuple(dict.fromkeys(record + ("Jp",)))
    if controller is not None and actuation is not None:
        raise ValueError("give either actuation (open loop) or controller (closed loop), not both")
    if controller is not None and scene.n_actuators == 0:
        raise ValueError("controller given but no body has an actuator (add_body(..., actuator=g, fibre=...))")
    dtype = torch.float64 if backend.active().precision == "f64" else torch.float32
    x, v, mass, mu, lam, plastic = scene._torch_inputs(dtype)
    schedule = scene._schedule(frames, frame_dt, velocity=v.detach().cpu().numpy())
    if controller is not None:  # the controller acts at frame starts: one segment per frame
        segments = schedule.segments(0, at_frames=True)
        k = max(schedule.substeps)
    else:
        itemsize = 8 if dtype == torch.float64 else 4
        k = checkpoint_every or default_checkpoint_interval(
            schedule.total, MPMSolver.slot_bytes(scene.n_particles, scene.dim, scene.grid, itemsize))
        k = min(k, schedule.total)
        segments = schedule.segments(k)
    solver = scene._gradient_solver(slots=solver_slots(k))
    runner = _Runner(scene, solver, schedule)
    init = scene.initial_state()
    C, F, Jp = (torch.as_tensor(init[name], dtype=dtype) for name in ("C", "F", "Jp"))
    origin, vel, friction = _collider_paths(scene, schedule, dtype)
    neural = runner.hook.parameters() if runner.hook is not None else []
    frame_of = torch.as_tensor(np.repeat(np.arange(frames), schedule.substeps))
    groups = max(scene.n_actuators, 1)
    if controller is None:
        act = scene._check_actuation(actuation, frames)
        act = act.to(dtype) if torch.is_tensor(act) else torch.as_tensor(act, dtype=dtype)
        act = act.reshape(frames, -1) if scene.n_actuators else torch.zeros(frames, groups, dtype=dtype)
        per_substep = act[frame_of]
    frame_start = {g: f for f, g in enumerate(schedule.frame_starts())}
    constants = (mass, mu, lam, plastic)
    if controller is not None:  # its parameters are not visible here: assume it has some
        differentiable = torch.is_grad_enabled()
    else:
        differentiable = torch.is_grad_enabled() and any(
            t.requires_grad for t in (x, v, *constants, origin, vel, friction, per_substep, *neural))
    state = (x, v, C, F, Jp)
    history = {name: [t] for name, t in zip(STATE, state) if name in record}
    applied = []
    for g0, length in segments:
        if controller is not None:
            f = frame_start[g0]
            a = torch.as_tensor(controller(f * frame_dt, {"x": state[0], "v": state[1]}), dtype=dtype)
            if a.shape != (scene.n_actuators,):
                raise ValueError(f"controller returned shape {tuple(a.shape)}, expected ({scene.n_actuators},): "
                                 "one activation (Pa) per actuator group")
            applied.append(a)
            seg_act = a.expand(length, groups)
        else:
            seg_act = per_substep[g0:g0 + length]
        args = (runner, g0, length, record, *state, *constants, seg_act, origin[g0:g0 + length],
                vel[g0:g0 + length], friction, *neural)
        if differentiable:
            out = _SegmentFunction.apply(*args)
        else:
            with torch.no_grad():
                out = _SegmentFunction.forward(_NoContext(), *args)
        state = out[:5]
        for name, frames_out in zip(STATE, out[5:]):
            if name in history:
                history[name].extend(frames_out.unbind(0))
    t = torch.as_tensor(np.concatenate([[0.0], np.cumsum([frame_dt] * frames)]), dtype=dtype)
    meta = {"substeps": list(schedule.substeps), "dt": list(schedule.dts), "frame_dt": frame_dt,
            "checkpoint_every": k if controller is None else "frame"}
    if controller is not None:
        actuation_out = torch.stack(applied)
    elif scene.n_actuators:
        actuation_out = act
    else:
        actuation_out = None
    fields = _run_conventions(scene, {name: torch.stack(values) for name, values in history.items()})
    return Rollout(t=t, body_id=scene.body_id.copy(), material_id=scene.material_id.copy(), meta=meta,
                   actuation=actuation_out, **fields)


def _run_conventions(scene, fields: dict) -> dict:
    """F and Jp as `Scene.run` reports them: the solver keeps only J (in Jp) for a fluid particle, so its
    F is J^(1/d) I; a solid's Jp is 1 unless it is snow (plastic volume ratio)."""
    kinds = np.concatenate([np.full(b.n_particles, b.material.kind) for b in scene.bodies])
    fluid = torch.as_tensor(kinds == FLUID)
    if "F" in fields and fluid.any():
        J = fields["Jp"]  # recorded along with F (see rollout)
        d = scene.dim
        iso = J.clamp_min(0) ** (1.0 / d)
        eye = torch.eye(d, dtype=J.dtype)
        fields["F"] = torch.where(fluid[None, :, None, None], iso[..., None, None] * eye, fields["F"])
    if "Jp" in fields:
        keep = torch.as_tensor((kinds == FLUID) | (kinds == SNOW))
        fields["Jp"] = torch.where(keep[None], fields["Jp"], torch.ones_like(fields["Jp"]))
    return fields
