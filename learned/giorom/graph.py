"""Neighbourhoods from scipy's KD-tree: the radius graph the processor passes messages on, and the
query → node neighbourhoods the decoder integrates over.

Edges are (sender, receiver) pairs in a (2, E) int64 tensor, as torch_geometric writes them; a batch of
graphs is one graph whose node ranges come from `batch` (no edge crosses samples). The tree is built in
float64 on the CPU: a graph is data, not something to differentiate.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.spatial import cKDTree


def _points(x, name: str) -> np.ndarray:
    if not isinstance(x, (torch.Tensor, np.ndarray)) or x.ndim != 2 or x.shape[0] < 1:
        raise ValueError(f"{name} must be an array of shape (n, dim) with n >= 1, got "
                         f"{tuple(x.shape) if hasattr(x, 'shape') else type(x).__name__}")
    points = (x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)).astype(np.float64)
    if not np.isfinite(points).all():
        raise ValueError(f"{name} holds NaN or inf: neighbourhoods need finite positions (a blown-up rollout?)")
    return points


def _check_radius(radius: float) -> float:
    if not (np.isfinite(radius) and radius > 0):
        raise ValueError(f"radius must be a finite length > 0 m, got {radius!r}")
    return float(radius)


def radius_graph(x, radius: float, batch=None, max_neighbors: int | None = None) -> torch.Tensor:
    """Edges (2, E) int64 (sender j, receiver i) between distinct points of `x` (n, d) closer than `radius`
    (m), both directions, within the same sample of `batch` ((n,) sample index, sorted; None: one sample).

    max_neighbors=None gives every pair within the radius (exact); K keeps each receiver's K nearest
    senders within the radius (GNS-style cap on the degree, so dense regions cost O(K n)).
    """
    points, radius = _points(x, "x"), _check_radius(radius)
    if batch is None:
        starts = [0, len(points)]
    else:
        counts = np.bincount(np.asarray(batch), minlength=1)
        starts = np.concatenate([[0], np.cumsum(counts)]).tolist()
    edges = []
    for lo, hi in zip(starts[:-1], starts[1:]):  # one tree per sample: a batch holds a handful of samples
        if hi - lo < 2:
            continue
        tree = cKDTree(points[lo:hi])
        if max_neighbors is None:
            pairs = tree.query_pairs(radius, output_type="ndarray")
            pairs = np.concatenate([pairs, pairs[:, ::-1]]).T
        else:
            k = min(int(max_neighbors) + 1, hi - lo)  # + 1: the point itself comes back first
            dist, idx = tree.query(points[lo:hi], k=k, distance_upper_bound=radius)
            receivers = np.repeat(np.arange(hi - lo), k).reshape(-1, k)
            keep = np.isfinite(dist) & (idx != receivers)
            pairs = np.stack([idx[keep], receivers[keep]])
        edges.append(pairs + lo)
    if not edges:
        return torch.zeros((2, 0), dtype=torch.int64)
    return torch.as_tensor(np.concatenate(edges, axis=1), dtype=torch.int64)


def query_neighbors(nodes, queries, radius: float, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The decoder's neighbourhoods: for each query point (q, d) its k nearest nodes (n, d).

    Returns (index (q, k) int64 into nodes, mask (q, k) bool): mask marks neighbours within `radius` m;
    the nearest node is always kept, so a query outside every node's radius still has one neighbour (it
    then takes that node's displacement: a rigid continuation rather than no answer).
    """
    points, where = _points(nodes, "nodes"), _points(queries, "queries")
    if points.shape[1] != where.shape[1]:
        raise ValueError(f"nodes are {points.shape[1]}-D but queries are {where.shape[1]}-D")
    radius = _check_radius(radius)
    k = min(int(k), len(points))
    dist, idx = cKDTree(points).query(where, k=k)
    dist, idx = dist.reshape(len(where), k), idx.reshape(len(where), k)
    mask = dist <= radius
    mask[:, 0] = True
    return torch.as_tensor(idx, dtype=torch.int64), torch.as_tensor(mask)
