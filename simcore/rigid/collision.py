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
Supported pairs (`SHAPE_PAIRS`): plane–{sphere, box, capsule}; sphere–sphere; sphere–box; box–box as the
contact polygon of a reference and an incident face (vertices, reference corners and edge crossings, up to
8 points; see `box_box.face_manifold`) plus one edge–edge contact when an edge cross product is the
separating axis of least penetration; capsule–{capsule, sphere} (closest points of the axis segments);
capsule–box (the two end caps against the box, plus the ends of the axis clipped to the box face below
it, `pairs.segment_face`). Boxes may be static in every pair.

Layout: this module decides the candidates (`build_candidates`: one small function per pair of shape
kinds, `SHAPE_PAIRS`) and evaluates them (`detect`: one function per contact model, `CONTACT_MODELS`, in
pairs.py and box_box.py), then applies the reach and impact rules common to all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import torch

from . import box_box, pairs
from . import quaternion as quat
from .pairs import DTYPE, Geometry, PairContacts, PairList


class ContactModel(NamedTuple):
    """How one kind of candidate is evaluated: evaluate(PairList, Geometry, decisions, fresh) →
    PairContacts, and the kinds of the candidates each pair yields (its slots, in order)."""
    evaluate: Callable[..., PairContacts]
    slots: tuple[str, ...]


# Contact models in candidate order: the order of the rows of Contacts and of Candidates.pairs().
CONTACT_MODELS = {
    "plane": ContactModel(pairs.plane_point, ("plane",)),
    "sphere-sphere": ContactModel(pairs.sphere_sphere, ("sphere-sphere",)),
    "ball-box": ContactModel(pairs.ball_box, ("ball-box",)),
    "box-face": ContactModel(box_box.face_manifold, box_box.MANIFOLD_KINDS),
    "segment-segment": ContactModel(pairs.segment_segment, ("segment-segment",)),
    "edge-edge": ContactModel(box_box.edge_edge, ("edge-edge",)),
    "segment-face": ContactModel(pairs.segment_face, ("segment-face",) * 2),
}


@dataclass
class Candidates:
    """Structural contact candidates of a World (index and selector arrays; no state).

    References index a pose table: rows 0..bodies−1 are dynamic bodies, bodies..bodies+static_boxes−1
    static boxes. by_model: the candidates of each contact model, keyed and ordered as CONTACT_MODELS.
    """
    bodies: int
    by_model: dict[str, PairList]

    @property
    def count(self) -> int:
        return sum(len(CONTACT_MODELS[name].slots) * len(p) for name, p in self.by_model.items())

    def pairs(self):
        """(kind, ref a, ref b) per candidate, for messages; a plane is ref −1 − its index."""
        out = []
        for name, p in self.by_model.items():
            for a, b in zip(p.a.tolist(), p.b.tolist()):
                out += [(kind, a, -1 - b if name == "plane" else b) for kind in CONTACT_MODELS[name].slots]
        return out


# ----------------------------------------------------------------------------------------------
# Candidates per pair of shape kinds
# ----------------------------------------------------------------------------------------------
CORNERS = torch.tensor([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], dtype=DTYPE)
_E0 = torch.tensor([1.0, 0.0, 0.0], dtype=DTYPE)  # selects the radius (size_vector[0]) of a sphere or capsule


def _plane_sphere(add, plane, sphere):
    add("plane", sphere, plane, point=torch.zeros(3, 3, dtype=DTYPE), radius=_E0)


def _plane_box(add, plane, box):
    for corner in CORNERS:
        add("plane", box, plane, point=torch.diag(corner), radius=torch.zeros(3, dtype=DTYPE))


def _plane_capsule(add, plane, capsule):
    for s in (-1.0, 1.0):  # the end cap centres at (0, 0, ±half length)
        point = torch.zeros(3, 3, dtype=DTYPE)
        point[2, 1] = s
        add("plane", capsule, plane, point=point, radius=_E0)


def _sphere_sphere(add, a, b):
    add("sphere-sphere", a, b)


def _sphere_box(add, sphere, box):
    add("ball-box", sphere, box, end=0.0)


def _capsule_box(add, capsule, box):
    # The two end caps against the box (enough for a capsule lying on or hitting a face), and the axis
    # clipped to the face below it (a capsule lying across a box).
    for end in (-1.0, 1.0):
        add("ball-box", capsule, box, end=end)
    add("segment-face", capsule, box)


def _box_box(add, a, b):
    add("box-face", a, b)
    add("edge-edge", a, b)


def _segments(add, a, b):
    add("segment-segment", a, b)


# Candidates of each pair of shape kinds: f(add, ref of the first kind, ref of the second). A pair of
# bodies whose kinds are listed only the other way round is looked up swapped (build_candidates). The
# segment pairs are symmetric and listed both ways, so they keep World order.
SHAPE_PAIRS = {
    ("plane", "sphere"): _plane_sphere,
    ("plane", "box"): _plane_box,
    ("plane", "capsule"): _plane_capsule,
    ("sphere", "sphere"): _sphere_sphere,
    ("sphere", "box"): _sphere_box,
    ("capsule", "box"): _capsule_box,
    ("box", "box"): _box_box,
    ("capsule", "capsule"): _segments,
    ("capsule", "sphere"): _segments,
    ("sphere", "capsule"): _segments,
}


def build_candidates(dynamic, static_boxes, planes, excluded=()) -> Candidates:
    """All candidates between the given shapes (lists of Body / Box(static) / Plane, in World order),
    except between the dynamic-body pairs (i, j) in `excluded` (bodies joined to each other)."""
    excluded = {frozenset(pair) for pair in excluded}
    found = {name: [] for name in CONTACT_MODELS}

    def add(model, a, b, **constants):
        found[model].append((a, b, constants))

    for plane_index, plane in enumerate(planes):
        for j, body in enumerate(dynamic):
            _pair_candidates(add, plane_index, plane, j, body)
    nb = len(dynamic)
    refs = list(enumerate(dynamic)) + [(nb + i, s) for i, s in enumerate(static_boxes)]
    for ia, (ra, a) in enumerate(refs):
        for rb, b in refs[ia + 1:]:
            if not (a.static and b.static) and frozenset((ra, rb)) not in excluded:
                _pair_candidates(add, ra, a, rb, b)
    return Candidates(nb, {name: _pair_list(rows) for name, rows in found.items()})


def _pair_candidates(add, ra, a, rb, b):
    """The candidates of shapes a and b (refs ra, rb) from SHAPE_PAIRS, swapped if their kinds are listed
    the other way round."""
    if (a.kind, b.kind) not in SHAPE_PAIRS:
        ra, a, rb, b = rb, b, ra, a
    SHAPE_PAIRS[(a.kind, b.kind)](add, ra, rb)


def _pair_list(rows) -> PairList:
    """PairList from (a, b, constants) rows; constants are stacked (tensors) or made a float64 vector."""
    constants = {}
    for key in rows[0][2] if rows else ():
        values = [c[key] for _, _, c in rows]
        constants[key] = (torch.stack(values) if isinstance(values[0], torch.Tensor)
                          else torch.tensor(values, dtype=DTYPE))
    index = lambda i: torch.tensor([row[i] for row in rows], dtype=torch.long)  # noqa: E731
    return PairList(index(0), index(1), **constants)


# ----------------------------------------------------------------------------------------------
# Contacts per step
# ----------------------------------------------------------------------------------------------
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


def detect(cand: Candidates, poses, sizes, frictions, restitutions, planes, dt: float, margin: float,
           decisions: dict | None = None):
    """Evaluate all candidates at the start of a step.

    poses: (x (B, P, 3) m, R (B, P, 3, 3), v (B, P, 3) m/s, omega_body (B, P, 3) rad/s) for the pose table
    (dynamic bodies then static boxes); sizes: (P, 3) m size vectors; frictions, restitutions: (P,);
    planes: dict with point (Np, 3), normal (Np, 3), friction (Np,), restitution (Np,).
    decisions: the discrete choices of an earlier call to reuse (the backward pass), or None to make them.
    Returns (Contacts, decisions).
    """
    fresh = decisions is None
    decisions = {} if fresh else decisions
    geometry = Geometry(*poses, cand.bodies, sizes, frictions, restitutions, planes)
    parts = [model.evaluate(cand.by_model[name], geometry, decisions, fresh)
             for name, model in CONTACT_MODELS.items() if len(cand.by_model[name])]
    if not parts:
        return _no_contacts(geometry.worlds, geometry.x.dtype, decisions), decisions
    return _combine(parts, dt, margin, decisions, fresh), decisions


def _combine(parts: list[PairContacts], dt, margin, decisions, fresh) -> Contacts:
    """Contacts of all models in order, with the rules common to all: a candidate is active when valid and
    within reach of this step, and the impact law's offset."""
    B = parts[0].dist.shape[0]
    cat = lambda k, d=1: torch.cat([getattr(p, k) for p in parts], dim=d)  # noqa: E731
    dist, speed = cat("dist"), cat("speed")
    reach = margin + 2.0 * dt * speed.detach().norm(dim=-1)
    if fresh:
        decisions["active"] = (cat("valid") & (dist.detach() < reach)).detach()
    n = cat("n")
    mu = torch.cat([p.mu.expand(B, -1) for p in parts], dim=1)
    # Newton's impact law, for pairs with restitution e > 0 whose contact closes during this step
    # (φ_k + dt v_n < 0): the step must end at least φ_k + e·dt·|v_n| apart, i.e. the contact stops at
    # its start-of-step gap and leaves with normal speed ≥ e|v_n|.
    e = torch.cat([p.e.expand(B, -1) for p in parts], dim=1)
    v_n = (n * speed).sum(-1)
    if fresh:
        decisions["impact"] = ((e > 0) & (dist + dt * v_n < 0) & (v_n < 0)).detach()
    bounce = dist + e * dt * (-v_n)
    offset = cat("offset") + torch.where(decisions["impact"], bounce, torch.zeros_like(bounce))
    return Contacts(body_a=cat("ia", 0), body_b=cat("ib", 0), normal=n, tangent=tangent_basis(n),
                    rn_a=cat("rn_a"), rn_b=cat("rn_b"), rt_a=cat("rt_a"), rt_b=cat("rt_b"),
                    offset=offset, friction=mu,
                    active=decisions["active"], distance=dist, velocity=speed)


def _no_contacts(B, dtype, decisions) -> Contacts:
    """Contacts with no candidate (a world without touching pairs), for B worlds."""
    e3 = torch.zeros(B, 0, 3, dtype=dtype)
    e = torch.zeros(B, 0, dtype=dtype)
    empty = torch.zeros(0, dtype=torch.long)
    decisions.setdefault("active", torch.zeros(B, 0, dtype=torch.bool))
    decisions.setdefault("impact", torch.zeros(B, 0, dtype=torch.bool))
    return Contacts(empty, empty, e3, torch.zeros(B, 0, 2, 3, dtype=dtype), e3, e3, e3, e3, e, e,
                    decisions["active"], e, e3)


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
