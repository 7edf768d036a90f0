"""A neo-Hookean jelly cube dropped on a frictional plane (3D). Quality setting: grid=96."""

import simcore as sc

from . import parameters

DESCRIPTION = "3D elastic jelly cube dropped on a frictional plane"
DEFAULTS = dict(dim=3, grid=32, E=5e4, nu=0.3, density=1e3, size=0.2, height=0.55, speed=1.0, friction=0.3)
FRAMES, FRAME_DT = 60, 1 / 60


def build(**overrides) -> sc.Scene:
    p = parameters(DEFAULTS, overrides, "jelly_drop")
    dim = p["dim"]
    scene = sc.Scene(dim=dim, grid=p["grid"])
    center = (0.5, p["height"], 0.5)[:dim]
    scene.add_body(sc.shapes.Box(center=center, size=(p["size"],) * dim),
                   sc.materials.NeoHookean(E=p["E"], nu=p["nu"], density=p["density"]),
                   velocity=(0.0, -p["speed"], 0.0)[:dim], name="jelly")
    scene.add_collider(sc.colliders.Plane(point=(0.0, 0.1, 0.0)[:dim], normal=(0.0, 1.0, 0.0)[:dim],
                                          friction=p["friction"], name="floor"))
    return scene
