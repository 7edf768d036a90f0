"""Forward and reverse sweeps of one segment of a differentiable MPM rollout.

A rollout is cut into segments of at most k substeps. A segment starts from a full particle state
{x, v, C, F, Jp} (its checkpoint: the caller keeps it — simcore.torch lets autograd keep it as the
segment's input) and runs its substeps in the solver's slots 0..k. Nothing is kept per substep of the
whole rollout: peak memory grows like n·(T/k + k), not n·T.

The reverse sweep of a segment restores its start state and recomputes its substeps forward (filling
slots 0..length; the last segment of a rollout skips this, its states are still there), saving each
substep's grid and per-particle temporaries (F_trial and its decomposition, the APIC affine matrix) in
the solver's per-slot copies: k grids, reused by every segment (`FieldLayout.KEEP_BUDGET`; above it the
grid is recomputed instead, `deform; p2g_stress; p2g_scatter` (which clears the grid, scatters and
runs the grid update)). Then it runs the adjoint of each substep in reverse:

    [load_temporaries(s): the particles' copies (F_trial, its decomposition), for the segment's last substep]
        [without copies: deform; p2g_stress; p2g_scatter; clear_grid_adjoints()]
    g2p_adjoint_scatter(s, s+1) (restoring the grid's copy first); grid_update.grad(s);
    transfer_adjoint_gather(s, s+1); p2g_stress.grad(s, s+1); [neural adjoint];
    deform_adjoint(s) (restoring the particles' copies of substep s-1 after)

Time-dependent inputs (collider origins and velocities, activations) live per slot in the solver,
uploaded for a whole segment before it runs; their adjoints accumulate per slot.

The adjoints of the per-particle stress update and of the grid update are Taichi's reverse-mode
autodiff of the same kernels the forward simulation runs (simcore.mpm.step), so forward and gradient
never describe different constitutive physics; the transfers (P2G's scatter, G2P), the SVD and the
closest rotation have hand-written adjoints, checked against finite differences in tests/diff.
"""

from __future__ import annotations

import numpy as np
import taichi as ti

from .. import backend
from ..mpm.planner import Schedule
from ..mpm.state import STATE

PARAMS = ("mass", "volume", "mu", "lam", "plastic")


class DiffRollout:
    """Runs segments of a solver (built with needs_grad=True) forward and backward.

    Args:
        solver: simcore.mpm.solver.MPMSolver with needs_grad=True; a segment may be up to
            solver.slots - 1 substeps long.
        schedule: the rollout's substeps.
    """

    def __init__(self, solver, schedule: Schedule):
        if not solver.needs_grad:
            raise ValueError("DiffRollout needs a solver built with needs_grad=True")
        self.solver = solver
        self.schedule = schedule
        self.dtype = np.float64 if solver.real == ti.f64 else np.float32
        # Floor on the singular denominators of the decompositions' adjoints (|s_j − s_i| in the SVD's,
        # det(tr S I − S) in the closest rotation's): far below any physical value, far above round-off.
        self.adjoint_eps = 1e-12 if solver.real == ti.f64 else 1e-6
        self.frame_at = {g: f + 1 for f, g in enumerate(schedule.frame_ends())}

    def _check_length(self, length):
        if not 1 <= length <= self.solver.slots - 1:
            raise ValueError(f"a segment of {length} substeps needs a solver with at least {length + 1} slots")

    def _recompute(self, start: dict, g0: int, length: int, on_state=None, keep=True):
        """Import `start` into slot 0 and run substeps g0 .. g0 + length - 1 into slots 1..length;
        with `keep`, save each substep's temporaries for the reverse sweep (if the solver keeps them)."""
        solver = self.solver
        solver.resident = None
        solver.import_slot(0, start)
        keep = keep and solver.keeps_temporaries
        for i in range(length):
            g = g0 + i
            solver.set_dt(self.schedule.dt_of(g))
            solver.substep(i, i + 1, keep)
            if on_state is not None:
                on_state(g + 1, i + 1)
        return keep

    # -- forward ----------------------------------------------------------------------------
    def forward_segment(self, start: dict, g0: int, length: int, fields=("x", "v"),
                        keep: bool = False) -> tuple[dict, dict[int, dict]]:
        """Run one segment from `start` ({x, v, C, F, Jp} arrays). Returns the end state and
        {frame index: {field: array}} (the given state fields) for every frame that ends inside the
        segment. `keep`: also save the substeps' temporaries, for a reverse sweep that comes next
        (the last segment of a rollout that will be differentiated)."""
        self._check_length(length)
        frames = {}

        def on_state(g, slot):
            if g in self.frame_at:
                state = self.solver.export_slot(slot)
                frames[self.frame_at[g]] = {name: state[name] for name in fields}

        kept = self._recompute(start, g0, length, on_state, keep)
        # The segment's states stay in the slots: if its backward comes next (the last segment of a
        # rollout), it needs no recomputation.
        self.solver.resident = (id(self), g0, length, kept)
        return self.solver.export_slot(length), frames

    # -- backward ---------------------------------------------------------------------------
    def backward_segment(self, start: dict, g0: int, length: int, grad_end: dict,
                         grad_frames: dict[int, dict]) -> dict[str, np.ndarray]:
        """Gradients of a loss with respect to the segment's start state and the per-particle
        parameters, given dL/d(end state) `grad_end` ({x, v, C, F, Jp}, any may be missing) and
        dL/d(state) of the frames ending inside the segment ({frame: {field: array}}).

        Returns {x, v, C, F, Jp (of the start state), mass, volume, mu, lam, plastic,
        collider_friction}: the parameter gradients are this segment's contribution only."""
        self._check_length(length)
        solver = self.solver
        for field in [getattr(solver, n) for n in PARAMS] + [solver.collider_friction]:
            field.grad.fill(0)
        solver.zero_state_grads(length)  # each substep's adjoint initialises the slot it writes into
        if solver.split_deform:  # F_trial and its decomposition's adjoints (deform_adjoint re-zeroes them)
            solver.clear_temporary_adjoints()
        if getattr(solver, "resident", None) != (id(self), g0, length, solver.keeps_temporaries):
            self._recompute(start, g0, length)
        solver.resident = None
        self._inject(length, grad_end)
        scattered = False  # whether the last substep's kernel ran this one's g2p_adjoint_scatter
        for i in range(length, 0, -1):
            if self._has_loss_at(g0 + i, grad_frames):
                self._inject(i, grad_frames[self.frame_at[g0 + i]])
            scattered = self._substep_adjoint(g0 + i - 1, i - 1, first=i == length, scattered=scattered,
                                              grad_frames=grad_frames)
        grads = solver.empty_state()
        solver.export_state_grads(0, grads["x"], grads["v"], grads["C"], grads["F"], grads["Jp"])
        for name in PARAMS:
            grads[name] = solver.per_particle(getattr(solver, name).grad)
        grads["collider_friction"] = solver.collider_friction.grad.to_numpy()
        return grads

    def _inject(self, slot, grads: dict):
        state = self.solver.empty_state()
        arrays = [np.zeros_like(state[k]) if grads.get(k) is None else np.ascontiguousarray(grads[k], self.dtype)
                  for k in STATE]
        self.solver.add_state_grads(slot, *arrays)

    def _has_loss_at(self, g: int, grad_frames: dict) -> bool:
        """Whether the loss reads the state after global substep g − 1: a frame ends there and its
        gradient is not all zeros (torch hands zeros for the recorded frames a loss does not read)."""
        f = self.frame_at.get(g)
        return f is not None and f in grad_frames and any(
            a is not None and np.any(a) for a in grad_frames[f].values())

    def _fusing_solver(self) -> bool:
        """Whether the solver's reverse sweep fuses each gather with the next substep's scatter
        (`transfer_adjoint_gather_scatter`): slot s's adjoints are complete after the gather (closed-form
        stress adjoint), its grids are kept, and it scatters in parts."""
        solver = self.solver
        return solver.closed_stress_adjoint and solver.keeps_temporaries and solver.parts > 1

    def _fuses_next_scatter(self, g: int, s: int, grad_frames: dict) -> bool:
        """Whether substep g's gather may run the next reverse substep's scatter (a fusing solver): not
        the segment's last, no loss term is still to be added to slot s, and the substep before has the
        same dt."""
        return (self._fusing_solver() and s > 0 and not self._has_loss_at(g, grad_frames)
                and self.schedule.dt_of(g - 1) == self.schedule.dt_of(g))

    def _substep_adjoint(self, g: int, s: int, first: bool, scattered: bool, grad_frames: dict) -> bool:
        """The reverse sweep of global substep g (slots s → s + 1); `first`: the first of its segment;
        `scattered`: whether its g2p_adjoint_scatter ran already (`_fuses_next_scatter` of substep g + 1).
        Returns whether it ran the next one's."""
        solver = self.solver
        solver.set_dt(self.schedule.dt_of(g))
        keeps = solver.keeps_temporaries
        if not keeps:
            if solver.split_deform:
                solver.deform(s)
            if solver.has_neural:
                solver.stress_hook.stress(solver, s)
            solver.p2g_stress(s, s + 1)
            solver.p2g_scatter(s, solver.serial_scatter, solver.parts)  # and the grid update
            solver.clear_grid_adjoints()
        elif first and solver.split_deform:  # else deform_adjoint(s + 1) restored them (affine: read in place)
            solver.load_temporaries(s)
        serial = solver.serial_adjoint
        if not scattered:
            solver.g2p_adjoint_scatter(s, s + 1, serial, keeps, solver.parts)  # restoring the kept grid first
        solver.grid_update.grad(s, serial)
        fuses = self._fuses_next_scatter(g, s, grad_frames)
        if self._fusing_solver():  # with the next reverse substep's g2p_adjoint_scatter where `fuses`
            solver.transfer_adjoint_gather_scatter(s, int(fuses), solver.parts)
        else:  # with the stress update's adjoint where it is in closed form
            solver.transfer_adjoint_gather(s, s + 1)
        if not solver.closed_stress_adjoint:
            with backend.quick_compile():  # its advanced IR passes take minutes for nothing (backend)
                solver.p2g_stress.grad(s, s + 1)
        if solver.has_neural:
            solver.stress_hook.adjoint(solver, s)
        if solver.split_deform:
            solver.deform_adjoint(s, self.adjoint_eps, keeps and s > 0)
        return fuses
