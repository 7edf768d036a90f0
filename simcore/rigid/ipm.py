"""Primal-dual interior-point solver for the step equations r(w) = 0 (batched over worlds).

Newton on the relaxed complementarity system with Mehrotra's predictor-corrector (Mehrotra 1992;
Nocedal & Wright, Numerical Optimization §14.2): an affine predictor aimed at zero complementarity, a
centering target t = max(σ μ, κ) with σ = (μ_aff/μ)³, and a corrector that adds the second-order term
Δ_aff ∘ Δ_aff. Step lengths keep (γ, s) in the positive orthant and (β, η) inside the second-order cone
(fraction-to-boundary 0.99 of the exact cone boundary, found from a quadratic). Once the target reaches κ the
corrector term is dropped (plain Newton converges quadratically onto the central path). The iteration
stops once
every world satisfies the step equations to `rtol` (scaled residual, see `Layout`) and sits on the
central path at κ to relative accuracy `rtol`: γ s = κ(1 ± rtol), β ∘ η = κ e (± rtol κ).
One LU factorization per iteration serves both the predictor and the corrector.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .integrator import row_blocks, sizes

FRACTION_TO_BOUNDARY = 0.99


@dataclass
class Layout:
    """Index sets of w and r for `bodies` bodies and `contacts` contacts.

    row_scale: (B, N) divides the equality rows so that they read in velocity units (m/s, rad/s):
    dynamics rows by mass or largest principal inertia, friction-magnitude rows by the mean mass.
    """
    bodies: int
    contacts: int
    row_scale: torch.Tensor

    def __post_init__(self):
        o, r = sizes(self.bodies, self.contacts), row_blocks(self.bodies, self.contacts)
        self.gamma, self.gap = slice(*o["gamma"]), slice(*o["gap"])
        self.beta, self.eta = slice(*o["beta"]), slice(*o["eta"])
        self.eq_rows = slice(0, r["mu"][1])
        self.comp_rows, self.cone_rows = slice(*r["comp"]), slice(*r["cone"])
        self.n = o["total"]


@dataclass
class SolveReport:
    """Per world: iterations (B,) long, residual (B,) scaled equality residual, complementarity (B,)
    relative distance to the central path at κ, converged (B,) bool."""
    iterations: torch.Tensor
    residual: torch.Tensor
    complementarity: torch.Tensor
    converged: torch.Tensor


def _cone_parts(w, lay):
    C = lay.contacts
    return (w[..., lay.gamma], w[..., lay.gap], w[..., lay.beta].reshape(w.shape[:-1] + (C, 3)),
            w[..., lay.eta].reshape(w.shape[:-1] + (C, 3)))


def jordan(a, b):
    """Jordan product of the second-order cone, a ∘ b = (a·b, a₀ b₁ + b₀ a₁). (…, 3)."""
    return torch.cat([(a * b).sum(-1, keepdim=True), a[..., :1] * b[..., 1:] + b[..., :1] * a[..., 1:]], -1)


def orthant_step(x, dx):
    """Largest α ≤ ∞ with x + α dx ≥ 0 per world, reduced over the last dim. x > 0."""
    ratio = torch.where(dx < 0, -x / dx.clamp(max=-1e-300), torch.full_like(x, torch.inf))
    return ratio.amin(-1) if ratio.shape[-1] else torch.full(x.shape[:-1], torch.inf, dtype=x.dtype)


def cone_step(x, dx):
    """Largest α with x + α dx in the second-order cone {x₀ ≥ |x₁₂|}, per world. x: (B, C, 3) interior."""
    a = dx[..., 0] ** 2 - (dx[..., 1:] ** 2).sum(-1)
    b = 2 * (x[..., 0] * dx[..., 0] - (x[..., 1:] * dx[..., 1:]).sum(-1))
    c = x[..., 0] ** 2 - (x[..., 1:] ** 2).sum(-1)
    inf = torch.full_like(a, torch.inf)
    disc = (b * b - 4 * a * c).clamp_min(0).sqrt()
    # Roots of a α² + b α + c written to avoid cancellation.
    qq = -0.5 * (b + torch.where(b >= 0, disc, -disc))
    r1 = torch.where(a != 0, qq / torch.where(a != 0, a, torch.ones_like(a)), inf)
    r2 = torch.where(qq != 0, c / torch.where(qq != 0, qq, torch.ones_like(qq)), inf)
    r1 = torch.where(r1 > 0, r1, inf)
    r2 = torch.where(r2 > 0, r2, inf)
    has_root = (b * b - 4 * a * c >= 0) & ((a < 0) | (b < 0))
    alpha = torch.where(has_root, torch.minimum(r1, r2), inf)
    # x₀ must stay positive as well (the quadratic alone also admits the negative cone).
    alpha = torch.minimum(alpha, torch.where(dx[..., 0] < 0, -x[..., 0] / dx[..., 0].clamp(max=-1e-300), inf))
    return alpha.amin(-1) if alpha.shape[-1] else torch.full(x.shape[:-1], torch.inf, dtype=x.dtype)


def max_step(w, dw, lay):
    g, s, b, e = _cone_parts(w, lay)
    dg, ds, db, de = _cone_parts(dw, lay)
    return torch.stack([orthant_step(g, dg), orthant_step(s, ds), cone_step(b, db), cone_step(e, de)]).amin(0)


def duality_measure(w, lay):
    """μ = (Σ γ s + Σ β·η) / (2 C) per world."""
    g, s, b, e = _cone_parts(w, lay)
    return ((g * s).sum(-1) + (b * e).sum((-1, -2))) / max(2 * lay.contacts, 1)


def centered(F0, t, lay, corr_orthant=None, corr_cone=None):
    """Residual with centering target t (B,) and optional Mehrotra second-order terms."""
    F = F0.clone()
    F[:, lay.comp_rows] -= t[:, None]
    F[:, lay.cone_rows.start::3] -= t[:, None]
    if corr_orthant is not None:
        F[:, lay.comp_rows] += corr_orthant
        F[:, lay.cone_rows] += corr_cone.reshape(F.shape[0], -1)
    return F


def measure(F0, kappa, lay):
    """(scaled equality residual, relative complementarity error) per world."""
    eq = (F0[:, lay.eq_rows] / lay.row_scale).abs()
    eq = eq.amax(-1) if eq.shape[-1] else torch.zeros(F0.shape[0], dtype=F0.dtype)
    if lay.contacts == 0:
        return eq, torch.zeros_like(eq)
    comp = F0[:, lay.comp_rows] - kappa
    cone = F0[:, lay.cone_rows].reshape(F0.shape[0], lay.contacts, 3).clone()
    cone[..., 0] -= kappa
    err = torch.cat([comp.abs(), cone.abs().reshape(F0.shape[0], -1)], -1).amax(-1) / kappa
    return eq, err


def solve(evaluate, w0, lay: Layout, kappa: float, rtol: float, max_iterations: int):
    """Solve r(w; κ) = 0 from the interior point w0 (B, N).

    evaluate(w) → (J (B, N, N), r(w; 0) (B, N)). Returns (w, J at w, SolveReport). Worlds that converge
    stop moving while the others iterate.
    """
    w = w0.clone()
    B = w.shape[0]
    iterations = torch.zeros(B, dtype=torch.long)
    done = torch.zeros(B, dtype=torch.bool)
    for it in range(max_iterations + 1):
        J, F0 = evaluate(w)
        eq, comp = measure(F0, kappa, lay)
        newly = (eq <= rtol) & (comp <= rtol) & ~done
        iterations[newly] = it
        done |= newly
        if bool(done.all()) or it == max_iterations:
            break
        lu, piv = torch.linalg.lu_factor(J)
        d_aff = torch.linalg.lu_solve(lu, piv, -F0[..., None])[..., 0]
        alpha_aff = max_step(w, d_aff, lay).clamp(max=1.0)
        mu = duality_measure(w, lay)
        mu_aff = duality_measure(w + alpha_aff[:, None] * d_aff, lay)
        sigma = (mu_aff / mu.clamp_min(1e-300)).clamp(0, 1) ** 3
        target = torch.maximum(sigma * mu, torch.full_like(mu, kappa))
        # Once the target reaches κ, plain Newton on the central path: Mehrotra's second-order term is
        # O(κ) there and would shift the fixed point off γ s = κ.
        far = (sigma * mu > kappa).to(w.dtype)[:, None]
        _, ds, db, de = _cone_parts(d_aff, lay)
        dg = d_aff[:, lay.gamma]
        F = centered(F0, target, lay, far * dg * ds, far[..., None] * jordan(db, de))
        d = torch.linalg.lu_solve(lu, piv, -F[..., None])[..., 0]
        alpha = (FRACTION_TO_BOUNDARY * max_step(w, d, lay)).clamp(max=1.0)
        alpha = torch.where(done, torch.zeros_like(alpha), alpha)
        w = w + alpha[:, None] * d
    iterations[~done] = max_iterations
    return w, J, SolveReport(iterations, eq, comp, done)
