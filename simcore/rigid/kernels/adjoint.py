"""The implicit-function-theorem backward solve of a step in a Taichi kernel: λ = (∂r/∂w)⁻ᵀ ḡ at the
step's solution w, for every world in parallel (one thread per world).

The step kernel (solve.py) never forms ∂r/∂w: its Newton map r ↦ Δw = −(∂r/∂w)⁻¹ r eliminates each
contact's eight unknowns and each joint limit's two locally and solves the reduced system H on the
velocities and joint impulses. Unscaled (no Nesterov–Todd scaling) that map is the exact inverse
Jacobian, so the transposed solve is the transpose of the same three stages, in reverse order:

    forward                                   transposed (ḡ ↦ r̄, then λ = −r̄)
    1. xr = −r_z + Σ_c P_cᵀ E M_c r_c (+ limits)    3ᵀ. x̄ = ḡ_z + Σ_c G_cᵀ L_cᵀ ḡ_c (+ limits)
    2. Δz = H⁻¹ xr                                2ᵀ. x̄ ← H⁻ᵀ x̄
    3. Δu_c = M_c r_c + L_c G_c Δz (+ limits)     1ᵀ. r̄_z = −x̄, r̄_c = M_cᵀ (ḡ_c + Eᵀ P_c x̄) (+ limits)

with G_c the contact's Jacobian rows (gap, two slips), P_c = G_c with its gap row divided by dt, E the
rows of the impulse unknowns (γ, β₁, β₂), L_c (8 × 3) the unknowns' response to G_c Δz and M_c (8 × 8)
their response to the contact's own residual rows (solve.local_solve). The step's contact detection and
Jacobian assembly are those of the forward kernel, at the start-of-step state and the solution.

Rows of λ are in the kernel's layout (solve.py: a contact's rows are γ s, s − φ, β ∘ η (3), β₀ − μ γ,
η₁₂ − v_t (2); a limit's γ s then s − g); inactive contacts and limits get λ = 0 (their placeholder rows
are decoupled from the rest of the system and from the gradient).
"""

# No `from __future__ import annotations`: Taichi reads the functions' annotations (ti.template()).
from ...backend import ti
from . import joints as jk
from .common import F, arr2, arr3, arr4, get33, iarr1, iarr2, lu_solve_transposed, sparse_lu_solve, vec3, vec8, world_of
from .contact import CT, detect
from .solve import (
    EL,
    U_BETA,
    U_GAMMA,
    W,
    add_contact_columns,
    assemble,
    canary,
    contact_rows,
    evaluate,
    local_solve,
    prepare,
)


@ti.func
def contact_response_transposed(ct: ti.template(), el: ti.template(), wv: ti.template(), b, c, base, dbar):
    """M_cᵀ d̄ (8): the transposed response of contact c's unknowns to its own residual rows, one unit
    residual at a time through solve.local_solve (unscaled: the cone rows' residual is r itself)."""
    u = vec8(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    for k in ti.static(range(8)):
        u[k] = wv[b, W, base + k]
    Ab, Ae, M3inv = get33(el, b, c, EL["Ab"]), get33(el, b, c, EL["Ae"]), get33(el, b, c, EL["M3inv"])
    out = vec8(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    for k in range(8):
        e = vec8(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
        for j in ti.static(range(8)):
            e[j] = 1.0 if j == k else 0.0
        du = local_solve(0.0, 0.0, 0.0, e, vec3(e[2], e[3], e[4]), u[U_GAMMA], u[1], ct[b, c, CT["mu_eff"]],
                         Ab, Ae, M3inv)
        val = du.dot(dbar)
        for j in ti.static(range(8)):
            if j == k:
                out[j] = val
    return out


@ti.func
def limit_geometry(rw_i: ti.template(), rw_f: ti.template(), m, n1, l):
    """(coordinate row k, joint j, sign) of limit l."""
    k = rw_i[m + n1 + l, 0]
    return k, rw_i[m + k, 0], rw_f[m + n1 + l, 0]


@ti.func
def transposed_solve(cand: ti.template(), ct: ti.template(), wv: ti.template(), G: ti.template(),
                     H: ti.template(), piv: ti.template(), sym: ti.template(), xr: ti.template(), el: ti.template(),
                     jt_i: ti.template(), rw_i: ti.template(), rw_f: ti.template(), jd: ti.template(),
                     je: ti.template(), lw: ti.template(), gbar: ti.template(), lam: ti.template(), b, nb, C, m,
                     n1, L, dt):
    """λ[b] = (∂r/∂w)⁻ᵀ ḡ[b] from the unscaled factorization of assemble (module docstring)."""
    nz = 6 * nb
    oj = nz + 8 * C
    N = oj + m + 2 * L
    for k in range(N):
        lam[b, k] = 0.0
    # 3ᵀ: the back substitution of the eliminated unknowns, transposed
    for k in range(nz):
        xr[b, k] = gbar[b, k]
    for r in range(m):
        xr[b, nz + r] = gbar[b, oj + r]
    for c in range(C):
        if ct[b, c, CT["active"]] > 0:
            base = nz + 8 * c
            yu = vec3(0.0, 0.0, 0.0)
            for k in range(8):
                for col in ti.static(range(3)):
                    yu[col] += el[b, c, EL["L"] + 3 * k + col] * gbar[b, base + k]
            add_contact_columns(G, cand, xr, b, c, nb, yu)
    for l in range(L):
        if lw[b, l, 0] > 0:
            base = oj + m + 2 * l
            g_gam, g_gap = gbar[b, base], gbar[b, base + 1]
            gam, gap = wv[b, W, base], wv[b, W, base + 1]
            k, j, sign = limit_geometry(rw_i, rw_f, m, n1, l)
            ybar = g_gap - g_gam * gam / gap      # Δs = y − r_g, Δγ = (−r_c − γ Δs) / s, y = ± E Δz
            for q in range(12):
                i = jt_i[j, q // 6]
                if i < nb:
                    xr[b, 6 * i + q % 6] += sign * je[b, m + k, q] * ybar
            lam[b, base] = -g_gam / gap
            lam[b, base + 1] = -g_gap + g_gam * gam / gap
    # 2ᵀ
    if piv[b, 2 * (nz + m)] == 1:
        lu_solve_transposed(H, piv, sym, xr, b, nz + m)
    else:
        sparse_lu_solve(H, sym, xr, b, nz + m, 1)
    # 1ᵀ: the reduced right-hand side, transposed
    for k in range(nz):
        lam[b, k] = -xr[b, k]
    for r in range(m):
        lam[b, oj + r] = -xr[b, nz + r]
    for c in range(C):
        if ct[b, c, CT["active"]] > 0:
            base = nz + 8 * c
            kv = contact_rows(G, cand, xr, b, c, nb)
            dbar = vec8(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
            for k in ti.static(range(8)):
                dbar[k] = gbar[b, base + k]
            dbar[U_GAMMA] += kv[0] / dt
            dbar[U_BETA + 1] += kv[1]
            dbar[U_BETA + 2] += kv[2]
            rbar = contact_response_transposed(ct, el, wv, b, c, base, dbar)
            for k in ti.static(range(8)):
                lam[b, base + k] = rbar[k]
    for l in range(L):
        if lw[b, l, 0] > 0:
            base = oj + m + 2 * l
            gam, gap = wv[b, W, base], wv[b, W, base + 1]
            k, j, sign = limit_geometry(rw_i, rw_f, m, n1, l)
            g0 = F(0.0)                         # Δγ₀ = (−r_c + γ r_g) / s enters xr as ± Dᵀ Δγ₀
            for q in range(12):
                i = jt_i[j, q // 6]
                if i < nb:
                    g0 += sign * jd[b, m + k, q] * xr[b, 6 * i + q % 6]
            lam[b, base] += -g0 / gap
            lam[b, base + 1] += g0 * gam / gap
    for k in range(N):  # λ = (∂r/∂w)⁻ᵀ ḡ = −r̄ (the Newton map is −(∂r/∂w)⁻¹)
        lam[b, k] = -lam[b, k]


@ti.kernel
def adjoint(s0: arr3, st: arr4, ctrl: arr4, tau: arr3, body: arr2, cand: iarr2, cf: arr2, jt_i: iarr2, jt_f: arr2,
            rw_i: iarr2, rw_f: arr2, ct: arr3, wv: arr3, G: arr4, bw: arr3, H: arr3, xr: arr2, piv: iarr2, sym: iarr1, el: arr3,
            jo: arr3, jd: arr3, je: arr3, jc: arr3, lw: arr3, sol: arr2, gbar: arr2, lam: arr2, nb: ti.i32,
            C: ti.i32, nj: ti.i32, m: ti.i32, n1: ti.i32, L: ti.i32, dt: F, margin: F, canary_loop: ti.i32,
            items: ti.i32, tasks: ti.i32):
    """λ[b] = (∂r/∂w)⁻ᵀ gbar[b] for every world b of one step: s0 (B, bodies, 13) the start-of-step state
    (x, q, v, ω body frame; copied to frame 0 of st, (1, B, bodies, 13)), sol (B, N) the step's solution
    and gbar (B, N), lam (B, N + 1) in the kernel's layout; lam[b, N] = 1 when the driver ran every loop
    to its end (solve.canary, canary_loop = 2). ctrl and tau are not read (forces, torques and actuation
    do not enter ∂r/∂w)."""
    B = st.shape[1]
    g = vec3(0.0, 0.0, 0.0)
    N = 6 * nb + 8 * C + m + 2 * L
    for item in range(items):  # worlds spread over the CPU's tasks (runner.spread)
        b = world_of(item, tasks)
        if b < B:
            for i, k in ti.ndrange(nb, 13):
                st[0, b, i, k] = s0[b, i, k]
            prepare(st, ctrl, body, bw, 0, b, nb, dt, g, 0)
            detect(st, 0, cand, cf, ct, b, C, nb, dt, margin)
            jk.prepare(st, 0, tau, 0, bw, wv, jt_i, jt_f, rw_i, rw_f, jo, jd, jc, lw, b, nb, nj, m, n1, L, dt, margin)
            for k in range(N):
                wv[b, W, k] = sol[b, k]
            evaluate(cand, ct, wv, G, bw, body, jt_i, jt_f, rw_i, rw_f, jo, jd, je, jc, lw, b, nb, C, nj, m, n1, L, dt)
            assemble(cand, ct, wv, G, bw, body, H, piv, sym, el, jt_i, jt_f, rw_i, rw_f, jo, jd, je, jc, lw, b, nb, C, m, n1,
                     L, dt, 0)
            transposed_solve(cand, ct, wv, G, H, piv, sym, xr, el, jt_i, rw_i, rw_f, jd, je, lw, gbar, lam, b, nb, C, m, n1,
                             L, dt)
            lam[b, N] = canary(canary_loop)
