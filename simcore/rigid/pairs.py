"""Contact models of the primitive shape pairs, evaluated per step by `collision.detect`.

Each model takes the candidates of one kind (`PairList`), the start-of-step `Geometry` and the discrete
`decisions` (made here when `fresh`, reused as given otherwise), and returns `PairContacts`: per candidate
the frozen normal, the body-fixed witness points, the offset and signed distance, the pair friction and
restitution, and whether it is geometrically valid. `collision.detect` concatenates them in candidate
order. Box–box models are in `box_box.py`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

DTYPE = torch.float64


@dataclass
class PairList:
    """The candidates of one contact model, K of them, fixed when the World is built.

    a, b: (K,) long rows of the pose table (plane–point: a is the body, b the plane index).
    point, radius: plane–point only, (K, 3, 3) and (K, 3) selectors of the touching point (body frame)
        and of the radius around it from a's size vector.
    end: ball–box only, (K,) position of the ball centre on a's axis in half lengths: 0 sphere, ±1 cap.
    """
    a: torch.Tensor
    b: torch.Tensor
    point: torch.Tensor | None = None
    radius: torch.Tensor | None = None
    end: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.a)


@dataclass
class Geometry:
    """The start-of-step configuration the models evaluate candidates at.

    Pose table rows: dynamic bodies 0..bodies−1, then static boxes (which all map to the ground row
    `bodies`). x (B, P, 3) m; R (B, P, 3, 3) rotations; v (B, P, 3) m/s; om (B, P, 3) rad/s, body frame.
    sizes (P, 3) m size vectors; frictions, restitutions (P,); planes: point (Np, 3) m, normal (Np, 3),
    friction (Np,), restitution (Np,).
    """
    x: torch.Tensor
    R: torch.Tensor
    v: torch.Tensor
    om: torch.Tensor
    bodies: int
    sizes: torch.Tensor
    frictions: torch.Tensor
    restitutions: torch.Tensor
    planes: dict

    @property
    def worlds(self) -> int:
        return self.x.shape[0]

    def body_row(self, ref):
        """Body row of pose-table rows: themselves for dynamic bodies, `bodies` (ground) for static boxes."""
        return torch.where(ref < self.bodies, ref, torch.full_like(ref, self.bodies))

    def witness(self, ref, p_local):
        """Witness points to store: body frame for dynamic bodies; world frame for static shapes, which
        are part of the ground body."""
        is_static = (ref >= self.bodies)[None, :, None]
        world = self.x[:, ref] + (self.R[:, ref] @ p_local[..., None])[..., 0]
        return torch.where(is_static, world, p_local)

    def point_velocity(self, ref, p_local):
        """World velocity (B, K, 3) m/s of body-frame points p_local (B, K, 3) of rows ref."""
        spin = torch.linalg.cross(self.om[:, ref], p_local, dim=-1)
        return self.v[:, ref] + (self.R[:, ref] @ spin[..., None])[..., 0]

    def body_frame(self, ref, vec_world):
        """World vectors (B, K, 3) in the frames of rows ref."""
        return (self.R[:, ref].transpose(-1, -2) @ vec_world[..., None])[..., 0]

    def pair_material(self, a, b):
        """Pair friction μ_a·μ_b (product rule, as in Bullet) and restitution max(e_a, e_b), (K,)."""
        return self.frictions[a] * self.frictions[b], torch.maximum(self.restitutions[a], self.restitutions[b])


@dataclass
class PairContacts:
    """What a contact model returns for its C candidates (see collision.Contacts for the frames)."""
    ia: torch.Tensor      # (C,) long body row of side a (`bodies`: ground)
    ib: torch.Tensor      # (C,)
    n: torch.Tensor       # (B, C, 3) normal, world, from b to a
    rn_a: torch.Tensor    # (B, C, 3) m normal witnesses, body frame (world if static)
    rn_b: torch.Tensor
    rt_a: torch.Tensor    # (B, C, 3) m friction witnesses
    rt_b: torch.Tensor
    offset: torch.Tensor  # (B, C) m
    dist: torch.Tensor    # (B, C) m signed distance at the start of the step
    speed: torch.Tensor   # (B, C, 3) m/s relative velocity of the friction witnesses
    mu: torch.Tensor      # (C,) or (B, C) pair friction
    e: torch.Tensor       # (C,) or (B, C) pair restitution
    valid: torch.Tensor   # (B, C) bool


def plane_point(pairs: PairList, g: Geometry, decisions: dict, fresh: bool) -> PairContacts:
    """A point of a body (box corner, sphere centre, capsule cap centre) with a radius around it against a
    plane: φ = n·(tip − p0) − ρ; friction acts at the lowest point of the ball."""
    j, pi = pairs.a, pairs.b
    B, planes = g.worlds, g.planes
    c = (pairs.point @ g.sizes[j][..., None])[..., 0].expand(B, -1, -1)
    rho = (pairs.radius * g.sizes[j]).sum(-1).expand(B, -1)
    n = planes["normal"][pi].expand(B, -1, -1)
    p0 = planes["point"][pi].expand(B, -1, -1)
    tip = g.x[:, j] + (g.R[:, j] @ c[..., None])[..., 0]
    dist = (n * (tip - p0)).sum(-1) - rho
    rt = c - rho[..., None] * g.body_frame(j, n)
    return PairContacts(ia=j, ib=torch.full_like(j, g.bodies), n=n, rn_a=c, rn_b=p0, rt_a=rt,
                        rt_b=torch.zeros_like(rt), offset=rho, dist=dist, speed=g.point_velocity(j, rt),
                        mu=g.frictions[j] * planes["friction"][pi],
                        e=torch.maximum(g.restitutions[j], planes["restitution"][pi]),
                        valid=torch.ones_like(dist, dtype=bool))


def sphere_sphere(pairs: PairList, g: Geometry, decisions: dict, fresh: bool) -> PairContacts:
    """Two spheres: the centre line is the normal; friction at the two surface points on it."""
    a, b = pairs.a, pairs.b
    B = g.worlds
    ra, rb = g.sizes[a, 0].expand(B, -1), g.sizes[b, 0].expand(B, -1)
    d = g.x[:, a] - g.x[:, b]
    n = normalize(d)
    z = torch.zeros_like(d)
    rta, rtb = g.body_frame(a, -ra[..., None] * n), g.body_frame(b, rb[..., None] * n)
    mu, e = g.pair_material(a, b)
    return PairContacts(ia=a, ib=b, n=n, rn_a=z, rn_b=z, rt_a=rta, rt_b=rtb, offset=ra + rb,
                        dist=d.norm(dim=-1) - ra - rb, speed=g.point_velocity(a, rta) - g.point_velocity(b, rtb),
                        mu=mu, e=e, valid=torch.ones_like(ra, dtype=bool))


def ball_box(pairs: PairList, g: Geometry, decisions: dict, fresh: bool) -> PairContacts:
    """A ball of a (a sphere, or a capsule end cap) against box b: the closest point of the box to the ball
    centre. Which coordinates of it are clamped to the box surface is a decision."""
    a, b = pairs.a, pairs.b
    B, x, R = g.worlds, g.x, g.R
    ra, half = g.sizes[a, 0].expand(B, -1), g.sizes[b].expand(B, -1, -1)
    centre_a = torch.zeros(len(a), 3, dtype=x.dtype)
    centre_a[:, 2] = pairs.end * g.sizes[a, 1]        # body frame of a
    centre_a = centre_a.expand(B, -1, -1)
    centre = x[:, a] + (R[:, a] @ centre_a[..., None])[..., 0]
    local = g.body_frame(b, centre - x[:, b])
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
    n_local = torch.where(outside[..., None], normalize(local - closest), sign * clamp.to(DTYPE))
    n = (R[:, b] @ n_local[..., None])[..., 0]
    rta = centre_a - ra[..., None] * g.body_frame(a, n)
    dist = (n * (centre - x[:, b] - (R[:, b] @ closest[..., None])[..., 0])).sum(-1) - ra
    mu, e = g.pair_material(a, b)
    return PairContacts(ia=a, ib=g.body_row(b), n=n, rn_a=centre_a, rn_b=g.witness(b, closest),
                        rt_a=rta, rt_b=g.witness(b, closest), offset=ra, dist=dist,
                        speed=g.point_velocity(a, rta) - g.point_velocity(b, closest),
                        mu=mu, e=e, valid=torch.ones_like(ra, dtype=bool))


def segment_segment(pairs: PairList, g: Geometry, decisions: dict, fresh: bool) -> PairContacts:
    """Capsule–capsule and capsule–sphere (a sphere is a segment of zero length): the closest points of
    the two axis segments, then a sphere–sphere contact between balls there."""
    a, b = pairs.a, pairs.b
    B, x, R = g.worlds, g.x, g.R
    ra, rb = g.sizes[a, 0].expand(B, -1), g.sizes[b, 0].expand(B, -1)
    axis = torch.tensor([0.0, 0.0, 1.0], dtype=x.dtype)
    ha = g.sizes[a, 1][None, :, None] * axis
    hb = g.sizes[b, 1][None, :, None] * axis
    p1, q1 = x[:, a] - rot(R[:, a], ha), x[:, a] + rot(R[:, a], ha)
    p2, q2 = x[:, b] - rot(R[:, b], hb), x[:, b] + rot(R[:, b], hb)
    s_a, t_b = closest_segment_parameters(p1, q1, p2, q2)
    ca, cb = p1 + s_a[..., None] * (q1 - p1), p2 + t_b[..., None] * (q2 - p2)
    n = normalize(ca - cb)
    wa = (2 * s_a - 1)[..., None] * ha          # body-frame points on the axes
    wb = (2 * t_b - 1)[..., None] * hb
    rta, rtb = wa - ra[..., None] * g.body_frame(a, n), wb + rb[..., None] * g.body_frame(b, n)
    mu, e = g.pair_material(a, b)
    return PairContacts(ia=a, ib=b, n=n, rn_a=wa, rn_b=wb, rt_a=rta, rt_b=rtb, offset=ra + rb,
                        dist=(ca - cb).norm(dim=-1) - ra - rb,
                        speed=g.point_velocity(a, rta) - g.point_velocity(b, rtb),
                        mu=mu, e=e, valid=torch.ones_like(ra, dtype=bool))


def segment_face(pairs: PairList, g: Geometry, decisions: dict, fresh: bool) -> PairContacts:
    """Capsule (a) lying on a face of box b: its axis segment, clipped to the face's rectangle, touches at
    the two ends of the clipped piece (where the capsule crosses the face's sides, e.g. across a box top).
    The face is the box face axis that separates the segment from the box most (SAT on the box's face
    normals with the segment's extent). A clipped end that is the capsule's own end is left to the end-cap
    (ball–box) candidate. Two candidates per pair: balls of the capsule's radius at those axis points
    against the face plane."""
    a, b = pairs.a, pairs.b
    B, K = g.worlds, len(a)
    eye = torch.eye(3, dtype=g.x.dtype)
    ra, hl = g.sizes[a, 0].expand(B, K), g.sizes[a, 1].expand(B, K)
    half = g.sizes[b].expand(B, K, 3)
    RB = g.R[:, b]
    c = g.body_frame(b, g.x[:, a] - g.x[:, b])            # capsule centre, box frame
    d = rot(RB.transpose(-1, -2), g.R[:, a][..., :, 2])   # capsule axis, box frame
    reach = hl[..., None] * d                             # centre → end (t = 1)
    if fresh:
        _clip_segment_to_face(c, reach, half, decisions)
    k, sigma = decisions["cb_k"], decisions["cb_sign"]
    axis, bound = decisions["cb_axis"], decisions["cb_bound"]                  # (B, K, 2)
    ei = eye[axis]                                                              # (B, K, 2, 3)
    num = bound * coord(half[..., None, :], ei) - coord(c[..., None, :], ei)
    den = coord(reach[..., None, :], ei)
    valid = decisions["cb_valid"]
    t = (num / torch.where(valid, den, torch.ones_like(den))).clamp(-1, 1)      # (B, K, 2)
    centre_b = c[..., None, :] + t[..., None] * reach[..., None, :]             # box frame
    ek = eye[k][..., None, :]
    on_face = centre_b + (sigma[..., None] * coord(half, eye[k])[..., None] - coord(centre_b, ek))[..., None] * ek
    n_b = sigma[..., None] * eye[k]
    n = rot(RB, n_b)[..., None, :].expand(B, K, 2, 3)
    dist = sigma[..., None] * coord(centre_b, ek) - coord(half, eye[k])[..., None] - ra[..., None]
    flat = lambda u: u.reshape((B, 2 * K) + u.shape[3:])  # noqa: E731
    ia, ib = a.repeat_interleave(2), b.repeat_interleave(2)
    axis_a = torch.zeros(B, K, 2, 3, dtype=g.x.dtype)
    axis_a[..., 2] = t * hl[..., None]
    axis_a = flat(axis_a)
    n = flat(n)
    rad = flat(ra[..., None].expand(B, K, 2))
    rta = axis_a - rad[..., None] * g.body_frame(ia, n)
    face_local = flat(on_face)
    mu, e = g.pair_material(a, b)
    return PairContacts(ia=ia, ib=g.body_row(ib), n=n, rn_a=axis_a, rn_b=g.witness(ib, face_local), rt_a=rta,
                        rt_b=g.witness(ib, face_local), offset=rad, dist=flat(dist),
                        speed=g.point_velocity(ia, rta) - g.point_velocity(ib, face_local),
                        mu=mu.repeat_interleave(2), e=e.repeat_interleave(2), valid=flat(valid))


def _clip_segment_to_face(c, reach, half, decisions):
    """The decisions of `segment_face`: the face axis k and side, and the interval of the axis parameter
    t ∈ [−1, 1] over the face rectangle (which lateral axis bounds each end, on which side, and whether
    each end lies inside the capsule). c: (B, K, 3) capsule centre, reach: (B, K, 3) centre → end, half:
    (B, K, 3) box half extents, all in the box frame."""
    eye = torch.eye(3, dtype=c.dtype)
    sep = c.abs() - half - reach.abs()
    k = sep.argmax(-1)
    decisions["cb_k"] = k
    decisions["cb_sign"] = torch.where(coord(c, eye[k]) >= 0, 1.0, -1.0).detach()
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


# ----------------------------------------------------------------------------------------------
# Geometry helpers
# ----------------------------------------------------------------------------------------------
def rot(R, v):
    """R (…, 3, 3) applied to v (…, 3)."""
    return (R @ v[..., None])[..., 0]


def coord(p, e):
    """Component of p (…, 3) along the one-hot axis e (…, 3) (broadcast)."""
    return (p * e).sum(-1)


def normalize(v):
    """Unit vectors along v (…, 3) (zero stays zero)."""
    return v / v.norm(dim=-1, keepdim=True).clamp_min(1e-300)


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
