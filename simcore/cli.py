"""The `simcore` command: run scripted scenes, list them, describe the machine.

    simcore run [SCENE] [--frames N] [--arch cpu] [--precision f32] [--out DIR]
                [--format npz,ply,vtk,gif,mp4] [--set key=value ...] [--overwrite] [--compress]
    simcore scenes [SCENE ...]
    simcore info
    simcore dataset generate FAMILY --count N --frames T --out DIR [--workers W] [--ray ADDRESS] [--seed S]
                             [--set key=value ...]
    simcore dataset info DIR
    simcore dataset families [FAMILY ...]

Progress goes to stderr: a bar on a terminal, a line every 10 s otherwise ($SIMCORE_PROGRESS_PERIOD).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

FORMATS = ("npz", "ply", "vtk", "gif", "mp4", "png")


class CLIError(Exception):
    """A user error: printed as one line, exit status 2."""


def _formats(text: str) -> list[str]:
    formats = [f.strip().lower() for f in text.split(",") if f.strip()]
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        bad = ", ".join(unknown) if unknown else repr(text)
        raise CLIError(f"unknown --format {bad}; choose from {', '.join(FORMATS)}")
    return formats


def _prepare_out(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise CLIError(f"--out {out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise CLIError(f"--out {out} already holds files; pass --overwrite to replace them, or choose another --out")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".simcore-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise CLIError(f"cannot write to --out {out}: {exc.strerror or exc}") from None


def cmd_run(args) -> int:
    import simcore as sc
    from simcore import scenes

    name = args.scene or scenes.DEFAULT
    try:
        module = scenes.load(name)
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    try:
        overrides = dict(scenes.parse_assignment(s) for s in args.set)
        scenes.parameters(module.DEFAULTS, overrides, name)  # check keys before any work
    except ValueError as exc:
        raise CLIError(f"{exc} (`simcore scenes {name}` lists them with their defaults and meanings)") from None
    formats = _formats(args.format)
    if args.frames is not None and args.frames < 0:
        raise CLIError("--frames must be >= 0")
    out = Path(args.out or Path("out") / name)
    _prepare_out(out, args.overwrite)
    try:
        backend = sc.init(args.arch, args.precision)
        scene = module.build(**overrides)
    except (ValueError, sc.BackendError) as exc:
        raise CLIError(str(exc)) from None
    frames = module.FRAMES if args.frames is None else args.frames
    print(f"simcore: {name} on {backend.arch} ({backend.precision}), {scene.n_particles} particles, "
          f"{frames} frames of {module.FRAME_DT:.4g} s", flush=True)
    start = time.perf_counter()
    failure = None
    try:
        traj = scene.run(frames=frames, frame_dt=module.FRAME_DT, record=("x", "v"),
                         progress=None if not args.no_progress else False)
    except sc.SimulationError as exc:
        failure, traj = exc, exc.trajectory  # keep and write what was computed
    elapsed = time.perf_counter() - start
    written = _write_outputs(traj, scene, name, out, formats, args.compress) if traj is not None else []
    for path in written:
        print(f"  wrote {path}" + (f" ({sc.io.file_size(path)})" if Path(path).is_file() else ""))
    if failure is not None:
        raise CLIError(_failure_message(failure, traj, written, name, out))
    print(f"simcore: done in {elapsed:.1f} s")
    return 0


def _failure_message(failure, traj, written, name: str, out: Path) -> str:
    """A failed run, told to someone at the command line: what went wrong and where, what was saved,
    and which settings to change (the error's own advice speaks of the Python API)."""
    if written and traj is not None:
        kept = f"the initial state and the {traj.frames} frame(s) before the failure were written to {out}"
    else:
        kept = "nothing was written"
    return (f"{failure.problem}; {kept}. To get through, change the scene with --set (`simcore scenes {name}` "
            "lists its parameters): a material too soft for its load collapses (raise E), a body too fast for "
            "its grid flies apart (lower its speed, or raise grid); --precision f64 helps when f32 round-off "
            "is the cause")


def _write_outputs(traj, scene, name, out: Path, formats, compress: bool = False) -> list[Path]:
    written = []
    for fmt in formats:
        if fmt == "npz":
            written.append(traj.save(out / f"{name}.npz", compress=compress))
        elif fmt in ("ply", "vtk"):
            from . import export

            export.export_trajectory(traj, out / fmt, format=fmt, overwrite=True)
            written.append(out / fmt)
        else:
            from . import viz

            target = out / (f"{name}.{fmt}" if fmt != "png" else "png/frame_%04d.png")
            written.append(viz.render(traj, target, color_by="body" if len(traj.body_names) > 1 else "speed",
                                      colliders=scene.colliders))
    return written


def _setting(value) -> str:
    """A parameter value as it is typed after `--set key=`."""
    return f"{value:g}" if isinstance(value, float) else str(value)


def cmd_scenes(args) -> int:
    from simcore import scenes

    try:
        modules = {name: scenes.load(name) for name in (args.names or scenes.NAMES)}
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    print("simcore run SCENE [--set KEY=VALUE ...]; each scene's parameters with their defaults:")
    for name, module in modules.items():
        default = " (the default scene)" if name == scenes.DEFAULT else ""
        print(f"\n{name}{default}: {module.DESCRIPTION}; {module.FRAMES} frames at {1 / module.FRAME_DT:.4g} frames/s")
        for key, (value, meaning) in module.PARAMETERS.items():
            print(f"  {key + '=' + _setting(value):<30} {meaning}")
    return 0


def cmd_info(args) -> int:
    import numpy
    import taichi as ti
    import torch

    import simcore as sc

    print(f"simcore {sc.__version__}  python {platform.python_version()}  {platform.platform()}")
    print(f"taichi {ti.__version__[0]}.{ti.__version__[1]}.{ti.__version__[2]}  numpy {numpy.__version__}  "
          f"torch {torch.__version__}")
    print(f"cpu cores: {os.cpu_count()}")
    for arch in ("cpu", "cuda", "vulkan"):
        for precision in ("f32", "f64"):
            try:
                sc.init(arch, precision, verbose=False)
                status = "available"
            except sc.BackendError as exc:
                status = f"unavailable ({str(exc).split(':', 1)[0]})"
            print(f"  {arch:<7} {precision}: {status}")
    return 0


# ----------------------------------------------------------------------------------------------
# simcore dataset: scene families -> datasets (simcore.learned.data, docs/learned.md)
# ----------------------------------------------------------------------------------------------
def _bytes(size: float) -> str:
    """A size for people, powers of 1000 (as simcore.io.file_size)."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")


def cmd_dataset_generate(args) -> int:
    from simcore import scenes
    from simcore.learned.data import families, store
    from simcore.learned.data.generate import generate

    try:
        options = dict(scenes.parse_assignment(s) for s in args.set)
        families.get(args.family).resolve(**options)  # unknown family or option: one line before any work
    except ValueError as exc:
        raise CLIError(f"{exc}") from None
    print(f"simcore: {args.count} trajectories of {args.family}, {args.frames} frames each -> {args.out} "
          + (f"(Ray at {args.ray})" if args.ray else f"({args.workers} local worker(s))"), flush=True)
    try:
        report = generate(args.family, count=args.count, frames=args.frames, out=args.out, seed=args.seed,
                          workers=args.workers, ray_address=args.ray, options=options,
                          progress=not args.no_progress, arch=args.arch, precision=args.precision)
    except (ValueError, store.DatasetError) as exc:
        raise CLIError(str(exc)) from None
    print(f"simcore: {report.summary()}")
    if report.failed:
        print(f"simcore: {len(report.failed)} trajectories failed (recorded in the dataset; "
              f"`simcore dataset info {args.out}` lists them)")
    return 0


def _numbers(value, path: str = ""):
    """(dotted path, number) for every number in nested params; list items of dicts share a path (`bodies[]`)."""
    if isinstance(value, bool):
        return
    if isinstance(value, (int, float)):
        yield path, float(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _numbers(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for k, item in enumerate(value):
            yield from _numbers(item, f"{path}[]" if isinstance(item, dict) else f"{path}[{k}]")


def cmd_dataset_info(args) -> int:
    from simcore.learned.data import families, store

    try:
        ds = store.open_dataset(args.dir)
        trajectories = list(ds)
    except (FileNotFoundError, store.DatasetError) as exc:
        raise CLIError(str(exc)) from None
    a = ds.attrs
    size = ds.nbytes()
    particle_frames = sum(t.n_particles for t in trajectories) * (a["frames"] + 1)
    frame_dt = {round(t.frame_dt, 12) for t in trajectories}
    engine = ", ".join(f"{k} {v}" for k, v in a.get("engine", {}).items())
    print(f"{ds.path}: simcore dataset of family {a['family']}")
    print(f"  {len(ds)} of {a['count']} finished, {len(ds.failures)} failed, {len(ds.missing)} missing; "
          f"{a['frames']} frames" + (f" of {frame_dt.pop():.4g} s" if len(frame_dt) == 1 else "")
          + f"; {a['dim']}D; seed {a['seed']}; {a.get('arch', '?')} {a.get('precision', '?')}; {engine}")
    per = f", {size / particle_frames:.2f} bytes per particle-frame" if particle_frames else ""
    print(f"  {_bytes(size)} on disk ({size} bytes){per}; "
          f"{sum(t.n_particles for t in trajectories)} particles in all")
    specs = getattr(families.FAMILIES.get(a["family"]), "specs", {})
    print("options (generate --set KEY=VALUE):")
    for key, value in a["options"].items():
        meaning = specs.get(key, (None, ""))[1]
        shown = "(" + ", ".join(map(_setting, value)) + ")" if isinstance(value, list) else _setting(value)
        print(f"  {key + '=' + shown:<36} {meaning}")
    ranges: dict = {}
    for t in trajectories:
        for key, number in _numbers(t.attrs.get("params", {})):
            lo, hi = ranges.get(key, (number, number))
            ranges[key] = (min(lo, number), max(hi, number))
    if ranges:
        print("sampled parameters, min .. max over the finished trajectories:")
        for key, (lo, hi) in ranges.items():
            print(f"  {key}: {lo:.4g} .. {hi:.4g}")
    if ds.failures:
        print("failures:")
        for failure in ds.failures[:20]:
            print(f"  traj {failure['index']} (seed {failure.get('seed')}): {failure.get('error_type', 'error')}: "
                  f"{str(failure.get('error', '')).splitlines()[0] if failure.get('error') else ''}")
        if len(ds.failures) > 20:
            print(f"  ... and {len(ds.failures) - 20} more (simcore.learned.data.store.open_dataset(DIR).failures)")
    return 0


def cmd_dataset_families(args) -> int:
    from simcore.learned.data import families

    try:
        print(families.describe(args.names or None))
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    return 0


def _add_dataset_parser(sub) -> None:
    dataset = sub.add_parser("dataset", help="generate and inspect training datasets of scene families")
    commands = dataset.add_subparsers(dest="dataset_command", required=True)
    gen = commands.add_parser("generate", help="simulate many seeded scenes of a family into a dataset directory")
    gen.add_argument("family", help="scene family; see `simcore dataset families`")
    gen.add_argument("--count", type=int, required=True, help="trajectories (indices 0..N-1)")
    gen.add_argument("--frames", type=int, required=True, help="frames per trajectory after the initial state")
    gen.add_argument("--out", required=True, help="dataset directory: new, empty, or one to resume")
    gen.add_argument("--workers", type=int, default=1, help="local worker processes (default 1); with "
                     "--ray local, the CPUs of the Ray instance started")
    gen.add_argument("--ray", default=None, metavar="ADDRESS", help="run each trajectory as a Ray task: 'local' "
                     "(start one here), 'auto' (this machine's cluster) or a cluster address")
    gen.add_argument("--seed", type=int, default=0, help="trajectory i uses numpy.random.default_rng([seed, i])")
    gen.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     help="a family option, e.g. --set dim=3 --set \"E=(1e4, 1e5)\"")
    gen.add_argument("--arch", default="cpu", choices=["auto", "cpu", "cuda", "vulkan"])
    gen.add_argument("--precision", default="f32", choices=["f32", "f64"])
    gen.add_argument("--no-progress", action="store_true", help="no progress bar")
    gen.set_defaults(func=cmd_dataset_generate)
    info = commands.add_parser("info", help="counts, size, failures and parameter ranges of a dataset")
    info.add_argument("dir", help="dataset directory")
    info.set_defaults(func=cmd_dataset_info)
    fams = commands.add_parser("families", help="list the scene families and their options")
    fams.add_argument("names", nargs="*", metavar="FAMILY", help="only these families (default: all)")
    fams.set_defaults(func=cmd_dataset_families)


# `simcore learn METHOD [COMMAND] ARGS...`: the learned methods' own command lines (simcore.learned.*),
# one entry point for all of them. COMMAND defaults to the method's first (training).
LEARN_COMMANDS = {
    "nclaw": ("train", "evaluate", "ground_truth"),
    "giorom": ("train", "evaluate", "rollout", "datasets"),
    "lflows": ("train", "evaluate"),
}


def cmd_learn(args) -> int:
    import importlib

    commands = LEARN_COMMANDS[args.method]
    rest = list(args.args)
    command = rest.pop(0) if rest and rest[0] in commands else commands[0]
    module = importlib.import_module(f"simcore.learned.{args.method}.{command}")
    result = module.main(rest)
    return result if isinstance(result, int) else 0


def _add_learn_parser(sub) -> None:
    listing = "; ".join(f"{m}: {', '.join(c)}" for m, c in LEARN_COMMANDS.items())
    learn = sub.add_parser(
        "learn", help="train, evaluate or roll out a learned model (NCLaw, GIOROM, LFlows)",
        description=f"simcore learn METHOD [COMMAND] [ARGS...]: runs simcore.learned.METHOD.COMMAND's command "
                    f"line with ARGS (COMMAND defaults to the first listed: training). Commands: {listing}. "
                    "`simcore learn METHOD COMMAND --help` lists each one's options.")
    learn.add_argument("method", choices=list(LEARN_COMMANDS), help="the learned method")
    learn.add_argument("args", nargs=argparse.REMAINDER, help="[COMMAND] and its options")
    learn.set_defaults(func=cmd_learn)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="simcore", description="Differentiable MLS-MPM and rigid-body physics.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a scene and write its outputs")
    run.add_argument("scene", nargs="?", help="scene name (default: jelly_drop); see `simcore scenes`")
    run.add_argument("--frames", type=int, default=None, help="frames to simulate (default: the scene's)")
    run.add_argument("--arch", default="cpu", choices=["auto", "cpu", "cuda", "vulkan"])
    run.add_argument("--precision", default="f32", choices=["f32", "f64"])
    run.add_argument("--out", default=None, help="output directory (default: out/SCENE)")
    run.add_argument("--format", default="npz,gif", help=f"comma-separated, from {','.join(FORMATS)} (default npz,gif)")
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a scene parameter")
    run.add_argument("--overwrite", action="store_true", help="replace files in an existing --out")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.add_argument("--compress", action="store_true", help="deflate the .npz (smaller, slower to write)")
    run.set_defaults(func=cmd_run)
    scenes = sub.add_parser("scenes", help="list the scenes and their parameters")
    scenes.add_argument("names", nargs="*", metavar="SCENE", help="only these scenes (default: all)")
    scenes.set_defaults(func=cmd_scenes)
    sub.add_parser("info", help="versions and available backends").set_defaults(func=cmd_info)
    _add_dataset_parser(sub)
    _add_learn_parser(sub)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except CLIError as exc:
        print(f"simcore: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
