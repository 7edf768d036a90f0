"""Contact detection: signed distances, contact frames and body-fixed witness points for one step.

Every pair of shapes that can touch yields a fixed list of *candidates* (a box corner against a plane, a
sphere against a box, ...), decided once when the World is built. Each step, `detect` evaluates every
candidate at the start-of-step configuration q_k and returns, per candidate:

- the contact normal n (world, from side b to side a) and tangent basis T, held fixed during the step;
- body-fixed witness points for the normal (rn_a, rn_b) and for friction (rt_a, rt_b), in each body's
  frame (world frame for static shapes, which all map to the "ground" row `bodies`);
- an offset, so that the signed distance at the end of the step is
  φ(q_{k+1}) = n·(p_a(rn_a) − p_b(rn_b)) − offset, with p(r) = x + R r the witness at q_{k+1};
- the pair friction μ = μ_a · μ_b (product rule, as in Bullet: a shape with friction 1 leaves the other's
  coefficient unchanged; body friction defaults to 1, planes and static boxes to 0.5);
- `active`: whether the candidate is within reach this step (distance below a margin that grows with the
  witness speed) and geometrically valid (a box corner above the face it was assigned to).

Freezing the frame and witnesses over one step makes φ and the tangential slip smooth functions of the
end-of-step velocities, with closed-form derivatives; the discrete choices (which face, which coordinates
of a closest point are clamped) are returned as `decisions` so the backward pass reuses them.
Supported pairs: plane–{sphere, box, capsule}; sphere–sphere; sphere–box; box–box as the contact polygon
of a reference and an incident face (vertices, reference corners and edge crossings, up to 8 points; see
`_box_box`) plus one edge–edge contact when an edge cross product is the separating axis of least
penetration; capsule–{capsule, sphere} (closest points of the axis segments); capsule–box (the two end
caps against the box, plus the ends of the axis clipped to the box face below it, `_segment_face`).
Boxes may be static in every pair.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from . import quaternion as quat

DTYPE = torch.float64
FACE_TOLERANCE = 0.01  # a corner counts as over a face if within 1 % of the half extent beyond its edge


@dataclass
class Candidates:
    """Structural contact candidates of a World (integer/selector arrays; no state).

    References index a pose table: rows 0..bodies−1 are dynamic bodies, bodies..bodies+static_boxes−1
    static boxes. Planes index the plane table.
    """
    bodies: int
    # plane–point: plane index, body ref, point selector (3, 3) and radius selector (3,) on size_vector
    pp_plane: torch.Tensor
    pp_body: torch.Tensor
    pp_point: torch.Tensor
    pp_radius: torch.Tensor
    # sphere–sphere
    ss_a: torch.Tensor
    ss_b: torch.Tensor
    # sphere (a) – box (b)
    sb_a: torch.Tensor
    sb_b: torch.Tensor
    sb_end: torch.Tensor  # (·,) position of the ball centre on a's axis in half lengths: 0 sphere, ±1 cap
    # box–box face manifold: one entry per box pair, MANIFOLD_SLOTS candidates each (see _box_box)
    bb_a: torch.Tensor
    bb_b: torch.Tensor
    # capsule–capsule and capsule–sphere: closest points of two segments (a sphere is a segment of
    # zero length)
    sg_a: torch.Tensor
    sg_b: torch.Tensor
    # box–box edge–edge: one candidate per box pair, active when an edge cross product is the axis
    # of least penetration (separating-axis test over all 15 axes)
    ee_a: torch.Tensor
    ee_b: torch.Tensor
    # capsule (a) – box (b): the capsule axis clipped to the box face below it, two candidates per pair
    # (the ends of the clipped piece; the capsule's own ends are the sb end caps)
    cb_a: torch.Tensor
    cb_b: torch.Tensor

    @property
    def count(self) -> int:
        return (len(self.pp_plane) + len(self.ss_a) + len(self.sb_a) + MANIFOLD_SLOTS * len(self.bb_a)
                + len(self.sg_a) + len(self.ee_a) + 2 * len(self.cb_a))

    def pairs(self):
        """(kind, ref a, ref b) per candidate, for messages."""
        out = [("plane", int(b), -1 - int(p)) for p, b in zip(self.pp_plane, self.pp_body)]
        out += [("sphere-sphere", int(a), int(b)) for a, b in zip(self.ss_a, self.ss_b)]
        out += [("ball-box", int(a), int(b)) for a, b in zip(self.sb_a, self.sb_b)]
        out += [(kind, int(a), int(b)) for a, b in zip(self.bb_a, self.bb_b) for kind in MANIFOLD_KINDS]
        out += [("segment-segment", int(a), int(b)) for a, b in zip(self.sg_a, self.sg_b)]
        out += [("edge-edge", int(a), int(b)) for a, b in zip(self.ee_a, self.ee_b)]
        out += [("segment-face", int(a), int(b)) for a, b in zip(self.cb_a, self.cb_b) for _ in range(2)]
        return out


CORNERS = torch.tensor([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], dtype=DTYPE)


def build_candidates(dynamic, static_boxes, planes) -> Candidates:
    """All candidates between the given shapes (lists of Body / Box(static) / Plane, in World order)."""
    nb = len(dynamic)
    refs = list(enumerate(dynamic)) + [(nb + i, s) for i, s in enumerate(static_boxes)]
    pp_plane, pp_body, pp_point, pp_radius = [], [], [], []
    zero3, e0 = torch.zeros(3, 3, dtype=DTYPE), torch.tensor([1.0, 0.0, 0.0], dtype=DTYPE)
    for pi, _ in enumerate(planes):
        for j, body in enumerate(dynamic):
            if body.kind == "box":
                points = [(torch.diag(c), torch.zeros(3, dtype=DTYPE)) for c in CORNERS]
            elif body.kind == "sphere":
                points = [(zero3, e0)]
            else:  # capsule end caps at (0, 0, ±half length)
                points = []
                for s in (-1.0, 1.0):
                    sel = torch.zeros(3, 3, dtype=DTYPE)
                    sel[2, 1] = s
                    points.append((sel, e0))
            for sel, rad in points:
                pp_plane.append(pi), pp_body.append(j), pp_point.append(sel), pp_radius.append(rad)
    ss_a, ss_b, sb_a, sb_b, sb_end, bb_a, bb_b, sg_a, sg_b, ee_a, ee_b, cb_a, cb_b = ([] for _ in range(13))
    for ia, (ra, a) in enumerate(refs):
        for rb, b in refs[ia + 1:]:
            if a.static and b.static:
                continue
            kinds = (a.kind, b.kind)
            if kinds == ("sphere", "sphere"):
                ss_a.append(ra), ss_b.append(rb)
            elif kinds == ("sphere", "box"):
                sb_a.append(ra), sb_b.append(rb), sb_end.append(0.0)
            elif kinds == ("box", "sphere"):
                sb_a.append(rb), sb_b.append(ra), sb_end.append(0.0)
            elif set(kinds) == {"capsule", "box"}:
                # The two end caps against the box (enough for a capsule lying on or hitting a face).
                cap, box = (ra, rb) if a.kind == "capsule" else (rb, ra)
                for end in (-1.0, 1.0):
                    sb_a.append(cap), sb_b.append(box), sb_end.append(end)
                cb_a.append(cap), cb_b.append(box)
            elif kinds == ("box", "box"):
                bb_a.append(ra), bb_b.append(rb)
                ee_a.append(ra), ee_b.append(rb)
            elif set(kinds) <= {"capsule", "sphere"}:
                sg_a.append(ra), sg_b.append(rb)
    L = lambda xs: torch.tensor(xs, dtype=torch.long)  # noqa: E731
    S = lambda xs, shape: torch.stack(xs) if xs else torch.zeros((0,) + shape, dtype=DTYPE)  # noqa: E731
    return Candidates(nb, L(pp_plane), L(pp_body), S(pp_point, (3, 3)), S(pp_radius, (3,)), L(ss_a), L(ss_b),
                      L(sb_a), L(sb_b), torch.tensor(sb_end, dtype=DTYPE), L(bb_a), L(bb_b),
                      L(sg_a), L(sg_b), L(ee_a), L(ee_b), L(cb_a), L(cb_b))


@dataclass
class Contacts:
    """Per-candidate contact data for one step. Leading dims (worlds, candidates)."""
    body_a: torch.Tensor   # (C,) long: body row of side a; `bodies` means ground/static
    body_b: torch.Tensor   # (C,)
    normal: torch.Tensor   # (B, C, 3) world, from b to a
    tangent: torch.Tensor  # (B, C, 2, 3) world, orthonormal rows ⟂ normal
    rn_a: torch.Tensor     # (B, C, 3) m, body frame of a (world if static)
    rn_b: torch.Tensor
    rt_a: torch.Tensor
    rt_b: torch.Tensor
    offset: torch.Tensor   # (B, C) m
    friction: torch.Tensor  # (B, C)
    active: torch.Tensor   # (B, C) bool
    distance: torch.Tensor  # (B, C) m, φ at the start of the step
    velocity: torch.Tensor  # (B, C, 3) m/s, relative velocity of the friction witnesses at the start

    def select(self, idx: torch.Tensor) -> "Contacts":
        """Candidates idx (long) only."""
        f = {}
        for name in self.__dataclass_fields__:
            t = getattr(self, name)
            f[name] = t[idx] if name in ("body_a", "body_b") else t[:, idx]
        return Contacts(**f)


def tangent_basis(normal: torch.Tensor) -> torch.Tensor:
    """Orthonormal tangent rows (…, 2, 3) for unit normals (…, 3), from the world axis least aligned."""
    axes = torch.eye(3, dtype=normal.dtype)
    helper = axes[normal.detach().abs().argmin(-1)]
    t1 = torch.linalg.cross(normal, helper, dim=-1)
    t1 = t1 / t1.norm(dim=-1, keepdim=True)
    t2 = torch.linalg.cross(normal, t1, dim=-1)
    return torch.stack([t1, t2], dim=-2)


def _normalize(v):
    return v / v.norm(dim=-1, keepdim=True).clamp_min(1e-300)


def detect(cand: Candidates, poses, sizes, frictions, restitutions, planes, dt: float, margin: float,
           decisions: dict | None = None):
    """Evaluate all candidates at the start of a step.

    poses: (x (B, P, 3) m, R (B, P, 3, 3), v (B, P, 3) m/s, omega_body (B, P, 3) rad/s) for the pose table
    (dynamic bodies then static boxes); sizes: (P, 3) m size vectors; frictions, restitutions: (P,);
    planes: dict with point (Np, 3), normal (Np, 3), friction (Np,), restitution (Np,).
    Returns (Contacts, decisions).
    """
    x, R, v, om = poses
    B, nb = x.shape[0], cand.bodies
    fresh = decisions is None
    decisions = {} if fresh else decisions
    parts = []

    def body_row(ref):
        return torch.where(ref < nb, ref, torch.full_like(ref, nb))

    def witness(ref, p_local):
        # Static shapes are part of the ground body: their witnesses are stored in world coordinates.
        is_static = (ref >= nb)[None, :, None]
        world = x[:, ref] + (R[:, ref] @ p_local[..., None])[..., 0]
        return torch.where(is_static, world, p_local)

    def point_velocity(ref, p_local):
        return v[:, ref] + (R[:, ref] @ torch.linalg.cross(om[:, ref], p_local, dim=-1)[..., None])[..., 0]

    def body_frame(ref, vec_world):
        return (R[:, ref].transpose(-1, -2) @ vec_world[..., None])[..., 0]

    # plane – point (box corners, sphere centres, capsule cap centres)
    if len(cand.pp_plane):
        j, pi = cand.pp_body, cand.pp_plane
        c = (cand.pp_point @ sizes[j][..., None])[..., 0].expand(B, -1, -1)
        rho = (cand.pp_radius * sizes[j]).sum(-1).expand(B, -1)
        n = planes["normal"][pi].expand(B, -1, -1)
        p0 = planes["point"][pi].expand(B, -1, -1)
        tip = x[:, j] + (R[:, j] @ c[..., None])[..., 0]
        dist = (n * (tip - p0)).sum(-1) - rho
        rt = c - rho[..., None] * body_frame(j, n)
        parts.append(dict(ia=j, ib=torch.full_like(j, nb), n=n, rn_a=c, rn_b=p0, rt_a=rt,
                          rt_b=torch.zeros_like(rt), offset=rho, dist=dist, speed=point_velocity(j, rt),
                          mu=frictions[j] * planes["friction"][pi],
                          e=torch.maximum(restitutions[j], planes["restitution"][pi]),
                          valid=torch.ones_like(dist, dtype=bool)))
    # sphere – sphere
    if len(cand.ss_a):
        a, b = cand.ss_a, cand.ss_b
        ra, rb = sizes[a, 0].expand(B, -1), sizes[b, 0].expand(B, -1)
        d = x[:, a] - x[:, b]
        n = _normalize(d)
        z = torch.zeros_like(d)
        rta, rtb = body_frame(a, -ra[..., None] * n), body_frame(b, rb[..., None] * n)
        parts.append(dict(ia=a, ib=b, n=n, rn_a=z, rn_b=z, rt_a=rta, rt_b=rtb, offset=ra + rb,
                          dist=d.norm(dim=-1) - ra - rb, speed=point_velocity(a, rta) - point_velocity(b, rtb),
                          mu=frictions[a] * frictions[b], e=torch.maximum(restitutions[a], restitutions[b]),
                          valid=torch.ones_like(ra, dtype=bool)))
    # ball (sphere, or capsule end cap) of a – box b: closest point of the box to the ball centre
    if len(cand.sb_a):
        a, b = cand.sb_a, cand.sb_b
        ra, half = sizes[a, 0].expand(B, -1), sizes[b].expand(B, -1, -1)
        centre_a = torch.zeros(len(a), 3, dtype=x.dtype)
        centre_a[:, 2] = cand.sb_end * sizes[a, 1]        # body frame of a
        centre_a = centre_a.expand(B, -1, -1)
        centre = x[:, a] + (R[:, a] @ centre_a[..., None])[..., 0]
        local = body_frame(b, centre - x[:, b])
        if fresh:
            outside = (local.abs() > half).any(-1)
            depth = half - local.abs()
            face = torch.nn.functional.one_hot(depth.argmin(-1), 3).bool()
            clamp = torch.where(outside[..., None], local.abs() > half, face)
            decisions["sb_clamp"] = clamp.detach()
            decisions["sb_sign"] = torch.where(local >= 0, 1.0, -1.0).detach()
            decisions["sb_outside"] = outside.detach()
        clamp, sign, outside = decisions["sb_clamp"], decisions["sb_sign"], decisions["sb_outside"]
        closest = torch.where(clamp, sign * half, local)
        n_local = torch.where(outside[..., None], _normalize(local - closest), sign * clamp.to(DTYPE))
        n = (R[:, b] @ n_local[..., None])[..., 0]
        rta = centre_a - ra[..., None] * body_frame(a, n)
        dist = (n * (centre - x[:, b] - (R[:, b] @ closest[..., None])[..., 0])).sum(-1) - ra
        parts.append(dict(ia=a, ib=body_row(b), n=n, rn_a=centre_a, rn_b=witness(b, closest),
                          rt_a=rta, rt_b=witness(b, closest), offset=ra, dist=dist,
                          speed=point_velocity(a, rta) - point_velocity(b, closest),
                          mu=frictions[a] * frictions[b], e=torch.maximum(restitutions[a], restitutions[b]),
                          valid=torch.ones_like(ra, dtype=bool)))
    # box–box: the contact polygon of the reference face and the incident face (SAT)
    if len(cand.bb_a):
        parts.append(_box_box(cand, x, R, v, om, sizes, frictions, restitutions, decisions, fresh, witness,
                              body_row))
    # capsule–capsule, capsule–sphere: closest points of the axis segments, then a sphere–sphere contact
    if len(cand.sg_a):
        a, b = cand.sg_a, cand.sg_b
        ra, rb = sizes[a, 0].expand(B, -1), sizes[b, 0].expand(B, -1)
        axis = torch.tensor([0.0, 0.0, 1.0], dtype=x.dtype)
        ha = sizes[a, 1][None, :, None] * axis
        hb = sizes[b, 1][None, :, None] * axis
        p1, q1 = x[:, a] - _rot(R[:, a], ha), x[:, a] + _rot(R[:, a], ha)
        p2, q2 = x[:, b] - _rot(R[:, b], hb), x[:, b] + _rot(R[:, b], hb)
        s_a, t_b = closest_segment_parameters(p1, q1, p2, q2)
        ca, cb = p1 + s_a[..., None] * (q1 - p1), p2 + t_b[..., None] * (q2 - p2)
        n = _normalize(ca - cb)
        wa = (2 * s_a - 1)[..., None] * ha          # body-frame points on the axes
        wb = (2 * t_b - 1)[..., None] * hb
        rta, rtb = wa - ra[..., None] * body_frame(a, n), wb + rb[..., None] * body_frame(b, n)
        parts.append(dict(ia=a, ib=b, n=n, rn_a=wa, rn_b=wb, rt_a=rta, rt_b=rtb, offset=ra + rb,
                          dist=(ca - cb).norm(dim=-1) - ra - rb,
                          speed=point_velocity(a, rta) - point_velocity(b, rtb),
                          mu=frictions[a] * frictions[b], e=torch.maximum(restitutions[a], restitutions[b]),
                          valid=torch.ones_like(ra, dtype=bool)))
    if len(cand.ee_a):
        parts.append(_edge_edge(cand, x, R, sizes, frictions, restitutions, decisions, fresh, witness, body_row,
                                point_velocity))
    if len(cand.cb_a):
        parts.append(_segment_face(cand, x, R, sizes, frictions, restitutions, decisions, fresh, witness,
                                   body_row, body_frame, point_velocity))
    if not parts:
        e3 = torch.zeros(B, 0, 3, dtype=x.dtype)
        e = torch.zeros(B, 0, dtype=x.dtype)
        empty = torch.zeros(0, dtype=torch.long)
        decisions.setdefault("active", torch.zeros(B, 0, dtype=torch.bool))
        decisions.setdefault("impact", torch.zeros(B, 0, dtype=torch.bool))
        return Contacts(empty, empty, e3, torch.zeros(B, 0, 2, 3, dtype=x.dtype), e3, e3, e3, e3, e, e,
                        decisions["active"], e, e3), decisions
    cat = lambda k, d=1: torch.cat([p[k] for p in parts], dim=d)  # noqa: E731
    dist, speed = cat("dist"), cat("speed")
    reach = margin + 2.0 * dt * speed.detach().norm(dim=-1)
    if fresh:
        decisions["active"] = (cat("valid") & (dist.detach() < reach)).detach()
    n = cat("n")
    mu = torch.cat([p["mu"].expand(B, -1) for p in parts], dim=1)
    # Newton's impact law, for pairs with restitution e > 0 whose contact closes during this step
    # (φ_k + dt v_n < 0): the step must end at least φ_k + e·dt·|v_n| apart, i.e. the contact stops at
    # its start-of-step gap and leaves with normal speed ≥ e|v_n|.
    e = torch.cat([p["e"].expand(B, -1) for p in parts], dim=1)
    v_n = (n * speed).sum(-1)
    if fresh:
        decisions["impact"] = ((e > 0) & (dist + dt * v_n < 0) & (v_n < 0)).detach()
    bounce = dist + e * dt * (-v_n)
    offset = cat("offset") + torch.where(decisions["impact"], bounce, torch.zeros_like(bounce))
    contacts = Contacts(body_a=cat("ia", 0), body_b=cat("ib", 0), normal=n, tangent=tangent_basis(n),
                        rn_a=cat("rn_a"), rn_b=cat("rn_b"), rt_a=cat("rt_a"), rt_b=cat("rt_b"),
                        offset=offset, friction=mu,
                        active=decisions["active"], distance=dist, velocity=speed)
    return contacts, decisions


# Box–box manifold slots per pair: 4 vertices of the incident face over the reference face, 4 corners of
# the reference face under the incident face, 16 crossings of an incident edge with a reference side.
MANIFOLD_KINDS = ("vertex-face",) * 8 + ("edge-crossing",) * 16
MANIFOLD_SLOTS = len(MANIFOLD_KINDS)
# Face vertices in cyclic order (signs on the two lateral axes) and the sides of a rectangle
# (lateral axis 0/1, sign).
_QUAD = torch.tensor([[1.0, 1.0], [-1.0, 1.0], [-1.0, -1.0], [1.0, -1.0]], dtype=DTYPE)
_SIDES = ((0, 1.0), (1, 1.0), (0, -1.0), (1, -1.0))


def _coord(p, e):
    """Component of p (…, 3) along the one-hot axis e (…, 3) (broadcast)."""
    return (p * e).sum(-1)


def _box_box(cand, x, R, v, om, sizes, frictions, restitutions, decisions, fresh, witness, body_row):
    """Contact manifold of box pairs (Ericson §5.2.1 separating axes; the clipping of Box2D / ODE dBoxBox).

    The reference face is the face, among the six face normals of both boxes, that separates the boxes most
    (SAT at the start of the step); the incident face is the face of the other box most anti-parallel to
    it. The contacts are the vertices of the overlap of the two faces seen along the reference normal:
    incident vertices over the reference face, reference corners under the incident face, and the
    crossings of incident edges with the reference face's sides (a box turned 45° on another gets eight).
    Each has the reference normal, a witness on each box (the point and its projection onto the other
    face) and the gap along the normal. Vertices within FACE_TOLERANCE of a side count as over the face;
    corners and crossings must be inside by that margin, so coincident points are not doubled (an aligned
    stack has four contacts per pair, not eight). Discrete choices are kept in `decisions`."""
    a, b = cand.bb_a, cand.bb_b
    B, K = x.shape[0], len(a)
    xA, xB, RA, RB = x[:, a], x[:, b], R[:, a], R[:, b]
    hA, hB = sizes[a].expand(B, K, 3), sizes[b].expand(B, K, 3)
    eye = torch.eye(3, dtype=x.dtype)
    if fresh:
        d = xA - xB
        C_BA = RB.transpose(-1, -2) @ RA                 # [k, i] = b_k · a_i
        sep_b = _rot(RB.transpose(-1, -2), d).abs() - hB - _rot(C_BA.abs(), hA)
        sep_a = _rot(RA.transpose(-1, -2), d).abs() - hA - _rot(C_BA.abs().transpose(-1, -2), hB)
        best_b, k_b = sep_b.max(-1)
        best_a, k_a = sep_a.max(-1)
        decisions["bb_ref_b"] = (best_b >= best_a - 1e-9).detach()
        decisions["bb_k"] = torch.where(decisions["bb_ref_b"], k_b, k_a)
    ref_b = decisions["bb_ref_b"]
    pick = lambda t_b, t_a: torch.where(ref_b.reshape(ref_b.shape + (1,) * (t_b.dim() - 2)), t_b, t_a)  # noqa: E731
    xR, xI, RR, RI = pick(xB, xA), pick(xA, xB), pick(RB, RA), pick(RA, RB)
    hR, hI = pick(hB, hA), pick(hA, hB)
    c = _rot(RR.transpose(-1, -2), xI - xR)              # incident centre, reference frame
    M = RR.transpose(-1, -2) @ RI                        # incident axes (columns), reference frame
    k = decisions["bb_k"]
    ek, eu, ev = eye[k], eye[(k + 1) % 3], eye[(k + 2) % 3]
    if fresh:
        decisions["bb_sign"] = torch.where(_coord(c, ek) >= 0, 1.0, -1.0).detach()
        row_k = (ek[..., :, None] * M).sum(-2)           # k-components of the incident axes
        decisions["bb_j"] = row_k.abs().argmax(-1)
        decisions["bb_tau"] = -torch.sign(decisions["bb_sign"] * row_k.gather(-1, decisions["bb_j"][..., None])[..., 0])
    sigma, j, tau = decisions["bb_sign"], decisions["bb_j"], decisions["bb_tau"]
    ej, ej1, ej2 = eye[j], eye[(j + 1) % 3], eye[(j + 2) % 3]
    hRk, hRu, hRv = _coord(hR, ek), _coord(hR, eu), _coord(hR, ev)
    # incident face vertices (B, K, 4, 3), reference frame
    s1, s2 = _QUAD[:, 0, None], _QUAD[:, 1, None]
    v_loc = hI[..., None, :] * (tau[..., None, None] * ej[..., None, :] + s1 * ej1[..., None, :]
                                + s2 * ej2[..., None, :])
    P = c[..., None, :] + (M[..., None, :, :] @ v_loc[..., None])[..., 0]
    ek4 = ek[..., None, :]
    Pk, Pu, Pv = _coord(P, ek4), _coord(P, eu[..., None, :]), _coord(P, ev[..., None, :])
    sig, hk = sigma[..., None], hRk[..., None]
    onto_ref = lambda p, pk: p + (sig * hk - pk)[..., None] * ek4  # noqa: E731
    tol = FACE_TOLERANCE
    # 1. incident vertices over the reference face
    inc_I, inc_R = P, onto_ref(P, Pk)
    inc_gap = sig * Pk - hk
    inc_ok = (Pu.abs() <= (1 + tol) * hRu[..., None]) & (Pv.abs() <= (1 + tol) * hRv[..., None])
    # 2. reference corners under the incident face, projected along the normal onto its plane
    Q = sig[..., None] * hk[..., None] * ek4 + s1 * hRu[..., None, None] * eu[..., None, :] \
        + s2 * hRv[..., None, None] * ev[..., None, :]
    n_inc = tau[..., None] * (M @ ej[..., None])[..., 0]          # incident face normal, reference frame
    face_inc = c + _coord(hI, ej)[..., None] * n_inc
    t = ((face_inc[..., None, :] - Q) * n_inc[..., None, :]).sum(-1) / _coord(n_inc, ek)[..., None]
    ref_I, ref_R = Q + t[..., None] * ek4, Q
    ref_gap = sig * t
    l_inc = (M.transpose(-1, -2)[..., None, :, :] @ (ref_I - c[..., None, :])[..., None])[..., 0]
    ref_ok = (_coord(l_inc, ej1[..., None, :]).abs() < (1 - tol) * _coord(hI, ej1)[..., None]) \
        & (_coord(l_inc, ej2[..., None, :]).abs() < (1 - tol) * _coord(hI, ej2)[..., None])
    # 3. crossings of incident edge i (P_i → P_i+1) with reference side m
    P_next = P.roll(-1, dims=-2)
    lat = torch.stack([Pu, Pv], -1)                      # (B, K, 4, 2)
    lat_next = lat.roll(-1, dims=-2)
    h_lat = torch.stack([hRu, hRv], -1)                  # (B, K, 2)
    xs_I, xs_ok = [], []
    for axis, side in _SIDES:
        other = 1 - axis
        den = lat_next[..., axis] - lat[..., axis]
        safe = torch.where(den.abs() > 1e-12, den, torch.ones_like(den))
        s_par = (side * h_lat[..., axis, None] - lat[..., axis]) / safe
        o = lat[..., other] + s_par * (lat_next[..., other] - lat[..., other])
        xs_I.append(P + s_par[..., None] * (P_next - P))
        xs_ok.append((den.abs() > 1e-12) & (s_par > tol) & (s_par < 1 - tol)
                     & (o.abs() < (1 - tol) * h_lat[..., other, None]))
    xs_I = torch.stack(xs_I, -2).flatten(-3, -2)          # (B, K, 16, 3), edge-major
    xs_ok = torch.stack(xs_ok, -1).flatten(-2)
    xs_k = _coord(xs_I, ek[..., None, :])
    xs_R = onto_ref(xs_I, xs_k)
    xs_gap = sig * xs_k - hk
    p_I = torch.cat([inc_I, ref_I, xs_I], -2)             # (B, K, 24, 3) reference frame
    p_R = torch.cat([inc_R, ref_R, xs_R], -2)
    gap = torch.cat([inc_gap, ref_gap, xs_gap], -1)
    if fresh:
        decisions["bb_valid"] = torch.cat([inc_ok, ref_ok, xs_ok], -1).detach()
    to_world = lambda p: xR[..., None, :] + (RR[..., None, :, :] @ p[..., None])[..., 0]  # noqa: E731
    w_I, w_R = to_world(p_I), to_world(p_R)
    rb4 = ref_b[..., None, None]
    pA, pB = torch.where(rb4, w_I, w_R), torch.where(rb4, w_R, w_I)
    n_ref = _rot(RR, sigma[..., None] * ek)
    n = torch.where(ref_b[..., None], n_ref, -n_ref)[..., None, :].expand(B, K, MANIFOLD_SLOTS, 3)
    S = MANIFOLD_SLOTS
    ra, rb = a.repeat_interleave(S), b.repeat_interleave(S)
    flat = lambda t: t.reshape((B, K * S) + t.shape[3:])  # noqa: E731
    local_a = flat((RA.transpose(-1, -2)[..., None, :, :] @ (pA - xA[..., None, :])[..., None])[..., 0])
    local_b = flat((RB.transpose(-1, -2)[..., None, :, :] @ (pB - xB[..., None, :])[..., None])[..., 0])
    wa, wb = witness(ra, local_a), witness(rb, local_b)
    vel = lambda ref, p: v[:, ref] + _rot(R[:, ref], torch.linalg.cross(om[:, ref], p, dim=-1))  # noqa: E731
    dist = flat(gap)
    return dict(ia=body_row(ra), ib=body_row(rb), n=flat(n), rn_a=wa, rn_b=wb, rt_a=wa, rt_b=wb,
                offset=torch.zeros_like(dist), dist=dist, speed=vel(ra, local_a) - vel(rb, local_b),
                mu=(frictions[a] * frictions[b]).repeat_interleave(S),
                e=torch.maximum(restitutions[a], restitutions[b]).repeat_interleave(S),
                valid=flat(decisions["bb_valid"]))


def _segment_face(cand, x, R, sizes, frictions, restitutions, decisions, fresh, witness, body_row, body_frame,
                  point_velocity):
    """Capsule (a) lying on a face of box b: its axis segment, clipped to the face's rectangle, touches at
    the two ends of the clipped piece (where the capsule crosses the face's sides, e.g. across a box top).
    The face is the box face axis that separates the segment from the box most (SAT on the box's face
    normals with the segment's extent). A clipped end that is the capsule's own end is left to the end-cap
    (ball–box) candidate. Two candidates per pair: balls of the capsule's radius at those axis points
    against the face plane."""
    a, b = cand.cb_a, cand.cb_b
    B, K = x.shape[0], len(a)
    eye = torch.eye(3, dtype=x.dtype)
    ra, hl = sizes[a, 0].expand(B, K), sizes[a, 1].expand(B, K)
    half = sizes[b].expand(B, K, 3)
    RB = R[:, b]
    c = body_frame(b, x[:, a] - x[:, b])                  # capsule centre, box frame
    d = _rot(RB.transpose(-1, -2), R[:, a][..., :, 2])    # capsule axis, box frame
    reach = hl[..., None] * d                             # centre → end (t = 1)
    if fresh:
        sep = c.abs() - half - reach.abs()
        k = sep.argmax(-1)
        decisions["cb_k"] = k
        decisions["cb_sign"] = torch.where(_coord(c, eye[k]) >= 0, 1.0, -1.0).detach()
        # Interval of t ∈ [−1, 1] over the face rectangle, per lateral axis (lateral: not k).
        moving = reach.abs() > 1e-12
        safe = torch.where(moving, reach, torch.ones_like(reach))
        lo_t = torch.where(moving, (-torch.sign(safe) * half - c) / safe, torch.full_like(c, -torch.inf))
        hi_t = torch.where(moving, (torch.sign(safe) * half - c) / safe, torch.full_like(c, torch.inf))
        outside = ~moving & (c.abs() > half)
        lateral = ~torch.nn.functional.one_hot(k, 3).bool()
        lo_t = torch.where(lateral, lo_t, torch.full_like(lo_t, -torch.inf))
        hi_t = torch.where(lateral, hi_t, torch.full_like(hi_t, torch.inf))
        t0, i0 = lo_t.max(-1)
        t1, i1 = hi_t.min(-1)
        overlap = (t0 < t1) & ~(outside & lateral).any(-1)
        decisions["cb_axis"] = torch.stack([i0, i1], -1)
        decisions["cb_valid"] = torch.stack([overlap & (t0 > -1), overlap & (t1 < 1)], -1).detach()
        decisions["cb_bound"] = torch.stack([-torch.sign(reach.gather(-1, i0[..., None])[..., 0]),
                                             torch.sign(reach.gather(-1, i1[..., None])[..., 0])], -1).detach()
    k, sigma = decisions["cb_k"], decisions["cb_sign"]
    axis, bound = decisions["cb_axis"], decisions["cb_bound"]                  # (B, K, 2)
    ei = eye[axis]                                                              # (B, K, 2, 3)
    num = bound * _coord(half[..., None, :], ei) - _coord(c[..., None, :], ei)
    den = _coord(reach[..., None, :], ei)
    valid = decisions["cb_valid"]
    t = (num / torch.where(valid, den, torch.ones_like(den))).clamp(-1, 1)      # (B, K, 2)
    centre_b = c[..., None, :] + t[..., None] * reach[..., None, :]             # box frame
    ek = eye[k][..., None, :]
    on_face = centre_b + (sigma[..., None] * _coord(half, eye[k])[..., None] - _coord(centre_b, ek))[..., None] * ek
    n_b = sigma[..., None] * eye[k]
    n = _rot(RB, n_b)[..., None, :].expand(B, K, 2, 3)
    dist = sigma[..., None] * _coord(centre_b, ek) - _coord(half, eye[k])[..., None] - ra[..., None]
    flat = lambda u: u.reshape((B, 2 * K) + u.shape[3:])  # noqa: E731
    ia, ib = a.repeat_interleave(2), b.repeat_interleave(2)
    axis_a = torch.zeros(B, K, 2, 3, dtype=x.dtype)
    axis_a[..., 2] = t * hl[..., None]
    axis_a = flat(axis_a)
    n = flat(n)
    rad = flat(ra[..., None].expand(B, K, 2))
    rta = axis_a - rad[..., None] * body_frame(ia, n)
    face_local = flat(on_face)
    return dict(ia=ia, ib=body_row(ib), n=n, rn_a=axis_a, rn_b=witness(ib, face_local), rt_a=rta,
                rt_b=witness(ib, face_local), offset=rad, dist=flat(dist),
                speed=point_velocity(ia, rta) - point_velocity(ib, face_local),
                mu=(frictions[a] * frictions[b]).repeat_interleave(2),
                e=torch.maximum(restitutions[a], restitutions[b]).repeat_interleave(2), valid=flat(valid))


EDGE_PREFERENCE = 1e-3  # m: an edge axis must separate this much more than the best face axis


def _edge_edge(cand, x, R, sizes, frictions, restitutions, decisions, fresh, witness, body_row, point_velocity):
    """Edge–edge contact of box pairs: separating-axis test over the 6 face normals and the 9 edge cross
    products at the start of the step; when an edge axis separates most, one contact between the
    closest points of the two supporting edges, with normal along that axis (from b to a)."""
    a, b = cand.ee_a, cand.ee_b
    B, K = x.shape[0], len(a)
    RA, RB, hA, hB = R[:, a], R[:, b], sizes[a], sizes[b]
    d = x[:, a] - x[:, b]
    edges_a = RA.transpose(-1, -2)                       # rows: A's axes in world (B, K, 3, 3)
    edges_b = RB.transpose(-1, -2)

    def separation(axis):                                # axis (B, K, 3) unit → (B, K)
        ext_a = (hA * (edges_a @ axis[..., None])[..., 0].abs()).sum(-1)
        ext_b = (hB * (edges_b @ axis[..., None])[..., 0].abs()).sum(-1)
        return (axis * d).sum(-1).abs() - ext_a - ext_b

    if fresh:
        faces = torch.stack([separation(edges_a[..., i, :]) for i in range(3)]
                            + [separation(edges_b[..., j, :]) for j in range(3)], -1).amax(-1)
        crosses = torch.linalg.cross(edges_a[..., :, None, :], edges_b[..., None, :, :], dim=-1)  # (B,K,3,3,3)
        norms = crosses.norm(dim=-1)
        unit = crosses / norms.clamp_min(1e-12)[..., None]
        seps = torch.stack([separation(unit[..., i, j, :]) for i in range(3) for j in range(3)], -1)
        seps = torch.where(norms.reshape(B, K, 9) > 1e-6, seps, torch.full_like(seps, -torch.inf))
        best = seps.argmax(-1)
        i, j = best // 3, best % 3
        axis = unit.reshape(B, K, 9, 3).gather(2, best[..., None, None].expand(B, K, 1, 3))[:, :, 0]
        sign = torch.where((axis * d).sum(-1) >= 0, 1.0, -1.0)
        n0 = sign[..., None] * axis
        # Supporting edges: A's edge along axis i at the corner farthest along −n, B's along j toward +n.
        sgn_a = -torch.sign((edges_a @ n0[..., None])[..., 0])
        sgn_b = torch.sign((edges_b @ n0[..., None])[..., 0])
        decisions["ee_i"], decisions["ee_j"], decisions["ee_sign"] = i, j, sign
        decisions["ee_sgn_a"], decisions["ee_sgn_b"] = sgn_a.detach(), sgn_b.detach()
        decisions["ee_valid"] = (seps.gather(-1, best[..., None])[..., 0] > faces + EDGE_PREFERENCE).detach()
    i, j, sign = decisions["ee_i"], decisions["ee_j"], decisions["ee_sign"]
    sgn_a, sgn_b = decisions["ee_sgn_a"], decisions["ee_sgn_b"]
    ei, ej = torch.nn.functional.one_hot(i, 3).to(x.dtype), torch.nn.functional.one_hot(j, 3).to(x.dtype)
    axis_a = (edges_a * ei[..., None]).sum(-2)
    axis_b = (edges_b * ej[..., None]).sum(-2)
    n = sign[..., None] * _normalize(torch.linalg.cross(axis_a, axis_b, dim=-1))
    base_a = (1 - ei) * sgn_a * hA                       # body-frame midpoint of the supporting edge
    base_b = (1 - ej) * sgn_b * hB
    lo_a, hi_a = base_a - ei * hA, base_a + ei * hA
    lo_b, hi_b = base_b - ej * hB, base_b + ej * hB
    world = lambda Rm, xc, p: xc + (Rm @ p[..., None])[..., 0]  # noqa: E731
    s_a, t_b = closest_segment_parameters(world(RA, x[:, a], lo_a), world(RA, x[:, a], hi_a),
                                          world(RB, x[:, b], lo_b), world(RB, x[:, b], hi_b))
    wa = lo_a + s_a[..., None] * (hi_a - lo_a)
    wb = lo_b + t_b[..., None] * (hi_b - lo_b)
    dist = (n * (world(RA, x[:, a], wa) - world(RB, x[:, b], wb))).sum(-1)
    Wa, Wb = witness(a, wa), witness(b, wb)
    return dict(ia=body_row(a), ib=body_row(b), n=n, rn_a=Wa, rn_b=Wb, rt_a=Wa, rt_b=Wb,
                offset=torch.zeros_like(dist), dist=dist, speed=point_velocity(a, wa) - point_velocity(b, wb),
                mu=frictions[a] * frictions[b], e=torch.maximum(restitutions[a], restitutions[b]),
                valid=decisions["ee_valid"])


def _rot(R, v):
    return (R @ v[..., None])[..., 0]


def closest_segment_parameters(p1, q1, p2, q2, eps=1e-12):
    """Parameters (s, t) in [0, 1] of the closest points p1 + s(q1 − p1), p2 + t(q2 − p2) of two segments
    (…, 3) (Ericson, Real-Time Collision Detection, §5.1.9); zero-length segments are points. Parallel
    segments take s = 0."""
    d1, d2, r = q1 - p1, q2 - p2, p1 - p2
    a, e = (d1 * d1).sum(-1), (d2 * d2).sum(-1)
    f, c, b = (d2 * r).sum(-1), (d1 * r).sum(-1), (d1 * d2).sum(-1)
    safe = lambda den: torch.where(den.abs() > eps, den, torch.ones_like(den))  # noqa: E731
    denom = a * e - b * b
    s = torch.where(denom > eps * a * e, ((b * f - c * e) / safe(denom)).clamp(0, 1), torch.zeros_like(a))
    t = (b * s + f) / safe(e)
    s = torch.where(t < 0, (-c / safe(a)).clamp(0, 1), torch.where(t > 1, ((b - c) / safe(a)).clamp(0, 1), s))
    t = t.clamp(0, 1)
    # Degenerate segments.
    s = torch.where(a <= eps, torch.zeros_like(s), s)
    t = torch.where(e <= eps, torch.zeros_like(t), torch.where(a <= eps, (f / safe(e)).clamp(0, 1), t))
    s = torch.where((e <= eps) & (a > eps), (-c / safe(a)).clamp(0, 1), s)
    return s, t


def pose_table(x, q, v, om, static_x, static_q):
    """Stack dynamic states (B, nb, ·) and static box poses (Ns, ·) into the pose table of `detect`."""
    B = x.shape[0]
    sx = static_x.expand(B, -1, -1)
    sq = static_q.expand(B, -1, -1)
    X = torch.cat([x, sx], 1)
    Rm = quat.to_matrix(torch.cat([q, sq], 1))
    V = torch.cat([v, torch.zeros_like(sx)], 1)
    W = torch.cat([om, torch.zeros_like(sx)], 1)
    return X, Rm, V, W
