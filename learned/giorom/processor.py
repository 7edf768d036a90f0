"""The time stepper both models share: node features → encode → process (interaction networks) → decode
to a per-node acceleration (Sanchez-Gonzalez et al. 2020, "Learning to simulate", sec. 2 and app. B).

- node features: the last W velocities (finite differences of positions, frame⁻¹, normalised), the
  distances to the domain's walls (clipped at the connectivity radius and divided by it) and a material
  embedding of simcore's material kind code;
- edge features: relative displacement x_j − x_i over the radius and its length;
- processor: `steps` interaction-network layers (Battaglia et al. 2016) with residuals:
  e' = e + φ_e(e, h_i, h_j), h' = h + φ_v(h, Σ_j e'_ij);
- decoder: an MLP to the normalised acceleration.

The module knows nothing of training or of which nodes it is given: GIOROM hands it ~1k farthest-point
nodes, GNS every particle. No torch_geometric: the aggregation is one `index_add_`, and the graph comes
from scipy's KD-tree (graph.py), so the package needs nothing beyond torch and scipy.
"""

from __future__ import annotations

import torch
from torch import nn

NUM_KINDS = 16  # embedding rows: simcore.materials' kind codes are 0..7


def mlp(inputs: int, hidden: int, outputs: int, layers: int = 2, norm: bool = True) -> nn.Sequential:
    """`layers` hidden layers of width `hidden` with ReLU, then a linear output (+ LayerNorm if `norm`)."""
    dims = [inputs] + [hidden] * layers
    modules = []
    for a, b in zip(dims[:-1], dims[1:]):
        modules += [nn.Linear(a, b), nn.ReLU(inplace=True)]
    modules.append(nn.Linear(dims[-1], outputs))
    if norm:
        modules.append(nn.LayerNorm(outputs))
    return nn.Sequential(*modules)


class InteractionNetwork(nn.Module):
    """One message-passing step on edges (2, E) (sender j, receiver i) with residual updates."""

    def __init__(self, latent: int):
        super().__init__()
        self.edge_fn = mlp(3 * latent, latent, latent)
        self.node_fn = mlp(2 * latent, latent, latent)

    def forward(self, h: torch.Tensor, e: torch.Tensor, edges: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        sender, receiver = edges
        e = e + self.edge_fn[1:](self._edge_input_layer(h, e, sender, receiver))
        return self._node_update(h, e, receiver), e

    def _node_update(self, h, e, receiver) -> torch.Tensor:
        """h' = h + φ_v(h, Σ_j e'_ij): the messages summed onto their receivers."""
        incoming = torch.zeros_like(h).index_add_(0, receiver, e)
        return h + self.node_fn(torch.cat([h, incoming], dim=1))

    def _edge_input_layer(self, h, e, sender, receiver) -> torch.Tensor:
        """φ_e's first linear layer on [e, h_i, h_j] (E, 3 latent), without forming that concatenation:
        W [e; h_i; h_j] + b = W_e e + b + (W_i h)[i] + (W_j h)[j]. The node latents are projected before
        they are gathered onto the edges (about 16 per node), so that layer does a third of the
        multiply-adds, and the (E, 3 latent) copy is gone: the same function (to float round-off; tested),
        1.1-1.6x less time a step or training step on one CPU thread (benchmarks/giorom_step.py, which
        times both forms; docs/giorom.md)."""
        first = self.edge_fn[0]
        w_e, w_i, w_j = first.weight.split(h.shape[1], dim=1)
        to_receiver, to_sender = (h @ torch.cat([w_i, w_j]).t()).split(h.shape[1], dim=1)
        return torch.addmm(first.bias, e, w_e.t()) + to_receiver[receiver] + to_sender[sender]


def concatenated_interaction(layer: InteractionNetwork, h: torch.Tensor, e: torch.Tensor,
                             edges: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """`layer`'s step in the textbook form, φ_e applied to the concatenation [e, h_i, h_j]: the reference
    the factored first layer is tested and benchmarked against (benchmarks/giorom_step.py)."""
    sender, receiver = edges
    e = e + layer.edge_fn(torch.cat([e, h[receiver], h[sender]], dim=1))
    return layer._node_update(h, e, receiver), e


class Stepper(nn.Module):
    """Encode-process-decode from a window of positions to normalised accelerations.

    Args:
        dim: 2 or 3. window: W past velocities (W + 1 positions in). radius: connectivity radius, m.
        latent: width of node and edge latents. steps: message-passing layers. embedding: material
        embedding width. bounds: (lo, hi) of the domain walls per axis, m.
    Buffers: v_mean, v_std (dim,) m/frame and a_mean, a_std (dim,) m/frame², the training data's
        statistics (set with `set_statistics`; stored in every checkpoint with the weights).
    """

    def __init__(self, dim: int, window: int, radius: float, latent: int, steps: int, embedding: int = 16,
                 bounds: tuple[float, float] = (0.0, 1.0)):
        super().__init__()
        self.dim, self.window, self.radius = int(dim), int(window), float(radius)
        self.bounds = (float(bounds[0]), float(bounds[1]))
        self.kind_embedding = nn.Embedding(NUM_KINDS, embedding)
        node_in = window * dim + 2 * dim + embedding
        self.node_encoder = mlp(node_in, latent, latent)
        self.edge_encoder = mlp(dim + 1, latent, latent)
        self.layers = nn.ModuleList(InteractionNetwork(latent) for _ in range(int(steps)))
        self.decoder = mlp(latent, latent, dim, norm=False)
        for name in ("v_mean", "a_mean"):
            self.register_buffer(name, torch.zeros(dim))
        for name in ("v_std", "a_std"):
            self.register_buffer(name, torch.ones(dim))

    def set_statistics(self, v_mean, v_std, a_mean, a_std) -> None:
        """Store the data's velocity (m/frame) and acceleration (m/frame²) statistics, each (dim,)."""
        for name, value in zip(("v_mean", "v_std", "a_mean", "a_std"), (v_mean, v_std, a_mean, a_std)):
            value = torch.as_tensor(value, dtype=torch.float32).reshape(self.dim)
            getattr(self, name).copy_(value.clamp_min(1e-8) if name.endswith("std") else value)

    def node_features(self, positions: torch.Tensor, kind: torch.Tensor) -> torch.Tensor:
        """positions (W + 1, n, d) m, oldest first; kind (n,) int → features (n, W·d + 2d + embedding)."""
        velocities = (positions[1:] - positions[:-1] - self.v_mean) / self.v_std  # (W, n, d)
        n = positions.shape[1]
        x = positions[-1]
        lo, hi = self.bounds
        walls = torch.cat([x - lo, hi - x], dim=1) / self.radius
        return torch.cat([velocities.permute(1, 0, 2).reshape(n, -1), walls.clamp(-1.0, 1.0),
                          self.kind_embedding(kind)], dim=1)

    def forward(self, positions: torch.Tensor, kind: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
        """Normalised accelerations (n, d) of the nodes whose last W + 1 positions are `positions`
        (W + 1, n, d) m, on the graph `edges` (2, E)."""
        if positions.dim() != 3 or positions.shape[0] != self.window + 1 or positions.shape[2] != self.dim:
            raise ValueError(f"positions must be (window + 1 = {self.window + 1}, n, dim = {self.dim}), got "
                             f"{tuple(positions.shape)}")
        if kind.min() < 0 or kind.max() >= NUM_KINDS:
            raise ValueError(f"material kind codes must be in [0, {NUM_KINDS}), got {kind.min()}..{kind.max()}")
        h = self.node_encoder(self.node_features(positions, kind))
        x = positions[-1]
        sender, receiver = edges
        offset = (x[sender] - x[receiver]) / self.radius
        e = self.edge_encoder(torch.cat([offset, offset.norm(dim=1, keepdim=True)], dim=1))
        for layer in self.layers:
            h, e = layer(h, e, edges)
        return self.decoder(h)

    def integrate(self, positions: torch.Tensor, normalized_acceleration: torch.Tensor) -> torch.Tensor:
        """The next positions (n, d) m: semi-implicit Euler in frame units, v' = v + a, x' = x + v'."""
        a = normalized_acceleration * self.a_std + self.a_mean
        return positions[-1] + (positions[-1] - positions[-2]) + a
