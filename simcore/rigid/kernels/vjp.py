"""The second half of a step's implicit-function-theorem gradient in Taichi kernels: the vector–Jacobian
product λᵀ ∂r/∂θ of the step equations r(w; θ) at the solution w, with respect to the start-of-step
state, the controls, the actuation and the World's parameter tables (θ), for every world.

Three kernels accumulate L_b = λ_bᵀ r(w_b; θ) with w and λ held fixed; Taichi's reverse mode (`kernel.grad`)
then gives ∂L/∂θ = λᵀ ∂r/∂θ, the terms the adjoint kernel (adjoint.py) leaves. Only the rows that depend
on θ enter L:

- `dynamics_lagrangian`: each body's dynamics rows (mass, inertia, gravity, start velocities and
  rotation, force and torque);
- `contact_lagrangian`: each active contact's gap, slip and friction-magnitude rows and its impulses on
  the dynamics rows, with the contact frame re-detected from the start-of-step state
  (contact.contact_frame, the forward's own function: at the same state it takes the same decisions);
- `joint_lagrangian`: the equality rows c(w), the coordinate rows' spring, damper and actuation impulses
  along the start-of-step rate maps D = ∂c/∂z(0)/dt, and each active limit's gap row and impulse.

The complementarity and cone rows do not depend on θ and are left out. The kernels are written for
reverse mode: every value is a local of one iteration of a parallel loop (Taichi's reverse mode
mishandles locals carried across the iterations of a non-static loop, and wants kernels made of loops
only), the only global write is the accumulation into L, and norms are floored under their square root
(contact.safe_norm). Each loop iteration evaluates one witness of one contact, or one evaluation of one
joint row, so that the detection and the joint kinematics are compiled once each; the rate maps come
from joints.rate_row_at_rest, a closed form at rest, since the reverse mode of the general Jacobian
(joints.output_parts) took more than ten minutes to compile.

Parameters reach the kernels as their float tables (body, cf, jt_f, rw_f, gravity: runner.float_tables);
their gradients go back to the World's parameters through the tables' torch construction.
"""

# No `from __future__ import annotations`: Taichi reads the functions' annotations (ti.template()).
from ...backend import ti
from . import joints as jk
from .common import F, arr2, arr3, arr4, iarr2, quat_matrix, vec3, vec4
from .contact import attachment, body_pose, contact_frame

arr1 = ti.types.ndarray(dtype=F, ndim=1)


@ti.func
def velocities(w: ti.template(), b, i):
    """Body i's end-of-step (v, ω body frame) in the solution w[b] (kernel layout)."""
    return vec3(w[b, 6 * i], w[b, 6 * i + 1], w[b, 6 * i + 2]), vec3(w[b, 6 * i + 3], w[b, 6 * i + 4], w[b, 6 * i + 5])


@ti.func
def joint_body(st: ti.template(), w: ti.template(), b, i, nb, at_solution):
    """(x, q, v, ω) of body row i of world b: start pose, and the solution's velocities (at_solution = 1) or
    zero; the world row (i = nb) at rest at the origin."""
    x, q = vec3(0.0, 0.0, 0.0), vec4(1.0, 0.0, 0.0, 0.0)
    v, om = vec3(0.0, 0.0, 0.0), vec3(0.0, 0.0, 0.0)
    if i < nb:
        x, q, v0, om0 = body_pose(st, 0, b, i)
        if at_solution != 0:
            v, om = velocities(w, b, i)
    return x, q, v, om


@ti.func
def joint_row(st: ti.template(), w: ti.template(), jt_i: ti.template(), jt_f: ti.template(), rw_f: ti.template(),
              b, r, j, nb, dt, at_solution):
    """Row r (selector rw_f[r, :7]) of joint j of world b: at_solution = 1, (its value at the solution's
    velocities, 0); at_solution = 0, (its value at rest, its rate map ∂value/∂(vp, ωp, vc, ωc) (12) at rest).
    Bodies at their start poses; the world row (index bodies) at rest at the origin."""
    xp, qp, vp, wp = joint_body(st, w, b, jt_i[j, 0], nb, at_solution)
    xc, qc, vc, wc = joint_body(st, w, b, jt_i[j, 1], nb, at_solution)
    rp, rc, q0, axis = jk.joint_constants(jt_f, j)
    sel = ti.Vector([rw_f[r, 0], rw_f[r, 1], rw_f[r, 2], rw_f[r, 3], rw_f[r, 4], rw_f[r, 5], rw_f[r, 6]], dt=F)
    val, row = F(0.0), ti.Vector([0.0] * 12, dt=F)
    if at_solution != 0:
        val = sel.dot(jk.output_values(xp, qp, vp, wp, xc, qc, vc, wc, rp, rc, q0, axis, dt))
    else:
        val, row = jk.rate_row_at_rest(sel, xp, qp, xc, qc, rp, rc, q0, axis, dt)
    return val, row


@ti.func
def impulse_work(lam: ti.template(), jt_i: ti.template(), b, j, nb, D):
    """λ_dyn · D: the work, per unit generalized impulse along rate map D (12) of joint j, against the
    multipliers of its bodies' dynamics rows."""
    acc = F(0.0)
    for side in ti.static(range(2)):
        i = jt_i[j, side]
        if i < nb:
            for k in ti.static(range(6)):
                acc += lam[b, 6 * i + k] * D[6 * side + k]
    return acc


@ti.func
def joint_rate(w: ti.template(), jt_i: ti.template(), b, j, nb, D):
    """D · z: the rate along rate map D (12) of joint j at the solution's body velocities z."""
    acc = F(0.0)
    for side in ti.static(range(2)):
        i = jt_i[j, side]
        if i < nb:
            for k in ti.static(range(6)):
                acc += D[6 * side + k] * w[b, 6 * i + k]
    return acc


@ti.kernel
def dynamics_lagrangian(st: arr4, ctrl: arr3, has_ctrl: ti.i32, grav: arr1, body: arr2, w: arr2, lam: arr2,
                        out: arr1, nb: ti.i32, dt: F):
    """out[b] += λ_bᵀ r_b over the dynamics rows' own terms (integrator.prepare / equations). st (1, B,
    bodies, 13) start state (x, q, v, ω body frame); ctrl (B, bodies, 6) force N, torque N·m world frame;
    grav (3,) m/s²; body (bodies, 12) mass, inertia; w, lam (B, N) solution and multipliers in the
    kernel's layout (solve.py)."""
    for b, i in ti.ndrange(w.shape[0], nb):
        x, q, v, om = body_pose(st, 0, b, i)
        R = quat_matrix(q)
        mass = body[i, 0]
        Jm = ti.Matrix([[body[i, 1], body[i, 2], body[i, 3]], [body[i, 4], body[i, 5], body[i, 6]],
                        [body[i, 7], body[i, 8], body[i, 9]]], dt=F)
        force, torque = vec3(0.0, 0.0, 0.0), vec3(0.0, 0.0, 0.0)
        if has_ctrl != 0:
            force = vec3(ctrl[b, i, 0], ctrl[b, i, 1], ctrl[b, i, 2])
            torque = vec3(ctrl[b, i, 3], ctrl[b, i, 4], ctrl[b, i, 5])
        v2, om2 = velocities(w, b, i)
        Jo, Jo2 = Jm @ om, Jm @ om2
        rt = ti.sqrt(4.0 / (dt * dt) - om.dot(om))
        rt2 = ti.sqrt(4.0 / (dt * dt) - om2.dot(om2))
        lin = mass * v2 - mass * v - dt * (mass * vec3(grav[0], grav[1], grav[2]) + force)
        ang = 0.5 * dt * (rt2 * Jo2 + om2.cross(Jo2)) + 0.5 * dt * (-rt * Jo + om.cross(Jo)) \
            - dt * (R.transpose() @ torque)
        lam_lin, lam_ang = velocities(lam, b, i)
        out[b] += lam_lin.dot(lin) + lam_ang.dot(ang)


@ti.kernel
def contact_lagrangian(st: arr4, cand: iarr2, cf: arr2, w: arr2, lam: arr2, out: arr1, nb: ti.i32, C: ti.i32,
                       dt: F, margin: F, kind: ti.template()):
    """out[b] += λ_bᵀ r_b over the active contacts' θ-dependent terms (solve.evaluate): the gap, slip and
    friction-magnitude rows and the impulses on the dynamics rows. One iteration per (world, candidate,
    witness): the contact frame is re-detected in each, so that one copy of the detection and of the
    witness kinematics is compiled (and differentiated). Only the candidates of pair model `kind`
    (contact.PLANE_POINT ...): one kernel per model present, because the reverse mode of all seven in one
    kernel took 251 s to compile cold on the 2-core machine."""
    for b, c, wi in ti.ndrange(w.shape[0], C, 4):  # witnesses: normal a, friction a, normal b, friction b
        if cand[c, 0] == kind:
            n, t1, t2, rn_a, rn_b, rt_a, rt_b, p0_a, p0_b, speed, offset, mu, active, dist, impact, dec = \
                contact_frame(st, 0, cand, cf, b, c, nb, dt, margin, kind)
            if active != 0:
                base = 6 * nb + 8 * c
                gamma, beta1, beta2 = w[b, base], w[b, base + 3], w[b, base + 4]
                rubs = 1.0 if mu > 0 else 0.0
                lam_n = gamma * n
                lam_t = rubs * (beta1 * t1 + beta2 * t2)
                l_gap = lam[b, base + 1]
                l_slip = (lam[b, base + 6] * t1 + lam[b, base + 7] * t2) * (rubs / dt)
                # λ_gap (s − φ) + λ_μ (β₀ − μ_eff γ) + λ_slip (η₁₂ − v_t), θ-dependent parts; φ and v_t are
                # linear in the witnesses' end positions p, so each witness adds its own share.
                acc = F(0.0)
                if wi == 0:
                    mu_eff = mu if mu > 0 else 1.0
                    acc += l_gap * offset - lam[b, base + 5] * mu_eff * gamma - l_slip.dot(p0_b - p0_a)
                side = wi // 2
                normal = wi % 2 == 0
                sign = 1.0 - 2.0 * side
                i = cand[c, 1 + side]
                r = rn_a
                impulse = lam_n
                if wi == 1:
                    r, impulse = rt_a, lam_t
                elif wi == 2:
                    r = rn_b
                elif wi == 3:
                    r, impulse = rt_b, lam_t
                p = r
                if i < nb:
                    X, q, v0, om0 = body_pose(st, 0, b, i)
                    v2, om2 = velocities(w, b, i)
                    p, Jr = attachment(X, quat_matrix(q), v2, om2, r, dt)
                    lam_lin, lam_ang = velocities(lam, b, i)
                    acc -= sign * lam_ang.dot(Jr.transpose() @ impulse) / dt
                    if normal:
                        acc -= sign * lam_lin.dot(lam_n + lam_t)
                if normal:
                    acc -= l_gap * sign * n.dot(p)
                else:
                    acc -= sign * l_slip.dot(p)
                out[b] += acc


@ti.kernel
def joint_lagrangian(st: arr4, tau: arr2, has_tau: ti.i32, jt_i: iarr2, jt_f: arr2, rw_i: iarr2, rw_f: arr2,
                     limit_on: arr2, w: arr2, lam: arr2, out: arr1, nb: ti.i32, C: ti.i32, m: ti.i32, n1: ti.i32,
                     L: ti.i32, dt: F):
    """out[b] += λ_bᵀ r_b over the joint terms (joint_equations.equations): equality rows c(w) and their
    impulses λ along the start-of-step rate maps D = ∂c/∂z(0)/dt, the coordinate rows' spring, damper and
    actuation impulses along D, each active limit's gap row and impulse (limit_on (B, L): the forward's
    active set). One iteration per (world, row, evaluation): evaluation 0 at zero velocities (D and the
    start coordinate: the impulse terms), 1 at the solution's velocities (the rows' values), so that one
    copy of the joint kinematics is compiled (and differentiated). tau (B, n1) N·m or N per coordinate."""
    for b, r, at_solution in ti.ndrange(w.shape[0], m + n1 + L, 2):
        oj = 6 * nb + 8 * C
        row, sign, bound, on = r, F(0.0), F(0.0), 1
        if r >= m + n1:  # a limit: its coordinate's row
            row = m + rw_i[r, 0]
            sign, bound = rw_f[r, 0], rw_f[r, 1]
            on = 1 if limit_on[b, r - m - n1] > 0 else 0
        j = rw_i[row, 0]
        if on != 0:
            val, D = joint_row(st, w, jt_i, jt_f, rw_f, b, row, j, nb, dt, at_solution)
            D = D / dt
            acc = F(0.0)
            if at_solution != 0:
                if r < m:  # c(w)
                    acc += lam[b, oj + r] * val
                elif r >= m + n1:  # the limit's gap row s − sign (θ(w) − bound)
                    base = oj + m + 2 * (r - m - n1)
                    acc += lam[b, base + 1] * (w[b, base + 1] - sign * (val - bound))
            else:
                f = F(0.0)
                if r < m:
                    f = w[b, oj + r]
                elif r < m + n1:
                    k = r - m
                    act = F(0.0)
                    if has_tau != 0:
                        act = tau[b, k]
                    rate = joint_rate(w, jt_i, b, j, nb, D)
                    f = dt * (-rw_f[r, 7] * (val - rw_f[r, 9]) + act) - dt * rw_f[r, 8] * rate
                else:
                    f = sign * w[b, oj + m + 2 * (r - m - n1)]
                acc -= f * impulse_work(lam, jt_i, b, j, nb, D)
            out[b] += acc
