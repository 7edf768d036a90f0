"""The dataset layout on disk, its atomic writers and its reader.

A dataset is a directory DIR that is a Zarr group:

    DIR/                      root attrs {"simcore_dataset": 1, "family", "options", "seed", "count", "frames",
                              "dim", "precision", "arch", "engine": {"simcore", "taichi", "torch", "numpy"}}
      traj_000000/            one group per finished trajectory, attrs {"index", "seed", "params", "frame_dt",
                              "substeps_per_frame", "n_particles", "body_names", "material_names", "status": "ok"}
        x, v                  (frames + 1, n, dim) float32, m and m/s; frame 0 is the initial state
        material_id, body_id  (n,) int32: index into the attrs' material_names / body_names
        kind                  (n,) int32: simcore material kind code (simcore.materials)
        particle_params       (n, P) float32, attrs {"names": PARAM_NAMES}: density kg/m^dim, mu and lam Pa
                              (a fluid's mu is its viscosity Pa·s, lam its bulk modulus), plastic0..2 (the
                              material's plasticity constants as simcore.mpm.model.Model holds them)
      failures/traj_000007/   a trajectory that raised SimulationError: attrs {"index", "seed", "params",
                              "error", "error_type", "frame", "substep"}
      .tmp-*                  a write in progress (or left by a killed job): never read
      .lock                   held by the job writing the dataset (store.writer_lock)
      normalization/<key>/    training-split statistics (simcore.learned.data.torch_dataset), a Zarr group's attrs

Trajectory i was generated from `numpy.random.default_rng([seed, i])`; its attrs' "seed" is that list.

Atomicity: a trajectory is written in full under a temporary name inside DIR and then renamed to
traj_%06d (rename is atomic on a POSIX file system), so a reader and a resumed job see either the whole
trajectory or none of it. The group's attrs, with "status": "ok", are written after every array: on a store
without rename (object storage), that attribute is the completion marker, and the reader ignores a group
without it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import uuid
from importlib import metadata
from pathlib import Path

import numpy as np

FORMAT_KEY = "simcore_dataset"
FORMAT_VERSION = 1
TRAJECTORY = "traj_%06d"
FAILURES = "failures"
TEMPORARY = ".tmp-"
LOCK = ".lock"
PARAM_NAMES = ("density", "mu", "lam", "plastic0", "plastic1", "plastic2")
_TRAJECTORY_NAME = re.compile(r"^traj_(\d{6,})$")
_ARRAYS = ("x", "v", "material_id", "body_id", "kind", "particle_params")
CHUNK_BYTES = 1 << 20  # x and v are chunked by runs of whole frames of about 1 MiB: a window of frames is one read


class DatasetError(ValueError):
    """A directory that is not a simcore dataset, is corrupted, or does not match the generation asked for."""


def engine_versions() -> dict:
    """The versions of the packages that produced the data (without importing them)."""
    out = {}
    for name in ("simcore", "taichi", "torch", "numpy"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


# ----------------------------------------------------------------------------------------------
# Zarr 2.18+ and 3.x
# ----------------------------------------------------------------------------------------------
def _zarr():
    import zarr

    return zarr


def _create_array(group, name: str, data: np.ndarray, chunks, fill_value=None):
    if hasattr(group, "create_array"):  # zarr 3
        return group.create_array(name, data=data, chunks=chunks, fill_value=fill_value)
    return group.create_dataset(name, data=data, chunks=chunks, fill_value=fill_value)  # zarr 2


def _has_group_metadata(path: Path) -> bool:
    return (path / "zarr.json").is_file() or (path / ".zgroup").is_file()


def _open_group(path: Path, what: str):
    """The Zarr group at `path`, read-only, or a DatasetError naming the path."""
    if not _has_group_metadata(path):
        raise DatasetError(f"{path} is not {what}: it holds no Zarr group metadata (zarr.json or .zgroup)")
    zarr = _zarr()
    if not (path / ".zgroup").is_file() and int(zarr.__version__.split(".")[0]) < 3:
        raise DatasetError(f"{path} is in the Zarr 3 format, which zarr-python {zarr.__version__} cannot read: "
                           "pip install 'zarr>=3'")
    try:
        return zarr.open_group(str(path), mode="r")
    except Exception as exc:  # zarr raises many types for unreadable metadata (JSON, schema, version)
        raise DatasetError(f"{path} is not {what}: its Zarr metadata cannot be read ({type(exc).__name__}: "
                           f"{exc})") from exc


def _json_able(value):
    """`value` as JSON would give it back (tuples as lists), so that written and re-read attrs compare equal."""
    return json.loads(json.dumps(value))


def _frame_chunks(frames: int, n: int, dim: int) -> tuple[int, int, int]:
    per_frame = max(n * dim * 4, 1)
    return (int(min(max(CHUNK_BYTES // per_frame, 1), frames + 1)), max(n, 1), dim)


# ----------------------------------------------------------------------------------------------
# Writing (simcore.learned.data.generate)
# ----------------------------------------------------------------------------------------------
def prepare(path, attrs: dict) -> Path:
    """Create the dataset DIR with root `attrs` (FORMAT_KEY added), or check that an existing one was made
    by the same generation (family, options, seed, frames, dim, precision, arch) so that it can be resumed.
    A larger `count` than recorded extends the dataset (the record is updated); a smaller one is refused.

    The root is created under a temporary name beside DIR and renamed into place, so that a job killed
    while creating it leaves no half-made dataset. A writer then holds `writer_lock(DIR)`.

    Raises:
        DatasetError: DIR holds other files, or a dataset made with other settings.
    """
    path = Path(path)
    attrs = _json_able({FORMAT_KEY: FORMAT_VERSION, **attrs})
    if path.exists() and not path.is_dir():
        raise DatasetError(f"{path} exists and is not a directory; choose another output directory")
    if path.is_dir() and any(path.iterdir()):
        try:
            root = open_dataset(path)
        except DatasetError as exc:
            raise DatasetError(f"{exc}; to generate a dataset, choose a new or empty output directory") from None
        _check_resumable(path, root.attrs, attrs)
        if attrs["count"] > root.attrs["count"]:
            group = _zarr().open_group(str(path), mode="r+")
            group.attrs.update({"count": attrs["count"]})
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.parent / f"{TEMPORARY}{path.name}-{uuid.uuid4().hex}"
    try:
        root = _zarr().open_group(str(temporary), mode="w")
        root.attrs.update(attrs)
        root.require_group(FAILURES)
        os.replace(temporary, path)  # onto a missing or empty directory: atomic
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    return path


def _check_resumable(path: Path, have: dict, want: dict) -> None:
    for key in ("family", "options", "seed", "frames", "dim", "precision", "arch"):
        if have.get(key) != want.get(key):
            raise DatasetError(f"{path} holds a dataset made with {key}={have.get(key)!r}, but this run asks for "
                               f"{key}={want.get(key)!r}; re-run with the same settings to resume it, or choose "
                               "another output directory")
    if want["count"] < have["count"]:
        raise DatasetError(f"{path} holds a dataset of {have['count']} trajectories; ask for count >= "
                           f"{have['count']} to resume or extend it (open_dataset reads any prefix)")


@contextlib.contextmanager
def writer_lock(path):
    """Hold the dataset's writer lock (DIR/.lock, an advisory POSIX lock that the system releases when the
    process ends, however it ends) and remove the temporaries a killed job left in DIR. One job writes a
    dataset at a time; where there is no fcntl (Windows), nothing is locked.

    Raises:
        DatasetError: another live process holds the lock.
    """
    path = Path(path)
    try:
        import fcntl
    except ImportError:  # not POSIX
        fcntl = None
    with open(path / LOCK, "a+") as handle:
        if fcntl is not None:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                handle.seek(0)
                raise DatasetError(f"another job is writing {path} (process {handle.read().strip() or '?'}); wait "
                                   "for it to end, or stop it, then run this again to resume") from None
        handle.truncate(0)
        handle.write(str(os.getpid()))
        handle.flush()
        for entry in path.iterdir():  # no writer is alive: these are the leftovers of a killed one
            if entry.name.startswith(TEMPORARY):
                shutil.rmtree(entry, ignore_errors=True)
        yield


def finished_indices(path) -> set[int]:
    """Indices of the trajectories DIR holds, finished or recorded as failed (a resumed job skips them)."""
    path = Path(path)
    done = set()
    for folder in (path, path / FAILURES):
        if folder.is_dir():
            for entry in folder.iterdir():
                match = _TRAJECTORY_NAME.match(entry.name)
                if match and _has_group_metadata(entry):
                    done.add(int(match.group(1)))
    return done


def _write_group(path: Path, final: Path, fill) -> int:
    """Write a group under a temporary name inside dataset `path` with `fill(group)`, then rename it to
    `final`. Returns bytes written. If `final` exists (another writer finished the same trajectory first:
    generation is deterministic, so it is the same data) the new copy is discarded."""
    temporary = path / f"{TEMPORARY}{final.name}-{uuid.uuid4().hex}"
    try:
        group = _zarr().open_group(str(temporary), mode="w")
        fill(group)
        size = directory_bytes(temporary)
        try:
            os.rename(temporary, final)
        except OSError:
            if not _has_group_metadata(final):
                raise
        return size
    finally:
        shutil.rmtree(temporary, ignore_errors=True)


def write_trajectory(path, index: int, *, x: np.ndarray, v: np.ndarray, material_id: np.ndarray,
                     body_id: np.ndarray, kind: np.ndarray, particle_params: np.ndarray, attrs: dict) -> int:
    """Write trajectory `index` into dataset `path` atomically (see the module docstring).

    x, v: (frames + 1, n, dim) m, m/s (stored float32); material_id, body_id, kind: (n,) (int32);
    particle_params: (n, len(PARAM_NAMES)) (float32); attrs: the trajectory's attrs ("status" is added last).
    Returns the bytes written.
    """
    path = Path(path)
    x, v = np.asarray(x, np.float32), np.asarray(v, np.float32)
    if x.ndim != 3 or x.shape != v.shape:
        raise ValueError(f"x and v must both be (frames + 1, n, dim), got {x.shape} and {v.shape}")
    chunks = _frame_chunks(x.shape[0] - 1, x.shape[1], x.shape[2])
    n = x.shape[1]
    per_particle = {"material_id": material_id, "body_id": body_id, "kind": kind}

    def fill(group):
        # NaN where nothing was stored: a lost chunk reads as NaN (Dataset.verify finds it), never as zeros.
        _create_array(group, "x", x, chunks, fill_value=np.nan)
        _create_array(group, "v", v, chunks, fill_value=np.nan)
        for name, values in per_particle.items():
            _create_array(group, name, np.asarray(values, np.int32).reshape(n), (max(n, 1),), fill_value=-1)
        params = _create_array(group, "particle_params", np.asarray(particle_params, np.float32).reshape(n, -1),
                               (max(n, 1), len(PARAM_NAMES)), fill_value=np.nan)
        params.attrs.update({"names": list(PARAM_NAMES)})
        group.attrs.update(_json_able({**attrs, "index": int(index), "n_particles": int(n)}))
        group.attrs.update({"status": "ok"})  # last: the completion marker where there is no rename

    return _write_group(path, path / (TRAJECTORY % index), fill)


def write_failure(path, index: int, record: dict) -> int:
    """Record trajectory `index` of dataset `path` as failed: `record` holds index, seed, params, error."""
    path = Path(path)
    (path / FAILURES).mkdir(exist_ok=True)
    return _write_group(path, path / FAILURES / (TRAJECTORY % index),
                        lambda group: group.attrs.update(_json_able({**record, "index": int(index)})))


def directory_bytes(path) -> int:
    """Bytes of the files under `path` (temporaries of a write in progress excluded)."""
    total = 0
    for folder, dirs, files in os.walk(path):
        dirs[:] = [d for d in dirs if not d.startswith(TEMPORARY)]
        total += sum(os.path.getsize(os.path.join(folder, f)) for f in files)
    return total


# ----------------------------------------------------------------------------------------------
# Reading
# ----------------------------------------------------------------------------------------------
class StoredTrajectory:
    """One trajectory of a dataset. x and v are lazy Zarr arrays (slice them to read: `t.x[10:14]` reads
    frames 10..13); the per-particle arrays are read on first access.

    Attributes:
        index: the trajectory's index in the dataset; path: its directory.
        attrs: dict, see simcore.learned.data.store (params, seed, frame_dt s, substeps_per_frame, ...).
        x: (frames + 1, n, dim) float32 m; v: (frames + 1, n, dim) float32 m/s.
        material_id, body_id, kind: (n,) int32; particle_params: (n, P) float32 with columns param_names.
    """

    def __init__(self, path: Path, index: int, frames: int, dim: int):
        self.path, self.index = path, index
        group = _open_group(path, f"trajectory {index} of a simcore dataset (delete it and re-run `simcore "
                                  "dataset generate` to make it again)")
        self.attrs = dict(group.attrs)
        if self.attrs.get("status") != "ok" or self.attrs.get("index") != index:
            raise DatasetError(f"{path} is corrupted: its attrs have status={self.attrs.get('status')!r}, "
                               f"index={self.attrs.get('index')!r}; delete it and re-run `simcore dataset generate` "
                               "with the same settings to make it again")
        n = self.attrs.get("n_particles")
        shapes = {"x": (frames + 1, n, dim), "v": (frames + 1, n, dim), "material_id": (n,), "body_id": (n,),
                  "kind": (n,), "particle_params": (n, len(PARAM_NAMES))}
        self._arrays = {}
        for name, shape in shapes.items():
            try:
                array = group[name]
            except Exception as exc:  # KeyError (missing) or a zarr error (unreadable metadata)
                raise DatasetError(f"{path} is corrupted: array {name!r} is missing or unreadable ({exc}); delete "
                                   "it and re-run `simcore dataset generate` with the same settings") from exc
            if tuple(array.shape) != shape:
                raise DatasetError(f"{path} is corrupted: array {name!r} has shape {tuple(array.shape)}, expected "
                                   f"{shape}; delete it and re-run `simcore dataset generate`")
            self._arrays[name] = array
        self._loaded = {}

    def _read(self, name):
        if name not in self._loaded:
            try:
                self._loaded[name] = self._arrays[name][...]
            except Exception as exc:
                raise DatasetError(f"{self.path}: array {name!r} cannot be read ({type(exc).__name__}: {exc}); "
                                   "delete the trajectory and re-run `simcore dataset generate`") from exc
        return self._loaded[name]

    x = property(lambda self: self._arrays["x"])
    v = property(lambda self: self._arrays["v"])
    material_id = property(lambda self: self._read("material_id"))
    body_id = property(lambda self: self._read("body_id"))
    kind = property(lambda self: self._read("kind"))
    particle_params = property(lambda self: self._read("particle_params"))

    @property
    def param_names(self) -> list[str]:
        return list(self._arrays["particle_params"].attrs.get("names", PARAM_NAMES))

    @property
    def n_particles(self) -> int:
        return int(self.attrs["n_particles"])

    @property
    def frame_dt(self) -> float:
        """Seconds between stored frames."""
        return float(self.attrs["frame_dt"])

    def __repr__(self) -> str:
        return f"StoredTrajectory({self.index}, n={self.n_particles}, x={tuple(self.x.shape)}, path={str(self.path)!r})"


class Dataset:
    """A generated dataset, opened read-only (`open_dataset`).

    Attributes:
        path: the directory. attrs: root attrs (family, options, seed, count, frames, dim, engine, ...).
        indices: sorted indices of the finished trajectories (failed and missing ones are absent).
        failures: list of dicts (index, seed, params, error, ...) of the trajectories that failed, by index.
    `ds[i]` is the trajectory of index i (one of `indices`, not the i-th); `len(ds)` counts finished ones;
    iterating yields them in index order.
    """

    def __init__(self, path: Path, attrs: dict, indices: list[int], failures: list[dict]):
        self.path, self.attrs, self.indices, self.failures = path, attrs, indices, failures
        self._known = set(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> StoredTrajectory:
        if not isinstance(index, (int, np.integer)) or int(index) not in self._known:
            failed = {f["index"] for f in self.failures}
            why = "it failed (see .failures)" if index in failed else "it is not in the dataset"
            raise KeyError(f"no trajectory {index!r} in {self.path}: {why}; finished ones are ds.indices "
                           f"({len(self.indices)} of {self.attrs['count']})")
        index = int(index)
        return StoredTrajectory(self.path / (TRAJECTORY % index), index, self.attrs["frames"], self.attrs["dim"])

    def __iter__(self):
        return (self[i] for i in self.indices)

    @property
    def missing(self) -> list[int]:
        """Indices below count neither finished nor failed (a job still running, or killed)."""
        done = self._known | {f["index"] for f in self.failures}
        return [i for i in range(self.attrs["count"]) if i not in done]

    def manifest(self) -> list[dict]:
        """One row per trajectory below count, by index: {"index", "status": "ok" | "failed" | "missing",
        "seed", "params", and "n_particles" (finished) or "error" (failed)}. Reads every trajectory's attrs."""
        failed = {f["index"]: f for f in self.failures}
        rows = []
        for i in range(max([self.attrs["count"] - 1, *self.indices, *failed]) + 1):
            if i in self._known:
                a = self[i].attrs
                rows.append({"index": i, "status": "ok", "seed": a.get("seed"), "params": a.get("params"),
                             "n_particles": a.get("n_particles")})
            elif i in failed:
                f = failed[i]
                rows.append({"index": i, "status": "failed", "seed": f.get("seed"), "params": f.get("params"),
                             "error": f.get("error")})
            else:
                rows.append({"index": i, "status": "missing", "seed": [self.attrs["seed"], i], "params": None})
        return rows

    def nbytes(self) -> int:
        """Bytes on disk."""
        return directory_bytes(self.path)

    def verify(self) -> None:
        """Read every trajectory in full: its metadata, shapes and values (x and v finite: a lost chunk reads
        as NaN). Raises DatasetError naming the first bad trajectory's path."""
        for trajectory in self:
            for name in ("x", "v"):
                try:
                    values = trajectory._arrays[name][...]
                except Exception as exc:
                    raise DatasetError(f"{trajectory.path}: array {name!r} cannot be read ({type(exc).__name__}: "
                                       f"{exc}); delete it and re-run `simcore dataset generate`") from exc
                if not np.isfinite(values).all():
                    raise DatasetError(f"{trajectory.path} is corrupted: array {name!r} has missing chunks or "
                                       "non-finite values; delete it and re-run `simcore dataset generate`")
            for name in ("material_id", "body_id", "kind", "particle_params"):
                getattr(trajectory, name)

    def __repr__(self) -> str:
        return (f"Dataset({str(self.path)!r}, family={self.attrs['family']!r}, {len(self)} of {self.attrs['count']} "
                f"trajectories, {len(self.failures)} failed)")


def open_dataset(path) -> Dataset:
    """Open the dataset at `path` for reading.

    The root metadata and the list of trajectories are read now; a trajectory's metadata when it is
    indexed (`ds[i]`), its arrays when they are sliced. `ds.verify()` reads everything.

    Raises:
        FileNotFoundError: nothing at `path`.
        DatasetError: `path` is not a simcore dataset (not a Zarr group, or a Zarr group without the
            simcore_dataset attribute), was written by a newer format, or its metadata is corrupted;
            the message names the path.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no dataset at {path}: nothing there (make one with `simcore dataset generate`)")
    if not path.is_dir():
        raise DatasetError(f"{path} is not a simcore dataset: it is a file, not a directory")
    root = _open_group(path, "a simcore dataset")
    attrs = dict(root.attrs)
    version = attrs.get(FORMAT_KEY)
    if version is None:
        raise DatasetError(f"{path} is a Zarr group but not a simcore dataset: its attrs have no {FORMAT_KEY!r} "
                           "key (datasets are made by `simcore dataset generate`)")
    if version != FORMAT_VERSION:
        raise DatasetError(f"{path} is a simcore dataset of format {version!r}; this simcore reads format "
                           f"{FORMAT_VERSION} (upgrade simcore)")
    missing = [k for k in ("family", "options", "seed", "count", "frames", "dim") if k not in attrs]
    if missing:
        raise DatasetError(f"{path} is corrupted: its root attrs lack {missing}")
    indices = []
    for entry in path.iterdir():
        match = _TRAJECTORY_NAME.match(entry.name)
        if match and entry.is_dir() and _has_group_metadata(entry):
            indices.append(int(match.group(1)))
    failures = []
    if (path / FAILURES).is_dir():
        for entry in sorted((path / FAILURES).iterdir()):
            if _TRAJECTORY_NAME.match(entry.name) and _has_group_metadata(entry):
                failures.append(dict(_open_group(entry, "a failure record").attrs))
    return Dataset(path, attrs, sorted(indices), sorted(failures, key=lambda f: f.get("index", -1)))
