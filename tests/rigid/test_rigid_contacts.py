"""Contact detection and resting configurations for every supported shape pair."""

import numpy as np
import pytest
import torch

import simcore.rigid as rigid
from simcore.rigid import quaternion as quat
from simcore.rigid import step

T64 = dict(dtype=torch.float64)


def detect_all(world):
    state = world.initial_state()
    contacts, _ = step.contacts_for(world.candidates, state.tensors(), world.params(), world.dt, margin=10.0)
    return contacts


def test_signed_distances_and_normals():
    """Geometry: signed distance and normal for sphere–plane, sphere–sphere, sphere–box (outside and
    inside) and box corner–face against hand-computed values."""
    world = rigid.World(dt=0.01)
    world.add(rigid.Plane(point=(0, -1.0, 0), normal=(0, 2.0, 0)))
    world.add(rigid.Sphere(radius=0.5, position=(0, 0, 0)))
    world.add(rigid.Sphere(radius=0.25, position=(3.0, 4.0, 0)))
    world.add(rigid.Box(size=(1.0, 1.0, 1.0), static=True, position=(0, 0, 2.0)))
    c = detect_all(world)
    kinds = world.candidates.pairs()
    dist = c.distance[0].numpy()
    plane = [i for i, k in enumerate(kinds) if k[0] == "plane"]
    assert dist[plane[0]] == pytest.approx(0.5)          # sphere at y = 0, r = 0.5, plane at y = −1
    assert dist[plane[1]] == pytest.approx(4.75)
    ss = kinds.index(("sphere-sphere", 0, 1))
    assert dist[ss] == pytest.approx(5.0 - 0.75)
    assert np.allclose(c.normal[0, ss].numpy(), [-0.6, -0.8, 0])   # from sphere 1 to sphere 0
    sb = [i for i, k in enumerate(kinds) if k[0] == "ball-box"]
    assert dist[sb[0]] == pytest.approx(2.0 - 0.5 - 0.5)          # sphere 0 below the box face z = 1.5
    assert np.allclose(c.normal[0, sb[0]].numpy(), [0, 0, -1])
    # A sphere centre inside a box: negative distance through the nearest face.
    world2 = rigid.World(dt=0.01)
    world2.add(rigid.Sphere(radius=0.1, position=(0.4, 0.0, 0.0)))
    world2.add(rigid.Box(size=(1.0, 1.0, 1.0), static=True))
    c2 = detect_all(world2)
    assert c2.distance[0, 0].item() == pytest.approx(-0.1 - 0.1)
    assert np.allclose(c2.normal[0, 0].numpy(), [1, 0, 0])


def test_box_corner_face_distance():
    """Geometry: a box hovering 0.1 m above another gets vertex–face contacts with φ = 0.1 m along the
    lower box's top-face normal, one per corner of its bottom (incident) face."""
    world = rigid.World(dt=0.01)
    world.add(rigid.Box(size=(0.5, 0.5, 0.5), position=(0.1, 0.6, 0.0)))
    world.add(rigid.Box(size=(1.0, 0.5, 1.0), static=True, position=(0, 0, 0)))
    c = detect_all(world)
    active = c.active[0].numpy()
    # The 4 bottom corners of the small box lie over the big top face; its top corners are not on the
    # incident face, and the big box's corners are outside the small box's face.
    assert active.sum() == 4
    assert np.allclose(c.distance[0, active].numpy(), 0.1)
    assert np.allclose(c.normal[0, active].numpy(), [0, 1, 0])
    assert {k[0] for k, on in zip(world.candidates.pairs(), active) if on} == {"vertex-face"}


@pytest.fixture(scope="module")
def resting_scenes():
    g = (0, -9.81, 0)
    out = {}
    w = rigid.World(dt=0.01, gravity=g)
    w.add(rigid.Plane(friction=0.5))
    w.add(rigid.Box(size=(1.0, 0.4, 1.0), density=1e3, position=(0, 0.2, 0)))
    w.add(rigid.Sphere(radius=0.1, density=500.0, position=(0.1, 0.65, -0.1)))
    out["sphere_on_box"] = w.run(steps=100)
    w = rigid.World(dt=0.01, gravity=g)
    w.add(rigid.Box(size=(2.0, 0.2, 2.0), static=True, position=(0, -0.1, 0), friction=0.5))
    w.add(rigid.Box(size=(0.3, 0.3, 0.3), density=1e3, position=(0.2, 0.15, 0.0), velocity=(0.5, 0, 0)))
    out["box_on_static_box"] = w.run(steps=100)
    w = rigid.World(dt=0.01, gravity=g)
    w.add(rigid.Plane(friction=0.5))
    s = np.sqrt(0.5)
    # Axis along body z: the first lies along world z, the second stands (z turned onto world y).
    w.add(rigid.Capsule(radius=0.1, length=0.6, density=1e3, position=(0, 0.15, 0)))
    w.add(rigid.Capsule(radius=0.1, length=0.6, density=1e3, position=(1.0, 0.45, 0), orientation=(s, s, 0, 0)))
    out["capsules"] = w.run(steps=100)
    return out


def test_sphere_rests_on_dynamic_box(resting_scenes):
    """Static equilibrium (sphere–box and box–plane contact): the sphere comes to rest on the top face,
    its centre one radius above it."""
    traj = resting_scenes["sphere_on_box"]
    assert traj.position[-1, 1, 1] == pytest.approx(0.4 + 0.1, abs=1e-4)
    assert traj.position[-1, 0, 1] == pytest.approx(0.2, abs=1e-4)
    assert np.abs(traj.velocity[-1]).max() < 1e-6


def test_box_slides_to_rest_on_static_box(resting_scenes):
    """Law: Coulomb friction on a static box face (box–static box contact): the box slides
    v0²/(2 μ g) with μ = 1 · 0.5 (product rule), within v0·dt, and rests on the face."""
    traj = resting_scenes["box_on_static_box"]
    assert traj.position[-1, 0, 1] == pytest.approx(0.15, abs=1e-4)
    assert np.abs(traj.velocity[-1]).max() < 1e-6
    travelled = traj.position[-1, 0, 0] - 0.2
    assert abs(travelled - 0.5 ** 2 / (2 * 0.5 * 9.81)) < 0.5 * 0.01


def test_capsules_rest_on_plane(resting_scenes):
    """Static equilibrium (capsule–plane contact): a lying capsule rests at one radius, a standing one
    at radius plus half its length."""
    traj = resting_scenes["capsules"]
    assert traj.position[-1, 0, 1] == pytest.approx(0.1, abs=1e-4)
    assert traj.position[-1, 1, 1] == pytest.approx(0.1 + 0.3, abs=1e-4)
    assert np.abs(traj.velocity[-1]).max() < 1e-6


def test_inelastic_sphere_collision_conserves_momentum():
    """Law: momentum conservation in a perfectly inelastic head-on collision (no restitution): the
    spheres leave together at (m1 v1 + m2 v2)/(m1 + m2), and total momentum is unchanged throughout.
    The central-path slack γ s = κ acts as a weak barrier that pushes the spheres apart after impact at a
    speed proportional to κ (measured: 1.4e-2 m/s at κ = 1e-6, 1.4e-4 m/s at κ = 1e-8), so this uses
    κ = 1e-8."""
    world = rigid.World(dt=0.01, gravity=(0, 0, 0), rtol=1e-10, kappa=1e-8)
    a = world.add(rigid.Sphere(radius=0.1, density=1e3, position=(-0.3, 0, 0), velocity=(2.0, 0, 0)))
    b = world.add(rigid.Sphere(radius=0.2, density=1e3, position=(0.3, 0, 0), velocity=(-1.0, 0, 0)))
    traj = world.run(steps=40)
    m = np.array([float(a.mass), float(b.mass)])
    p = (m[None, :, None] * traj.velocity).sum(1)
    assert np.abs(p - p[0]).max() < 1e-8 * np.abs(p[0]).max() + 1e-10
    v_common = (m[0] * 2.0 - m[1] * 1.0) / m.sum()
    assert np.allclose(traj.velocity[-1, :, 0], v_common, atol=3e-3)
    assert traj.position[-1, 1, 0] - traj.position[-1, 0, 0] == pytest.approx(0.3, abs=1e-2)


def test_analytic_jacobian_matches_autodiff():
    """The closed-form ∂r/∂w of integrator.equations equals forward-mode autodiff of r, with spinning
    bodies, every contact kind, a frictionless body and nonzero impulses (curvature terms active)."""
    torch.manual_seed(0)
    world = rigid.World(dt=0.05)
    world.add(rigid.Plane(point=(0, 0, 0), normal=(0.1, 1, 0.2), friction=0.5))
    world.add(rigid.Box(size=(0.5, 0.4, 0.3), position=(0, 0.5, 0), orientation=(0.9, 0.2, 0.3, 0.1),
                        velocity=(1, -2, 0.5), angular_velocity=(1, 2, 3)))
    world.add(rigid.Sphere(radius=0.2, position=(0.2, 0.9, 0.1), angular_velocity=(1, 0, 2), friction=0.0))
    world.add(rigid.Box(size=(0.3, 0.3, 0.3), static=True, position=(0.1, 1.3, 0)))
    world.add(rigid.Box(size=(0.3, 0.2, 0.3), position=(0.0, 0.6, 0.5), angular_velocity=(0.5, 0.1, 0.3)))
    world.add(rigid.Capsule(radius=0.1, length=0.3, position=(1.0, 0.5, 0.0), angular_velocity=(0.3, 0.2, 0.1)))
    state, prm = world.initial_state(2), world.params()
    contacts = detect_all(world)
    nb, C = 4, contacts.normal.shape[1]
    w = torch.rand(2, 6 * nb + 8 * C, **T64)
    w[:, :6 * nb] = torch.randn(2, 6 * nb, **T64)
    controls = torch.randn(2, nb, 6, **T64)

    def r(ww):
        return step.equations(ww, 0.0, state.tensors(), controls, prm, contacts, world.dt, jacobian=False)[0]

    _, J = step.equations(w, 0.0, state.tensors(), controls, prm, contacts, world.dt)
    J_ad = torch.func.jacfwd(r)(w)
    J_ad = torch.stack([J_ad[b, :, b] for b in range(2)])
    assert contacts.active.any()
    assert (J - J_ad).abs().max() < 1e-12 * J_ad.abs().max()


@pytest.mark.parametrize("e", [0.5, 0.8])
def test_ball_bounces_to_restitution_squared_height(e):
    """Law: Newton's impact law v⁺ = −e v⁻ with ballistic flight gives a bounce apex e² h; checked
    within 2 % (dt 0.002, h 0.5 m)."""
    world = rigid.World(dt=0.002, gravity=(0, -9.81, 0))
    world.add(rigid.Plane(friction=0.5, restitution=e))
    world.add(rigid.Sphere(radius=0.1, density=1e3, position=(0, 0.6, 0)))
    traj = world.run(steps=int(round((1 + e) * np.sqrt(2 * 0.5 / 9.81) / 0.002)) + 20)
    height = traj.position[:, 0, 1] - 0.1
    first_up = int(np.argmax(traj.velocity[:, 0, 1] > 0))
    assert first_up > 0
    assert height[first_up:].max() == pytest.approx(e**2 * 0.5, rel=0.02)


def test_capsule_capsule_and_capsule_sphere_distances():
    """Geometry: distance between capsules is the distance of their axis segments minus both radii,
    here for crossed capsules (closest points mid-axis) and a sphere beyond a capsule's end cap."""
    s = np.sqrt(0.5)
    world = rigid.World(dt=0.01)
    world.add(rigid.Capsule(radius=0.1, length=1.0, position=(0, 0, 0)))                          # axis z
    world.add(rigid.Capsule(radius=0.2, length=1.0, position=(1.0, 0, 0), orientation=(s, s, 0, 0)))  # axis y
    world.add(rigid.Sphere(radius=0.05, position=(0, 0, 1.0)))
    c = detect_all(world)
    kinds = world.candidates.pairs()
    d = dict(zip(kinds, c.distance[0].numpy()))
    assert d[("segment-segment", 0, 1)] == pytest.approx(1.0 - 0.3)
    assert d[("segment-segment", 0, 2)] == pytest.approx(0.5 - 0.15)   # end cap centre at z = 0.5
    i = kinds.index(("segment-segment", 0, 2))
    assert np.allclose(c.normal[0, i].numpy(), [0, 0, -1])            # from the sphere to capsule 0


@pytest.mark.parametrize("first,second", [("sphere", "box"), ("capsule", "box"), ("sphere", "capsule"),
                                          ("box", "box")])
def test_contacts_do_not_depend_on_the_order_shapes_are_added(first, second):
    """The pair table (collision.SHAPE_PAIRS) lists sphere–box and capsule–box one way round, and a pair
    added the other way is swapped: either order gives the same candidates and distances, and for those
    pairs the same normals (from the box to the ball or capsule). A static box added last touches both."""
    q = (0.9, 0.3, 0.2, 0.1)
    make = {"sphere": lambda p: rigid.Sphere(radius=0.2, position=p),
            "capsule": lambda p: rigid.Capsule(radius=0.1, length=0.5, position=p, orientation=q),
            "box": lambda p: rigid.Box(size=(0.4, 0.3, 0.5), position=p, orientation=q)}

    def contacts(order):
        world = rigid.World(dt=0.01)
        for kind, position in order:
            world.add(make[kind](position))
        world.add(rigid.Box(size=(1.0, 0.2, 1.0), static=True, position=(0, -0.3, 0)))
        c = detect_all(world)
        out = {}
        for i, (kind, _, _) in enumerate(world.candidates.pairs()):
            normal = c.normal[0, i].tolist() if kind in ("ball-box", "segment-face") else []
            out.setdefault(kind, []).append([float(c.distance[0, i])] + normal)
        return {kind: np.array(sorted(rows)) for kind, rows in out.items()}

    forward = contacts([(first, (0, 0, 0)), (second, (0.1, 0.45, 0.05))])
    backward = contacts([(second, (0.1, 0.45, 0.05)), (first, (0, 0, 0))])
    assert forward.keys() == backward.keys()
    for kind in forward:
        assert np.allclose(forward[kind], backward[kind], atol=1e-12), kind


def test_crossed_capsules_collide_centrally():
    """Law: momentum conservation in an inelastic central impact between crossed capsules (contact at
    mid-axis, so no spin is induced)."""
    s = np.sqrt(0.5)
    world = rigid.World(dt=0.01, gravity=(0, 0, 0), kappa=1e-8)
    a = world.add(rigid.Capsule(radius=0.1, length=0.6, density=1e3, position=(-0.3, 0, 0), velocity=(1.0, 0, 0)))
    b = world.add(rigid.Capsule(radius=0.1, length=0.6, density=1e3, position=(0.3, 0, 0),
                                orientation=(s, s, 0, 0), velocity=(-1.0, 0, 0)))
    traj = world.run(steps=40)
    m = np.array([float(a.mass), float(b.mass)])
    p = (m[None, :, None] * traj.velocity).sum(1)
    assert np.abs(p - p[0]).max() < 1e-8
    assert np.abs(traj.velocity[-1, :, 0]).max() < 1e-3                  # equal masses: both stop
    assert np.abs(traj.angular_velocity[-1]).max() < 1e-6
    assert traj.position[-1, 1, 0] - traj.position[-1, 0, 0] == pytest.approx(0.2, abs=1e-3)


def test_capsule_rests_across_a_static_box():
    """Static equilibrium (capsule end caps against a box face): a capsule lying on a static box rests
    one radius above its top face."""
    world = rigid.World(dt=0.01, gravity=(0, -9.81, 0))
    world.add(rigid.Box(size=(2.0, 0.2, 2.0), static=True, position=(0, -0.1, 0)))
    world.add(rigid.Capsule(radius=0.1, length=0.6, density=1e3, position=(0.2, 0.15, 0.1)))
    traj = world.run(steps=60)
    assert traj.position[-1, 0, 1] == pytest.approx(0.1, abs=1e-4)
    assert np.abs(traj.velocity[-1]).max() < 1e-6


def test_box_rests_edge_on_crossed_edge():
    """Geometry and equilibrium of edge–edge contact: a box with a bottom edge along x dropped onto a
    static box with a top ridge along z touches edge to edge (no corner is over a face): it is detected
    5 cm above at the start and rests with its centre 2·0.2√2 m up, within 1e-4 m."""
    c, s = np.cos(np.pi / 8), np.sin(np.pi / 8)
    half_diagonal = 0.2 * np.sqrt(2)
    world = rigid.World(dt=0.01)
    world.add(rigid.Box(size=(0.4, 0.4, 0.4), static=True, orientation=(c, 0, 0, s)))
    world.add(rigid.Box(size=(0.4, 0.4, 0.4), position=(0, 2 * half_diagonal + 0.05, 0), orientation=(c, s, 0, 0)))
    contacts = detect_all(world)
    i = world.candidates.pairs().index(("edge-edge", 0, 1))
    assert contacts.active[0, i]
    assert contacts.distance[0, i].item() == pytest.approx(0.05)
    assert np.allclose(contacts.normal[0, i].numpy(), [0, 1, 0])
    traj = world.run(steps=100)
    assert traj.position[-1, 0, 1] == pytest.approx(2 * half_diagonal, abs=1e-4)
    assert np.abs(traj.velocity[-1]).max() < 1e-6


def test_frictionless_box_keeps_sliding():
    """Law: with μ = 0 the contact exerts no tangential force, so a sliding box keeps its velocity
    (Newton's first law along the plane) while resting on it."""
    world = rigid.World(dt=0.01, gravity=(0, -9.81, 0))
    world.add(rigid.Plane(friction=0.0))
    world.add(rigid.Box(size=(0.5, 0.5, 0.5), position=(0, 0.25, 0), velocity=(2.0, 0, 1.0)))
    traj = world.run(steps=50)
    assert np.allclose(traj.velocity[-1, 0, [0, 2]], [2.0, 1.0], atol=1e-12)
    assert abs(traj.velocity[-1, 0, 1]) < 1e-6
    assert traj.position[-1, 0, 1] == pytest.approx(0.25, abs=1e-4)


def _tilt(orientation):
    """Angle (rad) between each body's y axis and the world y axis; orientation (…, 4)."""
    up = quat.to_matrix(torch.as_tensor(orientation))[..., :, 1]
    return np.arccos(np.clip(up[..., 1].numpy(), -1.0, 1.0))


def test_box_rests_level_on_static_box():
    """Static equilibrium (Newton–Euler: zero net force and torque) on a four-point box–box manifold: a
    box resting flat on a larger static box is held by its four bottom corners and stays level (tilt
    < 1e-6 rad) and in place over 500 steps, its centre half its height above the top face."""
    world = rigid.World(dt=0.01, gravity=(0, -9.81, 0))
    world.add(rigid.Box(size=(1.0, 0.2, 1.0), static=True, position=(0, -0.1, 0)))
    world.add(rigid.Box(size=(0.4, 0.3, 0.4), density=1e3, position=(0.1, 0.15, 0.05)))
    contacts = detect_all(world)
    kinds = [k[0] for k, on in zip(world.candidates.pairs(), contacts.active[0]) if on]
    assert kinds == ["vertex-face"] * 4
    traj = world.run(steps=500)
    assert (traj.contacts == 4).all()
    assert _tilt(traj.orientation[:, 0]).max() < 1e-6
    assert np.abs(traj.position[:, 0, [0, 2]] - [0.1, 0.05]).max() < 1e-9
    assert traj.position[-1, 0, 1] == pytest.approx(0.15, abs=1e-4)


def test_box_turned_on_equal_box_rests_on_eight_edge_crossings():
    """Geometry and static equilibrium: an equal box turned 45° about the vertical on another touches it
    on an octagon (no corner is over the other's face); the manifold gives its 8 vertices as
    edge crossings, and the box rests level, its centre one box height up."""
    c, s = np.cos(np.pi / 8), np.sin(np.pi / 8)
    world = rigid.World(dt=0.01, gravity=(0, -9.81, 0))
    world.add(rigid.Box(size=(0.4, 0.4, 0.4), static=True))
    world.add(rigid.Box(size=(0.4, 0.4, 0.4), density=1e3, position=(0, 0.4, 0), orientation=(c, 0, s, 0)))
    contacts = detect_all(world)
    on = contacts.active[0]
    assert [k[0] for k, a in zip(world.candidates.pairs(), on) if a] == ["edge-crossing"] * 8
    # The octagon's vertices lie 0.2 m from the centre axis on the sides of the static top face.
    radial = contacts.rn_b[0, on][:, [0, 2]].abs().max(-1).values
    assert np.allclose(radial.numpy(), 0.2)
    traj = world.run(steps=100)
    assert (traj.contacts == 8).all()
    assert _tilt(traj.orientation[:, 0]).max() < 1e-6
    assert traj.position[-1, 0, 1] == pytest.approx(0.4, abs=1e-4)


def test_aligned_stack_has_four_contacts_per_pair():
    """Geometry: equal, aligned boxes stacked touch face to face; the manifold has exactly the four
    corners (coincident corners of the two faces are not doubled)."""
    world = rigid.World(dt=0.01)
    world.add(rigid.Box(size=(0.5, 0.5, 0.5), position=(0, 0.25, 0)))
    world.add(rigid.Box(size=(0.5, 0.5, 0.5), position=(0, 0.75, 0)))
    contacts = detect_all(world)
    on = contacts.active[0]
    box_box = [k for k, a in zip(world.candidates.pairs(), on) if a and k[0] != "plane"]
    assert box_box == [("vertex-face", 0, 1)] * 4
    assert np.allclose(contacts.distance[0, on].numpy(), 0.0, atol=1e-12)


def test_capsule_lying_across_box_top_rests_at_radius():
    """Static equilibrium (segment–face contact): a capsule lying across a narrower box, both end caps
    overhanging, is held where its axis crosses the two top edges (two segment–face contacts), rests
    one radius above the top face and does not drift (< 1e-6 m over 300 steps)."""
    s = np.sqrt(0.5)
    world = rigid.World(dt=0.01, gravity=(0, -9.81, 0))
    world.add(rigid.Box(size=(0.4, 0.2, 0.4), static=True, position=(0, -0.1, 0)))
    world.add(rigid.Capsule(radius=0.05, length=0.8, density=1e3, position=(0.03, 0.05, 0.02),
                            orientation=(s, 0, s, 0)))   # axis along world x
    contacts = detect_all(world)
    on = contacts.active[0]
    kinds = [k[0] for k, a in zip(world.candidates.pairs(), on) if a]
    assert kinds.count("segment-face") == 2
    face = [i for i, (k, a) in enumerate(zip(world.candidates.pairs(), on)) if a and k[0] == "segment-face"]
    assert np.allclose(np.sort(contacts.rn_b[0, face, 0].numpy()), [-0.2, 0.2])   # the two top edges
    assert np.allclose(contacts.distance[0, face].numpy(), 0.0, atol=1e-12)
    traj = world.run(steps=300)
    assert traj.position[-1, 0, 1] == pytest.approx(0.05, abs=1e-4)
    # Off-centre, the two edge contacts carry different loads; the κ-relaxed cones let the capsule settle
    # 1e-7 m sideways in the first step, then it creeps < 1e-9 m/s.
    assert np.abs(traj.position[:, 0, [0, 2]] - [0.03, 0.02]).max() < 1e-6
    assert np.abs(traj.velocity[-1]).max() < 1e-8


def test_tossed_box_settles_on_static_box():
    """Static equilibrium after impacts (box–box manifold through changing reference and incident
    faces): a spinning box tossed onto a static box comes to rest on one face, held by 4 contacts, its
    centre one half extent above the top face (within 1e-3 m)."""
    world = rigid.World(dt=0.05, gravity=(0, -9.81, 0), rtol=1e-10)
    world.add(rigid.Box(size=(1.5, 0.2, 1.5), static=True, position=(0, -0.1, 0)))
    world.add(rigid.Box(size=(0.4, 0.3, 0.5), density=1e3, position=(0.1, 0.6, 0), orientation=(0.95, 0.2, 0.1, 0.2),
                        velocity=(0.5, 0, 0.3), angular_velocity=(2, 1, 0)))
    traj = world.run(steps=60)
    assert np.abs(traj.velocity[-1]).max() < 1e-8 and np.abs(traj.angular_velocity[-1]).max() < 1e-8
    assert min(abs(traj.position[-1, 0, 1] - h) for h in (0.2, 0.15, 0.25)) < 1e-3
    assert traj.contacts[-1] == 4
