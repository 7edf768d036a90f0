"""The discretization-agnostic decoder: displacement at any query point from the sparse graph's nodes.

For a query q with neighbour nodes j (its k nearest, those within `radius` m; graph.query_neighbors),
the displacement is a kernel integral over the nodes that is exact for affine fields:

    u(q) = A_q(q) + Σ_j β_qj ρ_j,        ρ_j = u_j − A_q(x_j),        β_qj = w_qj κ_θ((x_j − q) / R) / Σ_j w_qj

where A_q is the weighted least-squares affine fit of the node displacements u_j around q (moving least
squares with the compact weight w = (1 − |x_j − q|² / R²)³, Wendland-like) and κ_θ a small MLP: a
graph-neural-operator kernel (neuraloperator's GNO with its "linear" transform, κ(x, y) f(y)) applied to
what the affine fit leaves. A translation or any affine field has ρ = 0, so it is reproduced exactly
(up to the ridge that keeps the fit defined where a query has fewer than d + 1 neighbours) whatever κ_θ
learned; κ_θ learns the curvature. A constant κ_θ adds nothing (the fit's weighted residual sums to 0).

Every term is linear in the node displacements, so the decoder is a sparse linear map fixed by the
geometry: `weights(nodes, queries)` returns (index (q, k), α (q, k)) with u(q) = Σ_k α_qk u[index_qk],
computed once per anchor configuration; each frame then costs a gather and a sum, O(q k d). That is what
makes 100k query points cheap next to the time stepper on ~1k nodes. `matrix` packs the weights as a
(q, m) CSR matrix for rollouts: one sparse product a frame, about 6x faster than the gather-and-sum (3.0
against 19 ms for 97k queries on one thread, docs/giorom.md's timing tables), which stays the training
path (torch differentiates it).
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from .graph import query_neighbors
from .processor import mlp

CHUNK = 16384  # queries per block while building the weights: bounds the (q, k, k) temporaries (~16 MB)


class KernelDecoder(nn.Module):
    """Displacement at query points from node displacements (module docstring).

    Args:
        dim: 2 or 3. radius: R, the kernel's support, m. neighbors: k, nodes per query. hidden: κ_θ's width.
        ridge: Tikhonov term on the fit's gradient coefficients, relative to their Gram block's mean diagonal, so that a query with fewer
            than d + 1 neighbours gets the weighted mean (a translation) instead of a singular solve.
    """

    def __init__(self, dim: int, radius: float, neighbors: int = 16, hidden: int = 32, ridge: float = 1e-4):
        super().__init__()
        self.dim, self.radius, self.neighbors, self.ridge = int(dim), float(radius), int(neighbors), float(ridge)
        self.kernel = mlp(dim + 1, hidden, 1, norm=False)

    def weights(self, nodes: torch.Tensor, queries: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(index (q, k) int64 into nodes, α (q, k)): u(queries) = Σ_k α_qk u[index_qk]. nodes (m, d), queries
        (q, d) m. Differentiable with respect to κ_θ's parameters (not the positions)."""
        if nodes.dim() != 2 or queries.dim() != 2 or nodes.shape[1] != self.dim or queries.shape[1] != self.dim:
            raise ValueError(f"nodes and queries must be (m, {self.dim}) and (q, {self.dim}) positions in m, got "
                             f"{tuple(nodes.shape)} and {tuple(queries.shape)}")
        index, mask = query_neighbors(nodes, queries, self.radius, self.neighbors)
        nodes, queries = nodes.detach(), queries.detach()
        alphas = [self._alpha(nodes[index[s:s + CHUNK]], queries[s:s + CHUNK], mask[s:s + CHUNK])
                  for s in range(0, len(queries), CHUNK)]
        return index, torch.cat(alphas)

    def _alpha(self, neighbors: torch.Tensor, queries: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        offset = (neighbors - queries[:, None, :]) / self.radius  # (q, k, d)
        r2 = (offset ** 2).sum(-1)
        w = ((1 - r2).clamp_min(0) ** 3) * mask
        w[:, 0] = torch.where(w[:, 0] > 0, w[:, 0], torch.ones_like(w[:, 0]))  # a lone far node still counts
        p = torch.cat([torch.ones_like(offset[..., :1]), offset], dim=-1)  # (q, k, d + 1) affine basis
        gram = torch.einsum("qk,qka,qkb->qab", w, p, p)
        # the ridge is relative to the gradient block's own scale, so it stays a 1e-4 perturbation whatever
        # the weights' magnitude (sparse neighbourhoods have small Wendland weights)
        scale = gram[:, 1:, 1:].diagonal(dim1=1, dim2=2).mean(1).clamp_min(1e-12)
        ridge = torch.tensor([0.0] + [self.ridge] * self.dim, dtype=gram.dtype)
        gram = gram + torch.diag_embed(scale[:, None] * ridge)
        solved = torch.linalg.solve(gram, (w[..., None] * p).transpose(1, 2))  # (q, d + 1, k) = M⁻¹ pᵀ W
        fit = solved[:, 0, :]  # A_q(q) = Σ_j fit_j u_j
        hat = torch.einsum("qia,qaj->qij", p, solved)  # A_q(x_i) = Σ_j hat_ij u_j
        kappa = self.kernel(torch.cat([offset, r2[..., None].sqrt()], dim=-1))[..., 0]  # (q, k)
        beta = w * kappa / w.sum(1, keepdim=True)
        # Σ_i β_i (u_i − Σ_j hat_ij u_j) = Σ_j (β_j − Σ_i β_i hat_ij) u_j
        return fit + beta - torch.einsum("qi,qij->qj", beta, hat)

    @staticmethod
    def apply(index: torch.Tensor, alpha: torch.Tensor, displacement: torch.Tensor) -> torch.Tensor:
        """Σ_k α_qk u[index_qk]: displacement (m, d) at the nodes → (q, d) at the queries."""
        return torch.einsum("qk,qkd->qd", alpha, displacement[index])

    @staticmethod
    def matrix(index: torch.Tensor, alpha: torch.Tensor, nodes: int) -> torch.Tensor:
        """The weights (index (q, k), α (q, k)) as a sparse (q, nodes) CSR matrix D, with D @ u = apply(index,
        α, u) for node displacements u (nodes, d): the rollouts' per-frame decoding (no gradient needed)."""
        q, k = index.shape
        rows = torch.arange(0, q * k + 1, k, dtype=torch.int64)
        with warnings.catch_warnings():  # "CSR support is in beta": matmul with a dense right side is what we use
            warnings.simplefilter("ignore", UserWarning)
            return torch.sparse_csr_tensor(rows, index.reshape(-1), alpha.detach().reshape(-1), (q, int(nodes)))

    def forward(self, nodes: torch.Tensor, displacement: torch.Tensor, queries: torch.Tensor) -> torch.Tensor:
        """Displacement (q, d) m at `queries` (q, d) from `displacement` (m, d) m at `nodes` (m, d)."""
        if displacement.shape != nodes.shape:
            raise ValueError(f"displacement {tuple(displacement.shape)} must match nodes {tuple(nodes.shape)}")
        index, alpha = self.weights(nodes, queries)
        return self.apply(index, alpha, displacement)
