"""Evaluation of LFlows and its baselines on each data set's held-out observations, and of the physics
they satisfy (the paper's §5 metrics):

- density R² = 1 − Σ(ρ̂ − ρ)² / Σ(ρ − ρ̄)² on the training points ("fit"), the held-out block at the
  training times ("region") and the later times ("future");
- velocity error: the density-weighted relative error √(Σ ρ|v̂ − v|² / Σ ρ|v|²) where v was observed
  (region, future); none for the MLP, which has no velocity;
- the continuity residual ∂ρ/∂t + ∇·(ρv) by autograd (continuity.py), in float64 (a copy of the model), at
  `residual_points` random points of box × [t0, t1]: its RMS over ρ_s / T (ρ_s = M / box volume, T the
  duration), i.e. relative to the density changing by its mean over the whole run;
- total mass over time: ∫ρ dx by the midpoint rule on 768² (3D: 96³) cells over a box that holds the
  mass (`mass_box`: for LFlows the image of the base's 8σ sphere; for the PINN and the MLP the observed
  box), at MASS_TIMES times from t0 to t1; reported as the drift max_t |M(t) − M(t0)| / M(t0). For
  LFlows the mass is also exactly M by construction (∫ p = 1); its quadrature drift measures the rule,
  and `mass_from_labels` integrates over the labels instead (x = T⁻¹(z, t)), which stays resolved where
  the flow stretches its tails far (3D).

    python -m simcore.learned.lflows.evaluate --runs /tmp/lflows_runs --steps 3000 --doc docs/lflows.md --plots docs

trains (or resumes) every data set × model run under `runs`/<data>_<model> that has not reached `steps`
(train.train, the same settings for every model), then evaluates all of them, prints the table, and
writes it into docs/lflows.md with the command, and the plots docs/lflows_density.png and
docs/lflows_residual.png.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from . import continuity
from . import data as lfdata
from . import train as lftrain
from .model import LagrangianFlow

RESIDUAL_POINTS = 2000
MASS_TIMES = 4
MASS_CELLS = {2: 768, 3: 96}  # quadrature cells per axis over the box that holds the mass
LABEL_RADIUS = 8.0  # base standard deviations: the labels beyond hold < 1e-12 of the mass (2D, 3D)
LABEL_CELLS = {2: 256, 3: 32}  # quadrature cells per axis over the labels' 8σ box (mass_from_labels)


def r2(pred: np.ndarray, true: np.ndarray) -> float:
    """Coefficient of determination of `pred` against `true` (1: perfect; 0: no better than the mean)."""
    ss_tot = float(((true - true.mean()) ** 2).sum())
    return 1.0 - float(((pred - true) ** 2).sum()) / ss_tot if ss_tot > 0 else float("nan")


def predict(model, d: lfdata.FlowData, split: str, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray | None]:
    """The model's density (N,) and velocity (N, dim) (None for the MLP) at the points of `split`."""
    dtype = next(model.parameters()).dtype
    x, t, *_ = d.tensors(split, dtype)
    rho, vel = [], []
    for xs, ts in zip(x.split(chunk), t.split(chunk)):
        with torch.no_grad():
            rho.append(model.density(xs, ts).numpy())
        if model.has_velocity:  # LFlows' velocity needs autograd (its Jacobians)
            vel.append(model.velocity(xs, ts).detach().numpy())
    return np.concatenate(rho), (np.concatenate(vel) if vel else None)


def velocity_error(pred: np.ndarray, d: lfdata.FlowData, split: str) -> float:
    """√(Σ ρ|v̂ − v|² / Σ ρ|v|²) over the points of `split` where v was observed."""
    m = d.mask(split)
    seen = d.v_seen[m]
    w, v = d.rho[m][seen], d.v[m][seen]
    return math.sqrt(float((w * ((pred[seen] - v) ** 2).sum(-1)).sum()) / max(float((w * (v ** 2).sum(-1)).sum()), 1e-300))


def residual_rms(model, d: lfdata.FlowData, points: int = RESIDUAL_POINTS, seed: int = 0,
                 chunk: int = 500) -> float | None:
    """RMS of ∂ρ/∂t + ∇·(ρv) at random points over ρ_s / T, in float64 (None for a model without v)."""
    if not model.has_velocity:
        return None
    m64 = copy.deepcopy(model).to(torch.float64)
    x, t = lftrain.random_points(d, points, torch.float64, torch.Generator().manual_seed(seed))
    res = torch.cat([continuity.residual(m64.density, m64.velocity, xs, ts).detach()
                     for xs, ts in zip(x.split(chunk), t.split(chunk))])
    scale = continuity.scale(d.density_scale, d.time_range[1] - d.time_range[0])
    return float(torch.sqrt((res ** 2).mean())) / scale


def mass_box(model, d: lfdata.FlowData, t: float, directions: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """(lo, hi) m: a box that holds the model's mass at time t. For LFlows, the bounding box of the
    sphere(s) |z − μ_k| = LABEL_RADIUS σ_k of the base mapped back through T⁻¹(·, t) — a homeomorphism
    maps the ball inside a sphere inside the image of the sphere, so the box holds all but < 1e-12 of the
    mass. For the PINN and the MLP, whose densities nothing constrains off the data, the observed box."""
    lo, hi = (np.asarray(b, dtype=float) for b in d.box)
    if not isinstance(model, LagrangianFlow):
        return lo, hi
    m64 = copy.deepcopy(model).to(torch.float64)
    u = torch.randn(directions, d.dim, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    u = LABEL_RADIUS * u / u.norm(dim=1, keepdim=True)
    if m64.components > 1:
        u = (m64.base_means[:, None] + torch.exp(m64.base_log_scales)[:, None] * u).reshape(-1, d.dim)
    with torch.no_grad():
        x = m64.inverse(u.detach(), torch.full((len(u),), float(t), dtype=torch.float64)).numpy()
    return x.min(0), x.max(0)


def mass_over_time(model, d: lfdata.FlowData, times=None, cells: int | None = None, chunk: int = 65536):
    """(times (K,) s, ∫ρ dx (K,)) by the midpoint rule in float64 on cells^dim cells over `mass_box`
    at each time."""
    m64 = copy.deepcopy(model).to(torch.float64)
    times = np.linspace(*d.time_range, MASS_TIMES) if times is None else np.asarray(times)
    cells = cells or MASS_CELLS[d.dim]
    masses = []
    for tk in times:
        lo, hi = mass_box(model, d, float(tk))
        centers = torch.as_tensor(lfdata.cell_centers((lo, hi), cells))
        volume = float(np.prod((hi - lo) / cells))
        total = 0.0
        for xs in centers.split(chunk):
            with torch.no_grad():
                total += float(m64.density(xs, torch.full((len(xs),), float(tk), dtype=torch.float64)).sum())
        masses.append(total * volume)
    return times, np.asarray(masses)


def mass_from_labels(flow: LagrangianFlow, t: float, cells: int = 64, chunk: int = 16384) -> float:
    """∫ρ(x, t) dx for LFlows by the change of variables x = T⁻¹(z, t): ∫ ρ(T⁻¹(z, t), t) |det ∂T⁻¹/∂z| dz,
    midpoint rule on cells^dim cells over the base's 8σ box, in float64. ρ comes from the forward map's
    log-determinant and |det ∂T⁻¹/∂z| from autograd on the inverse map, so this checks the two against
    each other; unlike quadrature in x it stays resolved however far the flow stretches its tails."""
    m64 = copy.deepcopy(flow).to(torch.float64)
    if m64.components > 1:
        means, scales = m64.base_means.detach(), torch.exp(m64.base_log_scales.detach())
        lo, hi = (means - LABEL_RADIUS * scales).min(0).values, (means + LABEL_RADIUS * scales).max(0).values
    else:
        lo, hi = torch.full((flow.dim,), -LABEL_RADIUS), torch.full((flow.dim,), LABEL_RADIUS)
    lo, hi = lo.double().numpy(), hi.double().numpy()
    z_all = torch.as_tensor(lfdata.cell_centers((lo, hi), cells))
    volume = float(np.prod((hi - lo) / cells))
    total = 0.0
    for z in z_all.split(chunk):
        tt = torch.full((len(z),), float(t), dtype=torch.float64)
        x, pullback = torch.func.vjp(lambda z_: m64.inverse(z_, tt), z)
        rows = [pullback(torch.zeros_like(x).index_fill(1, torch.tensor([i]), 1.0))[0] for i in range(flow.dim)]
        log_jac = torch.linalg.slogdet(torch.stack(rows, dim=1))[1]
        with torch.no_grad():
            total += float(torch.exp(m64.log_density(x.detach(), tt) + log_jac).sum())
    return total * volume


def evaluate(model, d: lfdata.FlowData, residual_points: int = RESIDUAL_POINTS, mass_cells: int | None = None) -> dict:
    """Every metric of the module docstring for one model on one data set, as a dict of floats (None
    where a model has no such quantity)."""
    out = {}
    for split in ("train", "region", "future"):
        rho, vel = predict(model, d, split)
        out[f"r2_{split}"] = r2(rho, d.rho[d.mask(split)])
        out[f"verr_{split}"] = velocity_error(vel, d, split) if vel is not None else None
    out["residual"] = residual_rms(model, d, residual_points)
    times, masses = mass_over_time(model, d, cells=mass_cells)
    out["mass_times"], out["masses"] = times.tolist(), masses.tolist()
    out["mass_drift"] = float(np.max(np.abs(masses - masses[0])) / abs(masses[0]))
    out["mass_drift_labels"] = None
    if isinstance(model, LagrangianFlow):
        labels = np.array([mass_from_labels(model, float(tk), LABEL_CELLS[d.dim]) for tk in times])
        out["mass_drift_labels"] = float(np.max(np.abs(labels - labels[0])) / abs(labels[0]))
    return out


# ------------------------------------------------------------------------------------------------
# Many runs: train what is missing, evaluate, table, plots
# ------------------------------------------------------------------------------------------------
def run_dir(runs, data: str, model: str) -> Path:
    return Path(runs) / f"{data}_{model}"


def train_missing(runs, datasets, models, steps: int, settings: dict, cache=None) -> None:
    """Train (or resume) every data × model run that has no checkpoint at `steps` steps."""
    from simcore.learned.train import latest_checkpoint

    for name in datasets:
        for model in models:
            out = run_dir(runs, name, model)
            latest = latest_checkpoint(out / "checkpoints")
            if latest is not None and int(latest.stem.split("_")[-1]) >= steps:
                continue
            begin = time.perf_counter()
            lftrain.train(name, out, resume=latest is not None, model=model, steps=steps, progress=False,
                          tensorboard=False, cache=cache, **settings)
            print(f"trained {name}/{model} ({steps} steps) in {time.perf_counter() - begin:.0f} s", flush=True)


def seconds_per_step(out: Path) -> float | None:
    from simcore.learned.train import read_metrics

    rows = read_metrics(out / "metrics.csv") if (out / "metrics.csv").exists() else []
    rows = [r for r in rows if r.get("elapsed_s") not in (None, "")]
    if len(rows) < 2:
        return None
    return float(rows[-1]["elapsed_s"]) / max(int(rows[-1]["step"]), 1)


def _fmt(value, form: str = "{:.3f}") -> str:
    if value is None:
        return "—"
    if isinstance(value, float) and not math.isfinite(value):
        return "nan"
    return form.format(value)


def table(results: dict, datasets, models) -> str:
    """The Markdown table: one row per data set × model, every cell (— where a model has no such quantity)."""
    head = ("| data | model | R² fit | R² held-out region | R² later times | v error region | v error later | "
            "continuity residual (RMS / (ρ_s/T)) | PINN / this residual | mass drift (quadrature in x) | "
            "mass drift (quadrature over labels) | s/step |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for name in datasets:
        pinn = results.get((name, "pinn"), {}).get("residual")
        for model in models:
            r = results.get((name, model))
            if r is None:
                lines.append(f"| {name} | {model} | not trained |" + " |" * (head.count("|") - 4))
                continue
            ratio = pinn / r["residual"] if (pinn and r.get("residual")) else None
            lines.append(f"| {name} | {model} | {_fmt(r['r2_train'])} | {_fmt(r['r2_region'])} | {_fmt(r['r2_future'])} | "
                         f"{_fmt(r['verr_region'])} | {_fmt(r['verr_future'])} | {_fmt(r['residual'], '{:.1e}')} | "
                         f"{_fmt(ratio, '{:.1e}') if model != 'pinn' else '1'} | {_fmt(r['mass_drift'], '{:.1e}')} | "
                         f"{_fmt(r.get('mass_drift_labels'), '{:.1e}')} | "
                         f"{_fmt(r.get('s_per_step'), '{:.3f}')} |")
    return "\n".join(lines)


def _grid2d(values: np.ndarray, d: lfdata.FlowData) -> np.ndarray:
    """A frame's values as a 2D image (y up): 3D data are sliced through the middle cell along z."""
    if d.dim == 3:
        values = values[:, :, d.cells // 2]
    return values.T


def plot_density(models: dict, datas: dict, path, datasets) -> Path:
    """Per data set a row: the observed density at a training time (held-out block outlined) and at the
    last (held-out) time, each beside every model's density there."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    names = [n for n in datasets if n in datas]
    kinds = [k for k in lftrain.MODELS if any((n, k) in models for n in names)]
    cols = 2 * (1 + len(kinds))
    fig, axes = plt.subplots(len(names), cols, figsize=(1.9 * cols, 2.0 * len(names)), squeeze=False)
    for row, name in enumerate(names):
        d = datas[name]
        ks = [int(np.searchsorted(d.times, d.t_split) // 2), len(d.times) - 1]
        for j, k in enumerate(ks):
            truth = _grid2d(d.frame(d.rho, k), d)
            vmax = float(truth.max())
            sel = slice(k * d.cells ** d.dim, (k + 1) * d.cells ** d.dim)
            x = torch.as_tensor(d.x[sel]), torch.as_tensor(d.t[sel])
            panels = [("observed", truth)]
            for kind in kinds:
                if (name, kind) in models:
                    m = models[(name, kind)]
                    dtype = next(m.parameters()).dtype
                    with torch.no_grad():
                        rho = m.density(x[0].to(dtype), x[1].to(dtype)).numpy()
                    panels.append((kind, _grid2d(rho.reshape((d.cells,) * d.dim), d)))
            for i, (label, image) in enumerate(panels):
                ax = axes[row, j * (1 + len(kinds)) + i]
                ax.imshow(image, origin="lower", extent=(d.box[0][0], d.box[1][0], d.box[0][1], d.box[1][1]),
                          vmin=0, vmax=vmax, cmap="viridis")
                if j == 0:
                    lo, hi = d.region
                    ax.add_patch(Rectangle((lo[0], lo[1]), hi[0] - lo[0], hi[1] - lo[1], fill=False, ec="w", lw=0.8))
                ax.set(xticks=[], yticks=[])
                ax.set_title(f"{name} {label}\nt = {d.times[k]:.2f} s" + (" (held out)" if j else ""), fontsize=7)
    fig.suptitle("density: observed vs learned (left: a training time, held-out block outlined; right: the last, "
                 "held-out time; 3D: the z = 0.5 slice)", fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def plot_residual(models: dict, datas: dict, results: dict, path, datasets) -> Path:
    """Per data set a row: |∂ρ/∂t + ∇·(ρv)| / (ρ_s/T) on the box at mid-time for LFlows and the PINN (log
    colour scale, the same for both), and the total mass over time of every model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.colors as mcolors
    import matplotlib.pyplot as plt

    names = [n for n in datasets if n in datas]
    fig, axes = plt.subplots(len(names), 3, figsize=(9.0, 2.6 * len(names)), squeeze=False)
    for row, name in enumerate(names):
        d = datas[name]
        n = 48
        xy = lfdata.cell_centers((d.box[0][:2], d.box[1][:2]), n)
        x = np.concatenate([xy, np.full((len(xy), d.dim - 2), 0.5)], axis=1)
        t_mid = float(np.mean(d.time_range))
        maps = {}
        for kind in ("lflows", "pinn"):
            if (name, kind) in models:
                m64 = copy.deepcopy(models[(name, kind)]).to(torch.float64)
                res = continuity.residual(m64.density, m64.velocity, torch.as_tensor(x),
                                          torch.full((len(x),), t_mid, dtype=torch.float64)).detach().numpy()
                scale = continuity.scale(d.density_scale, d.time_range[1] - d.time_range[0])
                maps[kind] = np.abs(res).reshape(n, n).T / scale
        floor = 1e-18
        vmax = max([float(m.max()) for m in maps.values()] + [floor * 10])
        for col, kind in enumerate(("lflows", "pinn")):
            ax = axes[row, col]
            if kind in maps:
                im = ax.imshow(np.maximum(maps[kind], floor), origin="lower", cmap="magma",
                               norm=mcolors.LogNorm(vmin=floor, vmax=vmax),
                               extent=(d.box[0][0], d.box[1][0], d.box[0][1], d.box[1][1]))
                fig.colorbar(im, ax=ax, fraction=0.046)
            ax.set(xticks=[], yticks=[])
            ax.set_title(f"{name} {kind}: |residual| / (ρ_s/T)\nt = {t_mid:.2f} s" + (", z = 0.5" if d.dim == 3 else ""),
                         fontsize=7)
        ax = axes[row, 2]
        for kind in lftrain.MODELS:
            r = results.get((name, kind))
            if r:
                ax.plot(r["mass_times"], r["masses"], marker="o", ms=3, label=kind)
        ax.set_title(f"{name}: total mass ∫ρ dx (quadrature)", fontsize=7)
        ax.set_xlabel("t (s)", fontsize=7)
        ax.tick_params(labelsize=6)
        ax.legend(fontsize=6)
    fig.tight_layout()
    return _save(fig, path)


def _save(fig, path) -> Path:
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def loss_weights(used: dict) -> str:
    """The loss weights the evaluated runs were trained with, read from their run.json ({(data, model):
    Settings}), for the table's budget line (a run without a velocity term must not be described as one)."""
    def weights(model, field):
        return sorted({getattr(s, field) for (_, kind), s in used.items() if kind == model})

    def say(values):
        return " / ".join(f"{v:g}" for v in values) if values else "—"

    parts = [f"velocity term weight {say(weights(m, 'velocity_weight'))} for {label}"
             for m, label in (("lflows", "LFlows"), ("pinn", "the PINN")) if weights(m, "velocity_weight")]
    pinn = [s for (_, kind), s in used.items() if kind == "pinn"]
    if pinn:
        parts.append(f"the PINN's residual penalty weight {say(weights('pinn', 'residual_weight'))} at "
                     f"{say(sorted({s.collocation for s in pinn}))} collocation points a step")
    return "; ".join(parts) if parts else "density term only"


def write_doc(path, text: str, command: str, budget: str, key: str = "") -> None:
    """Put the table (with its budget and command) into `path` between markers named by `key` (the runs'
    directory and steps), replacing an earlier table of the same key (appending a new one)."""
    begin, end = (f"<!-- lflows-table {key}:{edge} -->" for edge in ("begin", "end"))
    block = f"{begin}\n{budget}\n\nCommand: `{command}`\n\n{text}\n{end}"
    path = Path(path)
    old = path.read_text() if path.exists() else "# LFlows\n"
    if begin in old and end in old:
        new = old[:old.index(begin)] + block + old[old.index(end) + len(end):]
    else:
        new = old.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(new)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m simcore.learned.lflows.evaluate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", required=True, help="directory holding the <data>_<model> training runs")
    parser.add_argument("--data", nargs="+", default=list(lfdata.DATASETS), choices=lfdata.DATASETS)
    parser.add_argument("--models", nargs="+", default=list(lftrain.MODELS), choices=lftrain.MODELS)
    parser.add_argument("--steps", type=int, default=lftrain.Settings.steps, help="training steps of every run")
    parser.add_argument("--batch", type=int, default=lftrain.Settings.batch)
    parser.add_argument("--lr", type=float, default=lftrain.Settings.lr)
    parser.add_argument("--hidden", type=int, default=lftrain.Settings.hidden)
    parser.add_argument("--blocks", type=int, default=lftrain.Settings.blocks)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a data option for every data set (smaller versions), e.g. --set cells=16 --set frames=9")
    parser.add_argument("--mass-cells", type=int, default=None, help="quadrature cells per axis (default 768 in 2D, 96 in 3D)")
    parser.add_argument("--residual-points", type=int, default=RESIDUAL_POINTS)
    parser.add_argument("--no-train", action="store_true", help="evaluate the runs there are; train nothing")
    parser.add_argument("--cache", default=None, help="directory for simcore trajectories (default RUNS/cache)")
    parser.add_argument("--doc", default=None, help="write the table into this Markdown file (docs/lflows.md)")
    parser.add_argument("--plots", default=None, help="directory for lflows_density.png and lflows_residual.png")
    parser.add_argument("--json", default=None, help="write the results as JSON here")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    cache = args.cache or str(Path(args.runs) / "cache")
    settings = {"batch": args.batch, "lr": args.lr, "hidden": args.hidden, "blocks": args.blocks,
                "data_options": lftrain.parse_options(args.set)}
    begin = time.perf_counter()
    if not args.no_train:
        train_missing(args.runs, args.data, args.models, args.steps, settings, cache=cache)
    models, datas, results, used = {}, {}, {}, {}
    for name in args.data:
        for kind in args.models:
            out = run_dir(args.runs, name, kind)
            if not (out / "checkpoints").exists():
                continue
            model, d, used[(name, kind)] = lftrain.load(out, cache=cache)
            datas[name] = d
            models[(name, kind)] = model
            results[(name, kind)] = evaluate(model, d, args.residual_points, args.mass_cells)
            results[(name, kind)]["s_per_step"] = seconds_per_step(out)
            print(f"evaluated {name}/{kind}", flush=True)
    text = table(results, args.data, args.models)
    print(text)
    print(f"({time.perf_counter() - begin:.0f} s)")
    if args.json:
        Path(args.json).write_text(json.dumps({"|".join(k): v for k, v in results.items()}, indent=1))
    if args.plots:
        plot_density(models, datas, Path(args.plots) / "lflows_density.png", args.data)
        plot_residual(models, datas, results, Path(args.plots) / "lflows_residual.png", args.data)
    if args.doc:
        command = ("python -m simcore.learned.lflows.evaluate " + " ".join(argv if argv is not None else __import__("sys").argv[1:]))
        budget = (f"**Budget: {args.steps} Adam steps of {args.batch} observation points per model** (lr {args.lr:g}, "
                  "cosine-annealed, gradient norm clipped at 1; the same for every model), one CPU thread each; "
                  + loss_weights(used) + ".")
        write_doc(args.doc, text, command, budget, key=f"{args.runs} {args.steps}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
