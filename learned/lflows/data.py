"""The data sets LFlows and its baselines are fitted to: density (and velocity) observations on a grid of
cells at a sequence of times, with a spatial block and the later times held out.

Two kinds:

- analytic (`gaussians2d`, `gaussians3d`): moving, turning, stretching Gaussian mixtures whose density
  and velocity are known in closed form (`GaussianMixtureFlow`). Component k's particles move by the
  affine map x = μ_k(t) + A_k(t)(X − μ_k(0)), μ_k(t) = μ_k(0) + u_k t, A_k(t) = exp(t L_k), so its
  velocity is v_k = u_k + L_k (x − μ_k(t)) (Ȧ A⁻¹ = L) and its density, a Gaussian of covariance
  A Σ_k Aᵀ, satisfies continuity with v_k exactly. The mixture's flux is Σ ρ_k v_k and v = Σ ρ_k v_k / ρ:
  continuity is linear in (ρ_k, ρ_k v_k), so the mixture satisfies it too (tested by autograd).
  Observations are the exact density and velocity at the cell centers.
- simcore (`dam_break`, `sand_collapse`): a 2D trajectory of a registered scene family (`lflows_dam_break`,
  registered here, and the built-in `sand_collapse`), turned into observations by counting particles per
  cell: ρ = (count / n) / cell area, so the total mass is M = 1 (each particle carries 1/n of it: a mass
  fraction per m²), and v = the mean velocity of the cell's particles (observed only where a cell holds
  particles). Small enough to simulate in seconds (grid 64, ~2,000 particles).

    from simcore.learned.lflows import data
    d = data.load("gaussians2d")                  # or "gaussians3d", "dam_break", "sand_collapse"
    x, t, rho, v, v_seen = d.tensors("train")     # (N, dim) m, (N,) s, (N,) 1/m^dim, (N, dim) m/s, (N,) bool
    d.split                                       # (N,) 0 train, 1 held-out block, 2 held-out later times
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np
import torch

SPLITS = {"train": 0, "region": 1, "future": 2}
DATASETS = ("gaussians2d", "gaussians3d", "dam_break", "sand_collapse")


# ------------------------------------------------------------------------------------------------
# Observations
# ------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class FlowData:
    """Density and velocity observations at the centers of a regular grid of cells, frame by frame.

    name: the data set's name. dim: 2 or 3. mass: M, the total mass (1 here: densities are mass fractions
    per m^dim). box: (lo, hi) each (dim,) m, the observed box (cells tile it). cells: cells per axis.
    times: (T,) s, the observation times. t_split: s; times after it are held out ("future").
    region: (lo, hi) each (dim,) m, the spatial block held out at the training times ("region").
    x: (N, dim) m cell centers; t: (N,) s; rho: (N,) kg/m^dim; v: (N, dim) m/s (0 where not observed);
    v_seen: (N,) bool, whether the cell's velocity was observed; split: (N,) int, SPLITS' codes.
    N = T · cells^dim, ordered frame by frame, then by cell in C order (axis 0 slowest).
    truth: for analytic data, the exact flow (GaussianMixtureFlow); particles: for simcore data,
    (T, n, dim) m positions at the observation times (for plots).
    """

    name: str
    dim: int
    mass: float
    box: tuple
    cells: int
    times: np.ndarray
    t_split: float
    region: tuple
    x: np.ndarray
    t: np.ndarray
    rho: np.ndarray
    v: np.ndarray
    v_seen: np.ndarray
    split: np.ndarray
    truth: "GaussianMixtureFlow | None" = None
    particles: np.ndarray | None = None

    @property
    def cell_volume(self) -> float:
        """m^dim."""
        return float(np.prod((np.asarray(self.box[1]) - np.asarray(self.box[0])) / self.cells))

    @property
    def density_scale(self) -> float:
        """The mean density over the box, M / box volume (kg/m^dim): the size densities are measured against."""
        return self.mass / float(np.prod(np.asarray(self.box[1]) - np.asarray(self.box[0])))

    @property
    def velocity_scale(self) -> float:
        """Root-mean-square observed velocity, density-weighted (m/s); 1 if nothing moves."""
        w = self.rho * self.v_seen
        value = float(np.sqrt((w[:, None] * self.v ** 2).sum() / max(w.sum(), 1e-300)))
        return value if value > 0 else 1.0

    @property
    def time_range(self) -> tuple[float, float]:
        return float(self.times[0]), float(self.times[-1])

    def mask(self, split: str) -> np.ndarray:
        """(N,) bool: the points of `split` ("train", "region", "future" or "all")."""
        if split == "all":
            return np.ones(len(self.t), dtype=bool)
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)} or 'all'")
        return self.split == SPLITS[split]

    def tensors(self, split: str = "train", dtype=torch.float32):
        """(x, t, rho, v, v_seen) of `split` as torch tensors (v_seen bool)."""
        m = self.mask(split)
        as_t = lambda a: torch.as_tensor(a[m], dtype=dtype)  # noqa: E731
        return as_t(self.x), as_t(self.t), as_t(self.rho), as_t(self.v), torch.as_tensor(self.v_seen[m])

    def frame(self, array: np.ndarray, k: int) -> np.ndarray:
        """The values of `array` (N, ...) at observation time k as a (cells,)*dim grid (axis 0 = x)."""
        per = self.cells ** self.dim
        k = k % len(self.times)
        return array[k * per:(k + 1) * per].reshape((self.cells,) * self.dim + array.shape[1:])


def cell_centers(box, cells: int) -> np.ndarray:
    """(cells^dim, dim) m: the centers of a regular grid over `box`, C order (axis 0 slowest)."""
    lo, hi = (np.asarray(b, dtype=float) for b in box)
    axes = [lo[i] + (np.arange(cells) + 0.5) * (hi[i] - lo[i]) / cells for i in range(len(lo))]
    return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, len(lo))


def _splits(x: np.ndarray, t: np.ndarray, t_split: float, region) -> np.ndarray:
    lo, hi = (np.asarray(b) for b in region)
    inside = np.all((x >= lo) & (x <= hi), axis=1)
    split = np.where(inside, SPLITS["region"], SPLITS["train"])
    return np.where(t > t_split + 1e-12, SPLITS["future"], split)


def _check_box(box, dim: int, what: str) -> tuple:
    lo, hi = (np.asarray(b, dtype=float) for b in box)
    if lo.shape != (dim,) or hi.shape != (dim,) or not np.all(hi > lo):
        raise ValueError(f"{what} must be (lo, hi), two points of {dim} coordinates in m with hi > lo on every axis, "
                         f"got {box!r}")
    return lo, hi


# ------------------------------------------------------------------------------------------------
# Analytic moving Gaussian mixtures
# ------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class GaussianMixtureFlow:
    """Σ_k w_k M N(x; μ_k(t), A_k Σ_k A_kᵀ), μ_k(t) = μ_k + u_k t, A_k(t) = exp(t L_k) (see the module).

    weights: (K,) summing to 1; means: (K, dim) m at t = 0; speeds: (K, dim) m/s; covariances: (K, dim, dim)
    m² at t = 0; rates: (K, dim, dim) 1/s, the L_k; mass: M.
    """

    weights: np.ndarray
    means: np.ndarray
    speeds: np.ndarray
    covariances: np.ndarray
    rates: np.ndarray
    mass: float = 1.0

    def __post_init__(self):
        self.weights = np.asarray(self.weights, dtype=float)
        if not np.isclose(self.weights.sum(), 1.0) or np.any(self.weights <= 0):
            raise ValueError(f"weights must be positive and sum to 1, got {self.weights.tolist()}")
        for name in ("means", "speeds", "covariances", "rates"):
            setattr(self, name, np.asarray(getattr(self, name), dtype=float))

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    def _components(self, x: torch.Tensor, t: torch.Tensor):
        """Per component: density ρ_k (n, K) and velocity v_k (n, K, dim), torch, differentiable."""
        as_t = lambda a: torch.as_tensor(a, dtype=x.dtype)  # noqa: E731
        L, S0 = as_t(self.rates), as_t(self.covariances)
        A = torch.linalg.matrix_exp(t[:, None, None, None] * L)  # (n, K, d, d)
        S = A @ S0 @ A.transpose(-1, -2)
        mu = as_t(self.means) + as_t(self.speeds) * t[:, None, None]  # (n, K, d)
        r = x[:, None, :] - mu
        Sinv_r = torch.linalg.solve(S, r[..., None])[..., 0]
        log_norm = -0.5 * (self.dim * np.log(2 * np.pi) + torch.logdet(S))
        rho_k = self.mass * as_t(self.weights) * torch.exp(log_norm - 0.5 * (r * Sinv_r).sum(-1))
        v_k = as_t(self.speeds) + torch.einsum("kij,nkj->nki", L, r)
        return rho_k, v_k

    def density(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """ρ(x, t) (n,) kg/m^dim; x (n, dim) m, t (n,) s."""
        return self._components(x, t)[0].sum(-1)

    def flux(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """ρv = Σ ρ_k v_k (n, dim) kg/(m^(dim−1) s)."""
        rho_k, v_k = self._components(x, t)
        return (rho_k[..., None] * v_k).sum(1)

    def velocity(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """v = Σ ρ_k v_k / Σ ρ_k (n, dim) m/s."""
        rho_k, v_k = self._components(x, t)
        return (rho_k[..., None] * v_k).sum(1) / rho_k.sum(-1)[:, None]


def _rotation_rate(omega: float, stretch: float = 0.0, growth: float = 0.0) -> np.ndarray:
    """A 2D rate L: spin ω rad/s, traceless stretch, isotropic growth (1/s)."""
    return np.array([[stretch + growth, -omega], [omega, -stretch + growth]])


def gaussians(dim: int = 2, cells: int | None = None, frames: int | None = None) -> FlowData:
    """The analytic data set: three Gaussians in 2D (or 3D) crossing the unit box over t ∈ [0, 1] s, turning,
    shearing and spreading; observed at `frames` times on `cells`^dim cells (defaults 21 × 32² in 2D,
    11 × 16³ in 3D); held out: t > 0.75 s, and the block [0.3, 0.45]^dim at the earlier times (the first
    Gaussian passes through it)."""
    if dim == 2:
        flow = GaussianMixtureFlow(
            weights=[0.4, 0.35, 0.25],
            means=[[0.3, 0.35], [0.7, 0.62], [0.42, 0.75]],
            speeds=[[0.35, 0.2], [-0.3, -0.12], [0.12, -0.35]],
            covariances=[np.diag([0.06, 0.035]) ** 2, np.diag([0.04, 0.07]) ** 2, np.diag([0.05, 0.05]) ** 2],
            rates=[_rotation_rate(2.0, 0.3), _rotation_rate(-1.5, -0.2), np.array([[0.3, 1.2], [0.0, 0.3]])])
    elif dim == 3:
        spin = lambda w: np.array([[0, -w[2], w[1]], [w[2], 0, -w[0]], [-w[1], w[0], 0]])  # noqa: E731
        flow = GaussianMixtureFlow(
            weights=[0.4, 0.35, 0.25],
            means=[[0.3, 0.35, 0.4], [0.7, 0.62, 0.6], [0.42, 0.7, 0.35]],
            speeds=[[0.35, 0.2, 0.15], [-0.3, -0.12, -0.1], [0.12, -0.3, 0.2]],
            covariances=[np.diag([0.07, 0.045, 0.05]) ** 2, np.diag([0.05, 0.07, 0.05]) ** 2,
                         np.diag([0.06, 0.05, 0.06]) ** 2],
            rates=[spin((0.0, 0.0, 2.0)) + np.diag([0.3, -0.3, 0.0]), spin((1.5, 0.0, 0.0)),
                   spin((0.0, 1.0, 0.0)) + 0.25 * np.eye(3)])
    else:
        raise ValueError(f"dim must be 2 or 3, got {dim!r}")
    cells = cells or (32 if dim == 2 else 16)
    frames = frames or (21 if dim == 2 else 11)
    box = (np.zeros(dim), np.ones(dim))
    times = np.linspace(0.0, 1.0, frames)
    centers = cell_centers(box, cells)
    x = np.tile(centers, (frames, 1))
    t = np.repeat(times, len(centers))
    with torch.no_grad():
        xt, tt = torch.as_tensor(x), torch.as_tensor(t)
        rho = flow.density(xt, tt).numpy()
        v = flow.velocity(xt, tt).numpy()
    # The block the first Gaussian crosses early on (t ≲ 0.4 s), clear of the others. A block at the
    # centre, where all three meet at t ≈ 0.65 s, held 76 % of the mass then: most of the data, not a region.
    region = (np.full(dim, 0.3), np.full(dim, 0.45))
    return FlowData(f"gaussians{dim}d", dim, flow.mass, box, cells, times, 0.75, region, x, t, rho, v,
                    np.ones(len(t), dtype=bool), _splits(x, t, 0.75, region), truth=flow)


# ------------------------------------------------------------------------------------------------
# simcore trajectories
# ------------------------------------------------------------------------------------------------
def _register_dam_break():
    """The `lflows_dam_break` family: a water column at the left wall, released (2D or 3D)."""
    from simcore.learned.data import families

    import simcore as sc

    if "lflows_dam_break" in families.FAMILIES:
        return

    @families.register("lflows_dam_break", description="a water column standing at the left wall, released "
                                                      "(the classic dam break)",
                       options={"width": ((0.25, 0.25), "column width, m"),
                                "height": ((0.5, 0.5), "column height, m"),
                                "bulk_modulus": ((1e5, 1e5), "bulk modulus of the water (Tait, γ = 7), Pa")})
    def lflows_dam_break(rng, **o):
        scene = families.new_scene(o, (sc.materials.Fluid,))
        width, height = families.uniform(rng, o["width"]), families.uniform(rng, o["height"])
        edge = families.margin(o["grid"])
        size = [width, height] + [1 - 2 * edge] * (o["dim"] - 2)
        center = [edge + width / 2, edge + height / 2] + [0.5] * (o["dim"] - 2)
        water = sc.materials.Fluid(bulk_modulus=families.uniform(rng, o["bulk_modulus"]), density=1e3)
        scene.add_body(sc.shapes.Box(center=tuple(center), size=tuple(size)), water, name="water")
        return families.Sample(scene, {"width": width, "height": height}, o["frame_dt"], o["substeps_per_frame"])


SIMCORE = {  # data set: (family, family options, frames, held-out block (lo, hi) m)
    "dam_break": ("lflows_dam_break", {"dim": 2, "grid": 64}, 36, ((0.3, 0.0), (0.5, 0.2))),
    "sand_collapse": ("sand_collapse", {"dim": 2, "grid": 64, "width": (0.3, 0.3), "height": (0.4, 0.4),
                                        "sand_E": (1e5, 1e5)}, 36, None),
}


def simulate(family: str, options: dict, frames: int, seed: int = 0, cache: str | Path | None = None) -> dict:
    """x, v (frames + 1, n, dim) and t (frames + 1,) of sample `seed` of scene family `family`, run in this
    process (on simcore's active backend: CPU f32 unless sc.init chose another); cached as an .npz in `cache`
    when given (keyed by family, options, frames and seed)."""
    from simcore.learned.data import families

    _register_dam_break()
    key = hashlib.sha1(json.dumps([family, options, frames, seed], sort_keys=True, default=list).encode()).hexdigest()[:12]
    path = Path(cache) / f"{family}_{key}.npz" if cache else None
    if path is not None and path.exists():
        with np.load(path) as f:
            return {name: f[name] for name in ("x", "v", "t")}
    sample = families.get(family).sample(np.random.default_rng([seed, 0]), **options)
    traj = sample.scene.run(frames=frames, frame_dt=sample.frame_dt, record=("x", "v"), progress=False)
    out = {"x": np.asarray(traj.x), "v": np.asarray(traj.v), "t": np.asarray(traj.t)}
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, **out)
        tmp.replace(path)  # atomic: a reader sees all of it or nothing
    return out


def from_particles(name: str, x: np.ndarray, v: np.ndarray, times: np.ndarray, cells: int = 32,
                   region=None, t_split: float | None = None, box=None) -> FlowData:
    """Observations from particle positions x and velocities v, (T, n, dim) m and m/s at `times` (T,) s:
    ρ = (particles in the cell / n) / cell volume (total mass M = 1), v = the cell's mean particle velocity.
    region: the held-out block (lo, hi) m (default: none); t_split: times after it are held out (default:
    the last quarter); box: the observed box (default the unit box, simcore's domain)."""
    x, v, times = np.asarray(x, dtype=float), np.asarray(v, dtype=float), np.asarray(times, dtype=float)
    if x.ndim != 3 or x.shape != v.shape or x.shape[0] != len(times) or x.shape[2] not in (2, 3):
        raise ValueError(f"x and v must both be (T, n, dim) with dim 2 or 3 and T = len(times) = {len(times)}, "
                         f"got {x.shape} and {v.shape}")
    T, n, dim = x.shape
    if not (isinstance(cells, int) and cells >= 2):
        raise ValueError(f"cells must be a whole number >= 2 per axis, got {cells!r}")
    box = _check_box(box if box is not None else (np.zeros(dim), np.ones(dim)), dim, "box")
    region = _check_box(region, dim, "region") if region is not None else (np.full(dim, 2.0), np.full(dim, 3.0))
    t_split = float(times[int(0.75 * (T - 1))]) if t_split is None else float(t_split)
    lo, hi = box
    index = np.clip(np.floor((x - lo) / (hi - lo) * cells).astype(int), 0, cells - 1)  # (T, n, dim)
    flat = np.ravel_multi_index(tuple(np.moveaxis(index, -1, 0)), (cells,) * dim)  # (T, n)
    per = cells ** dim
    volume = float(np.prod((hi - lo) / cells))
    counts = np.stack([np.bincount(f, minlength=per) for f in flat])  # (T, per)
    momentum = np.stack([np.stack([np.bincount(f, weights=vk[:, a], minlength=per) for a in range(dim)], -1)
                         for f, vk in zip(flat, v)])  # (T, per, dim)
    seen = counts > 0
    mean_v = np.where(seen[..., None], momentum / np.maximum(counts, 1)[..., None], 0.0)
    centers = cell_centers(box, cells)
    xs, ts = np.tile(centers, (T, 1)), np.repeat(times, per)
    return FlowData(name, dim, 1.0, box, cells, times, t_split, region, xs, ts,
                    (counts / n / volume).reshape(-1), mean_v.reshape(-1, dim), seen.reshape(-1),
                    _splits(xs, ts, t_split, region), particles=x)


def simcore_data(name: str, cache=None, frames: int | None = None, grid: int | None = None,
                 cells: int = 32) -> FlowData:
    """Data set `name` (a key of SIMCORE) from its simcore trajectory (`simulate`); frames, grid: smaller
    runs for tests (default: SIMCORE's). The observation times start at 0 s, one per frame."""
    family, options, default_frames, region = SIMCORE[name]
    options = dict(options, **({"grid": grid} if grid else {}))
    traj = simulate(family, options, frames or default_frames, cache=cache)
    if region is None:  # the sand column is placed at random: hold out the block just right of its start
        x0 = traj["x"][0]
        right = float(x0[:, 0].max())
        region = ((right, 0.0), (right + 0.15, 0.15))
    return from_particles(name, traj["x"], traj["v"], traj["t"] - traj["t"][0], cells=cells, region=region)


def load(name: str, cache=None, **kwargs) -> FlowData:
    """The data set `name` (one of DATASETS); kwargs go to `gaussians` (cells, frames) or `simcore_data`
    (frames, grid, cells): smaller versions for tests."""
    if name not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; choose one of {', '.join(DATASETS)}")
    allowed = ("cells", "frames") if name.startswith("gaussians") else ("frames", "grid", "cells")
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise ValueError(f"data set {name!r} has no option {', '.join(unknown)}; its options are {', '.join(allowed)}")
    if name in ("gaussians2d", "gaussians3d"):
        return gaussians(int(name[-2]), **kwargs)
    return simcore_data(name, cache=cache, **kwargs)


