"""The `simcore` command: run scripted scenes, list them, describe the machine.

    simcore run [SCENE] [--frames N] [--arch cpu] [--precision f32] [--out DIR]
                [--format npz,ply,vtk,gif,mp4] [--set key=value ...] [--overwrite] [--compress]
    simcore scenes [SCENE ...]
    simcore info

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
