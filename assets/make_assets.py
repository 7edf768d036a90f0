"""Regenerate the meshes in assets/ (run: python assets/make_assets.py). They are made here from
trimesh's primitives, so they carry no third-party licence: see assets/LICENSE.md."""

from pathlib import Path

import numpy as np
import trimesh

HERE = Path(__file__).parent


def bell() -> trimesh.Trimesh:
    """A bell: a curved profile revolved about the y axis (closed: both ends on the axis)."""
    t = np.linspace(0, 1, 40)
    radius = 0.25 + 0.55 * t**2 + 0.1 * np.sin(np.pi * t)
    height = 1.2 * (1 - t)
    profile = np.column_stack([np.r_[0.0, radius, 0.0], np.r_[height[0], height, 0.0]])
    mesh = trimesh.creation.revolve(profile, sections=48)
    mesh.apply_transform(trimesh.transformations.rotation_matrix(-np.pi / 2, [1, 0, 0]))  # z-up → y-up
    mesh.fix_normals()
    return mesh


def main():
    meshes = {
        "torus.obj": trimesh.creation.torus(major_radius=1.0, minor_radius=0.4, major_sections=48, minor_sections=24),
        "capsule.obj": trimesh.creation.capsule(height=1.0, radius=0.4, count=[24, 24]),
        "bell.obj": bell(),
    }
    for name, mesh in meshes.items():
        assert mesh.is_watertight, name
        mesh.export(HERE / name)
        print(f"{name}: {len(mesh.faces)} faces, volume {mesh.volume:.3f}")


if __name__ == "__main__":
    main()
