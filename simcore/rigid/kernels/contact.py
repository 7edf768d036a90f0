"""Contact detection and the contact terms of the step equations, per world, in Taichi.

Contact data of one step live in the workspace `ct[b, c, :]` (worlds b, candidates c), columns `CT`
below: the frozen normal and tangent basis, the body-fixed witnesses (world frame on the ground), the
offset, the pair friction, whether the candidate is active, and the start-of-step distance and witness
velocity that the initial guess uses. The candidates and their rules are those of `collision.py` and
`pairs.py` (the torch reference): plane–point (box corners, sphere centres, capsule caps against a plane)
and sphere–sphere.

Witness kinematics are those of `integrator._Attachment`: a body-fixed point r of a body at start pose
(X, R) with end-of-step velocities (v, ω) ends at p = X + dt v + R R(ℓ(ω)) r, with Jacobian dt·I in v
and `jac_rot` in ω; λ·p has the curvature `curvature` in ω (the ∂²(λ·p)/∂ω² term of the Jacobian).
"""

# No `from __future__ import annotations`: Taichi reads the functions' annotations (ti.template()).
from ...backend import ti
from .common import TINY, F, identity3, outer, quat_matrix, skew, vec3, vec4

# Columns of the contact workspace ct[b, c, :].
CT = dict(n=0, t1=3, t2=6, rn_a=9, rn_b=12, rt_a=15, rt_b=18, offset=21, mu=22, active=23, rubs=24,
          mu_eff=25, p0_a=26, p0_b=29, dist=32, speed=33, impact=36)
CT_WIDTH = 37
# Candidate kinds (cand[c, 0]) and the float constants of each candidate (cf[c, :]).
PLANE_POINT, SPHERE_SPHERE = 0, 1
# plane–point: body-frame point (0-2), radius (3), plane point (4-6), plane normal (7-9), μ (10), e (11);
# sphere–sphere: radii (0, 1), μ (10), e (11).
CF_WIDTH = 12


@ti.func
def get3(a: ti.template(), b, c, k):
    return vec3(a[b, c, k], a[b, c, k + 1], a[b, c, k + 2])


@ti.func
def put3(a: ti.template(), b, c, k, v):
    a[b, c, k] = v[0]
    a[b, c, k + 1] = v[1]
    a[b, c, k + 2] = v[2]


@ti.func
def tangent_basis(n):
    """Orthonormal tangents ⟂ n, from the world axis least aligned with n (first on ties)."""
    k = 0
    if ti.abs(n[1]) < ti.abs(n[k]):
        k = 1
    if ti.abs(n[2]) < ti.abs(n[k]):
        k = 2
    helper = vec3(1.0 if k == 0 else 0.0, 1.0 if k == 1 else 0.0, 1.0 if k == 2 else 0.0)
    t1 = n.cross(helper)
    t1 = t1 / ti.max(t1.norm(), F(TINY))
    return t1, n.cross(t1)


@ti.func
def body_pose(st: ti.template(), t, b, i):
    """Start-of-step (x, q, v, ω body frame) of body i of world b at frame t of the trajectory array."""
    x = vec3(st[t, b, i, 0], st[t, b, i, 1], st[t, b, i, 2])
    q = vec4(st[t, b, i, 3], st[t, b, i, 4], st[t, b, i, 5], st[t, b, i, 6])
    v = vec3(st[t, b, i, 7], st[t, b, i, 8], st[t, b, i, 9])
    om = vec3(st[t, b, i, 10], st[t, b, i, 11], st[t, b, i, 12])
    return x, q, v, om


@ti.func
def detect(st: ti.template(), t, cand: ti.template(), cf: ti.template(), ct: ti.template(), b, C, nb,
           dt, margin):
    """Evaluate every candidate of world b at the start of step t (frame t of st) into ct[b]: the rules
    of collision.detect (active within margin + 2 dt |speed|, Newton's impact offset)."""
    for c in range(C):
        kind, ia = cand[c, 0], cand[c, 1]
        ib = cand[c, 2]
        xa, qa, va, oa = body_pose(st, t, b, ia)
        Ra = quat_matrix(qa)
        n = vec3(0.0, 0.0, 0.0)
        rn_a, rn_b, rt_a, rt_b = n, n, n, n
        offset, dist = F(0.0), F(0.0)
        speed = n
        p0_a, p0_b = n, n
        if kind == PLANE_POINT:
            cpt = vec3(cf[c, 0], cf[c, 1], cf[c, 2])
            rho = cf[c, 3]
            p0 = vec3(cf[c, 4], cf[c, 5], cf[c, 6])
            n = vec3(cf[c, 7], cf[c, 8], cf[c, 9])
            tip = xa + Ra @ cpt
            dist = n.dot(tip - p0) - rho
            rt_a = cpt - rho * (Ra.transpose() @ n)
            rn_a, rn_b = cpt, p0
            offset = rho
            speed = va + Ra @ oa.cross(rt_a)
            p0_a = xa + Ra @ rt_a
        else:  # SPHERE_SPHERE
            xb, qb, vb, ob = body_pose(st, t, b, ib)
            Rb = quat_matrix(qb)
            ra, rb = cf[c, 0], cf[c, 1]
            d = xa - xb
            n = d / ti.max(d.norm(), F(TINY))
            rt_a = Ra.transpose() @ (-ra * n)
            rt_b = Rb.transpose() @ (rb * n)
            offset = ra + rb
            dist = d.norm() - ra - rb
            speed = (va + Ra @ oa.cross(rt_a)) - (vb + Rb @ ob.cross(rt_b))
            p0_a = xa + Ra @ rt_a
            p0_b = xb + Rb @ rt_b
        mu, e = cf[c, 10], cf[c, 11]
        active = dist < margin + 2.0 * dt * speed.norm()
        v_n = n.dot(speed)
        impact = (e > 0) and (dist + dt * v_n < 0) and (v_n < 0)
        if impact:
            offset += dist + e * dt * (-v_n)
        t1, t2 = tangent_basis(n)
        put3(ct, b, c, CT["n"], n)
        put3(ct, b, c, CT["t1"], t1)
        put3(ct, b, c, CT["t2"], t2)
        put3(ct, b, c, CT["rn_a"], rn_a)
        put3(ct, b, c, CT["rn_b"], rn_b)
        put3(ct, b, c, CT["rt_a"], rt_a)
        put3(ct, b, c, CT["rt_b"], rt_b)
        put3(ct, b, c, CT["p0_a"], p0_a)
        put3(ct, b, c, CT["p0_b"], p0_b)
        put3(ct, b, c, CT["speed"], speed)
        ct[b, c, CT["offset"]] = offset
        ct[b, c, CT["mu"]] = mu
        ct[b, c, CT["active"]] = 1.0 if active else 0.0
        ct[b, c, CT["rubs"]] = 1.0 if (active and mu > 0) else 0.0
        ct[b, c, CT["mu_eff"]] = mu if mu > 0 else 1.0
        ct[b, c, CT["dist"]] = dist
        ct[b, c, CT["impact"]] = 1.0 if impact else 0.0


@ti.func
def attachment(X, R, v, om, r, dt):
    """End-of-step position p (3) of body-fixed point r and ∂p/∂ω (3, 3); ∂p/∂v = dt I."""
    rt = ti.sqrt(4.0 / (dt * dt) - om.dot(om))
    w = 0.5 * dt * rt
    u = 0.5 * dt * om
    rotated = (w * w - u.dot(u)) * r + 2.0 * u.dot(r) * u + 2.0 * w * u.cross(r)
    p = X + dt * v + R @ rotated
    d_w = 2.0 * (w * r + u.cross(r))
    d_u = 2.0 * (u.dot(r) * identity3() + outer(u, r) - outer(r, u) - w * skew(r))
    # ∂ℓ/∂ω = dt/2 [−ωᵀ/root; I]
    D = 0.5 * dt * (outer(d_w, -om / rt) + d_u)
    return p, R @ D


@ti.func
def curvature(R, r, om, lam, dt):
    """(1/dt) ∂²(λ·p)/∂ω² (3, 3) of body-fixed point r under world impulse λ (integrator._Attachment)."""
    rt = ti.sqrt(4.0 / (dt * dt) - om.dot(om))
    ell = 0.5 * dt * vec4(rt, om[0], om[1], om[2])
    lam_b = R.transpose() @ lam
    lr = lam_b.dot(r)
    rxl = r.cross(lam_b)
    Qvv = outer(r, lam_b) + outer(lam_b, r) - lr * identity3()
    # L = ∂ℓ/∂ω (4, 3): row 0 = −dt/2 ωᵀ/root, rows 1-3 = dt/2 I. Lᵀ Q L in blocks:
    l0 = -0.5 * dt * om / rt
    h = 0.25 * dt * dt * Qvv + 0.5 * dt * (outer(rxl, l0) + outer(l0, rxl)) + lr * outer(l0, l0)
    q_ell0 = lr * ell[0] + rxl.dot(vec3(ell[1], ell[2], ell[3]))
    d2_ell0 = 0.5 * dt * (-identity3() / rt - outer(om, om) / (rt * rt * rt))
    return (2.0 * h + 2.0 * q_ell0 * d2_ell0) / dt


@ti.func
def tangent_rows(ct: ti.template(), b, c):
    t1 = get3(ct, b, c, CT["t1"])
    t2 = get3(ct, b, c, CT["t2"])
    return t1, t2

