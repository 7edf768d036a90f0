"""The rigid step in one Taichi kernel: detection, the interior-point solve and the pose update, for every
world in parallel (one thread per world) and for many steps per launch.

The equations, unknowns and solver are those of `integrator.py` and `ipm.py` (the torch reference):
Mehrotra predictor-corrector on r(w; κ) = 0 with Nesterov–Todd scaling of the friction cones far from the
central path, fraction-to-boundary 0.99, the |ω| dt < 1.9 step rule, and the same fallbacks (central-path
continuation from a cold start, scaled then unscaled). What differs is the linear algebra. The Newton
system of a world is block-structured: each contact's eight unknowns (γ, s, β, η) appear only in its own
eight rows and, through the contact Jacobian G (3 rows: gap, two slips), in the dynamics rows of the one
or two bodies it touches. Eliminating them contact by contact (each is an explicit solve of its gap,
slip, friction-magnitude and complementarity rows plus one 3×3 solve of its cone rows) leaves a 6·bodies
system on the velocities,

    (H − Σ_c Pᵀ_c K_c G_c) Δz = −r_dyn + Σ_c Pᵀ_c k_c,

with H the bodies' 6×6 blocks (mass, the discrete Euler–Lagrange Jacobian, the contact curvature),
P_c = G_c with its gap row divided by dt (the impulse directions), K_c the 3×3 map from (G Δz) to the
contact's (Δγ, Δβ₁, Δβ₂) and k_c its constant part. One box on a plane is a 6×6 LU instead of the 70×70
of the reference. Predictor and corrector share the factorization.

Unknowns of world b in wv[b, slot, :]: body i's (v m/s, ω rad/s body frame) at 6i … 6i+5, then contact c's
(γ, s, β₀, β₁, β₂, η₀, η₁, η₂) at 6·bodies + 8c. Residual rows of contact c (slot RES) in the same block:
γ s, s − φ, β ∘ η (3), β₀ − μ γ, η₁₂ − v_t (2).
"""

# No `from __future__ import annotations`: Taichi reads the functions' annotations (ti.template()).
from ...backend import ti
from . import joints as jk
from .common import (
    TINY,
    F,
    arr2,
    arr3,
    arr4,
    arrow,
    get3,
    get33,
    iarr1,
    iarr2,
    identity3,
    inverse3,
    jordan,
    lu_factor,
    lu_solve,
    mat3,
    outer,
    put3,
    put33,
    quat_matrix,
    quat_multiply,
    skew,
    sparse_lu_factor,
    sparse_lu_solve,
    vec2,
    vec3,
    vec4,
    vec8,
    world_of,
    zero_pattern,
)
from .contact import CT, DECISIONS, attachment, body_pose, curvature, detect

# Slots of the per-world vectors wv[b, slot, :]
W, W_PREV, D_AFF, D_DIR, RES, WARM, WARM_ON = range(7)
SLOTS = 7
# Offsets inside a contact's block of 8: unknowns …
U_GAMMA, U_GAP, U_BETA = 0, 1, 2  # η from 5
# … and residual rows.
R_COMP, R_GAP, R_CONE, R_MU, R_SLIP = 0, 1, 2, 5, 6
# Columns of the per-world body workspace bw[b, i, :]: start pose, dynamics constants, contact curvature.
BW = dict(x=0, R=3, lin0=12, ang0=15, curv=18, q=27)  # (joints.body_state reads x at 0 and q at 27)
BW_WIDTH = 31
# Columns of info[t, b, :]
INFO = dict(iterations=0, residual=1, complementarity=2, converged=3, advanced=4, finite=5, cut_short=6)
INFO_WIDTH = 7

FRACTION_TO_BOUNDARY = 0.99
CENTRAL_PATH_FLOOR = 1e-8
OMEGA_DT_LIMIT = 1.9
# Cold-start floors (m, N·s, N·s, m/s) as step.initial_guess
GAP_FLOOR, IMPULSE_FLOOR, FRICTION_FLOOR, SLIP_FLOOR = 1e-3, 1e-3, 1e-3, 1e-3
HUGE = 1e300


@ti.func
def zget(wv: ti.template(), b, slot, i):
    k = 6 * i
    return (vec3(wv[b, slot, k], wv[b, slot, k + 1], wv[b, slot, k + 2]),
            vec3(wv[b, slot, k + 3], wv[b, slot, k + 4], wv[b, slot, k + 5]))


@ti.func
def lget(wv: ti.template(), b, slot, k):
    return vec8(wv[b, slot, k], wv[b, slot, k + 1], wv[b, slot, k + 2], wv[b, slot, k + 3],
                wv[b, slot, k + 4], wv[b, slot, k + 5], wv[b, slot, k + 6], wv[b, slot, k + 7])


@ti.func
def lput(wv: ti.template(), b, slot, k, x):
    for j in ti.static(range(8)):
        wv[b, slot, k + j] = x[j]


@ti.func
def inertia(body: ti.template(), i):
    return mat3([[body[i, 1], body[i, 2], body[i, 3]], [body[i, 4], body[i, 5], body[i, 6]],
                 [body[i, 7], body[i, 8], body[i, 9]]])


# ------------------------------------------------------------------------------------------------
# Per step, per world: constants, initial guess
# ------------------------------------------------------------------------------------------------
@ti.func
def prepare(st: ti.template(), ctrl: ti.template(), body: ti.template(), bw: ti.template(), t, b, nb, dt, g,
            has_ctrl):
    """Start pose, rotation and the dynamics terms of the start-of-step state and controls (integrator.prepare);
    has_ctrl = 0: no forces or torques (ctrl is not read)."""
    for i in range(nb):
        x, q, v, om = body_pose(st, t, b, i)
        R = quat_matrix(q)
        mass, J = body[i, 0], inertia(body, i)
        force, torque = vec3(0.0, 0.0, 0.0), vec3(0.0, 0.0, 0.0)
        if has_ctrl != 0:
            force = vec3(ctrl[t, b, i, 0], ctrl[t, b, i, 1], ctrl[t, b, i, 2])
            torque = vec3(ctrl[t, b, i, 3], ctrl[t, b, i, 4], ctrl[t, b, i, 5])
        Jo = J @ om
        rt = ti.sqrt(4.0 / (dt * dt) - om.dot(om))
        put3(bw, b, i, BW["x"], x)
        put33(bw, b, i, BW["R"], R)
        for k in ti.static(range(4)):
            bw[b, i, BW["q"] + k] = q[k]
        put3(bw, b, i, BW["lin0"], -mass * v - dt * (mass * g + force))
        put3(bw, b, i, BW["ang0"], 0.5 * dt * (-rt * Jo + om.cross(Jo)) - dt * (R.transpose() @ torque))


@ti.func
def initial_guess(st: ti.template(), body: ti.template(), cand: ti.template(), ct: ti.template(),
                  wv: ti.template(), lw: ti.template(), t, b, nb, C, m, L, dt, gnorm, kappa, warm):
    """Interior starting point (step.initial_guess): velocities of the start of the step; contact
    variables from the previous step where the candidate was active there and is now (warm != 0), else
    on the scale of the step; inactive candidates at their exact placeholder solution."""
    nz = 6 * nb
    for i in range(nb):
        x, q, v, om = body_pose(st, t, b, i)
        for k in ti.static(range(3)):
            wv[b, W, 6 * i + k] = v[k]
            wv[b, W, 6 * i + 3 + k] = om[k]
    for c in range(C):
        base = nz + 8 * c
        mu_eff = ct[b, c, CT["mu_eff"]]
        u = vec8(kappa, 1.0, mu_eff * kappa, 0.0, 0.0, 1.0 / mu_eff, 0.0, 0.0)
        if ct[b, c, CT["active"]] > 0:
            if warm != 0 and wv[b, WARM_ON, base] > 0:
                u = lget(wv, b, WARM, base)
            else:
                ia = cand[c, 1]
                share = 0
                for c2 in range(C):
                    if ct[b, c2, CT["active"]] > 0 and cand[c2, 1] == ia:
                        share += 1
                n = get3(ct, b, c, CT["n"])
                vel = get3(ct, b, c, CT["speed"])
                v_n = n.dot(vel)
                v_t = (vel - v_n * n).norm()
                predicted = ct[b, c, CT["dist"]] + dt * (v_n - dt * gnorm)
                gap = ti.abs(predicted) + F(GAP_FLOOR)
                gamma = body[ia, 0] * (ti.max(-v_n, 0.0) + dt * gnorm) / ti.max(share, 1) + F(IMPULSE_FLOOR)
                u = vec8(gamma, gap, F(FRICTION_FLOOR) + ct[b, c, CT["mu"]] * gamma, 0.0, 0.0,
                         F(SLIP_FLOOR) + v_t, 0.0, 0.0)
        lput(wv, b, W, base, u)
    jk.guess(wv, lw, b, nz + 8 * C, m, L, dt, kappa, warm)


# ------------------------------------------------------------------------------------------------
# Residual, its measure, the reduced Newton system
# ------------------------------------------------------------------------------------------------
@ti.func
def evaluate(cand: ti.template(), ct: ti.template(), wv: ti.template(), G: ti.template(), bw: ti.template(),
             body: ti.template(), jt_i: ti.template(), jt_f: ti.template(), rw_i: ti.template(), rw_f: ti.template(), jo: ti.template(), jd: ti.template(), je: ti.template(), jc: ti.template(), lw: ti.template(), b, nb, C, nj, m, n1, L, dt):
    """r(w; κ = 0) of world b into slot RES, the contact Jacobians into G[b] and the contact curvature
    into bw[b, :, curv]. Returns 1 when every residual entry is finite.

    A contact's four witnesses (normal and friction point on sides a and b) go through one loop, so that
    the witness kinematics are compiled once."""
    nz = 6 * nb
    for i in range(nb):
        v2, om2 = zget(wv, b, W, i)
        mass, J = body[i, 0], inertia(body, i)
        Jo = J @ om2
        rt2 = ti.sqrt(4.0 / (dt * dt) - om2.dot(om2))
        lin = mass * v2 + get3(bw, b, i, BW["lin0"])
        ang = 0.5 * dt * (rt2 * Jo + om2.cross(Jo)) + get3(bw, b, i, BW["ang0"])
        for k in ti.static(range(3)):
            wv[b, RES, 6 * i + k] = lin[k]
            wv[b, RES, 6 * i + 3 + k] = ang[k]
        for k in range(9):
            bw[b, i, BW["curv"] + k] = 0.0
    for c in range(C):
        base = nz + 8 * c
        r = vec8(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
        if ct[b, c, CT["active"]] > 0:
            u = lget(wv, b, W, base)
            gamma, gap = u[U_GAMMA], u[U_GAP]
            beta = vec3(u[2], u[3], u[4])
            eta = vec3(u[5], u[6], u[7])
            n = get3(ct, b, c, CT["n"])
            t1, t2 = get3(ct, b, c, CT["t1"]), get3(ct, b, c, CT["t2"])
            rubs, mu_eff = ct[b, c, CT["rubs"]], ct[b, c, CT["mu_eff"]]
            lam_n = gamma * n
            lam_t = rubs * (beta[1] * t1 + beta[2] * t2)
            phi = -ct[b, c, CT["offset"]]
            slip = vec3(0.0, 0.0, 0.0)
            for wi in range(4):  # normal a, friction a, normal b, friction b
                side = wi // 2
                normal = wi % 2 == 0
                sign = 1.0 - 2.0 * side
                i = cand[c, 1 + side]
                rcol = CT["rn_a"] + 3 * side if normal else CT["rt_a"] + 3 * side
                rw = get3(ct, b, c, rcol)
                p = rw
                Jr = ti.Matrix.zero(F, 3, 3)
                if i < nb:
                    v2, om2 = zget(wv, b, W, i)
                    R = get33(bw, b, i, BW["R"])
                    p, Jr = attachment(get3(bw, b, i, BW["x"]), R, v2, om2, rw, dt)
                    lam, weight = lam_n, F(1.0)
                    if not normal:
                        lam, weight = lam_t, rubs
                    ang = Jr.transpose() @ lam / dt
                    for k in ti.static(range(3)):
                        wv[b, RES, 6 * i + 3 + k] -= sign * ang[k]
                        if normal:
                            wv[b, RES, 6 * i + k] -= sign * (lam_n[k] + lam_t[k])
                    curv = weight * sign * curvature(R, rw, om2, lam, dt)
                    for k in ti.static(range(9)):
                        bw[b, i, BW["curv"] + k] += curv[k // 3, k % 3]
                # Jacobian rows of this side: gap (∂φ/∂z) from the normal witness, slips (∂v_t/∂z)
                # from the friction witness; zero on the ground.
                if normal:
                    phi += sign * n.dot(p)
                    gr = Jr.transpose() @ n
                    for k in ti.static(range(3)):
                        G[b, c, 0, 6 * side + k] = sign * dt * n[k] if i < nb else 0.0
                        G[b, c, 0, 6 * side + 3 + k] = sign * gr[k]
                else:
                    slip += sign * (p - get3(ct, b, c, CT["p0_a"] + 3 * side))
                    s1, s2 = Jr.transpose() @ t1 / dt, Jr.transpose() @ t2 / dt
                    f = sign * rubs if i < nb else 0.0
                    for k in ti.static(range(3)):
                        G[b, c, 1, 6 * side + k] = f * t1[k]
                        G[b, c, 1, 6 * side + 3 + k] = f * s1[k]
                        G[b, c, 2, 6 * side + k] = f * t2[k]
                        G[b, c, 2, 6 * side + 3 + k] = f * s2[k]
            v_t = vec2(t1.dot(slip), t2.dot(slip)) * (rubs / dt)
            cone = jordan(beta, eta)
            r = vec8(gamma * gap, gap - phi, cone[0], cone[1], cone[2], beta[0] - mu_eff * gamma,
                     eta[1] - v_t[0], eta[2] - v_t[1])
        lput(wv, b, RES, base, r)
    jk.residual(wv, bw, jt_i, jt_f, rw_i, rw_f, jo, jd, je, jc, lw, b, nb, nz + 8 * C, nj, m, n1, L, dt)
    finite = 1
    for k in range(nz + 8 * C + m + 2 * L):
        if not (ti.abs(wv[b, RES, k]) <= F(HUGE)):
            finite = 0
    return finite


@ti.func
def measure(ct: ti.template(), wv: ti.template(), body: ti.template(), lw: ti.template(), b, nb, C, m, L, dt, kappa,
            mean_mass):
    """(scaled equality residual m/s, relative distance to the central path at κ) of world b (ipm.measure)."""
    nz = 6 * nb
    eq = F(0.0)
    for i in range(nb):
        for k in ti.static(range(3)):
            eq = ti.max(eq, ti.abs(wv[b, RES, 6 * i + k]) / body[i, 0])
            eq = ti.max(eq, ti.abs(wv[b, RES, 6 * i + 3 + k]) / body[i, 10])
    comp = F(0.0)
    for c in range(C):
        if ct[b, c, CT["active"]] > 0:
            base = nz + 8 * c
            r = lget(wv, b, RES, base)
            u = lget(wv, b, W, base)
            eq = ti.max(eq, ti.abs(r[R_GAP]))
            eq = ti.max(eq, ti.abs(r[R_SLIP]))
            eq = ti.max(eq, ti.abs(r[R_SLIP + 1]))
            eq = ti.max(eq, ti.abs(r[R_MU]) / mean_mass)
            comp = ti.max(comp, ti.abs(r[R_COMP] - kappa) / kappa)
            beta = vec3(u[2], u[3], u[4])
            eta = vec3(u[5], u[6], u[7])
            scale = ti.max(F(1e-10) * beta.norm() * eta.norm(), kappa)
            comp = ti.max(comp, ti.abs(r[R_CONE] - kappa) / scale)
            comp = ti.max(comp, ti.abs(r[R_CONE + 1]) / scale)
            comp = ti.max(comp, ti.abs(r[R_CONE + 2]) / scale)
    eq_j, comp_j = jk.measure(wv, lw, b, nz + 8 * C, m, L, dt, kappa)
    return ti.max(eq, eq_j), ti.max(comp, comp_j)


@ti.func
def nesterov_todd(x, y):
    """(W, W⁻¹, λ = W y) of the second-order-cone pair (x, y) (ipm.nesterov_todd)."""
    xn = ti.sqrt(ti.max(x[0] * x[0] - x[1] * x[1] - x[2] * x[2], F(TINY)))
    yn = ti.sqrt(ti.max(y[0] * y[0] - y[1] * y[1] - y[2] * y[2], F(TINY)))
    xb, yb = x / xn, y / yn
    gam = ti.sqrt(ti.max((1.0 + xb.dot(yb)) / 2.0, F(TINY)))
    wb = (xb + vec3(yb[0], -yb[1], -yb[2])) / (2.0 * gam)
    scale = ti.sqrt(xn / yn)
    w0, w1, w2 = wb[0], wb[1], wb[2]
    l11 = 1.0 + w1 * w1 / (1.0 + w0)
    l12 = w1 * w2 / (1.0 + w0)
    l22 = 1.0 + w2 * w2 / (1.0 + w0)
    Wm = scale * mat3([[w0, w1, w2], [w1, l11, l12], [w2, l12, l22]])
    Wi = mat3([[w0, -w1, -w2], [-w1, l11, l12], [-w2, l12, l22]]) / scale
    return Wm, Wi, Wm @ y


@ti.func
def cone_system(u, r, scaled):
    """Rows of a contact's cone block: (A_β, A_η, their residual, W, W⁻¹). Unscaled: Arrow(η), Arrow(β),
    β ∘ η; scaled (Nesterov–Todd): Arrow(λ) W⁻¹, Arrow(λ) W, λ ∘ λ."""
    beta = vec3(u[2], u[3], u[4])
    eta = vec3(u[5], u[6], u[7])
    Ab, Ae = arrow(eta), arrow(beta)
    rk = vec3(r[R_CONE], r[R_CONE + 1], r[R_CONE + 2])
    Wm, Wi = identity3(), identity3()
    if scaled != 0:
        Wm, Wi, lam = nesterov_todd(beta, eta)
        A = arrow(lam)
        Ab, Ae = A @ Wi, A @ Wm
        rk = jordan(lam, lam)
    return Ab, Ae, rk, Wm, Wi


@ti.func
def local_solve(y, u1, u2, r, rk, gamma, gap, mu_eff, Ab, Ae, M3inv):
    """A contact's eight Newton unknowns given y = G_φ Δz, (u1, u2) = G_v Δz and its rows' residual r
    (cone rows rk): the gap, slip, friction-magnitude and complementarity rows explicitly, then the cone
    rows as a 3×3 solve for (Δβ₁, Δβ₂, Δη₀). Linear in (y, u, r)."""
    ds = y - r[R_GAP]
    dg = (-r[R_COMP] - gamma * ds) / gap
    de1 = u1 - r[R_SLIP]
    de2 = u2 - r[R_SLIP + 1]
    db0 = mu_eff * dg - r[R_MU]
    rhs = -rk - db0 * vec3(Ab[0, 0], Ab[1, 0], Ab[2, 0]) - de1 * vec3(Ae[0, 1], Ae[1, 1], Ae[2, 1]) \
        - de2 * vec3(Ae[0, 2], Ae[1, 2], Ae[2, 2])
    sol = M3inv @ rhs
    return vec8(dg, ds, db0, sol[0], sol[1], sol[2], de1, de2)


# Columns of the per-contact elimination workspace el[b, c, :] (written by assemble, read by direction).
EL = dict(Ab=0, Ae=9, M3inv=18, W=27, Wi=36, rk=45, L=48)  # L: (8, 3) response of the unknowns to (y, u)
EL_WIDTH = 72
# Which of a contact's unknowns enter the dynamics rows through row p of G: γ (gap), β₁, β₂ (slips).
_IMPULSE_UNKNOWN = (U_GAMMA, U_BETA + 1, U_BETA + 2)


@ti.func
def gblock(G: ti.template(), b, c, side):
    """The (3, 6) block of contact c's Jacobian on one side (0: a, 1: b)."""
    m = ti.Matrix.zero(F, 3, 6)
    for r in ti.static(range(3)):
        for k in ti.static(range(6)):
            m[r, k] = G[b, c, r, 6 * side + k]
    return m


@ti.func
def contact_rows(G: ti.template(), cand: ti.template(), x: ti.template(), b, c, nb):
    """G_c x (3): contact c's Jacobian rows (gap, two slips) applied to the velocities in x[b]."""
    y = vec3(0.0, 0.0, 0.0)
    for s in range(2):
        i = cand[c, 1 + s]
        if i < nb:
            for row in ti.static(range(3)):
                for k in range(6):
                    y[row] += G[b, c, row, 6 * s + k] * x[b, 6 * i + k]
    return y


@ti.func
def add_contact_columns(G: ti.template(), cand: ti.template(), x: ti.template(), b, c, nb, y):
    """x[b] += G_cᵀ y: contact c's Jacobian rows, transposed, onto the velocities."""
    for s in range(2):
        i = cand[c, 1 + s]
        if i < nb:
            add = gblock(G, b, c, s).transpose() @ y
            for k in ti.static(range(6)):
                x[b, 6 * i + k] += add[k]


@ti.func
def assemble(cand: ti.template(), ct: ti.template(), wv: ti.template(), G: ti.template(), bw: ti.template(),
             body: ti.template(), H: ti.template(), piv: ti.template(), sym: ti.template(), el: ti.template(), jt_i: ti.template(), jt_f: ti.template(), rw_i: ti.template(), rw_f: ti.template(), jo: ti.template(), jd: ti.template(), je: ti.template(), jc: ti.template(), lw: ti.template(), b, nb, C, m, n1,
             L, dt, scaled):
    """The reduced Newton matrix of world b (6·bodies velocities, then the m joint impulses) into H[b],
    LU-factorized in place over its precomputed pattern (sparse_lu_factor), or with partial pivoting
    when a pivot is too small there (assembled again; piv[b, 2 nK] = 1 marks it); each contact's
    elimination data into el[b, c]. One loop over the two attempts, so that assembly is compiled once."""
    nz = 6 * nb
    nK = nz + m
    dense = 0
    first = 0
    for c in range(C):  # an active contact outside the pattern: straight to the dense factorization
        if ct[b, c, CT["active"]] > 0 and cand[c, 4] == 0:
            first = 1
    for attempt in range(first, 2):
        if attempt == 0:
            zero_pattern(H, sym, b, nK)
        else:
            for i, j in ti.ndrange(nK, nK):
                H[b, i, j] = 0.0
            dense = 1
        for i in range(nb):
            v2, om2 = zget(wv, b, W, i)
            mass, J = body[i, 0], inertia(body, i)
            Jo = J @ om2
            rt2 = ti.sqrt(4.0 / (dt * dt) - om2.dot(om2))
            d_rot = rt2 * J - outer(Jo, om2) / rt2 + skew(om2) @ J - skew(Jo)
            ang = 0.5 * dt * d_rot
            for k in range(3):
                H[b, 6 * i + k, 6 * i + k] = mass
            for k in ti.static(range(9)):
                H[b, 6 * i + 3 + k // 3, 6 * i + 3 + k % 3] = ang[k // 3, k % 3] - bw[b, i, BW["curv"] + k]
        zero8 = vec8(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
        for c in range(C):
            if ct[b, c, CT["active"]] > 0:
                base = nz + 8 * c
                u = lget(wv, b, W, base)
                Ab, Ae, rk, Wm, Wi = cone_system(u, lget(wv, b, RES, base), scaled)
                M3inv = inverse3(mat3([[Ab[0, 1], Ab[0, 2], Ae[0, 0]], [Ab[1, 1], Ab[1, 2], Ae[1, 0]],
                                       [Ab[2, 1], Ab[2, 2], Ae[2, 0]]]))
                for k in ti.static(range(9)):
                    el[b, c, EL["Ab"] + k] = Ab[k // 3, k % 3]
                    el[b, c, EL["Ae"] + k] = Ae[k // 3, k % 3]
                    el[b, c, EL["M3inv"] + k] = M3inv[k // 3, k % 3]
                    el[b, c, EL["W"] + k] = Wm[k // 3, k % 3]
                    el[b, c, EL["Wi"] + k] = Wi[k // 3, k % 3]
                for k in ti.static(range(3)):
                    el[b, c, EL["rk"] + k] = rk[k]
                # L (8×3): the unknowns' response to unit y, u₁, u₂ with zero residual (linear part)
                for col in range(3):
                    du = local_solve(1.0 if col == 0 else 0.0, 1.0 if col == 1 else 0.0, 1.0 if col == 2 else 0.0,
                                     zero8, vec3(0.0, 0.0, 0.0), u[U_GAMMA], u[U_GAP], ct[b, c, CT["mu_eff"]],
                                     Ab, Ae, M3inv)
                    for k in ti.static(range(8)):
                        el[b, c, EL["L"] + 3 * k + col] = du[k]
                # H −= Pᵀ K G over the pairs of dynamic sides, K = rows γ, β₁, β₂ of L, P = G with its gap row / dt
                K = ti.Matrix.zero(F, 3, 3)
                for p in ti.static(range(3)):
                    for q in ti.static(range(3)):
                        K[p, q] = el[b, c, EL["L"] + 3 * _IMPULSE_UNKNOWN[p] + q] / (dt if p == 0 else 1.0)
                for sb in range(2):
                    ib = cand[c, 1 + sb]
                    if ib < nb:
                        KG = K @ gblock(G, b, c, sb)  # (3, 6)
                        for sa in range(2):
                            ia = cand[c, 1 + sa]
                            if ia < nb:
                                block = gblock(G, b, c, sa).transpose() @ KG
                                for r6 in ti.static(range(6)):
                                    for k in ti.static(range(6)):
                                        H[b, 6 * ia + r6, 6 * ib + k] -= block[r6, k]
        jk.assemble(H, wv, jt_i, rw_i, rw_f, jd, je, lw, b, nb, nz + 8 * C, m, n1, L, dt)
        if attempt == 0:
            if sparse_lu_factor(H, sym, b, nK) == 1:
                break
        else:
            lu_factor(H, piv, sym, b, nK)
    piv[b, 2 * nK] = dense


@ti.func
def direction(cand: ti.template(), ct: ti.template(), wv: ti.template(), G: ti.template(), H: ti.template(),
              piv: ti.template(), sym: ti.template(), xr: ti.template(), el: ti.template(), jt_i: ti.template(), jt_f: ti.template(), rw_i: ti.template(), rw_f: ti.template(), jo: ti.template(), jd: ti.template(), je: ti.template(), jc: ti.template(), lw: ti.template(), b, nb, C, m, n1, L, dt, out, target,
              far, corrector):
    """Newton direction of world b into slot `out` from the factorized H: the predictor (target 0, no
    second-order term) or Mehrotra's corrector (centering target, far·Δ_aff ∘ Δ_aff from slot D_AFF).
    Each contact's unknowns are its constant part (zero G Δz) plus L (G Δz)."""
    nz = 6 * nb
    for k in range(nz):
        xr[b, k] = -wv[b, RES, k]
    for c in range(C):
        base = nz + 8 * c
        du0 = vec8(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
        if ct[b, c, CT["active"]] > 0:
            u = lget(wv, b, W, base)
            Wm, Wi = get33(el, b, c, EL["W"]), get33(el, b, c, EL["Wi"])
            rk = vec3(el[b, c, EL["rk"]], el[b, c, EL["rk"] + 1], el[b, c, EL["rk"] + 2])
            r, rk = corrected(wv, b, base, lget(wv, b, RES, base), rk, Wm, Wi, target, far, corrector)
            du0 = local_solve(0.0, 0.0, 0.0, r, rk, u[U_GAMMA], u[U_GAP], ct[b, c, CT["mu_eff"]],
                              get33(el, b, c, EL["Ab"]), get33(el, b, c, EL["Ae"]), get33(el, b, c, EL["M3inv"]))
            add_contact_columns(G, cand, xr, b, c, nb, vec3(du0[U_GAMMA] / dt, du0[U_BETA + 1], du0[U_BETA + 2]))
        lput(wv, b, out, base, du0)
    jk.rhs(xr, wv, jt_i, rw_i, rw_f, jd, lw, b, nb, nz + 8 * C, m, n1, L, target, far, corrector)
    if piv[b, 2 * (nz + m)] == 1:
        lu_solve(H, piv, sym, xr, b, nz + m)
    else:
        sparse_lu_solve(H, sym, xr, b, nz + m, 0)
    for k in range(nz):
        wv[b, out, k] = xr[b, k]
    for c in range(C):
        if ct[b, c, CT["active"]] > 0:
            base = nz + 8 * c
            yu = contact_rows(G, cand, xr, b, c, nb)
            for k in range(8):
                wv[b, out, base + k] += el[b, c, EL["L"] + 3 * k] * yu[0] + el[b, c, EL["L"] + 3 * k + 1] * yu[1] \
                    + el[b, c, EL["L"] + 3 * k + 2] * yu[2]
    jk.back_substitute(xr, wv, jt_i, rw_i, rw_f, je, lw, b, nb, nz + 8 * C, m, n1, L, out, target, far, corrector)


@ti.func
def corrected(wv: ti.template(), b, base, r, rk, Wm, Wi, target, far, corrector):
    """The complementarity and cone residuals with the centering target and, for the corrector,
    Mehrotra's second-order term from the predictor's direction (scaled like the rows)."""
    r2, rk2 = r, rk
    if corrector != 0:
        da = lget(wv, b, D_AFF, base)
        r2[R_COMP] = r[R_COMP] - target + far * da[U_GAMMA] * da[U_GAP]
        db = Wi @ vec3(da[2], da[3], da[4])
        de = Wm @ vec3(da[5], da[6], da[7])
        rk2 = rk - vec3(target, 0.0, 0.0) + far * jordan(db, de)
    return r2, rk2


@ti.func
def cone_step(x, dx):
    """Largest α with x + α dx in the second-order cone (ipm.cone_step)."""
    xl = vec3(x[0], -x[1], -x[2])
    dl = vec3(dx[0], -dx[1], -dx[2])
    a, bq, c = dl.dot(dx), 2.0 * xl.dot(dx), xl.dot(x)
    den = -bq + ti.sqrt(ti.max(bq * bq - 4.0 * a * c, 0.0))
    alpha = F(HUGE)
    if den > 0:
        alpha = 2.0 * c / ti.max(den, F(TINY))
    return alpha


@ti.func
def max_step(ct: ti.template(), wv: ti.template(), lw: ti.template(), b, nb, C, m, L, slot):
    """Largest α keeping (γ, s) ≥ 0 and β, η in their cones for the active contacts and limits of world b."""
    nz = 6 * nb
    alpha = F(HUGE)
    for c in range(C):
        if ct[b, c, CT["active"]] > 0:
            base = nz + 8 * c
            u = lget(wv, b, W, base)
            d = lget(wv, b, slot, base)
            for k in ti.static(range(2)):
                if d[k] < 0:
                    alpha = ti.min(alpha, -u[k] / d[k])
            alpha = ti.min(alpha, cone_step(vec3(u[2], u[3], u[4]), vec3(d[2], d[3], d[4])))
            alpha = ti.min(alpha, cone_step(vec3(u[5], u[6], u[7]), vec3(d[5], d[6], d[7])))
    for l in range(L):
        if lw[b, l, 0] > 0:
            base = nz + 8 * C + m + 2 * l
            for k in ti.static(range(2)):
                if wv[b, slot, base + k] < 0:
                    alpha = ti.min(alpha, -wv[b, W, base + k] / wv[b, slot, base + k])
    return alpha


@ti.func
def duality(ct: ti.template(), wv: ti.template(), lw: ti.template(), b, nb, C, m, L, alpha, slot):
    """μ = (Σ_contacts (γ s + β·η) + Σ_limits γ s) / (2 · active contacts + active limits) at w + α·(slot)."""
    nz = 6 * nb
    total, count = F(0.0), 0
    for c in range(C):
        if ct[b, c, CT["active"]] > 0:
            base = nz + 8 * c
            u = lget(wv, b, W, base) + alpha * lget(wv, b, slot, base)
            total += u[0] * u[1] + u[2] * u[5] + u[3] * u[6] + u[4] * u[7]
            count += 2
    for l in range(L):
        if lw[b, l, 0] > 0:
            base = nz + 8 * C + m + 2 * l
            gam = wv[b, W, base] + alpha * wv[b, slot, base]
            gap = wv[b, W, base + 1] + alpha * wv[b, slot, base + 1]
            total += gam * gap
            count += 1
    return total / ti.max(count, 1)


@ti.func
def omega_limit(wv: ti.template(), b, nb, dt, alpha):
    """Halve α until every |ω + α Δω| dt ≤ 1.9 (the rotation update needs |ω| dt < 2)."""
    a = alpha
    for _ in range(40):
        bad = 0
        for i in range(nb):
            _v, om = zget(wv, b, W, i)
            _d, dom = zget(wv, b, D_DIR, i)
            if (om + a * dom).norm() * dt > F(OMEGA_DT_LIMIT):
                bad = 1
        if bad == 0:
            break
        a *= 0.5
    return a


@ti.func
def ipm(cand: ti.template(), ct: ti.template(), wv: ti.template(), G: ti.template(), bw: ti.template(),
        body: ti.template(), H: ti.template(), piv: ti.template(), sym: ti.template(), xr: ti.template(), el: ti.template(), jt_i: ti.template(), jt_f: ti.template(), rw_i: ti.template(), rw_f: ti.template(), jo: ti.template(), jd: ti.template(), je: ti.template(), jc: ti.template(), lw: ti.template(),
        b, nb, C, nj, m, n1, L, dt, kappa, rtol, scaling, max_it, mean_mass):
    """Interior-point solve of world b from the point in slot W (ipm.solve). Returns (converged,
    iterations, residual, complementarity). Each piece is written once (the kernel compiles one copy)."""
    N = 6 * nb + 8 * C + m + 2 * L
    it, conv, guard = 0, 0, 0
    eq, comp = F(0.0), F(0.0)
    a_prev = F(0.0)
    while True:
        finite = evaluate(cand, ct, wv, G, bw, body, jt_i, jt_f, rw_i, rw_f, jo, jd, je, jc, lw, b, nb, C, nj, m, n1, L, dt)
        if finite == 0 and it > 0 and guard < 30:
            # a trial point with a non-finite residual halves the last step
            guard += 1
            a_prev *= 0.5
            for k in range(N):
                wv[b, W, k] = wv[b, W_PREV, k] + a_prev * wv[b, D_DIR, k]
        else:
            guard = 0
            eq, comp = measure(ct, wv, body, lw, b, nb, C, m, L, dt, kappa, mean_mass)
            if eq <= rtol and comp <= ti.max(rtol, F(CENTRAL_PATH_FLOOR)):
                conv = 1
                break
            if it >= max_it:
                break
            scaled = 1 if (scaling != 0 and not (comp < 1.0)) else 0
            assemble(cand, ct, wv, G, bw, body, H, piv, sym, el, jt_i, jt_f, rw_i, rw_f, jo, jd, je, jc, lw, b, nb, C, m, n1, L, dt, scaled)
            target, far = F(0.0), F(0.0)
            alpha = F(0.0)
            for corrector in range(2):  # predictor, then corrector: one LU for both
                out = D_DIR if corrector == 1 else D_AFF
                direction(cand, ct, wv, G, H, piv, sym, xr, el, jt_i, jt_f, rw_i, rw_f, jo, jd, je, jc, lw, b, nb, C, m, n1, L, dt, out, target, far,
                          corrector)
                amax = max_step(ct, wv, lw, b, nb, C, m, L, out)
                alpha = ti.min(F(FRACTION_TO_BOUNDARY) * amax, 1.0)
                if corrector == 0:
                    alpha = ti.min(amax, 1.0)
                    mu = duality(ct, wv, lw, b, nb, C, m, L, 0.0, D_AFF)
                    mu_aff = duality(ct, wv, lw, b, nb, C, m, L, alpha, D_AFF)
                    sigma = ti.min(ti.max(mu_aff / ti.max(mu, F(TINY)), 0.0), 1.0)
                    sigma = sigma * sigma * sigma
                    target = ti.max(sigma * mu, kappa)
                    # once the target reaches κ, plain Newton on the central path (no second-order term)
                    far = 1.0 if sigma * mu > kappa else 0.0
            ok = 1
            for k in range(N):
                if not (ti.abs(wv[b, D_DIR, k]) <= F(HUGE)):
                    ok = 0
            if ok == 0:  # a singular or overflowing system: stay put (reported as not converged)
                for k in range(N):
                    wv[b, D_DIR, k] = 0.0
            alpha = omega_limit(wv, b, nb, dt, alpha)
            for k in range(N):
                wv[b, W_PREV, k] = wv[b, W, k]
                wv[b, W, k] += alpha * wv[b, D_DIR, k]
            a_prev = alpha
            it += 1
    return conv, it, eq, comp


@ti.func
def canary(n):
    """1 when a loop of n > 1 iterations (n a kernel argument, so that no compiler unrolls it) runs to
    its end, else 0. Mesa's lavapipe (the Vulkan driver on CPUs) caps every shader invocation at 65,535
    loop iterations in all and then ends each loop early, silently; after the cap even this loop stops
    after one iteration, so a step whose work was cut short is marked incomplete instead of passing."""
    count = 0
    for _ in range(n):
        count += 1
    return 1 if count == n else 0


# ------------------------------------------------------------------------------------------------
# The kernel: steps t0 … t1 − 1 of every world
# ------------------------------------------------------------------------------------------------
@ti.kernel
def rollout(s0: arr3, st: arr4, ctrl: arr4, has_ctrl: ti.i32, tau: arr3, has_tau: ti.i32, body: arr2, cand: iarr2,
            cf: arr2, jt_i: iarr2, jt_f: arr2, rw_i: iarr2, rw_f: arr2, ct: arr3, wv: arr3, G: arr4, bw: arr3,
            H: arr3, xr: arr2, piv: iarr2, sym: iarr1, el: arr3, jo: arr3, jd: arr3, je: arr3, jc: arr3, lw: arr3, info: arr3,
            sol: arr3, flags: arr3, t0: ti.i32, t1: ti.i32, nb: ti.i32, C: ti.i32, nj: ti.i32, m: ti.i32, n1: ti.i32,
            L: ti.i32, dt: F, gx: F, gy: F, gz: F, kappa: F, rtol: F, margin: F, mean_mass: F, max_it: ti.i32,
            stop_on_failure: ti.i32, keep_solution: ti.i32, warm_first: ti.i32, canary_loop: ti.i32,
            items: ti.i32, tasks: ti.i32):
    """Advance every world b from s0 (B, bodies, 13: x, q, v, ω body frame), written to frame t0 of st
    (T+1, B, bodies, 13), to frame t1, under ctrl (T, B, bodies, 6: force N, torque N·m, world frame;
    not read when has_ctrl = 0) and tau (T, B, n1: actuation N·m or N per joint coordinate; not read when
    has_tau = 0). Per step: info[t, b] (INFO columns), flags[t, b] = (active (C), impact (C), limit active
    (L)), and with keep_solution, sol[t, b] = the solution w. A world whose step fails with
    stop_on_failure (or with a non-finite solution) stops there (info advanced = 0). canary_loop = 2:
    info cut_short = 1 marks a step whose loops the driver cut short (`canary`)."""
    g = vec3(gx, gy, gz)
    gnorm = g.norm()
    B = st.shape[1]
    oj = 6 * nb + 8 * C
    N = oj + m + 2 * L
    for item in range(items):  # worlds spread over the CPU's tasks (runner.spread)
        b = world_of(item, tasks)
        if b < B:
            for i, k in ti.ndrange(nb, 13):
                st[t0, b, i, k] = s0[b, i, k]
            warm = warm_first
            for t in range(t0, t1):
                prepare(st, ctrl, body, bw, t, b, nb, dt, g, has_ctrl)
                detect(st, t, cand, cf, ct, b, C, nb, dt, margin)
                jk.prepare(st, t, tau, has_tau, bw, wv, jt_i, jt_f, rw_i, rw_f, jo, jd, jc, lw, b, nb, nj, m, n1, L, dt,
                           margin)
                n_active = 0
                for c in range(C):
                    if ct[b, c, CT["active"]] > 0:
                        n_active += 1
                # Direct solve from the (warm) initial guess, then (step.solve_step) central-path continuation
                # from a cold start at κ_i = μ₀ 10⁻ⁱ down to κ, first with Nesterov–Todd scaling, then without.
                # One loop, so that the guess and the solve are compiled once.
                phase, k_stage, rtol_stage, scaling = 0, kappa, rtol, 1
                total, start = 0, 1
                conv, its, eq, comp = 0, 0, F(0.0), F(0.0)
                while True:
                    if start != 0:
                        initial_guess(st, body, cand, ct, wv, lw, t, b, nb, C, m, L, dt, gnorm, kappa,
                                      warm if phase == 0 else 0)
                        if phase > 0:
                            k_stage = duality(ct, wv, lw, b, nb, C, m, L, 0.0, W)
                            k_stage = ti.max(F(0.1) * k_stage, kappa) if k_stage > kappa else kappa
                            rtol_stage = rtol if k_stage <= kappa else F(1e-3)
                        start = 0
                    conv, its, eq, comp = ipm(cand, ct, wv, G, bw, body, H, piv, sym, xr, el, jt_i, jt_f, rw_i, rw_f, jo, jd,
                                              je, jc, lw, b, nb, C, nj, m, n1, L, dt, k_stage, rtol_stage, scaling, max_it,
                                              mean_mass)
                    total += its
                    last = k_stage <= kappa
                    if (phase == 0 and (conv == 1 or (n_active == 0 and L == 0))) or (phase == 2 and last) or \
                            (phase == 1 and last and conv == 1):
                        break
                    if phase == 0 or last:  # (another) continuation from a cold start
                        phase += 1
                        scaling = 1 if phase == 1 else 0
                        start = 1
                    else:
                        k_stage = ti.max(F(0.1) * k_stage, kappa)
                        rtol_stage = rtol if k_stage <= kappa else F(1e-3)
                finite = 1
                for k in range(N):
                    if not (ti.abs(wv[b, W, k]) <= F(HUGE)):
                        finite = 0
                info[t, b, 0] = total
                info[t, b, 1] = eq
                info[t, b, 2] = comp
                info[t, b, 3] = conv
                info[t, b, 5] = finite
                for c in range(C):
                    flags[t, b, c] = ct[b, c, CT["active"]]
                    flags[t, b, C + c] = ct[b, c, CT["impact"]]
                for l in range(L):
                    flags[t, b, 2 * C + l] = lw[b, l, 0]
                if keep_solution != 0:
                    for k in range(N):
                        sol[t, b, k] = wv[b, W, k]
                    for c, k in ti.ndrange(C, DECISIONS):
                        sol[t, b, N + DECISIONS * c + k] = ct[b, c, CT["dec"] + k]
                if finite == 0 or (conv == 0 and stop_on_failure != 0):
                    info[t, b, 4] = 0
                    info[t, b, 6] = 1 - canary(canary_loop)
                    break
                info[t, b, 4] = 1
                for i in range(nb):
                    x, q, v, om = body_pose(st, t, b, i)
                    v2, om2 = zget(wv, b, W, i)
                    rt2 = ti.sqrt(4.0 / (dt * dt) - om2.dot(om2))
                    ell = 0.5 * dt * vec4(rt2, om2[0], om2[1], om2[2])
                    q2 = quat_multiply(q, ell)
                    q2 = q2 / q2.norm()
                    x2 = x + dt * v2
                    for k in ti.static(range(3)):
                        st[t + 1, b, i, k] = x2[k]
                        st[t + 1, b, i, 7 + k] = v2[k]
                        st[t + 1, b, i, 10 + k] = om2[k]
                    for k in ti.static(range(4)):
                        st[t + 1, b, i, 3 + k] = q2[k]
                for c in range(C):
                    base = 6 * nb + 8 * c
                    for k in range(8):
                        wv[b, WARM, base + k] = wv[b, W, base + k]
                    wv[b, WARM_ON, base] = ct[b, c, CT["active"]]
                for k in range(oj, N):
                    wv[b, WARM, k] = wv[b, W, k]
                for l in range(L):
                    wv[b, WARM_ON, oj + m + 2 * l] = lw[b, l, 0]
                warm = 1
                info[t, b, 6] = 1 - canary(canary_loop)
