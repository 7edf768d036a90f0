"""The PyTorch bridge: differentiable MPM rollouts as a chain of torch.autograd.Functions.

A rollout is cut into segments of k substeps (one segment per frame when a closed-loop controller
acts). Each segment is one autograd Function from the particle state at its start {x, v, C, F, Jp}
(plus the per-particle material constants, the activations and collider paths of its substeps, and the
parameters of any Neural material) to the state at its end and the frames recorded inside it. Autograd
therefore keeps exactly one state per segment (the checkpoint) and calls each segment's backward in
reverse order; the backward recomputes the segment and runs simcore.diff's adjoint sweep, returning
gradients as new tensors. A segment's inputs travel as one named container, `SegmentInputs`. Nothing is written into a tensor's `.grad` by simcore, so no gradient is
counted twice.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable

import numpy as np
import torch

from . import backend
from .diff.rollout import DiffRollout
from .mpm import cache
from .mpm.config import Capacity
from .mpm.kinematics import collider_paths
from .mpm.planner import Schedule, substeps_for_frame
from .mpm.state import STATE, output_conventions


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


@dataclasses.dataclass
class SegmentInputs:
    """What one segment of L substeps depends on, as tensors (n particles, nc colliders).

    x, v: (n, dim); C, F: (n, dim, dim); Jp: (n,) — the state at the segment's start (STATE);
    mass (n,) kg; mu, lam (n,) Pa; plastic (n, 3) — per-particle constants;
    activation (L, groups) Pa; collider_origin, collider_velocity (L, nc, dim) m, m/s — per substep;
    collider_friction (nc,); neural: the parameters of Neural materials' modules (and tensor features).
    The autograd Function takes them flattened in field order (`flat`) and returns their gradients in
    the same order.
    """

    x: torch.Tensor
    v: torch.Tensor
    C: torch.Tensor
    F: torch.Tensor
    Jp: torch.Tensor
    mass: torch.Tensor
    mu: torch.Tensor
    lam: torch.Tensor
    plastic: torch.Tensor
    activation: torch.Tensor
    collider_origin: torch.Tensor
    collider_velocity: torch.Tensor
    collider_friction: torch.Tensor
    neural: tuple = ()

    CONSTANTS = ("mass", "mu", "lam", "plastic")
    PER_SUBSTEP = ("activation", "collider_origin", "collider_velocity")
    NAMES = STATE + CONSTANTS + PER_SUBSTEP + ("collider_friction",)

    def flat(self) -> tuple:
        return tuple(getattr(self, name) for name in self.NAMES) + tuple(self.neural)

    @classmethod
    def unflat(cls, tensors) -> SegmentInputs:
        k = len(cls.NAMES)
        return cls(**dict(zip(cls.NAMES, tensors[:k])), neural=tuple(tensors[k:]))

    def numpy(self, names, dtype) -> dict:
        return {name: _np(getattr(self, name), dtype) for name in names}


class _SegmentFunction(torch.autograd.Function):
    """(runner, first substep, length, recorded fields, *SegmentInputs.flat()) -> (end state, recorded
    frames): one (frames in segment, n, ...) output per state field, empty when not recorded."""

    @staticmethod
    def forward(ctx, runner, g0, length, fields, *tensors):
        inputs = SegmentInputs.unflat(tensors)
        dt = runner.np_dtype
        start = inputs.numpy(STATE, dt)
        if not all(np.isfinite(a).all() for a in start.values()):
            raise ValueError(f"rollout: the state entering substep {g0} is not finite (initial state, or a "
                             "controller/actuation that blew the simulation up)")
        loaded = inputs.numpy(SegmentInputs.CONSTANTS + SegmentInputs.PER_SUBSTEP + ("collider_friction",), dt)
        runner.load(loaded)
        # The last segment keeps its substeps' temporaries when a backward will follow it at once.
        keep = not isinstance(ctx, _NoContext) and g0 + length == runner.schedule.total
        end, frames = runner.diff.forward_segment(start, g0, length, fields, keep)
        ctx.runner, ctx.g0, ctx.length, ctx.start, ctx.loaded = runner, g0, length, start, loaded
        ctx.frames = sorted(frames)
        ctx.dtype = inputs.x.dtype
        as_t = lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(inputs.x.dtype)  # noqa: E731
        recorded = [np.stack([frames[f][name] for f in ctx.frames]) if frames and name in fields
                    else np.zeros((0,) + start[name].shape, dt) for name in STATE]
        return tuple(as_t(end[name]) for name in STATE) + tuple(as_t(r) for r in recorded)

    @staticmethod
    def backward(ctx, *grad_outputs):
        runner, g0, length = ctx.runner, ctx.g0, ctx.length
        dt = runner.np_dtype
        grad_state, grad_recorded = grad_outputs[:len(STATE)], grad_outputs[len(STATE):]
        runner.load(ctx.loaded)
        grad_end = {name: (None if g is None else _np(g, dt)) for name, g in zip(STATE, grad_state)}
        grad_frames = {f: {name: _np(g[i], dt) for name, g in zip(STATE, grad_recorded) if g is not None and g.shape[0]}
                       for i, f in enumerate(ctx.frames)}
        runner.start_adjoint()
        grads = runner.diff.backward_segment(ctx.start, g0, length, grad_end, grad_frames)
        grads.update(runner.finish_adjoint(length))
        as_t = lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(ctx.dtype)  # noqa: E731
        neural = runner.hook.take_param_grads() if runner.hook is not None else []
        return (None, None, None, None) + tuple(as_t(grads[name]) for name in SegmentInputs.NAMES) + tuple(neural)


class _NoContext:
    """Stands in for autograd's ctx when a segment runs without a graph."""


class _Runner:
    """What the segment Functions share: the model, the shared gradient solver of its configuration
    (with room for its particles and `slots` slots), the schedule."""

    def __init__(self, model, config, slots: int, schedule):
        self.model, self.config, self.slots, self.schedule = model, config, slots, schedule
        self.hook = model.stress_hook
        self.np_dtype = np.float64 if config.precision == "f64" else np.float32
        self.solver = self.diff = None
        self._attach()

    def _attach(self):
        """Hold the configuration's shared solver, taking it again when the one held is no longer
        current: the cache frees a solver when a larger scene of its configuration replaces it, and a
        Taichi restart frees them all. An autograd graph outlives both (a backward may come after any
        number of other rollouts); its segments then run on the new solver, recomputed from their
        checkpoints."""
        if self.solver is None or not cache.is_current(self.solver):
            self.solver = cache.solver_for(self.config, self.model.n_particles, self.slots)
            self.diff = DiffRollout(self.solver, self.schedule)

    def load(self, inputs: dict):
        """Upload the model (if another scene ran on the shared solver since), the constants and the
        segment's per-substep inputs (numpy; substep g0 + i reads slot i)."""
        self._attach()
        solver, colliders = self.solver, bool(self.model.colliders)
        solver.load(self.model)
        solver.set_constants(mass=inputs["mass"], mu=inputs["mu"], lam=inputs["lam"], plastic=inputs["plastic"],
                             collider_friction=inputs["collider_friction"] if colliders else None)
        solver.set_substep_inputs(0, origin=inputs["collider_origin"] if colliders else None,
                                  velocity=inputs["collider_velocity"] if colliders else None,
                                  activation=inputs["activation"] if solver.n_actuators else None)
        self.shapes = {name: inputs[name].shape for name in SegmentInputs.PER_SUBSTEP}

    def start_adjoint(self):
        for name in ("collider_origin", "collider_velocity", "activation"):
            field = getattr(self.solver, name, None)
            if field is not None:
                field.grad.fill(0)

    def finish_adjoint(self, length) -> dict:
        """The adjoints of the segment's per-substep inputs, (length, ...) numpy."""
        solver = self.solver
        out = {name: np.zeros(shape) for name, shape in self.shapes.items()}
        if solver.n_actuators:
            out["activation"] = solver.activation.grad.to_numpy()[:length]
        if self.model.colliders:
            out["collider_origin"] = solver.collider_origin.grad.to_numpy()[:length]
            out["collider_velocity"] = solver.collider_velocity.grad.to_numpy()[:length]
        return out


# A rollout whose substeps all fit in this much solver memory keeps them all (k = T: its backward
# recomputes nothing); a longer one is checkpointed every √T substeps. 1 GiB keeps the 100 substeps of
# an 8,000-particle 3D f64 rollout (0.73 GiB, `Configuration.slot_bytes`); checkpointed under the old
# 512 MiB budget, its backward recomputed 90 % of the forward (neo-Hookean: 4.8× the forward against
# 3.8× kept; `python benchmarks/adjoint_cost.py`, docs/benchmarks.md).
KEEP_ALL_BUDGET = 1 << 30


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


def _particle_inputs(scene, dtype) -> dict:
    """The bodies' initial x, v (n, dim), mass, mu, lam (n,), plastic (n, 3) as torch tensors (on the
    graph of every tensor given to the scene), and wave_speed (n,) numpy m/s, from their current values:
    a tensor may have changed since add_body (an optimiser step)."""
    parts = {name: [] for name in ("x", "v", "mass", "mu", "lam", "plastic", "wave_speed")}
    for b in scene.bodies:
        points = b.positions_tensor(scene.grid)  # Points given as a tensor, checked as it is now
        if b.initial_stress is not None and torch.is_grad_enabled():
            # The at-rest state (rest volumes, F, Jp) is solved on the host (simcore.initial_stress):
            # a gradient would miss its dependence on these, silently.
            needs = b.material.differentiable + (["positions"] if points is not None and points.requires_grad else [])
            if needs:
                raise ValueError(f"body {b.name!r}: initial_stress={b.initial_stress!r} is solved on the host and "
                                 f"carries no gradient to {', '.join(needs)}, which require grad; detach them, "
                                 "or start the body unstressed (initial_stress=None)")
        parts["x"].append(torch.as_tensor(b.x, dtype=dtype) if points is None else points.to(dtype))
        if b.velocity_tensor is not None:  # as Body.initial_velocities, on the tensor's graph
            vt = b.velocity_tensor.to(dtype)
            v = vt.expand(b.n_particles, scene.dim) if vt.dim() == 1 else vt
            if b.spin is not None:
                v = v + torch.as_tensor(b.spin, dtype=dtype)
        else:
            v = torch.as_tensor(b.v, dtype=dtype)
        parts["v"].append(v)
        p = b.material.torch_parameters(b.x, dtype)
        parts["mass"].append(p["density"] * torch.as_tensor(b.volume, dtype=dtype))
        for name in ("mu", "lam", "plastic"):
            parts[name].append(p[name])
        parts["wave_speed"].append(b.material.particle_parameters(b.x)["wave_speed"])
    out = {name: torch.cat(values) for name, values in parts.items() if name != "wave_speed"}
    out["wave_speed"] = np.concatenate(parts["wave_speed"])
    return out


def _schedule(scene, frames: int, frame_dt: float, wave_speed: np.ndarray, v: np.ndarray) -> Schedule:
    """Fixed substeps for the whole rollout, from the CFL bound of the initial state."""
    speed = float((wave_speed + np.linalg.norm(v, axis=1)).max())
    n, dt = substeps_for_frame(frame_dt, speed, float(np.linalg.norm(scene.gravity)), scene.dx, scene.dt,
                               scene.cfl, frame=1)
    return Schedule.uniform(frames, n, dt)


def _collider_inputs(model, schedule: Schedule, dtype):
    """Origins and velocities of every collider at the start of every substep: (T, nc, dim) tensors
    (on the autograd graph of tensor velocities), and frictions (nc,)."""
    d, T = model.dim, schedule.total
    if not model.colliders:
        zeros = torch.zeros(T, 1, d, dtype=dtype)
        return zeros, zeros, torch.zeros(1, dtype=dtype)
    dts = torch.as_tensor(schedule.substep_dts(), dtype=dtype)
    origins, velocities = collider_paths(model.colliders, model.collider_origin, 0.0, dts, d, dtype)
    friction = torch.stack([torch.as_tensor(c.friction, dtype=dtype).reshape(()) for c in model.colliders])
    return origins[:T], velocities, friction


def _checkpoints(config, n_particles: int, schedule: Schedule, checkpoint_every, closed_loop: bool):
    """(k, segments): substeps per segment and the (first substep, length) of each."""
    if closed_loop:  # the controller acts at frame starts: one segment per frame
        return max(schedule.substeps), schedule.segments(0, at_frames=True)
    room = Capacity.for_particles(n_particles, 0, needs_grad=True).particles  # what the solver allocates
    k = checkpoint_every or default_checkpoint_interval(schedule.total, config.slot_bytes(room))
    k = min(k, schedule.total)
    return k, schedule.segments(k)


class _OpenLoop:
    """Activations given up front: (frames, groups) Pa, held for each frame's substeps."""

    def __init__(self, model, actuation, schedule: Schedule, dtype):
        frames = len(schedule.substeps)
        act = model.check_actuation(actuation, frames)
        act = act.to(dtype) if torch.is_tensor(act) else torch.as_tensor(act, dtype=dtype)
        self.applied = act.reshape(frames, -1) if model.n_actuators else None
        groups = act.reshape(frames, -1) if model.n_actuators else torch.zeros(frames, 1, dtype=dtype)
        self.per_substep = groups[torch.as_tensor(np.repeat(np.arange(frames), schedule.substeps))]

    def __call__(self, g0: int, length: int, inputs) -> torch.Tensor:
        return self.per_substep[g0:g0 + length]


class _ClosedLoop:
    """A controller called at each frame start with the current state: (groups,) Pa for the frame."""

    def __init__(self, controller, model, schedule: Schedule, frame_dt: float, dtype):
        self.controller, self.groups, self.frame_dt, self.dtype = controller, model.n_actuators, frame_dt, dtype
        self.frame_of = {g: f for f, g in enumerate(schedule.frame_starts())}
        self.steps = []

    def __call__(self, g0: int, length: int, inputs) -> torch.Tensor:
        t = self.frame_of[g0] * self.frame_dt
        a = torch.as_tensor(self.controller(t, {"x": inputs.x, "v": inputs.v}), dtype=self.dtype)
        if a.shape != (self.groups,):
            raise ValueError(f"controller returned shape {tuple(a.shape)}, expected ({self.groups},): "
                             "one activation (Pa) per actuator group")
        self.steps.append(a)
        return a.expand(length, self.groups)

    @property
    def applied(self) -> torch.Tensor:
        return torch.stack(self.steps)


def rollout(scene, frames: int, frame_dt: float, record=("x",), checkpoint_every: int | None = None,
            actuation=None, controller: Callable | None = None, start: dict | None = None) -> Rollout:
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
    be = backend.active()
    dtype = torch.float64 if be.precision == "f64" else torch.float32
    model = scene.model
    particles = _particle_inputs(scene, dtype)
    begin = _start_state(scene, start, particles, dtype)
    schedule = _schedule(scene, frames, frame_dt, particles["wave_speed"], begin["v"].detach().cpu().numpy())
    config = model.configuration(be.precision, be.arch, needs_grad=True)
    k, segments = _checkpoints(config, model.n_particles, schedule, checkpoint_every, controller is not None)
    runner = _Runner(model, config, solver_slots(k), schedule)
    origin, vel, friction = _collider_inputs(model, schedule, dtype)
    activation = (_ClosedLoop(controller, model, schedule, frame_dt, dtype) if controller is not None
                  else _OpenLoop(model, actuation, schedule, dtype))
    inputs = SegmentInputs(**begin,
                           **{name: particles[name] for name in SegmentInputs.CONSTANTS},
                           activation=getattr(activation, "per_substep", None), collider_origin=origin,
                           collider_velocity=vel, collider_friction=friction,
                           neural=tuple(model.stress_hook.parameters()) if model.stress_hook is not None else ())
    # A controller's parameters are not visible here: assume it has some.
    differentiable = torch.is_grad_enabled() and (controller is not None
                                                  or any(t.requires_grad for t in inputs.flat()))
    history = _run_segments(runner, inputs, segments, record, activation, differentiable)
    t = torch.as_tensor(np.concatenate([[0.0], np.cumsum([frame_dt] * frames)]), dtype=dtype)
    meta = {"substeps": list(schedule.substeps), "dt": list(schedule.dts), "frame_dt": frame_dt,
            "checkpoint_every": k if controller is None else "frame"}
    fields = output_conventions({name: torch.stack(values) for name, values in history.items()}, model.kind,
                                model.dim)
    return Rollout(t=t, body_id=model.body_id.copy(), material_id=model.material_id.copy(), meta=meta,
                   actuation=activation.applied, **fields)


def _start_state(scene, start: dict | None, particles: dict, dtype) -> dict:
    """{x, v, C, F, Jp}: the bodies' initial state, with the fields given in `start` in its place
    ((n, dim), (n, dim), (n, dim, dim), (n, dim, dim), (n,) tensors or arrays with `run`'s conventions,
    e.g. one frame of a recorded Trajectory: teacher forcing restarts a rollout from it). Unlike a body's
    positions, a started state may have particles in the walls' layer (where a run leaves bodies
    resting on a floor); they must lie inside the domain."""
    init = scene.initial_state()
    state = {"x": particles["x"], "v": particles["v"],
             **{name: torch.as_tensor(init[name], dtype=dtype) for name in ("C", "F", "Jp")}}
    if start is None:
        return state
    unknown = sorted(set(start) - set(STATE))
    if unknown:
        raise ValueError(f"rollout(start=...): unknown fields {unknown}; give some of {STATE}")
    n, d = scene.model.n_particles, scene.dim
    shapes = {"x": (n, d), "v": (n, d), "C": (n, d, d), "F": (n, d, d), "Jp": (n,)}
    for name, value in start.items():
        value = value.to(dtype) if torch.is_tensor(value) else torch.as_tensor(np.asarray(value), dtype=dtype)
        if tuple(value.shape) != shapes[name]:
            raise ValueError(f"rollout(start=...): {name} has shape {tuple(value.shape)}, expected {shapes[name]} "
                             f"for the scene's {n} particles")
        if not torch.isfinite(value).all():
            raise ValueError(f"rollout(start=...): {name} has non-finite values")
        state[name] = value
    x = state["x"].detach()
    if bool(((x < 0) | (x > 1)).any()):
        raise ValueError("rollout(start=...): a particle of x lies outside the domain [0, 1]^dim")
    return state


def _run_segments(runner, inputs: SegmentInputs, segments, record, activation, differentiable: bool) -> dict:
    """Run the segments in order from `inputs` (the initial state and every input for the whole
    rollout); returns {field: [state per frame]} for the recorded fields."""
    history = {name: [getattr(inputs, name)] for name in STATE if name in record}
    for g0, length in segments:
        part = slice(g0, g0 + length)
        segment = dataclasses.replace(inputs, activation=activation(g0, length, inputs),
                                      collider_origin=inputs.collider_origin[part],
                                      collider_velocity=inputs.collider_velocity[part])
        args = (runner, g0, length, record, *segment.flat())
        if differentiable:
            out = _SegmentFunction.apply(*args)
        else:
            with torch.no_grad():
                out = _SegmentFunction.forward(_NoContext(), *args)
        inputs = dataclasses.replace(inputs, **dict(zip(STATE, out[:len(STATE)])))
        for name, frames_out in zip(STATE, out[len(STATE):]):
            if name in history:
                history[name].extend(frames_out.unbind(0))
    return history
