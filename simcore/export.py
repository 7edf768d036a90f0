"""Trajectory → per-frame files for external viewers: binary PLY point clouds (plyfile) and VTK
unstructured grids (meshio .vtu) with a ParaView .pvd time index.

    export_trajectory(traj, "out/jelly", format=["ply", "vtk"])
    # out/jelly/frame_0000.ply … frame_0100.ply, frame_0000.vtu …, trajectory.pvd, meta.json

Files are named by trajectory frame index (frame_0007 is traj.x[7], at time traj.t[7]), every file is
written atomically (simcore.io.atomic_write), and meta.json carries what the .npz meta carries (body and
material names, units, run settings) plus which frames were exported.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import meshio
import numpy as np
from plyfile import PlyData, PlyElement

from .io import atomic_path, atomic_write
from .progress import Progress

FORMATS = ("ply", "vtk")
PVD_NAME = "trajectory.pvd"
META_NAME = "meta.json"
# Units of the per-particle fields written to PLY and VTU files.
FIELD_UNITS = {"x": "m", "y": "m", "z": "m", "vx": "m/s", "vy": "m/s", "vz": "m/s", "velocity": "m/s",
               "speed": "m/s", "mass": "kg", "body_id": "index into body_names",
               "material_id": "index into material_names", "time": "s"}
# What an earlier export may have left that this one replaces (see _remove_stale).
_OWN_FILE = re.compile(r"frame_\d+\.(ply|vtu)")
# What check_trajectory asks of a trajectory. This module takes a simcore.Trajectory by these attributes, not
# by type: Trajectory.export calls into it, so it does not import simcore.trajectory.
TRAJECTORY_ATTRIBUTES = ("x", "t", "v", "body_id", "material_id", "mass", "body_names", "material_names", "meta",
                         "file_meta")


def export_trajectory(traj, directory, format="ply", overwrite: bool = False, frames=None) -> list[Path]:
    """Write `traj` as a sequence of per-frame files in `directory`.

    Args:
        traj: a simcore.Trajectory (x: (frames + 1, n, dim) m; v: (frames + 1, n, dim) m/s if recorded).
        directory: output folder; created if missing.
        format: "ply", "vtk" or a list of both.
            "ply": binary little-endian PLY per frame, frame_NNNN.ply, one `vertex` element with float32
                x, y, z (m; z = 0 in 2D), vx, vy, vz (m/s, only if traj.v is recorded), int32 body_id,
                int32 material_id, float32 mass (kg); the frame time is a header comment "time <t> s".
            "vtk": frame_NNNN.vtu per frame (float64 points (n, 3) m, one vertex cell per particle,
                point data body_id, material_id, mass kg, and velocity (n, 3) m/s and speed (n,) m/s if
                recorded) plus trajectory.pvd, the time index ParaView opens as one time series.
        overwrite: replace the files of an earlier export in a non-empty `directory`. Frame files
            (frame_NNNN.ply/.vtu), trajectory.pvd and meta.json that this export does not rewrite are
            removed, so a shorter re-export leaves no stale frames; other files are left alone.
        frames: trajectory frame indices to write (a sequence of ints, a range, negative counts from
            the end); None: all frames 0 … traj.frames.
    Returns:
        The paths written: frame files in frame order, then trajectory.pvd (vtk), then meta.json.
    Raises:
        FileExistsError: `directory` is non-empty and overwrite is False, or it is a file.
        ValueError: an unknown format or a frame index out of range.
    """
    check_trajectory(traj)
    formats = parse_formats(format)
    indices = select_frames(traj, frames)
    directory = prepare_directory(directory, overwrite)
    width = max(4, len(str(traj.frames)))
    written = []
    vtu_files = []
    with Progress(len(indices), "frame") as bar:  # a bar on a terminal, periodic lines elsewhere
        for i in indices:
            stem = f"frame_{i:0{width}d}"
            if "ply" in formats:
                written.append(write_ply(directory / f"{stem}.ply", traj, i))
            if "vtk" in formats:
                vtu_files.append(write_vtu(directory / f"{stem}.vtu", traj, i))
                written.append(vtu_files[-1])
            bar.update()
    if "vtk" in formats:
        written.append(write_pvd(directory / PVD_NAME, vtu_files, [float(traj.t[i]) for i in indices]))
    written.append(write_meta(directory / META_NAME, traj, indices, formats))
    _remove_stale(directory, written)
    return written


# ----------------------------------------------------------------------------------------------
# Arguments
# ----------------------------------------------------------------------------------------------
def check_trajectory(traj):
    if isinstance(traj, (str, Path)):
        raise TypeError(f"expected a simcore.Trajectory, got the path {str(traj)!r}; "
                        "load it first with simcore.Trajectory.load(path)")
    if not all(hasattr(traj, name) for name in TRAJECTORY_ATTRIBUTES):
        raise TypeError(f"expected a simcore.Trajectory, got {type(traj).__name__}")
    if traj.x.ndim != 3 or traj.dim not in (2, 3) or len(traj.x) != len(traj.t):
        raise ValueError(f"trajectory x must be (frames + 1, n, 2 or 3) with one time per frame; got x "
                         f"{traj.x.shape} and t {traj.t.shape}")


def parse_formats(format) -> tuple[str, ...]:
    """("ply",), ("vtk",) or both, from "ply" | "vtk" | a list of them."""
    requested = [format] if isinstance(format, str) else list(format)
    unknown = [f for f in requested if not isinstance(f, str) or f.lower() not in FORMATS]
    if unknown or not requested:
        raise ValueError(f"unknown export format {unknown or format!r}: choose 'ply', 'vtk' or "
                         "['ply', 'vtk']")
    return tuple(f for f in FORMATS if f in {r.lower() for r in requested})


def select_frames(traj, frames=None) -> list[int]:
    """Trajectory frame indices in [0, traj.frames] from None (all), an int, a range or a sequence of
    ints; negative indices count from the end as in numpy."""
    count = len(traj.t)
    if frames is None:
        return list(range(count))
    requested = [frames] if isinstance(frames, (int, np.integer)) else list(frames)
    if not requested:
        raise ValueError("frames is empty: pass None for all frames or a list of frame indices")
    out = []
    for f in requested:
        if not isinstance(f, (int, np.integer)) or isinstance(f, bool):
            raise ValueError(f"frames must be integer frame indices, got {f!r}")
        if not -count <= f < count:
            raise ValueError(f"frame {f} is out of range: the trajectory has frames 0 … {count - 1}")
        out.append(int(f) % count)
    return out


def prepare_directory(directory, overwrite: bool) -> Path:
    """Create `directory`, or refuse to write into a non-empty one unless `overwrite`."""
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise FileExistsError(f"{directory} is a file, not a directory; choose another output directory")
    if directory.is_dir() and any(directory.iterdir()) and not overwrite:
        raise FileExistsError(f"{directory} already exists and is not empty; pass overwrite=True "
                              "(CLI: --overwrite) to replace its export files, or choose a new directory")
    directory.mkdir(parents=True, exist_ok=True)
    return directory


# ----------------------------------------------------------------------------------------------
# Per-frame data
# ----------------------------------------------------------------------------------------------
def _pad3(a: np.ndarray) -> np.ndarray:
    """(n, dim) → (n, 3), zero-filling z in 2D."""
    return np.pad(a, ((0, 0), (0, 3 - a.shape[1])))


def frame_fields(traj, i: int) -> dict[str, np.ndarray]:
    """Per-particle fields of frame i: points (n, 3) m, and body_id, material_id (n,), mass (n,) kg,
    velocity (n, 3) m/s and speed (n,) m/s when traj.v is recorded."""
    fields = {"points": _pad3(traj.x[i]), "body_id": traj.body_id, "material_id": traj.material_id,
              "mass": traj.mass}
    if traj.v is not None:
        fields["velocity"] = _pad3(traj.v[i])
        fields["speed"] = np.linalg.norm(traj.v[i], axis=1)
    return fields


def write_ply(path: Path, traj, i: int) -> Path:
    """Frame i as a binary PLY point cloud (see export_trajectory for the layout)."""
    fields = frame_fields(traj, i)
    columns = [("x", fields["points"][:, 0]), ("y", fields["points"][:, 1]), ("z", fields["points"][:, 2])]
    if "velocity" in fields:
        columns += [(name, fields["velocity"][:, a]) for a, name in enumerate(("vx", "vy", "vz"))]
    columns += [("body_id", fields["body_id"]), ("material_id", fields["material_id"]),
                ("mass", fields["mass"])]
    dtypes = {"body_id": "i4", "material_id": "i4"}
    vertex = np.empty(traj.n_particles, dtype=[(name, dtypes.get(name, "f4")) for name, _ in columns])
    for name, values in columns:
        vertex[name] = values
    comments = [f"simcore trajectory frame {i}", f"time {float(traj.t[i])!r} s",
                "units: x y z m, vx vy vz m/s, mass kg; body_id and material_id index meta.json names"]
    with atomic_write(path) as handle:
        PlyData([PlyElement.describe(vertex, "vertex")], text=False, byte_order="<",
                comments=comments).write(handle)
    return path


def write_vtu(path: Path, traj, i: int) -> Path:
    """Frame i as a VTK unstructured grid of vertex cells (see export_trajectory for the fields)."""
    fields = frame_fields(traj, i)
    points = fields.pop("points")
    point_data = {name: (values.astype(np.int32) if name.endswith("_id") else values.astype(np.float64))
                  for name, values in fields.items()}
    mesh = meshio.Mesh(points.astype(np.float64), [("vertex", np.arange(len(points)).reshape(-1, 1))],
                       point_data=point_data)
    with atomic_path(path) as tmp:  # meshio's XML writer opens the file by name
        meshio.write(tmp, mesh, file_format="vtu")
    return path


# ----------------------------------------------------------------------------------------------
# Indexes
# ----------------------------------------------------------------------------------------------
def write_pvd(path: Path, files: list[Path], times: list[float]) -> Path:
    """ParaView collection: one DataSet per file with its time (s); file names relative to `path`."""
    root = ET.Element("VTKFile", type="Collection", version="0.1", byte_order="LittleEndian")
    collection = ET.SubElement(root, "Collection")
    for file, t in zip(files, times):
        ET.SubElement(collection, "DataSet", timestep=repr(float(t)), group="", part="0",
                      file=Path(file).name)
    tree = ET.ElementTree(root)
    ET.indent(tree)
    with atomic_write(path) as handle:
        tree.write(handle, encoding="utf-8", xml_declaration=True)
    return path


def _json_value(value):
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} to meta.json")


def write_meta(path: Path, traj, indices: list[int], formats) -> Path:
    """meta.json: the trajectory's .npz meta (run settings, body_names, material_names, units) and an
    "export" section listing the frames, their times (s), the formats and the per-file field units."""
    meta = traj.file_meta()
    meta["export"] = {"frames": list(indices), "times": [float(traj.t[i]) for i in indices],
                      "formats": list(formats), "n_particles": traj.n_particles,
                      "velocity": traj.v is not None, "field_units": FIELD_UNITS}
    with atomic_write(path, "w") as handle:
        json.dump(meta, handle, indent=2, default=_json_value)
    return path


def _remove_stale(directory: Path, written: list[Path]):
    """Delete export files of an earlier, different export (frame files, .pvd, meta.json) that this
    export did not rewrite, so viewers that glob frame_*.ply do not mix two exports."""
    keep = {p.name for p in written}
    for path in directory.iterdir():
        own = _OWN_FILE.fullmatch(path.name) or path.name in (PVD_NAME, META_NAME)
        if own and path.name not in keep and path.is_file():
            path.unlink()
