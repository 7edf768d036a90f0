"""Ground truth for NCLaw: the paper's training set-up simulated by simcore, one trajectory per material.

The set-up (Ma et al., ICML 2023, §5; reference configs `sim/low.yaml`, `env/blob/shape/cube.yaml`,
`env/blob/vel/preset.yaml`): a cube of edge 0.5 m centred at (0.5, 0.5, 0.5) m in the unit domain, one
particle per cell of a 20³ grid (10³ = 1,000 particles), thrown with v = (1, −1.5, −2) m/s and spun at
ω = (4, 4, 4) rad/s about its centre, under gravity (0, −9.8, 0) m/s², into the floor and walls of the
domain (frictionless, free to leave: the reference's "freeslip", simcore's walls="separate"), for 1,000
steps of dt = 5e-4 s (0.5 s), every step stored.

The four materials, as simcore's built-in models with the reference's parameters (density 1e3 kg/m³):

| name | simcore material | reference |
|---|---|---|
| jelly | FixedCorotated(E=1e5, ν=0.2) | corotated_jelly |
| plasticine | Plasticine(E=3e5, ν=0.25, yield_stress=√(3/2)·5e3 Pa) | sigma_plasticine + von_mises_plasticine |
| sand | Sand(E=1e6, ν=0.2, friction_angle=25°) | sigma_sand + drucker_prager_sand |
| water | Fluid(bulk_modulus=5.77e4 Pa, γ=1, inviscid) | volume_water + sigma |

Where the two codes define a parameter differently it is converted so that the law is the same one:
the reference returns plasticine to ‖dev ε‖ ≤ σ_y / (2μ) with σ_y = 5e3 Pa, simcore to
‖dev ε‖ ≤ √(2/3) σ_y / (2μ), hence σ_y = √(3/2) · 5e3 Pa here. The reference's water has Cauchy
pressure p = λ(1 − J) with λ = Eν/((1 + ν)(1 − 2ν)) = 5.77e4 Pa (E = 1e5, ν = 0.3); simcore's Tait fluid
with γ = 1 has p = K(1/J − 1), the same law to first order in J − 1 with K = λ (dp/dJ = −K at rest).
Both elastic-plastic solids use Hencky-strain St. Venant–Kirchhoff elasticity in both codes.

Generated through the dataset tooling as the scene family `nclaw_cube` (options: material, velocity,
angular_velocity), so that the data, its manifest and its determinism are those of every other dataset:

    from simcore.learned.nclaw import ground_truth
    ds = ground_truth.generate("jelly", "data/nclaw")      # data/nclaw/jelly: a Zarr dataset, 1 trajectory
    x = ds[0].x[:]                                         # (1001, 1000, 3) float32, m

or from a shell, all four: `python -m simcore.learned.nclaw.ground_truth --out data/nclaw [--steps 1000]
[--material jelly ...]`. (`simcore dataset generate nclaw_cube ...` knows the family only in a process that has
imported this module: simcore's CLI imports the built-in families alone.)
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from simcore.learned.data import families

import simcore as sc

FAMILY = "nclaw_cube"
GRID = 20  # cells per axis (sim/low.yaml: num_grids 20)
DT = 5e-4  # s, one substep per stored frame (sim/low.yaml: dt 5e-4, skip_frame 1)
STEPS = 1000  # sim/low.yaml: num_steps 1000
CUBE_CENTER = (0.5, 0.5, 0.5)  # m
CUBE_SIZE = 0.5  # m, edge (10 particles per edge at one particle per cell)
VELOCITY = (1.0, -1.5, -2.0)  # m/s (vel/preset.yaml: lin_vel)
ANGULAR_VELOCITY = (4.0, 4.0, 4.0)  # rad/s (vel/preset.yaml: ang_vel)
DENSITY = 1e3  # kg/m³ (env/blob/*.yaml: rho 1e3)

# σ_y in simcore's convention for the reference's von Mises return ‖dev ε‖ ≤ σ_y,ref / (2μ).
PLASTICINE_YIELD_STRESS = math.sqrt(1.5) * 5e3
# λ of the reference's water (E = 1e5 Pa, ν = 0.3), its pressure modulus at rest.
WATER_BULK_MODULUS = 1e5 * 0.3 / ((1 + 0.3) * (1 - 2 * 0.3))

MATERIALS = {
    "jelly": lambda: sc.materials.FixedCorotated(E=1e5, nu=0.2, density=DENSITY, name="jelly"),
    "plasticine": lambda: sc.materials.Plasticine(E=3e5, nu=0.25, yield_stress=PLASTICINE_YIELD_STRESS,
                                                  density=DENSITY, name="plasticine"),
    "sand": lambda: sc.materials.Sand(E=1e6, nu=0.2, friction_angle=25.0, density=DENSITY, name="sand"),
    "water": lambda: sc.materials.Fluid(bulk_modulus=WATER_BULK_MODULUS, gamma=1.0, viscosity=0.0, density=DENSITY,
                                        name="water"),
}


def material(name: str):
    """The simcore material of the reference's `name` (one of MATERIALS)."""
    if name not in MATERIALS:
        raise ValueError(f"unknown NCLaw material {name!r}; choose one of {', '.join(MATERIALS)}")
    return MATERIALS[name]()


def cube(center=CUBE_CENTER, size: float = CUBE_SIZE):
    """The thrown cube: a Box of edge `size` m at `center` (m)."""
    return sc.shapes.Box(center=tuple(center), size=(float(size),) * 3)


def _vector(options: dict, key: str) -> tuple:
    value = options[key]
    if not (hasattr(value, "__len__") and len(value) == 3
            and all(isinstance(v, (int, float, np.floating, np.integer)) and math.isfinite(v) for v in value)):
        raise ValueError(f"family {FAMILY!r}, option {key!r}: expected three numbers (x, y, z), got {value!r}")
    return tuple(float(v) for v in value)


@families.register(
    FAMILY,
    description="NCLaw's training scene: a 1,000-particle cube thrown spinning into the floor (one material)",
    options={
        "dim": (3, "3 (the set-up is 3D)"),
        "grid": (GRID, "grid cells per axis of the unit domain"),
        "particles_per_cell": (1, "particles per cell (1: the reference's 10³ particles in the cube)"),
        "frame_dt": (DT, "time between stored frames, s (one substep per frame)"),
        "substeps_per_frame": (1, "substeps per frame"),
        "material": ("jelly", f"one of {', '.join(MATERIALS)}"),
        "velocity": (VELOCITY, "initial velocity of the cube's centre, m/s"),
        "angular_velocity": (ANGULAR_VELOCITY, "initial angular velocity about the cube's centre, rad/s"),
        "center": (CUBE_CENTER, "the cube's initial centre, m"),
        "size": (CUBE_SIZE, "the cube's edge, m (a smaller cube makes a cheaper test scene)"),
    })
def nclaw_cube(rng, **o):
    """The set-up for o["material"]; deterministic (it draws nothing from `rng`)."""
    if o["dim"] != 3:
        raise ValueError(f"family {FAMILY!r} is 3D only (the reference set-up), got dim={o['dim']!r}")
    mat = material(o["material"])
    velocity, omega = _vector(o, "velocity"), _vector(o, "angular_velocity")
    center = _vector(o, "center")
    if not (isinstance(o["size"], (int, float)) and o["size"] > 0):
        raise ValueError(f"family {FAMILY!r}, option 'size': expected the cube's edge in m (> 0), got {o['size']!r}")
    scene = families.new_scene(o, materials=(type(mat),), walls="separate")
    scene.add_body(cube(center, o["size"]), mat, velocity=velocity, angular_velocity=omega, name="cube")
    params = {"material": o["material"], "velocity": list(velocity), "angular_velocity": list(omega)}
    if center != CUBE_CENTER or o["size"] != CUBE_SIZE:
        params.update(center=list(center), size=float(o["size"]))
    return families.Sample(scene, params, o["frame_dt"], o["substeps_per_frame"])


def sample(material_name: str = "jelly", **options) -> families.Sample:
    """The family's scene for one material (options as the family takes them), for use without a dataset
    (e.g. as the template a trained law is dropped into)."""
    return families.get(FAMILY).sample(np.random.default_rng(0), material=material_name, **options)


def trajectory(material_name: str, steps: int = STEPS, **options):
    """The same trajectory as `generate`'s, simulated here with the full particle state recorded: what
    teacher forcing restarts from (the dataset stores x and v only).

    Returns:
        simcore Trajectory: x, v (steps + 1, n, 3) m, m/s; C (steps + 1, n, 3, 3) 1/s; F (steps + 1, n, 3, 3)
        (a fluid's F is J^(1/3) I); t (steps + 1,) s.
    """
    if not (isinstance(steps, int) and steps >= 1):
        raise ValueError(f"steps must be a whole number >= 1 of {DT} s steps, got {steps!r}")
    s = sample(material_name, **options)
    return s.scene.run(frames=steps, frame_dt=s.frame_dt, record=("x", "v", "C", "F"), progress=False)


def generate(material_name: str, out, steps: int = STEPS, *, workers: int = 1, progress: bool = False,
             precision: str = "f32", **options):
    """Simulate the set-up for `material_name` into the Zarr dataset `out`/`material_name` (one trajectory,
    `steps` frames of DT) through simcore.learned.data, and open it. Re-running resumes (a finished
    dataset is left as it is).

    Returns:
        simcore.learned.data.store.Dataset; ds[0].x: (steps + 1, 1000, 3) m, ds[0].v m/s.
    """
    from simcore.learned.data.generate import generate as generate_dataset
    from simcore.learned.data.store import open_dataset

    material(material_name)  # a clear error before any work
    path = Path(out) / material_name
    generate_dataset(FAMILY, count=1, frames=steps, out=path, workers=workers, progress=progress,
                     precision=precision, options={"material": material_name, **options})
    return open_dataset(path)


def main(argv=None) -> int:
    """python -m simcore.learned.nclaw.ground_truth --out DIR [--material NAME ...] [--steps N]"""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m simcore.learned.nclaw.ground_truth", description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="directory; one dataset per material is written under it")
    parser.add_argument("--material", nargs="+", default=list(MATERIALS), choices=list(MATERIALS))
    parser.add_argument("--steps", type=int, default=STEPS, help=f"steps of {DT} s (default {STEPS})")
    parser.add_argument("--precision", default="f32", choices=("f32", "f64"))
    args = parser.parse_args(argv)
    for name in args.material:
        ds = generate(name, args.out, args.steps, progress=True, precision=args.precision)
        print(f"{name}: {Path(args.out) / name} ({len(ds)} trajectory, {args.steps} steps)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
