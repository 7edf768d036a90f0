"""The Lagrangian flow network (Torres et al., ICLR 2024): a time-conditioned bijection z = T(x; t) whose
push-forward of a base density is the density, and whose Jacobians give the velocity.

    ρ(x, t) = M p(T(x, t)) |det ∂T/∂x|          (the density, kg/m^dim; M the total mass, kg)
    v(x, t) = −(∂T/∂x)⁻¹ ∂T/∂t                    (the velocity, m/s)

A particle keeps its label z = T(x(t), t) along its path, so dz/dt = ∂T/∂x ẋ + ∂T/∂t = 0 gives v, and ρ is
the base mass carried along: ∂ρ/∂t + ∇·(ρv) = 0 holds identically for any parameters, and ∫ρ dx = M at
every t. Training can then only choose *which* conserving flow, never break conservation.

Layers (all conditioned on t through one shared embedding of t, as the reference's `embedding_net`):

- `Normalize`: a fixed affine map of the data's box to about [−1, 1]^dim (constant log-det);
- `ActNorm`: a learned per-axis scale and shift;
- `ConditionalLinear`: z = L(t) U(t) x + b(t), a time-dependent invertible linear map in LU form (the
  reference's conditional SVD layer plays this role) with log|det| = Σ log diag U exactly; it moves, turns
  and stretches the whole density, which is most of a deforming blob's motion;
- `ConditionalCoupling`: affine coupling (RealNVP) on a mask, its scale and shift functions of the kept
  coordinates and t; log|det| = Σ s exactly.

The reference uses invertible residual blocks with spectral normalisation; affine couplings are chosen here
because their log-determinant and inverse are exact and cheap in any dimension (an iResBlock needs a
power series or, in 2–3D, a brute-force determinant, and a fixed-point inverse). Activations are smooth
(SiLU, tanh): the continuity residual needs second derivatives of T.

Shapes: x (n, dim) m, t (n,) s, z (n, dim), log-det (n,).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.func import vjp

SCALE_CAP = 2.0  # |s| ≤ 2 in the couplings: a layer stretches by at most e² per axis, which keeps training stable


def check_points(x: torch.Tensor, t: torch.Tensor, dim: int) -> None:
    """ValueError unless x is (n, dim) and t is (n,) (the shapes every model of this package takes)."""
    if x.ndim != 2 or x.shape[1] != dim:
        raise ValueError(f"x must be (n, {dim}) positions in m, got shape {tuple(x.shape)}; "
                         f"pass points as rows, e.g. x.reshape(-1, {dim})")
    if t.ndim != 1 or t.shape[0] != x.shape[0]:
        raise ValueError(f"t must be (n,) = ({x.shape[0]},) times in s, one per point of x, got shape "
                         f"{tuple(t.shape)}; use t.expand(n) for one time shared by all points")


def mlp(inputs: int, hidden: int, outputs: int, depth: int = 2, zero_last: bool = False) -> nn.Sequential:
    """inputs → depth × (hidden, SiLU) → outputs; zero_last starts the map at exactly zero (an identity layer)."""
    layers, width = [], inputs
    for _ in range(depth):
        layers += [nn.Linear(width, hidden), nn.SiLU()]
        width = hidden
    last = nn.Linear(width, outputs)
    if zero_last:
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
    return nn.Sequential(*layers, last)


class Normalize(nn.Module):
    """x̃ = (x − center) / scale with fixed buffers (the data's box), t̃ = (t − t0) / t_scale."""

    def __init__(self, center, scale, time_range=(0.0, 1.0)):
        super().__init__()
        self.register_buffer("center", torch.as_tensor(center, dtype=torch.float32).clone())
        self.register_buffer("scale", torch.as_tensor(scale, dtype=torch.float32).clone())
        t0, t1 = (float(v) for v in time_range)
        if not t1 > t0:
            raise ValueError(f"time_range must be (t0, t1) with t1 > t0 s, got {time_range}")
        self.register_buffer("time", torch.tensor([t0, t1 - t0]))

    def forward(self, x, t):
        return (x - self.center) / self.scale, (t - self.time[0]) / self.time[1]

    def log_det(self) -> torch.Tensor:
        return -torch.log(self.scale).sum()


class ActNorm(nn.Module):
    """z = x exp(s) + b, per axis; log|det| = Σ s."""

    def __init__(self, dim: int):
        super().__init__()
        self.log_scale = nn.Parameter(torch.zeros(dim))
        self.shift = nn.Parameter(torch.zeros(dim))

    def forward(self, x, context):
        return x * torch.exp(self.log_scale) + self.shift, self.log_scale.sum().expand(x.shape[0])

    def inverse(self, z, context):
        return (z - self.shift) * torch.exp(-self.log_scale)


class ConditionalLinear(nn.Module):
    """z = L(t) U(t) x + b(t): a time-dependent invertible linear map in LU form (Glow's LU-decomposed 1×1
    convolution, conditioned on t): L unit lower triangular, U upper triangular with diagonal exp(s(t)), so
    log|det| = Σ s exactly. It moves, turns, shears and stretches the whole density at the cost of two
    dim × dim products per point (a matrix exponential per point was 40 % of a training step)."""

    def __init__(self, dim: int, context: int):
        super().__init__()
        self.dim = dim
        self.net = nn.Linear(context, dim * dim + dim)
        nn.init.zeros_(self.net.weight)  # starts as the identity
        nn.init.zeros_(self.net.bias)
        self.register_buffer("lower", torch.tril(torch.ones(dim, dim), -1))
        self.register_buffer("upper", torch.triu(torch.ones(dim, dim), 1))
        self.register_buffer("eye", torch.eye(dim))

    def _parts(self, context):
        out = self.net(context)
        M = out[:, :self.dim * self.dim].reshape(-1, self.dim, self.dim)
        s = torch.diagonal(M, dim1=-2, dim2=-1)
        L = M * self.lower + self.eye
        U = M * self.upper + torch.diag_embed(torch.exp(s))
        return L, U, s, out[:, self.dim * self.dim:]

    def forward(self, x, context):
        L, U, s, b = self._parts(context)
        z = torch.einsum("nij,njk,nk->ni", L, U, x) + b
        return z, s.sum(-1)

    def inverse(self, z, context):
        L, U, _, b = self._parts(context)
        y = torch.linalg.solve_triangular(L, (z - b)[..., None], upper=False, unitriangular=True)
        return torch.linalg.solve_triangular(U, y, upper=True)[..., 0]


class ConditionalCoupling(nn.Module):
    """Affine coupling on `mask` (1: kept): z = m x + (1 − m)(x exp(s) + b), (s, b) = net(m x, context),
    s = SCALE_CAP tanh(·/SCALE_CAP); log|det| = Σ (1 − m) s exactly (a triangular Jacobian)."""

    def __init__(self, mask, context: int, hidden: int):
        super().__init__()
        self.register_buffer("mask", torch.as_tensor(mask, dtype=torch.float32))
        dim = self.mask.numel()
        self.net = mlp(dim + context, hidden, 2 * dim, zero_last=True)

    def _scale_shift(self, kept, context):
        out = self.net(torch.cat([kept, context], dim=-1))
        s, b = out.chunk(2, dim=-1)
        free = 1 - self.mask
        return SCALE_CAP * torch.tanh(s / SCALE_CAP) * free, b * free

    def forward(self, x, context):
        s, b = self._scale_shift(x * self.mask, context)
        return x * self.mask + (1 - self.mask) * (x * torch.exp(s) + b), s.sum(-1)

    def inverse(self, z, context):
        s, b = self._scale_shift(z * self.mask, context)
        return z * self.mask + (1 - self.mask) * ((z - b) * torch.exp(-s))


def coupling_masks(dim: int, count: int) -> list[list[float]]:
    """`count` masks that keep each axis in turn and then its complement, so every axis is transformed
    conditioned on every other: 2D [1,0], [0,1], ...; 3D [1,0,0], [0,1,1], [0,1,0], [1,0,1], ..."""
    masks = []
    for i in range(count):
        axis = (i // 2) % dim
        single = [1.0 if j == axis else 0.0 for j in range(dim)]
        masks.append(single if i % 2 == 0 else [1.0 - v for v in single])
    return masks


def solve_small(A: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """A⁻¹ b for (n, d, d) A and (n, d) b, d = 2 or 3, by the adjugate (Cramer's rule).

    Written out rather than torch.linalg.solve because the continuity residual differentiates the velocity
    again (forward over forward): in torch 2.13 linalg.solve's second forward derivative came out wrong
    (off by O(1) against central differences) while these elementary operations are exact.
    """
    if A.shape[-1] == 2:
        det = A[:, 0, 0] * A[:, 1, 1] - A[:, 0, 1] * A[:, 1, 0]
        x0 = A[:, 1, 1] * b[:, 0] - A[:, 0, 1] * b[:, 1]
        x1 = A[:, 0, 0] * b[:, 1] - A[:, 1, 0] * b[:, 0]
        return torch.stack([x0, x1], dim=-1) / det[:, None]
    r0, r1, r2 = A[:, 0], A[:, 1], A[:, 2]
    c12, c20, c01 = torch.linalg.cross(r1, r2), torch.linalg.cross(r2, r0), torch.linalg.cross(r0, r1)
    det = (r0 * c12).sum(-1)
    return (c12 * b[:, :1] + c20 * b[:, 1:2] + c01 * b[:, 2:]) / det[:, None]


class LagrangianFlow(nn.Module):
    """ρ(x, t) = M p(T(x, t)) |det ∂T/∂x| and v = −(∂T/∂x)⁻¹ ∂T/∂t.

    The base p is the standard normal (components=1) or a mixture of `components` Gaussians with learned
    weights, means and per-axis scales that do not depend on t (the paper's footnote: any fixed base
    keeps continuity exact). A mixture lets a few separate blobs be separate labels from the start
    instead of one normal the coupling layers must tear apart.

    Args:
        dim: 2 or 3.
        mass: M, the total mass (kg; 1 for a probability density), fixed: it is the data's known mass.
        center, scale: (dim,) the data's box center and half-widths, m (Normalize).
        time_range: (t0, t1) s of the data (Normalize; the flow is defined for any t).
        blocks: number of (ActNorm, ConditionalLinear, coupling, coupling) blocks.
        hidden: width of the coupling and time-embedding networks; context: size of the t embedding.
        components: Gaussians in the base mixture (1: the standard normal).
    """

    has_velocity = True

    def __init__(self, dim: int, mass: float = 1.0, center=None, scale=None, time_range=(0.0, 1.0),
                 blocks: int = 4, hidden: int = 64, context: int = 16, components: int = 1):
        super().__init__()
        if dim not in (2, 3):
            raise ValueError(f"dim must be 2 or 3, got {dim!r}")
        if not (math.isfinite(mass) and mass > 0):
            raise ValueError(f"mass must be a finite total mass > 0 kg, got {mass!r}")
        for name, value in (("blocks", blocks), ("hidden", hidden), ("context", context), ("components", components)):
            if not (isinstance(value, int) and value >= 1):
                raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")
        self.dim = dim
        self.register_buffer("mass", torch.tensor(float(mass)))
        center = torch.full((dim,), 0.5) if center is None else center
        scale = torch.full((dim,), 0.5) if scale is None else scale
        self.normalize = Normalize(center, scale, time_range)
        self.embed = mlp(1, hidden, context)
        layers = []
        for mask in coupling_masks(dim, 2 * blocks):
            if len(layers) % 4 == 0:
                layers += [ActNorm(dim), ConditionalLinear(dim, context)]
            layers.append(ConditionalCoupling(mask, context, hidden))
        self.layers = nn.ModuleList(layers)
        self.components = components
        if components > 1:  # means spread over the normalised box, a fixed draw (seeded by the caller's seed)
            self.base_logits = nn.Parameter(torch.zeros(components))
            self.base_means = nn.Parameter(0.8 * torch.randn(components, dim))
            self.base_log_scales = nn.Parameter(torch.full((components, dim), math.log(0.5)))

    def transform(self, x: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """z = T(x; t) (n, dim) and log|det ∂T/∂x| (n,)."""
        check_points(x, t, self.dim)
        z, tau = self.normalize(x, t)
        context = self.embed(tau[:, None])
        log_det = self.normalize.log_det().expand(x.shape[0])
        for layer in self.layers:
            z, ld = layer(z, context)
            log_det = log_det + ld
        return z, log_det

    def inverse(self, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """x = T⁻¹(z; t) (n, dim) m: the particle with label z at time t (exact, layer by layer)."""
        check_points(z, t, self.dim)
        _, tau = self.normalize(z, t)
        context = self.embed(tau[:, None])
        for layer in reversed(self.layers):
            z = layer.inverse(z, context)
        return z * self.normalize.scale + self.normalize.center

    def log_density(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """log ρ(x, t) (n,), ρ in kg/m^dim."""
        z, log_det = self.transform(x, t)
        return torch.log(self.mass) + self.base_log_prob(z) + log_det

    def base_log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log p(z) (n,) of the base: standard normal, or the mixture Σ_k π_k N(μ_k, diag σ_k²)."""
        const = 0.5 * self.dim * math.log(2 * math.pi)
        if self.components == 1:
            return -0.5 * (z * z).sum(-1) - const
        u = (z[:, None, :] - self.base_means) * torch.exp(-self.base_log_scales)  # (n, K, dim)
        log_k = -0.5 * (u * u).sum(-1) - self.base_log_scales.sum(-1) - const
        return torch.logsumexp(log_k + torch.log_softmax(self.base_logits, 0), dim=-1)

    def density(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """ρ(x, t) (n,) kg/m^dim."""
        return torch.exp(self.log_density(x, t))

    def jacobians(self, x: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """∂T/∂x (n, dim, dim) and ∂T/∂t (n, dim) by reverse-mode autograd: one vector-Jacobian product of
        the batched map per output axis (points are independent, so the cotangent e_i at every point gives
        row i of every point's Jacobian). Differentiable again, and composable with torch.func (the
        continuity residual differentiates it). Reverse mode: torch's forward mode (jvp, jacfwd) was 10×
        slower here, decomposing every operation into primitives."""
        check_points(x, t, self.dim)
        z, pullback = vjp(lambda x_, t_: self.transform(x_, t_)[0], x, t)
        rows = [pullback(torch.zeros_like(z).index_fill(1, torch.tensor([i], device=z.device), 1.0))
                for i in range(self.dim)]
        return torch.stack([r[0] for r in rows], dim=1), torch.stack([r[1] for r in rows], dim=1)

    def velocity(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """v(x, t) = −(∂T/∂x)⁻¹ ∂T/∂t (n, dim) m/s: the label z = T(x, t) is constant along a path."""
        J, dz_dt = self.jacobians(x, t)
        return -solve_small(J, dz_dt)

    def density_and_velocity(self, x: torch.Tensor, t: torch.Tensor,
                             where: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(ρ(x, t) (n,) kg/m^dim, v(x, t) (m, dim) m/s) from one pass of T: the training loss's path.

        where: (n,) bool, the points whose velocity is wanted (m of them; default all, m = n). The solve
        runs only there: at an unobserved point far out in the flow's tails det ∂T/∂x can underflow to 0
        in float32, and its inf velocity, even unused, would turn the backward pass into NaN.

        The same values as `density` and `velocity` (to round-off), about 1.4× (2D) to 1.5× (3D) cheaper
        per training step: T runs once, not once for ρ and again inside `jacobians`, and the `dim`
        Jacobian rows come from one batched backward pass (autograd.grad with is_grads_batched) instead
        of `dim` separate traversals of the graph. Differentiable with respect to the parameters
        (create_graph), but built on torch.autograd.grad, so it does not compose with torch.func
        transforms: the continuity residual keeps using `density` and `velocity`."""
        check_points(x, t, self.dim)
        if where is not None and (where.dtype != torch.bool or where.shape != t.shape):
            raise ValueError(f"where must be an (n,) = ({len(t)},) bool mask of the points whose velocity is wanted, "
                             f"got dtype {where.dtype} and shape {tuple(where.shape)}")
        x = x.detach().requires_grad_(True)
        t = t.detach().requires_grad_(True)
        with torch.enable_grad():
            z, log_det = self.transform(x, t)
            rows = torch.eye(self.dim, dtype=z.dtype, device=z.device)[:, None, :].expand(self.dim, *z.shape)
            dz_dx, dz_dt = torch.autograd.grad(z, (x, t), rows, create_graph=True, is_grads_batched=True)
        rho = torch.exp(torch.log(self.mass) + self.base_log_prob(z) + log_det)
        J, dz_dt = dz_dx.transpose(0, 1), dz_dt.transpose(0, 1)
        if where is not None:
            J, dz_dt = J[where], dz_dt[where]
        return rho, -solve_small(J, dz_dt)

    def sample(self, n: int, t: float, generator: torch.Generator | None = None) -> torch.Tensor:
        """n points (n, dim) m drawn from ρ(·, t) / M (labels z ~ p pushed back through T⁻¹)."""
        ref = self.mass
        z = torch.randn(n, self.dim, generator=generator, dtype=ref.dtype, device=ref.device)
        if self.components > 1:
            with torch.no_grad():
                k = torch.multinomial(torch.softmax(self.base_logits, 0), n, replacement=True, generator=generator)
                z = self.base_means[k] + torch.exp(self.base_log_scales[k]) * z
        return self.inverse(z, torch.full((n,), float(t), dtype=ref.dtype, device=ref.device))
