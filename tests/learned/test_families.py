"""Scene families (simcore.learned.data.families): the contract dataset generation relies on.

Determinism (same generator seed → bit-equal particles and parameters), samples inside the domain and
apart from each other, JSON-able parameters, one compiled solver per family and options, option errors
that say what to do, a user family in a few lines, and the CFL rule behind the automatic substep:
with no elastic energy at the start, kinetic + gravitational energy cannot grow (a substep beyond the
stability bound pumps energy in).
"""

import json

import numpy as np
import pytest
from simcore.learned.data import families

import simcore as sc
from simcore.mpm import cache
from simcore.mpm.config import BOUND

BUILT_IN = ("fluid_drop", "sand_collapse", "elastic_toss", "plasticine_drop", "multi_material")
SMALL = {"dim": 2, "grid": 32}  # a few hundred particles a sample


def rng(i, seed=0):
    return np.random.default_rng([seed, i])


def particles(sample):
    """What makes a scene: initial x, v and the packed per-particle parameters the solver receives."""
    model, state = sample.scene.model, sample.scene.initial_state()
    return {"x": state["x"], "v": state["v"], "C": state["C"], "mass": model.mass, "mu": model.mu,
            "lam": model.lam, "plastic": model.plastic, "kind": model.kind, "body_id": model.body_id}


@pytest.fixture(scope="module")
def backend():
    return sc.init("cpu", "f32")


@pytest.mark.parametrize("name", BUILT_IN)
def test_family_is_deterministic_json_and_inside_the_domain(name):
    """Same seed → bit-equal scene and params; another seed → another scene; params survive JSON;
    every particle inside the domain, clear of the wall layer; the scene's dt is frame_dt / k."""
    family = families.get(name)
    a, b, c = (family.sample(rng(i), **SMALL) for i in (3, 3, 4))
    pa, pb, pc = particles(a), particles(b), particles(c)
    assert all(np.array_equal(pa[k], pb[k]) for k in pa)
    assert a.params == b.params and a.substeps_per_frame == b.substeps_per_frame
    assert a.params != c.params
    assert pa["x"].shape != pc["x"].shape or not np.array_equal(pa["x"], pc["x"])
    assert json.loads(json.dumps(a.params)) == a.params
    lo, hi = BOUND / SMALL["grid"], 1 - BOUND / SMALL["grid"]
    for sample in (a, c):
        x = sample.scene.initial_state()["x"]
        assert x.shape[1] == 2 and np.all((x >= lo) & (x <= hi)), f"{name}: a particle in the wall layer"
        assert isinstance(sample.substeps_per_frame, int) and sample.substeps_per_frame >= 1
        assert sample.scene.dt == pytest.approx(sample.frame_dt / sample.substeps_per_frame, rel=1e-12)
        assert len(sample.params["bodies"]) == len(sample.scene.bodies)


def test_parameters_stay_in_their_ranges_and_moduli_are_log_uniform():
    """Drawn values lie in the option ranges; a log-uniform draw over (1e4, 1e6) has its median at the
    geometric mean 1e5 (a uniform draw's median would be 5.05e5)."""
    family = families.get("elastic_toss")
    options = family.resolve(**SMALL)
    for i in range(20):
        body = family.sample(rng(i), **SMALL).params["bodies"][0]
        for key in ("E", "nu", "density"):
            lo, hi = options[key]
            assert lo <= body["material_params"][key] <= hi
        speed = float(np.linalg.norm(body["velocity"]))
        assert options["speed"][0] - 1e-12 <= speed <= options["speed"][1] + 1e-12
        assert body["velocity"][1] > 0  # a toss goes up
    draws = [families.log_uniform(rng(i), (1e4, 1e6)) for i in range(2000)]
    assert abs(np.log10(np.median(draws)) - 5.0) < 0.05


def test_multi_material_bodies_do_not_overlap():
    """Bodies are placed with disjoint bounding boxes: no particle of one lies in another's box."""
    family = families.get("multi_material")
    for i in range(5):
        sample = family.sample(rng(i), **SMALL)
        model, x = sample.scene.model, sample.scene.initial_state()["x"]
        n_bodies = len(sample.scene.bodies)
        assert family.options["bodies"][0] <= n_bodies <= family.options["bodies"][1]
        for p in range(n_bodies):
            mine = x[model.body_id == p]
            others = x[model.body_id != p]
            inside = np.all((others >= mine.min(0)) & (others <= mine.max(0)), axis=1)
            assert not inside.any(), f"sample {i}: body {p} overlaps another"


def test_3d_samples_with_cylinders_and_meshes():
    """3D: the shipped meshes and cylinders fill with particles inside the domain; deterministic."""
    family = families.get("multi_material")
    options = {"dim": 3, "grid": 24, "shapes": ("cylinder", "mesh"), "bodies": (2, 2), "size": (0.15, 0.2)}
    samples = [family.sample(rng(i), **options) for i in range(3)]
    drawn = {body["shape"]["type"] for sample in samples for body in sample.params["bodies"]}
    assert drawn == {"cylinder", "mesh"}
    for sample in samples:
        x = sample.scene.initial_state()["x"]
        assert x.shape[1] == 3 and len(x) > 20
        assert np.all((x >= BOUND / 24) & (x <= 1 - BOUND / 24))
        assert json.loads(json.dumps(sample.params)) == sample.params
    again = family.sample(rng(1), **options)
    assert np.array_equal(again.scene.initial_state()["x"], samples[1].scene.initial_state()["x"])
    assert again.params == samples[1].params


def test_ten_samples_share_one_compiled_solver(backend):
    """Every sample of one family and options has one configuration: whatever material mix a sample
    draws, running it adds at most one solver build (the first), then none."""
    family = families.get("multi_material")
    before = cache.info().built
    mixes = set()
    for i in range(10):
        sample = family.sample(rng(i), **SMALL)
        mixes.add(tuple(sorted({b["material"] for b in sample.params["bodies"]})))
        trajectory = sample.scene.run(frames=1, frame_dt=sample.frame_dt, progress=False)
        assert np.all(np.isfinite(trajectory.x))
    assert len(mixes) > 3  # the samples did draw different mixes
    assert cache.info().built - before <= 1


def mechanical_energy(model, trajectory, g=9.8):
    """(frames + 1,) J per unit depth: kinetic + gravitational energy of the particles."""
    return 0.5 * np.einsum("p,fpd->f", model.mass, trajectory.v ** 2) + g * trajectory.x[:, :, 1] @ model.mass


@pytest.mark.parametrize("name", BUILT_IN)
def test_each_family_runs_at_its_automatic_substep(backend, name):
    """15 frames of a default sample stay finite, and kinetic + gravitational energy never exceeds its
    initial value (there is no elastic energy at the start; walls, plasticity and the transfers only
    take energy out)."""
    sample = families.get(name).sample(rng(1, seed=7), **SMALL)
    model = sample.scene.model
    trajectory = sample.scene.run(frames=15, frame_dt=sample.frame_dt, record=("x", "v"), progress=False)
    energy = mechanical_energy(model, trajectory)
    assert np.all(np.isfinite(trajectory.x))
    assert energy.max() <= energy[0] * 1.01, f"{name}: energy grew {energy.max() / energy[0]:.3f}x"


def test_automatic_substep_keeps_the_stiffest_sample_stable(backend):
    """The stiffest materials and fastest throw the ranges allow, at the automatic substep: with zero
    elastic energy at the start, kinetic + gravitational energy never exceeds its initial value (1 %
    for the transfer's round-off); an unstable substep would pump energy in. Same configuration as
    the test above (no new compilation)."""
    stiff = dict(SMALL, E=(2e5, 2e5), nu=(0.35, 0.35), density=(800.0, 800.0), sand_E=(3.5e5, 3.5e5),
                 sand_density=(1500.0, 1500.0), bulk_modulus=(1e5, 1e5), speed=(2.0, 2.0))
    sample = families.get("multi_material").sample(rng(2), **stiff)
    model = sample.scene.model
    trajectory = sample.scene.run(frames=30, frame_dt=sample.frame_dt, record=("x", "v"), progress=False)
    energy = mechanical_energy(model, trajectory)
    assert np.all(np.isfinite(trajectory.x))
    assert energy.max() <= energy[0] * 1.01, f"energy grew {energy.max() / energy[0]:.3f}x"


def test_too_few_substeps_and_bad_options_raise_clear_errors():
    family = families.get("elastic_toss")
    fewest = family.resolve(**SMALL)["substeps_per_frame"]
    with pytest.raises(ValueError, match=f"substeps_per_frame >= {fewest}"):
        family.resolve(**SMALL, substeps_per_frame=fewest - 1)
    assert family.resolve(**SMALL, substeps_per_frame=fewest + 5)["substeps_per_frame"] == fewest + 5
    assert family.resolve(shapes="box,sphere")["shapes"] == ("box", "sphere")  # as typed after --set
    # A finer grid needs proportionally more substeps (dt ∝ dx).
    assert family.resolve(dim=2, grid=64)["substeps_per_frame"] >= 2 * fewest - 1
    bad = [({"stifness": (1, 2)}, r"no option 'stifness'.*E, nu"),
           ({"E": (2e5, 2e4)}, "lo > hi"),
           ({"E": 3e4}, r"range \(lo, hi\)"),
           ({"E": (-1.0, 2e5)}, "Young's modulus E must be > 0"),
           ({"nu": (0.2, 0.5)}, "nu must satisfy"),
           ({"shapes": ("cone",)}, "unknown shapes"),
           ({"shapes": ("mesh",)}, "3D-only"),
           ({"dim": 4}, "dim must be 2 or 3"),
           ({"grid": 4}, "grid must be"),
           ({"particles_per_cell": 5}, "k\\^dim"),
           ({"frame_dt": 0.0}, "frame_dt must be"),
           ({"size": (0.1, 0.95)}, "does not fit"),
           ({"substeps_per_frame": 2.5}, "whole number")]
    for options, message in bad:
        with pytest.raises(ValueError, match=message):
            family.sample(rng(0), **options)
    with pytest.raises(ValueError, match="registered families: .*elastic_toss"):
        families.get("elastic_tos")
    with pytest.raises(ValueError, match="numpy Generator"):
        family.sample(0)
    with pytest.raises(ValueError, match="unknown materials"):
        families.get("multi_material").resolve(materials=("elastic", "jelly"))


def test_describe_lists_every_family_with_its_options():
    text = families.describe()
    for name in BUILT_IN:
        assert f"\n{name}: " in text
    assert "E=(20000, 200000)" in text and "log-uniform" in text
    assert families.describe(["sand_collapse"]).count(":") < text.count(":")


@pytest.fixture
def registry():
    """Registers within a test are removed after it."""
    before = dict(families.FAMILIES)
    yield families
    families.FAMILIES.clear()
    families.FAMILIES.update(before)


def test_a_user_family_in_a_few_lines(registry):
    @registry.register("jelly_rain", description="one neo-Hookean disk falling",
                       options={"E": ((1e4, 1e5), "Young's modulus, Pa, log-uniform")})
    def jelly_rain(rng, **o):
        scene = registry.new_scene(o, materials=(sc.materials.NeoHookean,))
        E = registry.log_uniform(rng, o["E"])
        shape = registry.place(rng, scene, lambda c: sc.shapes.Sphere(center=c, radius=0.1))
        scene.add_body(shape, sc.materials.NeoHookean(E=E))
        return registry.Sample(scene, {"E": E}, o["frame_dt"], o["substeps_per_frame"])

    family = registry.get("jelly_rain")
    a, b = family.sample(rng(5), **SMALL), family.sample(rng(5), **SMALL)
    assert np.array_equal(a.scene.initial_state()["x"], b.scene.initial_state()["x"]) and a.params == b.params
    assert 1e4 <= a.params["E"] <= 1e5
    assert "jelly_rain: one neo-Hookean disk falling" in registry.describe()
    # No signal_speed declared: the substep is chosen from the sample, and enough of them are checked.
    assert a.substeps_per_frame >= 1 and a.scene.dt == pytest.approx(a.frame_dt / a.substeps_per_frame)
    with pytest.raises(ValueError, match="substeps_per_frame >= "):
        family.sample(rng(5), **SMALL, substeps_per_frame=1, E=(1e9, 1e9))
    with pytest.raises(ValueError, match="already registered"):
        registry.register("jelly_rain", description="again")(jelly_rain)


def test_a_user_family_that_breaks_the_contract_is_told_how(registry):
    @registry.register("unlisted", description="forgets compile_materials")
    def unlisted(rng, **o):
        scene = sc.Scene(dim=o["dim"], grid=o["grid"])
        scene.add_body(sc.shapes.Box(center=(0.5, 0.5), size=(0.1, 0.1)), sc.materials.Sand())
        return registry.Sample(scene, {"E": np.float32(1.0)}, o["frame_dt"])

    with pytest.raises(ValueError, match="JSON-able"):
        registry.get("unlisted").sample(rng(0), **SMALL)

    @registry.register("unlisted", description="forgets compile_materials", replace=True)
    def unlisted_json(rng, **o):
        sample = unlisted(rng, **o)
        return registry.Sample(sample.scene, {"E": 1.0}, sample.frame_dt)

    with pytest.raises(ValueError, match="compile_materials"):
        registry.get("unlisted").sample(rng(0), **SMALL)

    @registry.register("empty", description="adds no body")
    def empty(rng, **o):
        return registry.Sample(registry.new_scene(o, materials=()), {}, o["frame_dt"])

    with pytest.raises(ValueError, match="add at least one body"):
        registry.get("empty").sample(rng(0), **SMALL)
    with pytest.raises(ValueError, match="JSON-able"):
        registry.register("bad_default", description="x", options={"when": (object(), "not JSON")})
