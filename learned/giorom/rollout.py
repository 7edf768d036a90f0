"""Roll a trained GIOROM or GNS model out from a new scene's initial particles.

    python -m simcore.learned.giorom.rollout --run RUN --particles start.npz --frames 60 --out rollout.npz
    python -m simcore.learned.giorom.rollout --run RUN --scene simcore.scenes.jelly:build --frames 60 --out r.npz

--particles: an npz with x (n, d) m and v (n, d) m/s, and optionally kind (n,) simcore material kind codes
(default: the one kind the model was trained on, its config's `kinds`), or a simcore Trajectory npz (its frame 0,
and its v when it recorded one). --scene: `module:function`, a function returning a simcore.Scene (its
bodies' particles, velocities and materials are read; nothing is simulated). A single state has no past, so
the W earlier frames the model needs are extrapolated at the initial velocity (x_{-k} = x_0 − k v_0 Δt).

The output npz holds x (frames + 1, q, d) m (frame 0 the initial state; q = every particle, or --queries N
points drawn among them for GIOROM), t (frames + 1,) s, and for GIOROM the node indices and x_nodes.
Every predicted frame is kept inside the training data's domain walls (boundary.py);
--no-wall-projection leaves the network's predictions as they are.
"""

from __future__ import annotations

import argparse
import importlib
import json
import time
from pathlib import Path

import numpy as np
import torch


def history_from_velocity(x0, v0, frame_dt: float, window: int) -> torch.Tensor:
    """(window + 1, n, d) positions, oldest first, ending at x0 (n, d) m and moving at v0 (n, d) m/s."""
    x0, v0 = torch.as_tensor(np.asarray(x0), dtype=torch.float32), torch.as_tensor(np.asarray(v0), dtype=torch.float32)
    if x0.shape != v0.shape or x0.dim() != 2:
        raise ValueError(f"x0 and v0 must both be (n, dim), got {tuple(x0.shape)} and {tuple(v0.shape)}")
    back = torch.arange(window, -1, -1, dtype=torch.float32)[:, None, None]
    return x0[None] - back * frame_dt * v0[None]


def particles_from_scene(scene) -> dict:
    """{x (n, d) m, v (n, d) m/s, kind (n,)} of a simcore.Scene's bodies, before any step."""
    if not scene.bodies:
        raise ValueError("the scene has no bodies: add one with scene.add_body(shape, material)")
    x = np.concatenate([b.x for b in scene.bodies])
    v = np.concatenate([b.v for b in scene.bodies])
    kind = np.concatenate([np.full(len(b.x), b.material.kind) for b in scene.bodies])
    return {"x": x, "v": v, "kind": kind}


def particles_from_file(path) -> dict:
    """{x, v, kind (or None)} from an npz of x and v (and kind), or from a simcore Trajectory npz."""
    with np.load(path) as f:
        arrays = dict(f)
    if "x" not in arrays:
        raise ValueError(f"{path} has no array 'x': give an npz with x (n, dim) m and v (n, dim) m/s")
    x = arrays["x"][0] if arrays["x"].ndim == 3 else arrays["x"]
    v = arrays.get("v")
    if v is None:
        raise ValueError(f"{path} has no initial velocity 'v' (n, dim) m/s: add it (zeros for a body at rest)")
    v = v[0] if v.ndim == 3 else v
    return {"x": x, "v": v, "kind": arrays.get("kind")}


def run(model, x0, v0, kind, frames: int, frame_dt: float | None = None, queries: int | None = None,
        seed: int = 0, reanchor: int | None = None, walls: bool = True) -> dict:
    """Roll `model` out from x0, v0 (n, d); kind (n,) int; walls: project onto the domain after every step
    (boundary.py). Returns numpy {x, t, [nodes, x_nodes], seconds}."""
    frame_dt = float(frame_dt or model.config["frame_dt"])
    window = model.config["window"]
    history = history_from_velocity(x0, v0, frame_dt, window)
    kind = torch.as_tensor(np.asarray(kind), dtype=torch.int64)
    if kind.shape != history.shape[1:2]:
        raise ValueError(f"kind must be one code per particle, ({history.shape[1]},), got {tuple(kind.shape)}")
    extra = {}
    if queries is not None:
        if model.config["model"] != "giorom":
            raise ValueError("--queries needs a GIOROM model; GNS computes exactly its particles")
        pick = np.random.default_rng(seed).choice(history.shape[1], size=min(int(queries), history.shape[1]),
                                                  replace=False)
        extra["queries"] = history[-1, torch.as_tensor(pick)]
    if model.config["model"] == "giorom":
        extra["reanchor"] = reanchor
    start = time.perf_counter()
    out = model.rollout(history, kind, frames, walls=walls, **extra)
    seconds = time.perf_counter() - start
    first = extra.get("queries", history[-1])
    result = {"x": np.concatenate([first[None].numpy(), out["x"].numpy()]),
              "t": np.arange(int(frames) + 1) * frame_dt, "seconds": seconds}
    if "x_nodes" in out:
        result["nodes"], result["x_nodes"] = out["nodes"].numpy(), out["x_nodes"].numpy()
    return result


def _scene(spec: str):
    module, _, function = spec.partition(":")
    if not function:
        raise ValueError(f"--scene must be module:function (a function returning a simcore.Scene), got {spec!r}")
    return getattr(importlib.import_module(module), function)()


def main(argv=None) -> dict:
    from .boundary import distance_outside
    from .train import load

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="run directory of simcore.learned.giorom.train")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--particles", help="npz with x, v (and kind), or a simcore Trajectory npz")
    source.add_argument("--scene", help="module:function returning a simcore.Scene")
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--queries", type=int, default=None, help="GIOROM: follow N of the particles (default all)")
    parser.add_argument("--reanchor", type=int, default=None,
                        help="GIOROM: rebuild the decoder's weights every N frames (default: once, at the start)")
    parser.add_argument("--no-wall-projection", action="store_true",
                        help="do not keep the points inside the domain's walls (the network's predictions alone)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    model = load(args.run)
    start = particles_from_file(args.particles) if args.particles else particles_from_scene(_scene(args.scene))
    kind = start["kind"]
    if kind is None:
        kinds = model.config.get("kinds", [])
        if len(kinds) != 1:
            raise ValueError(f"the model was trained on material kinds {kinds}: give each particle's kind in the npz")
        kind = np.full(len(start["x"]), kinds[0])
    result = run(model, start["x"], start["v"], kind, args.frames, queries=args.queries, reanchor=args.reanchor,
                 walls=not args.no_wall_projection)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp.npz")
    np.savez(tmp, **{k: v for k, v in result.items() if k != "seconds"})
    tmp.replace(out)  # written whole or not at all
    summary = {"out": str(out), "frames": args.frames, "points": int(result["x"].shape[1]),
               "seconds": round(result["seconds"], 3), "finite": bool(np.isfinite(result["x"]).all()),
               "left_domain_by_m": distance_outside(torch.as_tensor(result["x"]), model.config["bounds"])}
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
