"""Physics checks of simcore.rigid against closed-form laws (issue 5). Each test names its law."""

import numpy as np
import pytest
import torch

import simcore.rigid as rigid
from simcore.rigid import integrator
from simcore.rigid import quaternion as quat

G = 9.81


def tossed_box(dt, rtol=1e-10):
    world = rigid.World(dt=dt, gravity=(0, -G, 0), rtol=rtol)
    world.add(rigid.Plane(point=(0, 0, 0), normal=(0, 1, 0), friction=0.5))
    world.add(rigid.Box(size=(0.5, 0.5, 0.5), density=1e3, position=(0, 1.0, 0),
                        orientation=(0.95, 0.2, 0.1, 0.2), velocity=(1, 0, 0.5), angular_velocity=(2, 1, 0)))
    return world, world.run(steps=int(round(3.0 / dt)))


@pytest.fixture(scope="module")
def settled():
    return {dt: tossed_box(dt)[1] for dt in (0.1, 0.05, 0.01)}


@pytest.mark.parametrize("dt", [0.1, 0.05, 0.01])
def test_tossed_box_settles_at_rest_on_a_face(settled, dt):
    """Law: inelastic hard contact with Coulomb friction dissipates the toss; static equilibrium is
    a box at rest on a face, centre at half its edge (0.25 m) above the plane."""
    traj = settled[dt]
    assert np.abs(traj.velocity[-1]).max() < 1e-8
    assert np.abs(traj.angular_velocity[-1]).max() < 1e-8
    assert abs(traj.position[-1, 0, 1] - 0.25) < 1e-3
    # It did tumble: the final orientation is not the initial one.
    assert np.abs(traj.orientation[-1, 0] - traj.orientation[0, 0]).max() > 1e-2


@pytest.fixture(scope="module")
def sliding():
    v0, mu, dt = 4.0, 0.5, 0.01
    direction = np.array([3.0, 0.0, 4.0]) / 5.0  # diagonal to the tangent basis: a pyramid would drift
    world = rigid.World(dt=dt, gravity=(0, -G, 0))
    world.add(rigid.Plane(friction=mu))
    world.add(rigid.Box(size=(0.5, 0.5, 0.5), density=1e3, position=(0, 0.25, 0), velocity=v0 * direction))
    return dict(v0=v0, mu=mu, dt=dt, direction=direction, traj=world.run(steps=150))


def test_sliding_box_stops_at_coulomb_distance(sliding):
    """Law: Coulomb friction μ m g does work μ m g d = ½ m v0², so the box stops after
    d = v0² / (2 μ g), within one step of travel (v0·dt); the friction cone keeps the force exactly
    opposite the velocity, so there is no sideways drift (< 1e-6 m)."""
    s = sliding
    traj, u = s["traj"], s["direction"]
    displacement = traj.position[-1, 0] - traj.position[0, 0]
    along = displacement @ u
    lateral = displacement - along * u
    lateral[1] = 0.0
    assert abs(along - s["v0"] ** 2 / (2 * s["mu"] * G)) < s["v0"] * s["dt"]
    assert np.linalg.norm(lateral) < 1e-6
    assert np.abs(traj.velocity[-1]).max() < 1e-6


def test_sliding_box_decelerates_at_mu_g(sliding):
    """Law: while sliding, dv/dt = −μ g along the motion (Coulomb's law with normal force m g)."""
    s = sliding
    speed = np.linalg.norm(s["traj"].velocity[:, 0], axis=-1)
    decel = -(speed[30] - speed[10]) / (20 * s["dt"])
    assert decel == pytest.approx(s["mu"] * G, rel=1e-3)


@pytest.fixture(scope="module")
def rolling():
    v0, mu, radius, dt = 2.0, 0.3, 0.1, 0.002
    world = rigid.World(dt=dt, gravity=(0, -G, 0))
    world.add(rigid.Plane(friction=mu))
    world.add(rigid.Sphere(radius=radius, density=1e3, position=(0, radius, 0), velocity=(v0, 0, 0)))
    return dict(v0=v0, mu=mu, radius=radius, dt=dt, traj=world.run(steps=200))


def test_sliding_sphere_starts_rolling_at_five_sevenths(rolling):
    """Law: friction at the contact exerts no torque about the contact point, so angular momentum about
    it is conserved: m v0 r = m v r + (2/5) m r² ω with v = ω r gives v = 5/7 v0, reached at
    t = 2 v0 / (7 μ g) (uniform deceleration μ g). Checked within 2 %."""
    r = rolling
    traj = r["traj"]
    v = traj.velocity[:, 0, 0]
    slip = v + traj.angular_velocity[:, 0, 2] * r["radius"]
    t_expected = 2 * r["v0"] / (7 * r["mu"] * G)
    # Rolling starts when the slip stops changing (it decreases by 3.5 μ g dt per step while sliding).
    change = np.abs(np.diff(slip))
    k = int(np.argmax(change < 1e-3 * 3.5 * r["mu"] * G * r["dt"]))
    assert k > 0
    assert traj.time[k] == pytest.approx(t_expected, rel=0.02)
    assert v[k] == pytest.approx(5 / 7 * r["v0"], rel=0.02)
    assert v[-1] == pytest.approx(5 / 7 * r["v0"], rel=0.02)


def test_rolling_sphere_satisfies_v_equals_omega_r(rolling):
    """Law: rolling without slipping, v = ω r. The witness point moves along a chord, so the discrete
    condition is v = r sin(θ)/dt with θ the step rotation: v = ω r up to (ω dt)² / 8."""
    r = rolling
    traj = r["traj"]
    k = int(0.25 / r["dt"])
    v = traj.velocity[k:, 0, 0]
    omega_r = -traj.angular_velocity[k:, 0, 2] * r["radius"]
    tol = (omega_r / r["radius"] * r["dt"]) ** 2 / 8 * np.abs(v) + 1e-9
    assert np.all(np.abs(v - omega_r) <= 1.01 * tol)
    assert np.all(np.abs(v - omega_r) <= 2e-4 * np.abs(v))


@pytest.fixture(scope="module")
def free_flight():
    world = rigid.World(dt=0.01, gravity=(0, 0, 0), rtol=1e-12)
    body = world.add(rigid.Box(size=(0.2, 0.5, 1.0), density=500.0, velocity=(1, 2, 3),
                               angular_velocity=(1, 2, 3)))
    return world, body, world.run(steps=500)


def test_free_body_conserves_energy_and_momentum(free_flight):
    """Law: discrete Noether theorem — the variational integrator conserves linear and (discrete)
    angular momentum exactly in free flight, and for the free rigid body (Moser–Veselov) the kinetic
    energy ½ m|v|² + ½ ωᵀJω of the discrete velocities; drift < 1e-8 (relative) over 5 s."""
    world, body, traj = free_flight
    J, m = body.inertia.detach(), float(body.mass)
    q = torch.tensor(traj.orientation[:, 0])
    R = quat.to_matrix(q)
    om_body = (R.transpose(-1, -2) @ torch.tensor(traj.angular_velocity[:, 0])[..., None])[..., 0]
    energy = 0.5 * m * (traj.velocity[:, 0] ** 2).sum(-1) + 0.5 * torch.einsum(
        "ti,ij,tj->t", om_body, J, om_body).numpy()
    L = integrator.angular_momentum(q, om_body, J, world.dt).numpy()
    p = m * traj.velocity[:, 0]
    assert np.abs(energy - energy[0]).max() / energy[0] < 1e-8
    assert np.abs(L - L[0]).max() / np.linalg.norm(L[0]) < 1e-8
    assert np.abs(p - p[0]).max() / np.linalg.norm(p[0]) < 1e-8
    # The body does tumble (an asymmetric top): world-frame ω changes while L stays.
    assert np.abs(traj.angular_velocity[-1, 0] - traj.angular_velocity[0, 0]).max() > 0.1


@pytest.fixture(scope="module")
def stack():
    world = rigid.World(dt=0.01, gravity=(0, -G, 0))
    world.add(rigid.Plane(friction=0.5))
    for i in range(3):
        world.add(rigid.Box(size=(0.5, 0.5, 0.5), density=1e3, position=(0, 0.25 + 0.5 * i, 0)))
    return world.run(steps=1000)


def test_stack_of_three_boxes_stays_standing(stack):
    """Law: static equilibrium of a stack under hard contact — every box stays where it is (gaps are
    the central-path slack κ/γ) and nothing penetrates more than 1e-4 m over 1,000 steps."""
    y = stack.position[:, :, 1]
    gaps = np.stack([y[:, 0] - 0.25, y[:, 1] - y[:, 0] - 0.5, y[:, 2] - y[:, 1] - 0.5], -1)
    assert gaps.min() > -1e-4
    assert gaps.max() < 1e-4
    assert np.abs(stack.position[:, :, [0, 2]]).max() < 1e-6
    assert np.abs(stack.orientation[-1] - [1, 0, 0, 0]).max() < 1e-6


def test_median_interior_point_iterations(settled, sliding, rolling, stack):
    """Solver efficiency: median interior-point iterations per step ≤ 15 on the issue's scenes at
    rtol 1e-6 (the settled runs above use the stricter 1e-10 and are held to the same bound)."""
    toss = tossed_box(0.05, rtol=1e-6)[1]
    for traj in (toss, *settled.values(), sliding["traj"], rolling["traj"], stack):
        assert np.median(traj.iterations) <= 15


@pytest.mark.parametrize("theta_deg,mu", [(30.0, 0.3), (20.0, 0.5)])
def test_box_on_incline_follows_coulomb(theta_deg, mu):
    """Law: on an incline of angle θ a box slides down with a = g (sin θ − μ cos θ) if tan θ > μ and
    stays put otherwise (static friction). The plane normal is tilted and gravity is a plain vector:
    nothing assumes an up axis."""
    theta = np.radians(theta_deg)
    normal = np.array([np.sin(theta), np.cos(theta), 0.0])
    downhill = np.array([np.cos(theta), -np.sin(theta), 0.0])
    world = rigid.World(dt=0.01, gravity=(0, -G, 0))
    world.add(rigid.Plane(point=(0, 0, 0), normal=normal, friction=mu))
    world.add(rigid.Box(size=(0.5, 0.5, 0.5), density=1e3, position=0.25 * normal,
                        orientation=(np.cos(-theta / 2), 0, 0, np.sin(-theta / 2))))
    traj = world.run(steps=60)
    along = traj.velocity[:, 0] @ downhill
    if np.tan(theta) > mu:
        accel = (along[50] - along[20]) / (30 * world.dt)
        assert accel == pytest.approx(G * (np.sin(theta) - mu * np.cos(theta)), rel=1e-3)
    else:
        assert np.abs(traj.velocity[-1]).max() < 1e-6
        assert np.abs(traj.position[-1, 0] - traj.position[0, 0]).max() < 1e-5
