"""Initial stress (simcore.initial_stress): bodies that start carrying their weight stay at rest.

Hydrostatics (Stevin's law, dp/dz = −ρ g with a compressible ρ = ρ0 / J) for a water pool, and the
geostatic stress of solids (σ_vv = −ρ g depth; σ_hh = 0 for a free-standing block, K0 σ_vv with
K0 = ν/(1 − ν) for a laterally confined layer). CPU, float64.

The tank: a floor Plane at y = 0.1 m and sticky side Planes at x = 0.1 and 0.9 m on a 32-cell grid
(dx = 1/32 m). A collider holds the grid nodes strictly inside it, so this floor holds the node at
3 dx = 0.094 m, the face of a body sampled from 0.1 m (its particles start at 3.25 dx): the boundary
the at-rest state can balance (see simcore.initial_stress; the domain's own walls hold the node at a
body's face too since issue 13: `test_pool_against_the_domain_walls_stays_at_rest`).
The side walls are sticky, the no-slip wall of a viscous liquid: a frictionless vertical wall cannot
hold a hydrostatic column on the grid (the cut stencil next to it asks for more lateral pressure than
the columns' weight gives).

Water: bulk modulus K = 4e5 Pa (sound speed 20 m/s, ten times the 2 m/s a 0.25 m column reaches in a
dam break: weakly compressible at Mach 0.1, the usual choice), Tait exponent γ = 7 (Monaghan's water),
viscosity 1e-3 Pa·s (water at 20 °C). No damping beyond that viscosity.

`python tests/mpm/test_hydrostatic.py` prints the measured values quoted in docs/hydrostatic.md.
"""

import numpy as np
import pytest
import torch

import simcore as sc
from simcore.initial_stress import Law, equilibrium

GRID = 32
DX = 1 / GRID
SPACING = DX / 2   # 2D lattice, 4 particles per cell
FLOOR, LEFT, RIGHT = 0.1, 0.1, 0.9
DEPTH = 0.25       # m
RHO, G = 1000.0, 9.8
WATER = dict(bulk_modulus=4e5, gamma=7.0, viscosity=1e-3, density=RHO)
FRAMES, FRAME_DT = 60, 1 / 30   # 2 s


def tank(scene, dim=2, lo=LEFT, hi=RIGHT):
    """Floor at y = lo (frictionless, separating), sticky side walls at lo and hi on every horizontal
    axis (m)."""
    up = np.eye(dim)[1]
    scene.add_collider(sc.colliders.Plane(point=tuple(lo * up), normal=tuple(up)))
    for axis in [0] + ([2] if dim == 3 else []):
        e = np.eye(dim)[axis]
        scene.add_collider(sc.colliders.Plane(point=tuple(lo * e), normal=tuple(e), mode="sticky"))
        scene.add_collider(sc.colliders.Plane(point=tuple(hi * e), normal=tuple(-e), mode="sticky"))


def pool(initial_stress, dim=2, grid=GRID, depth=DEPTH, lo=LEFT, hi=RIGHT):
    """Water filling the tank (floor and walls at lo, hi m) to `depth` m."""
    scene = sc.Scene(dim=dim, grid=grid)
    tank(scene, dim, lo, hi)
    center = (0.5, lo + depth / 2, 0.5)[:dim]
    size = (hi - lo, depth, hi - lo)[:dim]
    scene.add_body(sc.shapes.Box(center=center, size=size), sc.materials.Fluid(**WATER), name="water",
                   initial_stress=initial_stress)
    return scene


def tait_pressure(J):
    """p = K/γ (J^−γ − 1), Pa."""
    return WATER["bulk_modulus"] / WATER["gamma"] * (J ** -WATER["gamma"] - 1)


def hydrostatic_pressure(depth):
    """Stevin's law for a Tait fluid, dp/dz = −ρ0 (1 + γ p/K)^(1/γ) g: p(h) = K/γ [(1 + (γ − 1) ρ0 g h/K)^(γ/(γ−1)) − 1]
    (ρ0 g h to 0.3 % at the bottom of this pool)."""
    K, gamma = WATER["bulk_modulus"], WATER["gamma"]
    return K / gamma * ((1 + (gamma - 1) * RHO * G * depth / K) ** (gamma / (gamma - 1)) - 1)


def surface(x, dx=DX):
    """The free surface: the top particle of each column of width dx across the tank, (columns,) m."""
    column = np.floor(x[:, 0] / dx).astype(int)
    return np.array([x[column == c, 1].max() for c in np.unique(column)])


def layers(x, values, spacing=SPACING):
    """Mean of `values` over each horizontal particle layer of the initial lattice: (heights, means)."""
    level = np.round(x[:, 1] / spacing - 0.5).astype(int)
    keys = np.unique(level)
    return (keys + 0.5) * spacing, np.array([values[level == k].mean() for k in keys])


def extent(x0, spacing=SPACING):
    """(top, depth): the free surface, the top layer + half a spacing (m), and the depth down to the
    bottom layer − half a spacing (m). The lattice puts the pool's faces at 3 dx and 11 dx: 0.25 m deep,
    its top 6 mm below the box's."""
    top = x0[:, 1].max() + spacing / 2
    return top, top - (x0[:, 1].min() - spacing / 2)


def pressure_profile(x0, J):
    """Per particle layer: depth below the free surface (m), the pressure from J through the Tait law
    (Pa) and Stevin's (Pa)."""
    heights, p = layers(x0, tait_pressure(J))
    depth = extent(x0)[0] - heights
    return depth, p, hydrostatic_pressure(depth)


def inner_layers(depth, total):
    """The layers at least two cells from the floor and from the surface (outside the boundary layers of
    the grid balance: see `test_pool_pressure_is_hydrostatic`)."""
    return (depth > 2 * DX) & (depth < total - 2 * DX)


def bottom_pressure(depth, p, total):
    """The pressure at the floor (depth `total`), extrapolated linearly from the inner layers."""
    inner = inner_layers(depth, total)
    slope, intercept = np.polyfit(depth[inner], p[inner], 1)
    return slope * total + intercept


@pytest.fixture(scope="module")
def runs(cpu64):
    """The pool for 2 s with and without the hydrostatic start (one compiled solver)."""
    out = {}
    for option in ("hydrostatic", None):
        scene = pool(option)
        out[option] = (scene, scene.run(FRAMES, FRAME_DT, record=("x", "v", "Jp"), progress=False))
    return out


def test_pool_released_at_rest_stays_at_rest(runs):
    """Hydrostatic equilibrium: a pool started with the pressure that carries its weight stays at rest
    for 2 s: every particle slower than 1e-3 m/s, the free surface within dx/4 of where it started
    (measured: 1.1e-7 m/s, 6.5e-7 dx)."""
    scene, traj = runs["hydrostatic"]
    assert traj.t[-1] == pytest.approx(2.0)
    assert np.linalg.norm(traj.v, axis=-1).max() < 1e-3
    start = surface(traj.x[0])
    drift = max(np.abs(surface(x) - start).max() for x in traj.x)
    assert drift < DX / 4
    report = equilibrium(scene)
    assert len(report.unbalanced) == 0 and report.residual < 1e-5 * G


def test_pool_without_initial_stress_moves(runs):
    """The option is what makes the difference: the same pool started unstressed (J = 1) falls under its
    own weight, compresses and bounces: faster than 1e-2 m/s (measured: 0.10 m/s)."""
    _, traj = runs[None]
    assert np.linalg.norm(traj.v, axis=-1).max() > 1e-2


@pytest.mark.parametrize("frame", [0, FRAMES])
def test_pool_pressure_is_hydrostatic(runs, frame):
    """Stevin's law, p = ρ g h (compressible Tait form), from the particles' J through the equation of
    state, at t = 0 and after 2 s: the floor pressure (extrapolated from the layers more than two cells
    from the floor and the surface) within 2 % of ρ g h (measured: +1.1 %), each of those layers within
    2 % (measured: 1.5 %, in the columns next to the walls; 0.03 % in the middle of the tank).

    The two particle layers of the bottom cell carry ~10 % more (measured +10.8 %): the grid balance next to
    the floor needs it (the first free node above the floor misses the particles below the floor in its
    stencil; any state at rest on this grid has it, see simcore.initial_stress). Their mean is held to
    12 %, which a state not balanced on the grid (the continuum one: the first free node accelerates at
    0.6 g) would not keep for 2 s."""
    scene, traj = runs["hydrostatic"]
    depth, p, exact = pressure_profile(traj.x[0], traj.Jp[frame])
    total = extent(traj.x[0])[1]
    assert total == pytest.approx(DEPTH)
    assert bottom_pressure(depth, p, total) == pytest.approx(hydrostatic_pressure(total), rel=0.02)
    inner = inner_layers(depth, total)
    assert np.abs(p[inner] / exact[inner] - 1).max() < 0.02
    bottom = depth > total - DX
    assert abs(p[bottom].mean() / exact[bottom].mean() - 1) < 0.12


def test_3d_pool_stays_at_rest(cpu64):
    """Hydrostatic equilibrium in 3D: a pool on a 16-cell grid (tank walls at 0.2 and 0.8 m, holding the
    nodes at the pool's faces; 2,800 particles) released at rest stays at rest for 2 s (speed < 1e-3 m/s,
    surface within dx/4; measured 1.3e-9 m/s)."""
    grid = 16
    scene = pool("hydrostatic", dim=3, grid=grid, depth=0.2, lo=0.2, hi=0.8)
    traj = scene.run(FRAMES, FRAME_DT, record=("x", "v"), progress=False)
    assert np.linalg.norm(traj.v, axis=-1).max() < 1e-3
    assert np.abs(traj.x[:, :, 1].max(1) - traj.x[0, :, 1].max()).max() < 1 / grid / 4


def block(option, confined):
    """A neo-Hookean block (E = 1e5 Pa, ν = 0.3, 1000 kg/m³) 0.25 m tall on the floor: free-standing
    (0.3 m wide, frictionless floor) or filling the tank between its sticky walls."""
    scene = sc.Scene(dim=2, grid=GRID)
    scene.add_collider(sc.colliders.Plane(point=(0, FLOOR), normal=(0, 1)))
    width = RIGHT - LEFT if confined else 0.3
    if confined:
        tank(scene)
    scene.add_body(sc.shapes.Box(center=(0.5, FLOOR + DEPTH / 2), size=(width, DEPTH)),
                   sc.materials.NeoHookean(E=1e5, nu=0.3, density=RHO), name="block", initial_stress=option)
    return scene


def weight_per_area(traj):
    """ρ g h of a compressed body: its weight over the floor it covers (the lattice's width), Pa. (A block
    compressed by ~2 % is ~1 % denser than ρ0 on average.)"""
    x = traj.x[0, :, 0]
    return traj.mass.sum() * G / (x.max() - x.min() + SPACING)


def neo_hookean_cauchy(F, E=1e5, nu=0.3):
    """σ = τ / J, τ = μ(F Fᵀ − I) + λ log J I: (n, 2, 2) Pa."""
    mu, lam = E / (2 * (1 + nu)), E * nu / ((1 + nu) * (1 - 2 * nu))
    J = np.linalg.det(F)
    tau = mu * (F @ np.swapaxes(F, 1, 2) - np.eye(2)) + (lam * np.log(J))[:, None, None] * np.eye(2)
    return tau / J[:, None, None]


@pytest.mark.parametrize("option, confined", [("uniaxial_stress", False), ("geostatic", True)])
def test_elastic_block_on_the_floor_stays_at_rest(cpu64, option, confined):
    """Geostatic stress: an elastic block carrying its weight stays at rest for 1 s (speed < 1e-3 m/s,
    displacement < 1e-3 dx; measured 2e-8 m/s and dx; unstressed: 0.19 m/s), its floor stress σ_yy is
    ρ g h (extrapolated as for the pool, within 2 %; measured +0.03 %, +0.9 %), and its lateral stress is
    the state's: σ_xx = 0 with free sides (uniaxial stress), σ_xx = K0 σ_yy with K0 = ν/(1 − ν) = 0.43
    between walls (uniaxial strain; within 2 % of K0 in the layers away from the boundaries, the strain
    being 2 %; measured 0.430–0.432)."""
    scene = block(option, confined)
    traj = scene.run(30, FRAME_DT, record=("x", "v", "F"), progress=False)
    assert np.linalg.norm(traj.v, axis=-1).max() < 1e-3
    assert np.abs(traj.x - traj.x[0]).max() < 1e-3 * DX
    sigma = neo_hookean_cauchy(traj.F[-1])
    heights, syy = layers(traj.x[0], sigma[:, 1, 1])
    _, sxx = layers(traj.x[0], sigma[:, 0, 0])
    top, total = extent(traj.x[0])
    depth = top - heights
    assert -bottom_pressure(depth, syy, total) == pytest.approx(weight_per_area(traj), rel=0.02)
    inner = inner_layers(depth, total)
    if confined:
        assert np.abs(sxx[inner] / syy[inner] - 0.3 / 0.7).max() < 0.02 * 0.3 / 0.7
    else:
        assert np.abs(sxx).max() < 1e-6 * RHO * G * DEPTH


def test_rollout_starts_at_rest(cpu64):
    """`rollout` starts from the same state as `run`: the hydrostatic pool stays at rest over 3 frames
    (speed < 1e-3 m/s), and its gradient with respect to the initial velocity matches central finite
    differences (1e-4 relative); a gradient asked of the fluid's bulk modulus is refused (the at-rest
    state is solved on the host, without one)."""
    def mean_height(vy, grad=False):
        velocity = torch.tensor([0.0, vy], dtype=torch.float64, requires_grad=grad)
        scene = sc.Scene(dim=2, grid=GRID)
        tank(scene)
        scene.add_body(sc.shapes.Box(center=(0.5, FLOOR + DEPTH / 2), size=(RIGHT - LEFT, DEPTH)),
                       sc.materials.Fluid(**WATER), velocity=velocity, initial_stress="hydrostatic")
        out = scene.rollout(3, FRAME_DT, record=("x", "v"))
        return out, out.x[-1, :, 1].mean(), velocity

    out, height, velocity = mean_height(0.0, grad=True)
    assert out.v.abs().max().item() < 1e-3
    height.backward()
    eps = 1e-3
    with torch.no_grad():
        numeric = (mean_height(eps)[1] - mean_height(-eps)[1]).item() / (2 * eps)
    assert velocity.grad[1].item() == pytest.approx(numeric, rel=1e-4, abs=1e-9)

    K = torch.tensor(4e5, dtype=torch.float64, requires_grad=True)
    stiff = sc.Scene(dim=2, grid=GRID)
    stiff.add_body(sc.shapes.Box(center=(0.5, 0.3), size=(0.2, 0.2)),
                   sc.materials.Fluid(bulk_modulus=K), initial_stress="hydrostatic", name="water")
    with pytest.raises(ValueError, match="'water'.*bulk_modulus.*initial_stress=None"):
        stiff.rollout(2, FRAME_DT)


def test_pool_against_the_domain_walls_stays_at_rest(cpu64):
    """Hydrostatic equilibrium against the domain's own walls (no colliders): water filling the domain's
    floor from wall to wall (x, y ≥ 3 dx, the walls' faces; frictionless floor, sticky side walls as the
    tank above) holds still for 2 s: every particle slower than 1e-3 m/s, the surface within dx/4, and
    no grid node left unbalanced. Until issue 13's fix the nodes on the walls' faces were free: with
    particles on one side only no pressure could hold them (47 unbalanced nodes here) and such a pool
    slumped. (With frictionless side walls the vertical balance of the particles next to them is not
    exact on the grid: measured 1.1e-2 m/s within 1 s, so that case is not claimed.)"""
    scene = sc.Scene(dim=2, grid=GRID, walls={"-x": "sticky", "+x": "sticky"})
    scene.add_body(sc.shapes.Box(center=(0.5, 3 * DX + DEPTH / 2), size=(1 - 6 * DX, DEPTH)),
                   sc.materials.Fluid(**WATER), initial_stress="hydrostatic")
    report = equilibrium(scene)
    assert len(report.unbalanced) == 0 and report.residual < 1e-5 * G
    traj = scene.run(FRAMES, FRAME_DT, record=("x", "v"), progress=False)
    assert np.linalg.norm(traj.v, axis=-1).max() < 1e-3
    start = surface(traj.x[0])
    assert max(np.abs(surface(x) - start).max() for x in traj.x) < DX / 4


def law(material, option, dim=2, n=1):
    """The at-rest law of `material` for n particles."""
    x = np.full((n, dim), 0.5)
    return Law(material.kind, material.particle_parameters(x), dim, option)


def test_geostatic_lateral_stress_follows_each_law():
    """Uniaxial strain, σ_hh/σ_vv = K0: ν/(1 − ν) for small elastic strains (neo-Hookean, fixed
    corotated, sand inside its cone); for sand whose elastic K0 lies outside the Drucker–Prager cone
    (φ = 20°), the cone's own ratio, larger than the elastic 0.43: the return map is applied, as the
    kernels would. Uniaxial stress: σ_hh = 0. A fluid: isotropic, J from the Tait law."""
    q = np.array([100.0])
    for material in (sc.materials.NeoHookean(E=1e7, nu=0.3), sc.materials.FixedCorotated(E=1e7, nu=0.3),
                     sc.materials.Sand(E=1e7, nu=0.3, friction_angle=40)):
        state = law(material, "geostatic").state(q)
        assert state.sigma_v[0] == pytest.approx(-100.0, rel=1e-9)
        assert state.sigma_h[0] / state.sigma_v[0] == pytest.approx(0.3 / 0.7, rel=1e-4)
    loose = law(sc.materials.Sand(E=1e7, nu=0.3, friction_angle=20), "geostatic").state(q)
    assert loose.sigma_h[0] / loose.sigma_v[0] > 0.3 / 0.7 * 1.05
    free = law(sc.materials.NeoHookean(E=1e7, nu=0.3), "uniaxial_stress").state(q)
    assert free.sigma_v[0] == pytest.approx(-100.0, rel=1e-9) and abs(free.sigma_h[0]) < 1e-9 * 100
    water = law(sc.materials.Fluid(**WATER), "hydrostatic").state(q)
    assert tait_pressure(water.J[0]) == pytest.approx(100.0, rel=1e-12)


def test_bad_initial_stress_is_refused():
    """Each mistake names the body and what to do."""
    scene = sc.Scene(dim=2, grid=GRID)
    box = sc.shapes.Box(center=(0.5, 0.3), size=(0.2, 0.2))
    with pytest.raises(ValueError, match="'a'.*initial_stress must be None, 'hydrostatic'"):
        scene.add_body(box, sc.materials.Fluid(), name="a", initial_stress="hydrostatatic")
    with pytest.raises(ValueError, match="'b'.*isotropic pressure.*'geostatic'"):
        scene.add_body(box, sc.materials.NeoHookean(), name="b", initial_stress="hydrostatic")
    with pytest.raises(ValueError, match="'c'.*without lateral support.*'hydrostatic'"):
        scene.add_body(box, sc.materials.Fluid(), name="c", initial_stress="uniaxial_stress")
    with pytest.raises(ValueError, match="'d'.*without lateral support.*'geostatic'"):
        scene.add_body(box, sc.materials.Sand(), name="d", initial_stress="uniaxial_stress")
    neural = sc.materials.Neural(model=torch.nn.Linear(4, 4), wave_modulus=1e5)
    with pytest.raises(ValueError, match="'e'.*Neural.*initial_stress=None"):
        scene.add_body(box, neural, name="e", initial_stress="geostatic")
    weightless = sc.Scene(dim=2, grid=GRID, gravity=(0, 0))
    with pytest.raises(ValueError, match="'f'.*gravity is zero"):
        weightless.add_body(box, sc.materials.Fluid(), name="f", initial_stress="hydrostatic")
    tall = sc.Scene(dim=2, grid=GRID)
    tall.add_body(sc.shapes.Box(center=(0.5, 0.5), size=(0.2, 0.8)), sc.materials.NeoHookean(E=10.0),
                  name="g", initial_stress="uniaxial_stress")
    with pytest.raises(ValueError, match="'g'.*cannot carry an overburden"):
        tall.model  # noqa: B018 (the state is solved when the model is built)
    with pytest.raises(ValueError, match="scene has no body with an initial stress"):
        equilibrium(sc.Scene(dim=2, grid=GRID))


if __name__ == "__main__":  # the measured values quoted in docs/hydrostatic.md
    sc.init("cpu", "f64", verbose=False)
    for option in ("hydrostatic", None):
        scene = pool(option)
        traj = scene.run(FRAMES, FRAME_DT, record=("x", "v", "Jp"), progress=False)
        speed = np.linalg.norm(traj.v, axis=-1).max()
        drift = max(np.abs(surface(x) - surface(traj.x[0])).max() for x in traj.x) / DX
        print(f"pool, initial_stress={option!r}: max speed {speed:.2e} m/s, surface drift {drift:.2e} dx")
        if option:
            report = equilibrium(scene)
            print(f"  grid residual {report.residual:.2e} m/s², overburden change "
                  f"{np.abs(report.q / report.q_continuum - 1).max():.1%} at most")
            total = extent(traj.x[0])[1]
            for frame in (0, FRAMES):
                depth, p, exact = pressure_profile(traj.x[0], traj.Jp[frame])
                inner, bottom = inner_layers(depth, total), depth > total - DX
                floor = bottom_pressure(depth, p, total)
                print(f"  t = {traj.t[frame]:.0f} s: floor pressure {floor:.1f} Pa vs Stevin "
                      f"{hydrostatic_pressure(total):.1f} Pa ({floor / hydrostatic_pressure(total) - 1:+.3%}); "
                      f"inner layers within {np.abs(p[inner] / exact[inner] - 1).max():.3%}; bottom cell "
                      f"{p[bottom].mean() / exact[bottom].mean() - 1:+.1%}")
    scene = pool("hydrostatic", dim=3, grid=16, depth=0.2, lo=0.2, hi=0.8)
    traj = scene.run(FRAMES, FRAME_DT, record=("x", "v"), progress=False)
    print(f"3D pool ({scene.n_particles} particles): max speed {np.linalg.norm(traj.v, axis=-1).max():.2e} m/s, "
          f"surface drift {np.abs(traj.x[:, :, 1].max(1) - traj.x[0, :, 1].max()).max() * 16:.2e} dx")
    for option, confined in (("uniaxial_stress", False), ("geostatic", True), (None, False)):
        scene = block(option, confined)
        traj = scene.run(30, FRAME_DT, record=("x", "v", "F"), progress=False)
        sigma = neo_hookean_cauchy(traj.F[-1])
        heights, syy = layers(traj.x[0], sigma[:, 1, 1])
        _, sxx = layers(traj.x[0], sigma[:, 0, 0])
        top, total = extent(traj.x[0])
        depth = top - heights
        inner = inner_layers(depth, total)
        print(f"block, initial_stress={option!r}{' between walls' if confined else ''}: max speed "
              f"{np.linalg.norm(traj.v, axis=-1).max():.2e} m/s, displacement {np.abs(traj.x - traj.x[0]).max() / DX:.2e} dx; "
              f"floor stress {-bottom_pressure(depth, syy, total) / weight_per_area(traj) - 1:+.2%} of ρ g h; "
              f"σxx/σyy inside {np.round([(sxx[inner] / syy[inner]).min(), (sxx[inner] / syy[inner]).max()], 4)}")
