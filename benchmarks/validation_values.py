"""Measured values for docs/validation.md: each physical validation in tests/, re-run and its quantity printed.

A test asserts that a quantity lies within a tolerance; this script re-runs the test's set-up (importing
the test module's helpers and fixtures where it has them, otherwise repeating the test's set-up line for
line, named in the comment) and prints the quantity itself as a markdown table row:

    | test | quantity | measured | tolerance | within |

so docs/validation.md can quote how far inside (or outside) each tolerance the engine is. A check that
costs more than about 30 s on a 2-core CPU (3D adjoint kernels, Vulkan) prints "not re-measured" unless
--slow asks for it; the examples' optimisation loops and CUDA are never run here (NOT_MEASURED). The
"within" column is the test's own comparison applied to the measured value. Timings go to stderr.

    nice -n 10 python benchmarks/validation_values.py [--area mpm granular fluids hydrostatics gradients rigid backends] [--slow]
    python benchmarks/validation_values.py --list      # the checks and their areas, nothing run
    nice -n 10 python benchmarks/validation_values.py --area granular --only heaps_3d --slow   # one check

Run from anywhere: the repository root is put on sys.path so that `tests.*` imports (the test modules
are plain files, no packages: Python's namespace packages import them).
"""

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import simcore as sc  # noqa: E402  (after the repository root is on sys.path)
import simcore.rigid as rigid  # noqa: E402

AREAS = ("mpm", "granular", "fluids", "hydrostatics", "gradients", "rigid", "backends")
G = 9.8  # m/s², the MPM tests' gravity
G_RIGID = 9.81  # m/s², the rigid tests' gravity


@dataclasses.dataclass
class Row:
    """One measured quantity of one test: `value` against `tolerance` (a comparison, e.g. "< 1e-12");
    `within` is the test's own comparison, evaluated on the measured value."""

    test: str  # pytest node id, relative to the repository root
    quantity: str
    value: float | str
    tolerance: str
    within: bool | None

    def markdown(self) -> str:
        value = fmt(self.value) if isinstance(self.value, (float, int, np.floating, np.integer)) else self.value
        within = {True: "yes", False: "**NO**", None: "—"}[self.within]
        return f"| `{self.test}` | {self.quantity} | {value} | {self.tolerance} | {within} |"


def fmt(value: float) -> str:
    """Three significant figures; scientific notation outside [1e-3, 1e4)."""
    value = float(value)
    if value == 0:
        return "0"
    if abs(value) < 1e-3 or abs(value) >= 1e4:
        return f"{value:.2e}"
    return f"{value:.3g}"


def pct(rel: float) -> str:
    """A relative difference as a signed percentage (scientific below 0.01 %)."""
    return f"{rel:+.2%}" if abs(rel) >= 1e-4 else f"{rel:+.1e}"


def _slow(test, quantity, tolerance, reason):
    return Row(test, quantity, f"not re-measured ({reason}; --slow runs it)", tolerance, None)


CHECKS: list[tuple[str, callable, list[Row] | None]] = []


def check(area: str, slow: list[Row] | None = None):
    """Register a generator of Rows under `area`. A check costing more than about 30 s gives `slow`: the
    rows printed ("not re-measured") unless --slow asks for it to run."""
    def register(fn):
        CHECKS.append((area, fn, slow))
        return fn
    return register


def fixture(f, *args):
    """Call a pytest fixture's function directly (pytest >= 8.4 wraps it; __wrapped__ is the function)."""
    return getattr(f, "__wrapped__", f)(*args)


# Checks whose set-up costs more than about 30 s on the 2-core CPU (measured with a warm kernel cache),
# or that need a device this machine may not have: (area, test id, quantity, tolerance, reason).
NOT_MEASURED = [
    ("backends", "tests/diff/test_backend_gradients.py::test_gradients_match_cpu_f64[NeoHookean-cuda]",
     "worst relative gradient difference, CUDA f32 vs CPU f64", "≤ 1e-3", "needs an NVIDIA GPU"),
    ("gradients", "tests/test_examples_diff.py::test_sysid_jelly_recovers_moduli",
     "E and ν recovered from 2× / 0.1 off", "E within 5 %, ν within 0.03; loss falls ≥ 100×",
     "up to 12 3D rollouts with backward"),
]


# -- MPM: conservation, exact solutions, materials, boundaries -------------------------------------------
@check("mpm")
def grid_mass():
    from tests.mpm import test_conservation as T  # noqa: F401  (the set-up below is that test's)
    sc.init("cpu", "f64", verbose=False)
    # tests/mpm/test_conservation.py::test_grid_mass_equals_particle_mass
    scene = sc.Scene(dim=3, grid=24)
    scene.add_body(sc.shapes.Sphere(center=(0.5, 0.5, 0.5), radius=0.15), sc.materials.NeoHookean(E=1e4),
                   velocity=(0.3, -0.5, 0.1))
    traj = scene.run(frames=3, frame_dt=0.01, progress=False)
    solver = scene.build()
    solver.p2g(0, 1, solver.serial_scatter, solver.parts)
    total = traj.mass.sum()
    err = abs(solver.total_grid_mass() - total) / total
    yield Row("tests/mpm/test_conservation.py::test_grid_mass_equals_particle_mass",
              "\\|Σ grid m − Σ m_p\\| / Σ m_p", err, "< 1e-12", err < 1e-12)


@check("mpm")
def linear_momentum():
    from tests.conftest import momentum
    from tests.mpm.test_conservation import colliding_pair
    sc.init("cpu", "f64", verbose=False)
    _, traj = fixture(colliding_pair, None)
    p0 = momentum(traj.mass, traj.v[0])
    drift = max(np.linalg.norm(momentum(traj.mass, traj.v[f]) - p0) for f in range(traj.frames + 1))
    drift /= np.linalg.norm(p0)
    yield Row("tests/mpm/test_conservation.py::test_linear_momentum_conserved",
              "max over frames \\|P − P₀\\| / \\|P₀\\|", drift, "≤ 1e-6", drift <= 1e-6)


@check("mpm")
def angular_momentum():
    from tests.conftest import angular_momentum as L_of
    sc.init("cpu", "f64", verbose=False)
    for dim in (2, 3):  # tests/mpm/test_conservation.py::test_angular_momentum_conserved_spinning_body
        scene = sc.Scene(dim=dim, grid=32, gravity=(0.0,) * dim)
        omega = 6.0 if dim == 2 else (1.0, 5.0, 2.0)
        scene.add_body(sc.shapes.Box(center=(0.5,) * dim, size=(0.25, 0.12, 0.18)[:dim]),
                       sc.materials.FixedCorotated(E=1e4), velocity=(0.1, -0.05, 0.02)[:dim], angular_velocity=omega)
        traj = scene.run(frames=10, frame_dt=0.01, record=("v", "C"), progress=False)
        L = [L_of(traj.mass, traj.x[f], traj.v[f], traj.C[f], scene.dx) for f in range(11)]
        drift = max(np.linalg.norm(L[f] - L[0]) for f in range(11)) / np.linalg.norm(L[0])
        yield Row("tests/mpm/test_conservation.py::test_angular_momentum_conserved_spinning_body",
                  f"{dim}D: max over frames \\|L − L₀\\| / \\|L₀\\| (APIC)", drift, "≤ 1e-5", drift <= 1e-5)


@check("mpm")
def free_fall():
    sc.init("cpu", "f64", verbose=False)
    # tests/mpm/test_conservation.py::test_free_fall_matches_discrete_and_continuous_solution
    g, v0, dt = np.array([0.0, -9.8, 0.0]), np.array([0.3, 1.5, -0.2]), 1e-3
    scene = sc.Scene(dim=3, grid=32, gravity=g, dt=dt)
    scene.add_body(sc.shapes.Box(center=(0.45, 0.5, 0.55), size=(0.1, 0.1, 0.1)), sc.materials.NeoHookean(E=1e4),
                   velocity=v0)
    traj = scene.run(frames=10, frame_dt=0.01, progress=False)
    x0 = traj.x[0]
    discrete_err, excess = 0.0, -np.inf
    for f in range(11):
        n, t = 10 * f, 10 * f * dt
        discrete_err = max(discrete_err, np.abs(traj.x[f] - (x0 + n * dt * v0 + dt**2 * g * n * (n + 1) / 2)).max())
        # The continuous solution differs by the integrator's ½|g| dt t: what exceeds that bound.
        err = np.abs(traj.x[f] - (x0 + v0 * t + 0.5 * g * t**2)).max()
        excess = max(excess, err - 0.5 * np.linalg.norm(g) * dt * t)
    test = "tests/mpm/test_conservation.py::test_free_fall_matches_discrete_and_continuous_solution"
    yield Row(test, "max \\|x − x_discrete\\| (m)", discrete_err, "< 1e-10", discrete_err < 1e-10)
    yield Row(test, "max (\\|x − (x₀ + v₀t + ½gt²)\\| − ½\\|g\\| dt t) (m)", excess, "≤ 1e-12", excess <= 1e-12)


@check("mpm")
def bodies_at_rest():
    M = sc.materials
    sc.init("cpu", "f64", verbose=False)
    for material in (M.FixedCorotated(E=1e5), M.NeoHookean(E=1e5), M.Snow(), M.Sand(), M.Plasticine(),
                     M.Fluid(bulk_modulus=1e5)):
        # tests/mpm/test_conservation.py::test_body_at_rest_stays_at_rest
        scene = sc.Scene(dim=2, grid=32, gravity=(0.0, 0.0), dt=1e-4)
        scene.add_body(sc.shapes.Box(center=(0.5, 0.5), size=(0.2, 0.2)), material)
        traj = scene.run(frames=10, frame_dt=1e-2, progress=False)
        drift = np.abs(traj.x[-1] - traj.x[0]).max()
        name = type(material).__name__
        yield Row(f"tests/mpm/test_conservation.py::test_body_at_rest_stays_at_rest[{name}]",
                  "max displacement after 1000 substeps (m)", drift, "< 1e-6", drift < 1e-6)


@check("mpm")
def material_drops():
    from tests.mpm.test_materials_run import GRID, MATERIALS, run_all
    runs = run_all("cpu")
    test = "tests/mpm/test_materials_run.py::"
    sink = min(traj.x[:, :, 1].min() for traj in runs.values()) - 2 / GRID
    yield Row(test + "test_material_runs_and_hits_floor", f"lowest particle − top of the wall layer, all {len(runs)} runs (cells)",
              sink * GRID, "> −0.5", sink > -0.5 / GRID)
    for dim in (2, 3):
        width = {n: np.ptp(runs[(dim, n)].x[-1, :, 0]) / 0.2 for n in MATERIALS}
        yield Row(test + "test_plastic_materials_keep_permanent_deformation",
                  f"{dim}D: final width / initial, sand · plasticine · neo-Hookean",
                  f"{width['Sand']:.2f} · {width['Plasticine']:.2f} · {width['NeoHookean']:.2f}",
                  "> 1.3 · > 1.1 · < 1.1",
                  width["Sand"] > 1.3 and width["Plasticine"] > 1.1 and width["NeoHookean"] < 1.1)
    for dim in (2, 3):
        traj = runs[(dim, "Fluid")]
        F, J = traj.F[-1], traj.Jp[-1]
        err = np.abs(F - (J ** (1 / dim))[:, None, None] * np.eye(dim)).max()
        yield Row(test + "test_fluid_deformation_is_volumetric", f"{dim}D: max \\|F − J^(1/d) I\\|", err,
                  "≤ 1e-6", err <= 1e-6)
    for dim in (2, 3):
        jp = runs[(dim, "Snow")].Jp[-1].min()
        yield Row(test + "test_snow_compacts", f"{dim}D: smallest plastic volume ratio Jp", jp, "< 0.99", jp < 0.99)


@check("mpm")
def coulomb_walls():
    from tests.mpm.test_boundaries import com_velocity, slide
    sc.init("cpu", "f32", verbose=False)
    test = "tests/mpm/test_boundaries.py::"
    traj = slide("separate", 0.2)
    com = traj.center_of_mass()
    expected = 1.0 / (2 * 0.2 * G)
    distance = com[-1, 0] - com[0, 0]
    rel = distance / expected - 1
    yield Row(test + "test_coulomb_stopping_distance", f"stopping distance / v0²/(2μg) − 1 ({distance:.4f} m vs "
              f"{expected:.4f} m)", pct(rel), "within ±3 %", abs(rel) <= 0.03)
    traj = slide("slip", 0.0, frames=20)
    err = np.abs(com_velocity(traj)[:, 0] - 1.0).max()
    yield Row(test + "test_frictionless_slip_keeps_velocity", "max \\|v_x − v0\\| (m/s)", err, "≤ 1e-5", err <= 1e-5)
    traj = slide("sticky", 0.0, frames=20)
    bottom = traj.x[0, :, 1] < traj.x[0, :, 1].min() + 0.01
    moved = np.abs(traj.x[:, bottom, 0] - traj.x[0, bottom, 0]).max() * 64
    com = traj.center_of_mass()[:, 0]
    drift = np.abs(com - com[0]).max() * 64
    yield Row(test + "test_sticky_floor_stops_sliding", "bottom layer's slide · centre of mass's drift (cells)",
              f"{fmt(moved)} · {fmt(drift)}", "< 1.5 · < 1", moved < 1.5 and drift < 1)


@check("mpm")
def jelly_on_plane():
    from tests.mpm.test_boundaries import com_velocity, jelly_drop
    sc.init("cpu", "f32", verbose=False)
    scene, traj = fixture(jelly_drop, None)
    test = "tests/mpm/test_boundaries.py::"
    vy = com_velocity(traj)[:, 1]
    rebound = vy[np.argmax(vy < -1.5):].max()
    yield Row(test + "test_jelly_bounces_on_plane", "largest upward centre-of-mass speed after impact (m/s)",
              rebound, "> 0.5", rebound > 0.5)
    depth = (0.1 - traj.x[:, :, 1].min()) / scene.dx
    yield Row(test + "test_jelly_never_penetrates_plane", "deepest penetration of the plane (cells)", depth, "< 0.5",
              depth < 0.5)
    ke = 0.5 * np.einsum("p,fpd->f", traj.mass, traj.v**2)
    ratio = ke[-10:].max() / ke.max()
    height = traj.center_of_mass()[-30:, 1]
    yield Row(test + "test_jelly_settles", "kinetic energy of the last 10 frames / peak", ratio, "< 0.02", ratio < 0.02)
    yield Row(test + "test_jelly_settles", "centre-height range over the last 0.5 s (m)", np.ptp(height), "< 0.02",
              np.ptp(height) < 0.02)


@check("mpm")
def colliders_support():
    from tests.mpm.test_boundaries import Col
    sc.init("cpu", "f32", verbose=False)
    colliders = {"box": Col.Box(center=(0.5, 0.2, 0.5), size=(0.4, 0.1, 0.4)),
                 "sphere": Col.Sphere(center=(0.5, 0.05, 0.5), radius=0.2),
                 "cylinder": Col.Cylinder(center=(0.5, 0.2, 0.5), radius=0.25, height=0.1, axis=(0, 1, 0)),
                 "plane": Col.Plane(point=(0, 0.25, 0), normal=(0, 1, 0))}
    for name, collider in colliders.items():
        # tests/mpm/test_boundaries.py::test_collider_supports_falling_body
        scene = sc.Scene(dim=3, grid=24)
        scene.add_body(sc.shapes.Box(center=(0.5, 0.4, 0.5), size=(0.12, 0.08, 0.12)), sc.materials.NeoHookean(E=2e4))
        scene.add_collider(collider)
        traj = scene.run(frames=25, frame_dt=1 / 60, progress=False)
        gap = (traj.x[-1, :, 1].min() - 0.25) / scene.dx
        yield Row(f"tests/mpm/test_boundaries.py::test_collider_supports_falling_body[{name}]",
                  "lowest particle above the top at 0.25 m (cells)", gap, "in (−0.5, 2)", -0.5 < gap < 2)


@check("mpm")
def kinematic_colliders():
    from tests.mpm.test_boundaries import Col
    sc.init("cpu", "f32", verbose=False)
    # tests/mpm/test_boundaries.py::test_kinematic_collider_pushes_body
    scene = sc.Scene(dim=2, grid=48, gravity=(0.0, 0.0))
    scene.add_body(sc.shapes.Box(center=(0.5, 0.5), size=(0.12, 0.12)), sc.materials.NeoHookean(E=2e4))
    scene.add_collider(Col.Box(center=(0.3, 0.5), size=(0.1, 0.3), velocity=(0.6, 0.0), friction=0.0))
    traj = scene.run(frames=30, frame_dt=1 / 60, progress=False)
    front = scene.state.collider_origin[0, 0] + 0.05
    gap = (traj.x[-1, :, 0].min() - front) / scene.dx
    yield Row("tests/mpm/test_boundaries.py::test_kinematic_collider_pushes_body",
              "body's rear − pusher's front (cells)", gap, "> −1", gap > -1)
    # tests/mpm/test_boundaries.py::test_kinematic_collider_callable_velocity
    scene = sc.Scene(dim=2, grid=48)
    scene.add_body(sc.shapes.Box(center=(0.5, 0.3), size=(0.15, 0.1)), sc.materials.NeoHookean(E=3e4))
    scene.add_collider(Col.Plane(point=(0, 0.245), normal=(0, 1), velocity=lambda t: (0.0, 0.5 if t < 0.25 else 0.0)))
    traj = scene.run(frames=40, frame_dt=1 / 60, progress=False)
    err = (traj.x[-1, :, 1].min() - (0.245 + 0.125)) / scene.dx
    yield Row("tests/mpm/test_boundaries.py::test_kinematic_collider_callable_velocity",
              "resting height − (0.245 + ∫v dt) (cells)", err, "within ±1", abs(err) <= 1)


@check("mpm")
def actuation():
    sc.init("cpu", "f32", verbose=False)
    # tests/mpm/test_actuation.py::test_contracting_fibre_shortens_body
    scene = sc.Scene(dim=2, grid=32, gravity=(0.0, 0.0))
    scene.add_body(sc.shapes.Box(center=(0.5, 0.5), size=(0.2, 0.1)), sc.materials.NeoHookean(E=2e4),
                   actuator=0, fibre=(1.0, 0.0))
    traj = scene.run(frames=10, frame_dt=1 / 60, actuation=np.full((10, 1), 4e3), progress=False)
    shorter = np.ptp(traj.x[-1, :, 0]) / np.ptp(traj.x[0, :, 0])
    scene.reset()
    pushed = scene.run(frames=10, frame_dt=1 / 60, actuation=np.full((10, 1), -4e3), progress=False)
    longer = np.ptp(pushed.x[-1, :, 0]) / np.ptp(traj.x[0, :, 0])
    yield Row("tests/mpm/test_actuation.py::test_contracting_fibre_shortens_body",
              "width ratio under +4 kPa · −4 kPa fibre stress", f"{shorter:.3f} · {longer:.3f}", "< 0.95 · > 1.05",
              shorter < 0.95 and longer > 1.05)


@check("mpm")
def cfl_and_sampling():
    from simcore.mpm.planner import substeps_for_frame
    n, dt = substeps_for_frame(1 / 60, signal_speed=50.0, gravity=9.8, dx=1 / 64, dt=None, cfl=0.4, frame=1)
    bound = (1 / 64) / (50.0 + 9.8 / 60)
    yield Row("tests/mpm/test_model_parts.py::test_planner_respects_the_cfl_bound",
              "dt / (cfl · dx / (c + \\|g\\| frame_dt)) with one substep fewer · as planned",
              f"{(1 / 60) / (n - 1) / (0.4 * bound):.3f} · {dt / (0.4 * bound):.3f}", "> 1 · ≤ 1",
              (1 / 60) / (n - 1) > 0.4 * bound and dt <= 0.4 * bound * (1 + 1e-12))
    sc.init("cpu", "f32", verbose=False)
    scene = sc.Scene(dim=3, grid=48)
    body = scene.add_body(sc.shapes.Sphere(center=(0.5, 0.5, 0.5), radius=0.2), sc.materials.Fluid())
    rel = body.volume.sum() / (4 / 3 * np.pi * 0.2**3) - 1
    yield Row("tests/test_scene_api.py::test_sampled_volume_matches_shape", "Σ particle volume / sphere volume − 1",
              pct(rel), "within ±2 %", abs(rel) <= 0.02)
    scene = sc.Scene(dim=3, grid=48)
    body = scene.add_body(sc.shapes.Mesh(str(REPO / "assets/torus.obj"), center=(0.5, 0.5, 0.5), size=0.5),
                          sc.materials.Fluid())
    rel = body.volume.sum() / body.shape.mesh.volume - 1
    yield Row("tests/test_scenes.py::test_mesh_fills_its_volume", "Σ particle volume / mesh volume − 1",
              pct(rel), "within ±3 %", abs(rel) <= 0.03)


@check("mpm")
def flip_transfer():
    from tests.mpm import test_transfer as T
    sc.init("cpu", "f64", verbose=False)
    test = "tests/mpm/test_transfer.py::TestFlipBlend::"
    change = {}
    for transfer in ("flip", "apic"):
        traj = T.free_block(transfer).run(frames=1, frame_dt=1e-4, record=("v",), progress=False)
        change[transfer] = np.abs(traj.v[1] - traj.v[0]).max()
    yield Row(test + "test_pure_flip_round_trip_keeps_every_velocity_when_no_force_acts",
              "one force-free substep: max \\|Δv\\| (m/s), FLIP · APIC", f"{fmt(change['flip'])} · {fmt(change['apic'])}",
              "< 1e-14 · > 0.1", change["flip"] < 1e-14 and change["apic"] > 0.1)
    scene = T.free_block("flip", flip_damping=0.0, dt=None)
    traj = scene.run(frames=50, frame_dt=1e-2, record=("v",), progress=False)
    p0, p1 = T.momentum(scene.model.mass, traj.v[0]), T.momentum(scene.model.mass, traj.v[-1])
    rel = np.abs(p1 - p0).max() / np.abs(p0).max()
    kept = T.kinetic_energy(scene.model.mass, traj.v[-1]) / T.kinetic_energy(scene.model.mass, traj.v[0])
    yield Row(test + "test_flip_conserves_linear_momentum",
              "50 frames, pure FLIP: max \\|ΔΣ m v\\| / \\|Σ m v\\| · kinetic energy kept",
              f"{fmt(rel)} · {kept:.2f}", "< 1e-12 · > 0.5", rel < 1e-12 and kept > 0.5)
    kept = []
    for dt in (1e-4, 1e-2):
        scene = T.free_block("flip", flip_damping=10.0, dt=dt, E=1e-2)
        traj = scene.run(frames=10, frame_dt=1e-2, record=("v",), progress=False)
        kept.append(T.kinetic_energy(scene.model.mass, traj.v[-1]) / T.kinetic_energy(scene.model.mass, traj.v[0]))
    apic = T.free_block("apic", dt=1e-4, E=1e-2)
    traj = apic.run(frames=10, frame_dt=1e-2, record=("v",), progress=False)
    kept_apic = T.kinetic_energy(apic.model.mass, traj.v[-1]) / T.kinetic_energy(apic.model.mass, traj.v[0])
    yield Row(test + "test_flip_damping_acts_per_second_not_per_substep",
              "κ = 10/s, 0.1 s: kinetic energy kept, dt = 1e-4 s · 1e-2 s · APIC",
              f"{kept[0]:.4f} · {kept[1]:.4f} · {kept_apic:.4f}", "first two within 3 % · APIC < half the first < 0.5",
              abs(kept[0] / kept[1] - 1) < 0.03 and kept_apic < 0.5 * kept[0] and kept[0] < 0.5)


# -- Granular ----------------------------------------------------------------------------------------------
@check("granular")
def heap_stands():
    from tests.mpm.test_granular_and_fluid import flank_slope, heap
    sc.init("cpu", "f32", verbose=False)
    traj, dx = heap(friction_angle=40.0)
    change = abs(flank_slope(traj.x[-1], dx) - flank_slope(traj.x[0], dx))
    moved = np.abs(traj.x[-1] - traj.x[0]).max() / dx
    test = "tests/mpm/test_granular_and_fluid.py::test_heap_below_friction_angle_stands"
    yield Row(test, "30° heap, φ = 40°: flank slope change (°)", change, "< 1.5", change < 1.5)
    yield Row(test, "30° heap, φ = 40°: largest displacement (cells)", moved, "< 1", moved < 1)


@check("granular")
def slumped_heaps():
    from tests.mpm.test_granular_and_fluid import flank_slope, heap
    sc.init("cpu", "f32", verbose=False)
    for phi in (20.0, 30.0, 40.0):
        traj, dx = heap(friction_angle=phi, slope_deg=phi + 3, frames=90, E=3.537e5)
        ke = 0.5 * np.einsum("p,fpd->f", traj.mass, traj.v**2)
        start, rest = flank_slope(traj.x[0], dx), flank_slope(traj.x[-1], dx)
        test = f"tests/mpm/test_granular_and_fluid.py::test_slumped_heap_rests_at_its_friction_angle[{phi}]"
        yield Row(test, f"φ = {phi:.0f}°: resting slope (°), start {start:.1f}°", f"{rest:.1f} ({rest - phi:+.1f})",
                  "φ ± 3", abs(rest - phi) < 3 and start > phi + 1)
        yield Row(test, f"φ = {phi:.0f}°: final / peak kinetic energy", ke[-1] / ke.max(), "< 0.02",
                  ke[-1] < 0.02 * ke.max())


@check("granular", slow=[
    _slow(f"tests/mpm/test_granular_and_fluid.py::test_slumped_{shape}_rests_at_its_friction_angle_in_3d[{phi}]",
          f"3D {shape.replace('_', ' ')}, φ = {phi:.0f}°: resting slope (°)", "φ ± 3", "3D heaps at grid 48: ≈ 1 min")
    for shape in ("conical_heap", "ridge") for phi in (20.0, 30.0, 40.0)])
def heaps_3d():
    from tests.mpm.test_granular_and_fluid import cone_slope, conical_heap, flank_slope, ridge
    sc.init("cpu", "f32", verbose=False)
    for shape in ("conical_heap", "ridge"):
        for phi in (20.0, 30.0, 40.0):
            if shape == "conical_heap":
                traj, dx = conical_heap(phi, phi + 3)
                start, rest = cone_slope(traj.x[0], dx), cone_slope(traj.x[-1], dx)
            else:
                traj, dx, middle = ridge(phi, phi + 3)
                start, rest = (flank_slope(traj.x[i][middle][:, :2], dx) for i in (0, -1))
            ke = 0.5 * np.einsum("p,fpd->f", traj.mass, traj.v**2)
            test = f"tests/mpm/test_granular_and_fluid.py::test_slumped_{shape}_rests_at_its_friction_angle_in_3d[{phi}]"
            yield Row(test, f"3D {shape.replace('_', ' ')}, φ = {phi:.0f}°: resting slope (°), start {start:.1f}°, "
                      f"final / peak kinetic energy {ke[-1] / ke.max():.1e}", f"{rest:.1f} ({rest - phi:+.1f})", "φ ± 3",
                      abs(rest - phi) < 3 and start > phi + 1 and ke[-1] < 0.02 * ke.max())


@check("granular")
def tilting_table():
    from tests.mpm.test_granular_and_fluid import tilted_layer_displacement
    sc.init("cpu", "f32", verbose=False)
    for phi in (20.0, 30.0, 40.0):
        critical = np.degrees(np.arctan(np.sin(np.radians(phi))))
        below, above = (tilted_layer_displacement(phi, critical + d) for d in (-3, 3))
        yield Row("tests/mpm/test_granular_and_fluid.py::"
                  f"test_layer_on_a_tilting_table_holds_below_and_flows_above_its_critical_slope[{phi}]",
                  f"φ = {phi:.0f}° (θc = {critical:.1f}°): slide of the middle at θc − 3° · θc + 3° (cells)",
                  f"{below:.2f} · {above:.1f}", "< 2 · > 4", below < 2 and above > 4)


@check("granular")
def column_collapse():
    """examples/column_collapse_lube.py with Drucker–Prager sand and the APIC transfer (grid 64, the
    sand_collapse scene's floor friction and φ, 2 s), against Lube et al. 2005's planar laws; no test asserts
    these (tests/mpm/test_column_collapse.py asserts the scene's converged defaults)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("column_collapse_lube", REPO / "examples" / "column_collapse_lube.py")
    lube = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(lube)
    defaults = lube.sand_collapse.DEFAULTS
    sc.init("cpu", "f32", verbose=False)
    for width, height in lube.COLUMNS:
        a = height / (width / 2)
        run_out, top, speed = lube.collapse(width, height, 64, defaults["floor_friction"], defaults["friction_angle"], 2.0,
                                            rheology="drucker-prager", transfer="apic")
        ref_run, ref_top = lube.lube(a)
        yield Row(f"examples/column_collapse_lube.py[a={a:.1f}]",
                  f"a = {a:.1f}: run-out ΔL/L0 vs Lube · height H∞/L0 vs Lube · largest speed at 2 s (m/s)",
                  f"{run_out:.2f} vs {ref_run:.2f} ({run_out / ref_run - 1:+.0%}) · {top:.2f} vs {ref_top:.2f} "
                  f"({top / ref_top - 1:+.0%}) · {fmt(speed)}", "none asserted (an example)", None)


@check("granular")
def column_collapse_time_step():
    """tests/mpm/test_transfer.py's collapse: the a = 2 column at grid 32, CFL 0.4 and 0.1."""
    from tests.mpm import test_transfer  # noqa: F401  (the test imports the example the same way)
    sys.path.insert(0, str(REPO / "examples"))
    from column_collapse_lube import collapse
    sc.init("cpu", "f32", verbose=False)
    run_out = {(t, cfl): collapse(0.2, 0.2, 32, 1.0, 30.0, 1.5, rheology="drucker-prager", cfl=cfl, transfer=t)[0]
               for t in ("flip", "apic") for cfl in (0.4, 0.1)}
    flip, apic = run_out["flip", 0.1] / run_out["flip", 0.4], run_out["apic", 0.1] / run_out["apic", 0.4]
    yield Row("tests/mpm/test_transfer.py::test_column_collapse_run_out_does_not_depend_on_the_time_step_with_flip",
              "a = 2, grid 32: run-out at CFL 0.1 / at 0.4, FLIP · APIC",
              f"{flip:.3f} ({run_out['flip', 0.4]:.2f} → {run_out['flip', 0.1]:.2f} L0) · {apic:.3f} "
              f"({run_out['apic', 0.4]:.2f} → {run_out['apic', 0.1]:.2f} L0)", "within 1 ± 0.04 · < 0.92",
              abs(flip - 1) < 0.04 and apic < 0.92)


@check("granular")
def column_collapse_converged():
    from tests.mpm import test_column_collapse as T
    example = fixture(T.example)
    test = "tests/mpm/test_column_collapse.py::"
    for name, (width, height), tolerance, top_tol in (
            ("test_short_column_keeps_its_top_and_runs_out_as_lube_measured", (0.3, 0.12), "within 15 % · 5 %", 0.05),
            ("test_column_of_aspect_two_runs_out_as_lube_measured", (0.2, 0.2), "within 15 % · 20 %", 0.2)):
        run_out, top, lube_run_out, lube_top = T.converged_collapse(example, width, height)
        a = height / (width / 2)
        yield Row(test + name, f"a = {a:.1f}, μ(I) μs = tan 30°, FLIP, grid 64: ΔL/L0 vs Lube · H∞/L0 vs Lube",
                  f"{run_out:.2f} vs {lube_run_out:.2f} ({run_out / lube_run_out - 1:+.0%}) · {top:.2f} vs "
                  f"{lube_top:.2f} ({top / lube_top - 1:+.0%})", tolerance,
                  abs(run_out / lube_run_out - 1) < 0.15 and abs(top / lube_top - 1) < top_tol)


def mu_i_module():
    """tests/mpm/test_mu_i.py, which imports its sibling test_granular_and_fluid as a top-level module
    (pytest puts tests/mpm on sys.path; so does this)."""
    sys.path.insert(0, str(REPO / "tests" / "mpm"))
    from tests.mpm import test_mu_i
    return test_mu_i


@check("granular")
def mu_i_return_map():
    U = mu_i_module()
    sc.init("cpu", "f64", verbose=False)
    test = "tests/mpm/test_mu_i.py::"
    mu, lam, dt, d = 4e4, 6e4, 2e-4, 0.01
    for dim in (2, 3):  # test_return_map_solves_the_mu_of_I_law
        rng = np.random.default_rng(dim)
        n = 400
        eps = rng.normal(0, 0.02, (n, dim))
        eps -= (0.01 + 0.02 * rng.random((n, 1))) / dim
        out = U.return_map(eps, mu, lam, U.packed(U.MU_S, U.MU_2, U.I0, d, U.GRAIN_DENSITY, n), dt)
        trace = eps.sum(1)
        p_trial, tau_trial = U.invariants(eps, mu, lam)
        p, tau = U.invariants(out, mu, lam)
        y = (trace < 0) & (tau_trial > U.MU_S * p_trial)
        shear_rate = (tau_trial[y] - tau[y]) / (mu * dt)
        inertial = shear_rate * d * np.sqrt(U.GRAIN_DENSITY / (p[y] * np.exp(-trace[y])))
        friction = U.MU_S + (U.MU_2 - U.MU_S) / (U.I0 / inertial + 1)
        err = np.abs(tau[y] / (friction * p[y]) - 1).max()
        yield Row(test + f"test_return_map_solves_the_mu_of_I_law[{dim}]",
                  f"{dim}D: max \\|τ_eq / (μ(I) p) − 1\\| over {y.sum()} yielding trial states", err, "≤ 1e-10",
                  err <= 1e-10)
    eps = np.array([[-0.02, 0.01], [-0.015, 0.004], [-0.03, 0.0], [-0.01, 0.007]])
    p_trial, tau_trial = U.invariants(eps, mu, lam)
    worst = 0.0
    for mu_2, i0, expected in ((U.MU_2, 1e14, U.MU_S * p_trial), (U.MU_S, U.I0, U.MU_S * p_trial),
                               (U.MU_2, 1e-14, np.minimum(tau_trial, U.MU_2 * p_trial))):
        out = U.return_map(eps, mu, lam, U.packed(U.MU_S, mu_2, i0, d, U.GRAIN_DENSITY, len(eps)), dt)
        worst = max(worst, np.abs(U.invariants(out, mu, lam)[1] / expected - 1).max())
    yield Row(test + "test_return_map_limits", "I0 → ∞, μ2 = μs, I0 → 0: max \\|τ_eq / limit − 1\\|", worst, "≤ 1e-9",
              worst <= 1e-9)


@check("granular")
def mu_i_incline():
    U = mu_i_module()
    sc.init("cpu", "f64", verbose=False)
    test = "tests/mpm/test_mu_i.py::"
    inclines = fixture(U.inclines)
    traj, inertial, u_s, belt = inclines[25.0]
    h = U.INCLINE["h"]
    z, u = U.profile(traj, belt, 0.5, 1.2)
    analytic = u_s * (1 - (1 - z / h) ** 1.5)
    surface = u[-1] / analytic[-1] - 1
    upper = z > 0.5 * h
    shape = np.abs((u[-1] - u) - (analytic[-1] - analytic))[upper].max() / u_s
    first, second = (U.profile(traj, belt, a, b)[1][-1] for a, b in ((0.5, 0.85), (0.85, 1.2)))
    steady = first / second - 1
    yield Row(test + "test_steady_flow_down_an_incline_has_the_bagnold_profile",
              f"θ = 25° (I = {inertial:.3f}): surface speed / u_s − 1 · upper-half profile error / u_s · "
              "change between the window's halves", f"{pct(surface)} · {shape:.3f} · {pct(steady)}",
              "within ±10 % · < 0.1 · within ±3 %", abs(surface) < 0.1 and shape < 0.1 and abs(steady) < 0.03)
    traj_stop, _, _, belt_stop = inclines[15.0]

    def downslope(traj, belt, frame):
        middle = np.abs(traj.x[frame][:, 0] - 0.5) < 0.2
        return traj.v[frame][middle, 0].mean() + belt

    late = range(round(0.9 * U.INCLINE["fps"]), round(1.2 * U.INCLINE["fps"]) + 1)
    stopped = np.mean([downslope(traj_stop, belt_stop, f) for f in late])
    flowing = np.mean([downslope(traj, belt, f) for f in late])
    yield Row(test + "test_layer_stops_below_the_static_friction_angle_and_flows_above",
              "15° layer's speed / 25° layer's · 25° layer's speed / u_s", f"{fmt(abs(stopped) / flowing)} · "
              f"{flowing / u_s:.2f}", "< 0.02 · > 0.5", abs(stopped) < 0.02 * flowing and flowing > 0.5 * u_s)


@check("granular")
def mu_i_static_angles():
    U = mu_i_module()
    sc.init("cpu", "f64", verbose=False)
    late = range(round(0.9 * U.INCLINE["fps"]), round(1.2 * U.INCLINE["fps"]) + 1)
    for angle in (20.0, 30.0, 40.0):  # test_static_angle_of_a_layer_is_atan_mu_s
        mu_s = np.tan(np.radians(angle))
        speeds = []
        for theta in (angle - 3.0, angle + 3.0):
            traj, _, u_s, belt = U.incline(theta, mu_s, mu_s + 0.26)
            speeds.append((np.mean([traj.v[f][np.abs(traj.x[f][:, 0] - 0.5) < 0.2, 0].mean() + belt
                                    for f in late]), u_s))
        (stopped, _), (flowing, u_s) = speeds
        yield Row(f"tests/mpm/test_mu_i.py::test_static_angle_of_a_layer_is_atan_mu_s[{angle}]",
                  f"μs = tan {angle:.0f}°: layer at {angle - 3:.0f}°: speed / the {angle + 3:.0f}° layer's · "
                  f"{angle + 3:.0f}° layer's speed / u_s", f"{fmt(abs(stopped) / flowing)} · {flowing / u_s:.2f}",
                  "< 0.02 · > 0.5", abs(stopped) < 0.02 * flowing and flowing > 0.5 * u_s)


@check("granular")
def mu_i_heaps():
    U = mu_i_module()
    sc.init("cpu", "f64", verbose=False)
    test = "tests/mpm/test_mu_i.py::"
    heaps = fixture(U.heaps)
    traj = heaps[0.236]
    start, final = U.flank_slope(traj.x[0], U.DX), U.flank_slope(traj.x[-1], U.DX)
    ke = U.kinetic_energy(traj)
    yield Row(test + "test_slumped_heap_rests_at_the_static_friction_angle",
              "atan μs = 20°, 30° heap: resting slope (°) · slump (°) · final / peak kinetic energy",
              f"{final:.1f} · {start - final:.1f} · {fmt(ke[-1] / ke.max())}", "20 ± 3 · > 5 · < 1e-3",
              abs(final - 20) < 3 and start - final > 5 and ke[-1] < 1e-3 * ke.max())
    order = sorted(heaps)
    peak = [U.kinetic_energy(heaps[k]).max() for k in order]
    runout = [np.ptp(np.quantile(heaps[k].x[-1][:, 0], [0.005, 0.995])) for k in order]
    slopes = [U.flank_slope(heaps[k].x[-1], U.DX) for k in order]
    yield Row(test + "test_larger_rate_dependence_flows_more_slowly",
              "μ2 − μs = 0, 0.236, 0.5: peak kinetic energy (J/m) · run-out (m) · resting slope (°)",
              " · ".join(", ".join(f"{v:.3g}" for v in values) for values in (peak, runout, slopes)),
              "each decreasing (energy by > 1.2× a step) · decreasing · increasing",
              peak[0] > 1.2 * peak[1] > 1.44 * peak[2] and runout[0] > runout[1] > runout[2]
              and slopes[0] < slopes[1] < slopes[2])
    err = np.abs(U.heap(0.236, i0=1e14).x - heaps[0.0].x).max()
    yield Row(test + "test_infinite_I0_is_rate_independent_friction", "max \\|x(I0 = 1e14) − x(μ2 = μs)\\| (m)", err,
              "< 1e-12", err < 1e-12)


# -- Fluids ------------------------------------------------------------------------------------------------
@check("fluids")
def fluid_levels():
    from tests.mpm.test_granular_and_fluid import surface
    sc.init("cpu", "f32", verbose=False)
    # tests/mpm/test_granular_and_fluid.py::test_fluid_settles_level
    grid = 48
    scene = sc.Scene(dim=2, grid=grid)
    scene.add_body(sc.shapes.Box(center=(0.3, 0.35), size=(0.3, 0.4)), sc.materials.Fluid(bulk_modulus=1e4, viscosity=5.0))
    traj = scene.run(frames=90, frame_dt=1 / 30, record=("v",), progress=False)
    ke = 0.5 * np.einsum("p,fpd->f", traj.mass, traj.v**2)
    _, h = surface(traj.x[-1], 2 / grid, 0.08, 0.92)
    h = h[np.isfinite(h)]
    test = "tests/mpm/test_granular_and_fluid.py::test_fluid_settles_level"
    yield Row(test, f"free-surface height range over {len(h)} columns (cells)", np.ptp(h) * grid, "< 2",
              np.ptp(h) < 2 / grid and len(h) > 15)
    yield Row(test, "final / peak kinetic energy", ke[-1] / ke.max(), "< 0.02", ke[-1] < 0.02 * ke.max())


# -- Hydrostatics (initial stress) --------------------------------------------------------------------------
def hydrostatic_module():
    """tests/mpm/test_hydrostatic.py, or None in a checkout that predates it."""
    if not (REPO / "tests" / "mpm" / "test_hydrostatic.py").exists():
        return None
    from tests.mpm import test_hydrostatic
    return test_hydrostatic


MISSING_HYDROSTATIC = Row("tests/mpm/test_hydrostatic.py", "hydrostatic initialisation",
                          "not measured: the test module is not in this checkout", "—", None)


@check("hydrostatics")
def hydrostatic_pool():
    H = hydrostatic_module()
    if H is None:
        yield MISSING_HYDROSTATIC
        return
    sc.init("cpu", "f64", verbose=False)
    test = "tests/mpm/test_hydrostatic.py::"
    runs = fixture(H.runs, None)
    scene, traj = runs["hydrostatic"]
    speed = np.linalg.norm(traj.v, axis=-1).max()
    start = H.surface(traj.x[0])
    drift = max(np.abs(H.surface(x) - start).max() for x in traj.x) / H.DX
    report = H.equilibrium(scene)
    yield Row(test + "test_pool_released_at_rest_stays_at_rest",
              "2D pool 0.25 m deep, 2 s: largest speed (m/s) · surface drift (dx) · unbalanced nodes · grid residual / g",
              f"{fmt(speed)} · {fmt(drift)} · {len(report.unbalanced)} · {fmt(report.residual / H.G)}",
              "< 1e-3 · < 0.25 · 0 · < 1e-5", speed < 1e-3 and drift < 0.25 and len(report.unbalanced) == 0
              and report.residual < 1e-5 * H.G)
    speed = np.linalg.norm(runs[None][1].v, axis=-1).max()
    yield Row(test + "test_pool_without_initial_stress_moves", "the same pool started unstressed: largest speed (m/s)",
              speed, "> 1e-2", speed > 1e-2)
    total = H.extent(traj.x[0])[1]
    for frame in (0, H.FRAMES):
        depth, p, exact = H.pressure_profile(traj.x[0], traj.Jp[frame])
        floor = H.bottom_pressure(depth, p, total) / H.hydrostatic_pressure(total) - 1
        inner = H.inner_layers(depth, total)
        layer = np.abs(p[inner] / exact[inner] - 1).max()
        bottom = depth > total - H.DX
        cell = p[bottom].mean() / exact[bottom].mean() - 1
        yield Row(test + f"test_pool_pressure_is_hydrostatic[{frame}]",
                  f"t = {traj.t[frame]:.0f} s: floor pressure / Stevin − 1 · worst inner layer · bottom cell's layers",
                  f"{pct(floor)} · {layer:.2%} · {pct(cell)}", "within ±2 % · < 2 % · within ±12 %",
                  abs(floor) < 0.02 and layer < 0.02 and abs(cell) < 0.12)


@check("hydrostatics")
def hydrostatic_3d_and_solids():
    H = hydrostatic_module()
    if H is None:
        return
    sc.init("cpu", "f64", verbose=False)
    test = "tests/mpm/test_hydrostatic.py::"
    grid = 16  # test_3d_pool_stays_at_rest
    traj = H.pool("hydrostatic", dim=3, grid=grid, depth=0.2, lo=0.2, hi=0.8).run(
        H.FRAMES, H.FRAME_DT, record=("x", "v"), progress=False)
    speed = np.linalg.norm(traj.v, axis=-1).max()
    drift = np.abs(traj.x[:, :, 1].max(1) - traj.x[0, :, 1].max()).max() * grid
    yield Row(test + "test_3d_pool_stays_at_rest", "3D pool, grid 16, 2 s: largest speed (m/s) · surface drift (dx)",
              f"{fmt(speed)} · {fmt(drift)}", "< 1e-3 · < 0.25", speed < 1e-3 and drift < 0.25)
    for option, confined in (("uniaxial_stress", False), ("geostatic", True)):
        # test_elastic_block_on_the_floor_stays_at_rest
        traj = H.block(option, confined).run(30, H.FRAME_DT, record=("x", "v", "F"), progress=False)
        speed = np.linalg.norm(traj.v, axis=-1).max()
        moved = np.abs(traj.x - traj.x[0]).max() / H.DX
        sigma = H.neo_hookean_cauchy(traj.F[-1])
        heights, syy = H.layers(traj.x[0], sigma[:, 1, 1])
        _, sxx = H.layers(traj.x[0], sigma[:, 0, 0])
        top, total = H.extent(traj.x[0])
        depth = top - heights
        floor = -H.bottom_pressure(depth, syy, total) / H.weight_per_area(traj) - 1
        inner = H.inner_layers(depth, total)
        if confined:
            lateral = np.abs(sxx[inner] / syy[inner] / (0.3 / 0.7) - 1).max()
            lateral_text, lateral_ok, tolerance = f"σxx/σyy within {lateral:.2%} of K0", lateral < 0.02, "< 2 %"
        else:
            lateral = np.abs(sxx).max() / (H.RHO * H.G * H.DEPTH)
            lateral_text, lateral_ok, tolerance = f"\\|σxx\\| / ρgh = {fmt(lateral)}", lateral < 1e-6, "< 1e-6"
        yield Row(test + f"test_elastic_block_on_the_floor_stays_at_rest[{option}-{confined}]",
                  f"neo-Hookean block, {option}, 1 s: largest speed (m/s) · displacement (dx) · floor σyy / "
                  "(weight / area) − 1 · "
                  "lateral stress", f"{fmt(speed)} · {fmt(moved)} · {pct(floor)} · {lateral_text}",
                  f"< 1e-3 · < 1e-3 · within ±2 % · {tolerance}",
                  speed < 1e-3 and moved < 1e-3 and abs(floor) < 0.02 and lateral_ok)


@check("hydrostatics")
def pool_against_domain_walls():
    H = hydrostatic_module()
    if H is None:
        return
    sc.init("cpu", "f64", verbose=False)
    # tests/mpm/test_hydrostatic.py::test_pool_against_the_domain_walls_stays_at_rest
    scene = sc.Scene(dim=2, grid=H.GRID, walls={"-x": "sticky", "+x": "sticky"})
    scene.add_body(sc.shapes.Box(center=(0.5, 3 * H.DX + H.DEPTH / 2), size=(1 - 6 * H.DX, H.DEPTH)),
                   sc.materials.Fluid(**H.WATER), initial_stress="hydrostatic")
    report = H.equilibrium(scene)
    traj = scene.run(H.FRAMES, H.FRAME_DT, record=("x", "v"), progress=False)
    speed = np.linalg.norm(traj.v, axis=-1).max()
    start = H.surface(traj.x[0])
    drift = max(np.abs(H.surface(x) - start).max() for x in traj.x) / H.DX
    yield Row("tests/mpm/test_hydrostatic.py::test_pool_against_the_domain_walls_stays_at_rest",
              "2D pool on the domain's floor, wall to wall, 2 s: largest speed (m/s) · surface drift (dx) · "
              "unbalanced nodes · grid residual (g)",
              f"{fmt(speed)} · {fmt(drift)} · {len(report.unbalanced)} · {fmt(report.residual / H.G)}",
              "< 1e-3 · < 0.25 · 0 · < 1e-5",
              speed < 1e-3 and drift < 0.25 and len(report.unbalanced) == 0 and report.residual < 1e-5 * H.G)


@check("hydrostatics")
def initial_stress_laws():
    import torch
    H = hydrostatic_module()
    if H is None:
        return
    sc.init("cpu", "f64", verbose=False)
    test = "tests/mpm/test_hydrostatic.py::"
    q = np.array([100.0])  # test_geostatic_lateral_stress_follows_each_law
    M = sc.materials
    worst = 0.0
    for material in (M.NeoHookean(E=1e7, nu=0.3), M.FixedCorotated(E=1e7, nu=0.3), M.Sand(E=1e7, nu=0.3, friction_angle=40)):
        state = H.law(material, "geostatic").state(q)
        worst = max(worst, abs(state.sigma_h[0] / state.sigma_v[0] / (0.3 / 0.7) - 1))
    loose = H.law(M.Sand(E=1e7, nu=0.3, friction_angle=20), "geostatic").state(q)
    ratio = loose.sigma_h[0] / loose.sigma_v[0] / (0.3 / 0.7)
    yield Row(test + "test_geostatic_lateral_stress_follows_each_law",
              "uniaxial strain: σh/σv vs K0 = ν/(1 − ν), neo-Hookean, fixed corotated, sand φ = 40° (worst) · "
              "sand φ = 20° (outside its cone) / K0", f"{fmt(worst)} · {ratio:.3f}", "≤ 1e-4 · > 1.05",
              worst <= 1e-4 and ratio > 1.05)

    def mean_height(vy, grad=False):  # test_rollout_starts_at_rest
        velocity = torch.tensor([0.0, vy], dtype=torch.float64, requires_grad=grad)
        scene = sc.Scene(dim=2, grid=H.GRID)
        H.tank(scene)
        scene.add_body(sc.shapes.Box(center=(0.5, H.FLOOR + H.DEPTH / 2), size=(H.RIGHT - H.LEFT, H.DEPTH)),
                       M.Fluid(**H.WATER), velocity=velocity, initial_stress="hydrostatic")
        out = scene.rollout(3, H.FRAME_DT, record=("x", "v"))
        return out, out.x[-1, :, 1].mean(), velocity

    out, height, velocity = mean_height(0.0, grad=True)
    speed = out.v.abs().max().item()
    height.backward()
    with torch.no_grad():
        numeric = (mean_height(1e-3)[1] - mean_height(-1e-3)[1]).item() / 2e-3
    err = fd_error(velocity.grad[1].item(), numeric)
    yield Row(test + "test_rollout_starts_at_rest", "rollout of the pool: largest speed (m/s) · d(mean height)/dv₀ vs FD",
              f"{fmt(speed)} · {fmt(err)}", "< 1e-3 · ≤ 1e-4", speed < 1e-3 and err <= 1e-4)


# -- Gradients ---------------------------------------------------------------------------------------------
def fd_error(analytic: float, numeric: float) -> float:
    """|analytic − numeric| / |numeric|; pytest.approx(rel=1e-4, abs=1e-12) is this ≤ 1e-4 (or both tiny)."""
    return abs(analytic - numeric) / max(abs(numeric), 1e-300)


def gradient_errors(scene, params, steps):
    """tests/diff/test_gradients.py's `check`, returning the largest relative error instead of asserting."""
    from tests.diff.test_gradients import central_difference, loss_of
    for p in params:
        p.grad = None
    loss_of(scene).backward()
    worst = 0.0
    for param, h in zip(params, steps):
        for index in ([None] if param.dim() == 0 else range(param.numel())):
            analytic = (param.grad if index is None else param.grad[index]).item()
            worst = max(worst, fd_error(analytic, central_difference(scene, param, h, index)))
    return worst


def gradient_row(test, quantity, err):
    return Row(test, quantity, err, "≤ 1e-4", err <= 1e-4)


@check("gradients")
def material_gradients():
    from tests.diff.test_gradients import M, make_scene, neo_hookean_scene, t
    sc.init("cpu", "f64", verbose=False)
    test = "tests/diff/test_gradients.py::"
    scene, (E, nu, v0) = neo_hookean_scene(2)
    yield gradient_row(test + "test_neo_hookean_moduli_and_initial_velocity",
                       "2D neo-Hookean: dL/dE, dL/dν, dL/dv0 vs central differences (worst relative error)",
                       gradient_errors(scene, [E, nu, v0], [1.0, 1e-5, 1e-5]))
    E, nu = t(2e4), t(0.3)
    yield gradient_row(test + "test_fixed_corotated_moduli", "2D fixed corotated: dL/dE, dL/dν",
                       gradient_errors(make_scene(2, M.FixedCorotated(E=E, nu=nu), (0.5, -2.0)), [E, nu], [1.0, 1e-5]))
    sigma_y = t(800.0)
    yield gradient_row(test + "test_plasticine_yield_stress[2]", "2D plasticine (von Mises): dL/dσ_y",
                       gradient_errors(make_scene(2, M.Plasticine(E=2e4, yield_stress=sigma_y), (0.5, -2.0)),
                                       [sigma_y], [0.05]))
    E, nu = t(2e4), t(0.3)
    yield gradient_row(test + "test_hencky_elastic_moduli", "2D Hencky elasticity (plasticine kept elastic): dL/dE, dL/dν",
                       gradient_errors(make_scene(2, M.Plasticine(E=E, nu=nu, yield_stress=1e7), (0.5, -2.0)),
                                       [E, nu], [1.0, 1e-5]))
    phi = t(30.0)
    yield gradient_row(test + "test_sand_friction_angle[2]", "2D sand (Drucker–Prager): dL/dφ",
                       gradient_errors(make_scene(2, M.Sand(E=2e4, friction_angle=phi), (0.5, -2.0)), [phi], [1e-3]))
    phi = t(30.0)
    yield gradient_row(test + "test_sand_friction_angle[3]", "3D sand (Matsuoka–Nakai): dL/dφ",
                       gradient_errors(make_scene(3, M.Sand(E=2e4, friction_angle=phi), (0.5, -2.0, 0.2)), [phi],
                                       [1e-3]))
    if hasattr(M, "GranularMuI"):
        mu_s, mu_2, E = t(0.4), t(0.7), t(2e4)
        material = M.GranularMuI(E=E, mu_s=mu_s, mu_2=mu_2, grain_diameter=0.01)
        yield gradient_row(test + "test_mu_i_friction_and_modulus", "2D μ(I) rheology: dL/dμs, dL/dμ2, dL/dE",
                           gradient_errors(make_scene(2, material, (0.5, -2.0)), [mu_s, mu_2, E], [1e-5, 1e-5, 1.0]))


@check("gradients")
def flip_gradients():
    from tests.diff.test_gradients import FLIP_MATERIALS, flip_case
    sc.init("cpu", "f64", verbose=False)
    for material in FLIP_MATERIALS:
        leaves = "dL/dE, dL/dφ, dL/dv0" if material == "Sand" else "dL/dE, dL/dν, dL/dρ, dL/dv0"
        yield gradient_row(f"tests/diff/test_gradients.py::test_flip_transfer_gradients[{material}]",
                           f"2D {material}, FLIP transfer (κ = 20/s): {leaves}", gradient_errors(*flip_case(material)))


@check("gradients", slow=[
    _slow("tests/diff/test_gradients_3d.py::test_neo_hookean_moduli_and_initial_velocity",
          "3D neo-Hookean: dL/dE, dL/dν, dL/dv0", "≤ 1e-4", "3D adjoint kernels: ≈ 70 s from a cold kernel cache, 20 s warm"),
    _slow("tests/diff/test_gradients_3d.py::test_free_flight_dx_dv0_is_T", "3D: max \\|d mean(x_T)/d v0 − T·I\\| (s)",
          "≤ 1e-13", "the 3D scene above"),
    _slow("tests/diff/test_gradients_3d.py::test_fixed_corotated_moduli", "3D fixed corotated: dL/dE, dL/dν", "≤ 1e-4",
          "3D adjoint kernels: ≈ 70 s from a cold kernel cache, 20 s warm")])
def material_gradients_3d():
    from tests.diff.test_gradients import M, make_scene, neo_hookean_scene, t
    sc.init("cpu", "f64", verbose=False)
    test = "tests/diff/test_gradients_3d.py::"
    scene, (E, nu, v0) = neo_hookean_scene(3)
    yield gradient_row(test + "test_neo_hookean_moduli_and_initial_velocity", "3D neo-Hookean: dL/dE, dL/dν, dL/dv0",
                       gradient_errors(scene, [E, nu, v0], [1.0, 1e-5, 1e-5]))
    yield free_flight_row(scene, v0)
    E, nu = t(2e4), t(0.3)
    yield gradient_row(test + "test_fixed_corotated_moduli", "3D fixed corotated: dL/dE, dL/dν",
                       gradient_errors(make_scene(3, M.FixedCorotated(E=E, nu=nu), (0.5, -2.0, 0.2)), [E, nu],
                                       [1.0, 1e-5]))


@check("gradients", slow=[
    _slow("tests/diff/test_gradients_3d.py::test_flip_transfer_gradients_3d", "3D neo-Hookean, FLIP transfer: "
          "dL/dE, dL/dν, dL/dρ, dL/dv0", "≤ 1e-4", "3D adjoint kernels of another configuration: ≈ 50 s")])
def flip_gradients_3d():
    from tests.diff.test_gradients import flip_case
    sc.init("cpu", "f64", verbose=False)
    yield gradient_row("tests/diff/test_gradients_3d.py::test_flip_transfer_gradients_3d",
                       "3D neo-Hookean, FLIP transfer: dL/dE, dL/dν, dL/dρ, dL/dv0", gradient_errors(*flip_case("NeoHookean", 3)))


def free_flight_row(scene, v0):
    """tests/diff/test_gradients.py::test_free_flight_dx_dv0_is_T on the neo_hookean fixture's scene."""
    import torch
    dim = scene.dim
    with torch.no_grad():
        v0.copy_(torch.tensor([0.3, 1.0, -0.2][:dim]))  # as in the test: moving up, away from the plane
    out = scene.rollout(frames=2, frame_dt=0.01)
    err = 0.0
    for axis in range(dim):
        v0.grad = None
        out.x[-1, :, axis].mean().backward(retain_graph=True)
        expected = np.zeros(dim)
        expected[axis] = 0.02
        err = max(err, np.abs(v0.grad.numpy() - expected).max())
    module = "test_gradients_3d.py" if dim == 3 else "test_gradients.py"
    return Row(f"tests/diff/{module}::test_free_flight_dx_dv0_is_T",
               f"{dim}D: max \\|d mean(x_T)/d v0 − T·I\\| (s)", err, "≤ 1e-13", err <= 1e-13)


@check("gradients")
def free_flight_gradient():
    from tests.diff.test_gradients import neo_hookean_scene
    sc.init("cpu", "f64", verbose=False)
    scene, (_, _, v0) = neo_hookean_scene(2)
    yield free_flight_row(scene, v0)


@check("gradients")
def actuation_and_mixed_gradients():
    import torch

    from tests.diff.test_gradients import M, t
    sc.init("cpu", "f64", verbose=False)
    # tests/diff/test_gradients.py::test_actuation
    scene = sc.Scene(dim=2, grid=24, dt=5e-4)
    scene.add_body(sc.shapes.Box(center=(0.4, 0.2), size=(0.15, 0.08)), M.NeoHookean(E=2e4),
                   actuator=lambda x: (x[:, 0] > 0.4).astype(int), fibre=(1, 0))
    scene.add_collider(sc.colliders.Plane(point=(0, 0.15), normal=(0, 1), friction=0.5))
    k = np.arange(6)
    A = t(np.stack([3e3 * np.sin(k), -2e3 * np.cos(k)], 1))

    def loss():
        return scene.rollout(frames=6, frame_dt=1 / 60, actuation=A).x[-1, :, 0].mean()

    loss().backward()
    worst = 0.0
    for index in [(0, 1), (2, 0), (4, 1)]:
        with torch.no_grad():
            A[index] += 1.0
            plus = loss().item()
            A[index] -= 2.0
            minus = loss().item()
            A[index] += 1.0
        worst = max(worst, fd_error(A.grad[index].item(), (plus - minus) / 2.0))
    yield gradient_row("tests/diff/test_gradients.py::test_actuation", "dL/d(activation) at 3 (frame, group) entries",
                       worst)
    # tests/diff/test_gradients.py::test_snow_and_fluid_gradients_and_recorded_fields
    E, hardening, K, viscosity = t(3e4), t(10.0), t(2e4), t(0.5)
    scene = sc.Scene(dim=2, grid=24, dt=5e-4)
    scene.add_body(sc.shapes.Box(center=(0.35, 0.3), size=(0.12, 0.12)), M.Snow(E=E, hardening=hardening, density=1e3),
                   velocity=(0.5, -2.0))
    scene.add_body(sc.shapes.Box(center=(0.65, 0.3), size=(0.12, 0.12)),
                   M.Fluid(bulk_modulus=K, viscosity=viscosity, gamma=1.0), velocity=(-0.5, -2.0))
    scene.add_collider(sc.colliders.Plane(point=(0, 0.2), normal=(0, 1), friction=0.3))
    fields = ("x", "v", "C", "F", "Jp")

    def mixed_loss():
        out = scene.rollout(frames=6, frame_dt=1 / 60, record=fields)
        return (out.x[-1] ** 2).mean() + (out.F[-1] ** 2).mean() + out.Jp[-1].mean()

    worst = 0.0
    for param, h in ((E, 1.0), (hardening, 1e-4), (K, 1.0), (viscosity, 1e-5)):
        param.grad = None
        mixed_loss().backward()
        with torch.no_grad():
            param += h
            plus = mixed_loss().item()
            param -= 2 * h
            minus = mixed_loss().item()
            param += h
        worst = max(worst, fd_error(param.grad.item(), (plus - minus) / (2 * h)))
    yield gradient_row("tests/diff/test_gradients.py::test_snow_and_fluid_gradients_and_recorded_fields",
                       "dL/d(snow E, hardening; fluid K, viscosity)", worst)


def directional_error(loss_fn, params, h, seed=0):
    """tests/diff/test_inputs.py's `directional_check`, returning the relative error instead of asserting."""
    import torch
    gen = torch.Generator().manual_seed(seed)
    directions = [torch.randn(p.shape, generator=gen, dtype=p.dtype) for p in params]
    for p in params:
        p.grad = None
    loss_fn().backward()
    analytic = sum((p.grad * d).sum().item() for p, d in zip(params, directions))
    with torch.no_grad():
        for p, d in zip(params, directions):
            p += h * d
        plus = loss_fn().item()
        for p, d in zip(params, directions):
            p -= 2 * h * d
        minus = loss_fn().item()
        for p, d in zip(params, directions):
            p += h * d
    return fd_error(analytic, (plus - minus) / (2 * h))


@check("gradients")
def input_gradients():
    import torch

    from tests.diff.test_inputs import FRAMES, M, TorchNeoHookean, jelly_scene, neural_scene, spread_loss
    sc.init("cpu", "f64", verbose=False)
    test = "tests/diff/test_inputs.py::"
    # test_neural_neo_hookean_reproduces_the_builtin_law
    builtin = jelly_scene(M.NeoHookean(E=2e4, nu=0.3)).run(frames=FRAMES, frame_dt=1 / 60, progress=False)
    neural = jelly_scene(M.Neural(model=TorchNeoHookean(2e4, 0.3), density=1e3)).run(frames=FRAMES, frame_dt=1 / 60,
                                                                                      progress=False)
    err = np.abs(neural.x - builtin.x).max()
    yield Row(test + "test_neural_neo_hookean_reproduces_the_builtin_law",
              "max \\|x_neural − x_builtin\\| (m), same law in torch", err, "< 1e-10", err < 1e-10)
    scene, model = fixture(neural_scene)
    err = directional_error(lambda: spread_loss(scene.rollout(frames=FRAMES, frame_dt=1 / 60)),
                            list(model.parameters()), 1e-6)
    yield gradient_row(test + "test_neural_material_weight_gradients", "dL/d(weights) along a random direction", err)
    # test_collider_velocity_and_friction_gradients
    velocity = torch.tensor([0.6, -0.1], dtype=torch.float64, requires_grad=True)
    friction = torch.tensor(0.4, dtype=torch.float64, requires_grad=True)
    scene = sc.Scene(dim=2, grid=24, dt=5e-4)
    scene.add_body(sc.shapes.Box(center=(0.45, 0.26), size=(0.12, 0.1)), M.NeoHookean(E=2e4))
    scene.add_collider(sc.colliders.Plane(point=(0, 0.2), normal=(0, 1), friction=friction))
    scene.add_collider(sc.colliders.Box(center=(0.327, 0.263), size=(0.08, 0.08), velocity=velocity, mode="sticky"))
    err = directional_error(lambda: spread_loss(scene.rollout(frames=FRAMES, frame_dt=1 / 60)), [velocity, friction],
                            1e-5)
    yield gradient_row(test + "test_collider_velocity_and_friction_gradients",
                       "dL/d(pusher velocity, floor friction) along a random direction", err)
    # test_per_particle_modulus_gradients_sum_to_the_scalar_one
    E = torch.tensor(2e4, dtype=torch.float64, requires_grad=True)
    material = M.NeoHookean(E=E)
    scene = jelly_scene(material)
    spread_loss(scene.rollout(frames=FRAMES, frame_dt=1 / 60)).backward()
    E_p = torch.full((scene.n_particles,), 2e4, dtype=torch.float64, requires_grad=True)
    material.E = E_p
    spread_loss(scene.rollout(frames=FRAMES, frame_dt=1 / 60)).backward()
    err = fd_error(E_p.grad.sum().item(), E.grad.item())
    yield Row(test + "test_per_particle_modulus_gradients_sum_to_the_scalar_one",
              "chain rule: \\|Σ_p ∂L/∂E_p − ∂L/∂E\\| / \\|∂L/∂E\\|", err, "≤ 1e-10", err <= 1e-10)
    # test_initial_position_gradients (the free-flight identity)
    lattice = np.stack(np.meshgrid(np.linspace(0.4, 0.52, 8), np.linspace(0.5, 0.62, 8)), -1).reshape(-1, 2)
    x0 = torch.tensor(lattice, dtype=torch.float64, requires_grad=True)
    scene = sc.Scene(dim=2, grid=24, dt=5e-4)
    scene.add_body(sc.shapes.Points(points=x0, volume_per_particle=(0.12 / 7) ** 2), M.NeoHookean(E=2e4),
                   velocity=(0.3, 0.5))
    scene.add_collider(sc.colliders.Plane(point=(0, 0.2), normal=(0, 1), friction=0.3))
    c = torch.randn(x0.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    (c * scene.rollout(frames=3, frame_dt=1 / 60).x[-1]).sum().backward()
    err = (x0.grad - c).abs().max().item()
    yield Row(test + "test_initial_position_gradients", "free flight: max \\|∂(Σ c·x_T)/∂x₀ − c\\|", err, "≤ 1e-11",
              err <= 1e-11)
    # test_time_step_follows_the_current_parameters
    E = torch.tensor(2e4, dtype=torch.float64, requires_grad=True)
    scene = sc.Scene(dim=2, grid=24)
    scene.add_body(sc.shapes.Box(center=(0.5, 0.5), size=(0.15, 0.15)), M.NeoHookean(E=E))
    with torch.no_grad():
        soft = scene.rollout(frames=1, frame_dt=1 / 60).meta["substeps"][0]
        E *= 16
        stiff = scene.rollout(frames=1, frame_dt=1 / 60).meta["substeps"][0]
    yield Row(test + "test_time_step_follows_the_current_parameters",
              "CFL: substeps at 16 E / substeps at E (wave speed ×4)", f"{stiff} / {soft} = {stiff / soft:.3g}",
              "in [3.5, 4.5]",
              3.5 <= stiff / soft <= 4.5)


@check("gradients")
def decompositions():
    import taichi as ti

    from tests.mpm import test_decompositions as D
    test = "tests/mpm/test_decompositions.py::"
    sc.init("cpu", "f64", verbose=False)
    for dim in (2, 3):
        rng = np.random.default_rng(dim)
        F, Gbar = D.deformation_gradients(dim, rng), rng.standard_normal((D.N, dim, dim))
        R, dF = D.run(dim, ti.f64, F, Gbar, 1e-16)
        rot_err = np.abs(R - D.reference_rotation(F)).max()
        h, numeric = 1e-6, np.zeros_like(dF)
        for i in range(dim):
            for j in range(dim):
                E = np.zeros((dim, dim))
                E[i, j] = h
                plus, _ = D.run(dim, ti.f64, F + E, Gbar, 1e-16)
                minus, _ = D.run(dim, ti.f64, F - E, Gbar, 1e-16)
                numeric[:, i, j] = ((plus - minus) * Gbar).sum((1, 2)) / (2 * h)
        adj_err = np.abs(dF - numeric).max() / np.abs(numeric).max()
        # np.testing.assert_allclose's default rtol = 1e-7 applies on top of the tests' atol: the
        # rotation's tolerance is 1e-12 + 1e-7 |R|, not 1e-12 alone.
        within = np.allclose(R, D.reference_rotation(F), rtol=1e-7, atol=1e-12) and np.allclose(
            dF, numeric, rtol=1e-7, atol=1e-6 * np.abs(numeric).max())
        yield Row(test + f"test_closest_rotation_and_its_adjoint_f64[{dim}]",
                  f"{dim}D: max \\|R − R_numpy SVD\\| · adjoint error / max \\|FD\\|",
                  f"{fmt(rot_err)} · {fmt(adj_err)}", "≤ 1e-12 + 1e-7 \\|R\\| · ≤ 1e-6 (+ 1e-7 rel.)", within)
    rng = np.random.default_rng(7)
    F = np.eye(3) + 0.2 * rng.standard_normal((D.N, 3, 3))
    Gbar = rng.standard_normal((D.N, 3, 3))
    _, dF = D.hencky_and_adjoint(F, Gbar)
    h, numeric = 1e-6, np.zeros_like(dF)
    for i in range(3):
        for j in range(3):
            E = np.zeros((3, 3))
            E[i, j] = h
            plus, _ = D.hencky_and_adjoint(F + E, Gbar)
            minus, _ = D.hencky_and_adjoint(F - E, Gbar)
            numeric[:, i, j] = ((plus - minus) * Gbar).sum((1, 2)) / (2 * h)
    err = np.abs(dF - numeric).max() / np.abs(numeric).max()
    yield Row(test + "test_svd_adjoint_3d_f64", "3D SVD adjoint (Hencky strain): error / max \\|FD\\|", err,
              "≤ 1e-6 (+ 1e-7 rel.)", np.allclose(dF, numeric, rtol=1e-7, atol=1e-6 * np.abs(numeric).max()))
    U = mu_i_module()
    if hasattr(U, "test_2d_svd_reconstructs_nearly_isotropic_F"):
        from simcore.mpm import constitutive

        @ti.kernel
        def reconstruction_error(F: ti.types.ndarray(), out: ti.types.ndarray()):
            for n in range(F.shape[0]):
                A = ti.Matrix([[F[n, 0, 0], F[n, 0, 1]], [F[n, 1, 0], F[n, 1, 1]]], dt=ti.f64)
                U_, s, V = constitutive.svd(A)
                out[n] = (U_ @ ti.Matrix([[s[0], 0.0], [0.0, s[1]]]) @ V.transpose() - A).norm()

        rng = np.random.default_rng(0)  # tests/mpm/test_mu_i.py::test_2d_svd_reconstructs_nearly_isotropic_F
        F = np.eye(2) + 10 ** rng.uniform(-9, -1, (2000, 1, 1)) * rng.normal(size=(2000, 2, 2))
        F[::3, :, 1] *= -1
        error = np.zeros(len(F))
        reconstruction_error(F, error)
        yield Row("tests/mpm/test_mu_i.py::test_2d_svd_reconstructs_nearly_isotropic_F",
                  "2D f64: max ‖U diag(s) Vᵀ − F‖ for F = I + 1e-9…1e-1 noise", error.max(), "< 1e-14",
                  error.max() < 1e-14)
    sc.init("cpu", "f32", verbose=False)
    for dim in (2, 3):
        rng = np.random.default_rng(10 + dim)
        F = D.deformation_gradients(dim, rng)
        R, _ = D.run(dim, ti.f32, F.astype(np.float32), np.zeros_like(F, np.float32), 1e-7)
        err = np.abs(R - D.reference_rotation(F)).max()
        yield Row(test + f"test_closest_rotation_f32[{dim}]", f"{dim}D f32: max \\|R − R_numpy SVD\\|", err,
                  "≤ 2e-6 (+ 1e-7 rel.)", np.allclose(R, D.reference_rotation(F), rtol=1e-7, atol=2e-6))


@check("gradients")
def rigid_gradients():
    import torch

    from tests.rigid import test_rigid_gradients as RG
    test = "tests/rigid/test_rigid_gradients.py::"
    v0 = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64, requires_grad=True)
    # test_free_flight_position_gradient_is_elapsed_time_identity
    world = rigid.World(dt=0.01, gravity=(0, 0, 0), rtol=1e-12)
    world.add(rigid.Box(size=(0.2, 0.3, 0.4), velocity=v0, angular_velocity=(1.0, 2.0, 0.5)))
    out = world.rollout(steps=50)
    jac = torch.stack([torch.autograd.grad(out.position[-1, 0, i], v0, retain_graph=True)[0] for i in range(3)])
    err = (jac - 0.5 * torch.eye(3, dtype=torch.float64)).abs().max().item()
    yield Row(test + "test_free_flight_position_gradient_is_elapsed_time_identity", "max \\|∂x_T/∂v₀ − T·I\\| (s)", err,
              "≤ 1e-12", err <= 1e-12)
    # test_rollout_gradient_matches_central_differences: every parameter group at once
    analytic = fixture(RG.analytic)
    base = RG.base_params()
    worst = 0.0
    for name, indices in RG.CHECKS:
        fd, ad = [], []
        for i in indices:
            eps = 1e-6 * max(abs(float(base[name].view(-1)[i])), 1.0)
            losses = []
            for sign in (1, -1):
                p = {k: v.clone() for k, v in base.items()}
                p[name].view(-1)[i] += sign * eps
                with torch.no_grad():
                    losses.append(float(RG.pushed_box_loss(p)))
            fd.append((losses[0] - losses[1]) / (2 * eps))
            ad.append(float(analytic[name].view(-1)[i]))
        worst = max(worst, np.linalg.norm(np.subtract(ad, fd)) / np.linalg.norm(fd))
    yield Row(test + "test_rollout_gradient_matches_central_differences",
              "pushed box: worst ‖AD − FD‖ / ‖FD‖ over 7 parameter groups", worst, "≤ 1e-5", worst <= 1e-5)
    for name, loss, base, entries in (
            ("test_two_body_contact_gradient_matches_central_differences", RG.two_box_loss,
             dict(size_b=torch.tensor([0.3, 0.3, 0.3], **RG.T64), mass_b=torch.tensor(10.0, **RG.T64),
                  friction_b=torch.tensor(0.8, **RG.T64), push=torch.tensor(150.0, **RG.T64)),
             [("size_b", 0), ("size_b", 1), ("mass_b", 0), ("friction_b", 0), ("push", 0)]),
            ("test_manifold_and_segment_face_gradients_match_central_differences", RG.manifold_loss,
             dict(size=torch.tensor([0.4, 0.4, 0.4], **RG.T64), radius=torch.tensor(0.05, **RG.T64),
                  friction=torch.tensor(0.5, **RG.T64), box_velocity=torch.tensor([0.3, 0.0, 0.1], **RG.T64),
                  capsule_velocity=torch.tensor([0.1, 0.0, 0.2], **RG.T64)),
             [("size", 0), ("size", 1), ("radius", 0), ("friction", 0), ("box_velocity", 0), ("box_velocity", 2),
              ("capsule_velocity", 2)])):
        params = {k: v.clone().requires_grad_(True) for k, v in base.items()}
        loss(params).backward()
        ad, fd = [], []
        for key, i in entries:  # assert_matches_central_differences, measuring instead of asserting
            eps = 1e-6 * max(abs(float(base[key].view(-1)[i])), 1.0)
            losses = []
            for sign in (1, -1):
                p = {k: v.clone() for k, v in base.items()}
                p[key].view(-1)[i] += sign * eps
                with torch.no_grad():
                    losses.append(float(loss(p)))
            fd.append((losses[0] - losses[1]) / (2 * eps))
            ad.append(float(params[key].grad.view(-1)[i]))
        err = np.abs(np.subtract(ad, fd)).max() / np.abs(fd).max()
        yield Row(test + name, "max \\|AD − FD\\| / max \\|FD\\|", err, "≤ 1e-5", err <= 1e-5)

    # test_restitution_gradient_matches_central_differences
    def height(e):
        world = rigid.World(dt=0.005, gravity=(0, -9.81, 0), rtol=1e-12)
        world.add(rigid.Plane(friction=0.5, restitution=e))
        world.add(rigid.Sphere(radius=0.1, density=1e3, position=(0, 0.35, 0)))
        return world.rollout(steps=80).position[-1, 0, 1]

    e = torch.tensor(0.6, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(height(e), e)
    with torch.no_grad():
        fd = (float(height(torch.tensor(0.6 + 1e-6, **RG.T64))) - float(height(torch.tensor(0.6 - 1e-6, **RG.T64)))) / 2e-6
    err = abs(float(grad) - fd) / abs(fd)
    yield Row(test + "test_restitution_gradient_matches_central_differences", "d(height after bounce)/de vs FD",
              err, "≤ 1e-5", err <= 1e-5)


@check("gradients")
def rigid_sysid():
    from tests.rigid.test_rigid_examples import load
    mu, first, last = load("rigid_sysid").fit(true_mu=0.35, guess=0.6, iters=8, steps=25, verbose=False)
    rel = mu / 0.35 - 1
    yield Row("tests/rigid/test_rigid_examples.py::test_sysid_example_recovers_friction",
              "friction recovered from 0.6 (true 0.35) · loss reduction", f"{fmt(rel)} · {fmt(first / last)}×",
              "within ±2 % · ≥ 100×", abs(rel) < 0.02 and last <= first / 100)


# -- Rigid bodies ------------------------------------------------------------------------------------------
@check("rigid")
def rigid_laws():
    from tests.rigid import test_rigid_physics as RP
    test = "tests/rigid/test_rigid_physics.py::"
    settled = fixture(RP.settled)
    for dt, traj in settled.items():
        rest = max(np.abs(traj.velocity[-1]).max(), np.abs(traj.angular_velocity[-1]).max())
        height = abs(traj.position[-1, 0, 1] - 0.25)
        yield Row(test + f"test_tossed_box_settles_at_rest_on_a_face[{dt}]",
                  f"dt {dt}: largest final speed (m/s, rad/s) · \\|centre height − 0.25 m\\|",
                  f"{fmt(rest)} · {fmt(height)}", "< 1e-8 · < 1e-3", rest < 1e-8 and height < 1e-3)
    s = fixture(RP.sliding)
    traj, u = s["traj"], s["direction"]
    displacement = traj.position[-1, 0] - traj.position[0, 0]
    along = displacement @ u
    lateral = displacement - along * u
    lateral[1] = 0.0
    err = abs(along - s["v0"] ** 2 / (2 * s["mu"] * G_RIGID))
    yield Row(test + "test_sliding_box_stops_at_coulomb_distance",
              "\\|d − v0²/(2μg)\\| (m) · sideways drift (m)", f"{fmt(err)} · {fmt(np.linalg.norm(lateral))}",
              f"< v0·dt = {s['v0'] * s['dt']:.2f} · < 1e-6", err < s["v0"] * s["dt"] and np.linalg.norm(lateral) < 1e-6)
    speed = np.linalg.norm(traj.velocity[:, 0], axis=-1)
    decel = -(speed[30] - speed[10]) / (20 * s["dt"])
    rel = decel / (s["mu"] * G_RIGID) - 1
    yield Row(test + "test_sliding_box_decelerates_at_mu_g", "deceleration / μg − 1", rel, "within ±1e-3",
              abs(rel) <= 1e-3)
    r = fixture(RP.rolling)
    traj = r["traj"]
    v = traj.velocity[:, 0, 0]
    slip = v + traj.angular_velocity[:, 0, 2] * r["radius"]
    k = int(np.argmax(np.abs(np.diff(slip)) < 1e-3 * 3.5 * r["mu"] * G_RIGID * r["dt"]))
    t_rel = traj.time[k] / (2 * r["v0"] / (7 * r["mu"] * G_RIGID)) - 1
    v_rel = v[-1] / (5 / 7 * r["v0"]) - 1
    yield Row(test + "test_sliding_sphere_starts_rolling_at_five_sevenths",
              "rolling onset time / 2v0/(7μg) − 1 · final v / (5/7 v0) − 1", f"{pct(t_rel)} · {pct(v_rel)}",
              "within ±2 % · ±2 %", abs(t_rel) <= 0.02 and abs(v_rel) <= 0.02)
    k = int(0.25 / r["dt"])
    omega_r = -traj.angular_velocity[k:, 0, 2] * r["radius"]
    rel = (np.abs(v[k:] - omega_r) / np.abs(v[k:])).max()
    yield Row(test + "test_rolling_sphere_satisfies_v_equals_omega_r", "max \\|v − ωr\\| / v while rolling", rel,
              "≤ 2e-4 (and ≤ (ω dt)²/8 chord error)", rel <= 2e-4)
    world, body, traj = fixture(RP.free_flight)
    import torch

    from simcore.rigid import integrator
    from simcore.rigid import quaternion as quat
    J, m = body.inertia.detach(), float(body.mass)
    q = torch.tensor(traj.orientation[:, 0])
    om_body = (quat.to_matrix(q).transpose(-1, -2) @ torch.tensor(traj.angular_velocity[:, 0])[..., None])[..., 0]
    energy = 0.5 * m * (traj.velocity[:, 0] ** 2).sum(-1) + 0.5 * torch.einsum("ti,ij,tj->t", om_body, J,
                                                                               om_body).numpy()
    L = integrator.angular_momentum(q, om_body, J, world.dt).numpy()
    p = m * traj.velocity[:, 0]
    drifts = (np.abs(energy - energy[0]).max() / energy[0], np.abs(L - L[0]).max() / np.linalg.norm(L[0]),
              np.abs(p - p[0]).max() / np.linalg.norm(p[0]))
    yield Row(test + "test_free_body_conserves_energy_and_momentum",
              "relative drift over 5 s: energy · angular momentum · momentum", " · ".join(fmt(d) for d in drifts),
              "< 1e-8 each", max(drifts) < 1e-8)
    stack = fixture(RP.stack)
    y = stack.position[:, :, 1]
    gaps = np.stack([y[:, 0] - 0.25, y[:, 1] - y[:, 0] - 0.5, y[:, 2] - y[:, 1] - 0.5], -1)
    yield Row(test + "test_stack_of_three_boxes_stays_standing", "largest \\|gap\\| over 1,000 steps (m)",
              np.abs(gaps).max(), "< 1e-4", np.abs(gaps).max() < 1e-4)
    for theta_deg, mu in ((30.0, 0.3), (20.0, 0.5)):
        # test_box_on_incline_follows_coulomb
        theta = np.radians(theta_deg)
        normal = np.array([np.sin(theta), np.cos(theta), 0.0])
        downhill = np.array([np.cos(theta), -np.sin(theta), 0.0])
        world = rigid.World(dt=0.01, gravity=(0, -G_RIGID, 0))
        world.add(rigid.Plane(point=(0, 0, 0), normal=normal, friction=mu))
        world.add(rigid.Box(size=(0.5, 0.5, 0.5), density=1e3, position=0.25 * normal,
                            orientation=(np.cos(-theta / 2), 0, 0, np.sin(-theta / 2))))
        traj = world.run(steps=60)
        along = traj.velocity[:, 0] @ downhill
        name = test + f"test_box_on_incline_follows_coulomb[{theta_deg}-{mu}]"
        if np.tan(theta) > mu:
            rel = (along[50] - along[20]) / (30 * world.dt) / (G_RIGID * (np.sin(theta) - mu * np.cos(theta))) - 1
            yield Row(name, f"θ = {theta_deg:.0f}°, μ = {mu}: acceleration / g(sin θ − μ cos θ) − 1", rel, "within ±1e-3",
                      abs(rel) <= 1e-3)
        else:
            moved = np.abs(traj.position[-1, 0] - traj.position[0, 0]).max()
            yield Row(name, f"θ = {theta_deg:.0f}°, μ = {mu} (tan θ < μ): displacement (m)", moved, "< 1e-5",
                      moved < 1e-5)


@check("rigid")
def rigid_contacts():
    from tests.rigid import test_rigid_contacts as RC
    test = "tests/rigid/test_rigid_contacts.py::"
    scenes = fixture(RC.resting_scenes)
    traj = scenes["sphere_on_box"]
    err = max(abs(traj.position[-1, 1, 1] - 0.5), abs(traj.position[-1, 0, 1] - 0.2))
    yield Row(test + "test_sphere_rests_on_dynamic_box", "resting heights' error (m)", err, "≤ 1e-4", err <= 1e-4)
    traj = scenes["box_on_static_box"]
    err = abs(traj.position[-1, 0, 0] - 0.2 - 0.5**2 / (2 * 0.5 * 9.81))
    yield Row(test + "test_box_slides_to_rest_on_static_box", "\\|slide − v0²/(2μg)\\| (m)", err, "< v0·dt/2 = 0.005",
              err < 0.005)
    traj = scenes["capsules"]
    err = max(abs(traj.position[-1, 0, 1] - 0.1), abs(traj.position[-1, 1, 1] - 0.4))
    yield Row(test + "test_capsules_rest_on_plane", "resting heights' error, lying · standing (m)", err, "≤ 1e-4",
              err <= 1e-4)
    # test_inelastic_sphere_collision_conserves_momentum
    world = rigid.World(dt=0.01, gravity=(0, 0, 0), rtol=1e-10, kappa=1e-8)
    a = world.add(rigid.Sphere(radius=0.1, density=1e3, position=(-0.3, 0, 0), velocity=(2.0, 0, 0)))
    b = world.add(rigid.Sphere(radius=0.2, density=1e3, position=(0.3, 0, 0), velocity=(-1.0, 0, 0)))
    traj = world.run(steps=40)
    m = np.array([float(a.mass), float(b.mass)])
    p = (m[None, :, None] * traj.velocity).sum(1)
    drift = np.abs(p - p[0]).max() / np.abs(p[0]).max()
    v_err = np.abs(traj.velocity[-1, :, 0] - (m[0] * 2.0 - m[1] * 1.0) / m.sum()).max()
    yield Row(test + "test_inelastic_sphere_collision_conserves_momentum",
              "momentum drift (relative) · \\|v − common velocity\\| (m/s)", f"{fmt(drift)} · {fmt(v_err)}",
              "< 1e-8 · ≤ 3e-3", drift < 1e-8 and v_err <= 3e-3)
    for e in (0.5, 0.8):
        # test_ball_bounces_to_restitution_squared_height
        world = rigid.World(dt=0.002, gravity=(0, -9.81, 0))
        world.add(rigid.Plane(friction=0.5, restitution=e))
        world.add(rigid.Sphere(radius=0.1, density=1e3, position=(0, 0.6, 0)))
        traj = world.run(steps=int(round((1 + e) * np.sqrt(2 * 0.5 / 9.81) / 0.002)) + 20)
        height = traj.position[:, 0, 1] - 0.1
        apex = height[int(np.argmax(traj.velocity[:, 0, 1] > 0)):].max()
        rel = apex / (e**2 * 0.5) - 1
        yield Row(test + f"test_ball_bounces_to_restitution_squared_height[{e}]", f"e = {e}: apex / (e² h) − 1",
                  pct(rel), "within ±2 %", abs(rel) <= 0.02)
    # test_crossed_capsules_collide_centrally
    s = np.sqrt(0.5)
    world = rigid.World(dt=0.01, gravity=(0, 0, 0), kappa=1e-8)
    a = world.add(rigid.Capsule(radius=0.1, length=0.6, density=1e3, position=(-0.3, 0, 0), velocity=(1.0, 0, 0)))
    b = world.add(rigid.Capsule(radius=0.1, length=0.6, density=1e3, position=(0.3, 0, 0),
                                orientation=(s, s, 0, 0), velocity=(-1.0, 0, 0)))
    traj = world.run(steps=40)
    m = np.array([float(a.mass), float(b.mass)])
    drift = np.abs((m[None, :, None] * traj.velocity).sum(1) - (m[:, None] * traj.velocity[0]).sum(0)).max()
    spin = np.abs(traj.angular_velocity[-1]).max()
    yield Row(test + "test_crossed_capsules_collide_centrally", "momentum drift (kg m/s) · induced spin (rad/s)",
              f"{fmt(drift)} · {fmt(spin)}", "< 1e-8 · < 1e-6", drift < 1e-8 and spin < 1e-6)
    # test_frictionless_box_keeps_sliding
    world = rigid.World(dt=0.01, gravity=(0, -9.81, 0))
    world.add(rigid.Plane(friction=0.0))
    world.add(rigid.Box(size=(0.5, 0.5, 0.5), position=(0, 0.25, 0), velocity=(2.0, 0, 1.0)))
    traj = world.run(steps=50)
    err = np.abs(traj.velocity[-1, 0, [0, 2]] - [2.0, 1.0]).max()
    yield Row(test + "test_frictionless_box_keeps_sliding", "tangential velocity change (m/s)", err, "≤ 1e-12",
              err <= 1e-12)
    # test_box_rests_level_on_static_box
    world = rigid.World(dt=0.01, gravity=(0, -9.81, 0))
    world.add(rigid.Box(size=(1.0, 0.2, 1.0), static=True, position=(0, -0.1, 0)))
    world.add(rigid.Box(size=(0.4, 0.3, 0.4), density=1e3, position=(0.1, 0.15, 0.05)))
    traj = world.run(steps=500)
    tilt = RC._tilt(traj.orientation[:, 0]).max()
    yield Row(test + "test_box_rests_level_on_static_box", "largest tilt over 500 steps (rad), 4-point manifold", tilt,
              "< 1e-6", tilt < 1e-6)
    # test_box_rests_edge_on_crossed_edge
    c, sn = np.cos(np.pi / 8), np.sin(np.pi / 8)
    half_diagonal = 0.2 * np.sqrt(2)
    world = rigid.World(dt=0.01)
    world.add(rigid.Box(size=(0.4, 0.4, 0.4), static=True, orientation=(c, 0, 0, sn)))
    world.add(rigid.Box(size=(0.4, 0.4, 0.4), position=(0, 2 * half_diagonal + 0.05, 0), orientation=(c, sn, 0, 0)))
    traj = world.run(steps=100)
    err = abs(traj.position[-1, 0, 1] - 2 * half_diagonal)
    yield Row(test + "test_box_rests_edge_on_crossed_edge", "resting height − 2 · 0.2√2 m (m)", err, "≤ 1e-4",
              err <= 1e-4)


# -- Backends ----------------------------------------------------------------------------------------------
@check("backends")
def vulkan_flip():
    from tests.conftest import _vulkan_available
    from tests.mpm.test_transfer import thrown_jelly_on_each_arch
    test = "tests/mpm/test_transfer.py::test_vulkan_blends_flip_as_the_cpu_does"
    if not _vulkan_available():
        yield Row(test, "max \\|x_vulkan − x_cpu\\| (m)", "not measured: no Vulkan device here", "< 1e-4", None)
        return
    runs = thrown_jelly_on_each_arch()
    err = np.abs(runs["vulkan"].x - runs["cpu"].x).max()
    yield Row(test, "pure FLIP, jelly thrown at a wall: max \\|x_vulkan − x_cpu\\| (m, f32)", err, "< 1e-4", err < 1e-4)


@check("backends", slow=[
    _slow("tests/mpm/test_materials_run.py::test_vulkan_matches_cpu", "2D and 3D, every material: max \\|x_vulkan − x_cpu\\| (m, f32)",
          "< 1e-4", "1.5–3 min with the gradient rows below: lavapipe compiles"),
    _slow("tests/diff/test_backend_gradients.py::test_gradients_match_cpu_f64", "worst relative gradient difference, "
          "Vulkan f32 vs CPU f64 (E, ν, v0)", "≤ 1e-3", "see above")])
def vulkan_agreement():
    from tests.conftest import _vulkan_available
    if not _vulkan_available():
        yield Row("tests/mpm/test_materials_run.py::test_vulkan_matches_cpu", "max \\|x_vulkan − x_cpu\\| (m)",
                  "not measured: no Vulkan device here", "< 1e-4", None)
        return
    from tests.diff.test_backend_gradients import gradients
    from tests.mpm.test_materials_run import MATERIALS, mixed
    runs = {}
    try:
        for arch in ("cpu", "vulkan"):
            sc.init(arch, "f32", verbose=False)
            runs[arch] = {dim: mixed(dim) for dim in (2, 3)}
    finally:
        sc.init("cpu", "f32", verbose=False)
    for dim in (2, 3):
        err = np.abs(runs["vulkan"][dim].x - runs["cpu"][dim].x).max()
        yield Row("tests/mpm/test_materials_run.py::test_vulkan_matches_cpu",
                  f"{dim}D, {len(MATERIALS)} materials: max \\|x_vulkan − x_cpu\\| (m, f32)", err, "< 1e-4", err < 1e-4)
    for model in ("NeoHookean", "FixedCorotated"):
        try:
            reference, on_device = gradients("cpu", "f64", model), gradients("vulkan", "f32", model)
        finally:
            sc.init("cpu", "f32", verbose=False)
        err = max(abs(got / ref - 1) for ref, got in zip(reference, on_device))
        yield Row(f"tests/diff/test_backend_gradients.py::test_gradients_match_cpu_f64[{model}-vulkan]",
                  f"{model}: worst relative gradient difference, Vulkan f32 vs CPU f64 (E, ν, v0)", err, "≤ 1e-3",
                  err <= 1e-3)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--area", nargs="+", choices=AREAS, default=list(AREAS))
    parser.add_argument("--slow", action="store_true", help="also run the checks that cost more than about 30 s")
    parser.add_argument("--list", action="store_true", help="list the checks and exit")
    parser.add_argument("--only", nargs="+", default=None, metavar="CHECK", help="run only these checks (--list names them)")
    args = parser.parse_args()
    if args.list:
        for area, fn, slow in CHECKS:
            print(f"{area:10s} {fn.__name__}{' (slow)' if slow else ''}")
        return
    print("| test | quantity | measured | tolerance | within |")
    print("|---|---|---|---|---|")
    for area, fn, slow in CHECKS:
        if area not in args.area or (args.only and fn.__name__ not in args.only):
            continue
        if slow and not args.slow:
            for row in slow:
                print(row.markdown())
            continue
        start = time.perf_counter()
        for row in fn():
            print(row.markdown(), flush=True)
        print(f"# {area}/{fn.__name__}: {time.perf_counter() - start:.1f} s", file=sys.stderr, flush=True)
    for area, test, quantity, tolerance, reason in NOT_MEASURED:
        if area in args.area and not args.only:
            print(Row(test, quantity, f"not re-measured ({reason})", tolerance, None).markdown())


if __name__ == "__main__":
    main()
