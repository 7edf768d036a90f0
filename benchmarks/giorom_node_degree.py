"""How well connected GIOROM's sparse graph stays along a rollout: for each material's first test
trajectory, the share of farthest-point nodes with no neighbour within the stepper's radius and the mean
number of neighbours (at most `max_neighbors`), at the first predicted frame, the middle and the last, for
the ground truth's positions of the nodes and for GIOROM's own rollout of them (walls projected, the
default). docs/giorom.md uses it to explain why GIOROM's water rollouts drift further than GNS's: a node
with no neighbour moves ballistically.

    python benchmarks/giorom_node_degree.py --data /tmp/giorom_runs/data --runs /tmp/giorom_runs/runs \
        [--materials water elastic plasticine] [--threads 1]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from simcore.learned.data import store
from simcore.learned.giorom.graph import radius_graph
from simcore.learned.giorom.train import load, splits


def connectivity(model, positions: torch.Tensor) -> tuple[float, float]:
    """(share of nodes with no neighbour, mean neighbours per node) of node positions (m, d) m."""
    edges = radius_graph(positions, model.config["radius"], None, model.config["max_neighbors"])
    degree = torch.bincount(edges[1], minlength=len(positions))
    return float((degree == 0).float().mean()), float(degree.float().mean())


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--runs", required=True, type=Path)
    parser.add_argument("--materials", nargs="+", default=["water", "elastic", "plasticine"])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print("| material | frame | ground truth: isolated nodes, mean neighbours | GIOROM rollout: isolated, mean |")
    print("|---|---|---|---|")
    for material in args.materials:
        dataset_dir = args.data / f"{material}_3d"
        model = load(args.runs / f"{material}_giorom").eval()
        trajectory = store.open_dataset(dataset_dir)[splits(dataset_dir)["test"][0]]
        x = torch.as_tensor(np.asarray(trajectory.x[:]))
        kind = torch.as_tensor(np.asarray(trajectory.kind), dtype=torch.int64)
        w = model.config["window"]
        nodes = model.sample_nodes(x[w])  # as the evaluation picks them
        horizon = x.shape[0] - 1 - w
        with torch.no_grad():
            out = model.rollout(x[: w + 1], kind, horizon, nodes=nodes)
        for t in (0, horizon // 2, horizon - 1):
            frame = t + w + 1
            truth, learned = connectivity(model, x[frame, nodes]), connectivity(model, out["x_nodes"][t])
            print(f"| {material} | {frame} | {truth[0]:.1%}, {truth[1]:.1f} | {learned[0]:.1%}, {learned[1]:.1f} |",
                  flush=True)


if __name__ == "__main__":
    main()
