"""A mesh from assets/ (elastic) dropped into a pool of water or sand (3D). Quality setting: grid=64."""

from pathlib import Path

import simcore as sc
from simcore import assets

from . import parameters

DESCRIPTION = "an elastic mesh (assets/torus.obj) dropped into water or sand (3D)"
PARAMETERS = {  # name: (default, meaning), read by build, `--set` and `simcore scenes`
    "grid": (32, "grid cells per axis of the unit domain"),
    "mesh": ("torus.obj", "a closed mesh file, or the name of one shipped in simcore.assets (e.g. bell.obj)"),
    "size": (0.25, "the mesh's largest extent, m"),
    "bed": ("water", "what it falls into: 'water' or 'sand'"),
    "E": (1e5, "Young's modulus of the mesh body, Pa"),
}
DEFAULTS = {name: default for name, (default, _) in PARAMETERS.items()}
FRAMES, FRAME_DT = 45, 1 / 60


def build(**overrides) -> sc.Scene:
    p = parameters(DEFAULTS, overrides, "mesh_drop")
    if p["bed"] not in ("water", "sand"):
        raise ValueError(f"mesh_drop: bed must be 'water' or 'sand', got {p['bed']!r}")
    path = Path(p["mesh"])  # a file, else one of the meshes shipped in simcore.assets
    path = path if path.is_absolute() or path.exists() else assets.path(p["mesh"])
    scene = sc.Scene(dim=3, grid=p["grid"])
    lo = 3.5 / p["grid"]
    # A stiff bed (2 % hydrostatic compression) so it does not bounce when released at rest.
    bed = sc.materials.Fluid(bulk_modulus=1e5, viscosity=1.0) if p["bed"] == "water" else sc.materials.Sand()
    scene.add_body(sc.shapes.Box(center=(0.5, lo + 0.1, 0.5), size=(1 - 2 * lo, 0.2, 1 - 2 * lo)), bed, name=p["bed"])
    scene.add_body(sc.shapes.Mesh(path, center=(0.5, 0.55, 0.5), size=p["size"], rotation=(60, 0, 20)),
                   sc.materials.NeoHookean(E=p["E"], density=500.0), velocity=(0.0, -1.0, 0.0), name=path.stem)
    return scene
