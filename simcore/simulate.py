"""The forward driver: runs a model from a state, frame by frame, into a numpy Trajectory.

`Scene.run` calls it; so can any code that holds a model and a state (a dataset generator). It runs on
the shared compiled solver of the model's configuration (simcore.mpm.cache), re-plans the substeps
every frame from the CFL bound of the current state (simcore.mpm.planner), moves kinematic colliders
(simcore.mpm.kinematics), checks every frame for non-finite or escaped particles, and on a failure
replays the frame substep by substep to say where it went wrong.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from . import backend
from .errors import SimulationError
from .mpm import cache
from .mpm.kinematics import collider_paths
from .mpm.model import Model
from .mpm.planner import substeps_for_frame
from .mpm.state import State, output_conventions
from .progress import Progress, quiet
from .trajectory import RECORDABLE, Trajectory

SLOTS = 2  # a forward run ping-pongs between two particle-state slots


@dataclasses.dataclass
class _Frames:
    """What a run has recorded so far (everything a failure must still return)."""

    model: Model
    frame_dt: float
    history: dict
    times: list
    substeps: list = dataclasses.field(default_factory=list)
    dts: list = dataclasses.field(default_factory=list)

    def trajectory(self) -> Trajectory:
        m = self.model
        meta = {"dim": m.dim, "grid": m.grid, "dx": m.dx, "frame_dt": self.frame_dt, "substeps": list(self.substeps),
                "dt": list(self.dts), "gravity": m.gravity.tolist(), "precision": backend.active().precision,
                "arch": backend.active().arch}
        per_frame = {name: np.stack(values) for name, values in self.history.items()}
        return Trajectory(t=np.asarray(self.times), body_id=m.body_id.copy(), material_id=m.material_id.copy(),
                          mass=m.mass.copy(), volume=m.volume.copy(), body_names=list(m.body_names),
                          material_names=list(m.material_names), meta=meta, **per_frame)


class _Run:
    """One call of `simulate`: the solver, the slot holding the current state, the colliders' origins,
    and the last completed frame's state (`checkpoint`, exported in the solver's precision), from which
    a failed frame is replayed and to which the caller's State is set when the run stops."""

    def __init__(self, model: Model, state: State):
        be = backend.active()
        self.model = model
        self.solver = cache.solver_for(model.configuration(be.precision, be.arch), model.n_particles, SLOTS)
        self.solver.load(model)
        self.solver.import_slot(0, state)
        self.cur = 0
        self.origin = state.collider_origin
        self.checkpoint = (self.solver.export_slot(0), self.origin, state.time)  # as the solver holds it
        dx = model.dx
        self.lo, self.hi = 1.5 * dx, 1 - 1.5 * dx  # the stencil of a particle beyond these leaves the grid

    def bad(self) -> bool:
        self.solver.diagnose(self.cur, self.lo, self.hi)
        return self.solver.bad_count[0] > 0

    def substeps(self, t0: float, n: int, dt: float, stop_when_bad=False) -> int:
        """Run n substeps of dt from time t0 (s); with stop_when_bad, check after each and return the
        index of the first bad one (else n)."""
        solver, model = self.solver, self.model
        path = collider_paths(model.colliders, self.origin, t0, np.full(n, dt), model.dim) \
            if model.kinematic else None

        def inputs(k, slot):
            if path is not None:  # colliders where they are now, moving at their velocity at time t
                solver.set_substep_inputs(slot, origin=path[0][k][None], velocity=path[1][k][None])

        if n > 1 and not stop_when_bad and solver.fuses_transfers:
            self.cur = solver.fused_substeps(self.cur, n, inputs)
        else:
            for k in range(n):
                inputs(k, self.cur)
                solver.substep(self.cur, 1 - self.cur)
                self.cur = 1 - self.cur
                if stop_when_bad and self.bad():
                    return k
        if path is not None:
            self.origin = path[0][n]
        return n

    def complete_frame(self, time: float) -> dict:
        """Keep the current state as the last completed frame's, at `time` (s); return it (raw)."""
        raw = self.solver.export_slot(self.cur)
        self.checkpoint = (raw, self.origin, time)
        return raw

    def restart_frame(self):
        """Back to the start of the frame being computed (the checkpoint), in slot 0."""
        raw, self.origin, _ = self.checkpoint
        self.solver.import_slot(0, raw)
        self.cur = 0

    def recorded(self, raw: dict, names) -> dict:
        """The recorded fields of a raw exported state, with the output conventions, float64."""
        fields = {name: raw[name] for name in set(names) | ({"Jp"} if "F" in names else set())}
        out = output_conventions(fields, self.model.kind, self.model.dim)
        return {name: out[name].astype(np.float64) for name in names}

    def final_state(self) -> State:
        """The last completed frame as a host State (float64)."""
        raw, origin, time = self.checkpoint
        return State(**{k: np.asarray(v, dtype=np.float64) for k, v in raw.items()}, time=time,
                     collider_origin=None if origin is None else origin.copy())


def simulate(model: Model, state: State, frames: int, frame_dt: float, *, dt: float | None, cfl: float,
             record=("x",), progress: bool | None = None, actuation=None) -> Trajectory:
    """Advance `state` (in place) by `frames` frames of `frame_dt` seconds; see `Scene.run`.

    dt: largest substep (s) or None for cfl · the CFL bound. If the run stops early (a SimulationError,
    an interrupt), `state` is left at the last frame completed, and a SimulationError's `.trajectory`
    holds every frame before the failure.
    progress: None: report runs longer than 2 s (a bar on a terminal or in a notebook, else a line on
    stderr every 10 s, see simcore.progress); True: report from the start; False: report nothing (not
    even the compilation of a new solver).
    """
    record = tuple(dict.fromkeys(("x",) + tuple(record)))
    unknown = set(record) - set(RECORDABLE)
    if unknown:
        raise ValueError(f"cannot record {sorted(unknown)}: choose from {RECORDABLE}")
    actuation = np.asarray(model.check_actuation(actuation, frames), dtype=np.float64)
    with quiet(progress is False):
        run = _Run(model, state)
    if run.bad():
        raise SimulationError("the scene's current state is already non-finite or off the grid; "
                              "call scene.reset()", frame=0)
    first = run.recorded(run.checkpoint[0], record)
    done = _Frames(model, frame_dt, {name: [first[name]] for name in record}, [state.time])
    bar = Progress(frames, "frame", show=progress)
    solver, gravity = run.solver, float(np.linalg.norm(model.gravity))
    try:
        for frame in range(1, frames + 1):
            t0 = run.checkpoint[2]
            try:
                n_sub, step = substeps_for_frame(frame_dt, float(solver.max_signal_speed[0]), gravity, model.dx,
                                                 dt, cfl, frame)
            except SimulationError as err:
                err.trajectory = done.trajectory()
                raise
            solver.set_dt(step)
            if solver.n_actuators:  # held for the frame: every slot
                solver.set_substep_inputs(0, activation=np.broadcast_to(actuation[frame - 1],
                                                                        (solver.slots, solver.n_actuators)))
            run.substeps(t0, n_sub, step)
            if run.bad():
                _locate_failure(run, done, frame, n_sub, step)
            now = run.recorded(run.complete_frame(t0 + frame_dt), record)
            for name in record:
                done.history[name].append(now[name])
            done.times.append(t0 + frame_dt)
            done.substeps.append(n_sub)
            done.dts.append(step)
            bar.update(1)
    finally:
        bar.close()
        _advance(state, run.final_state())
    return done.trajectory()


def _advance(state: State, new: State) -> None:
    for field in dataclasses.fields(State):
        setattr(state, field.name, getattr(new, field.name))


def _locate_failure(run: _Run, done: _Frames, frame, n_sub, dt):
    """Replay the failed frame from its start, checking after every substep, and raise a SimulationError
    that says where it failed."""
    solver = run.solver
    run.restart_frame()
    bad_substep = min(run.substeps(run.checkpoint[2], n_sub, dt, stop_when_bad=True), n_sub - 1)
    p, count = int(solver.first_bad[0]), int(solver.bad_count[0])
    n = run.model.n_particles
    body = run.model.body_names[int(run.model.body_id[p])] if p < n else None
    x = solver.export_slot(run.cur)["x"][p] if p < n else None
    raise SimulationError(
        f"simulation failed at frame {frame}, substep {bad_substep} of {n_sub} (dt={dt:.3g} s): "
        f"{count} particle(s) of body {body!r} became non-finite or left the grid (first: particle "
        f"{p}, x={np.round(x, 4).tolist() if x is not None else None})",
        advice="Lower dt or cfl (Scene(dt=..., cfl=...)), check the material parameters (a stiff material "
               "needs smaller steps), or enlarge the domain. The frames before the failure are in error.trajectory.",
        frame=frame, substep=bad_substep, body=body, trajectory=done.trajectory())

