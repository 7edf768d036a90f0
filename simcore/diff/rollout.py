"""Forward and reverse sweeps of a differentiable MPM rollout.

Memory: particle state is kept on the device for one segment of `k` substeps (slots 0..k) and on the
host at the start of every segment (checkpoints); the grid is never stored per step. Peak memory grows
like n·(T/k + k), not n·T. The reverse sweep walks the segments backwards: restore the segment's
checkpoint, recompute its substeps forward (filling slots 0..k), then run the adjoint of each substep
in reverse — recomputing that substep's grid first, since only particle states are kept:

    clear_grid; p2g(s, s+1); grid_update          (recompute the grid of substep s)
    g2p.grad(s, s+1); grid_update.grad(); p2g.grad(s, s+1)

The adjoints of the kernels are Taichi's reverse-mode autodiff of the same kernels the forward
simulation runs (simcore.mpm.solver), so forward and gradient can never describe different physics.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import taichi as ti

STATE = ("x", "v", "C", "F", "Jp")
PARAMS = ("mass", "volume", "mu", "lam", "plastic")


@dataclasses.dataclass
class Schedule:
    """Substeps of a rollout: dt per frame, substeps per frame, and where frames end."""

    substeps: list[int]
    dts: list[float]

    @property
    def total(self) -> int:
        return sum(self.substeps)

    def frame_ends(self) -> list[int]:
        """Global substep index after which each frame 1..F ends (frame f ends after frame_ends[f-1])."""
        return list(np.cumsum(self.substeps))

    def dt_of(self, g: int) -> float:
        """dt of global substep g."""
        for n, dt in zip(self.substeps, self.dts):
            if g < n:
                return dt
            g -= n
        raise IndexError(g)


class DiffRollout:
    """Runs a solver (built with needs_grad=True and slots = k + 1) forward with checkpoints, and
    backward given the gradients of the recorded per-frame states.

    Args:
        solver: simcore.mpm.solver.MPMSolver with needs_grad=True.
        checkpoint_every: k, substeps per segment (default and maximum: solver.slots - 1).
        before_substep: callable(g) that sets time-dependent inputs (kinematic colliders, actuator
            activations) for global substep g, or None. Called before every forward and recomputed substep.
        after_adjoint: callable(g) called after substep g's adjoint (to collect the adjoints of
            time-dependent inputs), or None.
    """

    def __init__(self, solver, before_substep=None, after_adjoint=None, checkpoint_every: int | None = None):
        if not solver.needs_grad:
            raise ValueError("DiffRollout needs a solver built with needs_grad=True")
        self.solver = solver
        self.k = solver.slots - 1 if checkpoint_every is None else int(checkpoint_every)
        if not 1 <= self.k <= solver.slots - 1:
            raise ValueError(f"checkpoint_every={checkpoint_every} needs 1 <= k <= {solver.slots - 1} "
                             "(the solver's slots - 1)")
        self.before_substep = before_substep
        self.after_adjoint = after_adjoint
        self.checkpoints: list[dict] = []
        self.schedule: Schedule | None = None
        # Floor on |s_j² − s_i²| in the SVD adjoint: far below any physical gap, far above round-off.
        self.svd_eps = 1e-12 if solver.real == ti.f64 else 1e-6

    # -- forward ----------------------------------------------------------------------------
    def _segments(self):
        """(first global substep, length) of each segment."""
        total = self.schedule.total
        return [(g0, min(self.k, total - g0)) for g0 in range(0, total, self.k)]

    def _run_segment(self, g0: int, length: int, on_state=None):
        solver = self.solver
        for i in range(length):
            g = g0 + i
            solver.dt[None] = self.schedule.dt_of(g)
            if self.before_substep is not None:
                self.before_substep(g)
            solver.substep(i, i + 1)
            if on_state is not None:
                on_state(g + 1, i + 1)

    def forward(self, initial: dict, schedule: Schedule, record=("x",), keep=True) -> dict[str, np.ndarray]:
        """Run the schedule from `initial` ({x, v, C, F, Jp} arrays). Returns per-frame arrays
        {name: (frames + 1, n, ...)} for `record`. With keep=False no checkpoint is stored."""
        solver = self.solver
        self.schedule = schedule
        self.checkpoints = []
        ends = {g: f + 1 for f, g in enumerate(schedule.frame_ends())}
        frames = {name: [initial[name].copy()] for name in record}

        def on_state(g, slot):
            if g in ends:
                state = solver.export_slot(slot)
                for name in record:
                    frames[name].append(state[name])

        solver.import_slot(0, initial)
        for g0, length in self._segments():
            if keep:
                self.checkpoints.append(solver.export_slot(0))
            self._run_segment(g0, length, on_state)
            solver.copy_state(length, 0)
        return {name: np.stack(values) for name, values in frames.items()}

    # -- backward ---------------------------------------------------------------------------
    def backward(self, grad_frames: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Gradients of a loss L with respect to the initial state and the per-particle parameters,
        given dL/d(recorded state) per frame: {name: (frames + 1, n, ...)} for name in ("x", "v").

        Returns {x, v, C, F, Jp (of the initial state), mass, volume, mu, lam, plastic, gravity}."""
        if not self.checkpoints:
            raise RuntimeError("backward needs a forward run with keep=True first")
        solver = self.solver
        unknown = set(grad_frames) - {"x", "v"}
        if unknown:
            raise ValueError(f"gradients can flow back from recorded x and v only, not {sorted(unknown)}")
        ends = self.schedule.frame_ends()
        frame_at = {g: f + 1 for f, g in enumerate(ends)}
        for field in [getattr(solver, n) for n in STATE + PARAMS] + [solver.gravity]:
            field.grad.fill(0)
        dtype = np.float64 if solver.real == ti.f64 else np.float32
        segments = self._segments()
        for j in range(len(segments) - 1, -1, -1):
            g0, length = segments[j]
            # Recompute the segment's states into slots 0..length.
            solver.import_slot(0, self.checkpoints[j])
            self._run_segment(g0, length)
            for i in range(length, 0, -1):
                g = g0 + i
                if g in frame_at:
                    f = frame_at[g]
                    self._inject(i, grad_frames, f, dtype)
                self._substep_adjoint(g - 1, i - 1)
            if j > 0:
                # Slot 0 of this segment is slot `length` of the previous one.
                solver.move_state_grads(0, segments[j - 1][1])
        self._inject(0, grad_frames, 0, dtype)
        grads = self._export_state_grads(0)
        for name in PARAMS:
            grads[name] = getattr(solver, name).grad.to_numpy()
        grads["gravity"] = solver.gravity.grad.to_numpy()[0]
        return grads

    def _inject(self, slot, grad_frames, f, dtype):
        n, d = self.solver.n_particles, self.solver.dim
        gx = grad_frames.get("x")
        gv = grad_frames.get("v")
        gx = np.zeros((n, d), dtype) if gx is None else np.ascontiguousarray(gx[f], dtype)
        gv = np.zeros((n, d), dtype) if gv is None else np.ascontiguousarray(gv[f], dtype)
        self.solver.add_state_grads(slot, gx, gv)

    def _substep_adjoint(self, g: int, s: int):
        solver = self.solver
        solver.dt[None] = self.schedule.dt_of(g)
        if self.before_substep is not None:
            self.before_substep(g)
        solver.clear_grid()
        if solver.split_svd:
            solver.deform_and_svd(s)
        solver.p2g(s, s + 1)
        solver.grid_update()
        for field in (solver.grid_momentum, solver.grid_mass, solver.grid_velocity):
            field.grad.fill(0)
        solver.g2p.grad(s, s + 1)
        solver.grid_update.grad()
        if solver.split_svd:
            for field in (solver.F_trial, solver.svd_U, solver.svd_s, solver.svd_V):
                field.grad.fill(0)
        solver.p2g.grad(s, s + 1)
        if solver.split_svd:
            solver.deform_and_svd_adjoint(s, self.svd_eps)
        if self.after_adjoint is not None:
            self.after_adjoint(g)

    def _export_state_grads(self, s: int) -> dict[str, np.ndarray]:
        out = self.solver.empty_state()
        self.solver.export_state_grads(s, out["x"], out["v"], out["C"], out["F"], out["Jp"])
        return out

    def peak_state_bytes(self) -> int:
        """Host bytes held by checkpoints (device slots are solver memory)."""
        return sum(a.nbytes for c in self.checkpoints for a in c.values())
