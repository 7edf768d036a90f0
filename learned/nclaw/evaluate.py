"""Evaluation of trained laws (NCLaw and its baselines) against simcore's ground truth (Ma et al., ICML
2023, §5: generalisation to new times, velocities, shapes and multi-material scenes).

Each test is a scene built twice by the same function: once with the ground truth's simcore materials,
once with the learned laws as materials; both are run forward from the same particles (same sampling,
same initial velocities) and compared by the position MSE, mean over frames 1 … T, particles and axes
of (x − x_true)² in m². The tests, for a law trained on the first `steps` steps of the thrown cube:

| test | set-up | frames |
|---|---|---|
| reconstruction | the training set-up (ground_truth.py) | steps |
| longer | the training set-up | 2 × steps |
| velocity_a, _b, _c | the training cube with three new initial velocities and spins (NEW_VELOCITIES) | steps |
| shape | a mesh from simcore.assets (SHAPE_MESH, 0.5 m across) with the training velocity and spin | steps |
| multi | a jelly cube dropped into a pool of water (learned jelly + learned water, each trained on its own) | steps |

A rollout that fails (non-finite state, particles leaving the grid: simcore.SimulationError) is
reported as "blew up at frame k", not dropped; where one of two compared models blew up, their ratio is
taken over the frames before the blow-up and printed as a bound (mse_ratio). A run whose training failed
at epoch k is evaluated with the weights epoch k − 1 ran with, and its cells say so (Fallback).

    python -m simcore.learned.nclaw.evaluate --runs /tmp/nclaw_runs --materials jelly plasticine \\
        --steps 250 --epochs 60 --doc docs/nclaw.md --plot docs/nclaw_rollouts.png

trains every (material, model) whose run directory `runs`/<material>_<model> is missing or unfinished
(train.train with the budget given), then evaluates all of them and writes the table (and the plot).
With `--seeds 0 1 2` it does the same for each training seed (seed s's runs in `runs`/seed<s>) and adds a
table of every ratio per seed with the worst seed's, and how many seeds meet the acceptance bars.
"""

from __future__ import annotations

import argparse
import json
import textwrap
import time
from pathlib import Path

import numpy as np
import torch

import simcore as sc

from . import ground_truth as gt
from . import train as nt

TESTS = ("reconstruction", "longer", "velocity_a", "velocity_b", "velocity_c", "shape", "multi")
# (velocity m/s, angular velocity rad/s) of the new throws: mirrored, sideways-flat, steep.
NEW_VELOCITIES = {
    "velocity_a": ((-1.0, -1.5, 2.0), (-4.0, 4.0, -4.0)),
    "velocity_b": ((2.0, -2.0, 0.0), (0.0, 8.0, 0.0)),
    "velocity_c": ((0.0, -3.0, 1.0), (6.0, 0.0, 6.0)),
}
SHAPE_MESH = "bell.obj"  # simcore.assets
SHAPE_SIZE = 0.5  # m, the mesh's largest bounding-box edge (the training cube's edge)
# The multi-material scene: a pool of water on the floor (inside the 3-cell wall layer) and a jelly cube
# dropped into it from above.
POOL = dict(center=(0.5, 0.25, 0.5), size=(0.7, 0.2, 0.7))
DROP = dict(center=(0.5, 0.6, 0.5), size=0.25, velocity=(0.0, -2.0, 0.0), angular_velocity=(0.0, 0.0, 4.0))
MULTI = ("jelly", "water")  # the laws the multi-material scene needs


def _scene() -> sc.Scene:
    return sc.Scene(dim=3, grid=gt.GRID, particles_per_cell=1, dt=gt.DT, walls="separate")


def _mesh_shape():
    import trimesh

    mesh = trimesh.load(sc.assets.path(SHAPE_MESH), force="mesh")
    return sc.shapes.Mesh(mesh, center=gt.CUBE_CENTER, size=SHAPE_SIZE)


def test_scene(test: str, materials: dict) -> sc.Scene:
    """The scene of `test` with `materials` {material name: simcore material}: one entry for the
    single-material tests, "jelly" and "water" for "multi"."""
    if test not in TESTS:
        raise ValueError(f"unknown test {test!r}; choose one of {', '.join(TESTS)}")
    scene = _scene()
    if test == "multi":
        missing = set(MULTI) - set(materials)
        if missing:
            raise ValueError(f"the multi-material test needs laws for {', '.join(MULTI)}; missing {sorted(missing)}")
        scene.add_body(sc.shapes.Box(center=POOL["center"], size=POOL["size"]), materials["water"], name="water")
        scene.add_body(gt.cube(DROP["center"], DROP["size"]), materials["jelly"], velocity=DROP["velocity"],
                       angular_velocity=DROP["angular_velocity"], name="jelly")
        return scene
    if len(materials) != 1:
        raise ValueError(f"test {test!r} takes one material, got {sorted(materials)}")
    (material,) = materials.values()
    velocity, omega = NEW_VELOCITIES.get(test, (gt.VELOCITY, gt.ANGULAR_VELOCITY))
    shape = _mesh_shape() if test == "shape" else gt.cube()
    scene.add_body(shape, material, velocity=velocity, angular_velocity=omega, name="body")
    return scene


def test_frames(test: str, steps: int) -> int:
    """Frames (substeps of gt.DT) of `test` for a law trained on `steps` steps."""
    return 2 * steps if test == "longer" else steps


def simulate(scene: sc.Scene, frames: int) -> tuple[np.ndarray, int | None]:
    """Positions (frames + 1, n, 3) m of a forward run, and the frame it blew up at (None if it did not;
    the positions after it are NaN)."""
    with torch.no_grad():
        try:
            return np.asarray(scene.run(frames=frames, frame_dt=gt.DT, progress=False).x, dtype=np.float64), None
        except sc.SimulationError as error:
            done = np.asarray(error.trajectory.x, dtype=np.float64) if error.trajectory is not None else np.zeros((0,))
            x = np.full((frames + 1, scene.n_particles, 3), np.nan)
            x[:len(done)] = done
            return x, int(error.frame) if error.frame is not None else len(done)


def position_mse(x: np.ndarray, truth: np.ndarray) -> float:
    """mean over frames 1 … T, particles and axes of (x − truth)², m²."""
    return float(frame_mse(x, truth).mean())


def frame_mse(x: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """(T,) mean over particles and axes of (x − truth)² at frames 1 … T, m² (NaN after a blow-up)."""
    if x.shape != truth.shape:
        raise ValueError(f"positions {x.shape} and ground truth {truth.shape} differ in shape: not the same scene")
    return ((x[1:] - truth[1:]) ** 2).mean(axis=(1, 2))


def truth_materials(test: str, material: str) -> dict:
    """The ground truth's simcore materials for `test` (of `material`, or jelly and water for "multi")."""
    return {m: gt.material(m) for m in (MULTI if test == "multi" else (material,))}


class Fallback:
    """A run whose training failed, evaluated with the weights of its last finite epoch: `law`, and the
    `caveat` that says so in every cell it fills ("training failed at epoch 37; weights of epoch 36")."""

    def __init__(self, law, caveat: str):
        self.law, self.caveat = law, caveat

    def material(self, name=None):
        return self.law.material(name=name)


def learned_materials(test: str, material: str, laws: dict) -> dict | str:
    """The learned laws' materials for `test`; `laws` maps a material name to a trained law (or a
    Fallback), or to a note (str) saying why there is none. Returns the note of the first law the test
    lacks instead ("not trained" if it has none)."""
    names = MULTI if test == "multi" else (material,)
    for m in names:
        if laws.get(m) is None or isinstance(laws[m], str):
            return laws.get(m) or "not trained"
    return {m: laws[m].material(name=m) for m in names}


def _caveat(test: str, material: str, laws: dict) -> str:
    """The caveats of the Fallback laws a test uses, joined ("" if none)."""
    names = MULTI if test == "multi" else (material,)
    return "; ".join(laws[m].caveat for m in names if isinstance(laws.get(m), Fallback))


class Cell(dict):
    """One table cell: {"mse": m² or None, "blew_up": frame or None, "note": text (no number: why),
    "caveat": text (a number, with a remark: which weights were evaluated), "frame_mse": the per-frame
    MSE (list, m², NaN after a blow-up) from which ratios over the frames before a blow-up are taken}."""

    def text(self) -> str:
        if self.get("note"):
            return self["note"]
        value = f"blew up at frame {self['blew_up']}" if self.get("blew_up") is not None else f"{self['mse']:.2e}"
        return f"{value} ({self['caveat']})" if self.get("caveat") else value


def evaluate(laws: dict, steps: int, materials=("jelly", "plasticine", "sand", "water"), tests=TESTS,
             keep: dict | None = None) -> dict:
    """Position MSE of every law on every test.

    Args:
        laws: {(material, model): trained law, or a note (str) such as "training failed at epoch 42", or
            None (not trained)}.
        steps: the training trajectory's steps (tests run test_frames(test, steps) frames).
        materials: the rows; "multi" is evaluated once, as the row "jelly+water".
        keep: if a dict, the positions of every rollout are stored in it, keyed (row, test, model), and the
            ground truth's (row, test, "truth") (for plots).
    Returns:
        {(row, test, model): Cell}, row a material name or "jelly+water".
    """
    models = sorted({model for _, model in laws}, key=lambda m: nt.MODELS.index(m) if m in nt.MODELS else 99)
    results = {}
    for material in [*materials, "jelly+water"]:
        for test in tests:
            if (test == "multi") != (material == "jelly+water"):
                continue
            frames = test_frames(test, steps)
            truth, failed = simulate(test_scene(test, truth_materials(test, material)), frames)
            if failed is not None:
                raise RuntimeError(f"the ground truth of {material}/{test} blew up at frame {failed}")
            if keep is not None:
                keep[(material, test, "truth")] = truth
            for model in models:
                by_material = {m: laws.get((m, model)) for m in gt.MATERIALS}
                chosen = learned_materials(test, "jelly" if material == "jelly+water" else material, by_material)
                if isinstance(chosen, str):
                    results[(material, test, model)] = Cell(mse=None, blew_up=None, note=chosen)
                    continue
                x, blew_up = simulate(test_scene(test, chosen), frames)
                per_frame = frame_mse(x, truth)
                mse = float(per_frame.mean()) if blew_up is None else None
                caveat = _caveat(test, "jelly" if material == "jelly+water" else material, by_material)
                results[(material, test, model)] = Cell(mse=mse, blew_up=blew_up, note="", caveat=caveat,
                                                          frame_mse=per_frame.tolist())
                if keep is not None:
                    keep[(material, test, model)] = x
    return results


# the ratio columns of the table: (numerator, denominator) models and the column's title
RATIOS = ((("mlp", "nclaw"), "MLP / NCLaw"), (("mlp", "nclaw_iso"), "MLP / NCLaw-iso"),
          (("nclaw", "oracle"), "NCLaw / oracle"), (("nclaw_iso", "oracle"), "NCLaw-iso / oracle"))


def ratio(a: Cell, b: Cell) -> tuple[float, str] | None:
    """MSE of `a` / MSE of `b` as (value, bound): bound "" when both rolled out to the end; when one blew
    up and the other did not, the ratio of their MSE over the frames before the blow-up, with bound "≥"
    if `a` blew up (its full-horizon error is unbounded) or "≤" if `b` did. None where there is no number
    (a model not trained, both blown up, no frame before the blow-up)."""
    if a.get("mse") is not None and b.get("mse"):
        return a["mse"] / b["mse"], ""
    frames_a, frames_b = a.get("frame_mse"), b.get("frame_mse")
    if frames_a is None or frames_b is None or (a.get("blew_up") is None) == (b.get("blew_up") is None):
        return None
    frames_a, frames_b = np.asarray(frames_a, dtype=float), np.asarray(frames_b, dtype=float)
    finite = np.isfinite(frames_a) & np.isfinite(frames_b)
    before = len(finite) if finite.all() else int(np.argmin(finite))  # the frames both have, from the first
    window_a, window_b = frames_a[:before], frames_b[:before]
    if before < 1 or not window_b.mean() > 0:
        return None
    return float(window_a.mean() / window_b.mean()), "≥" if a.get("blew_up") is not None else "≤"


def ratio_text(value: tuple[float, str] | None) -> str:
    """A `ratio` as table text: "r", "≥ r" or "≤ r" (3 significant digits), "—" where there is no number."""
    if value is None:
        return "—"
    return f"{value[1] + ' ' if value[1] else ''}{value[0]:.3g}"


def mse_ratio(a: Cell, b: Cell) -> str:
    """MSE of `a` / MSE of `b` as table text (`ratio`, `ratio_text`)."""
    return ratio_text(ratio(a, b))


def table(results: dict, models=nt.MODELS) -> str:
    """The Markdown table: one row per (material, test), one column per model, then the RATIOS of MSE
    whose two models are both columns (mse_ratio: a bound where one of the two blew up, "—" where
    neither has a number)."""
    rows = sorted({(m, t) for m, t, _ in results}, key=lambda r: ([*gt.MATERIALS, "jelly+water"].index(r[0]),
                                                                   TESTS.index(r[1])))
    ratios = [(pair, title) for pair, title in RATIOS if set(pair) <= set(models)]
    lines = ["| material | test | " + " | ".join(f"{m} MSE (m²)" for m in models) + " | "
             + " | ".join(title for _, title in ratios) + " |",
             "|---|---|" + "---|" * (len(models) + len(ratios))]
    for material, test in rows:
        cells = {m: results.get((material, test, m), Cell(note="—")) for m in models}
        lines.append(f"| {material} | {test} | " + " | ".join(cells[m].text() for m in models) + " | "
                     + " | ".join(mse_ratio(cells[a], cells[b]) for (a, b), _ in ratios) + " |")
    return "\n".join(lines)


# the tests the acceptance bars are on (new velocities and the new shape), and the bars: the learned law
# within ORACLE_BAR of the oracle's MSE, and the plain MLP's MSE at least MLP_BAR times the law's
BAR_TESTS = ("velocity_a", "velocity_b", "velocity_c", "shape")
ORACLE_BAR, MLP_BAR = 3.0, 10.0
LEARNED = ("nclaw", "nclaw_iso")  # the models the ratios judge (the others are baselines)


def seed_runs(runs, seed: int) -> Path:
    """The directory of seed `seed`'s runs: `runs` itself for seed 0 (the main table's), runs/seed<s> else."""
    return Path(runs) if seed == 0 else Path(runs) / f"seed{seed}"


def _worst(values: list, learned_first: bool):
    """The seed whose ratio is worst for the learned model: the largest if the learned model is the
    numerator (model / oracle), the smallest if it is the denominator (MLP / model). `values`: [(seed,
    ratio or None)]; a seed with no number (not trained, blown up) is the worst of all."""
    missing = [v for v in values if v[1] is None]
    if missing:
        return missing[0]
    return (max if learned_first else min)(values, key=lambda v: v[1][0])


def _meets(value, at_most: float | None = None, at_least: float | None = None) -> bool:
    """Whether a `ratio` (value, bound) is surely ≤ at_most (or ≥ at_least)."""
    if value is None:
        return False
    number, bound = value
    if at_most is not None:
        return bound in ("", "≤") and number <= at_most
    return bound in ("", "≥") and number >= at_least


def seed_table(by_seed: dict, models=nt.MODELS) -> str:
    """The ratio columns of `table` for several training seeds: for each ratio whose two models are
    columns, one column per seed and the worst seed's (for the learned model), then one line per learned
    model and material saying in how many seeds it meets both acceptance bars on every BAR_TESTS test.

    Args:
        by_seed: {seed: `evaluate`'s results for the runs trained with that seed}.
    """
    seeds = list(by_seed)
    ratios = [(pair, title) for pair, title in RATIOS if set(pair) <= set(models)]
    rows = sorted({(m, t) for results in by_seed.values() for m, t, _ in results},
                  key=lambda r: ([*gt.MATERIALS, "jelly+water"].index(r[0]), TESTS.index(r[1])))
    head = [column for _, title in ratios
            for column in (f"{title}: seed {seeds[0]}", *(f"seed {s}" for s in seeds[1:]), "worst")]
    lines = ["| material | test | " + " | ".join(head) + " |", "|---|---|" + "---|" * len(head)]
    empty = Cell(note="—")
    for material, test in rows:
        cells = []
        for (a, b), _ in ratios:
            values = [(s, ratio(by_seed[s].get((material, test, a), empty), by_seed[s].get((material, test, b), empty)))
                      for s in seeds]
            worst_seed, worst = _worst(values, learned_first=a in LEARNED)
            cells += [ratio_text(value) for _, value in values] + [f"{ratio_text(worst)} (seed {worst_seed})"]
        lines.append(f"| {material} | {test} | " + " | ".join(cells) + " |")
    lines.append("")
    for model in (m for m in LEARNED if m in models and {"oracle", "mlp"} & set(models)):
        for material in (m for m in gt.MATERIALS if any(row[0] == m for row in rows)):
            met = [s for s in seeds if all(
                ("oracle" not in models or _meets(ratio(by_seed[s].get((material, t, model), empty),
                                                        by_seed[s].get((material, t, "oracle"), empty)), at_most=ORACLE_BAR))
                and ("mlp" not in models or _meets(ratio(by_seed[s].get((material, t, "mlp"), empty),
                                                         by_seed[s].get((material, t, model), empty)), at_least=MLP_BAR))
                for t in BAR_TESTS)]
            bars = " and ".join(([f"within {ORACLE_BAR:g}× of the oracle"] if "oracle" in models else [])
                                + ([f"≥ {MLP_BAR:g}× better than the MLP"] if "mlp" in models else []))
            lines.append(f"- {model} on {material}: {bars} on all of {', '.join(BAR_TESTS)} in "
                         f"**{len(met)} of {len(seeds)} seeds**"
                         f"{' (' + ', '.join(map(str, met)) + ')' if met else ''}")
    return "\n".join(lines)


def plot(keep: dict, results: dict, path, panels=(("jelly", "velocity_a"), ("jelly", "shape"),
                                                   ("plasticine", "velocity_a"), ("plasticine", "shape"),
                                                   ("jelly+water", "multi")), models=nt.MODELS) -> Path | None:
    """A PNG: one row per (material, test) in `panels`, one column per model; each panel is the side view
    (x, y) of the last frame, the ground truth in grey under the model's particles."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [p for p in panels if (*p, "truth") in keep]
    if not panels:
        return None
    fig, axes = plt.subplots(len(panels), len(models), figsize=(3.0 * len(models), 3.0 * len(panels)), squeeze=False)
    for row, (material, test) in enumerate(panels):
        truth = keep[(material, test, "truth")]
        for col, model in enumerate(models):
            ax = axes[row, col]
            x = keep.get((material, test, model))
            cell = results.get((material, test, model), Cell(note="not trained"))
            # the last frame, or the last finite one of a rollout that blew up (the truth at the same frame)
            frame = len(truth) - 1 if x is None else int(np.flatnonzero(np.isfinite(x).all(axis=(1, 2)))[-1])
            ax.scatter(truth[frame, :, 0], truth[frame, :, 1], s=2, c="0.75")
            if x is not None:
                ax.scatter(x[frame, :, 0], x[frame, :, 1], s=2, c="tab:red" if model == "mlp" else "tab:blue")
            ax.set(xlim=(0, 1), ylim=(0, 1), aspect="equal", xticks=[], yticks=[])
            caption = "\n".join(textwrap.wrap(f"{model}: {cell.text()}", 44))  # caveats are long
            ax.set_title(f"{material} {test}, frame {frame}\n{caption}", fontsize=7)
    fig.suptitle("side view (x right, y up) of the last frame (of a blown-up rollout: its last finite one): "
                 "simcore's ground truth grey, learned law coloured", fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


BUDGET = dict(stress_scale=1e3, elastic_lr=0.1, plastic_lr=0.01, oracle_lr=nt.ORACLE_LR)


def train_missing(runs, materials, models, steps: int, epochs: int, budget: dict | None = None, seed: int = 0) -> dict:
    """Train (or resume) every (material, model) whose run directory runs/<material>_<model> has fewer
    than `epochs` epochs in its metrics.csv; load every finished one. A run whose training failed keeps
    its error in `failed.txt` and is not retried. `seed`: the new runs' training seed (initial weights;
    `seed_runs` says where a seed's runs live). Returns {(material, model): law, or a note "training
    failed at epoch k: ..." (str)}."""
    from simcore.learned.train import read_metrics

    budget = {**BUDGET, **(budget or {})}
    laws = {}
    for material in materials:
        for model in models:
            out = Path(runs) / f"{material}_{model}"
            done = (out / "metrics.csv").exists() and len(read_metrics(out / "metrics.csv")) >= epochs
            if (out / "failed.txt").exists():
                laws[(material, model)] = _failed_run(out, (out / "failed.txt").read_text().strip())
                continue
            if not done:
                try:
                    nt.train(material, out, epochs=epochs, steps=steps, model=model, seed=seed,
                             resume=(out / "checkpoints").exists(), progress=False, tensorboard=False, **budget)
                except (FloatingPointError, sc.SimulationError, RuntimeError) as error:
                    epoch = len(read_metrics(out / "metrics.csv")) if (out / "metrics.csv").exists() else 0
                    note = f"training failed at epoch {epoch} ({type(error).__name__})"
                    print(f"{material}/{model}: {note}: {error}")
                    (out / "failed.txt").write_text(f"{note}\n")
                    laws[(material, model)] = _failed_run(out, note)
                    continue
            laws[(material, model)] = nt.load(out)
    return laws


def _failed_run(out: Path, note: str):
    """A run whose training failed (`note`: "training failed at epoch k (...)"): a Fallback with the
    weights epoch k − 1 was run with (checkpoint step_{k−1}: that epoch's rollouts stayed finite; epoch k's,
    with step_k, did not), or the note if that checkpoint was not kept."""
    from simcore.learned.train import read_metrics

    epoch = len(read_metrics(out / "metrics.csv")) if (out / "metrics.csv").exists() else 0
    if epoch < 1:
        return note
    try:
        law = nt.load(out, step=epoch - 1)
    except ValueError:
        return note
    return Fallback(law, f"{note.removeprefix('training ')}; weights of epoch {epoch - 1}")


def load_runs(runs, materials, models) -> dict:
    """The finished runs under `runs` (no training): {(material, model): law, a Fallback for a run whose
    training failed, or None where there is no run}."""
    laws = {}
    for material in materials:
        for model in models:
            out = Path(runs) / f"{material}_{model}"
            if (out / "failed.txt").exists():
                laws[(material, model)] = _failed_run(out, (out / "failed.txt").read_text().strip())
            else:
                laws[(material, model)] = nt.load(out) if (out / "checkpoints").exists() else None
    return laws


def epoch_seconds(runs, materials, models) -> dict:
    """Median seconds per epoch of each run, from its metrics.csv."""
    from simcore.learned.train import read_metrics

    seconds = {}
    for material in materials:
        for model in models:
            path = Path(runs) / f"{material}_{model}" / "metrics.csv"
            if path.exists():
                rows = read_metrics(path)
                seconds[(material, model)] = float(np.median([r["epoch_s"] for r in rows if "epoch_s" in r]))
    return seconds


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m simcore.learned.nclaw.evaluate",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", required=True, help="directory holding <material>_<model> training runs")
    parser.add_argument("--materials", nargs="+", default=list(gt.MATERIALS), choices=list(gt.MATERIALS))
    parser.add_argument("--models", nargs="+", default=list(nt.MODELS), choices=list(nt.MODELS))
    parser.add_argument("--steps", type=int, default=gt.STEPS, help="training trajectory's steps")
    parser.add_argument("--epochs", type=int, default=300, help="training epochs")
    parser.add_argument("--no-train", action="store_true", help="evaluate finished runs only (others: not trained)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0],
                        help="training seeds (default 0): the first seed's runs make the table and the plot; with "
                             "several, a second table gives every ratio per seed and the worst seed's. Seed 0's runs "
                             "are RUNS/<material>_<model>, seed s's RUNS/seed<s>/<material>_<model>")
    for name, value in BUDGET.items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=float, default=value,
                            help=f"training budget: {name} (default {value:g})")
    parser.add_argument("--doc", default=None, help="write the table into this Markdown file (e.g. docs/nclaw.md)")
    parser.add_argument("--plot", default=None, help="write the rollouts' PNG here (e.g. docs/nclaw_rollouts.png)")
    parser.add_argument("--json", default=None, help="write the results as JSON here")
    parser.add_argument("--threads", type=int, default=1, help="Taichi's CPU threads (default 1)")
    args = parser.parse_args(argv)
    sc.init("cpu", "f32", threads=args.threads, verbose=False)
    torch.set_num_threads(1)
    if len(set(args.seeds)) != len(args.seeds) or min(args.seeds) < 0:
        parser.error(f"--seeds must be distinct whole numbers >= 0, got {args.seeds}")
    begin = time.perf_counter()
    by_seed, keep = {}, ({} if args.plot else None)
    for seed in args.seeds:
        runs = seed_runs(args.runs, seed)
        if args.no_train:
            laws = load_runs(runs, args.materials, args.models)
        else:
            laws = train_missing(runs, args.materials, args.models, args.steps, args.epochs,
                                 {name: getattr(args, name) for name in BUDGET}, seed=seed)
        by_seed[seed] = evaluate(laws, args.steps, args.materials, keep=keep if not by_seed else None)
    results = by_seed[args.seeds[0]]
    text = table(results, args.models)
    if len(args.seeds) > 1:
        text += (f"\n\nThe ratios for each training seed ({', '.join(map(str, args.seeds))}; seed s's runs in "
                 f"{args.runs}/seed<s>, seed 0's in {args.runs}), and the worst seed's for the learned law:\n\n"
                 + seed_table(by_seed, args.models))
    print(text)
    print(f"({time.perf_counter() - begin:.0f} s)")
    if args.json:
        Path(args.json).write_text(json.dumps({"|".join(k): dict(v) for k, v in results.items()}, indent=1))
    if args.plot:
        plot(keep, results, args.plot, models=args.models)
    if args.doc:
        write_doc(args.doc, text, args, epoch_seconds(seed_runs(args.runs, args.seeds[0]), args.materials, args.models))
    return 0


def write_doc(path, text: str, args, seconds: dict) -> None:
    """Put the table (with its budget and command) into `path` between markers named after the runs'
    directory and budget (steps × epochs), replacing an earlier table of the same (the whole file if new)."""
    begin, end = (f"<!-- nclaw-table {args.runs} {args.steps}x{args.epochs}:{edge} -->" for edge in ("begin", "end"))
    budget = {name: getattr(args, name, value) for name, value in BUDGET.items()}
    options = "".join(f" --{name.replace('_', '-')} {value:g}" for name, value in budget.items() if value != BUDGET[name])
    per_epoch = ", ".join(f"{m}/{k} {s:.2f} s" for (m, k), s in seconds.items())
    seeds = f" --seeds {' '.join(map(str, args.seeds))}" if list(getattr(args, "seeds", [0])) != [0] else ""
    reduced = " (the paper's recipe is 1,000 steps and 300 epochs: this budget is REDUCED)" \
        if (args.steps, args.epochs) != (gt.STEPS, 300) else ""
    block = (f"{begin}\n**Budget: {args.steps} steps, {args.epochs} epochs per model**{reduced}; "
             f"stress scale {budget['stress_scale']:g} Pa, Adam lr elastic {budget['elastic_lr']:g}, plastic "
             f"{budget['plastic_lr']:g}, oracle {budget['oracle_lr']:g}"
             f"{f'; nclaw_iso flow penalty weight {nt.FLOW_WEIGHT:g} (volumetric, and deviatoric beyond {nt.DEVIATORIC_FROM:g} strain)' if 'nclaw_iso' in args.models else ''}"
             f". Seconds per epoch (median, {args.steps} "
             f"steps): {per_epoch}.\n\n"
             f"Command: `python -m simcore.learned.nclaw.evaluate --runs {args.runs} --materials "
             f"{' '.join(args.materials)} --models {' '.join(args.models)} --steps {args.steps} --epochs {args.epochs}"
             f"{options}{seeds}"
             f"{' --plot ' + args.plot if args.plot else ''} --doc {args.doc}`\n\n{text}\n{end}")
    path = Path(path)
    old = path.read_text() if path.exists() else ""
    if begin in old and end in old:
        new = old[:old.index(begin)] + block + old[old.index(end) + len(end):]
    else:
        new = (old.rstrip("\n") + "\n\n" if old else "") + block + "\n"
    path.write_text(new)


if __name__ == "__main__":
    raise SystemExit(main())
