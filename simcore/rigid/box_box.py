"""Box–box contact models: the face manifold (up to 8 points of the overlap of a reference and an incident
face) and one edge–edge contact, evaluated per step by `collision.detect` (same interface as pairs.py)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .pairs import DTYPE, Geometry, PairContacts, PairList, closest_segment_parameters, coord, normalize, rot

FACE_TOLERANCE = 0.01  # a corner counts as over a face if within 1 % of the half extent beyond its edge
EDGE_PREFERENCE = 1e-3  # m: an edge axis must separate this much more than the best face axis

# Manifold slots per pair: 4 vertices of the incident face over the reference face, 4 corners of the
# reference face under the incident face, 16 crossings of an incident edge with a reference side.
MANIFOLD_KINDS = ("vertex-face",) * 8 + ("edge-crossing",) * 16
MANIFOLD_SLOTS = len(MANIFOLD_KINDS)
# Face vertices in cyclic order (signs on the two lateral axes) and the sides of a rectangle
# (lateral axis 0/1, sign).
_QUAD = torch.tensor([[1.0, 1.0], [-1.0, 1.0], [-1.0, -1.0], [1.0, -1.0]], dtype=DTYPE)
_SIDES = ((0, 1.0), (1, 1.0), (0, -1.0), (1, -1.0))


def face_manifold(pairs: PairList, g: Geometry, decisions: dict, fresh: bool) -> PairContacts:
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
    a, b = pairs.a, pairs.b
    B, K = g.worlds, len(a)
    xA, xB, RA, RB = g.x[:, a], g.x[:, b], g.R[:, a], g.R[:, b]
    hA, hB = g.sizes[a].expand(B, K, 3), g.sizes[b].expand(B, K, 3)
    if fresh:
        _choose_reference_face(xA - xB, RA, RB, hA, hB, decisions)
    ref_b = decisions["bb_ref_b"]
    pick = lambda t_b, t_a: torch.where(ref_b.reshape(ref_b.shape + (1,) * (t_b.dim() - 2)), t_b, t_a)  # noqa: E731
    xR, xI, RR, RI = pick(xB, xA), pick(xA, xB), pick(RB, RA), pick(RA, RB)
    faces = _Faces.between(rot(RR.transpose(-1, -2), xI - xR), RR.transpose(-1, -2) @ RI, pick(hB, hA),
                           pick(hA, hB), decisions, fresh)
    inc, ref, xs = faces.incident_vertices(), faces.reference_corners(), faces.edge_crossings()
    p_I = torch.cat([inc[0], ref[0], xs[0]], -2)        # (B, K, 24, 3) reference frame
    p_R = torch.cat([inc[1], ref[1], xs[1]], -2)
    gap = torch.cat([inc[2], ref[2], xs[2]], -1)
    if fresh:
        decisions["bb_valid"] = torch.cat([inc[3], ref[3], xs[3]], -1).detach()
    to_world = lambda p: xR[..., None, :] + (RR[..., None, :, :] @ p[..., None])[..., 0]  # noqa: E731
    w_I, w_R = to_world(p_I), to_world(p_R)
    rb4 = ref_b[..., None, None]
    pA, pB = torch.where(rb4, w_I, w_R), torch.where(rb4, w_R, w_I)
    n_ref = rot(RR, faces.sigma[..., None] * faces.ek)
    n = torch.where(ref_b[..., None], n_ref, -n_ref)[..., None, :].expand(B, K, MANIFOLD_SLOTS, 3)
    S = MANIFOLD_SLOTS
    ra, rb = a.repeat_interleave(S), b.repeat_interleave(S)
    flat = lambda t: t.reshape((B, K * S) + t.shape[3:])  # noqa: E731
    local_a = flat((RA.transpose(-1, -2)[..., None, :, :] @ (pA - xA[..., None, :])[..., None])[..., 0])
    local_b = flat((RB.transpose(-1, -2)[..., None, :, :] @ (pB - xB[..., None, :])[..., None])[..., 0])
    wa, wb = g.witness(ra, local_a), g.witness(rb, local_b)
    dist = flat(gap)
    mu, e = g.pair_material(a, b)
    return PairContacts(ia=g.body_row(ra), ib=g.body_row(rb), n=flat(n), rn_a=wa, rn_b=wb, rt_a=wa, rt_b=wb,
                        offset=torch.zeros_like(dist), dist=dist,
                        speed=g.point_velocity(ra, local_a) - g.point_velocity(rb, local_b),
                        mu=mu.repeat_interleave(S), e=e.repeat_interleave(S), valid=flat(decisions["bb_valid"]))


def _choose_reference_face(d, RA, RB, hA, hB, decisions):
    """SAT over the six face normals: the reference box (b if `bb_ref_b`) and its face axis `bb_k`.
    d: (B, K, 3) centre of a minus centre of b; RA, RB: (B, K, 3, 3); hA, hB: (B, K, 3) half extents."""
    C_BA = RB.transpose(-1, -2) @ RA                 # [k, i] = b_k · a_i
    sep_b = rot(RB.transpose(-1, -2), d).abs() - hB - rot(C_BA.abs(), hA)
    sep_a = rot(RA.transpose(-1, -2), d).abs() - hA - rot(C_BA.abs().transpose(-1, -2), hB)
    best_b, k_b = sep_b.max(-1)
    best_a, k_a = sep_a.max(-1)
    decisions["bb_ref_b"] = (best_b >= best_a - 1e-9).detach()
    decisions["bb_k"] = torch.where(decisions["bb_ref_b"], k_b, k_a)


@dataclass
class _Faces:
    """The reference face (axis ek, side σ, half extents hR) and the incident face (vertices P) of the box
    pairs, in the reference box's frame: incident centre c (B, K, 3), incident axes M (B, K, 3, 3) as
    columns; the lateral axes eu, ev of the reference face and ej1, ej2 of the incident face."""
    c: torch.Tensor
    M: torch.Tensor
    hI: torch.Tensor
    ek: torch.Tensor
    eu: torch.Tensor
    ev: torch.Tensor
    ej: torch.Tensor
    ej1: torch.Tensor
    ej2: torch.Tensor
    sigma: torch.Tensor
    tau: torch.Tensor
    hRk: torch.Tensor
    hRu: torch.Tensor
    hRv: torch.Tensor
    P: torch.Tensor

    @classmethod
    def between(cls, c, M, hR, hI, decisions, fresh) -> "_Faces":
        """The faces from the reference axis `bb_k`; chooses the side σ, the incident axis j and its side
        τ (the incident face most anti-parallel to the reference normal) when fresh."""
        eye = torch.eye(3, dtype=c.dtype)
        k = decisions["bb_k"]
        ek, eu, ev = eye[k], eye[(k + 1) % 3], eye[(k + 2) % 3]
        if fresh:
            decisions["bb_sign"] = torch.where(coord(c, ek) >= 0, 1.0, -1.0).detach()
            row_k = (ek[..., :, None] * M).sum(-2)           # k-components of the incident axes
            j = decisions["bb_j"] = row_k.abs().argmax(-1)
            decisions["bb_tau"] = -torch.sign(decisions["bb_sign"] * row_k.gather(-1, j[..., None])[..., 0])
        sigma, j, tau = decisions["bb_sign"], decisions["bb_j"], decisions["bb_tau"]
        ej, ej1, ej2 = eye[j], eye[(j + 1) % 3], eye[(j + 2) % 3]
        # incident face vertices (B, K, 4, 3), reference frame
        s1, s2 = _QUAD[:, 0, None], _QUAD[:, 1, None]
        v_loc = hI[..., None, :] * (tau[..., None, None] * ej[..., None, :] + s1 * ej1[..., None, :]
                                    + s2 * ej2[..., None, :])
        P = c[..., None, :] + (M[..., None, :, :] @ v_loc[..., None])[..., 0]
        return cls(c, M, hI, ek, eu, ev, ej, ej1, ej2, sigma, tau, coord(hR, ek), coord(hR, eu), coord(hR, ev), P)

    def onto_reference(self, p, pk):
        """Points p (B, K, n, 3) with k-coordinates pk moved along the normal onto the reference face."""
        return p + (self.sigma[..., None] * self.hRk[..., None] - pk)[..., None] * self.ek[..., None, :]

    def incident_vertices(self):
        """1. Incident vertices over the reference face: (points, their projections, gaps, valid)."""
        P, ek4 = self.P, self.ek[..., None, :]
        Pk, Pu, Pv = coord(P, ek4), coord(P, self.eu[..., None, :]), coord(P, self.ev[..., None, :])
        tol = FACE_TOLERANCE
        gap = self.sigma[..., None] * Pk - self.hRk[..., None]
        ok = (Pu.abs() <= (1 + tol) * self.hRu[..., None]) & (Pv.abs() <= (1 + tol) * self.hRv[..., None])
        return P, self.onto_reference(P, Pk), gap, ok

    def reference_corners(self):
        """2. Reference corners under the incident face, projected along the normal onto its plane:
        (projections, corners, gaps, valid)."""
        ek4, sig, hk = self.ek[..., None, :], self.sigma[..., None], self.hRk[..., None]
        s1, s2 = _QUAD[:, 0, None], _QUAD[:, 1, None]
        tol = FACE_TOLERANCE
        Q = sig[..., None] * hk[..., None] * ek4 + s1 * self.hRu[..., None, None] * self.eu[..., None, :] \
            + s2 * self.hRv[..., None, None] * self.ev[..., None, :]
        n_inc = self.tau[..., None] * (self.M @ self.ej[..., None])[..., 0]   # incident face normal, reference frame
        face_inc = self.c + coord(self.hI, self.ej)[..., None] * n_inc
        t = ((face_inc[..., None, :] - Q) * n_inc[..., None, :]).sum(-1) / coord(n_inc, self.ek)[..., None]
        ref_I = Q + t[..., None] * ek4
        l_inc = (self.M.transpose(-1, -2)[..., None, :, :] @ (ref_I - self.c[..., None, :])[..., None])[..., 0]
        ok = (coord(l_inc, self.ej1[..., None, :]).abs() < (1 - tol) * coord(self.hI, self.ej1)[..., None]) \
            & (coord(l_inc, self.ej2[..., None, :]).abs() < (1 - tol) * coord(self.hI, self.ej2)[..., None])
        return ref_I, Q, sig * t, ok

    def edge_crossings(self):
        """3. Crossings of incident edge i (P_i → P_i+1) with reference side m, edge-major:
        (points, their projections, gaps, valid)."""
        P, tol = self.P, FACE_TOLERANCE
        P_next = P.roll(-1, dims=-2)
        lat = torch.stack([coord(P, self.eu[..., None, :]), coord(P, self.ev[..., None, :])], -1)  # (B, K, 4, 2)
        lat_next = lat.roll(-1, dims=-2)
        h_lat = torch.stack([self.hRu, self.hRv], -1)        # (B, K, 2)
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
        xs_k = coord(xs_I, self.ek[..., None, :])
        return xs_I, self.onto_reference(xs_I, xs_k), self.sigma[..., None] * xs_k - self.hRk[..., None], xs_ok


def edge_edge(pairs: PairList, g: Geometry, decisions: dict, fresh: bool) -> PairContacts:
    """Edge–edge contact of box pairs: separating-axis test over the 6 face normals and the 9 edge cross
    products at the start of the step; when an edge axis separates most, one contact between the
    closest points of the two supporting edges, with normal along that axis (from b to a)."""
    a, b = pairs.a, pairs.b
    x = g.x
    RA, RB, hA, hB = g.R[:, a], g.R[:, b], g.sizes[a], g.sizes[b]
    edges_a = RA.transpose(-1, -2)                       # rows: A's axes in world (B, K, 3, 3)
    edges_b = RB.transpose(-1, -2)
    if fresh:
        _choose_edges(x[:, a] - x[:, b], edges_a, edges_b, hA, hB, decisions)
    i, j, sign = decisions["ee_i"], decisions["ee_j"], decisions["ee_sign"]
    sgn_a, sgn_b = decisions["ee_sgn_a"], decisions["ee_sgn_b"]
    ei, ej = torch.nn.functional.one_hot(i, 3).to(x.dtype), torch.nn.functional.one_hot(j, 3).to(x.dtype)
    axis_a = (edges_a * ei[..., None]).sum(-2)
    axis_b = (edges_b * ej[..., None]).sum(-2)
    n = sign[..., None] * normalize(torch.linalg.cross(axis_a, axis_b, dim=-1))
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
    Wa, Wb = g.witness(a, wa), g.witness(b, wb)
    mu, e = g.pair_material(a, b)
    return PairContacts(ia=g.body_row(a), ib=g.body_row(b), n=n, rn_a=Wa, rn_b=Wb, rt_a=Wa, rt_b=Wb,
                        offset=torch.zeros_like(dist), dist=dist,
                        speed=g.point_velocity(a, wa) - g.point_velocity(b, wb),
                        mu=mu, e=e, valid=decisions["ee_valid"])


def _choose_edges(d, edges_a, edges_b, hA, hB, decisions):
    """The decisions of `edge_edge`: the edge axes i of a and j of b whose cross product separates most,
    the normal's sign, the supporting edges' corners, and whether that axis beats every face axis by
    EDGE_PREFERENCE. d: (B, K, 3) centre of a minus centre of b; edges_a, edges_b: (B, K, 3, 3) axes as
    rows, world frame; hA, hB: (K, 3) half extents."""
    B, K = d.shape[:2]

    def separation(axis):                                # axis (B, K, 3) unit → (B, K)
        ext_a = (hA * (edges_a @ axis[..., None])[..., 0].abs()).sum(-1)
        ext_b = (hB * (edges_b @ axis[..., None])[..., 0].abs()).sum(-1)
        return (axis * d).sum(-1).abs() - ext_a - ext_b

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

