"""A kinematic box collider pressing a plasticine block flat (3D). Quality setting: grid=64."""

import simcore as sc

from . import parameters

DESCRIPTION = "kinematic press squeezing a block of plasticine (3D)"
PARAMETERS = {  # name: (default, meaning), read by build, `--set` and `simcore scenes`
    "dim": (3, "2 or 3"),
    "grid": (32, "grid cells per axis of the unit domain"),
    "yield_stress": (3e3, "von Mises yield stress of the plasticine, Pa"),
    "E": (1e5, "Young's modulus of the plasticine, Pa"),
    "press_speed": (0.3, "downward speed of the press, m/s"),
    "press_time": (0.5, "how long the press moves before it stops, s"),
}
DEFAULTS = {name: default for name, (default, _) in PARAMETERS.items()}
FRAMES, FRAME_DT = 45, 1 / 60


def build(**overrides) -> sc.Scene:
    p = parameters(DEFAULTS, overrides, "plasticine_press")
    dim = p["dim"]
    scene = sc.Scene(dim=dim, grid=p["grid"])
    floor = 0.15
    scene.add_body(sc.shapes.Box(center=(0.5, floor + 0.1 + 0.5 / p["grid"], 0.5)[:dim], size=(0.16, 0.2, 0.16)[:dim]),
                   sc.materials.Plasticine(E=p["E"], yield_stress=p["yield_stress"]), name="plasticine")
    scene.add_collider(sc.colliders.Plane(point=(0.0, floor, 0.0)[:dim], normal=(0.0, 1.0, 0.0)[:dim],
                                          friction=0.5, name="floor"))
    down = (0.0, -p["press_speed"], 0.0)[:dim]
    still = (0.0,) * dim
    scene.add_collider(sc.colliders.Box(center=(0.5, floor + 0.27, 0.5)[:dim], size=(0.5, 0.1, 0.5)[:dim],
                                        velocity=lambda t: down if t < p["press_time"] else still,
                                        friction=0.5, name="press"))
    return scene
