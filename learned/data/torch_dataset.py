"""A torch Dataset over a generated set: windows of H past frames -> the next frame.

    from simcore.learned.data.torch_dataset import WindowDataset, collate_particles
    train = WindowDataset("data/drops", "train", history=5, subsample=1024)
    val = WindowDataset("data/drops", "validation", history=5)
    loader = DataLoader(train, batch_size=8, shuffle=True, num_workers=4, collate_fn=collate_particles)
    v_in = train.stats.normalize("v", batch["v"])                  # statistics of the training split

A sample is the window of frames t-H+1..t of one trajectory and the frame t+1 after it, for every t in
[H-1, frames-1] (frames - H + 1 windows per trajectory). As a dict of tensors, n particles, d dims:
    x, v: (H, n, d) float32, m and m/s — positions and velocities at frames t-H+1..t
    next_x, next_v: (n, d) float32 — frame t+1
    next_a: (n, d) float32, m/s^2 — (v[t+1] - v[t]) / frame_dt, the mean acceleration over the frame
    material_id, body_id, kind: (n,) int64; particle_params: (n, P) float32 (columns `param_names`)
    frame_dt: () float32 s; trajectory, frame: () int64 (the trajectory's index and t)

Splits are by trajectory, so no trajectory's frames are both trained on and evaluated: the finished
trajectories are ranked by a key drawn from numpy.random.default_rng([split_seed, index]) and cut into
train / validation / test with round(fraction · N) trajectories for validation and test and the rest for
train. The split depends only on (split_seed, fractions, the set of finished trajectories); a dataset
extended later splits anew (pass `trajectories=` to pin one).

Normalisation statistics (per-component mean and standard deviation of x, v, a and particle_params over
every frame and particle of the training split; a over the frame pairs) are computed once, in float64, and
stored with the data in DIR/normalization/<key> (a Zarr group's attrs, written under a temporary name and
renamed into place), keyed by the training trajectories, so every split and every later run reuses them.
A read-only DIR keeps them in memory with a warning.

Subsampling (`subsample=m`) keeps m particles of each trajectory, the same m in all of its windows, drawn
from numpy.random.default_rng([subsample_seed, index]); trajectories with fewer particles keep all of them.

The Zarr arrays are opened lazily in each process that reads (a DataLoader worker opens its own), and a
sample depends on nothing but its index, so any number of workers gives the same samples.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import store

SPLITS = ("train", "validation", "test")
STATS_FIELDS = ("x", "v", "a", "particle_params")
STATS_VERSION = 1
NORMALIZATION = "normalization"
_STATS_BLOCK_BYTES = 64 << 20  # float64 frames read at once while computing statistics
STD_FLOOR = 1e-8  # a component that never varies (a wall-pinned axis) normalises to 0, not to inf
_PER_PARTICLE_INT = ("material_id", "body_id", "kind")


def split_indices(indices, fractions=(0.8, 0.1, 0.1), seed: int = 0) -> dict[str, list[int]]:
    """Trajectory indices -> {"train": [...], "validation": [...], "test": [...]} (each sorted), disjoint and
    covering `indices`. validation and test get round(fraction · N) trajectories, train the rest."""
    fractions = tuple(float(f) for f in fractions)
    if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1) > 1e-9:
        raise ValueError(f"fractions must be three numbers >= 0 (train, validation, test) summing to 1, got {fractions}")
    indices = sorted(int(i) for i in indices)
    keys = [np.random.default_rng([int(seed), i]).random() for i in indices]
    ranked = [i for _, i in sorted(zip(keys, indices))]
    n = len(ranked)
    n_val, n_test = round(fractions[1] * n), round(fractions[2] * n)
    n_val = min(n_val, n - n_test)
    cut = {"train": ranked[: n - n_val - n_test], "validation": ranked[n - n_val - n_test: n - n_test],
           "test": ranked[n - n_test:]}
    return {name: sorted(part) for name, part in cut.items()}


@dataclass(frozen=True)
class Stats:
    """Per-component mean and standard deviation of each field of STATS_FIELDS over the training split:
    mean[name], std[name]: (d,) or (P,) float32 tensors; `count[name]`: the number of values each averages."""

    mean: dict
    std: dict
    count: dict
    key: str

    def normalize(self, name: str, value: torch.Tensor) -> torch.Tensor:
        """(value - mean) / std over the last axis (std floored at STD_FLOOR)."""
        return (value - self.mean[name].to(value)) / self.std[name].to(value).clamp_min(STD_FLOOR)

    def denormalize(self, name: str, value: torch.Tensor) -> torch.Tensor:
        return value * self.std[name].to(value).clamp_min(STD_FLOOR) + self.mean[name].to(value)

    @classmethod
    def from_attrs(cls, attrs: dict) -> Stats:
        t = lambda values: torch.tensor(values, dtype=torch.float32)  # noqa: E731
        return cls({k: t(attrs["mean"][k]) for k in STATS_FIELDS}, {k: t(attrs["std"][k]) for k in STATS_FIELDS},
                   {k: int(attrs["count"][k]) for k in STATS_FIELDS}, attrs["key"])


class _Moments:
    """Running count, mean and sum of squared deviations per component, merged chunk by chunk (Chan et al.
    1979), in float64: one pass over data larger than memory, without the cancellation of Σx² - n·mean²."""

    def __init__(self):
        self.n, self.mean, self.m2 = 0, 0.0, 0.0

    def add(self, values: np.ndarray) -> None:
        values = np.asarray(values, np.float64).reshape(-1, values.shape[-1])
        n_b = values.shape[0]
        if n_b == 0:
            return
        mean_b = values.mean(axis=0)
        m2_b = ((values - mean_b) ** 2).sum(axis=0)
        n = self.n + n_b
        delta = mean_b - self.mean
        self.mean = self.mean + delta * n_b / n
        self.m2 = self.m2 + m2_b + delta**2 * self.n * n_b / n
        self.n = n

    def result(self) -> tuple[list, list]:
        return np.asarray(self.mean).tolist(), np.sqrt(np.asarray(self.m2) / max(self.n, 1)).tolist()


def compute_stats(dataset: store.Dataset, trajectories) -> dict:
    """Mean and (population) standard deviation per component of x, v, a = Δv / frame_dt and
    particle_params over `trajectories` of `dataset`, as JSON-able attrs (see Stats)."""
    moments = {name: _Moments() for name in STATS_FIELDS}
    for index in trajectories:
        trajectory = dataset[index]
        frames = trajectory.x.shape[0]
        block = max(1, _STATS_BLOCK_BYTES // max(1, 8 * int(np.prod(trajectory.x.shape[1:]))))
        for start in range(0, frames, block):  # blocks of frames: memory bounded whatever the trajectory's size
            stop = min(start + block, frames)
            moments["x"].add(np.asarray(trajectory.x[start:stop], np.float64))
            v = np.asarray(trajectory.v[start:min(stop + 1, frames)], np.float64)  # one frame more for Δv
            moments["v"].add(v[: stop - start])
            moments["a"].add((v[1:] - v[:-1]) / trajectory.frame_dt)
        moments["particle_params"].add(trajectory.particle_params)
    results = {name: m.result() for name, m in moments.items()}
    return {"mean": {k: r[0] for k, r in results.items()}, "std": {k: r[1] for k, r in results.items()},
            "count": {k: int(moments[k].n) for k in STATS_FIELDS}}


def stats_key(train: list[int]) -> str:
    """The key statistics are stored under: a hash of the training trajectories and the stats' definition."""
    text = json.dumps({"version": STATS_VERSION, "fields": STATS_FIELDS, "train": sorted(int(i) for i in train)})
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def load_or_compute_stats(dataset: store.Dataset, train: list[int]) -> Stats:
    """The training split's statistics: read from DIR/normalization/<key> when present, else computed and
    stored there atomically (a temporary group renamed into place; two processes racing store the same)."""
    import zarr

    key = stats_key(train)
    folder = Path(dataset.path) / NORMALIZATION
    final = folder / key
    stale = False
    if (final / "zarr.json").is_file() or (final / ".zattrs").is_file():
        try:
            attrs = dict(zarr.open_group(str(final), mode="r").attrs)
            if attrs.get("version") == STATS_VERSION and attrs.get("key") == key:
                return Stats.from_attrs(attrs)
        except Exception as exc:  # unreadable: recompute (and replace it below)
            warnings.warn(f"normalisation statistics at {final} cannot be read ({exc}); computing them again")
        stale = True
    attrs = {"version": STATS_VERSION, "key": key, "train": sorted(int(i) for i in train),
             **compute_stats(dataset, train)}
    try:
        if not folder.exists():
            zarr.open_group(str(folder), mode="a")  # a Zarr group itself: DIR stays a clean Zarr hierarchy
        temporary = folder / f"{store.TEMPORARY}{key}-{uuid.uuid4().hex}"
        try:
            zarr.open_group(str(temporary), mode="w").attrs.update(attrs)
            if stale:  # only what was found unreadable: a copy another process just stored stays
                shutil.rmtree(final, ignore_errors=True)
            try:
                os.rename(temporary, final)
            except OSError:
                if not final.exists():  # else another process stored the same statistics first
                    raise
        finally:
            shutil.rmtree(temporary, ignore_errors=True)
    except OSError as exc:
        warnings.warn(f"cannot store normalisation statistics in {folder} ({exc}); using them from memory "
                      "(they are computed again in every process)")
    return Stats.from_attrs(attrs)


class WindowDataset(torch.utils.data.Dataset):
    """Windows of `history` frames -> the next frame, over one split of a generated dataset (see the module
    docstring for the sample's fields and shapes).

    Args:
        path: the dataset directory (simcore.learned.data.store.open_dataset).
        split: "train" | "validation" | "test" | "all".
        history: H, the number of past frames in a window (>= 1).
        fractions: (train, validation, test) fractions of the trajectories, summing to 1.
        split_seed: seeds the split.
        subsample: keep this many particles per trajectory (None: all).
        subsample_seed: seeds which particles are kept.
        trajectories: an explicit list of trajectory indices for this dataset (overrides split; statistics
            are still those of the training split).
    Attributes: stats (Stats of the training split), splits ({name: indices}), trajectories (this split's),
        frames, dim, param_names, windows_per_trajectory.
    """

    def __init__(self, path, split: str = "train", *, history: int = 5, fractions=(0.8, 0.1, 0.1),
                 split_seed: int = 0, subsample: int | None = None, subsample_seed: int = 0, trajectories=None):
        if split not in (*SPLITS, "all"):
            raise ValueError(f"split must be one of {SPLITS} or 'all', got {split!r}")
        self.path = Path(path)
        dataset = store.open_dataset(self.path)
        self.frames, self.dim = int(dataset.attrs["frames"]), int(dataset.attrs["dim"])
        if not isinstance(history, (int, np.integer)) or not 1 <= history <= self.frames:
            raise ValueError(f"history must be an integer in [1, frames={self.frames}] (frames per window before "
                             f"the predicted one), got {history!r}")
        if subsample is not None and (not isinstance(subsample, (int, np.integer)) or subsample < 1):
            raise ValueError(f"subsample must be a particle count >= 1 or None (all particles), got {subsample!r}")
        if not dataset.indices:
            raise ValueError(f"{self.path} holds no finished trajectory ({len(dataset.failures)} failed): generate "
                             "some first (simcore dataset generate)")
        self.history, self.subsample, self.subsample_seed = int(history), subsample, int(subsample_seed)
        self.splits = split_indices(dataset.indices, fractions, split_seed)
        if trajectories is not None:
            unknown = sorted(set(int(i) for i in trajectories) - set(dataset.indices))
            if unknown:
                raise ValueError(f"trajectories {unknown[:10]} are not finished trajectories of {self.path}")
            self.trajectories = [int(i) for i in trajectories]
        else:
            self.trajectories = dataset.indices if split == "all" else self.splits[split]
        if not self.trajectories:
            raise ValueError(f"the {split!r} split of {self.path} is empty: {len(dataset.indices)} trajectories "
                             f"with fractions {tuple(fractions)}; generate more trajectories or change fractions")
        if not self.splits["train"]:
            raise ValueError(f"the training split of {self.path} is empty ({len(dataset.indices)} trajectories, "
                             f"fractions {tuple(fractions)}): statistics need at least one training trajectory")
        self.stats = load_or_compute_stats(dataset, self.splits["train"])
        self.windows_per_trajectory = self.frames - self.history + 1
        self.param_names = list(store.PARAM_NAMES)
        self._dataset = dataset
        self._pid = os.getpid()
        self._cache: dict = {}

    def __len__(self) -> int:
        return len(self.trajectories) * self.windows_per_trajectory

    def __getstate__(self):
        # Worker processes get the path, not open Zarr handles: each opens its own on first use.
        state = dict(self.__dict__)
        state["_dataset"], state["_cache"], state["_pid"] = None, {}, None
        return state

    def _trajectory(self, index: int):
        if self._dataset is None or self._pid != os.getpid():
            self._dataset, self._cache, self._pid = store.open_dataset(self.path), {}, os.getpid()
        if index not in self._cache:
            trajectory = self._dataset[index]
            keep = self.particles(index, trajectory.n_particles)
            per_particle = {name: torch.as_tensor(np.asarray(getattr(trajectory, name))[keep], dtype=torch.int64)
                            for name in _PER_PARTICLE_INT}
            per_particle["particle_params"] = torch.as_tensor(np.asarray(trajectory.particle_params, np.float32)[keep])
            self._cache[index] = (trajectory, keep, per_particle)
        return self._cache[index]

    def particles(self, index: int, n: int) -> np.ndarray:
        """The particle indices (sorted) kept of trajectory `index`, which has `n` particles."""
        if self.subsample is None or self.subsample >= n:
            return np.arange(n)
        rng = np.random.default_rng([self.subsample_seed, int(index)])
        return np.sort(rng.choice(n, size=self.subsample, replace=False))

    def locate(self, item: int) -> tuple[int, int]:
        """(trajectory index, t) of sample `item`: the window ends at frame t and predicts frame t + 1."""
        if not -len(self) <= item < len(self):
            raise IndexError(f"sample {item} out of range for {len(self)} windows")
        item %= len(self)
        which, offset = divmod(item, self.windows_per_trajectory)
        return self.trajectories[which], self.history - 1 + offset

    def __getitem__(self, item: int) -> dict:
        index, t = self.locate(int(item))
        trajectory, keep, per_particle = self._trajectory(index)
        first = t - self.history + 1
        # One read of H + 1 whole frames per array (x and v are chunked by runs of frames), then the subsample.
        x = np.asarray(trajectory.x[first: t + 2])[:, keep]
        v = np.asarray(trajectory.v[first: t + 2])[:, keep]
        frame_dt = trajectory.frame_dt
        a = (v[-1].astype(np.float64) - v[-2]) / frame_dt
        sample = {"x": torch.from_numpy(np.ascontiguousarray(x[:-1])), "v": torch.from_numpy(np.ascontiguousarray(v[:-1])),
                  "next_x": torch.from_numpy(np.ascontiguousarray(x[-1])),
                  "next_v": torch.from_numpy(np.ascontiguousarray(v[-1])),
                  "next_a": torch.from_numpy(a.astype(np.float32)),
                  "frame_dt": torch.tensor(frame_dt, dtype=torch.float32),
                  "trajectory": torch.tensor(index), "frame": torch.tensor(t)}
        sample.update(per_particle)
        return sample


_PARTICLE_AXIS = {"x": 1, "v": 1, "next_x": 0, "next_v": 0, "next_a": 0, "material_id": 0, "body_id": 0,
                  "kind": 0, "particle_params": 0}


def collate_particles(samples: list[dict]) -> dict:
    """Batch samples of different particle counts by concatenating particles (as graph libraries batch
    graphs): per-particle fields join along their particle axis (x: (H, Σn, d)); `batch`: (Σn,) int64, the
    sample each particle belongs to; `n_particles`: (B,); the per-sample scalars stack to (B,)."""
    if not samples:
        raise ValueError("collate_particles needs at least one sample")
    out = {name: torch.cat([s[name] for s in samples], dim=axis) for name, axis in _PARTICLE_AXIS.items()}
    counts = torch.tensor([s["next_x"].shape[0] for s in samples])
    out["n_particles"] = counts
    out["batch"] = torch.repeat_interleave(torch.arange(len(samples)), counts)
    for name in ("frame_dt", "trajectory", "frame"):
        out[name] = torch.stack([s[name] for s in samples])
    return out
