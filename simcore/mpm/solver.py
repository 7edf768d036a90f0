"""MLS-MPM (Hu et al. 2018) with APIC transfers and quadratic B-splines, for 2D and 3D from one code path.

One substep is three stages, read top to bottom in `substep`:

    p2g(s_in, s_out)       particles → grid: momentum, mass, and the stress impulse; writes F, Jp at s_out
    grid_update()          grid momentum → velocity, gravity, walls, colliders
    g2p(s_in, s_out)       grid → particles: v, C (APIC affine velocity), x at s_out

P2G and the grid update run in one kernel launch (a launch, and each parallel loop in it, costs tens
of microseconds on a CPU: a 3D jelly's whole substep takes about a millisecond); P2G may be split in a
per-particle half (the stress) and the scatter (see `p2g_mode`).

Particle state lives in `slots` copies (x[s, p], ...): forward simulation ping-pongs between slots 0 and 1
and keeps the frame's start in slot `slots - 1`; a differentiable rollout uses one slot per stored substep.
Kernels never overwrite what they read, which is what Taichi's reverse-mode autodiff requires.
"""


import numpy as np
import taichi as ti

from ..materials import FLUID, NEO_HOOKEAN, NEURAL, SNOW
from . import boundary, constitutive

BOUND = 3  # wall thickness in grid cells: nodes with index < BOUND or > n_grid - BOUND are wall nodes


@ti.data_oriented
class MPMSolver:
    """Fields and kernels of one scene.

    Args:
        dim: 2 or 3. n_grid: grid cells per axis over the unit domain [0, 1]^dim.
        n_particles: particle count. slots: particle state copies (>= 3 for forward runs).
        kinds: material kind codes present (compiled in statically).
        wall_modes: ((lo, hi) per axis) of boundary mode codes; wall_friction: Coulomb μ at walls.
        colliders: list of (kind, mode) code pairs.
        real: Taichi float type.
        n_actuators: number of actuator groups (ChainQueen-style active fibre stress).
        needs_grad: allocate adjoint fields for reverse-mode differentiation (simcore.diff).
        stress_hook: for scenes with a Neural material, an object with `stress(solver)` (fills
            ext_F, ext_tau from F_trial) and `adjoint(solver)` (adds to F_trial.grad from their
            adjoints); see simcore.neural. Called between `deform` and `p2g` (and their adjoints).
        serial_scatter: run P2G as one serial loop. On CPUs this is several times faster than a
            parallel loop: a serial scatter's atomic adds become plain adds (Taichi demotes them),
            while parallel float atomics are compare-and-swap loops (measured in docs/benchmarks.md).
        serial_adjoint: run the adjoints of p2g, grid_update and g2p (simcore.diff) as serial loops, for
            the same reason: reverse-mode autodiff turns every gather into an atomic scatter of adjoints.
            Either flag also runs the passes over the grid serially when the grid has at most
            `SERIAL_GRID_NODES` nodes (see there).
    """

    # A parallel loop on the CPU costs tens of microseconds before its first iteration (its thread-pool
    # round trip), more than a serial pass over a small grid's active box takes. Grids of at most
    # this many nodes run their passes (clearing, grid update, saving and restoring) serially on the
    # CPU: on 2 cores a whole 32³ grid update was faster serially than in parallel, and the active box
    # is usually much smaller. `python benchmarks/cpu_loops.py` measures both (docs/benchmarks.md).
    SERIAL_GRID_NODES = 32 ** 3

    def __init__(self, dim, n_grid, n_particles, slots, kinds, wall_modes, wall_friction, colliders, real,
                 serial_scatter=False, needs_grad=False, n_actuators=0, stress_hook=None, serial_adjoint=False):
        self.dim, self.n_grid, self.n_particles, self.slots = dim, n_grid, n_particles, slots
        self.dx = 1.0 / n_grid
        self.inv_dx = float(n_grid)
        self.kinds = tuple(sorted(set(kinds)))
        self.wall_modes = tuple(tuple(m) for m in wall_modes)
        self.wall_friction = float(wall_friction)
        self.colliders = tuple(tuple(c) for c in colliders)
        self.real = real
        self.n_actuators = int(n_actuators)
        self.serial_scatter = bool(serial_scatter)
        self.serial_adjoint = bool(serial_adjoint)
        self.serial_grid = (self.serial_scatter or self.serial_adjoint) and n_grid ** dim <= self.SERIAL_GRID_NODES
        self.has_solids = any(k != FLUID for k in self.kinds)
        self.has_neural = NEURAL in self.kinds
        self.stress_hook = stress_hook
        if self.has_neural and stress_hook is None:
            raise ValueError("a scene with a Neural material needs a stress_hook (simcore.neural)")
        # Jp is state only for snow (plastic J) and fluid (J); other materials never touch it.
        self.uses_Jp = SNOW in self.kinds or FLUID in self.kinds

        fb = ti.FieldsBuilder()
        # Particle state, one copy per slot.
        grad = needs_grad
        self.x = ti.Vector.field(dim, real, needs_grad=grad)         # position, m
        self.v = ti.Vector.field(dim, real, needs_grad=grad)         # velocity, m/s
        self.C = ti.Matrix.field(dim, dim, real, needs_grad=grad)    # APIC affine velocity (≈ ∇v), 1/s
        self.F = ti.Matrix.field(dim, dim, real, needs_grad=grad)    # deformation gradient (elastic part)
        self.Jp = ti.field(real, needs_grad=grad)                    # plastic volume ratio (snow), J (fluid)
        self._place(lambda: fb.dense(ti.ij, (slots, n_particles)), self.x, self.v, self.C, self.F, self.Jp)
        # Per-particle constants.
        self.mass = ti.field(real, needs_grad=needs_grad)                   # kg
        self.volume = ti.field(real, needs_grad=needs_grad)                 # rest volume, m^dim
        self.mu = ti.field(real, needs_grad=needs_grad)                     # Pa (fluid: viscosity Pa·s)
        self.lam = ti.field(real, needs_grad=needs_grad)                    # Pa (fluid: bulk modulus)
        self.plastic = ti.Vector.field(3, real, needs_grad=needs_grad)      # material constants, see simcore.materials
        self.wave_speed = ti.field(real)             # rest elastic wave speed, m/s
        self.kind = ti.field(ti.i32)
        self._place(lambda: fb.dense(ti.i, n_particles), self.mass, self.volume, self.mu, self.lam, self.plastic,
                    self.wave_speed, self.kind)
        # Actuators: group per particle (−1: passive), unit fibre direction, and the activation of each
        # group (Pa) for the substep that starts from each slot (activation[s, g]).
        if self.n_actuators > 0:
            self.actuator_group = ti.field(ti.i32)
            self.fibre = ti.Vector.field(dim, real)
            fb.dense(ti.i, n_particles).place(self.actuator_group, self.fibre)
            self.activation = ti.field(real, needs_grad=needs_grad)
            self._place(lambda: fb.dense(ti.ij, (slots, self.n_actuators)), self.activation)
        # The trial deformation gradient and its decompositions (the SVD; fixed corotated's closest
        # rotation), kept per particle on the differentiable path (Taichi cannot differentiate ti.svd or
        # an iteration, so `deform` has a hand-written adjoint) and whenever a Neural material's stress
        # is computed by torch between kernels.
        self.uses_svd = constitutive.uses_svd(self.kinds)
        self.uses_rotation = constitutive.uses_rotation(self.kinds)
        self.split_deform = (needs_grad and (self.uses_svd or self.uses_rotation)) or self.has_neural
        # Newton's iteration for the closest rotation stops at a step δ with |δ|² below this (its error
        # is then about |δ|²/2, below the precision's round-off).
        self.rotation_tol = 1e-16 if real == ti.f64 else 1e-7
        if self.split_deform:
            self.F_trial = ti.Matrix.field(dim, dim, real, needs_grad=needs_grad)
            self._place(lambda: fb.dense(ti.i, n_particles), self.F_trial)
            if self.uses_svd:
                self.svd_U = ti.Matrix.field(dim, dim, real, needs_grad=needs_grad)
                self.svd_s = ti.Vector.field(dim, real, needs_grad=needs_grad)
                self.svd_V = ti.Matrix.field(dim, dim, real, needs_grad=needs_grad)
                self._place(lambda: fb.dense(ti.i, n_particles), self.svd_U, self.svd_s, self.svd_V)
            if self.uses_rotation:
                self.rotation = ti.Matrix.field(dim, dim, real, needs_grad=needs_grad)
                self._place(lambda: fb.dense(ti.i, n_particles), self.rotation)
        # P2G in two halves (per-particle stress into `affine`, then the scatter): always in gradient
        # solvers (the scatter has a hand-written adjoint), and in serial-scatter forward solvers whose
        # materials need a decomposition, so that the costly per-particle half runs in parallel.
        self.split_p2g = needs_grad or (self.serial_scatter and (self.uses_svd or self.uses_rotation))
        if self.split_p2g:  # the APIC affine matrix of each particle (kg/s)
            self.affine = ti.Matrix.field(dim, dim, real, needs_grad=needs_grad)
            self._place(lambda: fb.dense(ti.i, n_particles), self.affine)
        # How `substep` runs P2G. The forward sweep of a gradient solver takes the same path as a
        # forward solver's where it can, so that a rollout costs what `run` costs: "fused" (`p2g`,
        # which also stores `affine` in gradient solvers), "split" (`p2g_stress`, `p2g_scatter`), or
        # "deform" (`deform_and_stress`, `p2g_scatter`: gradient solvers with decompositions).
        decomposes = self.uses_svd or self.uses_rotation
        if self.has_neural:
            self.p2g_mode = "split" if self.split_p2g else "fused"
        elif self.split_deform:
            self.p2g_mode = "deform"
        elif decomposes and self.serial_scatter:
            self.p2g_mode = "split"
        else:
            self.p2g_mode = "fused"
        if self.has_neural:  # a Neural material's F_new and Kirchhoff stress (Pa), written by torch
            self.ext_F = ti.Matrix.field(dim, dim, real, needs_grad=needs_grad)
            self.ext_tau = ti.Matrix.field(dim, dim, real, needs_grad=needs_grad)
            self._place(lambda: fb.dense(ti.i, n_particles), self.ext_F, self.ext_tau)
        # Grid.
        self.grid_momentum = ti.Vector.field(dim, real, needs_grad=needs_grad)   # kg·m/s, then reused by nothing else
        self.grid_mass = ti.field(real, needs_grad=needs_grad)                   # kg
        self.grid_velocity = ti.Vector.field(dim, real, needs_grad=needs_grad)   # m/s after forces and boundaries
        self._place(lambda: fb.dense(ti.ij if dim == 2 else ti.ijk, (n_grid,) * dim),
                    self.grid_momentum, self.grid_mass, self.grid_velocity)
        # Scene-wide parameters, fields so that changing them does not recompile.
        # m/s². No adjoint: every grid node would add to the same gradient (contended atomics).
        self.gravity = ti.Vector.field(dim, real)
        self.dt = ti.field(real)                     # substep, s
        # Grid nodes lighter than this (kg) are treated as empty; see `set_mass`.
        self.mass_floor = ti.field(real)
        fb.dense(ti.i, 1).place(self.gravity)
        fb.place(self.dt, self.mass_floor)
        # Colliders: origin (m) and velocity (m/s) for the substep that starts from each slot (so a
        # differentiable segment uploads its whole path at once), geometry and friction.
        nc = max(len(self.colliders), 1)
        self.collider_origin = ti.Vector.field(dim, real, needs_grad=needs_grad)
        self.collider_velocity = ti.Vector.field(dim, real, needs_grad=needs_grad)
        self._place(lambda: fb.dense(ti.ij, (slots, nc)), self.collider_origin, self.collider_velocity)
        self.collider_params = ti.Vector.field(8, real)
        self.collider_friction = ti.field(real, needs_grad=needs_grad)
        self._place(lambda: fb.dense(ti.i, nc), self.collider_params, self.collider_friction)
        # The box [box_lo, box_hi) of grid nodes the current substep's P2G touched (set by the scatter).
        # Passes over the grid visit only this box: a falling jelly fills a few per cent of its grid.
        # Grid momentum and mass are zero outside it (each pass that moves the box clears the old one).
        self.box_lo = ti.Vector.field(dim, ti.i32)
        self.box_hi = ti.Vector.field(dim, ti.i32)
        fb.place(self.box_lo, self.box_hi)
        # Diagnostics.
        self.max_signal_speed = ti.field(real)      # max over particles of (wave speed + |v|), m/s
        self.bad_count = ti.field(ti.i32)           # particles with non-finite or out-of-grid state
        self.first_bad = ti.field(ti.i32)
        fb.dense(ti.i, 1).place(self.max_signal_speed, self.bad_count, self.first_bad)
        if needs_grad:
            fb.lazy_grad()
        self.needs_grad = needs_grad
        self._keep_substep_temporaries(fb, slots, n_particles, real)
        self._tree = fb.finalize()
        self.box_lo[None] = [0] * dim  # the whole grid, until the first scatter
        self.box_hi[None] = [n_grid] * dim
        self._np_real = np.float64 if real == ti.f64 else np.float32
        self._host_inputs = {}  # numpy mirrors of the per-slot input fields
        self._constants = {}  # name -> the array `set_constants` last uploaded

    # A reverse sweep needs, for each substep, the grid and the per-particle temporaries (F_trial and
    # its decomposition, the APIC affine matrix, a Neural material's output) of its forward. Gradient
    # solvers keep a copy of them per slot when all slots (`slot_bytes`) fit in this many bytes (they
    # are a segment's k substeps, not the rollout's T); otherwise the reverse sweep recomputes them.
    KEEP_BUDGET = 1 << 30

    @staticmethod
    def slot_bytes(n_particles: int, dim: int, n_grid: int, itemsize: int) -> int:
        """Upper bound on the bytes per slot of a gradient solver: the particle state and its adjoint,
        the kept per-particle temporaries (at most 4 d² floats) and the kept grid ((2d + 1) per node)."""
        state = 2 * dim + 2 * dim * dim + 1
        return itemsize * (n_particles * (2 * state + 4 * dim * dim) + n_grid ** dim * (2 * dim + 1))

    def _keep_substep_temporaries(self, fb, slots, n_particles, real):
        particle = [self.affine] if self.needs_grad else []
        if self.needs_grad and self.split_deform:
            particle += [self.F_trial]
            particle += [self.svd_U, self.svd_s, self.svd_V] if self.uses_svd else []
            particle += [self.rotation] if self.uses_rotation else []
            particle += [self.ext_F, self.ext_tau] if self.has_neural else []
        grid = [self.grid_momentum, self.grid_mass, self.grid_velocity]
        nbytes = slots * self.slot_bytes(n_particles, self.dim, self.n_grid, 8 if real == ti.f64 else 4)
        self.keeps_temporaries = self.needs_grad and nbytes <= self.KEEP_BUDGET
        self._kept_particle, self._kept_grid = [], []
        if not self.keeps_temporaries:
            return
        self._kept_particle = [(f, self._like(f, real)) for f in particle]
        self._kept_grid = [(f, self._like(f, real)) for f in grid]
        self.kept_box_lo = ti.Vector.field(self.dim, ti.i32)
        self.kept_box_hi = ti.Vector.field(self.dim, ti.i32)
        kept = fb.dense(ti.i, slots)
        kept.place(self.kept_box_lo, self.kept_box_hi)
        kept.dense(ti.j, n_particles).place(*[k for _, k in self._kept_particle])
        kept.dense(ti.jk if self.dim == 2 else ti.jkl, (self.n_grid,) * self.dim).place(
            *[k for _, k in self._kept_grid])

    @staticmethod
    def _place(make_block, *fields):
        """Place fields side by side in a block from make_block(), and their adjoints (if any) in a
        second block of the same shape: adjoints interleaved with their primals (Taichi's lazy_grad
        layout) would double the stride of every forward pass over the primals."""
        make_block().place(*fields)
        adjoints = [f.grad for f in fields if getattr(f, "grad", None) is not None]
        if adjoints:
            make_block().place(*adjoints)

    @staticmethod
    def _like(field, real):
        """An unplaced field of field's element type (scalar, vector or matrix), without an adjoint."""
        if not hasattr(field, "n"):
            return ti.field(real)
        return ti.Vector.field(field.n, real) if field.ndim == 1 else ti.Matrix.field(field.n, field.m, real)

    @ti.func
    def _save_particle(self, t, p):
        """Copy particle p's per-substep temporaries to slot t (`g2p` with `keep`; `KEEP_BUDGET`)."""
        for field, kept in ti.static(self._kept_particle):
            kept[t, p] = field[p]

    @ti.func
    def _save_grid(self, t):
        """Copy the grid (its box) to slot t (`g2p` with `keep`)."""
        self.kept_box_lo[t], self.kept_box_hi[t] = self.box_lo[None], self.box_hi[None]
        ti.loop_config(serialize=self.serial_grid)
        for I in ti.grouped(ti.ndrange(*[(self.box_lo[None][d], self.box_hi[None][d])
                                         for d in ti.static(range(self.dim))])):
            for field, kept in ti.static(self._kept_grid):
                kept[t, I] = field[I]

    @ti.func
    def _load_particle(self, t, p):
        """Restore particle p's temporaries saved in slot t."""
        for field, kept in ti.static(self._kept_particle):
            field[p] = kept[t, p]

    @ti.kernel
    def load_temporaries(self, t: ti.i32):
        """Restore the per-particle temporaries saved in slot t by `g2p` (the grid's are restored
        by `g2p_adjoint_scatter`; `deform_adjoint` restores the next substep's particles itself)."""
        for p in range(self.n_particles):
            self._load_particle(t, p)

    @ti.func
    def _load_grid(self, t):
        """Restore the grid (and box) saved in slot t and zero the grid adjoints in that box."""
        self._clear_box()
        self.box_lo[None], self.box_hi[None] = self.kept_box_lo[t], self.kept_box_hi[t]
        ti.loop_config(serialize=self.serial_grid)
        for I in ti.grouped(ti.ndrange(*[(self.box_lo[None][d], self.box_hi[None][d])
                                         for d in ti.static(range(self.dim))])):
            for field, kept in ti.static(self._kept_grid):
                field[I] = kept[t, I]
            self._clear_grid_adjoints(I)

    def destroy(self):
        """Free the fields' memory; the solver is unusable afterwards."""
        if self._tree is not None:
            self._tree.destroy()
            self._tree = None

    # ------------------------------------------------------------------------------------------
    # The three stages of a substep
    # ------------------------------------------------------------------------------------------
    @ti.func
    def _stencil(self, xp):
        """Lower-left node and quadratic B-spline weights (3 per axis) of a particle at xp (m).

        `base` is kept inside the grid so that a runaway particle cannot index out of bounds; such a
        particle is reported by `diagnose` at the end of the frame (never silently kept)."""
        Xp = xp * self.inv_dx
        base = ti.cast(ti.floor(Xp - 0.5), ti.i32)
        base = ti.max(ti.min(base, self.n_grid - 3), 0)
        fx = Xp - base
        w = [0.5 * (1.5 - fx) ** 2, 0.75 - (fx - 1) ** 2, 0.5 * (fx - 0.5) ** 2]
        return base, fx, w

    @ti.func
    def _weight(self, offset: ti.template(), w):
        """B-spline weight of the stencil node at (static) `offset`: the product over axes."""
        weight = 1.0
        for d in ti.static(range(self.dim)):
            weight *= w[offset[d]][d]
        return weight

    @ti.func
    def _weight_gradient(self, offset: ti.template(), fx, w):
        """∂(weight)/∂x_p (1/m) of the stencil node at `offset`, for the hand-written adjoints.
        The derivatives of the three quadratic B-spline pieces in fx are fx − 1.5, −2(fx − 1), fx − 0.5."""
        dw = [fx - 1.5, -2.0 * (fx - 1.0), fx - 0.5]
        grad = ti.Vector.zero(float, self.dim)
        for d in ti.static(range(self.dim)):
            g = dw[offset[d]][d] * self.inv_dx
            for e in ti.static(range(self.dim)):
                if ti.static(e != d):
                    g *= w[offset[e]][e]
            grad[d] = g
        return grad

    @ti.func
    def _clear_box(self):
        """Zero grid momentum and mass in the box (zero outside it already)."""
        ti.loop_config(serialize=self.serial_grid)
        for I in ti.grouped(ti.ndrange(*[(self.box_lo[None][d], self.box_hi[None][d])
                                         for d in ti.static(range(self.dim))])):
            self.grid_momentum[I] = ti.zero(self.grid_momentum[I])
            self.grid_mass[I] = 0

    @ti.func
    def _empty_grid(self):
        """Zero the grid and empty the box, for a scatter."""
        self._clear_box()
        self.box_lo[None] = ti.Vector([self.n_grid] * self.dim)
        self.box_hi[None] = ti.Vector([0] * self.dim)

    @ti.func
    def _decompose(self, kind, F_trial):
        """The decomposition of F_trial that particle kind's material reads: its SVD U, s, V (snow,
        sand, plasticine) or its closest rotation R (fixed corotated); identities otherwise."""
        U = ti.Matrix.identity(float, self.dim)
        V = ti.Matrix.identity(float, self.dim)
        R = ti.Matrix.identity(float, self.dim)
        sv = ti.Vector.one(float, self.dim)
        if ti.static(self.uses_svd):
            if constitutive.kind_in(kind, constitutive.SVD_KINDS):
                U, sv, V = constitutive.svd(F_trial)
        if ti.static(self.uses_rotation):
            if constitutive.kind_in(kind, constitutive.ROTATION_KINDS):
                R = constitutive.closest_rotation(F_trial, self.rotation_tol)
        return U, sv, V, R

    @ti.func
    def _affine(self, p, s_in, s_out):
        """Stress update of particle p: writes its F and Jp at slot s_out and returns the APIC affine
        matrix A = −dt V (4/dx²) τ + m C (kg/s) that P2G scatters with the momentum."""
        C = self.C[s_in, p]
        kind = self.kind[p]
        tau = ti.Matrix.zero(float, self.dim, self.dim)
        if ti.static(FLUID in self.kinds):
            if kind == FLUID:  # a fluid's state is J (kept in Jp): J_new = det(I + dt C) J
                J = (ti.Matrix.identity(float, self.dim) + self.dt[None] * C).determinant() * self.Jp[s_in, p]
                self.Jp[s_out, p] = J
                tau = constitutive.fluid_stress(J, self.mu[p], self.lam[p], self.plastic[p], C)
        if ti.static(self.has_solids):
            if kind != FLUID:
                F_trial = ti.Matrix.zero(float, self.dim, self.dim)
                U = ti.Matrix.identity(float, self.dim)
                V = ti.Matrix.identity(float, self.dim)
                R = ti.Matrix.identity(float, self.dim)
                sv = ti.Vector.one(float, self.dim)
                if ti.static(self.split_deform):  # differentiable path: from `deform`
                    F_trial = self.F_trial[p]
                    if ti.static(self.uses_svd):
                        U, sv, V = self.svd_U[p], self.svd_s[p], self.svd_V[p]
                    if ti.static(self.uses_rotation):
                        R = self.rotation[p]
                else:
                    F_trial = (ti.Matrix.identity(float, self.dim) + self.dt[None] * C) @ self.F[s_in, p]
                    U, sv, V, R = self._decompose(kind, F_trial)
                Jp = 1.0
                if ti.static(SNOW in self.kinds):
                    Jp = self.Jp[s_in, p]
                F_new, Jp_new, tau_solid = constitutive.solid_update_and_stress(
                    self.kinds, kind, F_trial, U, sv, V, R, Jp, self.mu[p], self.lam[p], self.plastic[p])
                tau = tau_solid
                if ti.static(self.has_neural):
                    if kind == NEURAL:  # computed by torch from F_trial (simcore.neural)
                        F_new, tau = self.ext_F[p], self.ext_tau[p]
                if ti.static(self.n_actuators > 0):
                    group = self.actuator_group[p]
                    if group >= 0:
                        # ChainQueen active stress along the fibre: τ += a (F f)(F f)ᵀ, a in Pa.
                        fibre = F_new @ self.fibre[p]
                        tau += self.activation[s_in, group] * fibre.outer_product(fibre)
                self.F[s_out, p] = F_new
                if ti.static(SNOW in self.kinds):
                    self.Jp[s_out, p] = Jp_new
        # MLS-MPM: ∇w_ip = 4/dx² w_ip (x_i − x_p) for quadratic B-splines (Hu et al. 2018, eq. 16).
        return (-self.dt[None] * self.volume[p] * 4 * self.inv_dx * self.inv_dx) * tau + self.mass[p] * C

    @ti.func
    def _scatter(self, p, s_in, affine):
        """Scatter particle p's mass and APIC momentum m v + A (x_i − x_p) to its 3^d grid nodes."""
        base, fx, w = self._stencil(self.x[s_in, p])
        for d in ti.static(range(self.dim)):  # plain min and max in a serial scatter (demoted atomics)
            ti.atomic_min(self.box_lo[None][d], base[d])
            ti.atomic_max(self.box_hi[None][d], base[d] + 3)
        m = self.mass[p]
        momentum = m * self.v[s_in, p]
        for offset in ti.static(ti.grouped(ti.ndrange(*((3,) * self.dim)))):
            dpos = (offset - fx) * self.dx
            weight = self._weight(offset, w)
            self.grid_momentum[base + offset] += weight * (momentum + affine @ dpos)
            self.grid_mass[base + offset] += weight * m

    @ti.kernel
    def p2g(self, s_in: ti.i32, s_out: ti.i32, serial: ti.template()):
        """Clear the grid; scatter mass, APIC momentum and the stress impulse −dt V τ ∇w to it and
        update F; then the grid update (`grid_update`). `serial`: one serial loop (see
        `serial_scatter`). Gradient solvers also store `affine`, for the adjoint of the scatter; their
        reverse sweeps recompute with the two halves, `p2g_stress` (differentiated by autodiff) and
        `p2g_scatter`. (Stages share kernels to save launches: each costs tens of µs on a CPU.)"""
        self._empty_grid()
        ti.loop_config(serialize=serial)
        for p in range(self.n_particles):
            affine = self._affine(p, s_in, s_out)
            if ti.static(self.needs_grad):
                self.affine[p] = affine
            self._scatter(p, s_in, affine)
        self._grid_update(s_in, self.serial_grid)

    @ti.kernel
    def p2g_stress(self, s_in: ti.i32, s_out: ti.i32):
        """The per-particle half of P2G (stress, F and Jp updates) into `affine`: differentiated by
        Taichi's autodiff (no scatter in it, so its adjoint has no contended atomics)."""
        for p in range(self.n_particles):
            self.affine[p] = self._affine(p, s_in, s_out)

    @ti.kernel
    def p2g_scatter(self, s_in: ti.i32, serial: ti.template()):
        """The scatter half of P2G, from `affine`, into a cleared grid, then the grid update (as `p2g`).
        The scatter's adjoint is in `transfer_adjoint_gather`."""
        self._empty_grid()
        ti.loop_config(serialize=serial)
        for p in range(self.n_particles):
            self._scatter(p, s_in, self.affine[p])
        self._grid_update(s_in, self.serial_grid)

    @ti.kernel
    def grid_update(self, s: ti.i32, serial: ti.template()):
        """Momentum → velocity, add gravity, then project on walls and colliders (as of slot s). The
        forward runs it inside `p2g` / `p2g_scatter`; this kernel is for its adjoint (`.grad`). Its
        loop is written out rather than calling `_grid_update`: Taichi's autodiff refuses a kernel
        whose body is a function call around a loop ("mixed usage of for-loops and statements")."""
        ti.loop_config(serialize=serial)
        for I in ti.grouped(ti.ndrange(*[(self.box_lo[None][d], self.box_hi[None][d])
                                         for d in ti.static(range(self.dim))])):  # a range-for: serializable
            self._grid_node_update(I, s)

    @ti.func
    def _grid_update(self, s, serial: ti.template()):
        ti.loop_config(serialize=serial)
        for I in ti.grouped(ti.ndrange(*[(self.box_lo[None][d], self.box_hi[None][d])
                                         for d in ti.static(range(self.dim))])):
            self._grid_node_update(I, s)

    @ti.func
    def _grid_node_update(self, I, s):
        m = self.grid_mass[I]
        v = ti.zero(self.grid_velocity[I])
        if m > self.mass_floor[None]:
            v = self.grid_momentum[I] / m + self.dt[None] * self.gravity[0]
            v = boundary.wall_velocity(I, v, self.n_grid, BOUND, self.wall_modes, self.wall_friction)
            if ti.static(len(self.colliders) > 0):
                v = boundary.collider_velocity(I * self.dx, v, self.colliders, s, self.collider_origin,
                                               self.collider_velocity, self.collider_params,
                                               self.collider_friction)
        self.grid_velocity[I] = v

    @ti.kernel
    def g2p(self, s_in: ti.i32, s_out: ti.i32, keep: ti.template()):
        """Gather velocity and the APIC affine matrix C from the grid; advect particles. With `keep`,
        also save the substep's temporaries (its grid within the box, and the per-particle
        temporaries) to slot s_in for the reverse sweep (`KEEP_BUDGET`), in the same passes."""
        for p in range(self.n_particles):
            if ti.static(keep):
                self._save_particle(s_in, p)
            base, fx, w = self._stencil(self.x[s_in, p])
            new_v = ti.zero(self.v[s_in, p])
            new_C = ti.zero(self.C[s_in, p])
            for offset in ti.static(ti.grouped(ti.ndrange(*((3,) * self.dim)))):
                dpos = (offset - fx) * self.dx
                weight = self._weight(offset, w)
                g_v = self.grid_velocity[base + offset]
                new_v += weight * g_v
                new_C += (4 * self.inv_dx * self.inv_dx * weight) * g_v.outer_product(dpos)
            self.v[s_out, p] = new_v
            self.C[s_out, p] = new_C
            self.x[s_out, p] = self.x[s_in, p] + self.dt[None] * new_v
        if ti.static(keep):
            self._save_grid(s_in)

    # ------------------------------------------------------------------------------------------
    # Hand-written adjoints of the transfers (gradient solvers). Taichi's autodiff of a gather
    # scatters its adjoints with atomics; these loop over particles like the forward kernels, scatter
    # only where the forward gathered, and write per-particle adjoints with plain stores.
    # ------------------------------------------------------------------------------------------
    # The adjoints of g2p and p2g_scatter, for a substep whose grid velocity is known and whose
    # particle adjoints at s_out are complete. With k = 4/dx², dpos_i = x_i − x_p and w_i the weights,
    #   g2p:          v' = Σ w_i g_i,  C' = k Σ w_i g_i ⊗ dpos_i,  x' = x + dt v'
    #   p2g_scatter:  P_i += w_i (m v + A dpos_i),  M_i += w_i m
    # Their adjoints run as `g2p_adjoint_scatter` (ḡ_i += w_i u_i, u_i = v̄' + dt x̄' + k C̄' dpos_i),
    # then grid_update.grad (ḡ → P̄, M̄), then `transfer_adjoint_gather`, which gathers both adjoints'
    # per-particle terms in one parallel loop (dpos_i moves with x_p: ∂dpos_i/∂x_p = −I):
    #   x̄ += x̄' − k C̄'ᵀ v' + Σ_i (g_i · u_i) ∇w_i                                   (g2p)
    #      + Σ_i (P̄_i · (m v + A dpos_i) + M̄_i m) ∇w_i − Aᵀ Σ_i w_i P̄_i             (p2g_scatter)
    #   v̄ += m Σ_i w_i P̄_i,  m̄ += Σ_i w_i (M̄_i + P̄_i · v),  Ā += Σ_i w_i P̄_i ⊗ dpos_i
    @ti.func
    def _g2p_output_adjoints(self, p, s_out):
        """x̄', u's constant part v̄' + dt x̄', and C̄' of particle p (slot s_out)."""
        g_x = self.x.grad[s_out, p]
        return g_x, self.v.grad[s_out, p] + self.dt[None] * g_x, self.C.grad[s_out, p]

    @ti.kernel
    def g2p_adjoint_scatter(self, s_in: ti.i32, s_out: ti.i32, serial: ti.template(), load: ti.template()):
        """ḡ_i += w_i u_i into grid_velocity.grad (serial with `serial`: see `serial_adjoint`). With
        `load`, first restore the substep's grid from slot s_in (saved by `g2p`) and zero the
        grid adjoints; without, they must be zero already (`clear_grid_adjoints`)."""
        if ti.static(load):
            self._load_grid(s_in)
        ti.loop_config(serialize=serial)
        k = 4 * self.inv_dx * self.inv_dx
        for p in range(self.n_particles):
            base, fx, w = self._stencil(self.x[s_in, p])
            _, g_v, g_C = self._g2p_output_adjoints(p, s_out)
            for offset in ti.static(ti.grouped(ti.ndrange(*((3,) * self.dim)))):
                dpos = (offset - fx) * self.dx
                self.grid_velocity.grad[base + offset] += self._weight(offset, w) * (g_v + k * (g_C @ dpos))

    @ti.kernel
    def transfer_adjoint_gather(self, s_in: ti.i32, s_out: ti.i32):
        """The per-particle terms of the adjoints of g2p and p2g_scatter (see above): gathers only, a
        parallel loop without atomics."""
        k = 4 * self.inv_dx * self.inv_dx
        for p in range(self.n_particles):
            base, fx, w = self._stencil(self.x[s_in, p])
            g_x_out, g_v, g_C = self._g2p_output_adjoints(p, s_out)
            m = self.mass[p]
            v = self.v[s_in, p]
            A = self.affine[p]
            momentum = m * v
            g_momentum = ti.zero(v)
            g_m = 0.0
            g_A = ti.zero(A)
            g_x = ti.zero(v)
            for offset in ti.static(ti.grouped(ti.ndrange(*((3,) * self.dim)))):
                dpos = (offset - fx) * self.dx
                weight = self._weight(offset, w)
                GP = self.grid_momentum.grad[base + offset]
                GM = self.grid_mass.grad[base + offset]
                g_momentum += weight * GP
                g_m += weight * GM
                g_A += weight * GP.outer_product(dpos)
                u = g_v + k * (g_C @ dpos)
                g_x += (self.grid_velocity[base + offset].dot(u) + GP.dot(momentum + A @ dpos) + GM * m) \
                    * self._weight_gradient(offset, fx, w)
            g_x += g_x_out - k * (g_C.transpose() @ self.v[s_out, p]) - A.transpose() @ g_momentum
            # The first adjoints into slot s_in's state of this substep's reverse sweep: stores, not
            # additions (no pass zeroes them before), and C, F, Jp zeroed for p2g_stress.grad and
            # deform_adjoint to add to. Likewise `affine`'s adjoint, read by p2g_stress.grad.
            self.x.grad[s_in, p] = g_x
            self.v.grad[s_in, p] = m * g_momentum
            self.C.grad[s_in, p] = ti.zero(g_C)
            self.F.grad[s_in, p] = ti.zero(g_C)
            self.Jp.grad[s_in, p] = 0
            self.mass.grad[p] = self.mass.grad[p] + g_m + g_momentum.dot(v)
            self.affine.grad[p] = g_A

    @ti.kernel
    def clear_grid_adjoints(self):
        """Zero the grid adjoints (in the box) for the reverse sweep of a recomputed substep."""
        ti.loop_config(serialize=self.serial_grid)
        for I in ti.grouped(ti.ndrange(*[(self.box_lo[None][d], self.box_hi[None][d])
                                         for d in ti.static(range(self.dim))])):
            self._clear_grid_adjoints(I)

    @ti.func
    def _clear_grid_adjoints(self, I):
        self.grid_momentum.grad[I] = ti.zero(self.grid_momentum.grad[I])
        self.grid_mass.grad[I] = 0
        self.grid_velocity.grad[I] = ti.zero(self.grid_velocity.grad[I])

    # The adjoints of the per-particle temporaries (F_trial, its decomposition, a Neural material's
    # F_new and τ) are zero before each substep's reverse sweep: zeroed at the start of a segment's
    # sweep (`clear_temporary_adjoints`), then by `deform_adjoint` once it has read them. `affine`'s
    # adjoint and slot s's state adjoints are stored, not added, by `transfer_adjoint_gather`.
    @ti.kernel
    def clear_temporary_adjoints(self):
        """Zero the per-particle temporaries' adjoints (before a segment's reverse sweep)."""
        for p in range(self.n_particles):  # (affine's adjoint is stored, not added: no need)
            self._clear_temporary_adjoints(p)

    @ti.func
    def _clear_temporary_adjoints(self, p):
        if ti.static(self.split_deform):
            self.F_trial.grad[p] = ti.zero(self.F_trial.grad[p])
        if ti.static(self.split_deform and self.uses_svd):
            self.svd_U.grad[p] = ti.zero(self.svd_U.grad[p])
            self.svd_s.grad[p] = ti.zero(self.svd_s.grad[p])
            self.svd_V.grad[p] = ti.zero(self.svd_V.grad[p])
        if ti.static(self.split_deform and self.uses_rotation):
            self.rotation.grad[p] = ti.zero(self.rotation.grad[p])
        if ti.static(self.has_neural):
            self.ext_F.grad[p] = ti.zero(self.ext_F.grad[p])
            self.ext_tau.grad[p] = ti.zero(self.ext_tau.grad[p])

    @ti.kernel
    def deform(self, s_in: ti.i32):
        """F_trial = (I + dt C) F and its decomposition (`_decompose`), per solid particle
        (differentiable path and Neural materials)."""
        for p in range(self.n_particles):
            self._deform(p, s_in)

    @ti.kernel
    def deform_and_stress(self, s_in: ti.i32, s_out: ti.i32):
        """`deform` then `p2g_stress`, in one pass over the particles (forward sweeps of gradient
        solvers without Neural materials, whose stress torch computes in between)."""
        for p in range(self.n_particles):
            self._deform(p, s_in)
            self.affine[p] = self._affine(p, s_in, s_out)

    @ti.func
    def _deform(self, p, s_in):
        kind = self.kind[p]
        if kind != FLUID:
            F_trial = (ti.Matrix.identity(float, self.dim) + self.dt[None] * self.C[s_in, p]) @ self.F[s_in, p]
            self.F_trial[p] = F_trial
            U, sv, V, R = self._decompose(kind, F_trial)
            if ti.static(self.uses_svd):
                self.svd_U[p], self.svd_s[p], self.svd_V[p] = U, sv, V
            if ti.static(self.uses_rotation):
                self.rotation[p] = R

    @ti.kernel
    def deform_adjoint(self, s_in: ti.i32, eps: ti.f64, preload: ti.template()):
        """Hand-written adjoint of `deform`: the decomposition's adjoint, then F_trial = (I + dt C) F.
        Zeroes the temporaries' adjoints it read; with `preload`, then restores the per-particle
        temporaries of the substep before (slot s_in − 1), whose reverse sweep comes next."""
        for p in range(self.n_particles):
            kind = self.kind[p]
            if kind != FLUID:
                g = self.F_trial.grad[p]
                if ti.static(self.uses_svd):
                    if constitutive.kind_in(kind, constitutive.SVD_KINDS):
                        g += constitutive.svd_adjoint(self.svd_U[p], self.svd_s[p], self.svd_V[p], self.svd_U.grad[p],
                                                      self.svd_s.grad[p], self.svd_V.grad[p], eps)
                if ti.static(self.uses_rotation):
                    if constitutive.kind_in(kind, constitutive.ROTATION_KINDS):
                        g += constitutive.closest_rotation_adjoint(self.F_trial[p], self.rotation[p],
                                                                   self.rotation.grad[p], eps)
                A = ti.Matrix.identity(float, self.dim) + self.dt[None] * self.C[s_in, p]
                self.C.grad[s_in, p] += self.dt[None] * g @ self.F[s_in, p].transpose()
                self.F.grad[s_in, p] += A.transpose() @ g
            self._clear_temporary_adjoints(p)
            if ti.static(preload):
                self._load_particle(s_in - 1, p)

    # Relative grid-mass floor. A node at the edge of a body can receive a mass that is a product of
    # three tiny B-spline weights; v = p / m is fine there, but its adjoint −(∂L/∂v)·p / m² overflows
    # in f32 and turns every gradient into NaN. Nodes lighter than this fraction of the lightest
    # particle are dropped: their weight in any particle's gather is below the fraction too, so the
    # change is below round-off (1e-9 vs f32's 6e-8; 1e-15 vs f64's 1e-16 · stencil sums).
    MASS_FLOOR = {ti.f32: 1e-9, ti.f64: 1e-15}

    def set_mass(self, mass: np.ndarray) -> None:
        """Per-particle masses (n,) kg, and the grid-mass floor that goes with them."""
        dtype = np.float64 if self.real == ti.f64 else np.float32
        mass = np.ascontiguousarray(mass, dtype=dtype)
        positive = mass[mass > 0]
        self.mass.from_numpy(mass)
        self.mass_floor[None] = self.MASS_FLOOR[self.real] * (float(positive.min()) if positive.size else 0.0)

    def set_constants(self, **arrays) -> None:
        """Upload per-particle constants by field name (mass (n,) kg, mu and lam (n,) Pa, plastic
        (n, 3), collider_friction (nc,); None skips one), each only if it differs from the array last
        uploaded here: a differentiable rollout loads them twice per segment, and each upload is a
        kernel launch."""
        last = self._constants
        for name, value in arrays.items():
            if value is None:
                continue
            if name in last and last[name].shape == value.shape and np.array_equal(last[name], value):
                continue
            if name == "mass":
                self.set_mass(value)
            else:
                getattr(self, name).from_numpy(value)
            last[name] = np.array(value, copy=True)

    def set_dt(self, dt: float) -> None:
        """The substep (s). Writing a field from Python launches a kernel: skipped when unchanged."""
        if dt != getattr(self, "_dt_host", None):
            self.dt[None] = dt
            self._dt_host = dt

    def set_substep_inputs(self, first: int, origin=None, velocity=None, activation=None) -> None:
        """Collider origins (L, nc, dim) m, velocities (L, nc, dim) m/s and activations (L, groups) Pa
        for the substeps starting from slots first .. first + L − 1 (one upload per field)."""
        for field, value in ((self.collider_origin, origin), (self.collider_velocity, velocity),
                             (getattr(self, "activation", None), activation)):
            if value is None or field is None:
                continue
            shape = field.shape + ((field.n,) if hasattr(field, "n") else ())
            host = self._host_inputs.setdefault(id(field), np.zeros(shape, self._np_real))
            host[first:first + len(value)] = value
            field.from_numpy(host)

    def substep(self, s_in: int, s_out: int, keep: bool = False):
        """One MLS-MPM substep of length `self.dt[None]` (s) from slot s_in to slot s_out; with `keep`
        (gradient solvers that keep temporaries), save its temporaries to slot s_in."""
        if self.p2g_mode == "deform":
            self.deform_and_stress(s_in, s_out)
        else:
            if self.split_deform:  # Neural materials: torch's stress reads F_trial
                self.deform(s_in)
            if self.has_neural:
                self.stress_hook.stress(self)
            if self.p2g_mode == "split":
                self.p2g_stress(s_in, s_out)
        if self.p2g_mode == "fused":
            self.p2g(s_in, s_out, self.serial_scatter)
        else:
            self.p2g_scatter(s_in, self.serial_scatter)
        self.g2p(s_in, s_out, keep)

    # ------------------------------------------------------------------------------------------
    # Bookkeeping kernels
    # ------------------------------------------------------------------------------------------
    @ti.kernel
    def copy_state(self, src: ti.i32, dst: ti.i32):
        for p in range(self.n_particles):
            self.x[dst, p] = self.x[src, p]
            self.v[dst, p] = self.v[src, p]
            self.C[dst, p] = self.C[src, p]
            self.F[dst, p] = self.F[src, p]
            self.Jp[dst, p] = self.Jp[src, p]

    @ti.kernel
    def diagnose(self, s: ti.i32, lo: ti.f32, hi: ti.f32):
        """Max signal speed (wave speed + |v|) and particles whose state is non-finite or outside
        [lo, hi] (the region where the quadratic stencil stays on the grid)."""
        self.max_signal_speed[0] = 0
        self.bad_count[0] = 0
        self.first_bad[0] = self.n_particles
        for p in range(self.n_particles):
            x, v = self.x[s, p], self.v[s, p]
            total = x.sum() + v.sum() + self.F[s, p].sum() + self.C[s, p].sum() + self.Jp[s, p]
            finite = total == total and ti.abs(total) < 1e30
            inside = (x >= lo).all() and (x <= hi).all()
            if not (finite and inside):
                ti.atomic_add(self.bad_count[0], 1)
                ti.atomic_min(self.first_bad[0], p)
            else:
                Jp = 1.0
                if ti.static(self.uses_Jp):
                    Jp = self.Jp[s, p]
                factor = constitutive.wave_speed_factor(self.kinds, self.kind[p], Jp, self.plastic[p])
                ti.atomic_max(self.max_signal_speed[0], self.wave_speed[p] * factor + v.norm())

    @ti.kernel
    def total_grid_mass(self) -> ti.f64:
        total = ti.cast(0.0, ti.f64)
        for I in ti.grouped(self.grid_mass):
            total += self.grid_mass[I]
        return total

    # ------------------------------------------------------------------------------------------
    # Host transfers
    # ------------------------------------------------------------------------------------------
    @ti.kernel
    def _export_slot(self, s: ti.i32, x: ti.types.ndarray(), v: ti.types.ndarray(), C: ti.types.ndarray(),
                     F: ti.types.ndarray(), Jp: ti.types.ndarray()):
        for p in range(self.n_particles):
            for i in ti.static(range(self.dim)):
                x[p, i] = self.x[s, p][i]
                v[p, i] = self.v[s, p][i]
                for j in ti.static(range(self.dim)):
                    C[p, i, j] = self.C[s, p][i, j]
                    F[p, i, j] = self.F[s, p][i, j]
            Jp[p] = self.Jp[s, p]

    @ti.kernel
    def _import_slot(self, s: ti.i32, x: ti.types.ndarray(), v: ti.types.ndarray(), C: ti.types.ndarray(),
                     F: ti.types.ndarray(), Jp: ti.types.ndarray()):
        for p in range(self.n_particles):
            for i in ti.static(range(self.dim)):
                self.x[s, p][i] = x[p, i]
                self.v[s, p][i] = v[p, i]
                for j in ti.static(range(self.dim)):
                    self.C[s, p][i, j] = C[p, i, j]
                    self.F[s, p][i, j] = F[p, i, j]
            self.Jp[s, p] = Jp[p]

    @ti.kernel
    def export_state_grads(self, s: ti.i32, x: ti.types.ndarray(), v: ti.types.ndarray(),
                           C: ti.types.ndarray(), F: ti.types.ndarray(), Jp: ti.types.ndarray()):
        """Adjoints of slot s's state into arrays (n, dim), (n, dim), (n, dim, dim) ×2, (n,)."""
        for p in range(self.n_particles):
            for i in ti.static(range(self.dim)):
                x[p, i] = self.x.grad[s, p][i]
                v[p, i] = self.v.grad[s, p][i]
                for j in ti.static(range(self.dim)):
                    C[p, i, j] = self.C.grad[s, p][i, j]
                    F[p, i, j] = self.F.grad[s, p][i, j]
            Jp[p] = self.Jp.grad[s, p]

    @ti.kernel
    def add_state_grads(self, s: ti.i32, gx: ti.types.ndarray(), gv: ti.types.ndarray(), gC: ti.types.ndarray(),
                        gF: ti.types.ndarray(), gJp: ti.types.ndarray()):
        """Add a loss's gradient with respect to slot s's state: x.grad[s] += gx, ... (shapes as
        `export_state_grads`)."""
        for p in range(self.n_particles):
            for i in ti.static(range(self.dim)):
                self.x.grad[s, p][i] += gx[p, i]
                self.v.grad[s, p][i] += gv[p, i]
                for j in ti.static(range(self.dim)):
                    self.C.grad[s, p][i, j] += gC[p, i, j]
                    self.F.grad[s, p][i, j] += gF[p, i, j]
            self.Jp.grad[s, p] += gJp[p]

    @ti.kernel
    def zero_state_grads(self, s: ti.i32):
        """Zero the state adjoints of slot s (the reverse sweep zeroes the others as it reaches them)."""
        for p in range(self.n_particles):
            self._zero_state_grads(s, p)

    @ti.func
    def _zero_state_grads(self, s, p):
        self.x.grad[s, p] = ti.zero(self.x.grad[s, p])
        self.v.grad[s, p] = ti.zero(self.v.grad[s, p])
        self.C.grad[s, p] = ti.zero(self.C.grad[s, p])
        self.F.grad[s, p] = ti.zero(self.F.grad[s, p])
        self.Jp.grad[s, p] = 0

    def export_slot(self, s: int) -> dict:
        """State of slot s as numpy arrays {x, v, C, F, Jp} in the solver's precision (raw: a fluid's
        F is not expanded from J here; see `get`)."""
        out = self.empty_state()
        self._export_slot(s, out["x"], out["v"], out["C"], out["F"], out["Jp"])
        return out

    def empty_state(self) -> dict:
        """Uninitialised arrays {x, v, C, F, Jp} shaped for this solver's particles and precision."""
        n, d = self.n_particles, self.dim
        dtype = np.float64 if self.real == ti.f64 else np.float32
        return {"x": np.empty((n, d), dtype), "v": np.empty((n, d), dtype), "C": np.empty((n, d, d), dtype),
                "F": np.empty((n, d, d), dtype), "Jp": np.empty(n, dtype)}

    def import_slot(self, s: int, state: dict) -> None:
        """Write slot s from arrays {x, v, C, F, Jp} (as returned by `export_slot`)."""
        dtype = np.float64 if self.real == ti.f64 else np.float32
        arrays = [np.ascontiguousarray(state[k], dtype=dtype) for k in ("x", "v", "C", "F", "Jp")]
        self._import_slot(s, *arrays)

    def get(self, name: str, s: int) -> np.ndarray:
        """A state array of slot s: 'x', 'v', 'C', 'F' or 'Jp'. A fluid particle's F is J^(1/d) I and
        its Jp is J (the solver keeps only J for fluids); a solid's Jp is 1 unless it is snow."""
        out = self.export_slot(s)[name]
        if name in ("F", "Jp") and FLUID in self.kinds:
            fluid = self.kind.to_numpy() == FLUID
            if name == "F":
                J = self.Jp.to_numpy()[s][fluid]
                out[fluid] = np.cbrt(J)[:, None, None] * np.eye(self.dim) if self.dim == 3 else \
                    np.sqrt(J)[:, None, None] * np.eye(self.dim)
        if name == "Jp" and SNOW not in self.kinds:
            out = np.where(self.kind.to_numpy() == FLUID, out, 1.0)
        return out
