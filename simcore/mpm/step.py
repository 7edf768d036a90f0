"""The forward MLS-MPM substep (Hu et al. 2018) with APIC transfers and quadratic B-splines, for 2D
and 3D from one code path: the three stages, read top to bottom in `MPMSolver.substep`,

    p2g(s_in, s_out)       particles → grid: momentum, mass, and the stress impulse; writes F, Jp at s_out
    grid update            grid momentum → velocity, gravity, colliders, walls (run inside p2g's launch)
    g2p(s_in, s_out)       grid → particles: v, C (APIC affine velocity), x at s_out

With `Scene(transfer="flip")`, g2p blends FLIP into the APIC velocity (`_flip_velocity`; its adjoint is
simcore.mpm.adjoint's `_flip_gather` and `_flip_adjoint_y`).

P2G and the grid update run in one kernel launch (a launch, and each parallel loop in it, costs tens
of microseconds on a CPU: a 3D jelly's whole substep takes about a millisecond); P2G may be split in a
per-particle half (the stress) and the scatter (see `Configuration.p2g_mode`). A forward run with a
parallel scatter fuses each substep's g2p with the next substep's p2g (`g2p_p2g`,
`MPMSolver.fused_substeps`).

Every loop over particles runs over the loaded scene's `n_active[None]` particles, not the capacity.
Kernels never overwrite what they read, which is what Taichi's reverse-mode autodiff requires (`g2p_p2g`,
forward solvers only, writes F and Jp over the slot whose x it reads).
"""

import taichi as ti

from ..materials import FLUID, NEURAL, SNOW
from . import boundary, constitutive
from .config import BOUND

RUN_STRIDE = 1024  # iterations per run of the partitioned scatter's task loop (see there)


class ForwardKernels:
    """The forward kernels of MPMSolver (a mixin: fields from simcore.mpm.fields, static flags from
    the solver's Configuration)."""

    @ti.func
    def _stencil(self, xp):
        """Lower-left node, fractional position fx = x/dx − base (dim,) and the quadratic B-spline
        weights W (3, dim) of a particle at xp (m): W[i, d] is the weight of the node base + i along
        axis d.

        `base` is kept inside the grid so that a runaway particle cannot index out of bounds; such a
        particle is reported by `diagnose` at the end of the frame (never silently kept).

        W is a matrix so that a stencil loop can be unrolled (`ti.static` offsets, the forward's hot
        loops) or not (run-time offsets, the adjoints: see simcore.mpm.adjoint)."""
        Xp = xp * self.inv_dx
        base = ti.cast(ti.floor(Xp - 0.5), ti.i32)
        base = ti.max(ti.min(base, self.n_grid - 3), 0)
        fx = Xp - base
        W = ti.Matrix.rows([0.5 * (1.5 - fx) ** 2, 0.75 - (fx - 1) ** 2, 0.5 * (fx - 0.5) ** 2])
        return base, fx, W

    @ti.func
    def _weight(self, offset, W):
        """B-spline weight of the stencil node at `offset` (dim,) from `base`: the product over axes."""
        weight = 1.0
        for d in ti.static(range(self.dim)):
            weight *= W[offset[d], d]
        return weight

    @ti.func
    def _clear_box(self):
        """Zero grid momentum and mass in the box (zero outside it already)."""
        ti.loop_config(serialize=self.serial_grid)
        for I in ti.grouped(ti.ndrange(*[(self.box_lo[None][d], self.box_hi[None][d])
                                         for d in ti.static(range(self.dim))])):
            self.grid_momentum[I] = ti.zero(self.grid_momentum[I])
            self.grid_mass[I] = 0
            if ti.static(self.flip):
                self.grid_momentum0[I] = ti.zero(self.grid_momentum[I])

    @ti.func
    def _empty_grid(self):
        """Zero the grid and empty the box, for a scatter."""
        self._clear_box()
        self.box_lo[None] = ti.Vector([self.n_grid] * self.dim)
        self.box_hi[None] = ti.Vector([0] * self.dim)

    @ti.func
    def _kind(self, p):
        """Particle p's material kind code: a compile-time constant when the configuration has one
        material kind, so that the kernels (and their autodiff) carry no branch on it."""
        kind = 0
        if ti.static(len(self.kinds) == 1):
            kind = self.kinds[0]
        else:
            kind = self.kind[p]
        return kind

    @ti.func
    def _decompose(self, kind, F_trial):
        """The decomposition of F_trial that particle kind's material reads: its SVD U, s, V (snow,
        sand, plasticine, μ(I)) or its closest rotation R (fixed corotated); identities otherwise."""
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
        kind = self._kind(p)
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
                    self.kinds, kind, F_trial, U, sv, V, R, Jp, self.mu[p], self.lam[p], self.plastic[p],
                    self.dt[None])
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
        base, fx, W = self._stencil(self.x[s_in, p])
        for d in ti.static(range(self.dim)):  # plain min and max in a serial scatter (demoted atomics)
            ti.atomic_min(self.box_lo[None][d], base[d])
            ti.atomic_max(self.box_hi[None][d], base[d] + 3)
        m = self.mass[p]
        momentum = m * self.v[s_in, p]
        for offset in ti.static(ti.grouped(ti.ndrange(*((3,) * self.dim)))):
            weight = self._weight(offset, W)
            dpos = (offset - fx) * self.dx
            self.grid_momentum[base + offset] += weight * (momentum + affine @ dpos)
            self.grid_mass[base + offset] += weight * m
            if ti.static(self.flip):
                self.grid_momentum0[base + offset] += weight * (momentum + m * self.C[s_in, p] @ dpos)

    # The partitioned scatter (CPU, large scenes, several threads: `MPMSolver.parts`). Taichi's parallel
    # float atomics are compare-and-swap loops, several times slower than the plain adds of a serial
    # loop, so a CPU scatters serially; on several threads the particles are instead cut into `parts`
    # runs of consecutive indices, one task each, every run adding with plain adds into its own copy
    # of the grid (`part_momentum`, `part_mass`); the copies are then summed node by node, in a fixed
    # order, into the grid, and zeroed. The runs depend only on the particle count: the same parts give
    # the same sums to the bit however the tasks are scheduled. The adjoint of G2P scatters the same
    # way (simcore.mpm.adjoint), into `part_momentum`.
    @ti.func
    def _runs(self, parts: ti.template(), body: ti.template(), s_in, s_out):
        """body(part, p, s_in, s_out, lo, hi) -> (lo, hi) for every loaded particle p, in `parts` runs
        (see above) run in parallel, each in index order; lo, hi: the box of nodes the run touched,
        stored in part_box_lo / part_box_hi."""
        n = self.n_active[None]
        # One run per task: Taichi's CPU backend hands a range-for to its threads in blocks of 512 to
        # 1,024 iterations whatever ti.loop_config asks (cpu_block_dim_adaptive), so a loop over
        # `parts` iterations would run on one thread; each run is one iteration of a loop padded to
        # RUN_STRIDE iterations per run, the others empty.
        for q in range(parts * RUN_STRIDE):
            if q % RUN_STRIDE == 0:
                part = q // RUN_STRIDE
                lo = ti.Vector([self.n_grid] * self.dim)
                hi = ti.Vector([0] * self.dim)
                for p in range(n * part // parts, n * (part + 1) // parts):
                    lo, hi = body(part, p, s_in, s_out, lo, hi)
                self.part_box_lo[part] = lo
                self.part_box_hi[part] = hi

    @ti.func
    def _scatter_to_part(self, part, p, s_in, affine, lo, hi):
        """`_scatter` into grid copy `part`, growing the run's box (lo, hi)."""
        base, fx, W = self._stencil(self.x[s_in, p])
        m = self.mass[p]
        momentum = m * self.v[s_in, p]
        for offset in ti.static(ti.grouped(ti.ndrange(*((3,) * self.dim)))):
            weight = self._weight(offset, W)
            node = base + offset
            dpos = (offset - fx) * self.dx
            # `a = a + b`, not `a += b`: an add in a parallel loop would be an atomic one
            self.part_momentum[part, node] = self.part_momentum[part, node] + weight * (momentum + affine @ dpos)
            self.part_mass[part, node] = self.part_mass[part, node] + weight * m
            if ti.static(self.flip):
                self.part_momentum0[part, node] = self.part_momentum0[part, node] + weight * (
                    momentum + m * self.C[s_in, p] @ dpos)
        return ti.min(lo, base), ti.max(hi, base + 3)

    @ti.func
    def _p2g_run_body(self, part, p, s_in, s_out, lo, hi):
        affine = self._affine(p, s_in, s_out)
        if ti.static(self.needs_grad):
            self.affine[p] = affine
        return self._scatter_to_part(part, p, s_in, affine, lo, hi)

    @ti.func
    def _scatter_run_body(self, part, p, s_in, s_out, lo, hi):
        return self._scatter_to_part(part, p, s_in, self.affine[p], lo, hi)

    @ti.func
    def _partitioned_scatter(self, body: ti.template(), s_in, s_out, s_grid, parts: ti.template()):
        """Scatter every loaded particle in `parts` runs of body(part, p, s_in, s_out, lo, hi) (see
        above), then sum the copies into the grid within the union of the runs' boxes and update each
        node there with slot s_grid's inputs (`_grid_node_update`, in the same pass)."""
        self._runs(parts, body, s_in, s_out)
        lo = ti.Vector([self.n_grid] * self.dim)
        hi = ti.Vector([0] * self.dim)
        for part in ti.static(range(parts)):
            lo, hi = ti.min(lo, self.part_box_lo[part]), ti.max(hi, self.part_box_hi[part])
        # One pass over the old box and the new one together: it sums and updates the new box's nodes
        # and zeroes the rest of the old box's (the grid is zero outside the box), so that no pass
        # clears the grid first.
        old_lo, old_hi = self.box_lo[None], self.box_hi[None]
        self.box_lo[None], self.box_hi[None] = lo, hi
        ti.loop_config(serialize=self.serial_grid)
        for I in ti.grouped(ti.ndrange(*[(ti.min(lo[d], old_lo[d]), ti.max(hi[d], old_hi[d]))
                                         for d in ti.static(range(self.dim))])):
            momentum = ti.zero(self.grid_momentum[I])
            momentum0 = ti.zero(self.grid_momentum[I])
            mass = ti.zero(self.grid_mass[I])
            inside = all(I >= lo) and all(I < hi)
            if inside:
                for part in ti.static(range(parts)):
                    momentum += self.part_momentum[part, I]
                    mass += self.part_mass[part, I]
                    self.part_momentum[part, I] = ti.zero(momentum)
                    self.part_mass[part, I] = 0
                    if ti.static(self.flip):
                        momentum0 += self.part_momentum0[part, I]
                        self.part_momentum0[part, I] = ti.zero(momentum)
            self.grid_momentum[I] = momentum
            self.grid_mass[I] = mass
            if ti.static(self.flip):
                self.grid_momentum0[I] = momentum0
            if inside:
                self._grid_node_update(I, s_grid)

    @ti.kernel
    def p2g(self, s_in: ti.i32, s_out: ti.i32, serial: ti.template(), parts: ti.template()):
        """Clear the grid; scatter mass, APIC momentum and the stress impulse −dt V τ ∇w to it and
        update F; then the grid update (`grid_update`). `serial`: one serial loop (see
        `serial_scatter`); `parts` > 1: the partitioned scatter instead (see above). Gradient solvers
        also store `affine`, for the adjoint of the scatter; their reverse sweeps recompute with the
        two halves, `p2g_stress` (differentiated by autodiff) and `p2g_scatter`. (Stages share kernels
        to save launches: each costs tens of µs on a CPU.)"""
        if ti.static(parts > 1):
            self._partitioned_scatter(self._p2g_run_body, s_in, s_out, s_in, parts)  # and the grid update
        else:
            self._empty_grid()
            ti.loop_config(serialize=serial)
            for p in range(self.n_active[None]):
                affine = self._affine(p, s_in, s_out)
                if ti.static(self.needs_grad):
                    self.affine[p] = affine
                self._scatter(p, s_in, affine)
            self._grid_update(s_in, self.serial_grid)

    @ti.kernel
    def p2g_stress(self, s_in: ti.i32, s_out: ti.i32):
        """The per-particle half of P2G (stress, F and Jp updates) into `affine`: differentiated by
        Taichi's autodiff (no scatter in it, so its adjoint has no contended atomics)."""
        for p in range(self.n_active[None]):
            self.affine[p] = self._affine(p, s_in, s_out)

    @ti.kernel
    def p2g_scatter(self, s_in: ti.i32, serial: ti.template(), parts: ti.template()):
        """The scatter half of P2G, from `affine`, into a cleared grid, then the grid update (as `p2g`).
        The scatter's adjoint is in `transfer_adjoint_gather`."""
        if ti.static(parts > 1):
            self._partitioned_scatter(self._scatter_run_body, s_in, s_in, s_in, parts)  # and the grid update
        else:
            self._empty_grid()
            ti.loop_config(serialize=serial)
            for p in range(self.n_active[None]):
                self._scatter(p, s_in, self.affine[p])
            self._grid_update(s_in, self.serial_grid)

    @ti.kernel
    def grid_update(self, s: ti.i32, serial: ti.template()):
        """Momentum → velocity, add gravity, then project on colliders and walls (as of slot s). The
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
        if ti.static(self.flip):  # the velocity before the stress, gravity and boundaries: `_flip_velocity`
            v0 = ti.zero(v)
            if m > self.mass_floor[None]:
                v0 = self.grid_momentum0[I] / m
            self.grid_velocity0[I] = v0
        if m > self.mass_floor[None]:
            v = self.grid_momentum[I] / m + self.dt[None] * self.gravity[0]
            # Colliders first, the domain walls last: a collider holding a wall node (a floor Plane at
            # 0.1 m on a 32-cell grid holds node 3, the floor wall's face) sees the velocity pressing
            # into it and applies its own friction, which a wall projected first would have taken away
            # (it leaves no inward velocity); and the walls, applied last, keep every particle's
            # stencil inside the grid whatever a moving collider does.
            if ti.static(len(self.colliders) > 0):
                v = boundary.collider_velocity(I * self.dx, v, self.colliders, s, self.collider_origin,
                                               self.collider_velocity, self.collider_params,
                                               self.collider_friction)
            v = boundary.wall_velocity(I, v, self.n_grid, BOUND, self.wall_modes, self.wall_friction[None])
        self.grid_velocity[I] = v

    @ti.kernel
    def g2p(self, s_in: ti.i32, s_out: ti.i32, keep: ti.template()):
        """Gather velocity and the APIC affine matrix C from the grid; advect particles. With `keep`,
        also save the substep's temporaries (its grid within the box, and the per-particle
        temporaries) to slot s_in for the reverse sweep (`KEEP_BUDGET`), in the same passes.

        The sums v = Σ_i w_i g_i and C = k Σ_i w_i g_i ⊗ dpos_i run in the stencil's separable form
        (`_g2p_particle`, see below): six multiply-adds per node instead of about eighteen."""
        for p in range(self.n_active[None]):
            if ti.static(keep):
                self._save_particle(s_in, p)
            self._g2p_particle(p, s_in, s_out)
        if ti.static(keep):
            self._save_grid(s_in)

    @ti.kernel
    def g2p_p2g(self, s_in: ti.i32, s_out: ti.i32, serial: ti.template(), parts: ti.template()):
        """`g2p` of one substep (state s_in → s_out) and `p2g` of the next (from s_out, its F and Jp
        written to slot s_in, which a forward run's two slots no longer need), in one pass over the
        particles: each particle's new state is scattered while it is in cache, and a substep costs
        one launch and one parallel pass over the particles fewer. Forward solvers only
        (`MPMSolver.fused_substeps`): a gradient solver keeps every substep's slots."""
        if ti.static(parts > 1):
            self._partitioned_scatter(self._g2p_p2g_run_body, s_in, s_out, s_out, parts)  # and the grid update
        else:
            self._empty_grid()  # momentum and mass: the gather reads the grid velocity
            ti.loop_config(serialize=serial)
            for p in range(self.n_active[None]):
                self._g2p_particle(p, s_in, s_out)
                self._scatter(p, s_out, self._affine(p, s_out, s_in))
            self._grid_update(s_out, self.serial_grid)

    @ti.func
    def _g2p_p2g_run_body(self, part, p, s_in, s_out, lo, hi):
        self._g2p_particle(p, s_in, s_out)
        return self._scatter_to_part(part, p, s_out, self._affine(p, s_out, s_in), lo, hi)

    @ti.func
    def _g2p_particle(self, p, s_in, s_out):
        """g2p of particle p: v, C and x at slot s_out from its position at s_in and the grid velocity."""
        base, fx, W = self._stencil(self.x[s_in, p])
        Wd = self._weight_times_dpos(fx, W)
        new_v = ti.zero(self.v[s_in, p])
        v0 = ti.zero(new_v)  # Σ_i w_i g0_i, the FLIP blend's (`_flip_velocity`)
        wg_dpos = ti.zero(self.C[s_in, p])  # Σ_i w_i g_i ⊗ dpos_i, column by column
        for a in ti.static(range(3)):
            if ti.static(self.dim == 2):
                S, T = self._g2p_line(base + ti.Vector([a, 0]), W, Wd)
                new_v += W[a, 0] * S
                wg_dpos += ti.Matrix.cols([Wd[a, 0] * S, W[a, 0] * T])
                if ti.static(self.flip):
                    v0 += W[a, 0] * self._line_sum(self.grid_velocity0, base + ti.Vector([a, 0]), W)
            else:
                Sa, Ta, Ua, S0a = ti.zero(new_v), ti.zero(new_v), ti.zero(new_v), ti.zero(new_v)
                for b in ti.static(range(3)):
                    S, T = self._g2p_line(base + ti.Vector([a, b, 0]), W, Wd)
                    Sa += W[b, 1] * S
                    Ta += W[b, 1] * T
                    Ua += Wd[b, 1] * S
                    if ti.static(self.flip):
                        S0a += W[b, 1] * self._line_sum(self.grid_velocity0, base + ti.Vector([a, b, 0]), W)
                new_v += W[a, 0] * Sa
                if ti.static(self.flip):
                    v0 += W[a, 0] * S0a
                wg_dpos += ti.Matrix.cols([Wd[a, 0] * Sa, W[a, 0] * Ua, W[a, 0] * Ta])
        v_particle = new_v
        if ti.static(self.flip):
            v_particle = self._flip_velocity(p, s_in, v0, new_v)
        self.v[s_out, p] = v_particle
        self.C[s_out, p] = (4 * self.inv_dx * self.inv_dx) * wg_dpos
        self.x[s_out, p] = self.x[s_in, p] + self.dt[None] * new_v

    @ti.func
    def _flip_velocity(self, p, s_in, v0, v_apic):
        """The FLIP-blended velocity of particle p (m/s): its APIC velocity v_apic = Σ_i w_i g_i plus
        its own deviation from the grid's velocity before the substep's forces, damped:

            v' = v_apic + e^(−κ dt) (v_p − Σ_i w_i g0_i),   g0_i = Σ_p w_ip m_p (v_p + C_p dpos_i) / m_i

        (the APIC–FLIP blend of Fei et al. 2021, "AFLIP", with κ = `flip_damping` 1/s; positions move
        with v_apic, as there). APIC alone (κ → ∞) replaces v_p by the grid's interpolant every substep,
        which damps every velocity mode the grid cannot hold by a fixed factor per substep: a flow loses
        more energy the smaller dt is (a column collapse's run-out shrank by 0.2 L0 per halving of dt,
        docs/granular.md). A blend ratio fixed per substep keeps that dependence; e^(−κ dt) damps the
        deviation by e^(−κ t) over a time t whatever dt is. v0 = Σ_i w_i g0_i."""
        return v_apic + self._flip_ratio() * (self.v[s_in, p] - v0)

    @ti.func
    def _flip_ratio(self):
        """The FLIP blend's ratio for this substep, e^(−κ dt)."""
        return ti.exp(-self.flip_damping[None] * self.dt[None])

    # The separable form of a stencil sum. A node's weight is a product of per-axis factors,
    # w_i = Π_d W[o_d, d], and so are its weight times dpos along axis d (the factor W·dpos on axis d)
    # and its weight's gradient along d (∂W/∂x on axis d): a sum over the 3^dim nodes of grid values
    # times such products is contracted one axis at a time, innermost (last) axis first, so that most
    # of the multiplications are done once per line of 3 nodes or per plane of 9 rather than per node.
    @ti.func
    def _weight_times_dpos(self, fx, W):
        """Wd (3, dim): Wd[o, d] = W[o, d] (o − fx_d) dx, the per-axis factor of w_i dpos_i."""
        return ti.Matrix.rows([self._row(W, o) * (o - fx) * self.dx for o in ti.static(range(3))])

    @ti.func
    def _weight_derivatives(self, fx):
        """dW (3, dim): dW[o, d] = ∂W[o, d]/∂fx_d, the per-axis factor of a node weight's gradient (times
        1/dx for ∂/∂x): the derivatives of the quadratic B-spline pieces are fx − 1.5, −2(fx − 1), fx − 0.5."""
        return ti.Matrix.rows([fx - 1.5, -2.0 * (fx - 1.0), fx - 0.5])

    @ti.func
    def _g2p_line(self, node, W, Wd):
        """Σ_c W[c, L] g_c and Σ_c Wd[c, L] g_c over the stencil's line of 3 nodes along the last
        axis L from `node` (g: grid velocity)."""
        L = ti.static(self.dim - 1)
        S, T = ti.zero(self.grid_velocity[node]), ti.zero(self.grid_velocity[node])
        for c in ti.static(range(3)):
            g = self.grid_velocity[node + c * ti.Vector.unit(self.dim, L, ti.i32)]
            S += W[c, L] * g
            T += Wd[c, L] * g
        return S, T

    @ti.func
    def _line_sum(self, field: ti.template(), node, W):
        """Σ_c W[c, L] field[node + c e_L] over the stencil's line of 3 nodes along the last axis L."""
        L = ti.static(self.dim - 1)
        S = ti.zero(field[node])
        for c in ti.static(range(3)):
            S += W[c, L] * field[node + c * ti.Vector.unit(self.dim, L, ti.i32)]
        return S

    @ti.func
    def _row(self, M, i: ti.template()):
        return ti.Vector([M[i, j] for j in ti.static(range(self.dim))])

    @ti.func
    def _col(self, M, j: ti.template()):
        return ti.Vector([M[i, j] for i in ti.static(range(self.dim))])

    @ti.kernel
    def deform(self, s_in: ti.i32):
        """F_trial = (I + dt C) F and its decomposition (`_decompose`), per solid particle
        (differentiable path and Neural materials)."""
        for p in range(self.n_active[None]):
            self._deform(p, s_in)

    @ti.kernel
    def deform_and_stress(self, s_in: ti.i32, s_out: ti.i32):
        """`deform` then `p2g_stress`, in one pass over the particles (forward sweeps of gradient
        solvers without Neural materials, whose stress torch computes in between)."""
        for p in range(self.n_active[None]):
            self._deform(p, s_in)
            self.affine[p] = self._affine(p, s_in, s_out)

    @ti.func
    def _deform(self, p, s_in):
        kind = self._kind(p)
        if kind != FLUID:
            F_trial = (ti.Matrix.identity(float, self.dim) + self.dt[None] * self.C[s_in, p]) @ self.F[s_in, p]
            self.F_trial[p] = F_trial
            U, sv, V, R = self._decompose(kind, F_trial)
            if ti.static(self.uses_svd):
                self.svd_U[p], self.svd_s[p], self.svd_V[p] = U, sv, V
            if ti.static(self.uses_rotation):
                self.rotation[p] = R

