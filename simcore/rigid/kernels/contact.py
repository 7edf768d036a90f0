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
from .common import F, identity3, outer, put3, quat_matrix, skew, vec3, vec4

# Columns of the contact workspace ct[b, c, :].
CT = dict(n=0, t1=3, t2=6, rn_a=9, rn_b=12, rt_a=15, rt_b=18, offset=21, mu=22, active=23, rubs=24,
          mu_eff=25, p0_a=26, p0_b=29, dist=32, speed=33, impact=36, dec=37)
DECISIONS = 10  # ct[b, c, dec:dec + DECISIONS]
CT_WIDTH = 37 + DECISIONS
# Candidate kinds (cand[c, 0]) and the float constants of each candidate (cf[c, :]).
PLANE_POINT, SPHERE_SPHERE, BALL_BOX, SEGMENT_SEGMENT, SEGMENT_FACE, BOX_FACE, EDGE_EDGE = 0, 1, 2, 3, 4, 5, 6
# Every kind: pair friction μ (10), restitution e (11). plane–point: body-frame point (0-2), radius (3),
# plane point (4-6), plane normal (7-9); sphere–sphere: radii (0, 1); segment–segment: radii (0, 1), half
# lengths (2, 3); ball–box: radius (0), ball centre on a's axis (1), box half extents (2-4); segment–face
# (slot cand[c, 3]): radius (0), half length (1), box half extents (2-4); box–box face manifold (slot
# cand[c, 3] of 24) and edge–edge: half extents of a (0-2) and b (3-5). A static box's pose: CF below.
CF = dict(box_x=12, box_q=15)
CF_WIDTH = 19
HUGE_T = 1e300  # ±∞ of the capsule–box clipping interval
NORM_FLOOR2 = 1e-300  # floor of |v|² in normalize


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
    t1 = normalize(t1)
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
def axis_pick(v, i):
    """Component i (0, 1, 2; a runtime index) of v."""
    return v[0] if i == 0 else (v[1] if i == 1 else v[2])


@ti.func
def unit(i):
    return vec3(1.0 if i == 0 else 0.0, 1.0 if i == 1 else 0.0, 1.0 if i == 2 else 0.0)


@ti.func
def sgn(x):
    """sign(x) with sign(0) = 0 (torch.sign)."""
    return 1.0 if x > 0 else (-1.0 if x < 0 else 0.0)


@ti.func
def safe_norm(v):
    """|v|, floored at 1e-150 under the square root: Taichi's reverse mode of v.norm() (or of a floored
    max(|v|, ε)) forms v/|v| = 0/0 at v = 0, even where |v| only feeds a comparison (kernels/vjp.py)."""
    return ti.sqrt(ti.max(v.dot(v), F(NORM_FLOOR2)))


@ti.func
def normalize(v):
    """v / |v| (zero for zero)."""
    return v / safe_norm(v)


@ti.func
def box_pose(st: ti.template(), t, b, cf: ti.template(), c, ib, nb):
    """(x, R, v, ω) of side b's box: a dynamic body's start-of-step state, or a static box's pose from cf."""
    x = vec3(cf[c, CF["box_x"]], cf[c, CF["box_x"] + 1], cf[c, CF["box_x"] + 2])
    q = vec4(cf[c, CF["box_q"]], cf[c, CF["box_q"] + 1], cf[c, CF["box_q"] + 2], cf[c, CF["box_q"] + 3])
    v, om = vec3(0.0, 0.0, 0.0), vec3(0.0, 0.0, 0.0)
    if ib < nb:
        x, q, v, om = body_pose(st, t, b, ib)
    return x, quat_matrix(q), v, om


@ti.func
def closest_segment_parameters(p1, q1, p2, q2):
    """(s, t) in [0, 1] of the closest points of two segments (pairs.closest_segment_parameters)."""
    eps = F(1e-12)
    d1, d2, r = q1 - p1, q2 - p2, p1 - p2
    a, e = d1.dot(d1), d2.dot(d2)
    f, c, b = d2.dot(r), d1.dot(r), d1.dot(d2)
    sa = a if ti.abs(a) > eps else 1.0
    se = e if ti.abs(e) > eps else 1.0
    denom = a * e - b * b
    sd = denom if ti.abs(denom) > eps else 1.0
    s = F(0.0)
    if denom > eps * a * e:
        s = ti.min(ti.max((b * f - c * e) / sd, 0.0), 1.0)
    t = (b * s + f) / se
    if t < 0:
        s = ti.min(ti.max(-c / sa, 0.0), 1.0)
    elif t > 1:
        s = ti.min(ti.max((b - c) / sa, 0.0), 1.0)
    t = ti.min(ti.max(t, 0.0), 1.0)
    if a <= eps:
        s = 0.0
    if e <= eps:
        t = 0.0
    elif a <= eps:
        t = ti.min(ti.max(f / se, 0.0), 1.0)
    if e <= eps and a > eps:
        s = ti.min(ti.max(-c / sa, 0.0), 1.0)
    return s, t


FACE_TOLERANCE = 0.01   # box_box.FACE_TOLERANCE
EDGE_PREFERENCE = 1e-3  # box_box.EDGE_PREFERENCE


@ti.func
def col(R, i):
    """Column i (runtime index) of a 3×3 matrix: body axis i in the world."""
    return vec3(axis_pick(vec3(R[0, 0], R[0, 1], R[0, 2]), i), axis_pick(vec3(R[1, 0], R[1, 1], R[1, 2]), i),
                axis_pick(vec3(R[2, 0], R[2, 1], R[2, 2]), i))


@ti.func
def argmax3(v):
    """(max, first index of it)."""
    i = 0
    if v[1] > v[0]:
        i = 1
    if v[2] > axis_pick(v, i):
        i = 2
    return axis_pick(v, i), i


@ti.func
def quad(q):
    """The signs (s1, s2) of face vertex q (runtime index 0..3) in cyclic order: box_box._QUAD."""
    s1 = 1.0 if (q == 0 or q == 3) else -1.0
    s2 = 1.0 if q < 2 else -1.0
    return s1, s2


@ti.func
def box_face(xA, RA, hA, xB, RB, hB, slot):
    """Slot `slot` of 24 of the face manifold of boxes A, B (box_box.face_manifold): the world points on
    A and on B, the gap, whether it is valid, the normal (from B to A) and the decision numbers (ref_b, k,
    σ, j, τ)."""
    d = xA - xB
    C_BA = RB.transpose() @ RA
    sep_b = ti.abs(RB.transpose() @ d) - hB - ti.abs(C_BA) @ hA
    sep_a = ti.abs(RA.transpose() @ d) - hA - ti.abs(C_BA).transpose() @ hB
    best_b, k_b = argmax3(sep_b)
    best_a, k_a = argmax3(sep_a)
    ref_b = best_b >= best_a - F(1e-9)
    k = k_b if ref_b else k_a
    xR, xI, RR, RI, hR, hI = xA, xB, RA, RB, hA, hB
    if ref_b:
        xR, xI, RR, RI, hR, hI = xB, xA, RB, RA, hB, hA
    c = RR.transpose() @ (xI - xR)
    M = RR.transpose() @ RI
    ek, eu, ev = unit(k), unit((k + 1) % 3), unit((k + 2) % 3)
    sigma = 1.0 if axis_pick(c, k) >= 0 else -1.0
    row_k = M.transpose() @ ek           # k-components of the incident axes
    _big, j = argmax3(ti.abs(row_k))
    tau = -sgn(sigma * axis_pick(row_k, j))
    ej, ej1, ej2 = unit(j), unit((j + 1) % 3), unit((j + 2) % 3)
    hRk, hRu, hRv = axis_pick(hR, k), axis_pick(hR, (k + 1) % 3), axis_pick(hR, (k + 2) % 3)
    tol = F(FACE_TOLERANCE)
    p_I, p_R = vec3(0.0, 0.0, 0.0), vec3(0.0, 0.0, 0.0)
    gap, ok = F(0.0), 0
    if slot < 4:  # incident vertex over the reference face
        s1, s2 = quad(slot)
        P = c + M @ (hI * (tau * ej + s1 * ej1 + s2 * ej2))
        Pk = P.dot(ek)
        p_I, p_R = P, P + (sigma * hRk - Pk) * ek
        gap = sigma * Pk - hRk
        ok = 1 if (ti.abs(P.dot(eu)) <= (1 + tol) * hRu and ti.abs(P.dot(ev)) <= (1 + tol) * hRv) else 0
    elif slot < 8:  # reference corner under the incident face
        s1, s2 = quad(slot - 4)
        Q = sigma * hRk * ek + s1 * hRu * eu + s2 * hRv * ev
        n_inc = tau * (M @ ej)
        face_inc = c + hI.dot(ej) * n_inc
        t = (face_inc - Q).dot(n_inc) / n_inc.dot(ek)
        ref_I = Q + t * ek
        l_inc = M.transpose() @ (ref_I - c)
        p_I, p_R = ref_I, Q
        gap = sigma * t
        ok = 1 if (ti.abs(l_inc.dot(ej1)) < (1 - tol) * hI.dot(ej1)
                   and ti.abs(l_inc.dot(ej2)) < (1 - tol) * hI.dot(ej2)) else 0
    else:  # crossing of incident edge e with reference side m (edge-major)
        e, m = (slot - 8) // 4, (slot - 8) % 4
        s1, s2 = quad(e)
        n1, n2 = quad((e + 1) % 4)
        P = c + M @ (hI * (tau * ej + s1 * ej1 + s2 * ej2))
        Pn = c + M @ (hI * (tau * ej + n1 * ej1 + n2 * ej2))
        axis = m % 2                      # box_box._SIDES: (0, +), (1, +), (0, −), (1, −)
        side = 1.0 if m < 2 else -1.0
        lat_a, lat_o = P.dot(eu), P.dot(ev)
        nxt_a, nxt_o = Pn.dot(eu), Pn.dot(ev)
        h_a, h_o = hRu, hRv
        if axis == 1:
            lat_a, lat_o, nxt_a, nxt_o, h_a, h_o = lat_o, lat_a, nxt_o, nxt_a, hRv, hRu
        den = nxt_a - lat_a
        safe = den if ti.abs(den) > F(1e-12) else 1.0
        s_par = (side * h_a - lat_a) / safe
        o = lat_o + s_par * (nxt_o - lat_o)
        x_I = P + s_par * (Pn - P)
        xk = x_I.dot(ek)
        p_I, p_R = x_I, x_I + (sigma * hRk - xk) * ek
        gap = sigma * xk - hRk
        ok = 1 if (ti.abs(den) > F(1e-12) and s_par > tol and s_par < 1 - tol and ti.abs(o) < (1 - tol) * h_o) else 0
    w_I, w_R = xR + RR @ p_I, xR + RR @ p_R
    pA, pB = w_R, w_I
    n = -(RR @ (sigma * ek))
    if ref_b:
        pA, pB = w_I, w_R
        n = RR @ (sigma * ek)
    dvec = ti.Vector([1.0 if ref_b else 0.0, k, sigma, j, tau, ok, 0.0, 0.0, 0.0, 0.0], dt=F)
    return pA, pB, gap, ok, n, dvec


@ti.func
def box_separation(axis, d, RA, hA, RB, hB):
    """|axis·d| − the two boxes' extents along axis (box_box._choose_edges)."""
    ext_a = ti.abs(RA.transpose() @ axis).dot(hA)
    ext_b = ti.abs(RB.transpose() @ axis).dot(hB)
    return ti.abs(axis.dot(d)) - ext_a - ext_b


@ti.func
def edge_edge(xA, RA, hA, xB, RB, hB):
    """Edge–edge contact of boxes A, B (box_box.edge_edge): body-frame witnesses on A and B, the normal
    (from B to A), validity (an edge axis separates more than every face axis by EDGE_PREFERENCE), and the
    decision numbers (i, j, sign, sgn_a (3), sgn_b (3), valid)."""
    d = xA - xB
    faces = -F(HUGE_T)
    for i in ti.static(range(3)):
        faces = ti.max(faces, box_separation(vec3(RA[0, i], RA[1, i], RA[2, i]), d, RA, hA, RB, hB))
        faces = ti.max(faces, box_separation(vec3(RB[0, i], RB[1, i], RB[2, i]), d, RA, hA, RB, hB))
    best, bi, bj = -F(HUGE_T), 0, 0
    best_axis = vec3(0.0, 0.0, 0.0)
    first = 1
    for i in ti.static(range(3)):
        for j in ti.static(range(3)):
            cr = vec3(RA[0, i], RA[1, i], RA[2, i]).cross(vec3(RB[0, j], RB[1, j], RB[2, j]))
            nrm = ti.sqrt(ti.max(cr.dot(cr), F(1e-24)))  # parallel edges: floored, see normalize
            u = cr / ti.max(nrm, F(1e-12))
            sep = -F(HUGE_T)
            if nrm > F(1e-6):
                sep = box_separation(u, d, RA, hA, RB, hB)
            if first == 1 or sep > best:
                best, bi, bj, best_axis = sep, i, j, u
                first = 0
    sign = 1.0 if best_axis.dot(d) >= 0 else -1.0
    n0 = sign * best_axis
    sa, sb = RA.transpose() @ n0, RB.transpose() @ n0
    sgn_a = vec3(-sgn(sa[0]), -sgn(sa[1]), -sgn(sa[2]))
    sgn_b = vec3(sgn(sb[0]), sgn(sb[1]), sgn(sb[2]))
    valid = 1 if best > faces + F(EDGE_PREFERENCE) else 0
    ei, ej = unit(bi), unit(bj)
    n = sign * normalize(col(RA, bi).cross(col(RB, bj)))
    base_a = (1.0 - ei) * sgn_a * hA
    base_b = (1.0 - ej) * sgn_b * hB
    lo_a, hi_a = base_a - ei * hA, base_a + ei * hA
    lo_b, hi_b = base_b - ej * hB, base_b + ej * hB
    s, t = closest_segment_parameters(xA + RA @ lo_a, xA + RA @ hi_a, xB + RB @ lo_b, xB + RB @ hi_b)
    wa = lo_a + s * (hi_a - lo_a)
    wb = lo_b + t * (hi_b - lo_b)
    dvec = ti.Vector([bi, bj, sign, sgn_a[0], sgn_a[1], sgn_a[2], sgn_b[0], sgn_b[1], sgn_b[2], valid], dt=F)
    return wa, wb, n, valid, dvec


@ti.func
def detect(st: ti.template(), t, cand: ti.template(), cf: ti.template(), ct: ti.template(), b, C, nb,
           dt, margin):
    """Evaluate every candidate of world b at the start of step t (frame t of st) into ct[b] (`contact_frame`).
    The discrete choices of the models go to ct[b, c, CT["dec"]:] (the torch reference reuses them)."""
    for c in range(C):
        n, t1, t2, rn_a, rn_b, rt_a, rt_b, p0_a, p0_b, speed, offset, mu, active, dist, impact, dec = \
            contact_frame(st, t, cand, cf, b, c, nb, dt, margin, -1)
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
        ct[b, c, CT["active"]] = 1.0 if active != 0 else 0.0
        ct[b, c, CT["rubs"]] = 1.0 if (active != 0 and mu > 0) else 0.0
        ct[b, c, CT["mu_eff"]] = mu if mu > 0 else 1.0
        ct[b, c, CT["dist"]] = dist
        ct[b, c, CT["impact"]] = 1.0 if impact != 0 else 0.0
        for k in ti.static(range(DECISIONS)):
            ct[b, c, CT["dec"] + k] = dec[k]


@ti.func
def contact_frame(st: ti.template(), t, cand: ti.template(), cf: ti.template(), b, c, nb, dt, margin,
                  only: ti.template()):
    """Candidate c of world b at the start of step t (frame t of st): the models of pairs.py and the rules
    of collision.detect (active when valid and within margin + 2 dt |speed|, Newton's impact offset).
    Returns (normal, tangents t1, t2, normal witnesses rn_a, rn_b, friction witnesses rt_a, rt_b (body
    frame; world frame on the ground and static boxes), their start positions p0_a, p0_b, the witness
    velocity, offset m, pair friction μ, active (0/1), start distance m, impact (0/1), decision numbers).
    Local values only (no workspace), so that Taichi's reverse mode differentiates it (kernels/vjp.py)."""
    kind, ia = cand[c, 0], cand[c, 1]
    ib = cand[c, 2]
    xa, qa, va, oa = body_pose(st, t, b, ia)
    Ra = quat_matrix(qa)
    zero = vec3(0.0, 0.0, 0.0)
    # side b: a dynamic body, the ground (planes), or a static box
    xb, Rb, vb, ob = zero, identity3(), zero, zero
    if kind == BALL_BOX or kind == SEGMENT_FACE or kind == BOX_FACE or kind == EDGE_EDGE:
        xb, Rb, vb, ob = box_pose(st, t, b, cf, c, ib, nb)
    elif ib < nb:
        xb4, qb, vb4, ob4 = body_pose(st, t, b, ib)
        xb, Rb, vb, ob = xb4, quat_matrix(qb), vb4, ob4
    n = zero
    rn_a, rn_b, rt_a, rt_b = zero, zero, zero, zero
    offset, dist = F(0.0), F(0.0)
    valid = 1
    dec = ti.Vector([0.0] * DECISIONS, dt=F)
    static_b = 0  # side b's witnesses are world-frame (static box) rather than body-frame
    if ti.static(only < 0 or only == PLANE_POINT):
        if kind == PLANE_POINT:
            cpt = vec3(cf[c, 0], cf[c, 1], cf[c, 2])
            rho = cf[c, 3]
            p0 = vec3(cf[c, 4], cf[c, 5], cf[c, 6])
            n = vec3(cf[c, 7], cf[c, 8], cf[c, 9])
            dist = n.dot(xa + Ra @ cpt - p0) - rho
            rt_a = cpt - rho * (Ra.transpose() @ n)
            rn_a, rn_b = cpt, p0
            offset = rho
    if ti.static(only < 0 or only == SPHERE_SPHERE):
        if kind == SPHERE_SPHERE:
            ra, rb = cf[c, 0], cf[c, 1]
            d = xa - xb
            n = normalize(d)
            rt_a = Ra.transpose() @ (-ra * n)
            rt_b = Rb.transpose() @ (rb * n)
            offset = ra + rb
            dist = safe_norm(d) - ra - rb
    if ti.static(only < 0 or only == SEGMENT_SEGMENT):
        if kind == SEGMENT_SEGMENT:
            ra, rb, ha, hb = cf[c, 0], cf[c, 1], cf[c, 2], cf[c, 3]
            za, zb = vec3(0.0, 0.0, ha), vec3(0.0, 0.0, hb)
            p1, q1 = xa - Ra @ za, xa + Ra @ za
            p2, q2 = xb - Rb @ zb, xb + Rb @ zb
            s_a, t_b = closest_segment_parameters(p1, q1, p2, q2)
            ca, cb = p1 + s_a * (q1 - p1), p2 + t_b * (q2 - p2)
            n = normalize(ca - cb)
            wa, wb = (2.0 * s_a - 1.0) * za, (2.0 * t_b - 1.0) * zb
            rt_a = wa - ra * (Ra.transpose() @ n)
            rt_b = wb + rb * (Rb.transpose() @ n)
            rn_a, rn_b = wa, wb
            offset = ra + rb
            dist = safe_norm(ca - cb) - ra - rb
    if ti.static(only < 0 or only == BALL_BOX):
        if kind == BALL_BOX:
            ra, za = cf[c, 0], cf[c, 1]
            half = vec3(cf[c, 2], cf[c, 3], cf[c, 4])
            centre_a = vec3(0.0, 0.0, za)
            centre = xa + Ra @ centre_a
            local = Rb.transpose() @ (centre - xb)
            outside = ti.abs(local[0]) > half[0] or ti.abs(local[1]) > half[1] or ti.abs(local[2]) > half[2]
            depth = half - ti.abs(local)
            kmin = 0
            if depth[1] < depth[kmin]:
                kmin = 1
            if depth[2] < axis_pick(depth, kmin):
                kmin = 2
            clamp, sign = zero, zero
            for i in ti.static(range(3)):
                clamp[i] = (1.0 if ti.abs(local[i]) > half[i] else 0.0) if outside else (1.0 if kmin == i else 0.0)
                sign[i] = 1.0 if local[i] >= 0 else -1.0
            closest = local
            for i in ti.static(range(3)):
                if clamp[i] > 0:
                    closest[i] = sign[i] * half[i]
            n_local = sign * clamp
            if outside:
                n_local = normalize(local - closest)
            n = Rb @ n_local
            rt_a = centre_a - ra * (Ra.transpose() @ n)
            dist = n.dot(centre - xb - Rb @ closest) - ra
            rn_a = centre_a
            rn_b, rt_b = closest, closest
            offset = ra
            static_b = 1 if ib >= nb else 0
            dec = ti.Vector([clamp[0], clamp[1], clamp[2], sign[0], sign[1], sign[2], 1.0 if outside else 0.0,
                             0.0, 0.0, 0.0], dt=F)
    if ti.static(only < 0 or only == BOX_FACE):
        if kind == BOX_FACE:
            hA = vec3(cf[c, 0], cf[c, 1], cf[c, 2])
            hB = vec3(cf[c, 3], cf[c, 4], cf[c, 5])
            pa, pb, gap, ok, n, dvec = box_face(xa, Ra, hA, xb, Rb, hB, cand[c, 3])
            dec = dvec
            dist = gap
            valid = ok
            rn_a = Ra.transpose() @ (pa - xa)
            rn_b = Rb.transpose() @ (pb - xb)
            rt_a, rt_b = rn_a, rn_b
            static_b = 1 if ib >= nb else 0
    if ti.static(only < 0 or only == EDGE_EDGE):
        if kind == EDGE_EDGE:
            hA = vec3(cf[c, 0], cf[c, 1], cf[c, 2])
            hB = vec3(cf[c, 3], cf[c, 4], cf[c, 5])
            wa, wb, n, ok, dvec = edge_edge(xa, Ra, hA, xb, Rb, hB)
            dec = dvec
            dist = n.dot((xa + Ra @ wa) - (xb + Rb @ wb))
            valid = ok
            rn_a, rn_b, rt_a, rt_b = wa, wb, wa, wb
            static_b = 1 if ib >= nb else 0
    if ti.static(only < 0 or only == SEGMENT_FACE):
        if kind == SEGMENT_FACE:  # slot cand[c, 3]
            ra, hl = cf[c, 0], cf[c, 1]
            half = vec3(cf[c, 2], cf[c, 3], cf[c, 4])
            cc = Rb.transpose() @ (xa - xb)
            reach = hl * (Rb.transpose() @ vec3(Ra[0, 2], Ra[1, 2], Ra[2, 2]))
            sep = ti.abs(cc) - half - ti.abs(reach)
            kf = 0
            if sep[1] > sep[kf]:
                kf = 1
            if sep[2] > axis_pick(sep, kf):
                kf = 2
            sg = 1.0 if axis_pick(cc, kf) >= 0 else -1.0
            lo, hi = zero, zero
            any_out = 0
            for i in ti.static(range(3)):
                moving = ti.abs(reach[i]) > F(1e-12)
                safe = reach[i] if moving else 1.0
                lo[i] = (-sgn(safe) * half[i] - cc[i]) / safe if moving else -F(HUGE_T)
                hi[i] = (sgn(safe) * half[i] - cc[i]) / safe if moving else F(HUGE_T)
                if i == kf:
                    lo[i] = -F(HUGE_T)
                    hi[i] = F(HUGE_T)
                elif (not moving) and ti.abs(cc[i]) > half[i]:
                    any_out = 1
            i0, i1 = 0, 0
            if lo[1] > lo[i0]:
                i0 = 1
            if lo[2] > axis_pick(lo, i0):
                i0 = 2
            if hi[1] < hi[i1]:
                i1 = 1
            if hi[2] < axis_pick(hi, i1):
                i1 = 2
            tlo, thi = axis_pick(lo, i0), axis_pick(hi, i1)
            overlap = tlo < thi and any_out == 0
            valid0 = 1.0 if (overlap and tlo > -1) else 0.0
            valid1 = 1.0 if (overlap and thi < 1) else 0.0
            bound0, bound1 = -sgn(axis_pick(reach, i0)), sgn(axis_pick(reach, i1))
            dec = ti.Vector([kf, sg, i0, i1, bound0, bound1, valid0, valid1, 0.0, 0.0], dt=F)
            slot = cand[c, 3]
            ax, bnd, vld = i0, bound0, valid0
            if slot == 1:
                ax, bnd, vld = i1, bound1, valid1
            den = axis_pick(reach, ax)
            tt = (bnd * axis_pick(half, ax) - axis_pick(cc, ax)) / (den if vld > 0 else 1.0)
            tt = ti.min(ti.max(tt, -1.0), 1.0)
            centre_b = cc + tt * reach
            ek = unit(kf)
            on_face = centre_b + (sg * axis_pick(half, kf) - axis_pick(centre_b, kf)) * ek
            n = Rb @ (sg * ek)
            dist = sg * axis_pick(centre_b, kf) - axis_pick(half, kf) - ra
            axis_a = vec3(0.0, 0.0, tt * hl)
            rt_a = axis_a - ra * (Ra.transpose() @ n)
            rn_a = axis_a
            rn_b, rt_b = on_face, on_face
            offset = ra
            valid = 1 if vld > 0 else 0
            static_b = 1 if ib >= nb else 0
    # side b's friction-witness velocity (body frame point; zero on the ground and static boxes)
    speed = (va + Ra @ oa.cross(rt_a)) - (vb + Rb @ ob.cross(rt_b))
    if static_b != 0:  # static box: witnesses in the world frame (the ground row)
        rn_b = xb + Rb @ rn_b
        rt_b = xb + Rb @ rt_b
    p0_a = xa + Ra @ rt_a
    p0_b = rt_b
    if ib < nb:
        p0_b = xb + Rb @ rt_b
    mu, e = cf[c, 10], cf[c, 11]
    active = valid != 0 and dist < margin + 2.0 * dt * safe_norm(speed)
    v_n = n.dot(speed)
    impact = (e > 0) and (dist + dt * v_n < 0) and (v_n < 0)
    if impact:
        offset += dist + e * dt * (-v_n)
    t1, t2 = tangent_basis(n)
    return n, t1, t2, rn_a, rn_b, rt_a, rt_b, p0_a, p0_b, speed, offset, mu, (1 if active else 0), dist, \
        (1 if impact else 0), dec


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
