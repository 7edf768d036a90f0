"""Dam break: a water column released into a tank (2D by default; --set dim=3 for 3D).
Quality setting: grid=128 (2D) or grid=64 (3D).

The column starts hydrostatic, as the gate that held it left it: at rest, its pressure carrying its
weight (simcore.initial_stress; docs/hydrostatic.md), so that only its free face moves when the gate
opens. Unstressed (hydrostatic=False), the whole column would first fall and compress under its own
weight. It stands against the domain's left wall and floor from the wall layer's face (3 cells in).
"""

import simcore as sc

from . import parameters

DESCRIPTION = "water column collapsing in a tank (2D; dim=3 for 3D)"
PARAMETERS = {  # name: (default, meaning), read by build, `--set` and `simcore scenes`
    "dim": (2, "2 or 3 (in 3D a smaller grid, e.g. 32, keeps it fast)"),
    "grid": (64, "grid cells per axis of the unit domain"),
    "bulk_modulus": (2e4, "water's bulk modulus K, Pa (stiffer: less compressible, smaller steps)"),
    "viscosity": (0.1, "dynamic viscosity, Pa·s"),
    "width": (0.3, "water column width, m"),
    "height": (0.5, "water column height, m"),
    "hydrostatic": (True, "start with the hydrostatic pressure of a column held at rest (False: unstressed)"),
}
DEFAULTS = {name: default for name, (default, _) in PARAMETERS.items()}
FRAMES, FRAME_DT = 90, 1 / 60


def build(**overrides) -> sc.Scene:
    p = parameters(DEFAULTS, overrides, "dam_break")
    dim = p["dim"]
    scene = sc.Scene(dim=dim, grid=p["grid"])
    lo = 3 / p["grid"]  # the wall layer's face: particles start half a spacing inside it
    center = (lo + p["width"] / 2, lo + p["height"] / 2, 0.5)[:dim]
    size = (p["width"], p["height"], 0.8)[:dim]
    scene.add_body(sc.shapes.Box(center=center, size=size),
                   sc.materials.Fluid(bulk_modulus=p["bulk_modulus"], viscosity=p["viscosity"]), name="water",
                   initial_stress="hydrostatic" if p["hydrostatic"] else None)
    return scene
