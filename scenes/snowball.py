"""A snowball thrown at a wall (Stomakhin et al. 2013 snow), 2D by default. Quality setting: grid=128."""

import simcore as sc

from . import parameters

DESCRIPTION = "snowball thrown against a wall, breaking up (2D; dim=3 for 3D)"
DEFAULTS = dict(dim=2, grid=64, radius=0.08, speed=6.0, hardening=10.0)
FRAMES, FRAME_DT = 40, 1 / 60


def build(**overrides) -> sc.Scene:
    p = parameters(DEFAULTS, overrides, "snowball")
    dim = p["dim"]
    scene = sc.Scene(dim=dim, grid=p["grid"], walls="sticky")
    scene.add_body(sc.shapes.Sphere(center=(0.3, 0.5, 0.5)[:dim], radius=p["radius"]),
                   sc.materials.Snow(hardening=p["hardening"]), velocity=(p["speed"], 0.5, 0.0)[:dim],
                   name="snowball")
    return scene
