"""Every scripted scene builds and runs at a small resolution, producing a finite trajectory."""

import numpy as np
import pytest

import simcore as sc
from simcore import scenes

SMALL = {"jelly_drop": dict(grid=24), "dam_break": dict(grid=32), "sand_collapse": dict(grid=32),
         "snowball": dict(grid=32), "plasticine_press": dict(grid=24), "mesh_drop": dict(grid=24, size=0.3)}


@pytest.mark.parametrize("name", scenes.NAMES)
def test_scene_runs(cpu32, name):
    module = scenes.load(name)
    scene = module.build(**SMALL[name])
    traj = scene.run(frames=8, frame_dt=module.FRAME_DT)
    assert np.isfinite(traj.x).all()
    assert np.abs(traj.x[-1] - traj.x[0]).max() > 1e-3  # something moved
    scene.close()


def test_plasticine_press_flattens_block(cpu32):
    """The kinematic press squeezes the plasticine: it ends lower and wider (permanent deformation)."""
    scene = scenes.load("plasticine_press").build(grid=24)
    traj = scene.run(frames=45, frame_dt=1 / 60)
    h0, h1 = np.ptp(traj.x[0, :, 1]), np.ptp(traj.x[-1, :, 1])
    w0, w1 = np.ptp(traj.x[0, :, 0]), np.ptp(traj.x[-1, :, 0])
    assert h1 < 0.8 * h0 and w1 > 1.1 * w0


def test_mesh_shape_errors():
    import trimesh

    with pytest.raises(ValueError, match="not watertight"):
        box = trimesh.creation.box()
        box.faces = box.faces[:-2]
        sc.shapes.Mesh(box)
    with pytest.raises(ValueError, match="cannot read mesh"):
        sc.shapes.Mesh("assets/does_not_exist.obj")


def test_mesh_fills_its_volume(cpu32):
    """Particles fill a mesh to its volume (lattice sampling at 2 particles per cell per axis)."""
    scene = sc.Scene(dim=3, grid=48)
    body = scene.add_body(sc.shapes.Mesh("assets/torus.obj", center=(0.5, 0.5, 0.5), size=0.5), sc.materials.Fluid())
    mesh = body.shape.mesh
    assert body.volume.sum() == pytest.approx(mesh.volume, rel=0.03)
    assert mesh.contains(body.x).all()


def test_unknown_scene_parameter():
    with pytest.raises(ValueError, match="has no parameter 'gird'"):
        scenes.load("dam_break").build(gird=3)
