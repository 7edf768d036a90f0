"""simcore against Genesis (PyPI `genesis-world`, its MPM solver) on the CPU: forward throughput, one run.

Genesis brings its own Taichi fork (`quadrants`, formerly `gstaichi`) and a large dependency tree, so it
lives in its own virtual environment (default `.venv-genesis` in the repository root), created here with
`python -m venv` when missing and filled with pip, the torch pin passed explicitly (also as a
constraints file) so that pip takes the CPU build of that exact version where a local wheel exists:

    <venv>/bin/python -m pip install -c <constraints> torch==2.13.0 genesis-world==1.4.5

Set-up, identical for both engines (float32 in both: `sc.init("cpu", "f32")`, `gs.init(precision="32")`):

- the very same particles: simcore samples a lattice (2 particles per cell per axis, spacing dx/2) in a
  box of 20 × 20 × 20 cells (0.3125 m) centred at x = z = 0.5 with its bottom at y = 6 dx = 0.094 m
  (64,000 particles; `--cells` changes the box), saves the positions to an .npy, and both engines start
  from that array: simcore as `sc.shapes.Points(x, volume_per_particle=(dx/2)³)`, Genesis as an MPM
  entity with morph `gs.morphs.Nowhere(n_particles=n)` whose particles are then set with
  `entity.set_particles_pos(x)`, `set_particles_vel(v0)` and `set_particles_active(True)` after every
  `scene.reset()` (the positions Genesis then holds are compared with the array: max |Δx| is printed).
  Particle volume (dx/2)³ in both (Genesis: `MPMOptions(particle_size=dx/2)`; its masses are
  ρ·particle_size³), so masses agree too (printed);
- a 64³-cell grid on the unit cube, nodes 0 … 64 per axis: simcore `Scene(dim=3, grid=64)`; Genesis
  `MPMOptions(grid_density=64, lower_bound=(-dx/2, dx/2, -dx/2), upper_bound=(1+dx/2,)*3)`, which Genesis
  rounds to cells 0 … 64 (checked at start-up). Genesis puts its walls 3 dx inside the bounds it is
  given, so these bounds put its floor at 3.5 dx, above node 3, and its other walls on nodes 0–2 and
  62–64; simcore's walls act on nodes 0–3 and 61–63 (index <= 3 or >= 61: since issue 13 they hold the
  nodes on their faces too). The floor, the only wall the body reaches, is thus on the same nodes
  (until simcore's walls changed, the bounds were −dx/2 on every axis and the floor on nodes 0–2). Both walls are frictionless and separating (`walls="separate"`, simcore's
  default; Genesis's `CubeBoundary` with restitution 0 zeroes an outward normal velocity). Genesis
  also clamps particle positions to its wall planes (the floor's at 3.5 dx, the others 2.5 dx from the
  domain's faces here), simcore does
  not (it raises only if a particle leaves the grid): the lowest particle after the impact differs by
  that much, the centre of mass hardly;
- dt = 2e-4 s, `--steps` substeps (default 200, 0.04 s), gravity (0, -9.8, 0) m/s². Genesis defaults to
  z-up gravity, but its MPM solver has no preferred axis (walls on all six faces), so it is given the
  same y-down gravity vector and the same coordinates: no axes are remapped;
- initial velocity (0, -2, 0) m/s for every particle: the body falls onto the floor wall (its lowest
  particles' stencils reach the wall nodes after about 0.021 s, step ~105) and is squashed for the rest
  of the run, so the centre-of-mass drop (printed side by side, with the lowest particle, the total mass
  and the start positions' distance from the shared array) tests the materials as well as gravity and
  dt; free fall would give 0.0878 m. (Genesis's `get_mass` sums in float32: it reads up to 0.04 % low.)

The two scenes:

- liquid: simcore `Fluid(bulk_modulus=K, gamma=1, viscosity=0, density=1e3)`, Genesis
  `MPM.Liquid(E=1e5, nu=0.3, rho=1e3)` (not viscous), with K = Genesis's λ(E, ν) = 57.7 kPa, the only
  modulus its inviscid liquid uses. Kirchhoff stresses: simcore τ = K (J − 1) I (Tait with γ = 1),
  Genesis τ = λ J (J − 1) I: equal to first order in J − 1, apart by a factor J otherwise.
  Genesis resets F to J^(1/3) I each step; simcore stores J only: the same state;
- jelly: simcore `NeoHookean(E=1e5, nu=0.3, density=1e3)`, Genesis `MPM.Elastic(E=1e5, nu=0.3, rho=1e3,
  model="neohooken")` (its spelling): both τ = μ(F Fᵀ − I) + λ log(J) I, the same model. Neither
  engine's path takes an SVD for these two materials (Genesis skips it when no material needs it).

Timed: simcore `scene.run(frames=F, frame_dt=steps·dt/F)` with `Scene(dt=2e-4)` (F = `--frames`, default
1: one frame of 200 substeps; the substep count is checked); Genesis `scene.step()` F times with
`SimOptions(dt=steps·dt/F, substeps=steps/F)`, i.e. the same 200 substeps of 2e-4 s. Wall clock inside
each engine's own process, excluding imports, scene building, kernel compilation (a full untimed
warm-up run first), `reset` and reading positions back. Each engine's per-step work outside the
kernels (simcore's state checks and per-frame record, Genesis's NaN check every 10 substeps, its empty
rigid solver, coupler and sensor hooks, its per-substep frame copy) is part of its time.

Threads: every (scene, thread count) pair runs in two fresh processes, one per engine, which take turns
(one busy at a time; the order flips each round) `--repeats` times; best and median are printed,
ratios from the best (and from the medians). Genesis's thread count is its `QD_NUM_THREADS` environment
variable (Genesis reads it in `gs.init` and passes it to quadrants as `cpu_max_num_threads`; unset,
Genesis uses 1 thread on the CPU, its default); simcore's is `sc.init(..., threads=T)` (Taichi's
`cpu_max_num_threads`; unset, all cores). Both engines get the same count in a row; torch's intra-op
threads are set to the same number in the Genesis process. Two checks on the threads really used are
printed: process CPU time over wall time in each engine's best run (on a loaded machine this falls
below the thread count), and the largest number, over the runs, of OS threads that each ran for at
least 10 % of the timed wall clock (simcore's count includes the calling thread, which runs its serial
loops).

    python benchmarks/genesis_peer.py [--repeats 3] [--threads 1,2] [--json out.json] [--venv PATH]
    python benchmarks/genesis_peer.py --quick        # smoke test: 8³-cell box, 20 steps, 1 thread, 1 round
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

from peer_process import PROTOCOL, REPO, Child, busy_threads, ensure_venv, thread_cpu

DEFAULT_VENV = REPO / ".venv-genesis"

SCENE = {
    "grid": 64, "dt": 2e-4, "steps": 200, "frames": 1, "cells": 20, "bottom_cells": 6,
    "velocity": (0.0, -2.0, 0.0), "gravity": (0.0, -9.8, 0.0), "E": 1e5, "nu": 0.3, "density": 1e3,
}
MATERIALS = ("liquid", "jelly")


def lame_lambda(E, nu):
    return E * nu / ((1 + nu) * (1 - 2 * nu))


# ---------------------------------------------------------------------------------------------------
# The peer: run by the venv's python. Reads the scene and simcore's particle positions from argv.
# ---------------------------------------------------------------------------------------------------
PEER_SCRIPT = r'''
import json, os, resource, sys, time
import numpy as np

cfg = json.loads(sys.argv[1])

def emit(obj):
    print("@@ " + json.dumps(obj), flush=True)

def cpu_seconds():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime

sys.path.insert(0, cfg["benchmarks"])  # peer_process.py: standard library only
from peer_process import busy_threads, thread_cpu

x0 = np.load(cfg["positions"]).astype(np.float32)
n = len(x0)
dx = 1.0 / cfg["grid"]
steps, frames = cfg["steps"], cfg["frames"]
import torch
torch.set_num_threads(cfg["threads"])
import genesis as gs
import importlib.metadata as md

start = time.perf_counter()
gs.init(backend=gs.cpu, precision="32", logging_level="warning")
scene = gs.Scene(
    sim_options=gs.options.SimOptions(dt=steps * cfg["dt"] / frames, substeps=steps // frames,
                                      gravity=tuple(cfg["gravity"])),
    mpm_options=gs.options.MPMOptions(grid_density=cfg["grid"], particle_size=dx / 2,
                                      lower_bound=(-dx / 2, dx / 2, -dx / 2), upper_bound=(1 + dx / 2,) * 3),
    show_viewer=False)
if cfg["material"] == "liquid":
    material = gs.materials.MPM.Liquid(E=cfg["E"], nu=cfg["nu"], rho=cfg["density"])
else:
    material = gs.materials.MPM.Elastic(E=cfg["E"], nu=cfg["nu"], rho=cfg["density"], model="neohooken")
entity = scene.add_entity(material=material, morph=gs.morphs.Nowhere(n_particles=n))
scene.build()
build_s = time.perf_counter() - start
solver = entity.solver
grid = {"lower_cell": [int(c) for c in solver._lower_bound_cell], "grid_res": [int(c) for c in solver._grid_res],
        "wall_lower": [float(c) for c in solver.boundary.lower], "wall_upper": [float(c) for c in solver.boundary.upper],
        "substep_dt": float(solver.substep_dt), "lam": float(material.lam), "mu": float(material.mu)}
if grid["lower_cell"] != [0, 0, 0] or grid["grid_res"] != [cfg["grid"] + 1] * 3:
    raise SystemExit(f"Genesis laid its grid out differently than expected: {grid}")

x0_t = torch.from_numpy(x0)
v0_t = torch.tensor(cfg["velocity"], dtype=torch.float32).expand(n, 3).contiguous()
active_t = torch.ones(n, dtype=torch.bool)

def reset():
    scene.reset()
    entity.set_particles_pos(x0_t)   # also resets v, F, C, Jp of those particles
    entity.set_particles_vel(v0_t)
    entity.set_particles_active(active_t)

def run():
    reset()
    x_start = entity.get_particles_pos().cpu().numpy()
    tasks0, cpu0, t0 = thread_cpu(), cpu_seconds(), time.perf_counter()
    for _ in range(frames):
        scene.step()
    seconds = time.perf_counter() - t0
    cpu, busy = cpu_seconds() - cpu0, busy_threads(tasks0, thread_cpu(), seconds)
    x = entity.get_particles_pos().cpu().numpy().astype(np.float64)
    return {"seconds": seconds, "cpu_s": cpu, "busy_threads": busy, "com_drop": float(x0[:, 1].mean() - x[:, 1].mean()),
            "min_y": float(x[:, 1].min()), "finite": bool(np.isfinite(x).all()),
            "start_max_abs_diff": float(np.abs(x_start - x0).max())}

start = time.perf_counter()
warm = run()
emit({"ready": True, "engine": "genesis", "particles": n, "precision": "float32", "build_s": build_s,
      "first_run_s": time.perf_counter() - start, "warmup": warm, "mass": float(entity.get_mass()[0]),
      "grid": grid, "genesis": md.version("genesis-world"), "quadrants": md.version("quadrants"),
      "torch": torch.__version__, "numpy": np.__version__, "threads": cfg["threads"],
      "QD_NUM_THREADS": os.environ.get("QD_NUM_THREADS"), "torch_threads": torch.get_num_threads()})
for line in sys.stdin:
    cmd = line.strip()
    if cmd == "quit":
        break
    emit(run())
'''


# ---------------------------------------------------------------------------------------------------
# simcore: run by this interpreter as `--child`.
# ---------------------------------------------------------------------------------------------------
def simcore_child(cfg: dict, simcore_src: Path):
    import inspect
    import resource

    import numpy as np

    sys.path.insert(0, str(simcore_src))  # this checkout's simcore (or --simcore-src), installed or not
    import simcore as sc

    def emit(obj):
        print(PROTOCOL + json.dumps(obj), flush=True)

    def cpu_seconds():
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime

    threads_by = "sc.init(threads=)"
    if "threads" in inspect.signature(sc.init).parameters:
        sc.init("cpu", "f32", threads=cfg["threads"])
    else:  # Taichi reads TI_<option> for any ti.init option not given; the parent set this one
        threads_by = "TI_CPU_MAX_NUM_THREADS"
        sc.init("cpu", "f32")
    dx = 1.0 / cfg["grid"]
    positions = Path(cfg["positions"])
    if positions.exists():
        x0 = np.load(positions)
    else:  # simcore's own lattice sampler: spacing dx/2, particles at (k + 1/2)·spacing
        side = cfg["cells"] * dx
        center = (0.5, (cfg["bottom_cells"] + cfg["cells"] / 2) * dx, 0.5)
        x0, _ = sc.shapes.Box(center=center, size=(side,) * 3).sample(3, dx / 2)
        x0 = x0.astype(np.float32)
        np.save(positions, x0)
    if cfg["material"] == "liquid":
        material = sc.materials.Fluid(bulk_modulus=lame_lambda(cfg["E"], cfg["nu"]), gamma=1.0, viscosity=0.0,
                                      density=cfg["density"])
    else:
        material = sc.materials.NeoHookean(E=cfg["E"], nu=cfg["nu"], density=cfg["density"])
    start = time.perf_counter()
    scene = sc.Scene(dim=3, grid=cfg["grid"], dt=cfg["dt"], gravity=cfg["gravity"], walls="separate")
    scene.add_body(sc.shapes.Points(x0.astype(np.float64), volume_per_particle=(dx / 2) ** 3), material,
                   velocity=cfg["velocity"], name=cfg["material"])
    build_s = time.perf_counter() - start
    steps, frames = cfg["steps"], cfg["frames"]
    x_ref = x0.astype(np.float64)

    def run():
        scene.reset()
        tasks0, cpu0, t0 = thread_cpu(), cpu_seconds(), time.perf_counter()
        traj = scene.run(frames=frames, frame_dt=steps * cfg["dt"] / frames, progress=False)
        seconds = time.perf_counter() - t0
        cpu, busy = cpu_seconds() - cpu0, busy_threads(tasks0, thread_cpu(), seconds)
        substeps = int(sum(traj.meta["substeps"]))
        if substeps != steps:
            raise SystemExit(f"simcore ran {substeps} substeps, not {steps}")
        x = np.asarray(traj.x[-1], dtype=np.float64)
        return {"seconds": seconds, "cpu_s": cpu, "busy_threads": busy,
                "com_drop": float(x_ref[:, 1].mean() - x[:, 1].mean()),
                "min_y": float(x[:, 1].min()), "finite": bool(np.isfinite(x).all()),
                "start_max_abs_diff": float(np.abs(traj.x[0] - x_ref).max()), "mass": float(traj.mass.sum())}

    start = time.perf_counter()
    warm = run()  # compiles the kernels (or loads them from Taichi's offline cache)
    import taichi as ti

    emit({"ready": True, "engine": "simcore", "particles": int(len(x0)), "precision": "float32",
          "build_s": build_s, "first_run_s": time.perf_counter() - start, "warmup": warm, "mass": warm["mass"],
          "taichi": ".".join(map(str, ti.__version__)) if isinstance(ti.__version__, (list, tuple)) else str(ti.__version__), "numpy": np.__version__, "threads": cfg["threads"], "threads_by": threads_by,
          "simcore_file": sc.__file__})
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "quit":
            break
        emit(run())


# ---------------------------------------------------------------------------------------------------
# The parent: venv, two children per configuration taking turns, report.
# ---------------------------------------------------------------------------------------------------
def child_env(threads: int) -> dict:
    env = dict(os.environ)
    env["QD_NUM_THREADS"] = str(threads)          # Genesis → quadrants cpu_max_num_threads
    env["TI_CPU_MAX_NUM_THREADS"] = str(threads)  # simcore's fallback if sc.init has no threads=
    env["OMP_NUM_THREADS"] = str(threads)
    return env


def measure(args, python: Path, tmp: Path, material: str, threads: int, scene: dict) -> dict:
    positions = tmp / "positions.npy"
    cfg = dict(scene, material=material, threads=threads, positions=str(positions),
               benchmarks=str(Path(__file__).resolve().parent))
    peer_script = tmp / "peer.py"
    tag = f"{material}_t{threads}"
    children = []
    try:
        simcore = Child(f"simcore ({tag})", [sys.executable, __file__, "--child", json.dumps(cfg),
                                             "--simcore-src", str(args.simcore_src.resolve())],
                        tmp / f"simcore_{tag}.log", child_env(threads))
        children.append(simcore)
        s_info = simcore.read()  # writes positions.npy on first use
        peer = Child(f"genesis ({tag})", [str(python), str(peer_script), json.dumps(cfg)],
                     tmp / f"genesis_{tag}.log", child_env(threads))
        children.append(peer)
        g_info = peer.read()
        if g_info["particles"] != s_info["particles"]:
            raise RuntimeError(f"particle counts differ: {g_info['particles']} vs {s_info['particles']}")
        results = {"simcore": [], "genesis": []}
        for r in range(args.repeats):  # take turns, one process busy at a time; flip the order each round
            order = (("genesis", peer), ("simcore", simcore))
            for who, child in (order if r % 2 == 0 else order[::-1]):
                answer = child.ask("run")
                if not answer["finite"]:
                    raise RuntimeError(f"{who} ({tag}): the state went non-finite")
                results[who].append(answer)
            print(f"  {tag} round {r + 1}/{args.repeats}: simcore {results['simcore'][-1]['seconds']:.2f} s, "
                  f"genesis {results['genesis'][-1]['seconds']:.2f} s", file=sys.stderr)
    finally:
        for child in children:
            child.close()
    n, steps = s_info["particles"], scene["steps"]
    timings = {}
    for who, answers in results.items():
        secs = [a["seconds"] for a in answers]
        best = min(range(len(secs)), key=secs.__getitem__)
        timings[who] = {"best_s": secs[best], "median_s": statistics.median(secs), "all_s": secs,
                        "M_particle_steps_per_s": n * steps / secs[best] / 1e6,
                        "M_particle_steps_per_s_median": n * steps / statistics.median(secs) / 1e6,
                        "cpu_over_wall_best": answers[best]["cpu_s"] / secs[best],
                        "busy_threads": [a["busy_threads"] for a in answers],
                        "com_drop": answers[-1]["com_drop"], "min_y": answers[-1]["min_y"],
                        "start_max_abs_diff": answers[-1]["start_max_abs_diff"]}
    return {"material": material, "threads": threads, "particles": n, "simcore": s_info, "genesis": g_info,
            "timings": timings,
            "ratio_best": timings["genesis"]["best_s"] / timings["simcore"]["best_s"],
            "ratio_median": timings["genesis"]["median_s"] / timings["simcore"]["median_s"]}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser_defaults = {"cells": SCENE["cells"], "steps": SCENE["steps"], "repeats": 3, "threads": "1,2"}
    parser.add_argument("--repeats", type=int, default=None, help="timed runs of each engine per configuration (default 3)")
    parser.add_argument("--steps", type=int, default=None, help="substeps of dt = 2e-4 s (default 200)")
    parser.add_argument("--frames", type=int, default=SCENE["frames"],
                        help="frames (simcore) / scene.step() calls (Genesis) the substeps are split into; must "
                             "divide --steps (default 1)")
    parser.add_argument("--cells", type=int, default=None,
                        help="side of the particle box in grid cells, 2 particles per cell per axis "
                             "(default 20: 64,000 particles)")
    parser.add_argument("--threads", default=None, help="CPU thread counts, comma separated (default 1,2)")
    parser.add_argument("--scenes", default=",".join(MATERIALS), help="liquid,jelly (default both)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke test: --cells 8 --steps 20 --repeats 1 --threads 1 (unless given)")
    parser.add_argument("--venv", type=Path, default=DEFAULT_VENV, help=f"Genesis's venv (default {DEFAULT_VENV})")
    parser.add_argument("--torch-spec", default="torch==2.13.0", help="torch pin for the venv (default torch==2.13.0)")
    parser.add_argument("--peer-spec", default="genesis-world==1.4.5",
                        help="the peer package (default genesis-world==1.4.5)")
    parser.add_argument("--no-install", action="store_true", help="fail instead of creating or filling the venv")
    parser.add_argument("--json", type=Path, default=None, help="also write the results to this JSON file")
    parser.add_argument("--simcore-src", type=Path, default=REPO,
                        help="directory holding the simcore package to measure (default: this checkout), e.g. a "
                             "`git archive HEAD simcore | tar -x -C DIR` export while the working tree is mid-edit")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        simcore_child(json.loads(args.child), args.simcore_src.resolve())
        return
    quick = {"cells": 8, "steps": 20, "repeats": 1, "threads": "1"}
    for name, value in quick.items():  # --quick changes only what was not given
        if getattr(args, name) is None:
            setattr(args, name, value if args.quick else parser_defaults[name])
    threads = [int(t) for t in args.threads.split(",") if t.strip()]
    materials = [m.strip() for m in args.scenes.split(",") if m.strip()]
    if any(m not in MATERIALS for m in materials) or not materials:
        parser.error(f"--scenes: choose from {', '.join(MATERIALS)}")
    if args.steps < 1 or args.frames < 1 or args.steps % args.frames or args.repeats < 1 or args.cells < 1:
        parser.error("--steps, --frames, --repeats, --cells must be positive and --frames must divide --steps")
    if args.cells + SCENE["bottom_cells"] > SCENE["grid"] - 4:
        parser.error("--cells: the box must fit in the grid")
    scene = dict(SCENE, steps=args.steps, frames=args.frames, cells=args.cells)

    python = ensure_venv(args.venv.resolve(), [args.torch_spec, args.peer_spec], not args.no_install)
    tmp = Path(tempfile.mkdtemp(prefix="genesis_peer_"))
    (tmp / "peer.py").write_text(PEER_SCRIPT)
    print(f"logs in {tmp}", file=sys.stderr)
    rows = []
    for material in materials:
        for t in threads:
            print(f"{material}, {t} thread(s): starting both engines (Genesis's first build compiles for a minute "
                  "or more) ...", file=sys.stderr)
            rows.append(measure(args, python, tmp, material, t, scene))
    report = summarize(args, scene, rows)
    print_report(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.json}")


def summarize(args, scene, rows):
    t = scene["steps"] * scene["dt"]
    v = -scene["velocity"][1]
    first = rows[0]
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "load_average_at_end": list(os.getloadavg()),
        "command": " ".join([Path(sys.argv[0]).as_posix()] + sys.argv[1:]), "repeats": args.repeats,
        "scene": scene, "particles": first["particles"], "precision": "float32 (both engines)",
        "liquid_bulk_modulus_Pa": lame_lambda(scene["E"], scene["nu"]),
        "free_fall_com_drop": v * t + 0.5 * 9.8 * t * t,
        "versions": {"genesis": first["genesis"]["genesis"], "quadrants": first["genesis"]["quadrants"],
                     "genesis_torch": first["genesis"]["torch"], "taichi": first["simcore"]["taichi"]},
        "rows": rows,
    }


def print_report(rep):
    s = rep["scene"]
    print(f"Genesis MPM peer: {rep['particles']} particles (lattice, dx/2 spacing), {s['grid']}^3 grid on the unit "
          f"cube, {s['steps']} substeps of dt={s['dt']:g} s in {s['frames']} frame(s), v0={tuple(s['velocity'])}, "
          f"g={tuple(s['gravity'])}, E={s['E']:g} Pa, nu={s['nu']}, density={s['density']:g} (liquid: K = lambda = "
          f"{rep['liquid_bulk_modulus_Pa']:.4g} Pa); {rep['precision']}; {rep['machine']}; best (median) of "
          f"{rep['repeats']}")
    vs = rep["versions"]
    print(f"genesis-world {vs['genesis']} (quadrants {vs['quadrants']}, torch {vs['genesis_torch']}) | simcore on "
          f"taichi {vs['taichi']}")
    for row in rep["rows"]:
        sg, gg = row["simcore"], row["genesis"]
        print(f"{row['material']}, {row['threads']} thread(s): start-up (excluded): simcore build {sg['build_s']:.1f} s "
              f"+ first run {sg['first_run_s']:.1f} s; Genesis build {gg['build_s']:.1f} s + first run "
              f"{gg['first_run_s']:.1f} s")
    print(f"{'scene':<7} {'threads':>7} {'simcore M p-steps/s':>20} {'Genesis M p-steps/s':>20} "
          f"{'simcore/Genesis':>16} {'(medians)':>10} {'cpu/wall s, G':>14} {'busy threads s, G':>18}")
    for row in rep["rows"]:
        ts, tg = row["timings"]["simcore"], row["timings"]["genesis"]
        print(f"{row['material']:<7} {row['threads']:>7} {ts['M_particle_steps_per_s']:>20.3f} "
              f"{tg['M_particle_steps_per_s']:>20.3f} {row['ratio_best']:>15.2f}x {row['ratio_median']:>9.2f}x "
              f"{ts['cpu_over_wall_best']:>7.2f}, {tg['cpu_over_wall_best']:.2f} "
              f"{max(ts['busy_threads']):>11}, {max(tg['busy_threads'])}")
    by = {(r["material"], r["threads"]): r for r in rep["rows"]}
    for material in dict.fromkeys(r["material"] for r in rep["rows"]):
        threads = sorted(t for (m, t) in by if m == material)
        if len(threads) > 1 and 1 in threads:
            hi = threads[-1]
            ratio = by[(material, 1)]["timings"]["genesis"]["best_s"] / by[(material, hi)]["timings"]["simcore"]["best_s"]
            print(f"{material}: each at its default (simcore {hi} threads, Genesis 1 thread): simcore/Genesis "
                  f"{ratio:.2f}x")
    print(f"physics after {s['steps']} steps (free fall would drop the centre of mass {rep['free_fall_com_drop']:.4f} m):")
    for row in rep["rows"]:
        ts, tg = row["timings"]["simcore"], row["timings"]["genesis"]
        print(f"  {row['material']:<7} {row['threads']} thread(s): centre-of-mass drop simcore {ts['com_drop']:.4f} m, "
              f"Genesis {tg['com_drop']:.4f} m; lowest particle y simcore {ts['min_y']:.4f}, Genesis {tg['min_y']:.4f}; "
              f"mass simcore {row['simcore']['mass']:.4f} kg, Genesis {row['genesis']['mass']:.4f} kg; start "
              f"positions vs the shared array: max |dx| simcore {ts['start_max_abs_diff']:.1e}, Genesis "
              f"{tg['start_max_abs_diff']:.1e} m")


if __name__ == "__main__":
    main()
