"""Scene families: seeded random scenes, the raw material of a dataset.

A family is a function of a seeded generator and a few options (ranges the scene parameters are drawn
from) that returns a `Sample`: a `simcore.Scene` with a fixed substep dt = frame_dt / k, the sampled
parameters (JSON-able) and the frame length. Every sample of one family and one set of options has the
same compiled configuration (grid, walls, and `Scene(compile_materials=...)` listing every material
type the family may draw), so a dataset worker compiles once, whatever mix a sample draws.

    from simcore.learned.data import families
    fam = families.get("elastic_toss")
    sample = fam.sample(np.random.default_rng([seed, i]), dim=2, grid=32)
    traj = sample.scene.run(frames=50, frame_dt=sample.frame_dt)

Built in (each 2D or 3D through the option `dim`): fluid_drop, sand_collapse, elastic_toss,
plasticine_drop, multi_material; `describe()` lists them with their options (`simcore dataset families`).
Ranges (lo, hi) are drawn uniformly, or log-uniformly where the option's meaning says so (moduli that span
decades). Shapes: Box and Sphere (a disk in 2D); in 3D also Cylinder and the meshes shipped in
simcore.assets, randomly rotated.

A family of your own is a decorated function; the common options (dim, grid, particles_per_cell,
frame_dt, substeps_per_frame) come with it, and `new_scene` and `place` do the bookkeeping:

    import simcore as sc
    from simcore.learned.data import families

    @families.register("jelly_rain", description="one neo-Hookean disk falling",
                       options={"E": ((1e4, 1e5), "Young's modulus, Pa, log-uniform")})
    def jelly_rain(rng, **o):
        scene = families.new_scene(o, materials=(sc.materials.NeoHookean,))
        E = families.log_uniform(rng, o["E"])
        shape = families.place(rng, scene, lambda c: sc.shapes.Sphere(center=c, radius=0.1))
        scene.add_body(shape, sc.materials.NeoHookean(E=E))
        return families.Sample(scene, {"E": E}, o["frame_dt"], o["substeps_per_frame"])

Stability: the scene's dt must stay under the CFL bound dx / (wave speed + particle speed) all run long.
`Family.sample` checks every sample against STABILITY_MARGIN × that bound, with the particle speed taken
as the initial speed plus the free-fall speed across the domain, sqrt(2 |g| · 1 m); a ValueError says
which substep count would do. substeps_per_frame=None (the default) chooses the fewest substeps that
pass: for a built-in family from the stiffest material and fastest throw its option ranges allow (so
every sample of the options has the same k), for a family without `signal_speed` from each sample.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import json
import math
from typing import Any, Callable

import numpy as np

import simcore as sc
from simcore.mpm.config import BOUND

# The volume ratio J a family's water is assumed to reach on impact when its substep is chosen: a Tait
# fluid's wave speed is c0 J^((1 - γ) / 2), 1.95 c0 at J = 0.8 for γ = 7. From the rest wave speed alone,
# 1 in 8 fluid_drop samples (grid 64, ~3,000 particles) compressed to J ≈ 0.7 on impact and broke the
# CFL bound at frame 9.
FLUID_MOST_COMPRESSED = 0.8

# Fraction of the CFL bound a family's substep may use. The bound is necessary, not sufficient:
# compressed Tait fluids stiffen above their rest wave speed and went unstable at 0.9 of it, every
# material was stable at 0.5 (simcore.Scene, `cfl`).
STABILITY_MARGIN = 0.5
DOMAIN_HEIGHT = 1.0  # m: the unit domain; a body can fall at most this far
GRAVITY = 9.8  # m/s²: |g| of simcore.Scene's default gravity, which the built-in families keep

COMMON = {  # name: (default, meaning); every family has these
    "dim": (2, "2 or 3"),
    "grid": (64, "grid cells per axis of the unit domain (dx = 1 / grid m)"),
    "particles_per_cell": (None, "particles per grid cell, k^dim on the lattice (None: 2^dim)"),
    "frame_dt": (1 / 60, "time between stored frames, s"),
    "substeps_per_frame": (None, "substeps k per frame, dt = frame_dt / k (None: the fewest that are stable "
                                 "for the stiffest material the ranges allow)"),
}

SHAPES = ("box", "sphere", "cylinder", "mesh")  # cylinder and mesh are 3D-only
MESHES = ("bell.obj", "capsule.obj", "torus.obj")  # simcore.assets


# ------------------------------------------------------------------------------------------------
# The registry
# ------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class Sample:
    """One random scene of a family.

    scene: the simcore.Scene, its dt fixed to frame_dt / substeps_per_frame (s).
    params: the sampled scene parameters (JSON-able: numbers, strings, lists, dicts).
    frame_dt: time between stored frames, s.
    substeps_per_frame: k (None in what a family function returns: `Family.sample` then chooses it).
    """

    scene: sc.Scene
    params: dict
    frame_dt: float
    substeps_per_frame: int | None = None

    @property
    def dt(self) -> float:
        """The substep, s."""
        return self.frame_dt / self.substeps_per_frame


@dataclasses.dataclass(frozen=True)
class Family:
    """A registered family: `function(rng, **options) -> Sample` with its options' defaults and meanings.

    signal_speed: optional `f(options) -> m/s`, the largest wave speed plus initial particle speed any
        sample of these options can have (it may raise ValueError on bad options); it lets
        substeps_per_frame=None choose one k for all samples, and bad ranges fail before any sampling.
    """

    name: str
    function: Callable[..., Sample]
    description: str
    specs: dict  # option name -> (default, meaning), the common options first

    signal_speed: Callable[[dict], float] | None = None

    @property
    def options(self) -> dict:
        """{option: default}."""
        return {key: default for key, (default, _) in self.specs.items()}

    def resolve(self, **overrides) -> dict:
        """The options the family runs with: the defaults updated by `overrides`, checked, ranges as
        tuples, and substeps_per_frame chosen when the family declares `signal_speed`.

        Raises:
            ValueError: an unknown option (listing the valid ones), a value of the wrong kind, a range
                with lo > hi, or options whose substep would be unstable.
        """
        unknown = sorted(set(overrides) - set(self.specs))
        if unknown:
            raise ValueError(f"family {self.name!r} has no option {', '.join(map(repr, unknown))}; its options "
                             f"are: {', '.join(self.specs)} (`simcore dataset families` lists their meanings)")
        options = {}
        for key, (default, _) in self.specs.items():
            options[key] = _checked(self.name, key, overrides.get(key, default), default)
        _check_common(self.name, options)
        if self.signal_speed is not None:
            try:
                speed = float(self.signal_speed(options))
            except ValueError as exc:
                raise ValueError(f"family {self.name!r}: {exc}") from None
            options["substeps_per_frame"] = _substeps(self.name, options, speed, options["grid"], GRAVITY)
        return options

    def sample(self, rng: np.random.Generator, **overrides) -> Sample:
        """A random scene drawn with `rng` (np.random.default_rng(...)); options as `resolve` takes them.
        The same generator state gives the same scene (particles and parameters bit-equal)."""
        if not isinstance(rng, np.random.Generator):
            raise ValueError(f"rng must be a numpy Generator, e.g. np.random.default_rng([seed, i]); got {rng!r}")
        options = self.resolve(**overrides)
        sample = self.function(rng, **options)
        return self._finish(sample, options)

    def _finish(self, sample, options) -> Sample:
        """Fix the sample's substep and check what the contract promises: JSON-able parameters, every
        material compiled for, a stable dt."""
        if not isinstance(sample, Sample):
            raise ValueError(f"family {self.name!r} returned {type(sample).__name__}, expected a "
                             "simcore.learned.data.families.Sample(scene, params, frame_dt, substeps_per_frame)")
        scene = sample.scene
        if not isinstance(scene, sc.Scene) or not scene.bodies:
            raise ValueError(f"family {self.name!r} returned a sample without a scene with bodies; add at least one "
                             "body with scene.add_body(shape, material)")
        try:
            json.dumps(sample.params, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"family {self.name!r}: its params must be JSON-able (plain floats, ints, strings, "
                             f"lists, dicts; convert numpy values with float()/tolist()): {exc}") from None
        missing = sorted({type(b.material).__name__ for b in scene.bodies
                          if b.material.kind not in scene.extra_kinds})
        if missing:
            raise ValueError(f"family {self.name!r}: material types {missing} are not in the scene's "
                             "compile_materials; list every type the family may draw (families.new_scene(options, "
                             "materials=...)) so that all its samples share one compiled solver")
        k = sample.substeps_per_frame or options["substeps_per_frame"]
        frame_dt = float(sample.frame_dt)
        speed = max(max(float(np.max(b.params["wave_speed"])) for b in scene.bodies)
                    + max(float(np.max(np.linalg.norm(b.v, axis=1))) for b in scene.bodies), 0.0)
        checked = dict(options, frame_dt=frame_dt, substeps_per_frame=k)
        k = _substeps(self.name, checked, speed, scene.grid, float(np.linalg.norm(scene.gravity)))
        if scene.dt is not None and not math.isclose(scene.dt, frame_dt / k, rel_tol=1e-12):
            raise ValueError(f"family {self.name!r}: the scene's dt {scene.dt:.4g} s is not frame_dt / "
                             f"substeps_per_frame = {frame_dt / k:.4g} s; leave Scene(dt=None), the family sets it")
        scene.dt = frame_dt / k
        return dataclasses.replace(sample, frame_dt=frame_dt, substeps_per_frame=int(k))

    def describe(self) -> str:
        """The family's name, description and options with defaults and meanings, for a terminal."""
        lines = [f"{self.name}: {self.description}"]
        lines += [f"  {key + '=' + _setting(default):<34} {meaning}" for key, (default, meaning) in self.specs.items()]
        return "\n".join(lines)


FAMILIES: dict[str, Family] = {}


def register(name: str, *, description: str, options: dict | None = None,
             signal_speed: Callable[[dict], float] | None = None, replace: bool = False):
    """Decorator: register `f(rng, **options) -> Sample` as family `name`.

    options: {option: (default, one-line meaning)} besides COMMON (which it may re-default, e.g.
        {"dim": (3, "2 or 3")}). A default (lo, hi) makes a range option: values must be two numbers
        with lo <= hi. Defaults must be JSON-able.
    signal_speed: see `Family`.
    replace: allow registering a name again (e.g. re-running a notebook cell).
    """
    if not (isinstance(name, str) and name.isidentifier()):
        raise ValueError(f"a family name must be an identifier such as 'my_family', got {name!r}")
    if name in FAMILIES and not replace:
        raise ValueError(f"a family {name!r} is already registered; pick another name or pass replace=True")
    specs = dict(COMMON)
    for key, spec in (options or {}).items():
        if not (isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[1], str)):
            raise ValueError(f"family {name!r}: option {key!r} must be given as (default, 'meaning'), got {spec!r}")
        try:
            json.dumps(spec[0], allow_nan=False)
        except (TypeError, ValueError):
            raise ValueError(f"family {name!r}: the default of option {key!r} must be JSON-able, "
                             f"got {spec[0]!r}") from None
        specs[key] = spec

    def decorate(function):
        FAMILIES[name] = Family(name, function, description, specs, signal_speed)
        return function

    return decorate


def get(name: str) -> Family:
    """The family called `name`; ValueError listing the registered families if there is none."""
    if name not in FAMILIES:
        raise ValueError(f"unknown scene family {name!r}; registered families: {', '.join(sorted(FAMILIES))}")
    return FAMILIES[name]


def describe(names=None) -> str:
    """Every family (or those in `names`) with its options, defaults and meanings: what
    `simcore dataset families` prints."""
    chosen = [get(n) for n in (names or FAMILIES)]
    head = ("simcore dataset generate FAMILY --set KEY=VALUE ...; ranges (lo, hi) are drawn uniformly unless "
            "marked log-uniform. Families:")
    return "\n\n".join([head] + [family.describe() for family in chosen])


def _setting(value) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, tuple) and all(isinstance(v, str) for v in value):
        return ",".join(value)  # as typed after --set: shapes=box,sphere
    if isinstance(value, tuple):
        return "(" + ", ".join(_setting(v) for v in value) + ")"
    return str(value)


def _is_number(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def _checked(family: str, key: str, value, default):
    """`value` of option `key` in the form its default has: a (lo, hi) range → tuple of two finite
    numbers with lo <= hi; a number → a finite number; a tuple of names → a non-empty tuple of strings."""
    where = f"family {family!r}, option {key!r}"
    if isinstance(default, tuple) and len(default) == 2 and all(_is_number(d) for d in default):
        if (isinstance(value, str) or not hasattr(value, "__len__") or len(value) != 2
                or not all(_is_number(v) and math.isfinite(v) for v in value)):
            raise ValueError(f"{where}: expected a range (lo, hi) of two numbers, got {value!r}")
        lo, hi = value
        if lo > hi:
            raise ValueError(f"{where}: the range ({lo}, {hi}) has lo > hi; give (lo, hi) with lo <= hi")
        cast = int if all(isinstance(d, int) for d in default) else float
        if cast is int and not all(float(v).is_integer() for v in value):
            raise ValueError(f"{where}: expected a range of whole numbers, got {value!r}")
        return cast(lo), cast(hi)
    if isinstance(default, tuple) and all(isinstance(d, str) for d in default):
        if isinstance(value, str):  # "box,sphere" or "(box, sphere)", as typed on a command line
            value = tuple(v.strip(" '\"") for v in value.strip("()[] ").split(",") if v.strip(" '\""))
        if not (hasattr(value, "__len__") and len(value) > 0 and all(isinstance(v, str) for v in value)):
            raise ValueError(f"{where}: expected a non-empty list of names such as {default!r}, got {value!r}")
        return tuple(value)
    if _is_number(default):
        if not (_is_number(value) and math.isfinite(value)):
            raise ValueError(f"{where}: expected a number, got {value!r}")
        return int(value) if isinstance(default, int) and float(value).is_integer() else float(value)
    return value


def _check_common(family: str, o: dict) -> None:
    where = f"family {family!r}"
    if o["dim"] not in (2, 3):
        raise ValueError(f"{where}: dim must be 2 or 3, got {o['dim']!r}")
    if not (isinstance(o["grid"], int) and o["grid"] >= 2 * BOUND + 4):
        raise ValueError(f"{where}: grid must be a whole number of cells >= {2 * BOUND + 4}, got {o['grid']!r}")
    ppc = o["particles_per_cell"]
    if ppc is not None:
        side = round(ppc ** (1 / o["dim"])) if _is_number(ppc) and ppc > 0 else 0
        if not (isinstance(ppc, int) and side >= 1 and side ** o["dim"] == ppc):
            raise ValueError(f"{where}: particles_per_cell must be k^dim for a whole k >= 1 (e.g. 4 or 9 in 2D, "
                             f"8 or 27 in 3D), or None for 2^dim; got {ppc!r}")
    if not (_is_number(o["frame_dt"]) and o["frame_dt"] > 0):
        raise ValueError(f"{where}: frame_dt must be a number of seconds > 0, got {o['frame_dt']!r}")
    k = o["substeps_per_frame"]
    if k is not None and not (isinstance(k, int) and k >= 1):
        raise ValueError(f"{where}: substeps_per_frame must be a whole number >= 1, or None to choose it, got {k!r}")


def _substeps(family: str, o: dict, signal_speed: float, grid: int, gravity: float) -> int:
    """The substeps per frame: o["substeps_per_frame"] checked, or the fewest that keep
    dt <= STABILITY_MARGIN · dx / (signal speed + free-fall speed across the domain + |g| frame_dt)."""
    dx, frame_dt = 1.0 / grid, o["frame_dt"]
    speed = signal_speed + math.sqrt(2 * gravity * DOMAIN_HEIGHT) + gravity * frame_dt
    stable = STABILITY_MARGIN * dx / max(speed, 1e-30)
    fewest = max(1, math.ceil(frame_dt / stable * (1 - 1e-12)))
    k = o["substeps_per_frame"]
    if k is None:
        return fewest
    if k < fewest:
        raise ValueError(f"family {family!r}: substeps_per_frame={k} gives dt = {frame_dt / k:.3g} s, above the "
                         f"stable {stable:.3g} s ({STABILITY_MARGIN} × dx / (wave speed + speed) = {STABILITY_MARGIN}"
                         f" × {dx:.4g} m / {speed:.3g} m/s); use substeps_per_frame >= {fewest}, or None to choose "
                         "it, or narrow the stiffness / velocity ranges")
    return k


# ------------------------------------------------------------------------------------------------
# Helpers for writing families
# ------------------------------------------------------------------------------------------------
def uniform(rng: np.random.Generator, bounds) -> float:
    """A number drawn uniformly from the range (lo, hi)."""
    lo, hi = bounds
    return float(lo + (hi - lo) * rng.random())


def log_uniform(rng: np.random.Generator, bounds) -> float:
    """A number drawn log-uniformly from the range (lo, hi), 0 < lo <= hi: each decade equally likely."""
    lo, hi = bounds
    return float(math.exp(uniform(rng, (math.log(lo), math.log(hi)))))


def integer(rng: np.random.Generator, bounds) -> int:
    """A whole number drawn uniformly from lo..hi inclusive."""
    lo, hi = bounds
    return int(rng.integers(lo, hi + 1))


def new_scene(options: dict, materials, **scene_args) -> sc.Scene:
    """The scene every sample of a family starts from: dim, grid and particles_per_cell from `options`,
    `materials` (material types) as its compile_materials, and `scene_args` for the rest (walls,
    wall_friction, gravity: keep anything compiled, walls above all, the same for every sample)."""
    return sc.Scene(dim=options["dim"], grid=options["grid"], particles_per_cell=options["particles_per_cell"],
                    compile_materials=tuple(materials), **scene_args)


def margin(grid: int) -> float:
    """Closest a body's bounding box comes to the domain's edge, m: the wall layer (BOUND cells) plus one
    and a half cells, so that a body starts clear of the wall nodes (those with index <= BOUND: a particle
    at x reaches the nodes from floor(x/dx − 0.5) up)."""
    return (BOUND + 1.5) / grid


def place(rng: np.random.Generator, scene: sc.Scene, make: Callable[[np.ndarray], Any], *, gap=None,
          taken: list | None = None, attempts: int = 200):
    """The shape `make(center)` at a random center: its bounding box inside the domain clear of the wall
    layer (`margin`), its lowest point `gap` m (a (lo, hi) range, drawn uniformly; None: anywhere) above
    the floor's margin, and its bounding box apart from every box in `taken` (a list of (lo, hi) pairs,
    which the placed box is appended to). `make` must translate the shape with its center.

    Raises:
        ValueError: the shape does not fit, or no free spot was found in `attempts` tries.
    """
    dim, edge = scene.dim, margin(scene.grid)
    probe = make(np.zeros(dim))
    lo0, hi0 = (np.asarray(b, dtype=float) for b in probe.bounds(dim))
    low, high = edge - lo0, 1 - edge - hi0  # feasible centers on each axis
    if gap is not None:
        low[1], high[1] = edge - lo0[1] + gap[0], min(high[1], edge - lo0[1] + gap[1])
    if np.any(low > high):
        raise ValueError(f"a body of extent {np.round(hi0 - lo0, 4).tolist()} m does not fit in the domain clear of "
                         f"the walls ({edge:.4g} m each side)" + (f" with its lowest point {gap[0]} m above the floor"
                                                                    if gap is not None else "")
                         + "; shrink the size or gap ranges")
    for _ in range(attempts):
        center = low + (high - low) * rng.random(dim)
        box = (center + lo0, center + hi0)
        if all(np.any(box[0] > other[1]) or np.any(box[1] < other[0]) for other in taken or ()):
            if taken is not None:
                taken.append(box)
            return make(center)
    raise ValueError(f"found no place for a body of extent {np.round(hi0 - lo0, 4).tolist()} m clear of the "
                     f"{len(taken or ())} bodies already placed in {attempts} tries; shrink the size range or draw "
                     "fewer bodies")


@functools.lru_cache(maxsize=None)
def _mesh(name: str):
    import trimesh

    return trimesh.load(sc.assets.path(name), force="mesh")


def _rotation(rng: np.random.Generator) -> np.ndarray:
    """A rotation matrix drawn uniformly over all rotations (a normalised Gaussian quaternion)."""
    q = rng.normal(size=4)
    w, x, y, z = q / np.linalg.norm(q)
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
                     [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
                     [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]])


def _unit(rng: np.random.Generator, dim: int) -> np.ndarray:
    v = rng.normal(size=dim)
    return v / np.linalg.norm(v)


def random_shape(rng: np.random.Generator, options: dict):
    """A random shape maker for `place`: kind drawn from options["shapes"] (those that exist in
    options["dim"]), extent from options["size"] (m): box edges each drawn from it, sphere and cylinder
    diameters (and cylinder height), a mesh's largest edge. Returns (make(center) -> Shape, description
    dict for params; its "center" is filled in by `body_params`)."""
    dim, lo_hi = options["dim"], options["size"]
    kinds = [k for k in options["shapes"] if dim == 3 or k in ("box", "sphere")]
    kind = kinds[int(rng.integers(len(kinds)))]
    if kind == "box":
        size = [uniform(rng, lo_hi) for _ in range(dim)]
        return (lambda c: sc.shapes.Box(center=tuple(c), size=tuple(size))), {"type": "box", "size": size}
    if kind == "sphere":
        radius = uniform(rng, lo_hi) / 2
        return (lambda c: sc.shapes.Sphere(center=tuple(c), radius=radius)), {"type": "sphere", "radius": radius}
    if kind == "cylinder":
        radius, height, axis = uniform(rng, lo_hi) / 2, uniform(rng, lo_hi), _unit(rng, 3).tolist()
        return ((lambda c: sc.shapes.Cylinder(center=tuple(c), radius=radius, height=height, axis=tuple(axis))),
                {"type": "cylinder", "radius": radius, "height": height, "axis": axis})
    name = MESHES[int(rng.integers(len(MESHES)))]
    size, rotation = uniform(rng, lo_hi), _rotation(rng)
    return ((lambda c: sc.shapes.Mesh(_mesh(name), center=tuple(c), size=size, rotation=rotation)),
            {"type": "mesh", "mesh": name, "size": size, "rotation": rotation.tolist()})


def _check_shapes(o: dict) -> None:
    bad = [k for k in o["shapes"] if k not in SHAPES]
    if bad:
        raise ValueError(f"unknown shapes {bad}; choose among {', '.join(SHAPES)}")
    if o["dim"] == 2 and not any(k in ("box", "sphere") for k in o["shapes"]):
        raise ValueError(f"shapes {list(o['shapes'])} are all 3D-only; a 2D family needs 'box' or 'sphere'")
    if o["size"][0] <= 0:
        raise ValueError(f"size must be > 0 m, got {o['size']}")
    room = 1 - 2 * margin(o["grid"]) - o["size"][1] - o.get("gap", (0.0, 0.0))[0]
    if room < 0:
        raise ValueError(f"a body of size up to {o['size'][1]} m" + (f" with its lowest point {o['gap'][0]} m above "
                         "the floor" if "gap" in o else "") + f" does not fit in the domain clear of the walls "
                         f"({margin(o['grid']):.4g} m each side); shrink the size or gap ranges")


# ------------------------------------------------------------------------------------------------
# Materials: what each built-in material name draws, and its stiffest case
# ------------------------------------------------------------------------------------------------
WATER_DENSITY = 1e3  # kg/m³

# name: (material type, {parameter: option it is drawn from}, options drawn log-uniformly)
MATERIALS = {
    "elastic": (sc.materials.NeoHookean, {"E": "E", "nu": "nu", "density": "density"}),
    "plasticine": (sc.materials.Plasticine, {"E": "E", "nu": "nu", "density": "density",
                                             "yield_stress": "yield_stress"}),
    "sand": (sc.materials.Sand, {"E": "sand_E", "nu": "nu", "density": "sand_density",
                                 "friction_angle": "friction_angle"}),
    "water": (sc.materials.Fluid, {"bulk_modulus": "bulk_modulus", "viscosity": "viscosity"}),
}
LOG_UNIFORM = {"E", "sand_E", "bulk_modulus", "yield_stress"}

MATERIAL_OPTIONS = {
    "E": ((2e4, 2e5), "Young's modulus of elastic and plasticine bodies, Pa, log-uniform"),
    "nu": ((0.2, 0.35), "Poisson's ratio of solids"),
    "density": ((800.0, 1500.0), "density of elastic and plasticine bodies, kg/m³"),
    "yield_stress": ((5e2, 5e3), "von Mises yield stress of plasticine, Pa, log-uniform"),
    "sand_E": ((1e5, 3.5e5), "Young's modulus of sand, Pa, log-uniform"),
    "sand_density": ((1500.0, 2200.0), "bulk density of sand, kg/m³"),
    "friction_angle": ((25.0, 40.0), "Drucker–Prager friction angle of sand, degrees"),
    # Below 1e5 Pa, drops of ~0.3 m compressed to J ≈ 0.55 on impact (Mach ~0.3) and broke the CFL bound.
    "bulk_modulus": ((1e5, 4e5), "bulk modulus K of water (Tait, gamma = 7, 1000 kg/m³), Pa, log-uniform"),
    "viscosity": ((0.0, 0.1), "dynamic viscosity of water, Pa·s"),
}


def draw_material(rng: np.random.Generator, name: str, o: dict):
    """Material `name` (a key of MATERIALS) with parameters drawn from its option ranges in `o`;
    returns (material, {parameter: value})."""
    cls, drawn = MATERIALS[name]
    values = {param: (log_uniform if key in LOG_UNIFORM else uniform)(rng, o[key]) for param, key in drawn.items()}
    if cls is sc.materials.Fluid:
        values["density"] = WATER_DENSITY
    return cls(**values, name=name), values


def _stiffest(name: str, o: dict) -> float:
    """The largest wave speed (m/s) material `name` reaches over its option ranges in `o`, found at the
    ranges' corners (the wave speed is monotone in each parameter); building the corner materials also
    validates the ranges (a ValueError naming the parameter)."""
    cls, drawn = MATERIALS[name]
    keys = list(drawn)
    fixed = {"density": WATER_DENSITY} if cls is sc.materials.Fluid else {}
    best = 0.0
    for corner in itertools.product(*(o[drawn[p]] for p in keys)):
        try:
            material = cls(**dict(zip(keys, corner)), **fixed)
        except ValueError as exc:
            options = ", ".join(f"{drawn[p]}={o[drawn[p]]}" for p in keys)
            raise ValueError(f"the ranges {options} allow an invalid {name}: {exc}") from None
        speed = float(material.particle_parameters(np.zeros((1, o["dim"])))["wave_speed"][0])
        if cls is sc.materials.Fluid:  # a Tait fluid stiffens as it compresses on impact
            speed *= FLUID_MOST_COMPRESSED ** ((1 - material.gamma) / 2)
        best = max(best, speed)
    return best


def body_params(name: str, shape_info: dict, shape, material_name: str, material_values: dict, velocity,
                angular_velocity, dim: int) -> dict:
    """One body's entry in a sample's params (plain floats and lists)."""
    return {"name": name, "material": material_name, "material_params": material_values,
            "shape": dict(shape_info, center=[float(c) for c in shape.center][:dim]),
            "velocity": [float(v) for v in velocity],
            "angular_velocity": [float(w) for w in np.ravel(angular_velocity)]}


# ------------------------------------------------------------------------------------------------
# Built-in families
# ------------------------------------------------------------------------------------------------
MOTION_OPTIONS = {
    "speed": ((0.0, 2.0), "initial speed, m/s, in a uniformly random direction"),
    "spin": ((0.0, 0.0), "initial angular speed, rad/s (random sign / axis)"),
    "gap": ((0.05, 0.4), "height of the body's lowest point above the floor, m"),
}
SHAPE_OPTIONS = {
    "shapes": (SHAPES, "shapes to draw from: box, sphere; in 3D also cylinder, mesh (simcore.assets)"),
    "size": ((0.1, 0.25), "extent of a body, m: box edges, sphere / cylinder diameter and height, mesh "
                          "largest edge"),
}


def _options(*names, **changed) -> dict:
    """Option specs picked from the tables above, with `changed` replacing some."""
    table = {**MATERIAL_OPTIONS, **MOTION_OPTIONS, **SHAPE_OPTIONS}
    return {**{n: table[n] for n in names}, **changed}


def _motion_bound(o: dict) -> float:
    """The fastest initial particle speed the options allow, m/s: throw plus spin at the farthest particle."""
    reach = o["size"][1] * math.sqrt(o["dim"]) / 2
    return o["speed"][1] + max(abs(s) for s in o.get("spin", (0.0, 0.0))) * reach


def _speed_of(*materials: str) -> Callable[[dict], float]:
    def signal_speed(o):
        _check_shapes(o)
        return max(_stiffest(m, o) for m in materials) + _motion_bound(o)
    return signal_speed


def _throw(rng, o, direction=None):
    """(velocity (dim,) m/s, angular velocity: scalar in 2D, (3,) in 3D) drawn from o["speed"], o["spin"]."""
    dim = o["dim"]
    velocity = uniform(rng, o["speed"]) * (_unit(rng, dim) if direction is None else direction)
    spin = uniform(rng, o.get("spin", (0.0, 0.0))) * (rng.choice((-1.0, 1.0)) if dim == 2 else _unit(rng, 3))
    return velocity, (np.array([spin]) if dim == 2 else spin)


def _single_body(rng, o, material_name: str, scene_args: dict, direction=None) -> Sample:
    """One body of `material_name`, random shape, placed o["gap"] above the floor, thrown."""
    cls = MATERIALS[material_name][0]
    scene = new_scene(o, (cls,), **scene_args)
    material, values = draw_material(rng, material_name, o)
    make, info = random_shape(rng, o)
    shape = place(rng, scene, make, gap=o["gap"])
    velocity, spin = _throw(rng, o, direction(rng, o["dim"]) if direction else None)
    solid = material_name != "water"  # a fluid has no rigid rotation to start with
    spin = spin if solid else np.zeros_like(spin)
    scene.add_body(shape, material, velocity=velocity, angular_velocity=spin if solid else None, name=material_name)
    params = {"bodies": [body_params(material_name, info, shape, material_name, values, velocity, spin, o["dim"])]}
    return Sample(scene, params, o["frame_dt"], o["substeps_per_frame"])


@register("fluid_drop", description="a body of water of random shape dropped into the empty tank",
          options=_options("bulk_modulus", "viscosity", "shapes", "size", "speed", "gap"),
          signal_speed=_speed_of("water"))
def fluid_drop(rng, **o):
    return _single_body(rng, o, "water", {})


def _toss_direction(rng, dim):
    """Up and sideways: 15–75 degrees above the horizontal, left or right (any azimuth in 3D)."""
    elevation = math.radians(uniform(rng, (15.0, 75.0)))
    if dim == 2:
        return np.array([math.cos(elevation) * rng.choice((-1.0, 1.0)), math.sin(elevation)])
    azimuth = uniform(rng, (0.0, 2 * math.pi))
    return np.array([math.cos(elevation) * math.cos(azimuth), math.sin(elevation),
                     math.cos(elevation) * math.sin(azimuth)])


@register("elastic_toss", description="a neo-Hookean body of random shape thrown upwards (15–75 degrees) and spun",
          options=_options("E", "nu", "density", "shapes", "size", "speed", "spin", "gap",
                           speed=((1.0, 3.0), "initial speed, m/s, 15–75 degrees above the horizontal"),
                           spin=((-5.0, 5.0), "initial angular speed, rad/s (about a random axis in 3D)"),
                           gap=((0.05, 0.3), MOTION_OPTIONS["gap"][1])),
          signal_speed=_speed_of("elastic"))
def elastic_toss(rng, **o):
    return _single_body(rng, o, "elastic", {"wall_friction": 0.3}, direction=_toss_direction)


@register("plasticine_drop", description="a von Mises plasticine body of random shape dropped on the floor",
          options=_options("E", "nu", "density", "yield_stress", "shapes", "size", "speed", "gap",
                           E=((5e4, 2e5), MATERIAL_OPTIONS["E"][1])),
          signal_speed=_speed_of("plasticine"))
def plasticine_drop(rng, **o):
    return _single_body(rng, o, "plasticine", {"wall_friction": 0.5})


@register("sand_collapse", description="a column of Drucker–Prager sand released on a rough floor",
          options=_options("sand_E", "nu", "sand_density", "friction_angle",
                           shapes=(("box", "cylinder"), "column shape: box; in 3D also an upright cylinder"),
                           width=((0.1, 0.3), "column width (cylinder diameter), m"),
                           height=((0.1, 0.4), "column height, m"),
                           wall_friction=(1.0, "Coulomb friction of the floor and walls (above tan of the "
                                                "friction angle: a rough bed the sand does not slide on)")),
          signal_speed=lambda o: _check_column(o) or _stiffest("sand", o))
def sand_collapse(rng, **o):
    dim = o["dim"]
    scene = new_scene(o, (sc.materials.Sand,), wall_friction=o["wall_friction"])
    material, values = draw_material(rng, "sand", o)
    width, height = uniform(rng, o["width"]), uniform(rng, o["height"])
    kinds = [k for k in o["shapes"] if dim == 3 or k == "box"]
    kind = kinds[int(rng.integers(len(kinds)))]
    if kind == "box":
        size = [width, height, uniform(rng, o["width"])][:dim]
        make, info = (lambda c: sc.shapes.Box(center=tuple(c), size=tuple(size))), {"type": "box", "size": size}
    else:
        make = lambda c: sc.shapes.Cylinder(center=tuple(c), radius=width / 2, height=height)  # noqa: E731
        info = {"type": "cylinder", "radius": width / 2, "height": height, "axis": [0.0, 1.0, 0.0]}
    shape = place(rng, scene, make, gap=(0.0, 0.0))  # resting on the floor
    scene.add_body(shape, material, name="sand")
    zero = np.zeros(dim)
    params = {"bodies": [body_params("sand", info, shape, "sand", values, zero, zero[:1] if dim == 2 else zero, dim)]}
    return Sample(scene, params, o["frame_dt"], o["substeps_per_frame"])


def _check_column(o: dict) -> None:
    bad = [k for k in o["shapes"] if k not in ("box", "cylinder")]
    if bad or (o["dim"] == 2 and "box" not in o["shapes"]):
        raise ValueError(f"sand_collapse shapes must be among box, cylinder (3D only), with box in 2D; got "
                         f"{list(o['shapes'])}")
    if o["width"][0] <= 0 or o["height"][0] <= 0:
        raise ValueError(f"width and height must be > 0 m, got width={o['width']}, height={o['height']}")


def _multi_speed(o: dict) -> float:
    _check_shapes(o)
    bad = [m for m in o["materials"] if m not in MATERIALS]
    if bad:
        raise ValueError(f"unknown materials {bad}; choose among {', '.join(MATERIALS)}")
    if o["bodies"][0] < 1:
        raise ValueError(f"bodies must be >= 1, got {o['bodies']}")
    return max(_stiffest(m, o) for m in o["materials"]) + _motion_bound(o)


@register("multi_material", description="2–4 bodies of random materials (elastic, plasticine, sand, water), "
                                        "shapes and throws, not overlapping",
          options=_options("E", "nu", "density", "yield_stress", "sand_E", "sand_density", "friction_angle",
                           "bulk_modulus", "viscosity", "shapes", "size", "speed",
                           bodies=((2, 4), "number of bodies, drawn uniformly (inclusive)"),
                           materials=(tuple(MATERIALS), "materials each body is drawn from"),
                           wall_friction=(0.5, "Coulomb friction of the floor and walls")),
          signal_speed=_multi_speed)
def multi_material(rng, **o):
    dim = o["dim"]
    kinds = {name: MATERIALS[name][0] for name in o["materials"]}
    scene = new_scene(o, tuple(kinds.values()), wall_friction=o["wall_friction"])
    taken, bodies = [], []
    for i in range(integer(rng, o["bodies"])):
        material_name = o["materials"][int(rng.integers(len(o["materials"])))]
        material, values = draw_material(rng, material_name, o)
        make, info = random_shape(rng, o)
        shape = place(rng, scene, make, taken=taken)
        velocity, _ = _throw(rng, o)
        scene.add_body(shape, material, velocity=velocity, name=f"body{i}")
        bodies.append(body_params(f"body{i}", info, shape, material_name, values, velocity,
                                  np.zeros(1 if dim == 2 else 3), dim))
    return Sample(scene, {"bodies": bodies}, o["frame_dt"], o["substeps_per_frame"])
