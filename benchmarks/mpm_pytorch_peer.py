"""simcore against mpm-pytorch (PyPI; a pure-PyTorch MLS-MPM): forward and forward+backward, one run.

The peer needs numpy<2, so it lives in its own virtual environment (default `.venv-mpm-pytorch` in the
repository root), created here with `python -m venv` when missing and filled with pip, the torch pin
passed explicitly (also as a constraints file) so that pip takes the CPU build of that exact version
where a local wheel exists:

    <venv>/bin/python -m pip install -c <constraints> torch==2.13.0 "numpy<2" mpm-pytorch==0.1.1

Set-up, identical for both engines (float32 in both: the peer only runs in float32):
a 3D fixed-corotated jelly (E = 1e5 Pa, nu = 0.3, density 1e3 kg/m³), a 20 × 20 × 20 lattice of 8,000
particles (2 per cell per axis, volume (dx/2)³ each; the peer is given simcore's positions and the same
particle volume and mass) in a box of 10 cells centred at (0.5, 0.35, 0.5), a 32³ grid on [0, 1]³,
initial velocity (0, -2, 0) m/s, gravity (0, -9.8, 0) m/s², dt = 1e-3 s, 100 steps (0.1 s): the jelly
falls 0.1 m onto a sticky floor (simcore's `walls={"-y": "sticky"}`: grid nodes with y index <= 3 since
issue 13, < 3 before; the peer's `surface_collider` with `surface: sticky` at y = 3.5 dx, nodes <= 3, at
2.5 dx until simcore's walls changed), lands at about step 44 and is squashed.

Timed (each engine in its own process, wall clock inside that process, imports, set-up and warm-up
excluded; the two processes take turns, one at a time, so both see the same machine load):

- simcore forward: `scene.rollout(...)` under `torch.no_grad()` (the gradient solver) and
  `scene.run(...)` (the forward solver; both scatter P2G serially on the CPU);
- simcore forward+backward: `scene.rollout(...)` with E and the initial velocity as torch leaves,
  loss = mean(x_T²), `loss.backward()`, twice: with segment checkpointing (k = √T = 10, segments
  recomputed in backward) and with every state kept (k = T: nothing recomputed, as the peer, which
  keeps every step's intermediates; this is also simcore's default here, since it fits in memory);
- mpm-pytorch forward: its step loop (`CorotatedElasticity` → `MPMSolver.__call__` →
  `IdentityPlasticity`, as in its `simulate.py`) under `torch.no_grad()`;
- mpm-pytorch forward+backward: the same loop with autograd on, same loss, `loss.backward()`.

simcore's first calls compile Taichi kernels (or load them from Taichi's offline cache): reported
separately, not in the timings. The peer warms up with two steps forward and backward (Warp compiles
or loads its SVD kernel there). Each measurement is repeated `--repeats` times; best and median are
printed, ratios from the best. Physics check: both engines' centre-of-mass drop, lowest particle and
gradients dL/dE, dL/dv0 are printed side by side.

    python benchmarks/mpm_pytorch_peer.py [--repeats 3] [--json out.json] [--venv PATH]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

from peer_process import PROTOCOL, REPO, Child, ensure_venv

DEFAULT_VENV = REPO / ".venv-mpm-pytorch"

SCENE = {
    "grid": 32, "steps": 100, "dt": 1e-3, "E": 1e5, "nu": 0.3, "density": 1e3,
    "center": (0.5, 0.35, 0.5), "cells": 10, "velocity": (0.0, -2.0, 0.0), "gravity": (0.0, -9.8, 0.0),
}

# ---------------------------------------------------------------------------------------------------
# The peer: run by the venv's python. Reads the scene (and simcore's particle positions) from argv.
# ---------------------------------------------------------------------------------------------------
PEER_SCRIPT = r'''
import json, resource, sys, time
import numpy as np
import torch

cfg = json.loads(sys.argv[1])
x_init = torch.from_numpy(np.load(cfg["positions"]).astype(np.float32))

def emit(obj):
    print("@@ " + json.dumps(obj), flush=True)

t_import = time.perf_counter()
from mpm_pytorch import MPMSolver, set_boundary_conditions
from mpm_pytorch.constitutive_models import CorotatedElasticity, IdentityPlasticity
import importlib.metadata as md

n = x_init.shape[0]
side = (cfg["volume"] * n) ** (1 / 3)   # the peer's particle volume is prod(size) / n
solver = MPMSolver(x_init, rho=cfg["density"], num_grids=cfg["grid"], dt=cfg["dt"], gravity=list(cfg["gravity"]),
                   size=[side] * 3, device="cpu")
dx = 1.0 / cfg["grid"]
# The floor: grid nodes 0-3 sticky, as simcore's `walls={"-y": "sticky"}` (its walls hold the nodes i <= 3, their
# faces included, since issue 13); the peer's surface collider holds the nodes below its point.
set_boundary_conditions(solver, [{"type": "surface_collider", "point": [0.0, 3.5 * dx, 0.0],
                                  "normal": [0.0, 1.0, 0.0], "surface": "sticky", "friction": 0.0,
                                  "start_time": 0.0, "end_time": 1e3}])
elasticity = CorotatedElasticity(E=cfg["E"], nu=cfg["nu"])
plasticity = IdentityPlasticity()
E = torch.tensor(cfg["E"], dtype=torch.float32, requires_grad=True)
v0 = torch.tensor(cfg["velocity"], dtype=torch.float32, requires_grad=True)

def simulate(steps):
    solver.reset()
    x = x_init.clone()
    v = v0.expand(n, 3).contiguous()
    C = torch.zeros((n, 3, 3))
    F = torch.eye(3).unsqueeze(0).repeat(n, 1, 1)
    log_E = torch.log(E)
    for _ in range(steps):
        stress = elasticity(F, log_E=log_E)
        x, v, C, F = solver(x, v, C, F, stress)
        F = plasticity(F)
    return x

def summary(x):
    x = x.detach()
    return {"com_drop": float(x_init[:, 1].mean() - x[:, 1].mean()), "min_y": float(x[:, 1].min()),
            "finite": bool(torch.isfinite(x).all())}

def fwd(steps):
    start = time.perf_counter()
    with torch.no_grad():
        x = simulate(steps)
    out = {"seconds": time.perf_counter() - start}
    out.update(summary(x))
    return out

def fwdbwd(steps):
    E.grad = None
    v0.grad = None
    start = time.perf_counter()
    x = simulate(steps)
    loss = (x ** 2).mean()
    loss.backward()
    out = {"seconds": time.perf_counter() - start, "loss": float(loss), "dL_dE": float(E.grad),
           "dL_dv0": [float(g) for g in v0.grad],
           "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    out.update(summary(x))
    return out

warm = time.perf_counter()
fwd(2)
fwdbwd(2)
warmup_s = time.perf_counter() - warm
# torch's intra-op threads: on a loaded 2-core machine one thread can beat two by several times, so
# unless told, give the peer whichever of 1 .. default is faster on a short forward, measured now.
default_threads = torch.get_num_threads()
trial = {}
if cfg["peer_threads"]:
    torch.set_num_threads(cfg["peer_threads"])
else:
    for threads in sorted({1, default_threads}):
        torch.set_num_threads(threads)
        trial[threads] = min(fwd(5)["seconds"] for _ in range(2))
    torch.set_num_threads(min(trial, key=trial.get))
emit({"ready": True, "engine": "mpm-pytorch", "particles": n, "precision": "float32",
      "warmup_s": warmup_s, "torch": torch.__version__, "torch_cuda": torch.version.cuda,
      "numpy": np.__version__, "mpm_pytorch": md.version("mpm-pytorch"), "warp": md.version("warp-lang"),
      "threads": torch.get_num_threads(), "default_threads": default_threads,
      "thread_trial_5_steps_s": {str(k): v for k, v in trial.items()}})
for line in sys.stdin:
    cmd = line.strip()
    if cmd == "quit":
        break
    emit({"fwd": fwd, "fwdbwd": fwdbwd}[cmd](cfg["steps"]))
'''


# ---------------------------------------------------------------------------------------------------
# simcore: run by this interpreter as `--child`.
# ---------------------------------------------------------------------------------------------------
def build_scene(E=None, velocity=None):
    import simcore as sc

    s = SCENE
    dx = 1.0 / s["grid"]
    scene = sc.Scene(dim=3, grid=s["grid"], dt=s["dt"], gravity=s["gravity"], walls={"-y": "sticky"})
    scene.add_body(sc.shapes.Box(center=s["center"], size=(s["cells"] * dx,) * 3),
                   sc.materials.FixedCorotated(E=s["E"] if E is None else E, nu=s["nu"], density=s["density"]),
                   velocity=s["velocity"] if velocity is None else velocity, name="jelly")
    return scene


def simcore_child(positions_path: str | None, simcore_src: Path):
    import numpy as np
    import taichi as ti
    import torch

    sys.path.insert(0, str(simcore_src))  # this checkout's simcore (or --simcore-src), installed or not
    import simcore as sc

    def emit(obj):
        print(PROTOCOL + json.dumps(obj), flush=True)

    s = SCENE
    frame_dt = s["steps"] * s["dt"]
    sc.init("cpu", "f32")
    E = torch.tensor(s["E"], dtype=torch.float32, requires_grad=True)
    v0 = torch.tensor(s["velocity"], dtype=torch.float32, requires_grad=True)
    scene = build_scene(E, v0)
    x0 = scene.bodies[0].x
    if positions_path:
        np.save(positions_path, x0)

    def summary(x):
        x = np.asarray(x, dtype=np.float64)
        return {"com_drop": float(x0[:, 1].mean() - x[:, 1].mean()), "min_y": float(x[:, 1].min()),
                "finite": bool(np.isfinite(x).all())}

    def run():
        scene.reset()
        ti.sync()
        start = time.perf_counter()
        traj = scene.run(frames=1, frame_dt=frame_dt, progress=False)
        ti.sync()
        out = {"seconds": time.perf_counter() - start, "substeps": traj.meta["substeps"][0]}
        out.update(summary(traj.x[-1]))
        return out

    def fwd():
        start = time.perf_counter()
        with torch.no_grad():
            r = scene.rollout(frames=1, frame_dt=frame_dt)
        out = {"seconds": time.perf_counter() - start, "substeps": r.meta["substeps"][0]}
        out.update(summary(r.x[-1].numpy()))
        return out

    def fwdbwd(k=None):
        E.grad = None
        v0.grad = None
        start = time.perf_counter()
        r = scene.rollout(frames=1, frame_dt=frame_dt, checkpoint_every=k)
        loss = (r.x[-1] ** 2).mean()
        loss.backward()
        out = {"seconds": time.perf_counter() - start, "loss": float(loss), "dL_dE": float(E.grad),
               "dL_dv0": [float(g) for g in v0.grad], "checkpoint_every": r.meta["checkpoint_every"],
               "substeps": r.meta["substeps"][0]}
        out.update(summary(r.x[-1].detach().numpy()))
        return out

    # Checkpointed: k = √T = 10 (the default would keep all 100 substeps here: they fit in memory).
    handlers = {"run": run, "fwd": fwd, "fwdbwd": lambda: fwdbwd(10), "fwdbwd_all": lambda: fwdbwd(s["steps"])}
    first = {}
    for name in ("run", "fwd", "fwdbwd", "fwdbwd_all"):  # first calls compile (or load cached) kernels
        start = time.perf_counter()
        handlers[name]()
        first[name] = time.perf_counter() - start
    steady = {name: handlers[name]()["seconds"] for name in ("run", "fwd", "fwdbwd", "fwdbwd_all")}
    emit({"ready": True, "engine": "simcore", "particles": int(len(x0)), "precision": "float32",
          "first_call_s": first, "compile_s": {k: max(first[k] - steady[k], 0.0) for k in first},
          "volume": float(scene.bodies[0].volume[0]), "torch": torch.__version__, "taichi": ti.__version__,
          "threads": os.cpu_count(), "simcore_file": sc.__file__})
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "quit":
            break
        emit(handlers[cmd]())


# ---------------------------------------------------------------------------------------------------
# The parent: venv, two children taking turns, report.
# ---------------------------------------------------------------------------------------------------
def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="timed repetitions of each measurement (default 3)")
    parser.add_argument("--venv", type=Path, default=DEFAULT_VENV, help=f"the peer's venv (default {DEFAULT_VENV})")
    parser.add_argument("--torch-spec", default="torch==2.13.0", help="torch pin for the venv (default torch==2.13.0)")
    parser.add_argument("--peer-spec", default="mpm-pytorch==0.1.1", help="the peer package (default mpm-pytorch==0.1.1)")
    parser.add_argument("--peer-threads", type=int, default=0,
                        help="torch threads for the peer (default 0: the faster of 1 and torch's default, "
                             "tried on 5 steps after warm-up)")
    parser.add_argument("--no-install", action="store_true", help="fail instead of creating or filling the venv")
    parser.add_argument("--json", type=Path, default=None, help="also write the results to this JSON file")
    parser.add_argument("--simcore-src", type=Path, default=REPO,
                        help="directory holding the simcore package to measure (default: this checkout), e.g. a "
                             "`git archive HEAD simcore | tar -x -C DIR` export while the working tree is mid-edit")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--positions", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        simcore_child(args.positions, args.simcore_src.resolve())
        return

    python = ensure_venv(args.venv.resolve(), [args.torch_spec, "numpy<2", args.peer_spec], not args.no_install)
    tmp = Path(tempfile.mkdtemp(prefix="mpm_peer_"))
    positions = tmp / "positions.npy"
    peer_script = tmp / "peer.py"
    peer_script.write_text(PEER_SCRIPT)
    children = []
    try:
        print("simcore: building and compiling (first use of the 3D adjoint kernels can take minutes) ...",
              file=sys.stderr)
        simcore = Child("simcore", [sys.executable, __file__, "--child", "--positions", str(positions),
                                    "--simcore-src", str(args.simcore_src.resolve())],
                        tmp / "simcore.log")
        children.append(simcore)
        s_info = simcore.read()
        cfg = dict(SCENE, positions=str(positions), volume=s_info["volume"], peer_threads=args.peer_threads)
        peer = Child("mpm-pytorch", [str(python), str(peer_script), json.dumps(cfg)], tmp / "peer.log")
        children.append(peer)
        p_info = peer.read()
        if p_info["particles"] != s_info["particles"]:
            raise RuntimeError(f"particle counts differ: {p_info['particles']} vs {s_info['particles']}")
        results = {("peer", "fwd"): [], ("peer", "fwdbwd"): [], ("simcore", "fwd"): [], ("simcore", "run"): [],
                   ("simcore", "fwdbwd"): [], ("simcore", "fwdbwd_all"): []}
        for r in range(args.repeats):  # take turns, one process busy at a time
            print(f"round {r + 1}/{args.repeats} ...", file=sys.stderr)
            for who, cmd in (("peer", "fwd"), ("simcore", "fwd"), ("simcore", "run"), ("peer", "fwdbwd"),
                             ("simcore", "fwdbwd"), ("simcore", "fwdbwd_all")):
                answer = (peer if who == "peer" else simcore).ask(cmd)
                if not answer["finite"]:
                    raise RuntimeError(f"{who} {cmd}: the state went non-finite")
                results[(who, cmd)].append(answer)
    finally:
        for child in children:
            child.close()

    report = summarize(args, s_info, p_info, results)
    print_report(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.json}")


def summarize(args, s_info, p_info, results):
    n, steps = s_info["particles"], SCENE["steps"]
    timings = {}
    for (who, cmd), answers in results.items():
        secs = [a["seconds"] for a in answers]
        timings[f"{who}_{cmd}"] = {"best_s": min(secs), "median_s": statistics.median(secs), "all_s": secs,
                                   "M_particle_steps_per_s": n * steps / min(secs) / 1e6}
    best = {k: v["best_s"] for k, v in timings.items()}
    med = {k: v["median_s"] for k, v in timings.items()}

    def ratios(t):
        return {"speedup_forward_rollout": t["peer_fwd"] / t["simcore_fwd"],
                "speedup_forward_run": t["peer_fwd"] / t["simcore_run"],
                "speedup_forward_backward": t["peer_fwdbwd"] / t["simcore_fwdbwd"],
                "speedup_forward_backward_all_kept": t["peer_fwdbwd"] / t["simcore_fwdbwd_all"],
                "simcore_fwdbwd_all_over_fwd_rollout": t["simcore_fwdbwd_all"] / t["simcore_fwd"],
                "simcore_fwdbwd_over_fwd_rollout": t["simcore_fwdbwd"] / t["simcore_fwd"],
                "simcore_fwdbwd_over_run": t["simcore_fwdbwd"] / t["simcore_run"],
                "peer_fwdbwd_over_fwd": t["peer_fwdbwd"] / t["peer_fwd"]}

    last = {k: v[-1] for k, v in results.items()}
    physics = {
        "simcore": {"com_drop_run": last[("simcore", "run")]["com_drop"],
                    "com_drop_rollout": last[("simcore", "fwd")]["com_drop"],
                    "min_y": last[("simcore", "fwd")]["min_y"],
                    **{k: last[("simcore", "fwdbwd")][k] for k in ("loss", "dL_dE", "dL_dv0")}},
        "peer": {"com_drop": last[("peer", "fwd")]["com_drop"], "min_y": last[("peer", "fwd")]["min_y"],
                 **{k: last[("peer", "fwdbwd")][k] for k in ("loss", "dL_dE", "dL_dv0")}},
        "free_fall_com_drop": -SCENE["velocity"][1] * steps * SCENE["dt"] + 0.5 * 9.8 * (steps * SCENE["dt"]) ** 2,
    }
    return {
        "date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "command": " ".join([Path(sys.argv[0]).as_posix()] + sys.argv[1:]), "repeats": args.repeats,
        "scene": {k: v for k, v in SCENE.items()}, "particles": n, "precision": "float32 (both engines)",
        "simcore": s_info, "peer": p_info, "timings": timings, "ratios_best": ratios(best),
        "ratios_median": ratios(med), "physics": physics,
        "simcore_checkpoint_every": last[("simcore", "fwdbwd")]["checkpoint_every"],
        "peer_peak_rss_mib": max(a["peak_rss_mib"] for a in results[("peer", "fwdbwd")]),
    }


def print_report(rep):
    s = rep["scene"]
    print(f"3D fixed-corotated jelly: {rep['particles']} particles, {s['grid']}^3 grid, {s['steps']} steps of "
          f"dt={s['dt']:g} s, E={s['E']:g} Pa, nu={s['nu']}, density={s['density']:g}, v0={s['velocity']}, "
          f"sticky floor; {rep['precision']}; {rep['machine']}; best (median) of {rep['repeats']}")
    print(f"simcore {rep['simcore']['taichi']} (torch {rep['simcore']['torch']}) | mpm-pytorch "
          f"{rep['peer']['mpm_pytorch']} (torch {rep['peer']['torch']}, numpy {rep['peer']['numpy']}, warp "
          f"{rep['peer']['warp']}, {rep['peer']['threads']} torch threads; 5-step trial "
          f"{ {k: round(v, 2) for k, v in rep['peer']['thread_trial_5_steps_s'].items()} } s)")
    first = rep["simcore"]["first_call_s"]
    comp = rep["simcore"]["compile_s"]
    print("simcore first calls (Taichi compile or offline-cache load, excluded below): "
          + ", ".join(f"{k} {first[k]:.1f} s (~{comp[k]:.1f} s over steady)" for k in first))
    print(f"mpm-pytorch warm-up (2 steps fwd + fwd/bwd, Warp SVD kernel load): {rep['peer']['warmup_s']:.2f} s")
    rows = [("mpm-pytorch forward (no_grad)", "peer_fwd"), ("mpm-pytorch forward+backward", "peer_fwdbwd"),
            ("simcore forward: rollout, no_grad", "simcore_fwd"), ("simcore forward: Scene.run", "simcore_run"),
            (f"simcore forward+backward (k={rep['simcore_checkpoint_every']})", "simcore_fwdbwd"),
            (f"simcore forward+backward (k={s['steps']}, all kept)", "simcore_fwdbwd_all")]
    print(f"{'':<40} {'best s':>8} {'median s':>9} {'M particle-steps/s':>19}")
    for label, key in rows:
        t = rep["timings"][key]
        print(f"{label:<40} {t['best_s']:8.3f} {t['median_s']:9.3f} {t['M_particle_steps_per_s']:19.3f}")
    rb, rm = rep["ratios_best"], rep["ratios_median"]
    lines = [("simcore speed-up, forward (rollout no_grad)", "speedup_forward_rollout", "goal >= 5"),
             ("simcore speed-up, forward (Scene.run)", "speedup_forward_run", "goal >= 5"),
             ("simcore speed-up, forward+backward", "speedup_forward_backward", "goal >= 15"),
             ("simcore speed-up, forward+backward, all kept", "speedup_forward_backward_all_kept", "goal >= 15"),
             ("mpm-pytorch (fwd+bwd)/fwd", "peer_fwdbwd_over_fwd", ""),
             ("simcore (fwd+bwd)/fwd, against rollout no_grad", "simcore_fwdbwd_over_fwd_rollout", "goal <= 4"),
             ("simcore (fwd+bwd, all kept)/fwd", "simcore_fwdbwd_all_over_fwd_rollout", "goal <= 3"),
             ("simcore (fwd+bwd)/fwd, against Scene.run", "simcore_fwdbwd_over_run", "")]
    for label, key, goal in lines:
        print(f"{label:<50} {rb[key]:6.2f}x  (medians: {rm[key]:5.2f}x)  {goal}")
    ph = rep["physics"]
    sp, pp = ph["simcore"], ph["peer"]
    print(f"physics: centre-of-mass drop after {s['steps']} steps: simcore {sp['com_drop_rollout']:.4f} m "
          f"(run {sp['com_drop_run']:.4f} m), mpm-pytorch {pp['com_drop']:.4f} m (free fall would be "
          f"{ph['free_fall_com_drop']:.4f} m); lowest particle y: simcore {sp['min_y']:.4f}, "
          f"mpm-pytorch {pp['min_y']:.4f}")
    print(f"gradients of mean(x_T^2): dL/dE simcore {sp['dL_dE']:.4g}, mpm-pytorch {pp['dL_dE']:.4g}; "
          f"dL/dv0 simcore {[round(g, 5) for g in sp['dL_dv0']]}, mpm-pytorch {[round(g, 5) for g in pp['dL_dv0']]}")
    print(f"mpm-pytorch peak RSS during forward+backward: {rep['peer_peak_rss_mib']:.0f} MiB")
    for who, p in (("simcore", sp), ("mpm-pytorch", pp)):
        if not all(math.isfinite(g) for g in [p["dL_dE"], *p["dL_dv0"]]):
            print(f"WARNING: {who}'s gradients are not finite (timings still stand; the gradient is wrong)")


if __name__ == "__main__":
    main()
