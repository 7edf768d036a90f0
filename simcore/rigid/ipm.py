"""Primal-dual interior-point solver for the step equations r(w) = 0 (batched over worlds).

Newton on the relaxed complementarity system with Mehrotra's predictor-corrector (Mehrotra 1992;
Nocedal & Wright, Numerical Optimization §14.2): an affine predictor aimed at zero complementarity, a
centering target t = max(σ μ, κ) with σ = (μ_aff/μ)³, and a corrector with the second-order term
Δ_aff ∘ Δ_aff. Cone rows are Nesterov–Todd scaled while far from the central path. Step lengths keep
(γ, s) in the positive orthant and (β, η) inside the second-order cone (fraction-to-boundary 0.99 of the
exact cone boundary, a quadratic per cone) and |ω|·dt < 2. Once the target reaches κ the corrector term
is dropped: plain Newton converges quadratically onto the central path. One LU factorization per
iteration serves predictor and corrector.

The iteration stops once every world satisfies the step equations to `rtol` (scaled residual in m/s,
see `Layout`) and sits on the central path at κ to relative accuracy max(rtol, 1e-8)
(|γ s − κ| ≤ tol κ, |β ∘ η − κ e| ≤ tol κ).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .integrator import _block_diagonal, _mm, _mv, arrow, row_blocks, sizes

FRACTION_TO_BOUNDARY = 0.99
# Relative accuracy of γ s = κ below which round-off in the ill-conditioned Newton system (cond ~ γ/s)
# stalls progress; the central-path test uses max(rtol, this).
CENTRAL_PATH_FLOOR = 1e-8


@dataclass
class Layout:
    """Index sets of w and r for `bodies` bodies and `contacts` contacts, then (joints.offsets) `joint_rows`
    joint equality rows with their impulses λ and `limits` joint limits with their (γ, s) pairs.

    row_scale: (B, equality rows) divides the equality rows so that they read in velocity units (m/s,
    rad/s): dynamics rows by mass or largest principal inertia, friction-magnitude rows by the mean mass,
    joint rows by dt. active: which contacts are real in each world; the duality measure averages over
    those only, so placeholder rows (candidates active in another world of the batch) do not steer the
    centering; limit_active: (B, limits) the same for joint limits.
    The orthant pairs (γ, s) of contacts and limits are one set (`gamma`, `gap`, `comp_rows`: slices
    without joints, index tensors with them); the cones are contacts only.
    """
    bodies: int
    contacts: int
    row_scale: torch.Tensor
    active: torch.Tensor | None = None  # (B, C) real contacts; others are placeholder rows of a batch
    joint_rows: int = 0
    limits: int = 0
    limit_active: torch.Tensor | None = None  # (B, L)

    def __post_init__(self):
        o, r = sizes(self.bodies, self.contacts), row_blocks(self.bodies, self.contacts)
        self.gamma, self.gap = slice(*o["gamma"]), slice(*o["gap"])
        self.beta, self.eta = slice(*o["beta"]), slice(*o["eta"])
        self.eq_rows = slice(0, r["mu"][1])
        self.comp_rows, self.cone_rows = slice(*r["comp"]), slice(*r["cone"])
        self.orthant = slice(self.gamma.start, self.gap.stop)
        self.n = o["total"]
        if self.joint_rows or self.limits:
            nc, m, L = o["total"], self.joint_rows, self.limits
            cat = lambda *ss: torch.cat([torch.arange(a.start, a.stop) for a in ss])  # noqa: E731
            lam, lim_g, lim_s = slice(nc, nc + m), slice(nc + m, nc + m + L), slice(nc + m + L, nc + m + 2 * L)
            self.gamma, self.gap = cat(self.gamma, lim_g), cat(self.gap, lim_s)
            self.orthant = torch.cat([self.gamma, self.gap])
            self.eq_rows = cat(self.eq_rows, slice(nc, nc + m + L))
            self.comp_rows = cat(self.comp_rows, slice(nc + m + L, nc + m + 2 * L))
            self.lam = lam
            self.n = nc + m + 2 * L

    @property
    def has_orthant(self) -> bool:
        return bool(self.contacts or self.limits)


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


_LORENTZ = torch.tensor([1.0, -1.0, -1.0], dtype=torch.float64)


def cone_step(x, dx):
    """Largest α with x + α dx in the second-order cone {x₀ ≥ |x₁₂|}, per world. x: (B, C, 3) interior.

    q(α) = ⟨x + α dx, x + α dx⟩ with ⟨u, v⟩ = u₀v₀ − u₁₂·v₁₂ is a quadratic a α² + b α + c with c > 0; a
    path from the interior leaves the cone (it cannot reach x₀ < 0 otherwise) at the smallest positive
    root, 2c / (−b + √(b² − 4ac)) when that denominator is positive, and never otherwise."""
    xl, dl = x * _LORENTZ, dx * _LORENTZ
    a, b, c = (dl * dx).sum(-1), 2 * (xl * dx).sum(-1), (xl * x).sum(-1)
    den = -b + (b * b - 4 * a * c).clamp_min(0).sqrt()
    alpha = torch.where(den > 0, 2 * c / den.clamp_min(1e-300), torch.inf)
    return alpha.amin(-1) if alpha.shape[-1] else torch.full(x.shape[:-1], torch.inf, dtype=x.dtype)


def max_step(w, dw, lay):
    """Largest step keeping (γ, s) ≥ 0 and β, η in their cones, per world."""
    if not lay.has_orthant:
        return torch.full(w.shape[:-1], torch.inf, dtype=w.dtype)
    orth = lay.orthant
    cones = slice(lay.beta.start, lay.eta.stop)
    B = w.shape[0]
    if lay.contacts == 0:
        return orthant_step(w[:, orth], dw[:, orth])
    return torch.minimum(orthant_step(w[:, orth], dw[:, orth]),
                         cone_step(w[:, cones].reshape(B, -1, 3), dw[:, cones].reshape(B, -1, 3)))


def nesterov_todd(x, y):
    """Nesterov–Todd scaling of second-order-cone pairs (x, y) (…, 3) in the interior: returns (W, W⁻¹, λ)
    with λ = W y = W⁻¹ x (Vandenberghe, "The CVXOPT linear and quadratic cone program solvers", §4.4).
    Newton on (W⁻¹x) ∘ (W y) = t e instead of x ∘ y = t e treats both cones alike; unscaled, the dual
    friction cone η collapses onto its boundary when a landing edge slides (step lengths → 0)."""
    jdot = lambda a, b: a[..., 0] * b[..., 0] - (a[..., 1:] * b[..., 1:]).sum(-1)  # noqa: E731
    xn, yn = jdot(x, x).clamp_min(1e-300).sqrt(), jdot(y, y).clamp_min(1e-300).sqrt()
    xb, yb = x / xn[..., None], y / yn[..., None]
    gam = ((1 + (xb * yb).sum(-1)) / 2).clamp_min(1e-300).sqrt()
    yb_j = torch.cat([yb[..., :1], -yb[..., 1:]], -1)
    wb = (xb + yb_j) / (2 * gam[..., None])
    scale = (xn / yn).sqrt()[..., None, None]
    w0, w1 = wb[..., :1], wb[..., 1:]
    eye = torch.eye(2, dtype=x.dtype)
    lower = eye + w1[..., :, None] * w1[..., None, :] / (1 + w0[..., None])
    top = torch.cat([w0[..., None], w1[..., None, :]], -1)
    W = scale * torch.cat([top, torch.cat([w1[..., :, None], lower], -1)], -2)
    top_i = torch.cat([w0[..., None], -w1[..., None, :]], -1)
    W_inv = torch.cat([top_i, torch.cat([-w1[..., :, None], lower], -1)], -2) / scale
    lam = _mv(W, y)
    return W, W_inv, lam


def scaled_system(J, F0, w, lay, near):
    """Replace the cone rows of (J, r) by their Nesterov–Todd scaled form. Returns (J, r, W, W⁻¹).

    Worlds already `near` (B,) the central path keep the unscaled rows (W = I): computing λ from cone
    points a hair from the boundary loses digits, and plain Newton converges quadratically there."""
    if bool(near.all()):
        return J, F0, None, None
    _, _, b, e = _cone_parts(w, lay)
    W, W_inv, lam = nesterov_todd(b, e)
    eye = torch.eye(3, dtype=w.dtype)
    nr = near[:, None, None, None]
    W, W_inv = torch.where(nr, eye, W), torch.where(nr, eye, W_inv)
    A = arrow(lam)
    J = J.clone()
    F0 = F0.clone()
    B = J.shape[0]
    # The cone rows hold only the per-contact arrow blocks on the β and η columns: overwrite those.
    rows = lay.cone_rows
    _block_diagonal(J[:, rows, lay.beta], torch.where(nr, arrow(e), _mm(A, W_inv)))
    _block_diagonal(J[:, rows, lay.eta], torch.where(nr, arrow(b), _mm(A, W)))
    F0[:, rows] = torch.where(near[:, None], F0[:, rows], jordan(lam, lam).reshape(B, -1))
    return J, F0, W, W_inv


def duality_measure(w, lay):
    """μ = (Σ γ s + Σ β·η) / (2 C) per world, over the active contacts."""
    g, s, b, e = _cone_parts(w, lay)
    if lay.limits:
        C = lay.contacts
        on_c = torch.ones_like(g[..., :C]) if lay.active is None else lay.active.to(w.dtype)
        on_l = lay.limit_active.to(w.dtype)
        total = ((g[..., :C] * s[..., :C] + (b * e).sum(-1)) * on_c).sum(-1) + (g[..., C:] * s[..., C:] * on_l).sum(-1)
        return total / (2 * on_c.sum(-1) + on_l.sum(-1)).clamp_min(1)
    pair = g * s + (b * e).sum(-1)
    if lay.active is None:
        return pair.sum(-1) / max(2 * lay.contacts, 1)
    on = lay.active.to(w.dtype)
    return (pair * on).sum(-1) / (2 * on.sum(-1)).clamp_min(1)


def centered(F0, t, lay, corr_orthant=None, corr_cone=None):
    """Residual with centering target t (B,) and optional Mehrotra second-order terms."""
    F = F0.clone()
    F[:, lay.comp_rows] -= t[:, None]
    F[:, lay.cone_rows.start:lay.cone_rows.stop:3] -= t[:, None]
    if corr_orthant is not None:
        F[:, lay.comp_rows] += corr_orthant
        F[:, lay.cone_rows] += corr_cone.reshape(F.shape[0], -1)
    return F


def measure(F0, w, kappa, lay):
    """(scaled equality residual, relative complementarity error) per world. The cone error is taken
    relative to max(κ, 1e-10 |β||η|): β₀η₁₂ + η₀β₁₂ cancels terms of size |β||η| ≫ κ while sliding, so its
    round-off floor scales with them."""
    eq = (F0[:, lay.eq_rows] / lay.row_scale).abs()
    eq = eq.amax(-1) if eq.shape[-1] else torch.zeros(F0.shape[0], dtype=F0.dtype)
    if not lay.has_orthant:
        return eq, torch.zeros_like(eq)
    B = F0.shape[0]
    _, _, b, e = _cone_parts(w, lay)
    comp = (F0[:, lay.comp_rows] - kappa).abs() / kappa
    cone = F0[:, lay.cone_rows].reshape(B, lay.contacts, 3).clone()
    cone[..., 0] -= kappa
    scale = torch.clamp_min(1e-10 * b.norm(dim=-1) * e.norm(dim=-1), kappa)
    err = torch.cat([comp, (cone.abs() / scale[..., None]).reshape(B, -1)], -1).amax(-1)
    return eq, err


def solve(evaluate, w0, lay: Layout, kappa: float, rtol: float, max_iterations: int, omega_limit=None,
          scaling: bool = True):
    """Solve r(w; κ) = 0 from the interior point w0 (B, N).

    evaluate(w) → (jacobian (a function returning J (B, N, N)), r(w; 0) (B, N)); the Jacobian is
    assembled only where another Newton step is taken. scaling: Nesterov–Todd scaling of the cone rows while
    far from the central path (False: plain Newton throughout). omega_limit(w, d) → (B,) largest
    step keeping every |ω|·dt inside the domain of the rotation update. Returns (w, SolveReport).
    Worlds that converge stop moving while the others iterate.
    """
    w = w0.clone()
    B = w.shape[0]
    iterations = torch.zeros(B, dtype=torch.long)
    done = torch.zeros(B, dtype=torch.bool)
    previous = None
    for it in range(max_iterations + 1):
        jacobian, F0 = evaluate(w)
        for _ in range(30):
            # Guard: a trial point with a non-finite residual halves the last step (the cone and ω
            # step rules normally prevent this).
            bad = ~torch.isfinite(F0).all(-1)
            if previous is None or not bool(bad.any()):
                break
            w_prev, d_prev, a_prev = previous
            a_prev = torch.where(bad, 0.5 * a_prev, a_prev)
            w = w_prev + a_prev[:, None] * d_prev
            previous = (w_prev, d_prev, a_prev)
            jacobian, F0 = evaluate(w)
        eq, comp = measure(F0, w, kappa, lay)
        newly = (eq <= rtol) & (comp <= max(rtol, CENTRAL_PATH_FLOOR)) & ~done
        iterations[newly] = it
        done |= newly
        if bool(done.all()) or it == max_iterations:
            break
        near = (comp < 1.0) | (not scaling)
        J = jacobian()
        Js, Fs, W, W_inv = scaled_system(J, F0, w, lay, near=near) if lay.contacts \
            else (J, F0, None, None)
        lu, piv = torch.linalg.lu_factor(Js)
        d_aff = torch.linalg.lu_solve(lu, piv, -Fs[..., None])[..., 0]
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
        if W is not None:
            db, de = _mv(W_inv, db), _mv(W, de)
        F = centered(Fs, target, lay, far * dg * ds, far[..., None] * jordan(db, de))
        d = torch.linalg.lu_solve(lu, piv, -F[..., None])
        # One step of iterative refinement: the system mixes impulses of ~10² N·s with gaps of ~10⁻⁸ m.
        d = d - torch.linalg.lu_solve(lu, piv, Js @ d + F[..., None])
        d = d[..., 0]
        # A singular or overflowing system gives a non-finite direction: that world stays put (and is
        # reported as not converged) instead of turning into NaN.
        d = torch.where(torch.isfinite(d).all(-1, keepdim=True), d, torch.zeros_like(d))
        alpha = (FRACTION_TO_BOUNDARY * max_step(w, d, lay)).clamp(max=1.0)
        if omega_limit is not None:
            alpha = torch.minimum(alpha, omega_limit(w, d))
        alpha = torch.where(done, torch.zeros_like(alpha), alpha)
        previous = (w, d, alpha)
        w = w + alpha[:, None] * d
    iterations[~done] = max_iterations
    return w, SolveReport(iterations, eq, comp, done)
