"""The cost of a gradient, per material: (forward + backward time) / (forward time) of a differentiable
3D rollout, for every MPM material in float32 and float64 on the CPU.

Scene (by default the one of benchmarks/mpm_pytorch_peer.py, material varied): a box of 8,000 particles
(a 20 × 20 × 20 lattice, 2 per cell per axis, 10 cells wide) centred at (0.5, 0.35, 0.5), a 32³ grid on
[0, 1]³, initial velocity (0, -2, 0) m/s, gravity (0, -9.8, 0) m/s², dt = 1e-3 s, 100 steps as one frame
(frame_dt = 0.1 s), falling 0.1 m onto a sticky floor (`walls={"-y": "sticky"}`); it lands at about
step 44. Per-material parameters (all stable at dt = 1e-3 s on this grid; see MATERIALS below):

    FixedCorotated, NeoHookean  E = 1e5 Pa, nu = 0.3, 1e3 kg/m³ (the peer benchmark's jelly)
    Fluid        bulk modulus 1e5 Pa, gamma 7, viscosity 1e-3 Pa·s, 1e3 kg/m³ (no E: the bulk modulus
                 is the differentiated parameter)
    Snow         E = 1.4e5 Pa, nu = 0.2, 400 kg/m³, theta_c 2.5e-2, theta_s 7.5e-3, hardening 10
                 (Stomakhin et al. 2013's values)
    Sand         E = 3.537e5 Pa, nu = 0.3, 2200 kg/m³, friction angle 30°
    Plasticine   E = 2e5 Pa, nu = 0.3, 1e3 kg/m³, yield stress 1e3 Pa
    GranularMuI  E = 3.537e5 Pa, nu = 0.3, 1470 kg/m³, Jop et al. 2006's glass beads (mu_s 0.382,
                 mu_2 0.643, I0 0.279, d = 0.5 mm, grains 2450 kg/m³)

Timed, in one fresh process per material and precision (Taichi keeps its compiled kernels per process;
`sc.init("cpu", precision)`), wall clock inside that process, best of --repeats:

- forward: `scene.rollout(frames=1, frame_dt=steps * dt)` under `torch.no_grad()`;
- forward+backward: the same rollout with the material parameter (E; Fluid: bulk_modulus) and the
  initial velocity as torch leaves (requires_grad, dtype of the precision), loss = mean(x_T²),
  `loss.backward()`.

The ratio is best fwd+bwd / best forward; "ratio of medians" (median / median) is printed beside it as a
check on a shared machine, where one undisturbed repeat can move the best of either.

Both use the same `checkpoint_every` (simcore's default unless --checkpoint-every is given: every
substep kept when they fit in simcore.torch.KEEP_ALL_BUDGET, else about √T; the table's k column says
which was used) and therefore the same gradient solver (its slot count follows k). Warm-up, excluded
from the timings and reported as "first s": the same rollout (same frames, frame_dt and
checkpoint_every, so the same solver) once forward and once forward+backward, where Taichi compiles
the kernels (about 40 s per configuration in 3D) or loads them from its offline cache. The child checks
that the timed rollouts reuse the warmed-up solver where simcore exposes it.

    python benchmarks/adjoint_cost.py [--repeats 3] [--materials Sand,Snow] [--precisions f32]
        [--particles 8000] [--steps 100] [--grid 32] [--checkpoint-every K] [--json out.json] [--quick]

--quick: a smoke configuration (512 particles, 10 steps, 1 repeat), for tests.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PROTOCOL = "@@ "  # the child prints its answer on a line starting with this; other output is noise

SCENE = {"grid": 32, "steps": 100, "dt": 1e-3, "particles": 8000, "center": (0.5, 0.35, 0.5),
         "velocity": (0.0, -2.0, 0.0), "gravity": (0.0, -9.8, 0.0)}
QUICK = {"particles": 512, "steps": 10, "repeats": 1}

# name -> (differentiated parameter, constructor keywords). The differentiated parameter is passed as
# a torch tensor (requires_grad) of the precision's dtype.
MATERIALS = {
    "FixedCorotated": ("E", {"E": 1e5, "nu": 0.3, "density": 1e3}),
    "NeoHookean": ("E", {"E": 1e5, "nu": 0.3, "density": 1e3}),
    "Fluid": ("bulk_modulus", {"bulk_modulus": 1e5, "gamma": 7.0, "viscosity": 1e-3, "density": 1e3}),
    "Snow": ("E", {"E": 1.4e5, "nu": 0.2, "density": 400.0, "critical_compression": 2.5e-2,
                   "critical_stretch": 7.5e-3, "hardening": 10.0}),
    "Sand": ("E", {"E": 3.537e5, "nu": 0.3, "density": 2200.0, "friction_angle": 30.0}),
    "Plasticine": ("E", {"E": 2e5, "nu": 0.3, "density": 1e3, "yield_stress": 1e3}),
    "GranularMuI": ("E", {"E": 3.537e5, "nu": 0.3, "density": 1470.0, "mu_s": 0.382, "mu_2": 0.643, "I0": 0.279,
                          "grain_diameter": 5e-4, "grain_density": 2450.0}),
}
PRECISIONS = ("f32", "f64")


# ---------------------------------------------------------------------------------------------------
# The child: one material, one precision, one process.
# ---------------------------------------------------------------------------------------------------
def child(cfg: dict):
    import numpy as np
    import torch

    sys.path.insert(0, str(REPO))  # this checkout's simcore, installed or not
    import simcore as sc

    def emit(obj):
        print(PROTOCOL + json.dumps(obj), flush=True)

    precision, name = cfg["precision"], cfg["material"]
    dtype = torch.float64 if precision == "f64" else torch.float32
    sc.init("cpu", precision)
    param, kwargs = MATERIALS[name]
    p = torch.tensor(kwargs[param], dtype=dtype, requires_grad=True)
    v0 = torch.tensor(SCENE["velocity"], dtype=dtype, requires_grad=True)
    material = getattr(sc.materials, name)(**{**kwargs, param: p})

    grid, dt, steps = cfg["grid"], cfg["dt"], cfg["steps"]
    dx = 1.0 / grid
    per_axis = max(1, round(cfg["particles"] ** (1 / 3)))  # lattice spacing dx / 2 (8 particles per cell)
    side = per_axis * dx / 2
    scene = sc.Scene(dim=3, grid=grid, dt=dt, gravity=SCENE["gravity"], walls={"-y": "sticky"})
    scene.add_body(sc.shapes.Box(center=SCENE["center"], size=(side,) * 3), material, velocity=v0, name=name)
    x0 = np.asarray(scene.bodies[0].x, dtype=np.float64)
    frame_dt = steps * dt
    k = cfg["checkpoint_every"]

    def forward():
        start = time.perf_counter()
        with torch.no_grad():
            r = scene.rollout(frames=1, frame_dt=frame_dt, checkpoint_every=k)
        seconds = time.perf_counter() - start
        x = r.x[-1].numpy().astype(np.float64)
        return {"seconds": seconds, "substeps": r.meta["substeps"][0], "checkpoint_every": r.meta["checkpoint_every"],
                "com_drop": float(x0[:, 1].mean() - x[:, 1].mean()), "min_y": float(x[:, 1].min()),
                "finite": bool(np.isfinite(x).all())}

    def forward_backward():
        p.grad = None
        v0.grad = None
        start = time.perf_counter()
        r = scene.rollout(frames=1, frame_dt=frame_dt, checkpoint_every=k)
        loss = (r.x[-1] ** 2).mean()
        loss.backward()
        seconds = time.perf_counter() - start
        return {"seconds": seconds, "checkpoint_every": r.meta["checkpoint_every"], "loss": float(loss),
                "dL_dparam": float(p.grad), "dL_dv0": [float(g) for g in v0.grad]}

    def solver():
        """The count of solvers simcore's solver cache has built: it changes when a rollout compiles."""
        from simcore.mpm import cache

        return cache.info().built

    start = time.perf_counter()
    warm_fwd = forward()
    first_fwd = time.perf_counter() - start
    start = time.perf_counter()
    warm_bwd = forward_backward()
    first_bwd = time.perf_counter() - start
    warmed = solver()
    fwd, bwd = [], []
    for _ in range(cfg["repeats"]):  # alternate, so that both see the same machine load
        fwd.append(forward())
        bwd.append(forward_backward())
    now = solver()
    reused = now == warmed
    best_f = min(r["seconds"] for r in fwd)
    best_b = min(r["seconds"] for r in bwd)
    last_f, last_b = fwd[-1], bwd[-1]
    emit({"material": name, "precision": precision, "parameter": param, "parameters": kwargs,
          "particles": int(len(x0)), "grid": grid, "dt": dt, "steps": steps, "substeps": last_f["substeps"],
          "checkpoint_every": last_b["checkpoint_every"],
          "forward_s": [r["seconds"] for r in fwd], "fwdbwd_s": [r["seconds"] for r in bwd],
          "forward_best_s": best_f, "fwdbwd_best_s": best_b, "ratio": best_b / best_f,
          "ratio_of_medians": statistics.median(r["seconds"] for r in bwd) / statistics.median(r["seconds"] for r in fwd),
          "first_forward_s": first_fwd, "first_fwdbwd_s": first_bwd,
          "warmup_checkpoint_every": warm_bwd["checkpoint_every"], "solver_reused": reused,
          "com_drop": last_f["com_drop"], "min_y": last_f["min_y"], "finite": last_f["finite"],
          "loss": last_b["loss"], "dL_dparam": last_b["dL_dparam"], "dL_dv0": last_b["dL_dv0"],
          "warmup_matches": warm_fwd["com_drop"] == last_f["com_drop"],
          "simcore_file": sc.__file__, "torch": torch.__version__,
          "taichi": __import__("taichi").__version__})


# ---------------------------------------------------------------------------------------------------
# The parent: one child per configuration, one at a time; the table.
# ---------------------------------------------------------------------------------------------------
def run_child(cfg: dict, timeout: float) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(cfg)]
    try:
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"material": cfg["material"], "precision": cfg["precision"], "error": f"timed out after {timeout:.0f} s"}
    for line in proc.stdout.splitlines():
        if line.startswith(PROTOCOL):
            return json.loads(line[len(PROTOCOL):])
    tail = (proc.stdout + proc.stderr)[-3000:]
    return {"material": cfg["material"], "precision": cfg["precision"],
            "error": f"child exited with code {proc.returncode}; output ends:\n{tail}"}


def _names(text: str | None, known, what: str) -> list[str]:
    if not text:
        return list(known)
    lower = {k.lower(): k for k in known}
    out = []
    for item in (s.strip() for s in text.split(",") if s.strip()):
        if item.lower() not in lower:
            raise SystemExit(f"unknown {what} {item!r}: choose from {', '.join(known)}")
        out.append(lower[item.lower()])
    return out


def _fmt_row(cells, widths):
    return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"


def print_table(rows: list[dict]):
    head = ["material", "precision", "forward s", "fwd+bwd s", "ratio", "ratio of medians", "k", "first s",
            "d loss/d param"]
    body = []
    for r in rows:
        if "error" in r:
            body.append([r["material"], r["precision"], "error"] + [""] * (len(head) - 3))
            continue
        body.append([r["material"], r["precision"], f"{r['forward_best_s']:.3f}", f"{r['fwdbwd_best_s']:.3f}",
                     f"{r['ratio']:.2f}", f"{r['ratio_of_medians']:.2f}", str(r["checkpoint_every"]),
                     f"{r['first_forward_s'] + r['first_fwdbwd_s']:.1f}",
                     f"{r['parameter']}: {r['dL_dparam']:.4g}"])
    widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(head)]
    print(_fmt_row(head, widths))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for b in body:
        print(_fmt_row(b, widths))
    for r in rows:
        if "error" in r:
            print(f"\n{r['material']} {r['precision']}: {r['error']}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=None, help="timed repetitions, best taken (default 3)")
    parser.add_argument("--materials", default=None,
                        help=f"comma-separated subset of {','.join(MATERIALS)} (default: all)")
    parser.add_argument("--precisions", default=None, help="comma-separated subset of f32,f64 (default: both)")
    parser.add_argument("--particles", type=int, default=None,
                        help=f"about this many particles, a cubic lattice (default {SCENE['particles']})")
    parser.add_argument("--steps", type=int, default=None, help=f"substeps of dt (default {SCENE['steps']})")
    parser.add_argument("--grid", type=int, default=SCENE["grid"], help=f"grid cells per axis (default {SCENE['grid']})")
    parser.add_argument("--dt", type=float, default=SCENE["dt"], help=f"substep in s (default {SCENE['dt']:g})")
    parser.add_argument("--checkpoint-every", type=int, default=None,
                        help="substeps per checkpointed segment (default: simcore's choice)")
    parser.add_argument("--quick", action="store_true",
                        help=f"smoke configuration: {QUICK['particles']} particles, {QUICK['steps']} steps, "
                             f"{QUICK['repeats']} repeat (explicit options still win)")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds allowed per child (default 1800)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results to this JSON file")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        child(json.loads(args.child))
        return

    base = QUICK if args.quick else {"particles": SCENE["particles"], "steps": SCENE["steps"], "repeats": 3}
    particles = args.particles if args.particles is not None else base["particles"]
    steps = args.steps if args.steps is not None else base["steps"]
    repeats = args.repeats if args.repeats is not None else base["repeats"]
    if particles < 1 or steps < 1 or repeats < 1:
        raise SystemExit("--particles, --steps and --repeats must be >= 1")
    materials = _names(args.materials, MATERIALS, "material")
    precisions = _names(args.precisions, PRECISIONS, "precision")

    sys.path.insert(0, str(REPO))
    try:  # a material simcore has that this script does not know: say so (Neural is skipped on purpose)
        import simcore.materials as scm

        missing = [m.__name__ for m in getattr(scm, "ALL", ()) if m.__name__ not in MATERIALS]
        if missing:
            print(f"note: simcore.materials also has {', '.join(missing)}, not measured here", file=sys.stderr)
    except Exception:  # noqa: BLE001 - the note is optional
        pass

    print(f"3D box, ~{particles} particles, {args.grid}^3 grid, {steps} steps of dt={args.dt:g} s, "
          f"v0={SCENE['velocity']}, sticky floor; CPU, {os.cpu_count()} cores; best of {repeats}; "
          f"checkpoint_every={args.checkpoint_every or 'simcore default'}", flush=True)
    rows = []
    for material in materials:
        for precision in precisions:
            cfg = {"material": material, "precision": precision, "particles": particles, "steps": steps,
                   "grid": args.grid, "dt": args.dt, "repeats": repeats, "checkpoint_every": args.checkpoint_every}
            start = time.perf_counter()
            r = run_child(cfg, args.timeout)
            wall = time.perf_counter() - start
            r["process_s"] = wall
            r["load_average_after"] = list(os.getloadavg())  # 1, 5, 15 min: how shared the machine was
            rows.append(r)
            if "error" in r:
                print(f"{material} {precision}: ERROR ({wall:.0f} s)", file=sys.stderr, flush=True)
            else:
                warn = ""
                if not (r["finite"] and math.isfinite(r["dL_dparam"]) and all(map(math.isfinite, r["dL_dv0"]))):
                    warn = "  WARNING: non-finite state or gradient"
                if r["solver_reused"] is False:
                    warn += "  WARNING: the timed rollouts built a new solver (compile inside the timing)"
                print(f"{material} {precision}: forward {r['forward_best_s']:.3f} s, fwd+bwd {r['fwdbwd_best_s']:.3f} s, "
                      f"ratio {r['ratio']:.2f} (k={r['checkpoint_every']}, {r['particles']} particles, centre-of-mass "
                      f"drop {r['com_drop']:.4f} m, lowest y {r['min_y']:.4f} m, process {wall:.0f} s, load average "
                      f"{r['load_average_after'][0]:.1f}){warn}", file=sys.stderr, flush=True)
    print()
    print_table(rows)
    if args.json:
        report = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "command": " ".join(["python"] + sys.argv),
                  "machine": f"{platform.machine()}, {os.cpu_count()} CPUs", "repeats": repeats,
                  "scene": {**SCENE, "particles": particles, "steps": steps, "grid": args.grid, "dt": args.dt},
                  "checkpoint_every": args.checkpoint_every, "results": rows}
        args.json.write_text(json.dumps(report, indent=2))
    if any("error" in r for r in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
