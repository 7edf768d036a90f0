"""Granular column collapse: a column of Drucker–Prager sand released on a rough floor (2D by default).
Quality setting: grid=128."""

import simcore as sc

from . import parameters

DESCRIPTION = "granular column of sand collapsing into a heap (2D; dim=3 for 3D)"
DEFAULTS = dict(dim=2, grid=64, friction_angle=30.0, width=0.12, height=0.3, floor_friction=0.5)
FRAMES, FRAME_DT = 60, 1 / 60


def build(**overrides) -> sc.Scene:
    p = parameters(DEFAULTS, overrides, "sand_collapse")
    dim = p["dim"]
    scene = sc.Scene(dim=dim, grid=p["grid"], walls={"-y": "separate"}, wall_friction=p["floor_friction"])
    floor = 0.1
    center = (0.5, floor + p["height"] / 2 + 0.5 / p["grid"], 0.5)[:dim]
    size = (p["width"], p["height"], p["width"])[:dim]
    scene.add_body(sc.shapes.Box(center=center, size=size), sc.materials.Sand(friction_angle=p["friction_angle"]),
                   name="sand")
    scene.add_collider(sc.colliders.Plane(point=(0.0, floor, 0.0)[:dim], normal=(0.0, 1.0, 0.0)[:dim],
                                          friction=p["floor_friction"], name="floor"))
    return scene
