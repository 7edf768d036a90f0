"""The two learned simulators, with one interface for the shared training loop and evaluation:

- `GIOROM` (Viswanath et al. 2024): farthest-point sampling to m ≪ n nodes, the time stepper on their
  radius graph, and the kernel decoder that carries the nodes' motion to any query points;
- `GNS` (Sanchez-Gonzalez et al. 2020): the same time stepper on every particle.

Both expose `loss(batch) -> (loss, {metric: value})` on a collated WindowDataset batch (history W + 1
frames), `rollout(positions, kind, frames, ...)`, `config` (what `build(config)` rebuilds from a
checkpoint) and the stepper's data statistics as buffers. Positions are in m, time in frames (velocity:
m/frame, acceleration: m/frame²), so a model is tied to its data's frame_dt (in `config`).

Rollouts keep their points inside the domain's walls (`config["bounds"]`) with boundary.advance_window
after every predicted step, unless called with walls=False (what the network alone predicts).
"""

from __future__ import annotations

import torch
from torch import nn

from .boundary import advance_window, domain, project_positions
from .decoder import KernelDecoder
from .graph import radius_graph
from .processor import Stepper
from .sampling import farthest_point_sampling

DEFAULTS = {
    # GIOROM: ~1k nodes at ~2 cm apart; a 6 cm radius (capped at 16 neighbours) reaches 2-3 rings of nodes.
    "giorom": dict(nodes=1024, radius=0.06, max_neighbors=16, latent=64, mp_steps=5, decoder_radius=0.06,
                   decoder_neighbors=16, decoder_hidden=32, decoder_queries=4096, decoder_weight=1.0),
    # GNS on every particle (1.04 cm apart in the datasets): 2.5 cm, ~2 spacings, as GNS's radius is to
    # its particle spacing; a 64-wide latent as CPU training of 10 layers on 10k particles allows.
    "gns": dict(radius=0.025, max_neighbors=16, latent=64, mp_steps=10),
}
COMMON = dict(window=5, noise=0.3, embedding=16)  # noise: in units of the mean acceleration std


def default_config(model: str, dim: int, frame_dt: float, bounds=(0.0, 1.0), **overrides) -> dict:
    """A model's configuration: DEFAULTS[model] and COMMON, updated by `overrides` (None values ignored)."""
    if model not in DEFAULTS:
        raise ValueError(f"unknown model {model!r}; choose 'giorom' or 'gns'")
    config = dict(COMMON, **DEFAULTS[model], model=model, dim=int(dim), frame_dt=float(frame_dt),
                  bounds=[float(b) for b in bounds])
    unknown = sorted(k for k, v in overrides.items() if v is not None and k not in config)
    if unknown:
        raise ValueError(f"{model} has no setting {unknown}; its settings are {sorted(config)}")
    config.update({k: v for k, v in overrides.items() if v is not None})
    for key in ("window", "latent", "mp_steps", "max_neighbors") + (("nodes",) if model == "giorom" else ()):
        if int(config[key]) < 1:
            raise ValueError(f"{key} must be >= 1, got {config[key]}")
    for key in ("radius", "decoder_radius"):
        if key in config and not float(config[key]) > 0:
            raise ValueError(f"{key} must be a length > 0 m, got {config[key]}")
    return config


def build(config: dict) -> nn.Module:
    """The model a configuration describes (fresh weights)."""
    return {"giorom": GIOROM, "gns": GNS}[config["model"]](config)


def random_walk_noise(positions: torch.Tensor, std: float) -> torch.Tensor:
    """GNS's training noise: a random walk on the velocities whose last step has std `std` m, as position
    noise (W + 1, n, d) with none on the oldest frame (app. B.1 of Sanchez-Gonzalez et al.)."""
    steps = positions.shape[0] - 1
    velocity_noise = torch.randn_like(positions[1:]) * (std / steps ** 0.5)
    return torch.cat([torch.zeros_like(positions[:1]), velocity_noise.cumsum(0)])


def _walls(config: dict, walls: bool):
    """The bounds a rollout projects onto (None when walls is False), checked before the first step."""
    if not walls:
        return None
    domain(config["bounds"], config["dim"])
    return config["bounds"]


def _check_positions(positions: torch.Tensor, window: int, dim: int) -> None:
    if not isinstance(positions, torch.Tensor) or positions.dim() != 3 or positions.shape[2] != dim:
        raise ValueError(f"positions must be a tensor (frames, n, {dim}) in m, got "
                         f"{tuple(positions.shape) if isinstance(positions, torch.Tensor) else type(positions)}")
    if positions.shape[0] < window + 1:
        raise ValueError(f"a rollout starts from {window + 1} frames of positions (window {window} velocities), "
                         f"got {positions.shape[0]}; for one initial state x0 with velocity v0 use "
                         "rollout.history_from_velocity(x0, v0, frame_dt, window)")
    if not torch.isfinite(positions).all():
        raise ValueError("positions hold NaN or inf")


class _Learned(nn.Module):
    """What GIOROM and GNS share: the stepper, its training target, a step on a given set of particles."""

    def __init__(self, config: dict):
        super().__init__()
        self.config = dict(config)
        c = self.config
        self.stepper = Stepper(c["dim"], c["window"], c["radius"], c["latent"], c["mp_steps"], c["embedding"],
                               tuple(c["bounds"]))

    def graph(self, x: torch.Tensor, batch=None) -> torch.Tensor:
        return radius_graph(x, self.config["radius"], batch, self.config["max_neighbors"])

    def step(self, positions: torch.Tensor, kind: torch.Tensor, batch=None) -> torch.Tensor:
        """Next positions (n, d) m from the last W + 1 positions (W + 1, n, d) of these particles."""
        edges = self.graph(positions[-1], batch)
        return self.stepper.integrate(positions, self.stepper(positions, kind, edges))

    def stepper_loss(self, positions, next_x, kind, batch) -> torch.Tensor:
        """MSE of normalised accelerations with noisy inputs (the target keeps the true next position)."""
        s = self.stepper
        # noise in units of the data's acceleration std: sand accelerates 10x less per frame than a thrown
        # jelly, and one absolute noise would drown its signal or be nothing to the jelly
        noise = random_walk_noise(positions, self.config["noise"] * float(s.a_std.mean())) if self.training else 0.0
        noisy = positions + noise
        target_next = next_x + (noise[-1] if self.training else 0.0)
        acceleration = target_next - 2 * noisy[-1] + noisy[-2]
        target = (acceleration - s.a_mean) / s.a_std
        prediction = s(noisy, kind, self.graph(noisy[-1], batch))
        return ((prediction - target) ** 2).mean()


def _window(batch: dict, window: int) -> torch.Tensor:
    positions = batch["x"]
    if positions.shape[0] < window + 1:
        raise ValueError(f"the batch holds {positions.shape[0]} frames, the model needs window + 1 = {window + 1}: "
                         f"make the WindowDataset with history={window + 1}")
    return positions[-(window + 1):]


class GNS(_Learned):
    """The full-resolution baseline: the stepper on every particle."""

    def loss(self, batch: dict):
        positions = _window(batch, self.config["window"])
        loss = self.stepper_loss(positions, batch["next_x"], batch["kind"], batch["batch"])
        return loss, {"loss": loss.detach(), "stepper": loss.detach()}

    @torch.no_grad()
    def rollout(self, positions: torch.Tensor, kind: torch.Tensor, frames: int, walls: bool = True, **_) -> dict:
        """Roll every particle forward: positions (≥ W + 1, n, d) m, the last W + 1 used; kind (n,);
        walls: project each step onto the domain (boundary.advance_window). Returns {"x": (frames, n, d)}
        (frames after the last given one)."""
        w = self.config["window"]
        _check_positions(positions, w, self.config["dim"])
        bounds = _walls(self.config, walls)
        history = positions[-(w + 1):].clone()
        out = []
        for _ in range(int(frames)):
            history = advance_window(history, self.step(history, kind), bounds)
            out.append(history[-1])
        return {"x": torch.stack(out)}


class GIOROM(_Learned):
    """The reduced-order model: stepper on farthest-point nodes, kernel decoder to the query points."""

    def __init__(self, config: dict):
        super().__init__(config)
        c = self.config
        self.decoder = KernelDecoder(c["dim"], c["decoder_radius"], c["decoder_neighbors"], c["decoder_hidden"])

    def sample_nodes(self, x: torch.Tensor, start: int = 0) -> torch.Tensor:
        """Node indices (m,) into the particles x (n, d): farthest-point sampling from particle `start`."""
        return farthest_point_sampling(x, self.config["nodes"], start)

    def loss(self, batch: dict):
        """Stepper loss on each sample's nodes (a fresh random farthest-point start per sample: the graph
        varies, as it will on unseen bodies) plus the decoder's loss on sparse → dense pairs: from an
        anchor frame s of the window to the next frame, the nodes' true displacement decoded at up to
        `decoder_queries` particles, error in units of the data's velocity std."""
        c = self.config
        positions = _window(batch, c["window"])
        counts = batch["n_particles"].tolist()
        starts = [0] + torch.tensor(counts).cumsum(0).tolist()
        node_index, node_batch, decoder_terms = [], [], []
        for b, (lo, hi) in enumerate(zip(starts[:-1], starts[1:])):
            # FPS over a random 4m-particle subset: the same spread of nodes at a quarter of the cost, and
            # a graph that varies from step to step, as it will on bodies never seen
            pool = torch.randperm(hi - lo)[: 4 * c["nodes"]]
            nodes = pool[self.sample_nodes(positions[-1, lo:hi][pool])]
            node_index.append(nodes + lo)
            node_batch.append(torch.full((len(nodes),), b, dtype=torch.int64))
            anchor = int(torch.randint(positions.shape[0], ()))
            x_anchor, x_next = positions[anchor, lo:hi], batch["next_x"][lo:hi]
            queries = torch.randperm(hi - lo)[: c["decoder_queries"]]
            decoded = self.decoder(x_anchor[nodes], x_next[nodes] - x_anchor[nodes], x_anchor[queries])
            error = (decoded - (x_next[queries] - x_anchor[queries])) / self.stepper.v_std
            decoder_terms.append((error ** 2).mean())
        index = torch.cat(node_index)
        stepper = self.stepper_loss(positions[:, index], batch["next_x"][index], batch["kind"][index],
                                    torch.cat(node_batch))
        decoder = torch.stack(decoder_terms).mean()
        loss = stepper + c["decoder_weight"] * decoder
        return loss, {"loss": loss.detach(), "stepper": stepper.detach(), "decoder": decoder.detach()}

    @torch.no_grad()
    def rollout(self, positions: torch.Tensor, kind: torch.Tensor, frames: int, queries: torch.Tensor | None = None,
                reanchor: int | None = None, nodes: torch.Tensor | None = None, walls: bool = True) -> dict:
        """Roll the sparse graph forward and carry its motion to query points.

        Args:
            positions: (≥ W + 1, n, d) m, the particles' last W + 1 frames (the nodes are picked from them).
            kind: (n,) material kind codes. frames: frames to predict.
            queries: (q, d) m, points at the last given frame to follow (None: every particle).
            reanchor: None (the default): the decoder's neighbourhoods and weights are built once, from the
                first frame, and each query follows the nodes it started among: material points decoded in
                their reference configuration (Lagrangian), one sparse product a frame. An integer n
                rebuilds them from the current node and query positions every n frames (1: Eulerian
                neighbourhoods; costs the weights' construction every n frames).
            nodes: (m,) particle indices to use as nodes (None: farthest-point sampling from particle 0).
            walls: keep the nodes and the decoded points inside the domain (boundary.advance_window and
                project_positions after every step); False: what the network and decoder alone predict.
        Returns: {"nodes": (m,) indices, "x_nodes": (frames, m, d), "x": (frames, q, d)} in m.
        """
        w = self.config["window"]
        _check_positions(positions, w, self.config["dim"])
        if reanchor is not None and int(reanchor) < 1:
            raise ValueError(f"reanchor must be None (anchored once) or >= 1 frame, got {reanchor}")
        bounds = _walls(self.config, walls)
        nodes = self.sample_nodes(positions[-1]) if nodes is None else nodes
        queries = positions[-1] if queries is None else queries
        history = positions[-(w + 1):, nodes].clone()
        node_kind = kind[nodes]
        x_nodes, x_queries = [], []
        anchor_nodes, anchor_queries, decoding = history[-1], queries, None
        for t in range(int(frames)):
            if decoding is None:
                decoding = self.decoder.matrix(*self.decoder.weights(anchor_nodes, anchor_queries), len(anchor_nodes))
            history = advance_window(history, self.step(history, node_kind), bounds)
            nxt = history[-1]
            current = anchor_queries + decoding @ (nxt - anchor_nodes)
            if bounds is not None:
                current = project_positions(current, bounds)
            x_nodes.append(nxt)
            x_queries.append(current)
            if reanchor is not None and (t + 1) % int(reanchor) == 0:
                anchor_nodes, anchor_queries, decoding = nxt, current, None
        return {"nodes": nodes, "x_nodes": torch.stack(x_nodes), "x": torch.stack(x_queries)}
