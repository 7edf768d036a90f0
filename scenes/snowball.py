"""A snowball thrown at a wall (Stomakhin et al. 2013 snow), 2D by default. Quality setting: grid=128.

The snow is more brittle than the paper's (critical_stretch θs = 3e-3 against its 7.5e-3): at this
resolution (2 particles per cell per axis, a ball 13 cells across) the grid's numerical cohesion holds a
paper-parameter ball together as one lump, while this one breaks into fragments at the wall (measured in
tests/test_scenes.py). The walls let go of the snow ("separate"), so fragments slide off and fall instead
of sticking where they hit.
"""

import simcore as sc

from . import parameters

DESCRIPTION = "snowball thrown against a wall, breaking up (2D; dim=3 for 3D)"
PARAMETERS = {  # name: (default, meaning), read by build, `--set` and `simcore scenes`
    "dim": (2, "2 or 3 (in 3D a smaller grid, e.g. 32, keeps it fast)"),
    "grid": (64, "grid cells per axis of the unit domain"),
    "radius": (0.1, "ball radius, m"),
    "speed": (6.0, "throw speed towards the +x wall, m/s"),
    "E": (1.4e5, "Young's modulus of the snow, Pa"),
    "hardening": (10.0, "hardening ξ: compacted snow stiffens by exp(ξ (1 − Jp))"),
    "critical_compression": (2.5e-2, "θc: compression past 1 − θc is permanent"),
    "critical_stretch": (3e-3, "θs: stretch past 1 + θs is permanent (lower: more brittle)"),
}
DEFAULTS = {name: default for name, (default, _) in PARAMETERS.items()}
FRAMES, FRAME_DT = 40, 1 / 60


def build(**overrides) -> sc.Scene:
    p = parameters(DEFAULTS, overrides, "snowball")
    dim = p["dim"]
    scene = sc.Scene(dim=dim, grid=p["grid"], walls="separate")
    snow = sc.materials.Snow(E=p["E"], hardening=p["hardening"], critical_compression=p["critical_compression"],
                             critical_stretch=p["critical_stretch"])
    scene.add_body(sc.shapes.Sphere(center=(0.3, 0.5, 0.5)[:dim], radius=p["radius"]), snow,
                   velocity=(p["speed"], 0.5, 0.0)[:dim], name="snowball")
    return scene
