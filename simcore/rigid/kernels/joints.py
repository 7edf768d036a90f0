"""Joints in the step kernel: the seven joint outputs with their Jacobian (joint_outputs.py), and the joint
terms of the step equations (joint_equations.py): equality rows c(q_{k+1}) = 0 with impulses λ along the
start-of-step rate maps, springs, dampers and actuation along each coordinate, and limits as (γ, s)
complementarity pairs like contact gaps.

Tables (built by runner.py): jt_i[j] = (parent row, child row; `bodies` is the world), jt_f[j] = (anchor
in the parent frame (3), anchor in the child frame (3), rest rotation q₀ (4), revolute axis (3) or 0).
Rows rw_i / rw_f, in three runs: m equality rows (joint; selector of the 7 outputs), n1 coordinate rows
(joint; selector, stiffness, damping, rest), L limit rows (coordinate row; sign +1 lower / −1 upper,
bound).

Workspaces per world: jd[b, r, :12] the start-of-step rate map of equality and coordinate rows r < m + n1
(D_k, 1/s per unit velocity: impulse directions), je[b, r, :12] their Jacobian at the current iterate
(∂c/∂z, E), jc[b, k, :] per coordinate (value at the start, explicit impulse, value and rate now), lw[b, l,
:] per limit (active, start gap, start rate).
"""

# No `from __future__ import annotations`: Taichi reads the functions' annotations (ti.template()).
from ...backend import ti
from .common import F, atan2, identity3, outer, quat_matrix, quat_multiply, skew, vec3, vec4

mat4 = ti.types.matrix(4, 4, F)
mat43 = ti.types.matrix(4, 3, F)
mat34 = ti.types.matrix(3, 4, F)

# Columns of jc[b, k, :]: start coordinate, explicit impulse, coordinate now, generalized impulse now;
# of lw[b, l, :]: active, start gap, start rate.
JC_WIDTH = 4
LW_WIDTH = 3
JO_WIDTH = 7 + 84  # outputs and their Jacobian (7 × 12) per joint (workspace jo[b, j, :])
RW_WIDTH = 10  # selector (7), stiffness, damping, rest (coordinate rows); sign, bound (limit rows)


@ti.func
def q_left(a):
    """Lq(a): a ⊗ b = Lq(a) b."""
    return mat4([[a[0], -a[1], -a[2], -a[3]], [a[1], a[0], -a[3], a[2]], [a[2], a[3], a[0], -a[1]],
                 [a[3], -a[2], a[1], a[0]]])


@ti.func
def q_right(b):
    """Rq(b): a ⊗ b = Rq(b) a."""
    return mat4([[b[0], -b[1], -b[2], -b[3]], [b[1], b[0], b[3], -b[2]], [b[2], -b[3], b[0], b[1]],
                 [b[3], b[2], -b[1], b[0]]])


@ti.func
def conj(q):
    return vec4(q[0], -q[1], -q[2], -q[3])


@ti.func
def dell(om, dt):
    """∂ℓ(ω)/∂ω (4, 3) = dt/2 [−ωᵀ/root; I]."""
    rt = ti.sqrt(4.0 / (dt * dt) - om.dot(om))
    h = 0.5 * dt
    return mat43([[-h * om[0] / rt, -h * om[1] / rt, -h * om[2] / rt], [h, 0.0, 0.0], [0.0, h, 0.0],
                  [0.0, 0.0, h]])


@ti.func
def step_rotation(om, dt):
    rt = ti.sqrt(4.0 / (dt * dt) - om.dot(om))
    return 0.5 * dt * vec4(rt, om[0], om[1], om[2])


@ti.func
def rot_jac(q, r):
    """∂(R(q) r)/∂q (3, 4)."""
    w = q[0]
    u = vec3(q[1], q[2], q[3])
    d_w = 2.0 * (w * r + u.cross(r))
    d_u = 2.0 * (u.dot(r) * identity3() + outer(u, r) - outer(r, u) - w * skew(r))
    return mat34([[d_w[0], d_u[0, 0], d_u[0, 1], d_u[0, 2]], [d_w[1], d_u[1, 0], d_u[1, 1], d_u[1, 2]],
                  [d_w[2], d_u[2, 0], d_u[2, 1], d_u[2, 2]]])


@ti.func
def stepped_relative_pose(xp, qp, vp, wp, xc, qc, vc, wc, rc, q0, dt):
    """The poses reached with velocities (vp, ωp, vc, ωc) from (xp, qp), (xc, qc) in one step, as the joint
    sees them: (qp⁺, qc⁺, the arm xc⁺ + Rc⁺ rc − xp⁺ (world frame, m), e = q̄p⁺ ⊗ qc⁺ ⊗ q̄₀)."""
    qp2, qc2 = quat_multiply(qp, step_rotation(wp, dt)), quat_multiply(qc, step_rotation(wc, dt))
    arm = xc + dt * vc + quat_matrix(qc2) @ rc - xp - dt * vp
    e = quat_multiply(quat_multiply(conj(qp2), qc2), conj(q0))
    return qp2, qc2, arm, e


@ti.func
def joint_values(qp2, arm, e, rp, axis):
    """The seven outputs [Δ (3), ρ (3), θ] from `stepped_relative_pose`: Δ = Rp⁺ᵀ arm − rp, ρ = 2 e₁₂₃,
    θ = 2 atan2(axis · e₁₂₃, e₀)."""
    delta = quat_matrix(qp2).transpose() @ arm - rp
    theta = 2.0 * atan2(axis.dot(vec3(e[1], e[2], e[3])), e[0])
    return ti.Vector([delta[0], delta[1], delta[2], 2.0 * e[1], 2.0 * e[2], 2.0 * e[3], theta], dt=F)


@ti.func
def output_parts(xp, qp, vp, wp, xc, qc, vc, wc, rp, rc, q0, axis, dt):
    """The seven outputs [Δ (3), ρ (3), θ] of a joint at the poses reached with velocities (vp, ωp, vc, ωc)
    from (xp, qp), (xc, qc) (joint_outputs.outputs), and the blocks of their Jacobian in (vp, ωp, vc, ωc):
    Returns (outputs (7), Rpᵀ, ∂Δ/∂ωp, ∂Δ/∂ωc, ∂e/∂ωp (4 × 3), ∂e/∂ωc, ∂θ/∂ωp, ∂θ/∂ωc); ∂Δ/∂vp = −dt Rpᵀ,
    ∂Δ/∂vc = dt Rpᵀ, ρ = 2 e₁₂₃ (joint_outputs._with_jacobian)."""
    qp2, qc2, arm, e = stepped_relative_pose(xp, qp, vp, wp, xc, qc, vc, wc, rc, q0, dt)
    vals = joint_values(qp2, arm, e, rp, axis)
    RpT = quat_matrix(qp2).transpose()
    cqp2 = conj(qp2)
    c0 = conj(q0)
    y = axis.dot(vec3(e[1], e[2], e[3]))
    x = e[0]
    dqp = q_left(qp) @ dell(wp, dt)
    dqc = q_left(qc) @ dell(wc, dt)
    cm = mat4([[1.0, 0.0, 0.0, 0.0], [0.0, -1.0, 0.0, 0.0], [0.0, 0.0, -1.0, 0.0], [0.0, 0.0, 0.0, -1.0]])
    de_wp = q_right(c0) @ q_right(qc2) @ cm @ dqp
    de_wc = q_right(c0) @ q_left(cqp2) @ dqc
    d_wp = rot_jac(cqp2, arm) @ cm @ dqp
    d_wc = RpT @ rot_jac(qc2, rc) @ dqc
    den = ti.max(x * x + y * y, F(1e-300))
    dth = 2.0 * vec4(-y, x * axis[0], x * axis[1], x * axis[2]) / den
    th_wp = dth @ de_wp
    th_wc = dth @ de_wc
    return vals, RpT, d_wp, d_wc, de_wp, de_wc, th_wp, th_wc


@ti.func
def outputs(xp, qp, vp, wp, xc, qc, vc, wc, rp, rc, q0, axis, dt, out: ti.template(), b, j):
    """`output_parts` of joint j into out[b, j, 0:7] (outputs) and out[b, j, 7 + 12·o + k] (Jacobian)."""
    vals, RpT, d_wp, d_wc, de_wp, de_wc, th_wp, th_wc = output_parts(xp, qp, vp, wp, xc, qc, vc, wc, rp, rc,
                                                                      q0, axis, dt)
    for o in ti.static(range(7)):
        out[b, j, o] = vals[o]
    base = 7
    for r in ti.static(range(3)):
        for k in ti.static(range(3)):
            out[b, j, base + 12 * r + k] = -dt * RpT[r, k]
            out[b, j, base + 12 * r + 3 + k] = d_wp[r, k]
            out[b, j, base + 12 * r + 6 + k] = dt * RpT[r, k]
            out[b, j, base + 12 * r + 9 + k] = d_wc[r, k]
            out[b, j, base + 12 * (3 + r) + k] = 0.0
            out[b, j, base + 12 * (3 + r) + 3 + k] = 2.0 * de_wp[1 + r, k]
            out[b, j, base + 12 * (3 + r) + 6 + k] = 0.0
            out[b, j, base + 12 * (3 + r) + 9 + k] = 2.0 * de_wc[1 + r, k]
    for k in ti.static(range(3)):
        out[b, j, base + 72 + k] = 0.0
        out[b, j, base + 72 + 3 + k] = th_wp[k]
        out[b, j, base + 72 + 6 + k] = 0.0
        out[b, j, base + 72 + 9 + k] = th_wc[k]


@ti.func
def output_values(xp, qp, vp, wp, xc, qc, vc, wc, rp, rc, q0, axis, dt):
    """The seven outputs [Δ (3), ρ (3), θ] alone (output_parts without the Jacobian)."""
    qp2, _, arm, e = stepped_relative_pose(xp, qp, vp, wp, xc, qc, vc, wc, rc, q0, dt)
    return joint_values(qp2, arm, e, rp, axis)


@ti.func
def rate_row_at_rest(sel, xp, qp, xc, qc, rp, rc, q0, axis, dt):
    """(sel · outputs, sel · ∂outputs/∂(vp, ωp, vc, ωc) (12)) at zero velocities, in closed form: there
    ℓ(ω) = (1, dt ω/2) to first order, so Rp⁺ᵀ = (I − dt [ωp]×) Rpᵀ, Rc⁺ rc = Rc (rc + dt ωc × rc),
    e⁺ = (1, −dt ωp/2) ⊗ e and e⁺ = p ⊗ (1, dt ωc/2) ⊗ q̄₀ with p = q̄p ⊗ qc. The same numbers as
    `output_parts` at rest with a fraction of its operations, which keeps Taichi's reverse mode of it
    (kernels/vjp.py, second derivatives) quick to compile."""
    Rp, Rc = quat_matrix(qp), quat_matrix(qc)
    u = Rp.transpose() @ (xc + Rc @ rc - xp)              # the arm in the parent frame
    p = quat_multiply(conj(qp), qc)
    e = quat_multiply(p, conj(q0))
    y, x = axis.dot(vec3(e[1], e[2], e[3])), e[0]
    vals = ti.Vector([u[0] - rp[0], u[1] - rp[1], u[2] - rp[2], 2.0 * e[1], 2.0 * e[2], 2.0 * e[3],
                      2.0 * atan2(y, x)], dt=F)
    s_delta = vec3(sel[0], sel[1], sel[2])
    # sel's weight on e (4): through ρ = 2 e₁₂₃ and θ = 2 atan2(axis · e₁₂₃, e₀)
    s_e = vec4(0.0, 2.0 * sel[3], 2.0 * sel[4], 2.0 * sel[5]) \
        + sel[6] * 2.0 * vec4(-y, x * axis[0], x * axis[1], x * axis[2]) / ti.max(x * x + y * y, F(1e-300))
    lin = dt * (Rp @ s_delta)
    ep = quat_multiply(s_e, conj(e))                      # Rq(e)ᵀ s_e
    ec = quat_multiply(quat_multiply(conj(p), s_e), q0)   # Rq(q̄₀)ᵀ Lq(p)ᵀ s_e
    ang_p = dt * s_delta.cross(u) - 0.5 * dt * vec3(ep[1], ep[2], ep[3])
    ang_c = dt * rc.cross(Rc.transpose() @ (Rp @ s_delta)) + 0.5 * dt * vec3(ec[1], ec[2], ec[3])
    row = ti.Vector([-lin[0], -lin[1], -lin[2], ang_p[0], ang_p[1], ang_p[2], lin[0], lin[1], lin[2], ang_c[0],
                     ang_c[1], ang_c[2]], dt=F)
    return sel.dot(vals), row


# ------------------------------------------------------------------------------------------------
# Per step and per iterate
# ------------------------------------------------------------------------------------------------
@ti.func
def body_state(bw: ti.template(), wv: ti.template(), b, i, nb, at_zero):
    """(x, q, v, ω) of body row i at the start of the step with the current iterate's velocities (zero
    velocities when at_zero, or for the world row i = nb)."""
    x, q = vec3(0.0, 0.0, 0.0), vec4(1.0, 0.0, 0.0, 0.0)
    v, om = vec3(0.0, 0.0, 0.0), vec3(0.0, 0.0, 0.0)
    if i < nb:
        x = vec3(bw[b, i, 0], bw[b, i, 1], bw[b, i, 2])
        q = vec4(bw[b, i, 27], bw[b, i, 28], bw[b, i, 29], bw[b, i, 30])
        if at_zero == 0:
            v = vec3(wv[b, 0, 6 * i], wv[b, 0, 6 * i + 1], wv[b, 0, 6 * i + 2])
            om = vec3(wv[b, 0, 6 * i + 3], wv[b, 0, 6 * i + 4], wv[b, 0, 6 * i + 5])
    return x, q, v, om


@ti.func
def joint_constants(jt_f: ti.template(), j):
    """Joint j's anchors in the parent and child frames, rest rotation q₀ and revolute axis (table jt_f)."""
    return vec3(jt_f[j, 0], jt_f[j, 1], jt_f[j, 2]), vec3(jt_f[j, 3], jt_f[j, 4], jt_f[j, 5]), \
        vec4(jt_f[j, 6], jt_f[j, 7], jt_f[j, 8], jt_f[j, 9]), vec3(jt_f[j, 10], jt_f[j, 11], jt_f[j, 12])


@ti.func
def kinematics(bw: ti.template(), wv: ti.template(), jt_i: ti.template(), jt_f: ti.template(), jo: ti.template(),
               b, nb, J, dt, at_zero):
    """Every joint's outputs and their Jacobian at the current iterate (or at zero velocities) into jo[b]."""
    for j in range(J):
        xp, qp, vp, wp = body_state(bw, wv, b, jt_i[j, 0], nb, at_zero)
        xc, qc, vc, wc = body_state(bw, wv, b, jt_i[j, 1], nb, at_zero)
        rp, rc, q0, axis = joint_constants(jt_f, j)
        outputs(xp, qp, vp, wp, xc, qc, vc, wc, rp, rc, q0, axis, dt, jo, b, j)


@ti.func
def local_velocity(wv: ti.template(), b, slot, jt_i: ti.template(), j, nb, k):
    """Component k < 12 of (v_p, ω_p, v_c, ω_c) of joint j in slot `slot` (zero for the world)."""
    i = jt_i[j, k // 6]
    val = F(0.0)
    if i < nb:
        val = wv[b, slot, 6 * i + k % 6]
    return val


@ti.func
def prepare(st: ti.template(), t, tau: ti.template(), has_tau, bw: ti.template(), wv: ti.template(),
            jt_i: ti.template(), jt_f: ti.template(), rw_i: ti.template(), rw_f: ti.template(), jo: ti.template(),
            jd: ti.template(), jc: ti.template(), lw: ti.template(), b, nb, J, m, n1, L, dt, margin):
    """The w-independent joint terms of step t (joint_equations.prepare): rate maps D_k of equality and
    coordinate rows, start coordinates, explicit spring and actuation impulses, limits in reach."""
    kinematics(bw, wv, jt_i, jt_f, jo, b, nb, J, dt, 1)
    for r in range(m + n1):
        j = rw_i[r, 0]
        for k in range(12):
            acc = F(0.0)
            for o in range(7):
                acc += rw_f[r, o] * jo[b, j, 7 + 12 * o + k]
            jd[b, r, k] = acc / dt
    for k in range(n1):
        r = m + k
        j = rw_i[r, 0]
        coord0 = F(0.0)
        for o in range(7):
            coord0 += rw_f[r, o] * jo[b, j, o]
        jc[b, k, 0] = coord0
        act = F(0.0)
        if has_tau != 0:
            act = tau[t, b, k]
        jc[b, k, 1] = dt * (-rw_f[r, 7] * (coord0 - rw_f[r, 9]) + act)
    for l in range(L):
        r = m + n1 + l
        k = rw_i[r, 0]
        j = rw_i[m + k, 0]
        sign, bound = rw_f[r, 0], rw_f[r, 1]
        rate0 = F(0.0)
        for q in range(12):
            p = jt_i[j, q // 6]
            zq = F(0.0)
            if p < nb:
                zq = st[t, b, p, 7 + q % 6]
            rate0 += jd[b, m + k, q] * zq
        gap0 = sign * (jc[b, k, 0] - bound)
        rate = sign * rate0
        lw[b, l, 0] = 1.0 if gap0 < margin + 2.0 * dt * ti.abs(rate) else 0.0
        lw[b, l, 1] = gap0
        lw[b, l, 2] = rate


@ti.func
def residual(wv: ti.template(), bw: ti.template(), jt_i: ti.template(), jt_f: ti.template(), rw_i: ti.template(),
             rw_f: ti.template(), jo: ti.template(), jd: ti.template(), je: ti.template(), jc: ti.template(),
             lw: ti.template(), b, nb, oj, J, m, n1, L, dt):
    """Joint rows of r(w) into slot 4 (RES) from offset oj (λ rows c_eq, then per limit γ s and s − g), the
    rows' Jacobians into je[b], and the joint impulses subtracted from the dynamics rows
    (joint_equations.equations)."""
    kinematics(bw, wv, jt_i, jt_f, jo, b, nb, J, dt, 0)
    for r in range(m + n1):
        j = rw_i[r, 0]
        val = F(0.0)
        for o in range(7):
            val += rw_f[r, o] * jo[b, j, o]
        for col in range(12):
            acc = F(0.0)
            for o in range(7):
                acc += rw_f[r, o] * jo[b, j, 7 + 12 * o + col]
            je[b, r, col] = acc
        if r < m:
            wv[b, 4, oj + r] = val
        else:
            kc = r - m
            jc[b, kc, 2] = val
            rate = F(0.0)
            for q in range(12):
                rate += jd[b, r, q] * local_velocity(wv, b, 0, jt_i, j, nb, q)
            jc[b, kc, 3] = jc[b, kc, 1] - dt * rw_f[r, 8] * rate
    for l in range(L):
        base = oj + m + 2 * l
        k = rw_i[m + n1 + l, 0]
        res0, res1 = F(0.0), F(0.0)
        if lw[b, l, 0] > 0:
            sign, bound = rw_f[m + n1 + l, 0], rw_f[m + n1 + l, 1]
            gam, gap = wv[b, 0, base], wv[b, 0, base + 1]
            res0 = gam * gap
            res1 = gap - sign * (jc[b, k, 2] - bound)
            jc[b, k, 3] += sign * gam
        wv[b, 4, base] = res0
        wv[b, 4, base + 1] = res1
    for r in range(m + n1):
        j = rw_i[r, 0]
        f = F(0.0)
        if r < m:
            f = wv[b, 0, oj + r]
        else:
            f = jc[b, r - m, 3]
        for q in range(12):
            i = jt_i[j, q // 6]
            if i < nb:
                wv[b, 4, 6 * i + q % 6] -= jd[b, r, q] * f


@ti.func
def measure(wv: ti.template(), lw: ti.template(), b, oj, m, L, dt, kappa):
    """(scaled equality residual, central-path error) of the joint and limit rows (rows by dt: m/s, rad/s)."""
    eq, comp = F(0.0), F(0.0)
    for r in range(m):
        eq = ti.max(eq, ti.abs(wv[b, 4, oj + r]) / dt)
    for l in range(L):
        if lw[b, l, 0] > 0:
            base = oj + m + 2 * l
            eq = ti.max(eq, ti.abs(wv[b, 4, base + 1]) / dt)
            comp = ti.max(comp, ti.abs(wv[b, 4, base] - kappa) / kappa)
    return eq, comp


@ti.func
def assemble(H: ti.template(), wv: ti.template(), jt_i: ti.template(), rw_i: ti.template(), rw_f: ti.template(),
             jd: ti.template(), je: ti.template(), lw: ti.template(), b, nb, oj, m, n1, L, dt):
    """Joint blocks of the reduced Newton matrix: dampers c dt DᵀD and eliminated limits (γ/s) Dᵀ E on the
    velocities, and the equality rows' KKT blocks (−D_eqᵀ on the λ columns, E_eq on the λ rows)."""
    nz = 6 * nb
    for k in range(n1):
        r = m + k
        j = rw_i[r, 0]
        weight = dt * rw_f[r, 8]
        if weight != 0:
            for qa, qb in ti.ndrange(12, 12):
                ia, ib = jt_i[j, qa // 6], jt_i[j, qb // 6]
                if ia < nb and ib < nb:
                    H[b, 6 * ia + qa % 6, 6 * ib + qb % 6] += weight * jd[b, r, qa] * jd[b, r, qb]
    for l in range(L):
        if lw[b, l, 0] > 0:
            base = oj + m + 2 * l
            k = rw_i[m + n1 + l, 0]
            r = m + k
            j = rw_i[r, 0]
            ratio = wv[b, 0, base] / wv[b, 0, base + 1]
            for qa, qb in ti.ndrange(12, 12):
                ia, ib = jt_i[j, qa // 6], jt_i[j, qb // 6]
                if ia < nb and ib < nb:
                    H[b, 6 * ia + qa % 6, 6 * ib + qb % 6] += ratio * jd[b, r, qa] * je[b, r, qb]
    for r in range(m):
        j = rw_i[r, 0]
        for q in range(12):
            i = jt_i[j, q // 6]
            if i < nb:
                H[b, nz + r, 6 * i + q % 6] = je[b, r, q]
                H[b, 6 * i + q % 6, nz + r] = -jd[b, r, q]


@ti.func
def limit_rows(wv: ti.template(), b, base, target, far, corrector):
    """A limit's (γ s, s − g) residual with the centering target and Mehrotra's term (slot 2 = D_AFF)."""
    rc, rg = wv[b, 4, base], wv[b, 4, base + 1]
    if corrector != 0:
        rc = rc - target + far * wv[b, 2, base] * wv[b, 2, base + 1]
    return rc, rg


@ti.func
def rhs(xr: ti.template(), wv: ti.template(), jt_i: ti.template(), rw_i: ti.template(), rw_f: ti.template(),
        jd: ti.template(), lw: ti.template(), b, nb, oj, m, n1, L, target, far, corrector):
    """Joint parts of the reduced right-hand side: −c_eq on the λ rows, the limits' constant impulse
    ± Dᵀ Δγ₀ on the velocities."""
    nz = 6 * nb
    for r in range(m):
        xr[b, nz + r] = -wv[b, 4, oj + r]
    for l in range(L):
        if lw[b, l, 0] > 0:
            base = oj + m + 2 * l
            rc, rg = limit_rows(wv, b, base, target, far, corrector)
            gam, gap = wv[b, 0, base], wv[b, 0, base + 1]
            dg0 = (-rc + gam * rg) / gap
            k = rw_i[m + n1 + l, 0]
            sign = rw_f[m + n1 + l, 0]
            j = rw_i[m + k, 0]
            for q in range(12):
                i = jt_i[j, q // 6]
                if i < nb:
                    xr[b, 6 * i + q % 6] += sign * jd[b, m + k, q] * dg0


@ti.func
def back_substitute(xr: ti.template(), wv: ti.template(), jt_i: ti.template(), rw_i: ti.template(),
                    rw_f: ti.template(), je: ti.template(), lw: ti.template(), b, nb, oj, m, n1, L, out, target,
                    far, corrector):
    """Δλ from the solved system, and each limit's (Δγ, Δs) from its gap change y = ± E Δz."""
    nz = 6 * nb
    for r in range(m):
        wv[b, out, oj + r] = xr[b, nz + r]
    for l in range(L):
        base = oj + m + 2 * l
        dgam, dgap = F(0.0), F(0.0)
        if lw[b, l, 0] > 0:
            rc, rg = limit_rows(wv, b, base, target, far, corrector)
            gam, gap = wv[b, 0, base], wv[b, 0, base + 1]
            k = rw_i[m + n1 + l, 0]
            sign = rw_f[m + n1 + l, 0]
            j = rw_i[m + k, 0]
            y = F(0.0)
            for q in range(12):
                i = jt_i[j, q // 6]
                if i < nb:
                    y += sign * je[b, m + k, q] * xr[b, 6 * i + q % 6]
            dgap = y - rg
            dgam = (-rc - gam * dgap) / gap
        wv[b, out, base] = dgam
        wv[b, out, base + 1] = dgap


@ti.func
def guess(wv: ti.template(), lw: ti.template(), b, oj, m, L, dt, kappa, warm):
    """Joint unknowns' start (joint_equations.initial_guess): λ from the previous step (warm) or 0; limits
    in reach at the predicted gap plus a floor with a small impulse, or warm; others at s = 1, γ = κ.
    Slots: 0 the iterate, 5 the previous solution, 6 its limits' active flags."""
    for r in range(m):
        wv[b, 0, oj + r] = wv[b, 5, oj + r] if warm != 0 else 0.0
    for l in range(L):
        base = oj + m + 2 * l
        gam, gap = kappa, F(1.0)
        if lw[b, l, 0] > 0:
            if warm != 0 and wv[b, 6, base] > 0:
                gam, gap = wv[b, 5, base], wv[b, 5, base + 1]
            else:
                gam = F(1e-3)
                gap = ti.abs(lw[b, l, 1] + dt * lw[b, l, 2]) + F(1e-3)
        wv[b, 0, base] = gam
        wv[b, 0, base + 1] = gap
