"""Trajectory: what a run returns, as plain numpy arrays, with .npz save/load."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np

from . import io

RECORDABLE = ("x", "v", "F", "C", "Jp")
PRECISIONS = {"f32": np.float32, "f64": np.float64}
log = logging.getLogger(__name__)
UNITS = {"x": "m", "v": "m/s", "F": "1", "C": "1/s", "Jp": "1", "t": "s", "mass": "kg", "volume": "m^dim"}


@dataclasses.dataclass
class Trajectory:
    """Particle states per frame; frame 0 is the state the run started from.

    Attributes:
        x: (frames + 1, n, dim) m positions.
        t: (frames + 1,) s frame times.
        v: (frames + 1, n, dim) m/s velocities, if recorded.
        F: (frames + 1, n, dim, dim) deformation gradients, if recorded.
        C: (frames + 1, n, dim, dim) 1/s APIC affine velocities, if recorded.
        Jp: (frames + 1, n) plastic volume ratios, if recorded.
        body_id, material_id: (n,) indices into body_names, material_names.
        mass: (n,) kg; volume: (n,) m^dim rest volumes.
        meta: dict with dim, grid, dx, frame_dt, substeps (per frame), dt (substep per frame), gravity,
            precision ("f32" | "f64", the solver's), arch.
    A run returns float64 arrays; `save` stores the per-frame ones in the run's precision and `load`
    returns them as stored (float32 from an f32 run).
    """

    x: np.ndarray
    t: np.ndarray
    body_id: np.ndarray
    material_id: np.ndarray
    mass: np.ndarray
    volume: np.ndarray
    body_names: list = dataclasses.field(default_factory=list)
    material_names: list = dataclasses.field(default_factory=list)
    meta: dict = dataclasses.field(default_factory=dict)
    v: np.ndarray | None = None
    F: np.ndarray | None = None
    C: np.ndarray | None = None
    Jp: np.ndarray | None = None

    @property
    def frames(self) -> int:
        """Number of simulated frames (the arrays hold frames + 1 states)."""
        return len(self.t) - 1

    @property
    def dim(self) -> int:
        return self.x.shape[-1]

    @property
    def n_particles(self) -> int:
        return self.x.shape[1]

    def body(self, name: str) -> np.ndarray:
        """Boolean mask (n,) of the particles of the body called `name`."""
        if name not in self.body_names:
            raise KeyError(f"no body {name!r}; bodies are {self.body_names}")
        return self.body_id == self.body_names.index(name)

    def center_of_mass(self, mask: np.ndarray | None = None) -> np.ndarray:
        """(frames + 1, dim) m mass-weighted mean position (of the masked particles)."""
        m = self.mass if mask is None else self.mass[mask]
        x = self.x if mask is None else self.x[:, mask]
        return np.einsum("p,fpd->fd", m, x) / m.sum()

    def file_meta(self) -> dict:
        """What a file of this trajectory carries beside its arrays (the .npz of `save`, the meta.json of
        `export`): meta plus body_names, material_names and the arrays' units."""
        return dict(self.meta, body_names=list(self.body_names), material_names=list(self.material_names),
                    units=dict(UNITS))

    def save(self, path, compress: bool = False, precision: str | None = None) -> Path:
        """Write to `path` (.npz, atomically) and log its size (logger "simcore.trajectory", INFO).

        Args:
            compress: deflate the arrays (np.savez_compressed): smaller, slower to write and read;
                np.load and Trajectory.load read either kind.
            precision: "f32" or "f64" for the per-frame arrays (x, v, F, C, Jp); None: the run's,
                meta["precision"] (float32 from an f32 run: the values the solver computed, exactly,
                in half the bytes), else as they are. t, mass and volume keep their dtype.
        Returns:
            The path written (".npz" appended when missing).
        """
        dtype = self._frame_dtype(precision)
        arrays = {"x": self.x, "t": self.t, "body_id": self.body_id, "material_id": self.material_id,
                  "mass": self.mass, "volume": self.volume}
        for name in RECORDABLE[1:]:
            if getattr(self, name) is not None:
                arrays[name] = getattr(self, name)
        for name in RECORDABLE:
            if name in arrays and dtype is not None and np.issubdtype(arrays[name].dtype, np.floating):
                arrays[name] = np.asarray(arrays[name], dtype=dtype)
        path = io.save_npz(path, arrays, self.file_meta(), compress=compress)
        log.info("wrote %s (%s)", path, io.file_size(path))
        return path

    def _frame_dtype(self, precision):
        if precision is None:
            precision = self.meta.get("precision")
            return PRECISIONS.get(precision) if isinstance(precision, str) else None
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be 'f32', 'f64' or None (the run's), got {precision!r}")
        return PRECISIONS[precision]

    @classmethod
    def load(cls, path) -> "Trajectory":
        """A trajectory written by `save` (compressed or not), with its arrays in the dtype they were
        stored in: float32 from an f32 run saved by default, float64 from an f64 run or an older file."""
        arrays, meta = io.load_npz(path)
        missing = {"x", "t", "body_id", "material_id", "mass", "volume"} - set(arrays)
        if missing:
            raise ValueError(f"{path} is not a simcore trajectory (missing {sorted(missing)})")
        body_names = meta.pop("body_names", [])
        material_names = meta.pop("material_names", [])
        meta.pop("units", None)
        return cls(body_names=body_names, material_names=material_names, meta=meta, **arrays)

    def export(self, directory, format="ply", overwrite: bool = False, frames=None) -> list[Path]:
        """Write per-frame files to `directory`: "ply" (binary PLY), "vtk" (.vtu per frame plus a
        ParaView .pvd time index) or both, and meta.json. A non-empty directory raises FileExistsError
        unless overwrite=True. See simcore.export.export_trajectory."""
        # Imported on first use, as `simcore.export` is: it loads meshio (0.2 s), which `import simcore`
        # does not need. The dependency is one way: export knows nothing of this module.
        from .export import export_trajectory

        return export_trajectory(self, directory, format=format, overwrite=overwrite, frames=frames)

    def truncated(self, frames: int) -> "Trajectory":
        """The first `frames` + 1 states."""
        per_frame = {k: (getattr(self, k)[: frames + 1] if getattr(self, k) is not None else None)
                     for k in ("x", "t") + RECORDABLE[1:]}
        meta = dict(self.meta)
        for key in ("substeps", "dt"):
            if key in meta:
                meta[key] = meta[key][:frames]
        return dataclasses.replace(self, meta=meta, **per_frame)
