"""PLY / VTK sequence export (simcore.export): files read back with the libraries viewers use (plyfile,
meshio) hold the trajectory's positions and per-particle data; the .pvd indexes every frame with its
time; existing output is not clobbered; every file is written atomically."""

import ast
import json
import logging
import os
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import meshio
import numpy as np
import pytest
from plyfile import PlyData

import simcore as sc
from simcore import io as sc_io
from simcore.export import export_trajectory


def synthetic(dim=2, frames=3, n=40, velocity=True, seed=0):
    """Two bodies of two materials at random positions and velocities, frame_dt = 0.01 s."""
    rng = np.random.default_rng(seed)
    body_id = np.repeat([0, 1], n // 2)
    return sc.Trajectory(x=rng.random((frames + 1, n, dim)), t=np.arange(frames + 1) * 0.01 + 0.5,
                         body_id=body_id, material_id=1 - body_id, mass=rng.uniform(1e-4, 2e-4, n),
                         volume=np.full(n, 1e-4), body_names=["jelly", "sand"],
                         material_names=["NeoHookean", "DruckerPrager"],
                         meta={"dim": dim, "gravity": [0.0, -9.8, 0.0][:dim], "frame_dt": 0.01},
                         v=rng.normal(size=(frames + 1, n, dim)) if velocity else None)


@pytest.fixture(scope="module")
def traj2d():
    return synthetic(dim=2)


def pad3(a):
    return np.pad(a, ((0, 0), (0, 3 - a.shape[1])))


@pytest.mark.parametrize("dim", [2, 3])
def test_ply_round_trip_has_positions_and_attributes(tmp_path, dim):
    traj = synthetic(dim=dim)
    files = export_trajectory(traj, tmp_path / "out", format="ply")
    assert [f.name for f in files] == [f"frame_{i:04d}.ply" for i in range(4)] + ["meta.json"]
    for i, path in enumerate(files[:-1]):
        ply = PlyData.read(str(path))
        assert ply.header.startswith("ply\nformat binary_little_endian")
        vertex = ply["vertex"]
        xyz = np.stack([vertex["x"], vertex["y"], vertex["z"]], 1)
        vel = np.stack([vertex["vx"], vertex["vy"], vertex["vz"]], 1)
        np.testing.assert_allclose(xyz, pad3(traj.x[i]), rtol=1e-6, atol=1e-7)  # float32 round-off
        np.testing.assert_allclose(vel, pad3(traj.v[i]), rtol=1e-6, atol=1e-6)
        if dim == 2:
            assert np.all(xyz[:, 2] == 0) and np.all(vel[:, 2] == 0)
        np.testing.assert_array_equal(vertex["body_id"], traj.body_id)
        np.testing.assert_array_equal(vertex["material_id"], traj.material_id)
        np.testing.assert_allclose(vertex["mass"], traj.mass, rtol=1e-6)
        assert f"time {float(traj.t[i])!r} s" in ply.comments


def test_ply_opens_as_a_point_cloud_in_trimesh(tmp_path, traj2d):
    """A second, independent PLY reader (the one simcore.shapes.Mesh uses) sees the same points."""
    import trimesh

    cloud = trimesh.load(export_trajectory(traj2d, tmp_path / "out", frames=[2])[0])
    assert isinstance(cloud, trimesh.PointCloud)
    np.testing.assert_allclose(cloud.vertices, pad3(traj2d.x[2]), rtol=1e-6, atol=1e-7)


def test_ply_without_velocity_has_no_velocity_properties(tmp_path):
    traj = synthetic(velocity=False)
    path = export_trajectory(traj, tmp_path / "out", frames=[0])[0]
    names = [p.name for p in PlyData.read(str(path))["vertex"].properties]
    assert names == ["x", "y", "z", "body_id", "material_id", "mass"]


def test_vtu_round_trip_has_positions_and_point_data(tmp_path, traj2d):
    files = export_trajectory(traj2d, tmp_path / "out", format="vtk")
    vtus = [f for f in files if f.suffix == ".vtu"]
    assert len(vtus) == traj2d.frames + 1
    for i, path in enumerate(vtus):
        mesh = meshio.read(path)
        np.testing.assert_array_equal(mesh.points, pad3(traj2d.x[i]))
        assert [c.type for c in mesh.cells] == ["vertex"] and len(mesh.cells[0].data) == traj2d.n_particles
        data = mesh.point_data
        np.testing.assert_array_equal(data["velocity"], pad3(traj2d.v[i]))
        np.testing.assert_allclose(data["speed"], np.linalg.norm(traj2d.v[i], axis=1), rtol=1e-15)
        np.testing.assert_array_equal(data["body_id"], traj2d.body_id)
        np.testing.assert_array_equal(data["material_id"], traj2d.material_id)
        np.testing.assert_array_equal(data["mass"], traj2d.mass)


def test_pvd_lists_every_frame_with_its_time(tmp_path, traj2d):
    files = export_trajectory(traj2d, tmp_path / "out", format=["ply", "vtk"])
    pvd = tmp_path / "out" / "trajectory.pvd"
    assert pvd in files
    root = ET.parse(pvd).getroot()
    assert root.tag == "VTKFile" and root.get("type") == "Collection"
    datasets = root.find("Collection").findall("DataSet")
    assert [d.get("file") for d in datasets] == [f"frame_{i:04d}.vtu" for i in range(traj2d.frames + 1)]
    assert [float(d.get("timestep")) for d in datasets] == traj2d.t.tolist()
    assert all((pvd.parent / d.get("file")).is_file() for d in datasets)


def test_frame_subset_keeps_trajectory_indices_and_times(tmp_path, traj2d):
    files = export_trajectory(traj2d, tmp_path / "out", format="vtk", frames=[1, -1])
    assert [f.name for f in files] == ["frame_0001.vtu", "frame_0003.vtu", "trajectory.pvd", "meta.json"]
    datasets = ET.parse(files[2]).getroot().find("Collection").findall("DataSet")
    assert [float(d.get("timestep")) for d in datasets] == [traj2d.t[1], traj2d.t[3]]
    np.testing.assert_array_equal(meshio.read(files[1]).points, pad3(traj2d.x[3]))


def test_meta_json_carries_names_units_and_exported_frames(tmp_path, traj2d):
    export_trajectory(traj2d, tmp_path / "out", frames=range(2))
    meta = json.loads((tmp_path / "out" / "meta.json").read_text())
    assert meta["body_names"] == ["jelly", "sand"]
    assert meta["material_names"] == ["NeoHookean", "DruckerPrager"]
    assert meta["units"]["x"] == "m" and meta["units"]["v"] == "m/s"
    assert meta["gravity"] == [0.0, -9.8]
    assert meta["export"]["frames"] == [0, 1] and meta["export"]["times"] == traj2d.t[:2].tolist()
    assert meta["export"]["field_units"]["mass"] == "kg"


def test_nonempty_directory_is_not_clobbered_without_overwrite(tmp_path, traj2d):
    out = tmp_path / "out"
    export_trajectory(traj2d, out, format=["ply", "vtk"])
    (out / "notes.txt").write_text("mine")
    before = (out / "frame_0000.ply").read_bytes()
    with pytest.raises(FileExistsError, match="overwrite=True"):
        export_trajectory(synthetic(seed=1), out)
    assert (out / "frame_0000.ply").read_bytes() == before
    # overwrite=True replaces the export (a shorter one: stale frames go) and keeps unrelated files.
    short = synthetic(seed=1, frames=1)
    files = export_trajectory(short, out, format="ply", overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == ["frame_0000.ply", "frame_0001.ply", "meta.json",
                                                      "notes.txt"]
    assert sorted(files) == sorted(p for p in out.iterdir() if p.name != "notes.txt")
    xyz = PlyData.read(str(out / "frame_0001.ply"))["vertex"]["x"]
    np.testing.assert_allclose(xyz, short.x[1, :, 0], rtol=1e-6)


def test_empty_existing_directory_is_fine(tmp_path, traj2d):
    (tmp_path / "out").mkdir()
    assert len(export_trajectory(traj2d, tmp_path / "out", frames=[0])) == 2


def test_a_failed_write_leaves_no_partial_file(tmp_path, traj2d, monkeypatch):
    def broken_write(self, stream):
        stream.write(b"ply\nformat binary_little_endian 1.0\n")  # half a header, then the disk fills up
        raise OSError("No space left on device")

    monkeypatch.setattr(PlyData, "write", broken_write)
    with pytest.raises(OSError, match="No space"):
        export_trajectory(traj2d, tmp_path / "out", format="ply")
    assert os.listdir(tmp_path / "out") == []


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(format="obj"), ValueError, "unknown export format"),
    (dict(format=["ply", "csv"]), ValueError, "unknown export format"),
    (dict(frames=[4]), ValueError, r"frame 4 is out of range: the trajectory has frames 0 … 3"),
    (dict(frames=[]), ValueError, "frames is empty"),
    (dict(frames=[0.5]), ValueError, "integer frame indices"),
])
def test_bad_arguments_say_what_to_do(tmp_path, traj2d, kwargs, error, match):
    with pytest.raises(error, match=match):
        export_trajectory(traj2d, tmp_path / "out", **kwargs)
    assert not (tmp_path / "out").exists()  # checked before anything is created


def test_a_path_instead_of_a_trajectory_says_how_to_load_it(tmp_path):
    with pytest.raises(TypeError, match=r"Trajectory\.load"):
        export_trajectory("out/jelly.npz", tmp_path / "out")


def test_something_else_than_a_trajectory_is_refused(tmp_path):
    with pytest.raises(TypeError, match=r"expected a simcore\.Trajectory, got dict"):
        export_trajectory({"x": np.zeros((2, 3, 2))}, tmp_path / "out")


def test_trajectory_export_writes_what_export_trajectory_writes(tmp_path, traj2d):
    """Trajectory.export is export_trajectory; its meta.json carries what Trajectory.save's .npz does."""
    files = traj2d.export(tmp_path / "a", format=["ply", "vtk"], frames=[0, -1])
    expected = export_trajectory(traj2d, tmp_path / "b", format=["ply", "vtk"], frames=[0, -1])
    assert [f.name for f in files] == [f.name for f in expected]
    for a, b in zip(files, expected):
        assert a.read_bytes() == b.read_bytes()
    meta = json.loads((tmp_path / "a" / "meta.json").read_text())
    _, saved = sc_io.load_npz(traj2d.save(tmp_path / "t.npz"))
    assert {k: v for k, v in meta.items() if k != "export"} == saved


def test_export_does_not_import_trajectory():
    """Layering: Trajectory.export calls into simcore.export, so export must not import simcore.trajectory
    (an import cycle)."""
    tree = ast.parse(Path(export_trajectory.__code__.co_filename).read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {alias.name for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))
                 for alias in node.names}
    assert not {"trajectory", "simcore.trajectory"} & imported


def test_output_path_that_is_a_file_is_refused(tmp_path, traj2d):
    (tmp_path / "out").write_text("")
    with pytest.raises(FileExistsError, match="is a file"):
        export_trajectory(traj2d, tmp_path / "out")


@pytest.fixture(scope="module")
def f32_run():
    """5 frames of a 2D jelly on the f32 CPU backend, with v and F recorded."""
    sc.init("cpu", "f32")
    scene = sc.Scene(dim=2, grid=24)
    scene.add_body(sc.shapes.Box(center=(0.5, 0.5), size=(0.2, 0.2)), sc.materials.NeoHookean(E=1e4),
                   name="jelly")
    return scene.run(frames=5, frame_dt=0.01, record=("v", "F"))


def test_real_scene_saved_loaded_and_exported(tmp_path, f32_run):
    """A run of the engine, through the canonical .npz, exports what it computed."""
    traj = sc.Trajectory.load(f32_run.save(tmp_path / "jelly.npz"))
    files = export_trajectory(traj, tmp_path / "out", format=["ply", "vtk"])
    assert len(files) == 2 * 6 + 2
    last = meshio.read(tmp_path / "out" / "frame_0005.vtu")
    np.testing.assert_array_equal(last.points[:, :2], traj.x[5])
    assert not np.allclose(traj.x[5], traj.x[0])  # it fell: the export is not of the initial state
    ply = PlyData.read(str(tmp_path / "out" / "frame_0005.ply"))["vertex"]
    np.testing.assert_allclose(ply["vy"], traj.v[5, :, 1], rtol=1e-6, atol=1e-7)
    meta = json.loads((tmp_path / "out" / "meta.json").read_text())
    assert meta["body_names"] == ["jelly"] and meta["material_names"] == [traj.material_names[0]]
    assert meta["frame_dt"] == 0.01 and meta["export"]["times"] == traj.t.tolist()


def test_atomic_path_removes_the_temporary_on_failure(tmp_path):
    with pytest.raises(RuntimeError):
        with sc_io.atomic_path(tmp_path / "a.vtu") as tmp:
            assert tmp.suffix == ".vtu" and tmp.parent == tmp_path
            tmp.write_text("partial")
            raise RuntimeError("writer failed")
    assert os.listdir(tmp_path) == []


# ----------------------------------------------------------------------------------------------
# Trajectory files: precision, compression, size
# ----------------------------------------------------------------------------------------------
def stored(path) -> dict:
    with np.load(path) as data:
        return {k: data[k] for k in data.files if k != "__meta__"}


def test_an_f32_run_is_saved_in_float32_exactly(tmp_path, f32_run):
    assert f32_run.meta["precision"] == "f32"
    path = f32_run.save(tmp_path / "run.npz")
    arrays = stored(path)
    assert {arrays[k].dtype for k in ("x", "v", "F")} == {np.dtype(np.float32)}
    assert arrays["t"].dtype == np.float64 and arrays["body_id"].dtype == f32_run.body_id.dtype
    loaded = sc.Trajectory.load(path)
    for name in ("x", "v", "F"):   # the solver's float32 values, not rounded again
        assert getattr(loaded, name).dtype == np.float32
        np.testing.assert_array_equal(getattr(loaded, name), getattr(f32_run, name))
    full = f32_run.save(tmp_path / "full.npz", precision="f64")
    assert stored(full)["x"].dtype == np.float64
    saved_bytes = 4 * sum(getattr(f32_run, name).size for name in ("x", "v", "F"))   # 8 − 4 per value
    assert full.stat().st_size - path.stat().st_size == pytest.approx(saved_bytes, abs=100)


def test_compressed_files_are_smaller_and_load_identically(tmp_path, f32_run):
    plain = f32_run.save(tmp_path / "plain.npz")
    packed = f32_run.save(tmp_path / "packed.npz", compress=True)
    assert packed.stat().st_size < 0.9 * plain.stat().st_size
    with zipfile.ZipFile(packed) as archive:
        assert {info.compress_type for info in archive.infolist()} == {zipfile.ZIP_DEFLATED}
    a, b = sc.Trajectory.load(plain), sc.Trajectory.load(packed)
    for name in ("x", "t", "v", "F", "body_id", "material_id", "mass", "volume"):
        assert getattr(a, name).dtype == getattr(b, name).dtype
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert a.meta == b.meta and a.body_names == b.body_names
    assert sorted(os.listdir(tmp_path)) == ["packed.npz", "plain.npz"]   # atomic: no temporaries left


def test_an_old_float64_file_still_loads(tmp_path, traj2d):
    """Files written before the precision change: every array float64, uncompressed, with __meta__."""
    path = tmp_path / "old.npz"
    arrays = {k: np.asarray(getattr(traj2d, k), dtype=np.float64) for k in ("x", "t", "v", "mass", "volume")}
    np.savez(path, __meta__=np.array(json.dumps(dict(traj2d.file_meta(), precision="f32"))),
             body_id=traj2d.body_id, material_id=traj2d.material_id, **arrays)
    loaded = sc.Trajectory.load(path)
    assert loaded.x.dtype == np.float64 and loaded.body_names == traj2d.body_names
    np.testing.assert_array_equal(loaded.x, traj2d.x)
    np.testing.assert_array_equal(loaded.v, traj2d.v)


def test_precision_is_checked_and_a_trajectory_without_one_is_kept_as_is(tmp_path, traj2d):
    with pytest.raises(ValueError, match="precision must be 'f32', 'f64'"):
        traj2d.save(tmp_path / "a.npz", precision="half")
    assert os.listdir(tmp_path) == []
    assert "precision" not in traj2d.meta
    assert stored(traj2d.save(tmp_path / "b.npz"))["x"].dtype == np.float64


def test_save_logs_the_path_and_size(tmp_path, traj2d, caplog):
    with caplog.at_level(logging.INFO, logger="simcore.trajectory"):
        path = traj2d.save(tmp_path / "a.npz")
    assert f"wrote {path} ({sc_io.file_size(path)})" in caplog.text
    assert sc_io.file_size(path).endswith(" kB")
    assert [sc_io.file_size(p) for p in _sized(tmp_path, [999, 1000, 377_123_456, 2 * 10**9])] == \
        ["999 B", "1.0 kB", "377.1 MB", "2.0 GB"]


def _sized(directory, sizes):
    paths = []
    for k, size in enumerate(sizes):
        path = directory / f"sized_{k}"
        with open(path, "wb") as handle:
            handle.truncate(size)   # sparse: no disk space used
        paths.append(path)
    return paths


def test_cli_compress_flag_reaches_the_saved_file(tmp_path, traj2d):
    from simcore import cli

    assert cli.build_parser().parse_args(["run", "--compress"]).compress is True
    assert cli.build_parser().parse_args(["run"]).compress is False
    (path,) = cli._write_outputs(traj2d, None, "jelly", tmp_path, ["npz"], compress=True)
    with zipfile.ZipFile(path) as archive:
        assert {info.compress_type for info in archive.infolist()} == {zipfile.ZIP_DEFLATED}
