"""The learned stepper's cost: the interaction network's factored first edge layer against the textbook
concatenated form, for GIOROM's sparse graph and GNS's full particle set, in one process on one thread.

Both forms compute the same function (tests/learned/test_giorom.py checks it to round-off in float64);
the factored one projects the node latents before gathering them onto the edges
(`processor.InteractionNetwork._edge_input_layer`), the reference concatenates [e, h_i, h_j] per edge
(`processor.concatenated_interaction`). Untrained models with the default configurations (GIOROM: 1,024
farthest-point nodes, radius 6 cm, 5 layers; GNS: every particle, radius 2.5 cm, 10 layers; both at most
16 neighbours, latent 64) on a lattice box of points 1/96 m apart (evaluate.lattice_box), as the
evaluation's timing table uses. The weights do not change the cost.

Timed, alternating the two forms, best and median of --repeats:
- "step": one rollout step under torch.no_grad (graph, stepper, integration: `model.step`);
- "train": the stepper's loss on one window, forward and backward (`model.stepper_loss`), what an
  optimiser step costs before the update.

    python benchmarks/giorom_step.py [--repeats 7] [--points 10648] [--threads 1] [--json out.json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import time

import torch
from simcore.learned.giorom import evaluate, models, processor

V_STD, A_STD = 0.02, 4e-3  # m/frame, m/frame²: the order of the elastic dataset's statistics


@contextlib.contextmanager
def concatenated_form():
    """Every InteractionNetwork runs the textbook concatenated form while inside."""
    factored = processor.InteractionNetwork.forward
    processor.InteractionNetwork.forward = processor.concatenated_interaction
    try:
        yield
    finally:
        processor.InteractionNetwork.forward = factored


def _window(model, points: int, window: int) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.as_tensor(evaluate.lattice_box(points), dtype=torch.float32)
    if model.config["model"] == "giorom":
        x = x[model.sample_nodes(x)]
    # a slow uniform drift: the positions only set the graph, which is the same for every frame here
    positions = torch.stack([x + 1e-3 * k for k in range(model.config["window"] + 1)])
    return positions, torch.zeros(x.shape[0], dtype=torch.long)


def _timed(fn, repeats: int, forms=("factored", "concatenated")) -> dict:
    times = {form: [] for form in forms}
    for _ in range(repeats):
        for form in forms:
            with concatenated_form() if form == "concatenated" else contextlib.nullcontext():
                begin = time.perf_counter()
                fn()
                times[form].append(time.perf_counter() - begin)
    return {form: {"best_s": min(t), "median_s": statistics.median(t)} for form, t in times.items()}


def measure(model_name: str, points: int, repeats: int) -> dict:
    model = models.build(models.default_config(model_name, 3, 1 / 60))
    # the elastic dataset's scales (m/frame, m/frame²): the training noise is relative to a_std, and an
    # untrained model's a_std = 1 m/frame² would scatter the window far beyond the radius (no edges)
    model.stepper.set_statistics(torch.zeros(3), torch.full((3,), V_STD), torch.zeros(3), torch.full((3,), A_STD))
    positions, kind = _window(model, points, model.config["window"])
    target = positions[-1] + (positions[-1] - positions[-2])

    def step():
        with torch.no_grad():
            model.eval()
            model.step(positions, kind)

    def train():
        model.train()
        model.zero_grad()
        model.stepper_loss(positions, target, kind, None).backward()

    for fn in (step, train):  # warm-up, both forms
        fn()
        with concatenated_form():
            fn()
    edges = model.graph(positions[-1]).shape[1]
    return {"model": model_name, "nodes": positions.shape[1], "edges": edges,
            "step": _timed(step, repeats), "train": _timed(train, repeats)}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--points", type=int, default=10_648, help="lattice points (GNS steps on all of them)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.points < 1 or args.threads < 1:
        parser.error("--repeats, --points and --threads must be >= 1")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rows = [measure(name, args.points, args.repeats) for name in ("giorom", "gns")]
    print("| model | nodes | edges | what | factored best / median (s) | concatenated best / median (s) "
          "| concatenated ÷ factored (best / median) |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        for what in ("step", "train"):
            f, c = r[what]["factored"], r[what]["concatenated"]
            print(f"| {r['model']} | {r['nodes']:,} | {r['edges']:,} | {what} | {f['best_s']:.4f} / "
                  f"{f['median_s']:.4f} | {c['best_s']:.4f} / {c['median_s']:.4f} | "
                  f"{c['best_s'] / f['best_s']:.2f}× / {c['median_s'] / f['median_s']:.2f}× |")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"threads": args.threads, "repeats": args.repeats, "rows": rows}, fh, indent=1)


if __name__ == "__main__":
    main()
