"""The adjoint of the MPM substep (gradient solvers): hand-written adjoints of the transfers, of
`deform` (the decompositions) and the kept per-substep temporaries they read.

The adjoints of the per-particle stress update (`p2g_stress`) and of the grid update are Taichi's
reverse-mode autodiff of the same kernels the forward simulation runs (simcore.mpm.step), so forward
and gradient never describe different constitutive physics. simcore.diff.rollout composes them.
"""

import taichi as ti

from ..materials import FLUID
from . import constitutive, stress_adjoint


class AdjointKernels:
    """The reverse kernels of MPMSolver (a mixin)."""

    # ------------------------------------------------------------------------------------------
    # Kept temporaries: each substep's grid and per-particle temporaries, per slot (`KEEP_BUDGET`)
    # ------------------------------------------------------------------------------------------
    @ti.func
    def _save_particle(self, t, p):
        """Copy particle p's per-substep temporaries to slot t (`g2p` with `keep`; `KEEP_BUDGET`)."""
        self.kept_affine[t, p] = self.affine[p]
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
        for p in range(self.n_active[None]):
            self._load_particle(t, p)

    @ti.func
    def _load_grid(self, t):
        """Restore the grid (and box) saved in slot t and zero the grid adjoints in that box."""
        self._clear_box()
        self.box_lo[None], self.box_hi[None] = self.kept_box_lo[t], self.kept_box_hi[t]
        ti.loop_config(serialize=self.serial_grid)
        for I in ti.grouped(ti.ndrange(*[(self.box_lo[None][d], self.box_hi[None][d])
                                         for d in ti.static(range(self.dim))])):
            self._restore_node(t, I)

    @ti.func
    def _restore_node(self, t, I):
        """Grid node I's values saved in slot t, and its adjoints zeroed."""
        for field, kept in ti.static(self._kept_grid):
            field[I] = kept[t, I]
        self._clear_grid_adjoints(I)


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
    # The FLIP transfer adds to g2p v' += α (v − Σ_i w_i g0_i) (α = e^(−κ dt)) and to the scatter
    # P0_i += w_i m (v + C dpos_i), g0_i = P0_i / M_i; its adjoint scatters ḡ0_i −= α w_i v̄' beside ḡ_i
    # (`_flip_adjoint_y`), grid_update.grad turns ḡ0 into P̄0 and M̄, and the gather adds the blend's
    # terms (`_flip_gather`), among them v̄ += α v̄'.
    @ti.func
    def _adj(self, s):
        """Where slot s's state adjoints live: slot s of x.grad, ..., or, with `ring_adjoints`, slot s % 2:
        a substep's reverse sweep reads its output slot's adjoints and writes its input slot's, and
        nothing reads them again, so two slots hold them all, and stay in cache."""
        slot = s
        if ti.static(self.ring_adjoints):
            slot = s % 2
        return slot

    @ti.func
    def _g2p_output_adjoints(self, p, s_out):
        """x̄', u's constant part v̄' + dt x̄', and C̄' of particle p (slot s_out)."""
        g_x = self.x.grad[self._adj(s_out), p]
        return g_x, self.v.grad[self._adj(s_out), p] + self.dt[None] * g_x, self.C.grad[self._adj(s_out), p]

    @ti.kernel
    def g2p_adjoint_scatter(self, s_in: ti.i32, s_out: ti.i32, serial: ti.template(), load: ti.template(),
                            parts: ti.template()):
        """ḡ_i += w_i u_i into grid_velocity.grad (serial with `serial`: see `serial_adjoint`; in
        `parts` > 1 runs, the partitioned scatter of simcore.mpm.step). With `load`, first restore the
        substep's grid from slot s_in (saved by `g2p`) and zero the grid adjoints; without, they must
        be zero already (`clear_grid_adjoints`)."""
        if ti.static(load):
            self._load_grid(s_in)
        if ti.static(parts > 1):
            self._runs(parts, self._g2p_adjoint_run_body, s_in, s_out)
            self._sum_parts_into_velocity_adjoint(parts)
        else:
            ti.loop_config(serialize=serial)
            for p in range(self.n_active[None]):
                base, fx, W = self._stencil(self.x[s_in, p])
                u0, K = self._g2p_adjoint_u(p, s_out, fx)
                y0 = self._flip_adjoint_y(p, s_out)
                for offset in ti.static(ti.grouped(ti.ndrange(*((3,) * self.dim)))):
                    weight = self._weight(offset, W)
                    self.grid_velocity.grad[base + offset] += weight * (u0 + K @ offset.cast(float))
                    if ti.static(self.flip):
                        self.grid_velocity0.grad[base + offset] += weight * y0

    @ti.func
    def _flip_adjoint_y(self, p, s_out):
        """With the FLIP blend, the factor of w_i in ḡ0_i (the adjoint of the grid velocity before
        forces, which `_flip_velocity` gathers with weight −e^(−κ dt)): −e^(−κ dt) v̄'. Zero without."""
        y0 = ti.Vector.zero(float, self.dim)  # (no load of v̄' on APIC's reverse sweep)
        if ti.static(self.flip):
            y0 = -self._flip_ratio() * self.v.grad[self._adj(s_out), p]
        return y0

    @ti.func
    def _sum_parts_into_velocity_adjoint(self, parts: ti.template()):
        """grid_velocity.grad += the sum of the partitioned scatter's grid copies, in the box; zero
        the copies."""
        ti.loop_config(serialize=self.serial_grid)
        for I in ti.grouped(ti.ndrange(*[(self.box_lo[None][d], self.box_hi[None][d])
                                         for d in ti.static(range(self.dim))])):
            self.grid_velocity.grad[I] += self._take_parts(I, parts, self.part_momentum)
            if ti.static(self.flip):
                self.grid_velocity0.grad[I] += self._take_parts(I, parts, self.part_momentum0)

    @ti.func
    def _take_parts(self, I, parts: ti.template(), copies: ti.template()):
        """The sum over the partitioned scatter's grid copies `copies` at node I, which are zeroed."""
        g = ti.zero(self.grid_velocity.grad[I])
        for part in ti.static(range(parts)):
            g += copies[part, I]
            copies[part, I] = ti.zero(g)
        return g

    @ti.func
    def _g2p_adjoint_u(self, p, s_out, fx):
        """u_i = v̄' + dt x̄' + k C̄' dpos_i of particle p as u0 + K o_i, affine in the node's offset o_i
        from `base` (dpos_i = (o_i − fx) dx): with the offsets static, K o_i is a few additions."""
        _, g_v, g_C = self._g2p_output_adjoints(p, s_out)
        K = (4 * self.inv_dx) * g_C  # k dx C̄'
        return g_v - K @ fx, K

    @ti.func
    def _g2p_adjoint_run_body(self, part, p, s_in, s_out, lo, hi):
        """The partitioned form of g2p_adjoint_scatter's loop body: into grid copy `part`
        (`part_momentum`, zero outside the scatters)."""
        base, fx, W = self._stencil(self.x[s_in, p])
        u0, K = self._g2p_adjoint_u(p, s_out, fx)
        y0 = self._flip_adjoint_y(p, s_out)
        for offset in ti.static(ti.grouped(ti.ndrange(*((3,) * self.dim)))):
            node = base + offset
            weight = self._weight(offset, W)
            self.part_momentum[part, node] = self.part_momentum[part, node] + weight * (u0 + K @ offset.cast(float))
            if ti.static(self.flip):
                self.part_momentum0[part, node] = self.part_momentum0[part, node] + weight * y0
        return lo, hi

    @ti.func
    def _affine_of(self, s_in, p):
        """The APIC affine matrix of particle p in the substep from slot s_in: read in place from the
        forward's copy when the solver keeps one, else the recomputed one."""
        if ti.static(self.keeps_temporaries):
            return self.kept_affine[s_in, p]
        else:
            return self.affine[p]

    @ti.kernel
    def transfer_adjoint_gather(self, s_in: ti.i32, s_out: ti.i32):
        """The per-particle terms of the adjoints of g2p and p2g_scatter (see above): gathers only, a
        parallel loop without atomics.

        Written in the stencil's separable form: a node's weight, its gradient and its weight times
        dpos are products of per-axis factors (W, dW/dx, W·dpos), so each sum over the 3^dim nodes is
        contracted one axis at a time, innermost axis first (`_adjoint_line`), and each node costs
        the reads of its grid values and about twenty flops, against about seventy-five for the
        node-by-node form (3D jelly, f32, `python benchmarks/diff_profile.py --grid 32 --side 0.3125
        --frames 10 --k 100`: 0.72 ms per substep against 2.0 ms, see docs/benchmarks.md)."""
        for p in range(self.n_active[None]):
            self._gather_particle(p, s_in, s_out)

    @ti.kernel
    def transfer_adjoint_gather_scatter(self, s_in: ti.i32, fuse: ti.i32, parts: ti.template()):
        """`transfer_adjoint_gather` of this substep (slots s_in → s_in + 1) for solvers whose reverse
        sweep fuses (`closed_stress_adjoint`, kept temporaries, partitioned scatter with `parts` > 1),
        with `fuse` = 1 fused with the next one's of the reverse sweep, `g2p_adjoint_scatter` of
        substep s_in − 1 → s_in (restoring the grid of slot s_in − 1): each particle's adjoints of
        slot s_in are complete once gathered (no decomposition), so it scatters them while they are in
        cache, and a substep's reverse sweep is two launches, this kernel and grid_update.grad. The
        scatter goes to the grid copies (`part_momentum`), which the gather does not read; the grid is
        restored after the particle loop. With `fuse` = 0, the gather alone: the substeps that cannot
        fuse run this kernel too, so that one gather compiles, not two (each is seconds of compile)."""
        self._runs(parts, self._gather_scatter_run_body, s_in, fuse)
        # Restore slot s_in − 1's grid and sum the scatter's copies into its velocity adjoint (as
        # `_load_grid` and `_sum_parts_into_velocity_adjoint`), over ranges that are empty without
        # `fuse`: loops under a run-time `if` would not run in parallel.
        lo, hi = self.box_lo[None], self.box_hi[None]
        if not fuse:
            hi = lo
        ti.loop_config(serialize=self.serial_grid)
        for I in ti.grouped(ti.ndrange(*[(lo[d], hi[d]) for d in ti.static(range(self.dim))])):
            self.grid_momentum[I] = ti.zero(self.grid_momentum[I])
            self.grid_mass[I] = 0
            if ti.static(self.flip):
                self.grid_momentum0[I] = ti.zero(self.grid_momentum[I])
        if fuse:
            self.box_lo[None], self.box_hi[None] = self.kept_box_lo[s_in - 1], self.kept_box_hi[s_in - 1]
        lo, hi = self.box_lo[None], self.box_hi[None]
        if not fuse:
            hi = lo
        ti.loop_config(serialize=self.serial_grid)
        for I in ti.grouped(ti.ndrange(*[(lo[d], hi[d]) for d in ti.static(range(self.dim))])):
            self._restore_node(s_in - 1, I)
            self.grid_velocity.grad[I] = self._take_parts(I, parts, self.part_momentum)
            if ti.static(self.flip):
                self.grid_velocity0.grad[I] = self._take_parts(I, parts, self.part_momentum0)

    @ti.func
    def _gather_scatter_run_body(self, part, p, s_in, fuse, lo, hi):
        self._gather_particle(p, s_in, s_in + 1)
        if fuse:
            lo, hi = self._g2p_adjoint_run_body(part, p, s_in - 1, s_in, lo, hi)
        return lo, hi

    @ti.func
    def _gather_particle(self, p, s_in, s_out):
        """`transfer_adjoint_gather`'s work for particle p."""
        k = 4 * self.inv_dx * self.inv_dx
        base, fx, W = self._stencil(self.x[s_in, p])
        dW = self._weight_derivatives(fx)
        Wd = self._weight_times_dpos(fx, W)
        g_x_out, g_v, g_C = self._g2p_output_adjoints(p, s_out)
        m = self.mass[p]
        v = self.v[s_in, p]
        A = self._affine_of(s_in, p)
        # s_i = g_i · y1_i + P̄_i · y2_i + M̄_i m, with y1_i = v̄' + dt x̄' + k C̄' dpos_i and y2_i = m v + A dpos_i
        # affine in the node's offset o: y(o) = y(0) + Σ_d o_d K[:, d].
        K1 = (k * self.dx) * g_C
        K2 = self.dx * A
        y1 = g_v - K1 @ fx
        y2 = m * v - K2 @ fx
        G = ti.zero(v)            # Σ_i s_i ∂w_i/∂fx
        g_momentum = ti.zero(v)   # Σ_i w_i P̄_i
        g_A = ti.zero(A)          # Σ_i w_i P̄_i ⊗ dpos_i
        g_m = 0.0                 # Σ_i w_i M̄_i
        for a in ti.static(range(3)):
            y1a, y2a = y1 + a * self._col(K1, 0), y2 + a * self._col(K2, 0)
            if ti.static(self.dim == 2):
                Q, R, SP, TP, SM = self._adjoint_line(base + ti.Vector([a, 0]), y1a, y2a, K1, K2, W, dW, Wd, m)
                G += ti.Vector([dW[a, 0] * Q, W[a, 0] * R])
                g_momentum += W[a, 0] * SP
                g_A += ti.Matrix.cols([Wd[a, 0] * SP, W[a, 0] * TP])
                g_m += W[a, 0] * SM
            else:
                Qa, Q1a, Ra, SMa = 0.0, 0.0, 0.0, 0.0
                SPa, TPa, UPa = ti.zero(v), ti.zero(v), ti.zero(v)
                for b in ti.static(range(3)):
                    Q, R, SP, TP, SM = self._adjoint_line(base + ti.Vector([a, b, 0]), y1a + b * self._col(K1, 1),
                                                          y2a + b * self._col(K2, 1), K1, K2, W, dW, Wd, m)
                    Qa += W[b, 1] * Q
                    Q1a += dW[b, 1] * Q
                    Ra += W[b, 1] * R
                    SPa += W[b, 1] * SP
                    TPa += W[b, 1] * TP
                    UPa += Wd[b, 1] * SP
                    SMa += W[b, 1] * SM
                G += ti.Vector([dW[a, 0] * Qa, W[a, 0] * Q1a, W[a, 0] * Ra])
                g_momentum += W[a, 0] * SPa
                g_A += ti.Matrix.cols([Wd[a, 0] * SPa, W[a, 0] * UPa, W[a, 0] * TPa])
                g_m += W[a, 0] * SMa
        g_x = self.inv_dx * G + g_x_out - k * (g_C.transpose() @ self.v[s_out, p]) - A.transpose() @ g_momentum
        g_v_in = m * g_momentum
        g_C_flip = ti.zero(A)
        if ti.static(self.flip):  # the blend's own terms: `_flip_gather`
            y0 = self._flip_adjoint_y(p, s_out)
            G0, SP0, g_A0, v0 = self._flip_gather(p, s_in, base, fx, W, dW, y0)
            C = self.C[s_in, p]
            # The term −k C̄'ᵀ v' above takes v' = Σ_i w_i g_i, which the blend's stored v' is not.
            v_blend = self._flip_ratio() * (v - v0)
            g_x += self.inv_dx * G0 - m * (C.transpose() @ SP0) + k * (g_C.transpose() @ v_blend)
            g_v_in += m * SP0 - y0
            g_C_flip = m * g_A0
            g_m += SP0.dot(v) + (g_A0 * C).sum()
        # The first adjoints into slot s_in's state of this substep's reverse sweep: stores, not
        # additions (no pass zeroes them before). C, F, Jp: the closed-form stress adjoint's, else
        # zeroed for p2g_stress.grad and deform_adjoint to add to, with `affine`'s adjoint stored for
        # p2g_stress.grad to read.
        self.x.grad[self._adj(s_in), p] = g_x
        self.v.grad[self._adj(s_in), p] = g_v_in
        g_m += g_momentum.dot(v)
        if ti.static(self.closed_stress_adjoint):  # the stress update's adjoint, here
            g_C_in, g_F_in, g_Jp_in, g_m_stress = self._stress_adjoint(p, s_in, s_out, g_A)
            self.C.grad[self._adj(s_in), p] = g_C_in + g_C_flip
            self.F.grad[self._adj(s_in), p] = g_F_in
            self.Jp.grad[self._adj(s_in), p] = g_Jp_in
            g_m += g_m_stress
        else:  # p2g_stress.grad's
            self.C.grad[self._adj(s_in), p] = g_C_flip
            self.F.grad[self._adj(s_in), p] = ti.zero(g_C)
            self.Jp.grad[self._adj(s_in), p] = 0
            self.affine.grad[p] = g_A
        self.mass.grad[p] = self.mass.grad[p] + g_m

    @ti.func
    def _flip_gather(self, p, s_in, base, fx, W, dW, y0):
        """The FLIP blend's terms in particle p's adjoints (node by node: the blend is optional).
        Forward: v' = ... + e^(−κ dt) (v − Σ_i w_i g0_i) (`_flip_velocity`), and the grid velocity before
        forces g0_i = P0_i / M_i from the scatter P0_i += w_i m (v + C dpos_i) (`_scatter`). With
        y0 = −e^(−κ dt) v̄' and P̄0_i (grid_update.grad's), returns Σ_i s_i ∂w_i/∂fx with
        s_i = g0_i · y0 + P̄0_i · m (v + C dpos_i), Σ_i w_i P̄0_i, Σ_i w_i P̄0_i ⊗ dpos_i, and Σ_i w_i g0_i."""
        m, v, C = self.mass[p], self.v[s_in, p], self.C[s_in, p]
        G, SP0, g_A0, v0 = ti.zero(v), ti.zero(v), ti.zero(C), ti.zero(v)
        for offset in ti.static(ti.grouped(ti.ndrange(*((3,) * self.dim)))):
            node = base + offset
            weight = self._weight(offset, W)
            dpos = (offset - fx) * self.dx
            P0_bar = self.grid_momentum0.grad[node]
            s = self.grid_velocity0[node].dot(y0) + m * P0_bar.dot(v + C @ dpos)
            G += s * self._weight_gradient(offset, W, dW)
            SP0 += weight * P0_bar
            g_A0 += weight * P0_bar.outer_product(dpos)
            v0 += weight * self.grid_velocity0[node]
        return G, SP0, g_A0, v0

    @ti.func
    def _weight_gradient(self, offset, W, dW):
        """∂w/∂fx (dim,) of the stencil node at `offset`: the weight's product with axis d's factor
        replaced by its derivative, per axis d."""
        g = ti.Vector.zero(float, self.dim)
        for d in ti.static(range(self.dim)):
            factor = 1.0
            for e in ti.static(range(self.dim)):
                if ti.static(e == d):
                    factor *= dW[offset[e], e]
                else:
                    factor *= W[offset[e], e]
            g[d] = factor
        return g

    @ti.func
    def _stress_adjoint(self, p, s_in, s_out, g_A):
        """The adjoint of particle p's stress update (`_affine` in simcore.mpm.step) for neo-Hookean
        and fluid particles (simcore.mpm.stress_adjoint), given Ā = ∂L/∂A and the adjoints of its
        outputs F (neo-Hookean) or J (fluid, kept in Jp) in slot s_out. Adds to the particle's volume,
        μ, λ and γ adjoints; returns ∂L/∂C, ∂L/∂F, ∂L/∂Jp of slot s_in and ∂L/∂m."""
        dt = self.dt[None]
        C = self.C[s_in, p]
        M = ti.Matrix.identity(float, self.dim) + dt * C  # F_trial = M F; J_new = det(M) J
        m, mu, lam = self.mass[p], self.mu[p], self.lam[p]
        c_V = -dt * 4 * self.inv_dx * self.inv_dx  # A = c_V V τ + m C
        g_tau = (c_V * self.volume[p]) * g_A
        g_C = m * g_A
        g_F = ti.zero(C)
        g_Jp = 0.0
        tau = ti.zero(C)
        g_mu, g_lam, g_gamma = 0.0, 0.0, 0.0
        if self._kind(p) == FLUID:
            det_M = M.determinant()
            J_in = self.Jp[s_in, p]
            tau, g_J, g_C_tau, g_mu, g_lam, g_gamma = stress_adjoint.fluid(
                det_M * J_in, mu, lam, self.plastic[p], C, g_tau)
            g_J += self.Jp.grad[self._adj(s_out), p]
            g_Jp = det_M * g_J
            g_C += g_C_tau + (dt * g_J * J_in) * constitutive.cofactor(M)
        else:
            F_in = self.F[s_in, p]
            F_trial = M @ F_in
            tau, g_F_trial, g_mu, g_lam = stress_adjoint.neo_hookean(F_trial, mu, lam, g_tau)
            g_F_trial += self.F.grad[self._adj(s_out), p]
            g_C += dt * g_F_trial @ F_in.transpose()
            g_F = M.transpose() @ g_F_trial
        self.volume.grad[p] = self.volume.grad[p] + c_V * (g_A * tau).sum()
        self.mu.grad[p] = self.mu.grad[p] + g_mu
        self.lam.grad[p] = self.lam.grad[p] + g_lam
        if ti.static(FLUID in self.kinds):
            self.plastic.grad[p][0] = self.plastic.grad[p][0] + g_gamma
        return g_C, g_F, g_Jp, (g_A * C).sum()

    @ti.func
    def _adjoint_line(self, node, y1, y2, K1, K2, W, dW, Wd, m):
        """`transfer_adjoint_gather`'s sums over the stencil's line of 3 nodes along the last axis L
        from `node`, where y1, y2 are their values at that node: Σ_c W[c, L] s_c, Σ_c dW[c, L] s_c,
        Σ_c W[c, L] P̄_c, Σ_c Wd[c, L] P̄_c, Σ_c W[c, L] M̄_c."""
        L = ti.static(self.dim - 1)
        Q, R, SM = 0.0, 0.0, 0.0
        SP, TP = ti.zero(y1), ti.zero(y1)
        step = ti.Vector.unit(self.dim, L, ti.i32)
        for c in ti.static(range(3)):
            I = node + c * step
            P = self.grid_momentum.grad[I]
            M = self.grid_mass.grad[I]
            s = self.grid_velocity[I].dot(y1 + c * self._col(K1, L)) + P.dot(y2 + c * self._col(K2, L)) + M * m
            Q += W[c, L] * s
            R += dW[c, L] * s
            SP += W[c, L] * P
            TP += Wd[c, L] * P
            SM += W[c, L] * M
        return Q, R, SP, TP, SM

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
        if ti.static(self.flip):
            self.grid_momentum0.grad[I] = ti.zero(self.grid_momentum.grad[I])
            self.grid_velocity0.grad[I] = ti.zero(self.grid_velocity.grad[I])

    # The adjoints of the per-particle temporaries (F_trial, its decomposition, a Neural material's
    # F_new and τ) are zero before each substep's reverse sweep: zeroed at the start of a segment's
    # sweep (`clear_temporary_adjoints`), then by `deform_adjoint` once it has read them. `affine`'s
    # adjoint and slot s's state adjoints are stored, not added, by `transfer_adjoint_gather`.
    @ti.kernel
    def clear_temporary_adjoints(self):
        """Zero the per-particle temporaries' adjoints (before a segment's reverse sweep)."""
        for p in range(self.n_active[None]):  # (affine's adjoint is stored, not added: no need)
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
    def deform_adjoint(self, s_in: ti.i32, eps: ti.f64, preload: ti.template()):
        """Hand-written adjoint of `deform`: the decomposition's adjoint, then F_trial = (I + dt C) F.
        Zeroes the temporaries' adjoints it read; with `preload`, then restores the per-particle
        temporaries of the substep before (slot s_in − 1), whose reverse sweep comes next."""
        for p in range(self.n_active[None]):
            kind = self._kind(p)
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
                self.C.grad[self._adj(s_in), p] += self.dt[None] * g @ self.F[s_in, p].transpose()
                self.F.grad[self._adj(s_in), p] += A.transpose() @ g
            self._clear_temporary_adjoints(p)
            if ti.static(preload):
                self._load_particle(s_in - 1, p)

    # ------------------------------------------------------------------------------------------
    # State adjoints in and out
    # ------------------------------------------------------------------------------------------
    @ti.kernel
    def export_state_grads(self, s: ti.i32, x: ti.types.ndarray(), v: ti.types.ndarray(),
                           C: ti.types.ndarray(), F: ti.types.ndarray(), Jp: ti.types.ndarray()):
        """Adjoints of slot s's state into arrays (n, dim), (n, dim), (n, dim, dim) ×2, (n,)."""
        for p in range(self.n_active[None]):
            for i in ti.static(range(self.dim)):
                x[p, i] = self.x.grad[self._adj(s), p][i]
                v[p, i] = self.v.grad[self._adj(s), p][i]
                for j in ti.static(range(self.dim)):
                    C[p, i, j] = self.C.grad[self._adj(s), p][i, j]
                    F[p, i, j] = self.F.grad[self._adj(s), p][i, j]
            Jp[p] = self.Jp.grad[self._adj(s), p]

    @ti.kernel
    def add_state_grads(self, s: ti.i32, gx: ti.types.ndarray(), gv: ti.types.ndarray(), gC: ti.types.ndarray(),
                        gF: ti.types.ndarray(), gJp: ti.types.ndarray()):
        """Add a loss's gradient with respect to slot s's state: x.grad[s] += gx, ... (shapes as
        `export_state_grads`)."""
        for p in range(self.n_active[None]):
            for i in ti.static(range(self.dim)):
                self.x.grad[self._adj(s), p][i] += gx[p, i]
                self.v.grad[self._adj(s), p][i] += gv[p, i]
                for j in ti.static(range(self.dim)):
                    self.C.grad[self._adj(s), p][i, j] += gC[p, i, j]
                    self.F.grad[self._adj(s), p][i, j] += gF[p, i, j]
            self.Jp.grad[self._adj(s), p] += gJp[p]

    @ti.kernel
    def zero_state_grads(self, s: ti.i32):
        """Zero the state adjoints of slot s (the reverse sweep zeroes the others as it reaches them)."""
        for p in range(self.n_active[None]):
            self._zero_state_grads(s, p)

    @ti.func
    def _zero_state_grads(self, s, p):
        self.x.grad[self._adj(s), p] = ti.zero(self.x.grad[self._adj(s), p])
        self.v.grad[self._adj(s), p] = ti.zero(self.v.grad[self._adj(s), p])
        self.C.grad[self._adj(s), p] = ti.zero(self.C.grad[self._adj(s), p])
        self.F.grad[self._adj(s), p] = ti.zero(self.F.grad[self._adj(s), p])
        self.Jp.grad[self._adj(s), p] = 0

