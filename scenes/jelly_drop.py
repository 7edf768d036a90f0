"""A neo-Hookean jelly cube dropped on a frictional plane (3D). Quality setting: grid=96."""

import simcore as sc

from . import parameters

DESCRIPTION = "3D elastic jelly cube dropped on a frictional plane"
PARAMETERS = {  # name: (default, meaning), read by build, `--set` and `simcore scenes`
    "dim": (3, "2 or 3"),
    "grid": (32, "grid cells per axis of the unit domain"),
    "E": (5e4, "Young's modulus of the jelly, Pa"),
    "nu": (0.3, "Poisson's ratio, in (-1, 0.5)"),
    "density": (1e3, "jelly density, kg/m³"),
    "size": (0.2, "cube edge, m"),
    "height": (0.55, "height of the cube's centre, m"),
    "speed": (1.0, "initial downward speed, m/s"),
    "friction": (0.3, "Coulomb friction coefficient of the floor"),
}
DEFAULTS = {name: default for name, (default, _) in PARAMETERS.items()}
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
