"""Granular column collapse: a column of sand released on a rough floor (2D by default).
The sand is a μ(I) material (GranularMuI, μs = tan φ) moved by the FLIP transfer, the configuration whose
collapses converge with the grid and the time step: at the defaults (aspect ratio a = height /
half-width = 2, φ = 30°) it runs out 2.37 L0 against Lube et al. 2005's 2.40, and within 11 % of Lube's
law at a = 0.8, 2 and 5 on grids 64–256 (`python examples/column_collapse_lube.py`, docs/granular.md,
"Converged collapses"). rheology="drucker-prager" releases rate-independent Drucker–Prager sand (Sand)
instead, which flows at friction sin φ and runs out 24–44 % further once converged; transfer="apic"
uses the engine's default transfer, whose damping grows as the time step shrinks.
Quality setting: grid=128."""

import math

import simcore as sc

from . import parameters

DESCRIPTION = "granular column of sand collapsing into a heap (2D; dim=3 for 3D)"
PARAMETERS = {  # name: (default, meaning), read by build, `--set` and `simcore scenes`
    "dim": (2, "2 or 3 (in 3D a smaller grid, e.g. 32, keeps it fast)"),
    "grid": (64, "grid cells per axis of the unit domain"),
    "friction_angle": (30.0, "friction angle φ of the sand, degrees in (0, 90)"),
    "rheology": ("mu_i", "'mu_i' (materials.GranularMuI with μs = tan φ: φ is the slope below which a layer "
                         "stops flowing, Jop et al.'s definition; its heaps stand steeper, up to asin μs; μ2 = μs "
                         "+ 0.26, grains of 0.5 mm) or 'drucker-prager' (materials.Sand, φ its Mohr–Coulomb "
                         "angle: its heaps rest at φ)"),
    "transfer": ("flip", "grid-to-particle transfer (simcore.Scene's): 'flip', whose run-outs do not depend on "
                         "the time step, or 'apic'"),
    "width": (0.2, "column width, m"),
    "height": (0.2, "column height, m"),
    "particles_per_cell": (None, "particles per grid cell (None: 2^dim; 9 or 16 in 2D raise tall columns' "
                                 "deposits to within 10–14 % of Lube's, docs/granular.md)"),
    "floor_friction": (1.0, "Coulomb friction coefficient of the floor (above tan φ: a rough bed the sand "
                            "does not slide on; 0.5 let it slide and run out 19 % too far)"),
}
DEFAULTS = {name: default for name, (default, _) in PARAMETERS.items()}
FRAMES, FRAME_DT = 60, 1 / 60


def build(**overrides) -> sc.Scene:
    p = parameters(DEFAULTS, overrides, "sand_collapse")
    dim = p["dim"]
    scene = sc.Scene(dim=dim, grid=p["grid"], walls={"-y": "separate"}, wall_friction=p["floor_friction"],
                     particles_per_cell=p["particles_per_cell"], transfer=p["transfer"])
    floor = 0.1
    center = (0.5, floor + p["height"] / 2 + 0.5 / p["grid"], 0.5)[:dim]
    size = (p["width"], p["height"], p["width"])[:dim]
    scene.add_body(sc.shapes.Box(center=center, size=size), _material(p["rheology"], p["friction_angle"]), name="sand")
    scene.add_collider(sc.colliders.Plane(point=(0.0, floor, 0.0)[:dim], normal=(0.0, 1.0, 0.0)[:dim],
                                          friction=p["floor_friction"], name="floor"))
    return scene


def _material(rheology: str, friction_angle: float) -> sc.materials.Material:
    """The column's material for `rheology` (PARAMETERS) and friction angle φ (degrees)."""
    if rheology == "drucker-prager":
        return sc.materials.Sand(friction_angle=friction_angle)
    if rheology == "mu_i":
        # μs = tan φ: a layer on a slope flows above φ (tests/mpm/test_mu_i.py), and a column's run-out
        # is set by this flow friction; a heap stands up to asin μs (docs/granular.md).
        mu_s = math.tan(math.radians(friction_angle))
        return sc.materials.GranularMuI(mu_s=mu_s, mu_2=mu_s + 0.26, grain_diameter=5e-4)
    raise ValueError(f"sand_collapse: rheology={rheology!r} is not one of 'drucker-prager', 'mu_i'")
