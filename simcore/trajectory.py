"""Trajectory: what a run returns, as plain numpy arrays, with .npz save/load."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from . import io

RECORDABLE = ("x", "v", "F", "C", "Jp")
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
        meta: dict with dim, grid, dx, frame_dt, substeps (per frame), dt (substep per frame), gravity.
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

    def save(self, path) -> Path:
        """Write to `path` (.npz, atomically). Returns the path written."""
        arrays = {"x": self.x, "t": self.t, "body_id": self.body_id, "material_id": self.material_id,
                  "mass": self.mass, "volume": self.volume}
        for name in RECORDABLE[1:]:
            if getattr(self, name) is not None:
                arrays[name] = getattr(self, name)
        return io.save_npz(path, arrays, self.file_meta())

    @classmethod
    def load(cls, path) -> "Trajectory":
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
