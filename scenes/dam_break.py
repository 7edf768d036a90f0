"""Dam break: a water column released into a tank (2D by default; --set dim=3 for 3D).
Quality setting: grid=128 (2D) or grid=64 (3D)."""

import simcore as sc

from . import parameters

DESCRIPTION = "water column collapsing in a tank (2D; dim=3 for 3D)"
DEFAULTS = dict(dim=2, grid=64, bulk_modulus=2e4, viscosity=0.1, width=0.3, height=0.5)
FRAMES, FRAME_DT = 90, 1 / 60


def build(**overrides) -> sc.Scene:
    p = parameters(DEFAULTS, overrides, "dam_break")
    dim = p["dim"]
    scene = sc.Scene(dim=dim, grid=p["grid"])
    lo = 3.5 / p["grid"]
    center = (lo + p["width"] / 2, lo + p["height"] / 2, 0.5)[:dim]
    size = (p["width"], p["height"], 0.8)[:dim]
    scene.add_body(sc.shapes.Box(center=center, size=size),
                   sc.materials.Fluid(bulk_modulus=p["bulk_modulus"], viscosity=p["viscosity"]), name="water")
    return scene
