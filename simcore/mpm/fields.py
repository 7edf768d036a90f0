"""The Taichi fields of an MPM solver, allocated once for a `Configuration` and a `Capacity`.

Particle arrays are allocated for `capacity.particles` and the kernels loop over the first
`n_active[None]` of them, so a compiled solver serves any scene of its configuration that fits.
"""

from __future__ import annotations

import taichi as ti

from .config import Capacity, Configuration


def _place(make_block, *fields):
    """Place fields side by side in a block from make_block(), and their adjoints (if any) in a second
    block of the same shape: adjoints interleaved with their primals (Taichi's lazy_grad layout) would
    double the stride of every forward pass over the primals."""
    make_block().place(*fields)
    adjoints = [f.grad for f in fields if getattr(f, "grad", None) is not None]
    if adjoints:
        make_block().place(*adjoints)


def _like(field, real):
    """An unplaced field of field's element type (scalar, vector or matrix), without an adjoint."""
    if not hasattr(field, "n"):
        return ti.field(real)
    return ti.Vector.field(field.n, real) if field.ndim == 1 else ti.Matrix.field(field.n, field.m, real)


class FieldLayout:
    """Allocation of every field (a mixin of MPMSolver; `allocate` runs in its constructor)."""

    # A reverse sweep needs, for each substep, the grid and the per-particle temporaries (F_trial and
    # its decomposition, the APIC affine matrix, a Neural material's output) of its forward. Gradient
    # solvers keep a copy of them per slot when all slots (`Configuration.slot_bytes`) fit in this many bytes (they
    # are a segment's k substeps, not the rollout's T); otherwise the reverse sweep recomputes them.
    KEEP_BUDGET = 1 << 30

    def allocate(self, cfg: Configuration, cap: Capacity):
        dim, n, slots, grad = cfg.dim, cap.particles, cap.slots, cfg.needs_grad
        real = ti.f64 if cfg.precision == "f64" else ti.f32
        fb = ti.FieldsBuilder()
        # Particle state, one copy per slot.
        self.x = ti.Vector.field(dim, real, needs_grad=grad)         # position, m
        self.v = ti.Vector.field(dim, real, needs_grad=grad)         # velocity, m/s
        self.C = ti.Matrix.field(dim, dim, real, needs_grad=grad)    # APIC affine velocity (≈ ∇v), 1/s
        self.F = ti.Matrix.field(dim, dim, real, needs_grad=grad)    # deformation gradient (elastic part)
        self.Jp = ti.field(real, needs_grad=grad)                    # plastic volume ratio (snow), J (fluid)
        _place(lambda: fb.dense(ti.ij, (slots, n)), self.x, self.v, self.C, self.F, self.Jp)
        # Per-particle constants.
        self.mass = ti.field(real, needs_grad=grad)                  # kg
        self.volume = ti.field(real, needs_grad=grad)                # rest volume, m^dim
        self.mu = ti.field(real, needs_grad=grad)                    # Pa (fluid: viscosity Pa·s)
        self.lam = ti.field(real, needs_grad=grad)                   # Pa (fluid: bulk modulus)
        self.plastic = ti.Vector.field(3, real, needs_grad=grad)     # material constants, see simcore.materials
        self.wave_speed = ti.field(real)                             # rest elastic wave speed, m/s
        self.kind = ti.field(ti.i32)
        _place(lambda: fb.dense(ti.i, n), self.mass, self.volume, self.mu, self.lam, self.plastic,
               self.wave_speed, self.kind)
        # Actuators: group per particle (−1: passive), unit fibre direction, and the activation of each
        # group (Pa) for the substep that starts from each slot (activation[s, g]).
        if cfg.n_actuators > 0:
            self.actuator_group = ti.field(ti.i32)
            self.fibre = ti.Vector.field(dim, real)
            fb.dense(ti.i, n).place(self.actuator_group, self.fibre)
            self.activation = ti.field(real, needs_grad=grad)
            _place(lambda: fb.dense(ti.ij, (slots, cfg.n_actuators)), self.activation)
        self._allocate_temporaries(fb, cfg, n, real)
        # Grid.
        self.grid_momentum = ti.Vector.field(dim, real, needs_grad=grad)   # kg·m/s
        self.grid_mass = ti.field(real, needs_grad=grad)                   # kg
        self.grid_velocity = ti.Vector.field(dim, real, needs_grad=grad)   # m/s after forces and boundaries
        _place(lambda: fb.dense(ti.ij if dim == 2 else ti.ijk, (cfg.grid,) * dim),
               self.grid_momentum, self.grid_mass, self.grid_velocity)
        if cfg.flip:  # the FLIP blend's grid velocity before forces (simcore.mpm.step, `_flip_velocity`)
            self.grid_momentum0 = ti.Vector.field(dim, real, needs_grad=grad)  # kg·m/s, APIC momentum, no stress
            self.grid_velocity0 = ti.Vector.field(dim, real, needs_grad=grad)  # m/s, its velocity
            _place(lambda: fb.dense(ti.ij if dim == 2 else ti.ijk, (cfg.grid,) * dim),
                   self.grid_momentum0, self.grid_velocity0)
        if self.max_parts > 1:  # the partitioned scatter's grid copies (simcore.mpm.step)
            self.part_momentum = ti.Vector.field(dim, real)
            self.part_mass = ti.field(real)
            _place(lambda: fb.dense(ti.axes(*range(dim + 1)), (self.max_parts,) + (cfg.grid,) * dim),
                   self.part_momentum, self.part_mass)
            if cfg.flip:
                self.part_momentum0 = ti.Vector.field(dim, real)
                fb.dense(ti.axes(*range(dim + 1)), (self.max_parts,) + (cfg.grid,) * dim).place(self.part_momentum0)
            self.part_box_lo = ti.Vector.field(dim, ti.i32)
            self.part_box_hi = ti.Vector.field(dim, ti.i32)
            _place(lambda: fb.dense(ti.i, self.max_parts), self.part_box_lo, self.part_box_hi)
        self._allocate_scene_parameters(fb, cfg, slots, real)
        # Diagnostics.
        self.max_signal_speed = ti.field(real)      # max over particles of (wave speed + |v|), m/s
        self.bad_count = ti.field(ti.i32)           # particles with non-finite or out-of-grid state
        self.first_bad = ti.field(ti.i32)
        fb.dense(ti.i, 1).place(self.max_signal_speed, self.bad_count, self.first_bad)
        if grad:
            fb.lazy_grad()
        self._allocate_kept_copies(fb, cfg, cap, real)
        self._tree = fb.finalize()

    def _allocate_temporaries(self, fb, cfg, n, real):
        """F_trial and its decompositions (the SVD; fixed corotated's closest rotation), the APIC affine
        matrix, and a Neural material's F_new and τ: per particle, between kernels (see Configuration)."""
        dim, grad = cfg.dim, cfg.needs_grad
        if cfg.split_deform:
            self.F_trial = ti.Matrix.field(dim, dim, real, needs_grad=grad)
            _place(lambda: fb.dense(ti.i, n), self.F_trial)
            if cfg.uses_svd:
                self.svd_U = ti.Matrix.field(dim, dim, real, needs_grad=grad)
                self.svd_s = ti.Vector.field(dim, real, needs_grad=grad)
                self.svd_V = ti.Matrix.field(dim, dim, real, needs_grad=grad)
                _place(lambda: fb.dense(ti.i, n), self.svd_U, self.svd_s, self.svd_V)
            if cfg.uses_rotation:
                self.rotation = ti.Matrix.field(dim, dim, real, needs_grad=grad)
                _place(lambda: fb.dense(ti.i, n), self.rotation)
        if cfg.split_p2g:  # the APIC affine matrix of each particle (kg/s)
            self.affine = ti.Matrix.field(dim, dim, real, needs_grad=grad)
            _place(lambda: fb.dense(ti.i, n), self.affine)
        if cfg.has_neural:  # a Neural material's F_new and Kirchhoff stress (Pa), written by torch
            self.ext_F = ti.Matrix.field(dim, dim, real, needs_grad=grad)
            self.ext_tau = ti.Matrix.field(dim, dim, real, needs_grad=grad)
            _place(lambda: fb.dense(ti.i, n), self.ext_F, self.ext_tau)

    def _allocate_scene_parameters(self, fb, cfg, slots, real):
        """Scene-wide values, in fields so that changing them (another scene) does not recompile."""
        dim, grad = cfg.dim, cfg.needs_grad
        self.n_active = ti.field(ti.i32)             # particles of the loaded scene (<= capacity)
        # m/s². No adjoint: every grid node would add to the same gradient (contended atomics).
        self.gravity = ti.Vector.field(dim, real)
        self.dt = ti.field(real)                     # substep, s
        self.mass_floor = ti.field(real)             # grid nodes lighter than this (kg) are empty
        self.wall_friction = ti.field(real)          # Coulomb μ at the domain walls
        self.flip_damping = ti.field(real)           # 1/s, the FLIP blend's damping rate (Scene.flip_damping)
        fb.dense(ti.i, 1).place(self.gravity)
        fb.place(self.n_active, self.dt, self.mass_floor, self.wall_friction, self.flip_damping)
        # Colliders: origin (m) and velocity (m/s) for the substep that starts from each slot (so a
        # differentiable segment uploads its whole path at once), geometry and friction.
        nc = max(len(cfg.colliders), 1)
        self.collider_origin = ti.Vector.field(dim, real, needs_grad=grad)
        self.collider_velocity = ti.Vector.field(dim, real, needs_grad=grad)
        _place(lambda: fb.dense(ti.ij, (slots, nc)), self.collider_origin, self.collider_velocity)
        self.collider_params = ti.Vector.field(8, real)
        self.collider_friction = ti.field(real, needs_grad=grad)
        _place(lambda: fb.dense(ti.i, nc), self.collider_params, self.collider_friction)
        # The box [box_lo, box_hi) of grid nodes the current substep's P2G touched (set by the scatter).
        # Passes over the grid visit only this box: a falling jelly fills a few per cent of its grid.
        # Grid momentum and mass are zero outside it (each pass that moves the box clears the old one).
        self.box_lo = ti.Vector.field(dim, ti.i32)
        self.box_hi = ti.Vector.field(dim, ti.i32)
        fb.place(self.box_lo, self.box_hi)

    def _allocate_kept_copies(self, fb, cfg, cap, real):
        """Per-slot copies of each substep's temporaries and grid, for the reverse sweep
        (`KEEP_BUDGET`; simcore.mpm.adjoint saves and restores them)."""
        # The APIC affine matrix is read in place from its copy (by `transfer_adjoint_gather`), never
        # restored; the other temporaries are restored before the kernels that read them.
        particle = []
        if cfg.needs_grad and cfg.split_deform:
            particle += [self.F_trial]
            particle += [self.svd_U, self.svd_s, self.svd_V] if cfg.uses_svd else []
            particle += [self.rotation] if cfg.uses_rotation else []
            particle += [self.ext_F, self.ext_tau] if cfg.has_neural else []
        grid = [self.grid_momentum, self.grid_mass, self.grid_velocity]
        grid += [self.grid_momentum0, self.grid_velocity0] if cfg.flip else []
        nbytes = cap.slots * cfg.slot_bytes(cap.particles)
        self.keeps_temporaries = cfg.needs_grad and nbytes <= self.KEEP_BUDGET
        self._kept_particle, self._kept_grid = [], []
        if not self.keeps_temporaries:
            return
        self._kept_particle = [(f, _like(f, real)) for f in particle]
        self.kept_affine = _like(self.affine, real)
        self._kept_grid = [(f, _like(f, real)) for f in grid]
        self.kept_box_lo = ti.Vector.field(cfg.dim, ti.i32)
        self.kept_box_hi = ti.Vector.field(cfg.dim, ti.i32)
        kept = fb.dense(ti.i, cap.slots)
        kept.place(self.kept_box_lo, self.kept_box_hi)
        kept.dense(ti.j, cap.particles).place(self.kept_affine, *[k for _, k in self._kept_particle])
        kept.dense(ti.jk if cfg.dim == 2 else ti.jkl, (cfg.grid,) * cfg.dim).place(*[k for _, k in self._kept_grid])

    def destroy(self):
        """Free the fields' memory; the solver is unusable afterwards."""
        if self._tree is not None:
            self._tree.destroy()
            self._tree = None
