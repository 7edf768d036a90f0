"""The μ(I) rheology (Jop, Forterre & Pouliquen 2006, Nature 441) as an MPM material (Dunatunga & Kamrin
2015): the closed-form return map, steady Bagnold flow down a rough incline, stop or flow on either side
of the static friction angle, the static angle of a slumped heap, and rate dependence.

CPU, float64, 2D. Every scene here has one configuration (2D, grid 64, GranularMuI, one sticky plane):
one compiled solver serves the whole module; material values, gravity and the plane's velocity are data.
"""

import math

import numpy as np
import pytest
import taichi as ti
from test_granular_and_fluid import BASE as HEAP_FLOOR
from test_granular_and_fluid import flank_slope

import simcore as sc
from simcore.mpm import constitutive
from simcore.mpm.config import BOUND

M = sc.materials
GRID = 64
DX = 1 / GRID
G = 9.8
# Jop et al. 2006's glass beads (GranularMuI's defaults), and the packing fraction density / grain_density.
MU_S, MU_2, I0, GRAIN_DENSITY, PHI = 0.382, 0.643, 0.279, 2450.0, 0.6
# The incline's sticky floor: grid nodes below it (index <= 4) take the floor's velocity.
FLOOR = 4.5 * DX


@pytest.fixture(scope="module", autouse=True)
def cpu64_module(cpu64):
    return cpu64


# ---------------------------------------------------------------------------------------------------
# The return map, checked against the law it solves
# ---------------------------------------------------------------------------------------------------
_kernels = {}


def return_map(eps, mu, lam, plastic, dt):
    """mu_i_return_map on rows of trial Hencky strains eps (n, dim) with per-row plastic (n, 3)."""
    dim = eps.shape[1]
    if dim not in _kernels:
        @ti.kernel
        def kernel(eps_in: ti.types.ndarray(), plastic_in: ti.types.ndarray(), out: ti.types.ndarray(),
                   mu: ti.f64, lam: ti.f64, dt: ti.f64):
            for n in range(eps_in.shape[0]):
                e = ti.Vector([eps_in[n, i] for i in ti.static(range(dim))], dt=ti.f64)
                p = ti.Vector([plastic_in[n, i] for i in ti.static(range(3))], dt=ti.f64)
                returned, _ = constitutive.mu_i_return_map(e, mu, lam, p, dt)
                for i in ti.static(range(dim)):
                    out[n, i] = returned[i]

        _kernels[dim] = kernel
    out = np.zeros_like(eps)
    _kernels[dim](np.ascontiguousarray(eps), np.ascontiguousarray(plastic), out, mu, lam, dt)
    return out


def invariants(eps, mu, lam):
    """Pressure p = −tr τ / d and equivalent shear stress τ_eq = ‖dev τ‖ / √2 (Pa) of the Hencky
    (St. Venant–Kirchhoff) Kirchhoff stress τ = 2μ ε + λ tr ε of principal strains eps (n, d)."""
    tau = 2 * mu * eps + lam * eps.sum(1, keepdims=True)
    p = -tau.mean(1)
    return p, np.linalg.norm(tau + p[:, None], axis=1) / math.sqrt(2)


def packed(mu_s, mu_2, i0, d, rho_s, n):
    """GranularMuI's plastic slots (μs, μ2 − μs, I0 / (d sqrt ρs)) for n rows."""
    return np.tile([mu_s, mu_2 - mu_s, i0 / (d * math.sqrt(rho_s))], (n, 1))


@pytest.mark.parametrize("dim", [2, 3])
def test_return_map_solves_the_mu_of_I_law(dim):
    """For yielding trial states the returned stress satisfies τ_eq = μ(I) p with the plastic shear rate
    of the substep γ̇p = (τ_tr − τ_eq) / (μ dt) and I = γ̇p d sqrt(ρs / p_c), p_c = p / J (Jop et al.
    2006 in Dunatunga & Kamrin 2015's elastic-plastic form) to round-off; it keeps tr ε and the
    direction of dev ε; trial states inside τ_eq ≤ μs p are kept; expanded ones (tr ε ≥ 0) are stress-free."""
    mu, lam, dt, d = 4e4, 6e4, 2e-4, 0.01
    rng = np.random.default_rng(dim)
    n = 400
    eps = rng.normal(0, 0.02, (n, dim))
    eps -= (0.01 + 0.02 * rng.random((n, 1))) / dim  # most compressed; some still expanded
    plastic = packed(MU_S, MU_2, I0, d, GRAIN_DENSITY, n)
    out = return_map(eps, mu, lam, plastic, dt)

    trace = eps.sum(1)
    p_trial, tau_trial = invariants(eps, mu, lam)
    p, tau = invariants(out, mu, lam)
    expanded = trace >= 0
    elastic = ~expanded & (tau_trial <= MU_S * p_trial)
    yielding = ~expanded & ~elastic
    assert expanded.sum() > 10 and elastic.sum() > 10 and yielding.sum() > 100
    assert np.all(out[expanded] == 0)
    assert np.array_equal(out[elastic], eps[elastic])

    y = yielding
    np.testing.assert_allclose(out[y].sum(1), trace[y], rtol=1e-12)  # no dilatancy: p unchanged
    dev_in, dev_out = eps[y] - trace[y, None] / dim, out[y] - trace[y, None] / dim
    np.testing.assert_allclose(dev_out * np.linalg.norm(dev_in, axis=1, keepdims=True),
                               dev_in * np.linalg.norm(dev_out, axis=1, keepdims=True), atol=1e-15)
    shear_rate = (tau_trial[y] - tau[y]) / (mu * dt)
    inertial = shear_rate * d * np.sqrt(GRAIN_DENSITY / (p[y] * np.exp(-trace[y])))
    friction = MU_S + (MU_2 - MU_S) / (I0 / inertial + 1)
    np.testing.assert_allclose(tau[y], friction * p[y], rtol=1e-10)
    assert np.all((tau[y] >= MU_S * p[y] * (1 - 1e-12)) & (tau[y] <= MU_2 * p[y]) & (tau[y] < tau_trial[y]))


def test_return_map_limits():
    """I0 → ∞ (or d → 0: any loading is slow) is a rate-independent Drucker–Prager-like cone of friction
    μs: τ_eq = μs p when yielding; μ2 = μs is that cone for any I0; I0 → 0 caps the stress at
    min(τ_tr, μ2 p)."""
    mu, lam, dt, d = 4e4, 6e4, 2e-4, 0.01
    eps = np.array([[-0.02, 0.01], [-0.015, 0.004], [-0.03, 0.0], [-0.01, 0.007]])
    n = len(eps)
    p_trial, tau_trial = invariants(eps, mu, lam)
    assert np.all(tau_trial > MU_S * p_trial)  # all yield; one has τ_tr < μ2 p (kept as I0 → 0)
    assert np.any(tau_trial < MU_2 * p_trial) and np.any(tau_trial > MU_2 * p_trial)
    for mu_2, i0, expected in ((MU_2, 1e14, MU_S * p_trial), (MU_S, I0, MU_S * p_trial),
                               (MU_2, 1e-14, np.minimum(tau_trial, MU_2 * p_trial))):
        out = return_map(eps, mu, lam, packed(MU_S, mu_2, i0, d, GRAIN_DENSITY, n), dt)
        p, tau = invariants(out, mu, lam)
        np.testing.assert_allclose(p, p_trial, rtol=1e-12)
        np.testing.assert_allclose(tau, expected, rtol=1e-9)



def test_2d_svd_reconstructs_nearly_isotropic_F():
    """F = U diag(s) Vᵀ to round-off for the nearly isotropic F of granular flow. Taichi's 2D ti.svd
    treats the polar factor as diagonal when its off-diagonal is < 1e-5, leaving errors up to 1e-5 (in
    f64) that jump as it crosses that bound: the return maps rebuild F from U, s, V, so the μ(I)
    friction's finite differences were 10 % off until simcore.mpm.constitutive.svd replaced it in 2D."""
    @ti.kernel
    def reconstruction_error(F: ti.types.ndarray(), out: ti.types.ndarray()):
        for n in range(F.shape[0]):
            A = ti.Matrix([[F[n, 0, 0], F[n, 0, 1]], [F[n, 1, 0], F[n, 1, 1]]], dt=ti.f64)
            U, s, V = constitutive.svd(A)
            out[n] = (U @ ti.Matrix([[s[0], 0.0], [0.0, s[1]]]) @ V.transpose() - A).norm()

    rng = np.random.default_rng(0)
    F = np.eye(2) + 10 ** rng.uniform(-9, -1, (2000, 1, 1)) * rng.normal(size=(2000, 2, 2))
    F[::3, :, 1] *= -1  # inverted ones too
    error = np.zeros(len(F))
    reconstruction_error(F, error)
    assert error.max() < 1e-14

# ---------------------------------------------------------------------------------------------------
# Steady flow down a rough incline (Bagnold profile)
# ---------------------------------------------------------------------------------------------------
def bagnold(theta, d, h, mu_s=MU_S, mu_2=MU_2):
    """The steady uniform flow of the model down a slope θ (rad), for grains of diameter d (m) in a layer
    of thickness h (m): (I, u_s) with I the inertial number and u(z) = u_s (1 − (1 − z/h)^{3/2}).

    Uniform flow: τ_xz = ρ g sin θ (h − z), p = ρ g cos θ (h − z) with no normal-stress difference
    (the deviatoric stress is coaxial with the shear), so μ(I) = tan θ at every depth:
    I = I0 (tan θ − μs) / (μ2 − tan θ) (0 for tan θ ≤ μs: no flow). Then γ̇ = du/dz =
    I sqrt(p / ρs) / d = (I / d) sqrt(φ g cos θ (h − z)), φ = ρ / ρs; with u(0) = 0,
    u(z) = (2/3) (I / d) sqrt(φ g cos θ) (h^{3/2} − (h − z)^{3/2}).
    """
    t = math.tan(theta)
    inertial = max(0.0, I0 * (t - mu_s) / (mu_2 - t))
    return inertial, 2 / 3 * inertial / d * math.sqrt(PHI * G * math.cos(theta)) * h ** 1.5


INCLINE = {"h": 0.1, "d": 0.05, "seconds": 1.2, "fps": 30}


def incline(theta_deg, mu_s=MU_S, mu_2=MU_2):
    """A layer of thickness h on a sticky floor, gravity tilted by θ, run for 1.2 s: (trajectory, I, u_s,
    belt speed U); friction coefficients μs, μ2 (default GranularMuI's).

    A uniform flow needs no ends: a free-ended layer stretches as its ends spread, the stretching makes
    σ_xx ≠ σ_zz, and near μ2 the rate of flow is very sensitive to τ_eq / p (a free layer of this size
    flowed 3x faster than the uniform flow). The domain has no periodic boundary, so the layer fills it
    from end wall to end wall and its floor is a conveyor: the floor moves upstream at the uniform flow's
    depth-averaged speed U = (3/5) u_s, so that the layer carries no net flux and stays in place. Relative
    to the floor this is the uniform flow (Galilean invariance); the walls turn the flow round within
    about a layer thickness of the ends. Below μs, U = 0 (the uniform state is rest)."""
    theta = math.radians(theta_deg)
    h, d = INCLINE["h"], INCLINE["d"]
    inertial, u_s = bagnold(theta, d, h, mu_s, mu_2)
    belt = 0.6 * u_s
    scene = sc.Scene(dim=2, grid=GRID, gravity=(G * math.sin(theta), -G * math.cos(theta)))
    lo, hi = BOUND * DX, 1 - BOUND * DX
    scene.add_body(sc.shapes.Box(center=((lo + hi) / 2, FLOOR + h / 2), size=(hi - lo, h)),
                   M.GranularMuI(E=1e5, mu_s=mu_s, mu_2=mu_2, grain_diameter=d), velocity=(-belt, 0.0))
    scene.add_collider(sc.colliders.Plane(point=(0, FLOOR), normal=(0, 1), mode="sticky", velocity=(-belt, 0.0)))
    traj = scene.run(frames=round(INCLINE["seconds"] * INCLINE["fps"]), frame_dt=1 / INCLINE["fps"], record=("v",))
    return traj, inertial, u_s, belt


def profile(traj, belt, t0, t1):
    """Mean downslope velocity relative to the floor (m/s) by height above it z (m), in layers of dx/2,
    over the layer's middle 0.4 m and the frames between t0 and t1 (s): (z, u) each (layers,)."""
    frames = range(round(t0 * INCLINE["fps"]), round(t1 * INCLINE["fps"]) + 1)
    z = np.concatenate([traj.x[f][np.abs(traj.x[f][:, 0] - 0.5) < 0.2, 1] - FLOOR for f in frames])
    u = np.concatenate([traj.v[f][np.abs(traj.x[f][:, 0] - 0.5) < 0.2, 0] + belt for f in frames])
    layer = np.floor(z / (DX / 2)).astype(int)
    keep = [k for k in np.unique(layer) if np.sum(layer == k) > 10]
    return np.array([z[layer == k].mean() for k in keep]), np.array([u[layer == k].mean() for k in keep])


@pytest.fixture(scope="module")
def inclines():
    return {theta: incline(theta) for theta in (15.0, 25.0)}


def test_steady_flow_down_an_incline_has_the_bagnold_profile(inclines):
    """Jop et al. 2006's uniform flow on a rough incline, μs < tan θ < μ2 (θ = 25°, I(θ) = 0.133):
    the layer reaches a steady state in which its surface moves at u_s = (2/3) I sqrt(φ g cos θ) h^{3/2}
    / d relative to the floor (within 10 %), and the velocity below the surface follows
    u(h) − u(z) = u_s (1 − z/h)^{3/2} (within 10 % of u_s over the upper half of the layer). Measured:
    the surface 0.6 % slower than u_s (1 − (1 − z/h)^{3/2}) at its particles' height, the upper half
    within 7 % of u_s; lower down the layer shears less than the law and its lowest particles slip on
    the sticky grid floor by 0.14 u_s (a boundary layer of about two cells at this resolution)."""
    traj, inertial, u_s, belt = inclines[25.0]
    h = INCLINE["h"]
    z, u = profile(traj, belt, 0.5, 1.2)
    analytic = u_s * (1 - (1 - z / h) ** 1.5)
    assert abs(u[-1] / analytic[-1] - 1) < 0.1, (u[-1], analytic[-1])
    below = u[-1] - u
    upper = z > 0.5 * h
    assert upper.sum() >= 5
    assert np.abs(below - (analytic[-1] - analytic))[upper].max() < 0.1 * u_s
    # Steady: the surface speed in the two halves of the window agrees to 3 %.
    first, second = (profile(traj, belt, a, b)[1][-1] for a, b in ((0.5, 0.85), (0.85, 1.2)))
    assert abs(first / second - 1) < 0.03


def test_layer_stops_below_the_static_friction_angle_and_flows_above(inclines):
    """Below atan μs (15° < 20.9°) the layer comes to rest on the floor: after the start-up transient
    (gravity switched on at once), its downslope motion relative to the floor stops (mean speed of the
    middle < 2 % of the flowing layer's, no downslope creep) and its surface stays parallel to the floor;
    above (25°) it keeps flowing at the uniform flow's rate."""
    traj_stop, _, _, belt_stop = inclines[15.0]
    traj_flow, _, u_s, belt_flow = inclines[25.0]
    assert belt_stop == 0

    def downslope(traj, belt, frame):
        middle = np.abs(traj.x[frame][:, 0] - 0.5) < 0.2
        return traj.v[frame][middle, 0].mean() + belt

    late = range(round(0.9 * INCLINE["fps"]), round(1.2 * INCLINE["fps"]) + 1)
    stopped = np.mean([downslope(traj_stop, belt_stop, f) for f in late])
    flowing = np.mean([downslope(traj_flow, belt_flow, f) for f in late])
    assert flowing > 0.5 * u_s
    assert abs(stopped) < 0.02 * flowing, (stopped, flowing)


@pytest.mark.parametrize("static_angle", [20.0, 30.0, 40.0])
def test_static_angle_of_a_layer_is_atan_mu_s(static_angle):
    """The static friction angle θs = atan μs of the μ(I) law (Jop et al. 2006: below it no steady flow
    exists, tan θ = μ(I) ≥ μs on any flowing layer), for μs = tan 20°, tan 30°, tan 40° (μ2 = μs + 0.26):
    a layer on a slope 3° below θs comes to rest (mean downslope speed of its middle < 2 % of the
    flowing layer's), one 3° above keeps flowing at the uniform flow's rate (> 0.5 u_s; the depth average
    of the Bagnold profile is 0.6 u_s)."""
    mu_s = math.tan(math.radians(static_angle))
    mu_2 = mu_s + 0.26
    late = range(round(0.9 * INCLINE["fps"]), round(1.2 * INCLINE["fps"]) + 1)

    def downslope(theta):
        traj, _, u_s, belt = incline(theta, mu_s, mu_2)
        middle = [np.abs(traj.x[f][:, 0] - 0.5) < 0.2 for f in late]
        return np.mean([traj.v[f][m, 0].mean() + belt for f, m in zip(late, middle)]), u_s

    stopped, u_rest = downslope(static_angle - 3.0)
    flowing, u_s = downslope(static_angle + 3.0)
    assert u_rest == 0
    assert flowing > 0.5 * u_s, (flowing, u_s)
    assert abs(stopped) < 0.02 * flowing, (stopped, flowing)


# ---------------------------------------------------------------------------------------------------
# Slumped heaps: the static angle, and rate dependence
# ---------------------------------------------------------------------------------------------------
HEAP_MU_S = math.tan(math.radians(20.0))


def heap(delta_mu, i0=I0):
    """A triangular heap (height 0.15 m, flanks at 30°) of μs = tan 20°, μ2 = μs + delta_mu, d = 5 mm
    on a sticky floor, released unstressed and run for 1.5 s."""
    spacing = DX / 2
    xs = np.arange(0.1, 0.9, spacing) + spacing / 2
    ys = np.arange(HEAP_FLOOR, 0.6, spacing) + spacing / 2
    points = np.stack(np.meshgrid(xs, ys, indexing="ij"), -1).reshape(-1, 2)
    points = points[points[:, 1] - HEAP_FLOOR < 0.15 - np.abs(points[:, 0] - 0.5) * math.tan(math.radians(30))]
    scene = sc.Scene(dim=2, grid=GRID)
    material = M.GranularMuI(E=1e5, mu_s=HEAP_MU_S, mu_2=HEAP_MU_S + delta_mu, I0=i0, grain_diameter=5e-3)
    scene.add_body(sc.shapes.Points(points, volume_per_particle=spacing ** 2), material)
    scene.add_collider(sc.colliders.Plane(point=(0, HEAP_FLOOR), normal=(0, 1), mode="sticky"))
    return scene.run(frames=90, frame_dt=1 / 60, record=("v",))


def kinetic_energy(traj):
    """(frames + 1,) J/m."""
    return 0.5 * np.einsum("p,fpd->f", traj.mass, traj.v ** 2)


@pytest.fixture(scope="module")
def heaps():
    return {delta_mu: heap(delta_mu) for delta_mu in (0.0, 0.236, 0.5)}


def test_slumped_heap_rests_at_the_static_friction_angle(heaps):
    """Angle of repose: a 30° heap with μs = tan 20° slumps (by > 5°) and comes to rest (kinetic energy
    < 1e-3 of its peak) with flanks within 3° of atan μs = 20° (measured 19.7° with μ2 − μs = 0.236).
    Without rate dependence (μ2 = μs) the same heap overshoots to 16.9°: the friction that grows with
    the shear rate is what stops the slumping flank at the static angle."""
    traj = heaps[0.236]
    start, final = flank_slope(traj.x[0], DX), flank_slope(traj.x[-1], DX)
    ke = kinetic_energy(traj)
    assert start - final > 5
    assert ke[-1] < 1e-3 * ke.max()
    assert abs(final - 20.0) < 3.0, final


def test_larger_rate_dependence_flows_more_slowly(heaps):
    """Rate dependence: the same heap with a larger μ2 − μs (0, 0.236, 0.5) flows more slowly (lower
    peak kinetic energy: 0.47, 0.29, 0.20 J/m), runs out less far and rests steeper (16.9°, 19.7°,
    20.7°). (It does not stop sooner: as the flow slows, I → 0 and the friction falls back to μs, so the
    last creep is slower; kinetic energy < 1e-3 J/m at 0.63, 0.70, 0.95 s.)"""
    order = sorted(heaps)
    peak = [kinetic_energy(heaps[k]).max() for k in order]
    runout = [np.ptp(np.quantile(heaps[k].x[-1][:, 0], [0.005, 0.995])) for k in order]
    final = [flank_slope(heaps[k].x[-1], DX) for k in order]
    assert peak[0] > 1.2 * peak[1] > 1.44 * peak[2], peak
    assert runout[0] > runout[1] > runout[2], runout
    assert final[0] < final[1] < final[2], final


def test_infinite_I0_is_rate_independent_friction(heaps):
    """The limit I0 → ∞ of the return map is the rate-independent cone τ_eq = μs p, which μ2 = μs also
    gives: the two heaps move alike to round-off (1e-12 m) however fast they flow."""
    unlimited = heap(0.236, i0=1e14)
    assert np.abs(unlimited.x - heaps[0.0].x).max() < 1e-12


@pytest.mark.parametrize("kwargs, words", [
    ({"mu_s": 0.5, "mu_2": 0.4}, ["mu_2", "mu_s", ">="]),
    ({"mu_s": 0.0}, ["mu_s", "> 0"]),
    ({"I0": -1.0}, ["I0", "> 0"]),
    ({"grain_diameter": 0.0}, ["grain_diameter", "> 0 m"]),
    ({"grain_density": 1000.0, "density": 1500.0}, ["density", "grain_density"]),
])
def test_invalid_parameters_say_what_to_change(kwargs, words):
    """Bad parameters raise a ValueError naming the parameter and the rule it breaks."""
    with pytest.raises(ValueError) as error:
        M.GranularMuI(**kwargs)
    assert all(word in str(error.value) for word in words), str(error.value)


def test_per_particle_parameters_are_validated_and_packed():
    """Callable parameters are checked per particle (μ2 ≥ μs where both are known), and the plastic
    slots hold (μs, μ2 − μs, I0 / (d sqrt ρs))."""
    x = np.array([[0.2, 0.3], [0.6, 0.3]])
    params = M.GranularMuI(mu_s=lambda x: 0.3 + x[:, 0] / 10, mu_2=0.5, I0=0.3, grain_diameter=0.01,
                           grain_density=2500.0).particle_parameters(x)
    np.testing.assert_allclose(params["plastic"], [[0.32, 0.18, 0.6], [0.36, 0.14, 0.6]])
    with pytest.raises(ValueError, match="mu_2 must be >= mu_s"):
        M.GranularMuI(mu_s=lambda x: 0.4 + x[:, 0], mu_2=0.5).particle_parameters(x)
